import net from 'node:net';
import { randomUUID } from 'node:crypto';
import { AuthApiError, FunctionsHttpError } from '@supabase/supabase-js';
import { describe, expect, it } from 'vitest';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { useTestApp } from '../support/harness.js';
import { ANON_KEY, serveOverHttp, storageUser, supabaseClient, TINY_JPEG, TINY_PNG } from '../support/supabase-js.js';

/**
 * The real @supabase/supabase-js client against this server on a real socket: what a web or
 * Node client written for Supabase does (auth.setSession/getUser/refreshSession,
 * signInWithIdToken, functions.invoke), not what our own tests think it does.
 */

const client = supabaseClient;

describe('supabase-js against a server with ANON_KEY', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);

  it('setSession() and getUser() read the GoTrue user of the session (GET /auth/v1/user)', async () => {
    const g = await t().createGuest();
    const sb = client(url());
    const { data, error } = await sb.auth.setSession({ access_token: g.accessToken, refresh_token: g.refreshToken });
    expect(error).toBeNull();
    expect(data.user).toMatchObject({ id: g.userId, is_anonymous: true, aud: 'authenticated', app_metadata: { provider: 'anonymous' } });
    const got = await sb.auth.getUser();
    expect(got.error).toBeNull();
    expect(got.data.user?.id).toBe(g.userId);
  });

  it("auth errors reach supabase-js as AuthApiError with our status, code and message", async () => {
    const g = await t().createGuest();
    await t().json(t().post('/auth/v1/logout', { token: g.accessToken }), 204);
    const { error } = await client(url()).auth.getUser(g.accessToken);
    expect(error).toBeInstanceOf(AuthApiError);
    expect(error).toMatchObject({ status: 401, code: 'ERR_4005' });
    expect(error?.message).toMatch(/session is missing or has expired/); // our localized message, not "[object Object]"

    const refreshed = await client(url()).auth.refreshSession({ refresh_token: 'not-a-refresh-token' });
    expect(refreshed.error).toBeInstanceOf(AuthApiError);
    expect(refreshed.error).toMatchObject({ status: 401, code: 'ERR_4005' });
    expect(refreshed.error?.message).toMatch(/session is missing or has expired/);
  });

  it('functions.invoke() POSTs JSON: the read functions answer POST (body) as they answer GET (query)', async () => {
    const g = await t().createGuest();
    const job = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a red fox running through snow' }));
    const sb = client(url());
    await sb.auth.setSession({ access_token: g.accessToken, refresh_token: g.refreshToken });

    const credits = await sb.functions.invoke('get-user-credits');
    expect(credits.error, String(credits.error)).toBeNull();
    expect(credits.data).toMatchObject({ credits_remaining: g.credits - 1 });

    const profile = await sb.functions.invoke('get-user-profile', { body: { user_id: g.userId } });
    expect(profile.data).toMatchObject({ id: g.userId, is_guest: true });

    const jobs = await sb.functions.invoke('get-video-jobs', { body: { limit: 5 } });
    expect(jobs.data.jobs.map((j: { job_id: string }) => j.job_id)).toEqual([job.job_id]);

    const status = await sb.functions.invoke('get-video-status', { body: { job_id: job.job_id } });
    expect(status.data).toMatchObject({ job_id: job.job_id, prompt: 'a red fox running through snow' });
    // The shipped app's GET with a query is unchanged.
    const viaGet = await sb.functions.invoke(`get-video-status?job_id=${job.job_id}`, { method: 'GET' });
    expect(viaGet.data).toEqual(status.data);
    // The worker starts only now: the two reads above must see one unchanged job.
    await t().startWorker();
    await t().waitForJob(g.accessToken, job.job_id);

    // The body is validated like the query, and names no other user.
    const bad = await sb.functions.invoke('get-video-status', { body: { job_id: 'nope' } });
    expect(bad.error).toBeInstanceOf(FunctionsHttpError);
    expect((bad.error as FunctionsHttpError).context.status).toBe(400);
    const other = await sb.functions.invoke('get-user-credits', { body: { user_id: randomUUID() } });
    expect((other.error as FunctionsHttpError).context.status).toBe(403);
  });

  it("functions.invoke('get-models') (POST, the default) answers the catalogue as GET does, with its ETag and 304", async () => {
    const sb = client(url());
    const viaPost = await sb.functions.invoke('get-models');
    expect(viaPost.error, String(viaPost.error)).toBeNull();
    const viaGet = await fetch(`${url()}/functions/v1/get-models`, { headers: { apikey: ANON_KEY } });
    expect(viaPost.data).toEqual(await viaGet.json());
    expect(viaPost.data.models.length).toBeGreaterThan(0);
    const etag = viaGet.headers.get('etag')!;
    const revalidated = await fetch(`${url()}/functions/v1/get-models`, { method: 'POST', headers: { apikey: ANON_KEY, 'If-None-Match': etag } });
    expect(revalidated.status).toBe(304);
    expect(revalidated.headers.get('etag')).toBe(etag);
    // curl -X POST with no body: no Content-Type and no Content-Length (written by hand: node's own
    // client would add Content-Length: 0). get-models reads no body, so its type cannot matter.
    const { hostname, port } = new URL(url());
    const bare = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const socket = net.connect(Number(port), hostname, () =>
        socket.write(`POST /functions/v1/get-models HTTP/1.1\r\nHost: ${hostname}:${port}\r\napikey: ${ANON_KEY}\r\nConnection: close\r\n\r\n`),
      );
      let raw = '';
      socket.on('data', (chunk) => (raw += chunk));
      socket.on('error', reject);
      socket.on('end', () => {
        const [head = '', ...rest] = raw.split('\r\n\r\n');
        const chunked = /transfer-encoding: chunked/i.test(head);
        const payload = rest.join('\r\n\r\n');
        // A chunked body: drop the size lines.
        const body = chunked ? payload.split('\r\n').filter((_, i) => i % 2 === 1).join('') : payload;
        resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(head)?.[1]), body });
      });
    });
    expect(bare.status, bare.body).toBe(200);
    expect(JSON.parse(bare.body)).toEqual(viaPost.data);
  });
});

