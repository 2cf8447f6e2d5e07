import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { deviceToken, useFakeDeviceCheck } from '../fakes/device-check.js';
import { useTestApp } from '../support/harness.js';

describe('guest onboarding with Apple DeviceCheck (local fake)', () => {
  const apple = useFakeDeviceCheck();
  beforeEach(() => apple.server.clearFaults());
  const t = useTestApp(() => apple.env());

  const onboard = (deviceId: string, device: string) =>
    t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(device) } });

  it('grants a never-seen device (Apple: "Failed to find bit state") and then sets bit0', async () => {
    const body = await t().json(onboard(randomUUID(), 'phone-new'));
    expect(body).toMatchObject({ is_new: true, credits_remaining: 10, initial_grant_given: true });
    expect(apple.bits.get('phone-new')).toMatchObject({ bit0: true });
    const user = await t().db.query('SELECT device_bit_marked_at FROM users WHERE id = $1', [body.user_id]);
    expect(user.rows[0].device_bit_marked_at).not.toBeNull();
    // Our provider JWT carried the key id and team (the fake verified it, or it would have answered 401).
    expect(apple.server.calls(/query_two_bits/).length).toBeGreaterThan(0);
  });

  it('never grants twice to a physical device, even under a new device_id (reinstall)', async () => {
    const first = await t().json(onboard(randomUUID(), 'phone-reinstalled'));
    expect(first.credits_remaining).toBe(10);
    const second = await t().json(onboard(randomUUID(), 'phone-reinstalled'));
    expect(second.is_new).toBe(true);
    expect(second.user_id).not.toBe(first.user_id);
    expect(second.credits_remaining).toBe(0);
    expect(second.initial_grant_given).toBe(false);
  });

  it('rejects a token Apple says is malformed with ERR_4013 and creates nothing', async () => {
    const deviceId = randomUUID();
    const forged = Buffer.from('not a real device token, just bytes').toString('base64');
    const res = await t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: forged } });
    const body = await t().json(res, 403);
    expect(body.error.code).toBe('ERR_4013');
    const users = await t().db.query('SELECT 1 FROM users WHERE device_id = $1', [deviceId]);
    expect(users.rowCount).toBe(0);
  });

  it.each([
    ['a 500', { status: 500, body: 'Internal Server Error' }],
    ['a 503', { status: 503, body: 'Service Unavailable' }],
    ['a 429', { status: 429, body: 'Too Many Requests' }],
    ['a 401 (our credentials)', { status: 401, body: 'Unable to verify authorization token' }],
    ['no answer (timeout)', { status: 200, delayMs: Infinity }],
    ['a body that is neither JSON nor the not-found text', { status: 200, body: '<html>oops</html>' }],
  ])('answers ERR_5002 when Apple gives %s, and creates nothing', async (_label, fault) => {
    apple.server.inject(/query_two_bits/, { ...fault, times: 1 });
    const deviceId = randomUUID();
    const body = await t().json(onboard(deviceId, `phone-${randomUUID()}`), 503);
    expect(body.error.code).toBe('ERR_5002');
    const users = await t().db.query('SELECT 1 FROM users WHERE device_id = $1', [deviceId]);
    expect(users.rowCount).toBe(0);
  });

  it('grants only once bit0 is set: when marking fails the grant stays pending and the next call completes it, once', async () => {
    apple.server.inject(/update_two_bits/, { status: 503, times: 1 });
    const deviceId = randomUUID();
    const first = await t().json(onboard(deviceId, 'phone-flaky'));
    expect(first).toMatchObject({ is_new: true, credits_remaining: 0, initial_grant_given: false });
    expect(apple.bits.get('phone-flaky')).toBeUndefined();
    const again = await t().json(onboard(deviceId, 'phone-flaky'));
    expect(again).toMatchObject({ user_id: first.user_id, credits_remaining: 10, initial_grant_given: true });
    expect(apple.bits.get('phone-flaky')).toMatchObject({ bit0: true });
    const third = await t().json(onboard(deviceId, 'phone-flaky'));
    expect(third).toMatchObject({ credits_remaining: 10, initial_grant_given: false });
  });

  it('a crash after Apple set the bit and before the grant is completed by the next call, once', async () => {
    const deviceId = randomUUID();
    // What such a crash leaves: the guest, its pending grant with the mark recorded, no credits.
    apple.server.inject(/update_two_bits/, { status: 503, times: 1 });
    const first = await t().json(onboard(deviceId, 'phone-crashed'));
    apple.bits.set('phone-crashed', { bit0: true, bit1: false, updated: '2026-11' });
    await t().db.query("UPDATE device_grants SET bit_marked_at = now() WHERE device_hash = encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", [deviceId]);
    const bodies = await Promise.all(Array.from({ length: 5 }, () => t().json(onboard(deviceId, 'phone-crashed'))));
    expect(bodies.filter((b) => b.initial_grant_given)).toHaveLength(1);
    expect(await t().json(onboard(deviceId, 'phone-crashed'))).toMatchObject({ user_id: first.user_id, credits_remaining: 10 });
  });

  it('a pending grant whose mark Apple never confirmed is dropped when another device id of the phone got the credits meanwhile', async () => {
    const a = randomUUID();
    apple.server.inject(/update_two_bits/, { status: 503, times: 1 });
    expect(await t().json(onboard(a, 'phone-two-ids'))).toMatchObject({ credits_remaining: 0 });
    const b = await t().json(onboard(randomUUID(), 'phone-two-ids'));
    expect(b).toMatchObject({ credits_remaining: 10, initial_grant_given: true });
    expect(await t().json(onboard(a, 'phone-two-ids'))).toMatchObject({ credits_remaining: 0, initial_grant_given: false });
    const pending = await t().db.query('SELECT count(*)::int AS n FROM device_grants WHERE grant_pending');
    expect(pending.rows[0].n).toBe(0);
  });
});

