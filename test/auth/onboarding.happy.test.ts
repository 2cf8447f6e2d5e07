import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { deviceToken } from '../fakes/device-check.js';
import { useTestApp } from '../support/harness.js';

describe('guest onboarding (device-check) without DeviceCheck configured', () => {
  const t = useTestApp();

  it('creates a guest with 10 credits and a session the app can decode', async () => {
    const deviceId = randomUUID().toUpperCase();
    const res = await t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken('a') } });
    const body = await t().json(res);
    // docs/reference/ios-app.md §2.1: user_id String, credits_remaining Int, is_new Bool, tokens String? at the top level.
    expect(body).toMatchObject({ success: true, credits_remaining: 10, is_new: true, token_type: 'bearer' });
    expect(body.user_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof body.access_token).toBe('string');
    expect(body.access_token.split('.')).toHaveLength(3);
    expect(typeof body.refresh_token).toBe('string');
    const payload = JSON.parse(Buffer.from(body.access_token.split('.')[1], 'base64url').toString());
    expect(payload).toMatchObject({ sub: body.user_id, role: 'authenticated', aud: 'authenticated', is_anonymous: true });
    expect(typeof payload.exp).toBe('number');
  });

  it('gives an existing device its user back with a fresh session and no second grant', async () => {
    const first = await t().createGuest();
    const again = await t().json(
      t().post('/functions/v1/device-check', { body: { device_id: first.deviceId, device_token: deviceToken('x') } }),
    );
    expect(again.user_id).toBe(first.userId);
    expect(again.is_new).toBe(false);
    expect(again.credits_remaining).toBe(10);
    expect(again.refresh_token).not.toBe(first.refreshToken);
    const grants = await t().db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE user_id = $1 AND kind = 'grant'", [first.userId]);
    expect(grants.rows[0].n).toBe(1);
  });

  it('accepts an App Store appTransactionID as device_id (not only UUIDs)', async () => {
    const guest = await t().createGuest('2000000847061981');
    expect(guest.credits).toBe(10);
  });

  it('100 concurrent calls with one device_id create one user and one grant', { timeout: 180_000 }, async () => {
    const deviceId = randomUUID().toUpperCase();
    const responses = await Promise.all(
      Array.from({ length: 100 }, () =>
        t().post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken('same-phone') } }),
      ),
    );
    const bodies = await Promise.all(responses.map((r) => t().json(r)));
    expect(new Set(bodies.map((b) => b.user_id)).size).toBe(1);
    expect(bodies.filter((b) => b.is_new)).toHaveLength(1);
    const users = await t().db.query('SELECT id FROM users WHERE device_id = $1', [deviceId]);
    expect(users.rowCount).toBe(1);
    const grants = await t().db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE user_id = $1 AND kind = 'grant'", [
      users.rows[0].id,
    ]);
    expect(grants.rows[0].n).toBe(1);
    const acct = await t().db.query('SELECT balance FROM credit_accounts WHERE user_id = $1', [users.rows[0].id]);
    expect(acct.rows[0].balance).toBe(10);
  });
});
