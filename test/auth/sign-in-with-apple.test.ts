import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeAppleId, appleSub } from '../fakes/apple-id.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/** Sign in with Apple (GoTrue's id_token grant and the shipped app's merge-guest-user) with guest merge. */

const BUNDLE = 'com.rendioai.app';
let apple: FakeAppleId;
beforeAll(async () => {
  apple = await new FakeAppleId(BUNDLE).start();
});
afterAll(async () => {
  await apple.server.stop();
});

const signIn = (t: TestApp, idToken: string, opts: { guest?: Guest; nonce?: string } = {}) =>
  t.post('/auth/v1/token?grant_type=id_token', {
    token: opts.guest?.accessToken,
    body: { provider: 'apple', id_token: idToken, ...(opts.nonce ? { nonce: opts.nonce } : {}) },
  });

async function credits(t: TestApp, token: string): Promise<number> {
  return (await t.json(t.get('/functions/v1/get-user-credits', { token }))).credits_remaining;
}

async function jobsOf(t: TestApp, token: string): Promise<string[]> {
  return (await t.json(t.get('/functions/v1/get-video-jobs?limit=100', { token }))).jobs.map((j: any) => j.job_id);
}

/** A guest who made two videos (1 credit each): 8 credits left and two jobs in history. */
async function guestWithTwoJobs(t: TestApp): Promise<{ g: Guest; jobs: string[] }> {
  await t.startWorker();
  const g = await t.createGuest();
  const jobs: string[] = [];
  for (const prompt of ['first clip', 'second clip']) {
    const res = await t.json(t.generate(g, { model_id: 'simulator-text-to-video', prompt }));
    await t.waitForJob(g.accessToken, res.job_id);
    jobs.push(res.job_id);
  }
  return { g, jobs };
}

