import { randomUUID } from 'node:crypto';
import { beforeEach, describe, expect, it } from 'vitest';
import { useFakeAppleId, appleSub } from '../fakes/apple-id.js';
import { useFakeDeviceCheck, deviceToken } from '../fakes/device-check.js';
import { useTestApp } from '../support/harness.js';

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
  const available = async (token: string): Promise<number> =>
    (await t().json(t().get('/functions/v1/get-user-credits', { token }))).credits_remaining;

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
    // The pending grant landed once, on the guest it was owed to, and moved with its merge into the account.
    const grants = await t().db.query("SELECT user_id, amount FROM ledger_entries WHERE kind = 'grant' AND user_id = ANY($1::uuid[])", [
      [existing.user.id, first.user_id, again.user_id],
    ]);
    expect(grants.rows).toEqual([{ user_id: first.user_id, amount: 10 }]);
    expect(await available(existing.access_token)).toBe(10);
    await t().json(onboard(deviceId, device));
    expect(await available(existing.access_token)).toBe(10);
    expect((await t().db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE kind = 'grant' AND user_id = $1", [first.user_id])).rows[0].n).toBe(1);
  });

  it("a pending grant lands after its guest merged into an account that already holds another device's grant (one grant per device, not per owner)", async () => {
    // Phone 1: its guest gets the grant and becomes the Apple account (the account now holds a grant).
    const sub = appleSub();
    const phone1 = await t().json(onboard(randomUUID().toUpperCase(), `phone-${randomUUID()}`));
    expect(phone1).toMatchObject({ credits_remaining: 10, initial_grant_given: true });
    const account = await t().json(
      t().post('/auth/v1/token?grant_type=id_token', { token: phone1.access_token, body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }),
    );
    expect(account.user.id).toBe(phone1.user_id);

    // Phone 2: Apple fails the bit mark, so its guest's grant is pending; the guest merges into the same account.
    const device2 = `phone-${randomUUID()}`;
    const deviceId2 = randomUUID().toUpperCase();
    deviceCheck.server.inject(/update_two_bits/, { status: 503, times: 1 });
    const phone2 = await t().json(onboard(deviceId2, device2));
    expect(phone2).toMatchObject({ credits_remaining: 0, initial_grant_given: false });
    const merged = await t().json(
      t().post('/auth/v1/token?grant_type=id_token', { token: phone2.access_token, body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }),
    );
    expect(merged.user.id).toBe(account.user.id);

    // Phone 2 onboards again: its device's grant completes, onto the account, once.
    await t().json(onboard(deviceId2, device2));
    expect(deviceCheck.bits.get(device2)?.bit0).toBe(true);
    expect(await available(merged.access_token)).toBe(20);
    const owed = await t().db.query("SELECT granted, grant_pending FROM device_grants WHERE device_hash = encode(sha256(convert_to($1::text, 'UTF8')), 'hex')", [deviceId2]);
    expect(owed.rows).toEqual([{ granted: true, grant_pending: false }]);
    await t().json(onboard(deviceId2, device2));
    expect(await available(merged.access_token)).toBe(20);
    const grants = await t().db.query("SELECT user_id FROM ledger_entries WHERE kind = 'grant' AND user_id = ANY($1::uuid[]) ORDER BY id", [[phone1.user_id, phone2.user_id]]);
    expect(grants.rows.map((r) => r.user_id)).toEqual([phone1.user_id, phone2.user_id]);
  });
});