describe('supabase-js PostgREST (rest/v1) against the real server', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);

  it('.single() gets one object; zero or several rows are 406 PGRST116 with PostgREST\'s error fields', async () => {
    const sb = client(url());
    const one = await sb.from('models').select('id,name').eq('id', 'simulator-text-to-video').single();
    expect(one.error).toBeNull();
    expect(one.data).toEqual({ id: 'simulator-text-to-video', name: 'Simulator' });

    const none = await sb.from('models').select('id').eq('id', 'no-such-model').single();
    expect(none.status).toBe(406);
    expect(none.data).toBeNull();
    expect(none.error).toMatchObject({ code: 'PGRST116', details: 'The result contains 0 rows', hint: null });
    expect(none.error?.message).toBe('Exactly one row was requested, but 0 rows matched.');
    const many = await sb.from('themes').select('id').single();
    expect(many.status).toBe(406);
    expect(many.error).toMatchObject({ code: 'PGRST116', details: 'The result contains 5 rows' });

    // maybeSingle(): one row or null, decided by postgrest-js on the array.
    expect((await sb.from('models').select('id').eq('id', 'no-such-model').maybeSingle()).data).toBeNull();
    expect((await sb.from('models').select('id').eq('id', 'runway-gen4.5').maybeSingle()).data).toEqual({ id: 'runway-gen4.5' });
  });

  it('other errors arrive as {code, message, details, hint}, with our code and localized message', async () => {
    const bad = await client(url()).from('models').select('provider_model_id');
    expect(bad.status).toBe(400);
    expect(bad.error).toMatchObject({ code: 'ERR_4008', details: 'unknown column "provider_model_id"', hint: null });
    expect(bad.error?.message).toMatch(/^The request is invalid/);
    const written = await client(url()).from('models').insert({ id: 'mine' });
    expect(written.error).not.toBeNull();
    expect(written.status).toBeGreaterThanOrEqual(400);
    const { rows } = await t().db.query("SELECT 1 FROM models WHERE id = 'mine'");
    expect(rows).toEqual([]);
  });

  it('count=exact (and planned/estimated) gives the total in Content-Range; head: true sends HEAD and only counts', async () => {
    const sb = client(url());
    const { rows } = await t().db.query<{ n: number }>('SELECT count(*)::int AS n FROM models WHERE is_available');
    const total = rows[0]!.n;
    const page = await sb.from('models').select('id', { count: 'exact' }).order('name').range(0, 1);
    expect(page.error).toBeNull();
    expect(page.data).toHaveLength(2);
    expect(page.count).toBe(total);
    expect(page.status).toBe(206);
    for (const count of ['planned', 'estimated'] as const) {
      expect((await sb.from('models').select('id', { count }).eq('category', 'image-to-video')).count).toBe(
        (await t().db.query("SELECT 1 FROM models WHERE is_available AND category = 'image-to-video'")).rowCount,
      );
    }
    const head = await sb.from('themes').select('*', { count: 'exact', head: true });
    expect(head.error).toBeNull();
    expect(head.data).toBeNull();
    expect(head.count).toBe(5);

    const raw = await fetch(`${url()}/rest/v1/themes?select=id&limit=2&offset=1`, { method: 'HEAD', headers: { apikey: ANON_KEY, prefer: 'count=exact' } });
    expect(raw.status).toBe(206);
    expect(raw.headers.get('content-range')).toBe('1-2/5');
    expect(await raw.text()).toBe('');
  });

  it('the operators eq, neq, in, is, gt, gte, lt, lte (and not.) filter as PostgREST does', async () => {
    const sb = client(url());
    const ids = async (q: PromiseLike<{ data: { id: string }[] | null; error: unknown }>) => {
      const { data, error } = await q;
      expect(error).toBeNull();
      return data!.map((r) => r.id).sort();
    };
    const { rows } = await t().db.query<{ id: string; category: string; is_featured: boolean; created_at: string; name: string }>(
      'SELECT id, category, is_featured, created_at, name FROM models WHERE is_available',
    );
    const expectIds = (pred: (r: (typeof rows)[number]) => boolean) => rows.filter(pred).map((r) => r.id).sort();
    expect(await ids(sb.from('models').select('id').neq('category', 'text-to-video'))).toEqual(expectIds((r) => r.category !== 'text-to-video'));
    expect(await ids(sb.from('models').select('id').in('id', ['runway-gen4.5', 'simulator-text-to-video', 'nope']))).toEqual(['runway-gen4.5', 'simulator-text-to-video']);
    expect(await ids(sb.from('models').select('id').not('id', 'in', '("runway-gen4.5")'))).toEqual(expectIds((r) => r.id !== 'runway-gen4.5'));
    expect(await ids(sb.from('models').select('id').is('is_featured', true))).toEqual(expectIds((r) => r.is_featured));
    expect(await ids(sb.from('themes').select('id').is('model_id', null))).toEqual([]);
    expect(await ids(sb.from('models').select('id').gt('name', 'R').lt('name', 'T'))).toEqual(expectIds((r) => r.name > 'R' && r.name < 'T'));
    expect(await ids(sb.from('models').select('id').gte('name', 'Simulator').lte('name', 'Simulator'))).toEqual(['simulator-text-to-video']);
    const later = new Date(Math.max(...rows.map((r) => Date.parse(r.created_at))) + 1000).toISOString();
    expect(await ids(sb.from('models').select('id').lt('created_at', later))).toEqual(expectIds(() => true));
    expect(await ids(sb.from('models').select('id').gte('created_at', later))).toEqual([]);

    // Values are typed by column and never reach SQL as text: a bad one is a 400, not a 500.
    expect((await sb.from('themes').select('id').in('id', ['not-a-uuid'])).status).toBe(400);
    expect((await sb.from('models').select('id').filter('name', 'fts', 'S')).status).toBe(400);
    expect((await sb.from('models').select('id').is('name', true)).status).toBe(400);
    for (const date of ['2020-02-31', 'yesterday', '99999-01-01']) {
      const { status } = await sb.from('models').select('id').gt('created_at', date);
      expect(status, date).toBe(date === '2020-02-31' ? 200 : 400);
    }
  });

  it("the one write: PATCH users with return=representation (the row), minimal (204), as supabase-js sends it", async () => {
    const g = await t().createGuest();
    const sb = client(url());
    await sb.auth.setSession({ access_token: g.accessToken, refresh_token: g.refreshToken });
    const rep = await sb.from('users').update({ language: 'tr' }).eq('id', g.userId).select();
    expect(rep.error).toBeNull();
    expect(rep.data).toEqual([{ id: g.userId, language: 'tr', theme_preference: 'system' }]);
    const single = await sb.from('users').update({ theme_preference: 'dark' }).eq('id', g.userId).select('theme_preference').single();
    expect(single.data).toEqual({ theme_preference: 'dark' });
    const minimal = await sb.from('users').update({ language: 'es' }).eq('id', g.userId);
    expect(minimal.error).toBeNull();
    expect(minimal.status).toBe(204);
    expect(minimal.data).toBeNull();
    expect((await t().json(t().get('/functions/v1/get-user-profile', { token: g.accessToken }))).language).toBe('es');
    // No other user's row, no other column.
    const other = await t().createGuest();
    expect((await sb.from('users').update({ language: 'tr' }).eq('id', other.userId)).status).toBe(403);
    expect((await sb.from('users').update({ credits: 1000 } as never).eq('id', g.userId)).status).toBe(400);
  });
});

