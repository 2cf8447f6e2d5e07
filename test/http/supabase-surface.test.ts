import { FunctionsHttpError } from '@supabase/supabase-js';
import { describe, expect, it } from 'vitest';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { useTestApp } from '../support/harness.js';
import { ANON_KEY, serveOverHttp, signedInClient, storageUser, supabaseClient, TINY_JPEG, TINY_PNG } from '../support/supabase-js.js';

/**
 * What a developer of another app on Supabase tries first with the real @supabase/supabase-js
 * (pinned in package.json) beyond the shipped app's own calls, against the real server.
 */

/** supabase-js always sends its key: this one drops the apikey header on the way out, as a hand-written client would. */
const clientWithoutApiKey = (url: string) =>
  supabaseClient(url, ANON_KEY, (input, init) => {
    const headers = new Headers(init?.headers);
    headers.delete('apikey');
    return fetch(input, { ...init, headers });
  });

describe('the API key, as Supabase\'s gateway answers for it', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);

  it('no apikey: "No API key found in request" with the gateway\'s hint on every surface, not a session error', async () => {
    const sb = clientWithoutApiKey(url());
    const rest = await sb.from('models').select('id');
    expect(rest.status).toBe(401);
    expect(rest.error).toMatchObject({ message: 'No API key found in request', hint: 'No `apikey` request header or url param was found.', code: 'ERR_4042' });

    const fn = await sb.functions.invoke('get-models');
    expect(fn.error).toBeInstanceOf(FunctionsHttpError);
    const fnBody = await (fn.error as FunctionsHttpError).context.json();
    expect(fnBody).toMatchObject({ message: 'No API key found in request', error: { code: 'ERR_4042' } });

    const auth = await sb.auth.refreshSession({ refresh_token: 'x' });
    expect(auth.error).toMatchObject({ status: 401, message: 'No API key found in request' });

    // The gateway also takes the key as a url parameter.
    expect((await fetch(`${url()}/rest/v1/themes?select=id&apikey=${ANON_KEY}`)).status).toBe(200);
  });

  it('a wrong apikey: "Invalid API key"', async () => {
    const rest = await supabaseClient(url(), 'not-the-anon-key').from('models').select('id');
    expect(rest.status).toBe(401);
    expect(rest.error).toMatchObject({ message: 'Invalid API key', hint: 'Double check your Supabase `anon` or `service_role` API key.', code: 'ERR_4043' });
  });
});

