import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { useFakeAppleId, appleSub } from './fakes/apple-id.js';
import { useFakeDeviceCheck, deviceToken } from './fakes/device-check.js';
import { useTestApp } from './harness.js';

/**
 * Money integrity regression: the free grant is once per physical device, also when the
 * DeviceCheck bit could not be set after the grant (the mark is owed) and the guest then signed
 * in with Apple, which released its device_id.
 */

const apple = useFakeAppleId();
const deviceCheck = useFakeDeviceCheck();

describe('money integrity: the free grant after a failed DeviceCheck mark and a merge', () => {
  const t = useTestApp(() => ({ ...deviceCheck.env(), ...apple.env() }));
  beforeEach(() => deviceCheck.server.clearFaults());

  const onboard = (deviceId: string, device: string) =>
    t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(device) } });

  it('a device whose bit was never set (Apple failed) gets no second grant after its guest merged into an existing Apple account, and the owed bit gets set', async () => {
    const sub = appleSub();
    const existing = await t().json(t().post('/auth/v1/token?grant_type=id_token', { body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }));

    const device = `phone-${randomUUID()}`;
    const deviceId = randomUUID().toUpperCase();
    deviceCheck.server.inject(/update_two_bits/, { status: 503, times: 1 });
    const first = await t().json(onboard(deviceId, device));
    expect(first).toMatchObject({ is_new: true, credits_remaining: 10, initial_grant_given: true });
    expect(deviceCheck.bits.get(device)).toBeUndefined(); // the mark is owed

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
  });
});
