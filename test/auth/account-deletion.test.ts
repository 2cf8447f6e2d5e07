import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { useFakeAppleId, appleSub, signServerEvent } from '../fakes/apple-id.js';
import { useFakeDeviceCheck, deviceToken } from '../fakes/device-check.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/** Account deletion: in-app (delete-account) and by Apple's Sign in with Apple notifications. */

const apple = useFakeAppleId();
const deviceCheck = useFakeDeviceCheck();

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);

/** A user with a delivered video, a video still rendering and an uploaded picture. */
async function busyUser(t: TestApp, g: Guest): Promise<{ done: string; running: string }> {
  await t.startWorker();
  const done = (await t.json(t.generate(g, { model_id: 'simulator-text-to-video', prompt: 'a delivered clip' }))).job_id;
  await t.waitForJob(g.accessToken, done);
  const running = (await t.json(t.generate(g, { model_id: 'simulator-text-to-video', prompt: 'still going [sim:hang]' }))).job_id;
  const upload = await t.app.request(`/storage/v1/object/thumbnails/${g.userId}/input_1.jpg`, {
    method: 'POST',
    headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'image/jpeg' },
    body: JPEG,
  });
  expect(upload.status).toBe(200);
  return { done, running };
}

async function expectPurged(t: TestApp, userId: string): Promise<void> {
  const user = (await t.db.query('SELECT email, apple_sub, device_id, deleted_at FROM users WHERE id = $1', [userId])).rows[0];
  expect(user).toMatchObject({ email: null, apple_sub: null, device_id: null });
  expect(user.deleted_at).not.toBeNull();
  const files = (await t.db.query('SELECT bucket, key FROM storage_objects WHERE owner_id = $1 AND deleted_at IS NULL', [userId])).rows;
  expect(files).toEqual([]);
  const all = (await t.db.query('SELECT bucket, key FROM storage_objects WHERE owner_id = $1', [userId])).rows;
  expect(all.length).toBeGreaterThan(0);
  for (const o of all) expect(await t.services.store.get(o.bucket, o.key)).toBeUndefined();
  const jobs = (await t.db.query('SELECT status, prompt, deleted_at FROM video_jobs WHERE user_id = $1', [userId])).rows;
  for (const j of jobs) {
    expect(j.prompt).toBe('');
    expect(j.deleted_at).not.toBeNull();
    expect(['completed', 'failed']).toContain(j.status);
  }
  const open = (await t.db.query("SELECT count(*)::int AS n FROM credit_holds WHERE user_id = $1 AND status = 'open'", [userId])).rows[0];
  expect(open.n).toBe(0);
  // The money trail stays (anonymised): the grant, the hold and its capture/release are still there.
  const entries = (await t.db.query('SELECT count(*)::int AS n FROM ledger_entries WHERE user_id = $1', [userId])).rows[0];
  expect(entries.n).toBeGreaterThan(3);
}

describe('delete-account', () => {
  const t = useTestApp(() => ({ ...deviceCheck.env(), ...apple.env() }));

  it('cancels and refunds running videos, removes files, ends sessions, scrubs personal data, keeps the ledger', async () => {
    const device = `phone-${randomUUID()}`;
    const deviceId = randomUUID().toUpperCase();
    const g = await t().createGuest(deviceId, device);
    await busyUser(t(), g);
    expect(await t().json(t().post('/functions/v1/delete-account', { token: g.accessToken, body: {} }))).toEqual({ success: true });
    await expectPurged(t(), g.userId);
    await t().json(t().get('/functions/v1/get-user-profile', { token: g.accessToken }), 401);
    await t().json(t().post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: g.refreshToken } }), 401);
    await t().json(t().post('/functions/v1/delete-account', { token: g.accessToken, body: {} }), 401);

    // The phone can start over as a new guest, but Apple's DeviceCheck bit denies a second free grant.
    const again = await t().json(t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(device) } }));
    expect(again).toMatchObject({ is_new: true, credits_remaining: 0, initial_grant_given: false });
    expect(again.user_id).not.toBe(g.userId);
  });

  it('a purge interrupted after the account ended is finished by the queue', async () => {
    const g = await t().createGuest();
    await busyUser(t(), g);
    await t().stopWorker();
    // What delete() commits first, without the inline purge: as if the process died right after.
    await t().db.query('UPDATE users SET deleted_at = now() WHERE id = $1', [g.userId]);
    await t().db.query("SELECT graphile_worker.add_job('purge_deleted_account', json_build_object('userId', $1::text))", [g.userId]);
    await t().startWorker();
    await expect.poll(async () => (await t().db.query('SELECT device_id FROM users WHERE id = $1', [g.userId])).rows[0].device_id, { timeout: 10_000 }).toBeNull();
    await expectPurged(t(), g.userId);
  });
});