describe('supabase-js PostgREST (rest/v1) beyond the shipped app', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);

  const ids = async (q: PromiseLike<{ data: { id: string }[] | null; error: unknown }>) => {
    const { data, error } = await q;
    expect(error).toBeNull();
    return data!.map((r) => r.id);
  };

  it('ilike, or=(…) (nested), order by any whitelisted column, gt on cost_per_generation, is null on thumbnail_url', async () => {
    const sb = supabaseClient(url());
    const models = (await t().json(t().get('/functions/v1/get-models'))).models as Array<{ id: string; name: string; category: string; cost_per_generation: number; thumbnail_url: string | null; created_at: string }>;
    const sorted = (pred: (m: (typeof models)[number]) => boolean) => models.filter(pred).map((m) => m.id).sort();

    expect((await ids(sb.from('models').select('id').ilike('name', '%SIMUL%'))).sort()).toEqual(sorted((m) => /simul/i.test(m.name)));
    expect((await ids(sb.from('models').select('id').ilike('name', '*runway*'))).sort()).toEqual(sorted((m) => /runway/i.test(m.name)));
    expect((await ids(sb.from('models').select('id').like('name', 'sim%'))).sort()).toEqual([]); // like is case-sensitive

    const either = await ids(sb.from('models').select('id').or('id.eq.runway-gen4.5,name.ilike.*simul*'));
    expect(either.sort()).toEqual(sorted((m) => m.id === 'runway-gen4.5' || /simul/i.test(m.name)));
    const nested = await ids(sb.from('models').select('id').or('and(category.eq.image-to-video,cost_per_generation.lte.5),id.eq."runway-gen4.5"'));
    expect(nested.sort()).toEqual(sorted((m) => (m.category === 'image-to-video' && m.cost_per_generation <= 5) || m.id === 'runway-gen4.5'));

    // cost_per_generation is the displayed price (pricing.ts), filterable and orderable as the client sees it.
    for (const m of models) expect(await ids(sb.from('models').select('id').eq('cost_per_generation', m.cost_per_generation).eq('id', m.id))).toEqual([m.id]);
    const n = models[Math.floor(models.length / 2)]!.cost_per_generation;
    expect((await ids(sb.from('models').select('id').gt('cost_per_generation', n))).sort()).toEqual(sorted((m) => m.cost_per_generation > n));
    const byCost = await sb.from('models').select('id,cost_per_generation').order('cost_per_generation', { ascending: false }).order('id');
    expect(byCost.data!.map((r) => r.cost_per_generation)).toEqual(models.map((m) => m.cost_per_generation).sort((a, b) => b - a));
    expect((await ids(sb.from('models').select('id').is('thumbnail_url', null))).sort()).toEqual(sorted((m) => m.thumbnail_url === null));
    expect((await ids(sb.from('models').select('id').not('thumbnail_url', 'is', null))).sort()).toEqual(sorted((m) => m.thumbnail_url !== null));
    const byName = await ids(sb.from('models').select('id').order('name', { ascending: false }).order('id'));
    expect(byName).toEqual([...models].sort((a, b) => (a.name === b.name ? a.id.localeCompare(b.id) : a.name < b.name ? 1 : -1)).map((m) => m.id));

    // Values are parameters, never SQL: a quote, a comment and a parenthesis are just text that matches nothing.
    expect(await ids(sb.from('models').select('id').ilike('name', "%'); DROP TABLE models; --%"))).toEqual([]);
    expect(await ids(sb.from('models').select('id').or('name.eq.") OR true --",id.eq.x'))).toEqual([]);
    // Only whitelisted columns, only sensible operators.
    expect((await sb.from('models').select('id').or('provider_model_id.eq.x')).status).toBe(400);
    expect((await sb.from('models').select('id').ilike('is_featured', 'x')).status).toBe(400);
    expect((await sb.from('models').select('id').order('provider')).status).toBe(400);
    expect((await sb.from('models').select('id').gt('cost_per_generation', 'cheap')).status).toBe(400);
  });

  it('the Range header as PostgREST reads it (Range: 0-9, Range-Unit: items), with the total when counted', async () => {
    const page = await fetch(`${url()}/rest/v1/themes?select=id&order=name`, { headers: { apikey: ANON_KEY, Range: '1-2', 'Range-Unit': 'items', Prefer: 'count=exact' } });
    expect(page.status).toBe(206);
    expect(page.headers.get('content-range')).toBe('1-2/5');
    const all = (await (await fetch(`${url()}/rest/v1/themes?select=id&order=name`, { headers: { apikey: ANON_KEY } })).json()) as { id: string }[];
    expect(await page.json()).toEqual(all.slice(1, 3));
    // Through supabase-js, a header set on the query; and intersected with limit/offset.
    const viaClient = await supabaseClient(url()).from('themes').select('id').order('name').setHeader('Range', '3-').setHeader('Range-Unit', 'items');
    expect(viaClient.data).toEqual(all.slice(3));
    const both = await fetch(`${url()}/rest/v1/themes?select=id&order=name&offset=2&limit=10`, { headers: { apikey: ANON_KEY, Range: '0-2' } });
    expect(await both.json()).toEqual(all.slice(2, 3));
    expect((await fetch(`${url()}/rest/v1/themes`, { headers: { apikey: ANON_KEY, Range: '5-2' } })).status).toBe(400);
  });

  it('a method a served path does not serve is 405 with PostgREST\'s error fields, whoever asks; an unknown table stays 404', async () => {
    const sb = supabaseClient(url());
    const users = await sb.from('users').select('*');
    expect(users.status).toBe(405);
    expect(users.error).toMatchObject({ code: 'PGRST117', hint: null });
    expect(users.error?.details).toMatch(/GET is not served on \/rest\/v1\/users: PATCH only/);
    for (const attempt of [sb.from('models').insert({ id: 'mine' }), sb.from('models').delete().eq('id', 'runway-gen4.5'), sb.from('themes').upsert({ name: 'x' }), sb.from('video_jobs').delete().eq('status', 'failed')]) {
      const { status, error } = await attempt;
      expect(status).toBe(405);
      expect(error).toMatchObject({ code: 'PGRST117' });
    }
    const raw = await fetch(`${url()}/rest/v1/models`, { method: 'POST', headers: { apikey: ANON_KEY, 'content-type': 'application/json' }, body: '{}' });
    expect(raw.headers.get('allow')).toBe('GET, HEAD');
    expect((await t().db.query("SELECT 1 FROM models WHERE id = 'mine'")).rowCount).toBe(0);
    expect((await sb.from('payments').select('*')).status).toBe(404);
  });

  it("video_jobs: your own jobs only, with get-video-jobs' columns, filtered and ordered as PostgREST does", async () => {
    const [me, other] = [await t().createGuest(), await t().createGuest()];
    const first = await t().json(t().generate(me, { model_id: 'simulator-text-to-video', prompt: 'a red fox running through snow' }));
    const second = await t().json(t().generate(me, { model_id: 'simulator-text-to-video', prompt: 'a quiet harbour at dawn' }));
    await t().json(t().generate(other, { model_id: 'simulator-text-to-video', prompt: 'not yours' }));
    expect(await t().completeJobNow(first.job_id)).toBe('completed');

    const sb = supabaseClient(url());
    await sb.auth.setSession({ access_token: me.accessToken, refresh_token: me.refreshToken });
    const mine = await sb.from('video_jobs').select('*');
    expect(mine.error).toBeNull();
    const history = (await t().json(t().get('/functions/v1/get-video-jobs', { token: me.accessToken }))).jobs as Array<Record<string, unknown>>;
    const withoutUrls = (rows: Array<Record<string, unknown>>) => rows.map(({ video_url, thumbnail_url, ...rest }) => ({ ...rest, has_video: video_url !== null }));
    expect(withoutUrls(mine.data!)).toEqual(withoutUrls(history)); // same rows, same columns, newest first (URLs are freshly signed)
    expect(Object.keys(mine.data![0]!).sort()).toEqual(Object.keys(history[0]!).sort());
    const video = mine.data!.find((j) => j.job_id === first.job_id)!.video_url as string;
    const signed = new URL(video); // PUBLIC_URL is not this test's port: the same path, here
    expect((await fetch(`${url()}${signed.pathname}${signed.search}`)).status).toBe(200);

    expect((await sb.from('video_jobs').select('job_id').eq('status', 'pending')).data).toEqual([{ job_id: second.job_id }]);
    expect((await sb.from('video_jobs').select('job_id').ilike('prompt', '*FOX*')).data).toEqual([{ job_id: first.job_id }]);
    expect((await sb.from('video_jobs').select('job_id').order('created_at', { ascending: true }).limit(1).single()).data).toEqual({ job_id: first.job_id });
    const counted = await sb.from('video_jobs').select('job_id', { count: 'exact', head: true });
    expect(counted.count).toBe(2);
    // Naming another user is refused; without a user token there are no rows to read.
    expect((await sb.from('video_jobs').select('job_id').eq('user_id', other.userId)).status).toBe(403);
    expect((await supabaseClient(url()).from('video_jobs').select('job_id')).status).toBe(401);
    expect((await sb.from('video_jobs').select('provider_job_id')).status).toBe(400);
  });
});