describe('guest onboarding under a burst (DeviceCheck fake)', () => {
  const apple = useFakeDeviceCheck();
  // The fake answers from this test process's event loop, which the 100 in-process requests keep
  // busy: on a loaded 2-core CI machine its answers can take seconds. This test is about one user
  // and one grant, not about latency, so it gives Apple more time than the timeout test above.
  const t = useTestApp(() => ({ ...apple.env(), APPLE_DEVICECHECK_TIMEOUT_MS: '30000' }));

  const onboard = (deviceId: string, device: string) =>
    t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(device) } });

  it('100 concurrent calls for one device create one user and one grant', { timeout: 180_000 }, async () => {
    const deviceId = randomUUID();
    const bodies = await Promise.all(Array.from({ length: 100 }, () => t().json(onboard(deviceId, 'phone-burst'))));
    expect(new Set(bodies.map((b) => b.user_id)).size).toBe(1);
    const grants = await t().db.query(
      "SELECT count(*)::int AS n FROM ledger_entries e JOIN users u ON u.id = e.user_id WHERE u.device_id = $1 AND e.kind = 'grant'",
      [deviceId],
    );
    expect(grants.rows[0].n).toBe(1);
  });

  it('20 concurrent onboardings from one phone under 20 device_ids give one grant', async () => {
    const bodies = await Promise.all(Array.from({ length: 20 }, () => t().json(onboard(randomUUID(), 'phone-farmer'))));
    expect(new Set(bodies.map((b) => b.user_id)).size).toBe(20);
    expect(bodies.filter((b) => b.initial_grant_given)).toHaveLength(1);
    const total = await t().db.query(
      "SELECT coalesce(sum(amount), 0)::int AS n FROM ledger_entries WHERE kind = 'grant' AND user_id = ANY($1::uuid[])",
      [bodies.map((b) => b.user_id)],
    );
    expect(total.rows[0].n).toBe(10);
  });
});

describe('guest onboarding with a per-address limit (the default is carrier-sized: rate-limits.paid-work.test.ts)', () => {
  const apple = useFakeDeviceCheck();
  const t = useTestApp(() => ({ ...apple.env(), RATE_LIMITS_ENABLED: 'true', RATE_LIMITS: 'device-check.ip=5/3600' }));

  it('a sixth onboarding from one address within the hour is 429 and creates nothing', async () => {
    const from = (deviceId: string) =>
      t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(`phone-${deviceId}`) }, remoteAddress: '192.0.2.77' });
    for (let i = 0; i < 5; i++) await t().json(from(randomUUID()));
    const deviceId = randomUUID();
    const refused = await t().json(from(deviceId), 429);
    expect(refused.error.code).toBe('ERR_4004');
    expect((await t().db.query('SELECT 1 FROM users WHERE device_id = $1', [deviceId])).rowCount).toBe(0);
    // Another address is not affected.
    await t().json(t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken('phone-other') }, remoteAddress: '192.0.2.78' }));
  });
});

describe('onboardings waiting on Apple, from many addresses at once', () => {
  const apple = useFakeDeviceCheck();
  // A small API pool, and a connection wait long enough that only a held pool can make it fail.
  const t = useTestApp(() => ({ ...apple.env(), DATABASE_POOL_MAX: '2', DATABASE_CONNECT_TIMEOUT_MS: '10000', APPLE_DEVICECHECK_TIMEOUT_MS: '60000' }));

  it('never hold the API pool: other requests are answered meanwhile, and every onboarding then completes', { timeout: 120_000 }, async () => {
    const gates = Array.from({ length: 4 }, () => apple.server.gate(/query_two_bits/));
    const onboardings = gates.map((_, i) =>
      t().post('/functions/v1/device-check', { body: { device_id: randomUUID(), device_token: deviceToken(`pool-${i}`) }, remoteAddress: `192.0.2.${120 + i}` }),
    );
    await Promise.all(gates.map((g) => g.reached));
    // Four per-address locks are held while Apple answers; the API's own two connections are free.
    const models = await t().get('/rest/v1/models?select=id&limit=1');
    expect(models.status, await models.clone().text()).toBe(200);
    for (const g of gates) g.release();
    for (const res of await Promise.all(onboardings)) expect(res.status, await res.clone().text()).toBe(200);
  });
});