describe('delete-account from the shipped app (legacy anon-key mode)', () => {
  const ANON = 'anon-key-for-the-shipped-app-0123456789';
  const t = useTestApp({ ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true' });

  it('accepts {user_id} with the anon key, and the id is then unknown', async () => {
    const g = await t().createGuest();
    const legacy = { token: ANON, headers: { apikey: ANON } };
    expect(await t().json(t().post('/functions/v1/delete-account', { ...legacy, body: { user_id: g.userId } }))).toEqual({ success: true });
    await t().json(t().post('/functions/v1/delete-account', { ...legacy, body: { user_id: g.userId } }), 404);
  });
});

describe('Sign in with Apple server-to-server notifications', () => {
  const t = useTestApp(() => apple.env());
  const post = (body: string, type = 'application/x-www-form-urlencoded') =>
    t().app.request('/functions/v1/apple-signin-notifications', { method: 'POST', headers: { 'content-type': type }, body });

  async function appleUser(): Promise<{ sub: string; token: string; userId: string }> {
    const sub = appleSub();
    const res = await t().json(t().post('/auth/v1/token?grant_type=id_token', { body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }));
    return { sub, token: res.access_token, userId: res.user.id };
  }

  it('account-delete and consent-revoked delete the account; other events are acknowledged', async () => {
    for (const type of ['account-delete', 'consent-revoked']) {
      const u = await appleUser();
      const jwt = await signServerEvent(apple, { type, sub: u.sub });
      const res = await post(new URLSearchParams({ payload: jwt }).toString());
      expect(await res.json()).toEqual({ received: true, outcome: 'account_deleted' });
      await t().json(t().get('/functions/v1/get-user-credits', { token: u.token }), 401);
      expect((await t().db.query('SELECT apple_sub, deleted_at FROM users WHERE id = $1', [u.userId])).rows[0].apple_sub).toBeNull();
    }
    const u = await appleUser();
    const res = await post(JSON.stringify({ payload: await signServerEvent(apple, { type: 'email-disabled', sub: u.sub }) }), 'application/json');
    expect(await res.json()).toEqual({ received: true, outcome: 'acknowledged' });
    await t().json(t().get('/functions/v1/get-user-credits', { token: u.token }));
    const unknown = await post(new URLSearchParams({ payload: await signServerEvent(apple, { type: 'account-delete', sub: appleSub() }) }).toString());
    expect(await unknown.json()).toEqual({ received: true, outcome: 'unknown_user' });
  });

  it('a forged or malformed event deletes nothing', async () => {
    const u = await appleUser();
    const stray = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
    const forged = await signServerEvent(apple, { type: 'account-delete', sub: u.sub }, { signWith: stray });
    expect((await post(new URLSearchParams({ payload: forged }).toString())).status).toBe(401);
    expect((await post('payload=')).status).toBe(400);
    expect((await post('nothing-here')).status).toBe(400);
    await t().json(t().get('/functions/v1/get-user-credits', { token: u.token }));
  });
});
