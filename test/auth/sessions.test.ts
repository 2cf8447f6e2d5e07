import { describe, expect, it } from 'vitest';
import { useTestApp } from '../support/harness.js';

const refresh = (t: ReturnType<ReturnType<typeof useTestApp>>, token: string) =>
  t.post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: token } });

describe('sessions (GoTrue-compatible refresh and logout)', () => {
  const t = useTestApp();

  it('refresh returns a new pair in GoTrue’s shape; the new access token works', async () => {
    const g = await t().createGuest();
    const body = await t().json(refresh(t(), g.refreshToken));
    expect(body).toMatchObject({ token_type: 'bearer', expires_in: 3600 });
    expect(body.refresh_token).not.toBe(g.refreshToken);
    expect(body.expires_at).toBeGreaterThan(Date.now() / 1000);
    expect(body.user).toMatchObject({ id: g.userId, aud: 'authenticated', role: 'authenticated', is_anonymous: true });
    await t().json(t().get('/functions/v1/get-user-credits', { token: body.access_token }));
  });

  it('the old refresh token fails after rotation, and its reuse ends the whole session', async () => {
    const g = await t().createGuest();
    const rotated = await t().json(refresh(t(), g.refreshToken));
    const reuse = await t().json(refresh(t(), g.refreshToken), 401);
    expect(reuse.error.code).toBe('ERR_4005');
    // Reuse means the token leaked: the descendant and its access token die too.
    await t().json(refresh(t(), rotated.refresh_token), 401);
    await t().json(t().get('/functions/v1/get-user-credits', { token: rotated.access_token }), 401);
  });

  it('concurrent refreshes with one token: at most one succeeds', async () => {
    const g = await t().createGuest();
    const results = await Promise.all(Array.from({ length: 5 }, () => refresh(t(), g.refreshToken)));
    expect(results.filter((r) => r.status === 200).length).toBeLessThanOrEqual(1);
    expect(results.every((r) => r.status === 200 || r.status === 401)).toBe(true);
  });

  it('unknown refresh tokens and unsupported grant types are refused', async () => {
    expect((await refresh(t(), 'not-a-token')).status).toBe(401);
    const g = await t().createGuest();
    const res = await t().json(t().post('/auth/v1/token?grant_type=password', { body: { refresh_token: g.refreshToken } }), 400);
    expect(res.error.details.field).toBe('grant_type');
    expect((await t().post('/auth/v1/token?grant_type=refresh_token', { body: {} })).status).toBe(400);
  });

  it('logout (global by default) ends every session of the user: access and refresh tokens stop working', async () => {
    const g = await t().createGuest();
    const second = await t().createGuest(g.deviceId); // same device again = a second session
    expect((await t().post('/auth/v1/logout', { token: g.accessToken })).status).toBe(204);
    await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }), 401);
    await t().json(t().get('/functions/v1/get-user-credits', { token: second.accessToken }), 401);
    await t().json(refresh(t(), g.refreshToken), 401);
  });

  it('logout scope=local ends only this session', async () => {
    const g = await t().createGuest();
    const second = await t().createGuest(g.deviceId);
    expect((await t().post('/auth/v1/logout?scope=local', { token: g.accessToken })).status).toBe(204);
    await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }), 401);
    await t().json(t().get('/functions/v1/get-user-credits', { token: second.accessToken }));
  });

  it.each([
    ['an empty body and no Content-Type (curl -X POST, URLSession without httpBody)', { rawBody: '' }],
    ['a text/plain body', { rawBody: '{}', headers: { 'content-type': 'text/plain' } }],
    ['a form body', { rawBody: 'unused=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }],
  ])('logout takes no body: with %s it still ends the session', async (_what, opts) => {
    const g = await t().createGuest();
    const res = await t().post('/auth/v1/logout', { token: g.accessToken, ...opts });
    expect(res.status, await res.text()).toBe(204);
    await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }), 401);
  });

  it('an expired refresh token is refused', async () => {
    const g = await t().createGuest();
    await t().db.query("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'");
    await t().json(refresh(t(), g.refreshToken), 401);
  });
});

describe('legacy anon-key mode (LEGACY_ANON_CLIENTS=true), as the shipped app calls', () => {
  const ANON = 'anon-key-for-tests';
  const t = useTestApp({ ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true' });

  it('the anon key plus user_id acts as that user', async () => {
    const g = await t().createGuest();
    const body = await t().json(t().get(`/functions/v1/get-user-credits?user_id=${g.userId}`, { token: ANON }));
    expect(body.credits_remaining).toBe(10);
    const rows = await t().json(t().patch(`/rest/v1/users?id=eq.${g.userId}`, { token: ANON, headers: { prefer: 'return=representation' }, body: { language: 'tr' } }));
    expect(rows).toEqual([{ id: g.userId, language: 'tr', theme_preference: 'system' }]);
  });

  it('without user_id the anon key is nobody (401); an unknown user is 404 as the app expects', async () => {
    await t().json(t().get('/functions/v1/get-user-credits', { token: ANON }), 401);
    const missing = await t().json(t().get('/functions/v1/get-user-credits?user_id=00000000-0000-4000-8000-000000000000', { token: ANON }), 404);
    expect(missing.error.code).toBe('ERR_4007');
    await t().json(t().get('/functions/v1/get-user-credits?user_id=not-a-uuid', { token: ANON }), 400);
  });

  it('user tokens still work, and still cannot name another user', async () => {
    const [me, other] = [await t().createGuest(), await t().createGuest()];
    await t().json(t().get(`/functions/v1/get-user-credits?user_id=${me.userId}`, { token: me.accessToken }));
    await t().json(t().get(`/functions/v1/get-user-credits?user_id=${other.userId}`, { token: me.accessToken }), 403);
  });

  it('the apikey header must match ANON_KEY', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken, headers: { apikey: 'wrong' } }), 401);
    expect(res.error.code).toBe('ERR_4043');
    expect((await t().json(t().get('/rest/v1/themes', { headers: { apikey: '' } }), 401)).error.code).toBe('ERR_4042');
  });
});

describe('secure mode with an anon key configured', () => {
  const t = useTestApp({ ANON_KEY: 'anon-key-for-tests' });

  it('refuses the anon key as identity even with a user_id', async () => {
    const g = await t().createGuest();
    await t().json(t().get(`/functions/v1/get-user-credits?user_id=${g.userId}`, { token: 'anon-key-for-tests' }), 401);
  });
});