describe('Sign in with Apple (GoTrue id_token grant)', () => {
  const t = useTestApp(() => apple.env());

  it('a guest whose Apple ID is new becomes that account: same id, credits and jobs; the guest session ends', async () => {
    const { g, jobs } = await guestWithTwoJobs(t());
    const sub = appleSub();
    const res = await t().json(signIn(t(), await apple.identityToken({ sub }), { guest: g }));
    expect(res.user).toMatchObject({ id: g.userId, is_anonymous: false, app_metadata: { provider: 'apple' } });
    expect(await credits(t(), res.access_token)).toBe(8);
    expect((await jobsOf(t(), res.access_token)).sort()).toEqual([...jobs].sort());
    await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }), 401);

    // Again, with the (dead) guest token: refused, nothing changes; without it: the same account.
    await t().json(signIn(t(), await apple.identityToken({ sub }), { guest: g }), 401);
    const again = await t().json(signIn(t(), await apple.identityToken({ sub })));
    expect(again.user.id).toBe(g.userId);
    expect(await credits(t(), again.access_token)).toBe(8);
  });

  it('a guest signing in to an existing Apple account is merged into it: credits and jobs move, the guest is gone', async () => {
    const sub = appleSub();
    const first = await t().json(signIn(t(), await apple.identityToken({ sub }))); // the account exists, with 0 credits
    expect(await credits(t(), first.access_token)).toBe(0);
    const { g, jobs } = await guestWithTwoJobs(t());

    const res = await t().json(signIn(t(), await apple.identityToken({ sub }), { guest: g }));
    expect(res.user.id).toBe(first.user.id);
    expect(await credits(t(), res.access_token)).toBe(8);
    const profile = await t().json(t().get('/functions/v1/get-user-profile', { token: res.access_token }));
    expect(profile).toMatchObject({ id: first.user.id, is_guest: false, apple_sub: sub, credits_remaining: 8, credits_total: 8, initial_grant_claimed: true });
    expect((await jobsOf(t(), res.access_token)).sort()).toEqual([...jobs].sort());
    const history = await t().json(t().get(`/functions/v1/get-video-status?job_id=${jobs[0]}`, { token: res.access_token }));
    expect(history.status).toBe('completed');

    // The guest can no longer sign in: its token is dead and so is its refresh token.
    await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }), 401);
    await t().json(t().post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: g.refreshToken } }), 401);
    const guestRow = (await t().db.query('SELECT merged_into, deleted_at, device_id FROM users WHERE id = $1', [g.userId])).rows[0];
    expect(guestRow.merged_into).toBe(first.user.id);
    expect(guestRow.deleted_at).not.toBeNull();

    // Repeating it changes nothing.
    await t().json(signIn(t(), await apple.identityToken({ sub }), { guest: g }), 401);
    expect(await credits(t(), res.access_token)).toBe(8);
    const entries = (await t().db.query("SELECT kind, amount FROM ledger_entries WHERE kind IN ('merge_in', 'merge_out') AND (user_id = $1 OR user_id = $2) ORDER BY id", [g.userId, first.user.id])).rows;
    expect(entries).toEqual([
      { kind: 'merge_out', amount: -8 },
      { kind: 'merge_in', amount: 8 },
    ]);
  });

  it("a guest's running job moves with its held credits and ends on the new owner's account", async () => {
    const sub = appleSub();
    const owner = await t().json(signIn(t(), await apple.identityToken({ sub })));
    const g = await t().createGuest();
    const running = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'still rendering [sim:hang]' }));
    const res = await t().json(signIn(t(), await apple.identityToken({ sub }), { guest: g }));
    expect(res.user.id).toBe(owner.user.id);
    const account = (await t().db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [owner.user.id])).rows[0];
    expect(account).toEqual({ balance: 10, held: 1 });
    // The new owner cancels it: the hold, now theirs, is released to them.
    await t().json(t().post('/functions/v1/delete-video-job', { token: res.access_token, body: { job_id: running.job_id } }));
    expect(await credits(t(), res.access_token)).toBe(10);
  });

  it('refuses identity tokens that are not Apple’s, not for this app, expired, or with the wrong nonce', async () => {
    const stray = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const bad: [string, string | undefined][] = [
      [await apple.identityToken({ aud: 'com.someone.else' }), undefined],
      [await apple.identityToken({ iss: 'https://evil.example.com' }), undefined],
      [await apple.identityToken({ expiresInSeconds: -120 }), undefined],
      [await apple.identityToken({}, { signWith: stray }), undefined],
      [await apple.identityToken({}, { signWith: stray, kid: 'unknown-kid' }), undefined],
      [await apple.identityToken({ nonce: 'the-real-nonce' }), 'another-nonce'],
      [await apple.identityToken({ nonce: 'the-real-nonce' }), undefined],
      ['not.a.jwt', undefined],
    ];
    for (const [token, nonce] of bad) {
      const res = await t().json(signIn(t(), token, { nonce }), 401);
      expect(res.error.code).toBe('ERR_4005');
    }
    const ok = await t().json(signIn(t(), await apple.identityToken({ nonce: 'the-real-nonce' }), { nonce: 'the-real-nonce' }));
    expect(ok.access_token).toBeTruthy();
  });

  it("refuses a request nonce copied from the token's own nonce claim (only SHA-256(raw nonce) matches)", async () => {
    const token = await apple.identityToken({ nonce: 'the-real-nonce' });
    const claim = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).nonce as string;
    const res = await t().json(signIn(t(), token, { nonce: claim }), 401);
    expect(res.error).toMatchObject({ code: 'ERR_4005' });
    expect(res.error.details.reason).toMatch(/nonce mismatch/);
  });

  it('an identity token signs in once: a replay is refused, with or without a nonce, and with a guest bearer too', async () => {
    const plain = await apple.identityToken();
    await t().json(signIn(t(), plain));
    expect((await t().json(signIn(t(), plain), 401)).error.details.reason).toMatch(/already used/);

    const withNonce = await apple.identityToken({ nonce: 'once-only' });
    await t().json(signIn(t(), withNonce, { nonce: 'once-only' }));
    await t().json(signIn(t(), withNonce, { nonce: 'once-only' }), 401);

    // A replay that would link a guest is refused before anything moves.
    const g = await t().createGuest();
    await t().json(signIn(t(), plain, { guest: g }), 401);
    expect(await credits(t(), g.accessToken)).toBe(10);
  });

  it('a sign-in refused before it commits does not use the token up', async () => {
    const g = await t().createGuest();
    const token = await apple.identityToken();
    await t().json(t().post('/functions/v1/delete-account', { token: g.accessToken }));
    // The dead guest bearer makes the sign-in fail (401) before it can commit.
    await t().json(signIn(t(), token, { guest: g }), 401);
    await t().json(signIn(t(), token));
  });

  it('follows Apple’s key rotation (a new kid is fetched), and says so when Apple’s keys are unreachable', async () => {
    await t().json(signIn(t(), await apple.identityToken()));
    apple.rotate();
    await t().json(signIn(t(), await apple.identityToken()));
    apple.server.inject(/\/auth\/keys/, { status: 503, times: 1 });
    apple.rotate(); // an unknown kid forces a refetch, which fails
    const res = await t().json(signIn(t(), await apple.identityToken()), 503);
    expect(res.error).toMatchObject({ code: 'ERR_5002', details: { service: 'sign_in_with_apple' } });
  });

  it('10 concurrent first sign-ins of one Apple ID create one account', async () => {
    const sub = appleSub();
    const results = await Promise.all(Array.from({ length: 10 }, async () => t().json(signIn(t(), await apple.identityToken({ sub })))));
    expect(new Set(results.map((r) => r.user.id)).size).toBe(1);
    const { rows } = await t().db.query('SELECT count(*)::int AS n FROM users WHERE apple_sub = $1', [sub]);
    expect(rows[0].n).toBe(1);
  });
});

