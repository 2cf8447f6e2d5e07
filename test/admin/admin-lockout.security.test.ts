import { describe, expect, it } from 'vitest';
import { ADMIN_PASSWORD, createAdmin } from '../support/admin.js';
import { useTestApp } from '../support/harness.js';

/**
 * Issue 23 item 3: the admin sign-in lockout counts failures per /64 for IPv6 (one subscriber holds
 * a whole /64, 2^64 addresses to guess from), and each email has a failure budget of its own that
 * no number of addresses gets around.
 */

const t = useTestApp({ ADMIN_LOGIN_MAX_FAILURES: '3', ADMIN_LOGIN_MAX_FAILURES_PER_EMAIL: '6' });

const signIn = (email: string, password: string, remoteAddress: string) => t().post('/admin/api/login', { body: { email, password }, remoteAddress });

describe('admin sign-in lockout', () => {
  it('counts an IPv6 client per /64: a new address in the same /64 is still locked out, another /64 is not', async () => {
    const admin = await createAdmin(t(), { signIn: false });
    for (let i = 1; i <= 3; i++) {
      const res = await signIn(admin.email, `guess ${i}`, `2001:db8:7:8::${i}`);
      expect(res.status, await res.clone().text()).toBe(401);
    }
    const locked = await signIn(admin.email, ADMIN_PASSWORD, '2001:db8:7:8:ffff:ffff:ffff:fffe');
    const body = await t().json(locked, 429);
    expect(body.error).toMatchObject({ code: 'ERR_4004', details: { scope: 'address' } });
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    await t().json(signIn(admin.email, ADMIN_PASSWORD, '2001:db8:7:9::1'));
  });

  it('locks an email after ADMIN_LOGIN_MAX_FAILURES_PER_EMAIL failures from any number of addresses; other emails are not locked', async () => {
    const [admin, colleague] = [await createAdmin(t(), { signIn: false }), await createAdmin(t(), { signIn: false })];
    for (let i = 1; i <= 6; i++) {
      const res = await signIn(admin.email, `guess ${i}`, `198.51.100.${i}`);
      expect(res.status, await res.clone().text()).toBe(401);
    }
    const locked = await signIn(admin.email, ADMIN_PASSWORD, '203.0.113.200');
    const body = await t().json(locked, 429);
    expect(body.error).toMatchObject({ code: 'ERR_4004', details: { scope: 'email' } });
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    await t().json(signIn(colleague.email, ADMIN_PASSWORD, '198.51.100.1'));
  });
});
