import { randomUUID } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createAdmin, type TestAdmin } from '../support/admin.js';
import { FakeAppleId, appleSub } from '../fakes/apple-id.js';
import { deviceToken } from '../fakes/device-check.js';
import { createTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * A ban (issue 11): every request of the user answers ERR_4014 — with a token, on refresh, in
 * legacy anon-key mode, at Sign in with Apple — their sessions end, and their device cannot onboard
 * a new guest (also after the device id was released by Sign in with Apple). Unban lifts it.
 */

const ANON_KEY = 'anon-key-for-ban-tests';
const apple = new FakeAppleId('com.rendioai.app');
let t: TestApp;
beforeAll(async () => {
  await apple.start();
  t = await createTestApp({ ...apple.env(), ANON_KEY, LEGACY_ANON_CLIENTS: 'true' });
});
afterEach(async () => {
  await t.assertLedgerInvariants();
});
afterAll(async () => {
  await t?.close();
  await apple.server.stop();
});

const ban = (admin: TestAdmin, userId: string, reason = 'abuse: scripted generation') =>
  t.json(t.post(`/admin/api/users/${userId}/ban`, { token: admin.token, body: { reason } }));
const unban = (admin: TestAdmin, userId: string) => t.json(t.post(`/admin/api/users/${userId}/unban`, { token: admin.token, body: { reason: 'appeal accepted' } }));

async function expectBanned(res: Response | Promise<Response>, what: string) {
  const r = await res;
  const text = await r.text();
  expect(r.status, `${what}: ${text}`).toBe(403);
  expect(JSON.parse(text).error?.code ?? JSON.parse(text).error_code, what).toBe('ERR_4014');
}

describe('banning a user', () => {
  it('answers ERR_4014 to their token, refresh token and the legacy anon key; their sessions end; audited', async () => {
    const admin = await createAdmin(t);
    const g = await t.createGuest();
    const r = await ban(admin, g.userId);
    expect(r.action).toMatchObject({ action: 'ban_user', target_id: g.userId, reason: 'abuse: scripted generation', before: { banned_at: null } });
    expect(r.action.after.banned_at).toEqual(expect.any(String));

    await expectBanned(t.get('/functions/v1/get-user-credits', { token: g.accessToken }), 'access token');
    await expectBanned(t.generate(g, { model_id: 'simulator-text-to-video', prompt: 'one more video' }), 'generate-video');
    await expectBanned(t.post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: g.refreshToken } }), 'refresh');
    await expectBanned(t.get(`/functions/v1/get-user-profile?user_id=${g.userId}`, { token: ANON_KEY }), 'legacy anon key');
    const { rows } = await t.db.query('SELECT revoked_at, revoked_reason FROM auth_sessions WHERE user_id = $1', [g.userId]);
    expect(rows.length).toBeGreaterThan(0);
    for (const s of rows) expect(s).toMatchObject({ revoked_at: expect.any(String), revoked_reason: 'banned' });
  });

  it('their device cannot onboard: neither their guest back nor a new guest', async () => {
    const admin = await createAdmin(t);
    const g = await t.createGuest();
    await ban(admin, g.userId);
    await expectBanned(t.post('/functions/v1/device-check', { body: { device_id: g.deviceId, device_token: deviceToken(g.deviceId) } }), 'device-check');
    const { rows } = await t.db.query("SELECT count(*)::int AS n FROM users WHERE onboarded_device_hash = encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", [g.deviceId]);
    expect(rows[0].n).toBe(1);
  });

  it('an Apple account that released its device id: the device still cannot onboard a new guest, and Sign in with Apple is refused', async () => {
    const admin = await createAdmin(t);
    const g = await t.createGuest();
    const sub = appleSub();
    const signIn = (token?: string) =>
      apple.identityToken({ sub }).then((idToken) => t.post('/auth/v1/token?grant_type=id_token', { token, body: { provider: 'apple', id_token: idToken } }));
    const signedIn = await t.json(signIn(g.accessToken));
    expect(signedIn.user.id).toBe(g.userId); // the guest became the Apple account and gave up its device id
    expect((await t.db.query('SELECT device_id FROM users WHERE id = $1', [g.userId])).rows[0].device_id).toBeNull();

    await ban(admin, g.userId);
    await expectBanned(t.post('/functions/v1/device-check', { body: { device_id: g.deviceId, device_token: deviceToken(g.deviceId) } }), 'device-check after release');
    await expectBanned(signIn(), 'Sign in with Apple');
    await expectBanned(t.get('/functions/v1/get-user-credits', { token: signedIn.access_token }), 'the Apple session');

    await unban(admin, g.userId);
    const back = await t.json(signIn());
    expect(back.user.id).toBe(g.userId);
    expect((await t.get('/functions/v1/get-user-credits', { token: back.access_token })).status).toBe(200);
    const fresh = await t.createGuest(g.deviceId);
    expect(fresh.userId).not.toBe(g.userId);
  });

  it('unban lets the user back in with a new session; the old sessions stay ended', async () => {
    const admin = await createAdmin(t);
    const g = await t.createGuest();
    await ban(admin, g.userId);
    const r = await unban(admin, g.userId);
    expect(r.action).toMatchObject({ action: 'unban_user', after: { banned_at: null } });
    expect((await t.get('/functions/v1/get-user-credits', { token: g.accessToken })).status).toBe(401);
    const again: Guest = await t.createGuest(g.deviceId);
    expect(again.userId).toBe(g.userId);
    expect((await t.get('/functions/v1/get-user-credits', { token: again.accessToken })).status).toBe(200);
  });

  it('needs a reason; 404 for an unknown user; a merged guest is closed (409)', async () => {
    const admin = await createAdmin(t);
    const g = await t.createGuest();
    const noReason = await t.post(`/admin/api/users/${g.userId}/ban`, { token: admin.token, body: {} });
    expect(noReason.status).toBe(400);
    expect((await t.post(`/admin/api/users/${randomUUID()}/ban`, { token: admin.token, body: { reason: 'who?' } })).status).toBe(404);
    // The guest signs in with an Apple ID that already has an account: it merges into it.
    const sub = appleSub();
    const signIn = (token?: string) =>
      apple.identityToken({ sub }).then((idToken) => t.post('/auth/v1/token?grant_type=id_token', { token, body: { provider: 'apple', id_token: idToken } }));
    const account = await t.json(signIn());
    expect((await t.json(signIn(g.accessToken))).user.id).toBe(account.user.id);
    const merged = await t.post(`/admin/api/users/${g.userId}/ban`, { token: admin.token, body: { reason: 'tombstone' } });
    expect(merged.status).toBe(409);
  });
});