describe('merge-guest-user (the shipped app’s sign-in)', () => {
  const t = useTestApp(() => apple.env());

  it('verifies the identity token and answers the app’s {success, user} with a session', async () => {
    const g = await t().createGuest();
    const sub = appleSub();
    const body = { device_id: g.deviceId, apple_sub: sub, identity_token: await apple.identityToken({ sub }) };
    const res = await t().json(t().post('/functions/v1/merge-guest-user', { token: g.accessToken, body }));
    expect(res).toMatchObject({ success: true, merged: 'became', user: { id: g.userId, apple_sub: sub, is_guest: false, credits_remaining: 10 } });
    // §2.8: every key of the app's User is present.
    for (const k of ['id', 'email', 'device_id', 'apple_sub', 'is_guest', 'tier', 'credits_remaining', 'credits_total', 'initial_grant_claimed', 'language', 'theme_preference', 'created_at', 'updated_at']) {
      expect(res.user, k).toHaveProperty(k);
    }
    expect(await credits(t(), res.access_token)).toBe(10);
  });

  it('refuses a missing identity token, another apple_sub, and another device', async () => {
    const g = await t().createGuest();
    const sub = appleSub();
    const token = await apple.identityToken({ sub });
    const post = (body: Record<string, unknown>) => t().post('/functions/v1/merge-guest-user', { token: g.accessToken, body });
    expect((await t().json(post({ device_id: g.deviceId, apple_sub: sub }), 400)).error.code).toBe('ERR_4008');
    expect((await t().json(post({ device_id: g.deviceId, apple_sub: appleSub(), identity_token: token }), 403)).error.code).toBe('ERR_4006');
    expect((await t().json(post({ device_id: randomUUID().toUpperCase(), apple_sub: sub, identity_token: token }), 403)).error.code).toBe('ERR_4006');
    expect((await t().json(post({ device_id: g.deviceId, apple_sub: 'short', identity_token: token }), 400)).error.code).toBe('ERR_4008');
    expect(await credits(t(), g.accessToken)).toBe(10);
  });
});

describe('merge-guest-user in legacy anon-key mode (the shipped build as it is)', () => {
  const ANON = 'anon-key-for-the-shipped-app-0123456789';
  const t = useTestApp(() => ({ ...apple.env(), ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true' }));
  const legacy = { token: ANON, headers: { apikey: ANON } };

  it('accepts {device_id, apple_sub} without a token, hands out no session, and the guest id keeps working', async () => {
    const sub = appleSub();
    const existing = await t().json(signIn(t(), await apple.identityToken({ sub })));
    const g = await t().createGuest();
    const res = await t().json(t().post('/functions/v1/merge-guest-user', { ...legacy, body: { device_id: g.deviceId, apple_sub: sub } }));
    expect(res).toMatchObject({ success: true, merged: 'merged', user: { id: existing.user.id, credits_remaining: 10 } });
    expect(res.access_token).toBeUndefined();
    // §4.8d: the app goes on naming the guest's id; it now stands for the Apple account.
    const c = await t().json(t().get(`/functions/v1/get-user-credits?user_id=${g.userId}`, legacy));
    expect(c.credits_remaining).toBe(10);
  });

  it("without an identity token, the guest's user id in place of its device id (§4.8a) is refused: the user id is not a secret", async () => {
    const g = await t().createGuest();
    const res = await t().json(t().post('/functions/v1/merge-guest-user', { ...legacy, body: { device_id: g.userId, apple_sub: appleSub() } }), 403);
    expect(res.error.code).toBe('ERR_4006');
    const profile = await t().json(t().get(`/functions/v1/get-user-profile?user_id=${g.userId}`, legacy));
    expect(profile).toMatchObject({ id: g.userId, is_guest: true, apple_sub: null });
  });

  it('with the anon key even a verified identity token needs the guest’s device id: the token proves the caller’s Apple ID, not that the guest is theirs', async () => {
    const g = await t().createGuest();
    const sub = appleSub();
    const res = await t().json(
      t().post('/functions/v1/merge-guest-user', { ...legacy, body: { device_id: g.userId, apple_sub: sub, identity_token: await apple.identityToken({ sub }) } }),
      403,
    );
    expect(res.error.code).toBe('ERR_4006');
  });
});