describe('supabase-js Auth beyond the shipped app', () => {
  const apple = useFakeAppleId();
  const t = useTestApp(() => ({ ANON_KEY, ...apple.env() }));
  const url = serveOverHttp(t);

  it('signInAnonymously(): a guest session with no free credits (those need device-check); it works everywhere a guest does', async () => {
    const sb = supabaseClient(url());
    const { data, error } = await sb.auth.signInAnonymously({ options: { data: { nickname: 'fox' } } });
    expect(error).toBeNull();
    expect(data.user).toMatchObject({ is_anonymous: true, user_metadata: { nickname: 'fox' }, identities: [], app_metadata: { provider: 'anonymous' } });
    expect(data.session?.access_token).toBeTruthy();
    const credits = await sb.functions.invoke('get-user-credits');
    expect(credits.data).toMatchObject({ credits_remaining: 0 });
    const profile = await sb.functions.invoke('get-user-profile');
    expect(profile.data).toMatchObject({ id: data.user!.id, is_guest: true, device_id: null, initial_grant_claimed: false });
    // Not enough credits to generate: the free grant is device-check's alone.
    const gen = await t().generate({ userId: data.user!.id, deviceId: '', accessToken: data.session!.access_token, refreshToken: '', credits: 0 }, { model_id: 'simulator-text-to-video', prompt: 'a red fox' });
    expect(gen.status).toBe(402);
    // The session refreshes like any other; Sign in with Apple with the guest's bearer takes the guest in.
    const refreshed = await sb.auth.refreshSession();
    expect(refreshed.error).toBeNull();
    const merged = await t().json(
      t().post('/auth/v1/token?grant_type=id_token', { token: refreshed.data.session!.access_token, body: { provider: 'apple', id_token: await apple.identityToken({ sub: appleSub() }) } }),
    );
    expect(merged.user).toMatchObject({ id: data.user!.id, is_anonymous: false, user_metadata: { nickname: 'fox' } });

    // email / phone / password sign-up are not served, and say so.
    const withEmail = await supabaseClient(url()).auth.signUp({ email: 'a@example.com', password: 'secret-password' });
    expect(withEmail.error).toMatchObject({ status: 400, code: 'ERR_4008' });
    expect(withEmail.error?.message).toMatch(/sign-up with email is not served/);
  });

  it('updateUser({ data }) merges user_metadata as GoTrue does; nothing that changes identity, for Apple users above all', async () => {
    const sb = supabaseClient(url());
    const signed = await sb.auth.signInWithIdToken({ provider: 'apple', token: await apple.identityToken({ sub: appleSub(), email: 'me@privaterelay.appleid.com' }) });
    expect(signed.error).toBeNull();
    const first = await sb.auth.updateUser({ data: { theme: 'dark', count: 1, nested: { a: 1 } } });
    expect(first.error).toBeNull();
    expect(first.data.user?.user_metadata).toEqual({ theme: 'dark', count: 1, nested: { a: 1 } });
    const second = await sb.auth.updateUser({ data: { count: 2, theme: null } });
    expect(second.data.user?.user_metadata).toEqual({ count: 2, nested: { a: 1 } });
    expect((await sb.auth.getUser()).data.user?.user_metadata).toEqual(second.data.user?.user_metadata);

    for (const change of [{ email: 'other@example.com' }, { password: 'a-new-password' }, { phone: '+15550100' }]) {
      const { error } = await sb.auth.updateUser(change);
      expect(error, JSON.stringify(change)).toMatchObject({ status: 400, code: 'ERR_4008' });
    }
    const { rows } = await t().db.query('SELECT email FROM users WHERE id = $1', [signed.data.user!.id]);
    expect(rows[0].email).toBe('me@privaterelay.appleid.com');
    const huge = await sb.auth.updateUser({ data: { blob: 'x'.repeat(9000) } });
    expect(huge.error).toMatchObject({ status: 400, code: 'ERR_4008' });
  });

  it('getUserIdentities(): the Apple identity of an Apple account, none for a guest', async () => {
    const sub = appleSub();
    const sb = supabaseClient(url());
    await sb.auth.signInWithIdToken({ provider: 'apple', token: await apple.identityToken({ sub }) });
    const { data, error } = await sb.auth.getUserIdentities();
    expect(error).toBeNull();
    expect(data!.identities).toHaveLength(1);
    expect(data!.identities[0]).toMatchObject({ provider: 'apple', id: sub, identity_data: { sub } });
    expect(data!.identities[0]!.identity_id).toMatch(/^[0-9a-f-]{36}$/);

    const guest = await t().createGuest();
    const asGuest = await signedInClient(url(), guest);
    expect((await asGuest.auth.getUserIdentities()).data!.identities).toEqual([]);
  });

  it("signOut({ scope }): local ends this session, others every other one, global all — at once, as GoTrue answers", async () => {
    const sub = appleSub();
    const signIn = async () => {
      const sb = supabaseClient(url());
      const r = await sb.auth.signInWithIdToken({ provider: 'apple', token: await apple.identityToken({ sub }) });
      expect(r.error).toBeNull();
      return { sb, token: r.data.session!.access_token };
    };
    const live = async (token: string) => (await t().get('/auth/v1/user', { token })).status === 200;
    const [a, b, c] = [await signIn(), await signIn(), await signIn()];

    expect((await b.sb.auth.signOut({ scope: 'others' })).error).toBeNull();
    expect([await live(a.token), await live(b.token), await live(c.token)]).toEqual([false, true, false]);
    expect((await b.sb.auth.getSession()).data.session).not.toBeNull(); // others keeps this session

    const d = await signIn();
    expect((await d.sb.auth.signOut({ scope: 'local' })).error).toBeNull();
    expect([await live(b.token), await live(d.token)]).toEqual([true, false]);
    expect((await d.sb.auth.getSession()).data.session).toBeNull();

    const e = await signIn();
    expect((await e.sb.auth.signOut()).error).toBeNull(); // global, supabase-js's default
    expect([await live(b.token), await live(e.token)]).toEqual([false, false]);
  });
});