describe('supabase-js Storage against the real server', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);
  const [JPEG, PNG_HEAD] = [TINY_JPEG, TINY_PNG];
  const signedIn = () => storageUser(t(), url());

  it('upload() as multipart FormData (a Blob) and as raw bytes answers {Key, Id}; the type is what the bytes are', async () => {
    const { g, bucket } = await signedIn();
    const viaForm = await bucket.upload(`${g.userId}/input_1.jpg`, new Blob([JPEG], { type: 'image/jpeg' }));
    expect(viaForm.error).toBeNull();
    const { rows } = await t().db.query('SELECT id::text, content_type, size FROM storage_objects WHERE key = $1', [`${g.userId}/input_1.jpg`]);
    expect(viaForm.data).toEqual({ path: `${g.userId}/input_1.jpg`, fullPath: `thumbnails/${g.userId}/input_1.jpg`, id: rows[0].id });
    expect(rows[0]).toMatchObject({ content_type: 'image/jpeg', size: JPEG.length });

    const raw = await bucket.upload(`${g.userId}/input_2.png`, PNG_HEAD, { contentType: 'image/jpeg' });
    expect(raw.error).toBeNull();
    const fetched = await fetch(`${url()}/storage/v1/object/public/thumbnails/${g.userId}/input_2.png`);
    expect(fetched.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await fetched.arrayBuffer())).toEqual(PNG_HEAD);

    // The magic-number gate applies to a form's file too; an existing object needs upsert.
    const html = await bucket.upload(`${g.userId}/p.jpg`, new Blob(['<!doctype html><script>1</script>'], { type: 'image/jpeg' }));
    expect(html.error).toMatchObject({ statusCode: '415' });
    expect((await bucket.upload(`${g.userId}/input_1.jpg`, new Blob([JPEG]))).error).not.toBeNull();
    expect((await bucket.upload(`${g.userId}/input_1.jpg`, new Blob([PNG_HEAD]), { upsert: true })).error).toBeNull();
    expect((await bucket.update(`${g.userId}/input_1.jpg`, new Blob([JPEG]))).error).toBeNull();
    // Only into your own folder.
    const other = await t().createGuest();
    expect((await bucket.upload(`${other.userId}/x.jpg`, new Blob([JPEG]))).error).toMatchObject({ statusCode: '403' });
  });

  it('download() and exists() read your own objects with your token; another user\'s is 404', async () => {
    const { g, bucket } = await signedIn();
    await bucket.upload(`${g.userId}/mine.jpg`, new Blob([JPEG]));
    const got = await bucket.download(`${g.userId}/mine.jpg`);
    expect(got.error).toBeNull();
    expect(Buffer.from(await got.data!.arrayBuffer())).toEqual(JPEG);
    expect(got.data!.type).toBe('image/jpeg');
    expect((await bucket.exists(`${g.userId}/mine.jpg`)).data).toBe(true);
    expect((await bucket.exists(`${g.userId}/none.jpg`)).data).toBe(false);

    const res = await fetch(`${url()}/storage/v1/object/authenticated/thumbnails/${g.userId}/mine.jpg`, { headers: { apikey: ANON_KEY, authorization: `Bearer ${g.accessToken}` } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");

    const intruder = await signedIn();
    const stolen = await intruder.bucket.download(`${g.userId}/mine.jpg`);
    expect(stolen.data).toBeNull();
    expect((stolen.error as { status?: number } | null)?.status).toBe(404);
    const anon = await fetch(`${url()}/storage/v1/object/thumbnails/${g.userId}/mine.jpg`, { headers: { apikey: ANON_KEY } });
    expect(anon.status).toBe(401);
  });

  it('createSignedUrl() gives a working expiring URL for your own object only (no longer taken for an upload to bucket "sign")', async () => {
    const { g, bucket } = await signedIn();
    await bucket.upload(`${g.userId}/s.jpg`, new Blob([JPEG]));
    const signed = await bucket.createSignedUrl(`${g.userId}/s.jpg`, 60);
    expect(signed.error).toBeNull();
    expect(signed.data!.signedUrl).toMatch(new RegExp(`^${url()}/storage/v1/object/sign/thumbnails/${g.userId}/s\\.jpg\\?token=`));
    const res = await fetch(signed.data!.signedUrl);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(JPEG);
    const { rows } = await t().db.query("SELECT count(*)::int AS n FROM storage_objects WHERE bucket = 'sign'");
    expect(rows[0].n).toBe(0);

    const intruder = await signedIn();
    expect((await intruder.bucket.createSignedUrl(`${g.userId}/s.jpg`, 60)).error).toMatchObject({ statusCode: '404' });
    expect((await bucket.createSignedUrl(`${g.userId}/s.jpg`, 0)).error).toMatchObject({ statusCode: '400' });
  });

  it('remove() deletes your listed objects and answers them; others\' and missing keys are skipped', async () => {
    const { g, bucket } = await signedIn();
    const intruder = await signedIn();
    await bucket.upload(`${g.userId}/a.jpg`, new Blob([JPEG]));
    await bucket.upload(`${g.userId}/b.jpg`, new Blob([JPEG]));
    await intruder.bucket.upload(`${intruder.g.userId}/c.jpg`, new Blob([JPEG]));

    const removed = await bucket.remove([`${g.userId}/a.jpg`, `${g.userId}/missing.jpg`, `${intruder.g.userId}/c.jpg`]);
    expect(removed.error).toBeNull();
    expect(removed.data!.map((o) => o.name)).toEqual([`${g.userId}/a.jpg`]);
    expect(removed.data![0]).toMatchObject({ bucket_id: 'thumbnails', owner: g.userId, metadata: { size: JPEG.length, mimetype: 'image/jpeg' } });

    expect((await fetch(`${url()}/storage/v1/object/public/thumbnails/${g.userId}/a.jpg`)).status).toBe(404);
    expect((await fetch(`${url()}/storage/v1/object/public/thumbnails/${g.userId}/b.jpg`)).status).toBe(200);
    expect((await fetch(`${url()}/storage/v1/object/public/thumbnails/${intruder.g.userId}/c.jpg`)).status).toBe(200);
    // A result goes with its job, not through remove().
    expect((await client(url()).storage.from('videos').remove([`${g.userId}/v.mp4`])).error).not.toBeNull();
  });
});

