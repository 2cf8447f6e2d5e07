import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { useFakeAppleId, appleSub } from './fakes/apple-id.js';
import { useFakeDeviceCheck, deviceToken } from './fakes/device-check.js';
import { useTestApp } from './harness.js';

/**
 * Money integrity regression: the free grant is once per physical device, also when the
 * DeviceCheck bit could not be set (the grant waits for it: pending) and the guest then signed
 * in with Apple, which released its device_id.
 */

const apple = useFakeAppleId();
const deviceCheck = useFakeDeviceCheck();

describe('money integrity: the free grant after a failed DeviceCheck mark and a merge', () => {
  const t = useTestApp(() => ({ ...deviceCheck.env(), ...apple.env() }));
  beforeEach(() => deviceCheck.server.clearFaults());

  const onboard = (deviceId: string, device: string) =>
    t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(device) } });

  it('a device whose bit was never set (Apple failed) gets its one grant, on the account its guest merged into, and no second one', async () => {
    const sub = appleSub();
    const existing = await t().json(t().post('/auth/v1/token?grant_type=id_token', { body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }));

    const device = `phone-${randomUUID()}`;
    const deviceId = randomUUID().toUpperCase();
    deviceCheck.server.inject(/update_two_bits/, { status: 503, times: 1 });
    const first = await t().json(onboard(deviceId, device));
    expect(first).toMatchObject({ is_new: true, credits_remaining: 0, initial_grant_given: false });
    expect(deviceCheck.bits.get(device)).toBeUndefined(); // the mark, and so the grant, are pending

    const merged = await t().json(
      t().post('/auth/v1/token?grant_type=id_token', {
        token: first.access_token,
        body: { provider: 'apple', id_token: await apple.identityToken({ sub }) },
      }),
    );
    expect(merged.user.id).toBe(existing.user.id);

    // The same phone, same StableID, asks again (e.g. after signing out): a new guest is fine, free credits are not.
    const again = await t().json(onboard(deviceId, device));
    expect({ credits_remaining: again.credits_remaining, initial_grant_given: again.initial_grant_given, bit0: deviceCheck.bits.get(device)?.bit0 ?? false }).toEqual({
      credits_remaining: 0,
      initial_grant_given: false,
      bit0: true,
    });
    // The pending grant landed once, on the account the first guest became part of.
    const grants = await t().db.query("SELECT user_id, amount FROM ledger_entries WHERE kind = 'grant' AND user_id = ANY($1::uuid[])", [
      [existing.user.id, first.user_id, again.user_id],
    ]);
    expect(grants.rows).toEqual([{ user_id: existing.user.id, amount: 10 }]);
    await t().json(onboard(deviceId, device));
    expect((await t().db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE kind = 'grant' AND user_id = $1", [existing.user.id])).rows[0].n).toBe(1);
  });
});