describe('supabase-js Storage beyond the shipped app, within your own folder', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);
  const [JPEG, PNG] = [TINY_JPEG, TINY_PNG];
  const signedIn = () => storageUser(t(), url());

  it('list() with prefix, limit, offset, sortBy and search; info(); exists(); another user\'s folder lists nothing', async () => {
    const { g, bucket } = await signedIn();
    for (const name of ['b.jpg', 'a.jpg', 'C.jpg', 'sub/d.jpg', 'sub/deeper/e.jpg']) expect((await bucket.upload(`${g.userId}/${name}`, new Blob([JPEG]))).error).toBeNull();

    const all = await bucket.list(g.userId);
    expect(all.error).toBeNull();
    expect(all.data!.map((e) => e.name)).toEqual(['C.jpg', 'a.jpg', 'b.jpg', 'sub']); // by name (byte order, as PostgreSQL's C collation)
    expect(all.data![0]).toMatchObject({ id: expect.any(String), metadata: { size: JPEG.length, mimetype: 'image/jpeg' } });
    expect(all.data![3]).toMatchObject({ name: 'sub', id: null, metadata: null });
    expect((await bucket.list(g.userId, { limit: 2, offset: 1 })).data!.map((e) => e.name)).toEqual(['a.jpg', 'b.jpg']);
    expect((await bucket.list(g.userId, { sortBy: { column: 'name', order: 'desc' } })).data!.map((e) => e.name)).toEqual(['sub', 'b.jpg', 'a.jpg', 'C.jpg']);
    expect((await bucket.list(g.userId, { sortBy: { column: 'created_at', order: 'desc' } })).data!.map((e) => e.name)).toEqual(['C.jpg', 'a.jpg', 'b.jpg', 'sub']);
    expect((await bucket.list(g.userId, { search: 'c' })).data!.map((e) => e.name)).toEqual(['C.jpg']);
    expect((await bucket.list(`${g.userId}/sub`)).data!.map((e) => e.name)).toEqual(['d.jpg', 'deeper']);
    expect((await bucket.list()).data!.map((e) => e.name)).toEqual([g.userId]);

    const info = await bucket.info(`${g.userId}/a.jpg`);
    expect(info.error).toBeNull();
    expect(info.data).toMatchObject({ name: `${g.userId}/a.jpg`, size: JPEG.length, contentType: 'image/jpeg', bucketId: 'thumbnails' });
    expect((await bucket.exists(`${g.userId}/sub/d.jpg`)).data).toBe(true);

    const intruder = await signedIn();
    expect((await intruder.bucket.list(g.userId)).data).toEqual([]);
    expect((await intruder.bucket.info(`${g.userId}/a.jpg`)).error).not.toBeNull();
    expect((await intruder.bucket.exists(`${g.userId}/a.jpg`)).data).toBe(false);
  });

  it('copy() and move() within your own folder; not into or out of another user\'s', async () => {
    const { g, bucket } = await signedIn();
    await bucket.upload(`${g.userId}/src.png`, new Blob([PNG]));
    const copied = await bucket.copy(`${g.userId}/src.png`, `${g.userId}/copy.png`);
    expect(copied.error).toBeNull();
    expect(copied.data).toEqual({ path: `thumbnails/${g.userId}/copy.png` });
    expect(Buffer.from(await (await bucket.download(`${g.userId}/copy.png`)).data!.arrayBuffer())).toEqual(PNG);
    expect((await bucket.copy(`${g.userId}/src.png`, `${g.userId}/copy.png`)).error).not.toBeNull(); // exists: no upsert

    const moved = await bucket.move(`${g.userId}/copy.png`, `${g.userId}/moved/there.png`);
    expect(moved.error).toBeNull();
    expect((await bucket.exists(`${g.userId}/copy.png`)).data).toBe(false);
    expect((await bucket.exists(`${g.userId}/moved/there.png`)).data).toBe(true);

    const intruder = await signedIn();
    expect((await intruder.bucket.copy(`${g.userId}/src.png`, `${intruder.g.userId}/stolen.png`)).error).not.toBeNull();
    expect((await bucket.copy(`${g.userId}/src.png`, `${intruder.g.userId}/gift.png`)).error).not.toBeNull();
    expect((await intruder.bucket.move(`${g.userId}/src.png`, `${intruder.g.userId}/stolen.png`)).error).not.toBeNull();
    expect((await bucket.exists(`${g.userId}/src.png`)).data).toBe(true);
  });

  it('createSignedUrls() for several paths (others\' answer an error entry); createSignedUploadUrl() + uploadToSignedUrl()', async () => {
    const { g, bucket } = await signedIn();
    const intruder = await signedIn();
    await bucket.upload(`${g.userId}/1.jpg`, new Blob([JPEG]));
    await intruder.bucket.upload(`${intruder.g.userId}/x.jpg`, new Blob([JPEG]));
    const many = await bucket.createSignedUrls([`${g.userId}/1.jpg`, `${intruder.g.userId}/x.jpg`], 60);
    expect(many.error).toBeNull();
    expect(many.data![0]).toMatchObject({ path: `${g.userId}/1.jpg`, error: null });
    expect(many.data![1]).toMatchObject({ path: `${intruder.g.userId}/x.jpg`, signedUrl: null, error: 'Either the object does not exist or you do not have access to it' });
    const res = await fetch(many.data![0]!.signedUrl!);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(JPEG);

    const link = await bucket.createSignedUploadUrl(`${g.userId}/later.png`);
    expect(link.error).toBeNull();
    // Anyone holding the link uploads, with no session: a client without one.
    const uploaded = await supabaseClient(url()).storage.from('thumbnails').uploadToSignedUrl(`${g.userId}/later.png`, link.data!.token, new Blob([PNG]));
    expect(uploaded.error).toBeNull();
    expect((await t().db.query('SELECT owner_id FROM storage_objects WHERE key = $1', [`${g.userId}/later.png`])).rows).toEqual([{ owner_id: g.userId }]);
    // Bound to its key, and no upsert unless asked for.
    expect((await supabaseClient(url()).storage.from('thumbnails').uploadToSignedUrl(`${g.userId}/other.png`, link.data!.token, new Blob([PNG]))).error).not.toBeNull();
    expect((await supabaseClient(url()).storage.from('thumbnails').uploadToSignedUrl(`${g.userId}/later.png`, link.data!.token, new Blob([PNG]))).error).not.toBeNull();
    expect((await bucket.createSignedUploadUrl(`${intruder.g.userId}/y.png`)).error).not.toBeNull();
    // A link does not outlive its owner's standing: banned, the owner's link uploads nothing.
    const upsertable = await bucket.createSignedUploadUrl(`${g.userId}/again.png`, { upsert: true });
    await t().db.query('UPDATE users SET banned_at = now() WHERE id = $1', [g.userId]);
    expect((await supabaseClient(url()).storage.from('thumbnails').uploadToSignedUrl(`${g.userId}/again.png`, upsertable.data!.token, new Blob([PNG]))).error).not.toBeNull();
    expect((await t().db.query('SELECT 1 FROM storage_objects WHERE key = $1', [`${g.userId}/again.png`])).rowCount).toBe(0);
  });

  it("listBuckets() and getBucket() show the app's two buckets", async () => {
    const { sb } = await signedIn();
    const list = await sb.storage.listBuckets();
    expect(list.error).toBeNull();
    expect(list.data!.map((b) => [b.id, b.public])).toEqual([['thumbnails', true], ['videos', false]]);
    const one = await sb.storage.getBucket('thumbnails');
    expect(one.data).toMatchObject({ id: 'thumbnails', public: true, file_size_limit: t().services.config.limits.maxUploadBytes });
    expect((await sb.storage.getBucket('secrets')).error).not.toBeNull();
  });
});

describe('anonymous sign-in is limited as device-check is (each call creates an account)', () => {
  const t = useTestApp({ ANON_KEY, RATE_LIMITS_ENABLED: 'true', GENERATE_MAX_IN_FLIGHT: '0', RATE_LIMITS: 'device-check.ip=2/3600' });
  const url = serveOverHttp(t);

  it('the third account from one address in the hour is 429, whether made by sign-up or by device-check', async () => {
    expect((await supabaseClient(url()).auth.signInAnonymously()).error).toBeNull();
    await t().createGuest();
    const third = await supabaseClient(url()).auth.signInAnonymously();
    expect(third.error).toMatchObject({ status: 429, code: 'ERR_4004' });
    expect((await t().db.query('SELECT count(*)::int AS n FROM users')).rows[0].n).toBe(2);
  });
});