describe('supabase-js against a server without ANON_KEY (it sends its key as Bearer on auth calls)', () => {
  const apple = useFakeAppleId();
  const t = useTestApp(() => apple.env());
  const url = serveOverHttp(t);

  it('refreshSession() and signInWithIdToken() are not refused as carrying an invalid user token', async () => {
    const g = await t().createGuest();
    const refreshed = await client(url(), 'some-anon-key').auth.refreshSession({ refresh_token: g.refreshToken });
    expect(refreshed.error).toBeNull();
    expect(refreshed.data.user?.id).toBe(g.userId);

    const signedIn = await client(url(), 'some-anon-key').auth.signInWithIdToken({ provider: 'apple', token: await apple.identityToken({ sub: appleSub() }) });
    expect(signedIn.error).toBeNull();
    expect(signedIn.data.user?.app_metadata.provider).toBe('apple');
  });

  it('elsewhere a bearer that is not a user token is still 401', async () => {
    await t().json(t().get('/functions/v1/get-user-credits', { token: 'some-anon-key' }), 401);
    await t().json(t().get('/auth/v1/user', { token: 'some-anon-key' }), 401);
  });
});

describe('CORS', () => {
  const ORIGIN = 'https://app.example.com';
  const t = useTestApp({ ANON_KEY, CORS_ORIGINS: `${ORIGIN}, https://admin.example.com` });
  const preflight = (origin: string) =>
    t().app.request('/functions/v1/get-user-credits', {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,apikey,content-type,x-client-info' },
    });

  it('a configured origin gets its preflight answered before the apikey check, with the headers supabase-js sends', async () => {
    const res = await preflight(ORIGIN);
    expect(res.status, await res.clone().text()).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const allowed = res.headers.get('access-control-allow-headers')?.split(',').map((h) => h.trim()) ?? [];
    for (const h of ['authorization', 'apikey', 'content-type', 'x-client-info', 'idempotency-key', 'prefer', 'range', 'accept-profile', 'content-profile']) {
      expect(allowed).toContain(h);
    }
    const g = await t().createGuest();
    const res2 = await t().get('/functions/v1/get-user-credits', { token: g.accessToken, headers: { origin: ORIGIN } });
    expect(res2.headers.get('access-control-allow-origin')).toBe(ORIGIN);
  });

  it('another origin gets no CORS headers', async () => {
    const res = await preflight('https://evil.example.com');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS by default', () => {
  const t = useTestApp({ ANON_KEY });
  it('without CORS_ORIGINS there are no CORS headers, and a preflight meets the apikey check', async () => {
    const res = await t().app.request('/functions/v1/get-user-credits', { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.status).toBe(401);
  });
});
