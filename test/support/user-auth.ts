import { randomUUID } from 'node:crypto';
import { SignJWT } from 'jose';
import { expect, it } from 'vitest';
import { TEST_JWT_SECRET, type TestApp } from './harness.js';

/**
 * The security cases every authenticated route shares (STYLE.md): no token, malformed, forged,
 * expired, the anon key in secure mode, another user's id, a revoked session, a banned user.
 * Each route's security test calls this with how to call it.
 */

export interface RouteCall {
  method: 'GET' | 'POST' | 'PATCH';
  /** Path for a user (and what it sends); userId is the id named in the request, if any. */
  path: (userId: string) => string;
  body?: (userId: string) => unknown;
}

export async function signWith(secret: string, claims: Record<string, unknown>, expSecondsFromNow: number) {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ role: 'authenticated', ...claims })
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuer('rendio')
    .setAudience('authenticated')
    .setIssuedAt(now - 10)
    .setExpirationTime(now + expSecondsFromNow)
    .sign(new TextEncoder().encode(secret));
}

export function itEnforcesUserAuth(t: () => TestApp, call: RouteCall) {
  const send = (token: string | null, userId: string) =>
    t().request(call.method, call.path(userId), { token, body: call.body?.(userId) });
  const code = async (res: Response) => ((await res.json()) as { error: { code: string } }).error.code;

  it('rejects a request without a token (401 ERR_4005)', async () => {
    const g = await t().createGuest();
    const res = await send(null, g.userId);
    expect(res.status).toBe(401);
    expect(await code(res)).toBe('ERR_4005');
  });

  it('rejects a malformed or forged token (401)', async () => {
    const g = await t().createGuest();
    for (const token of ['garbage', g.accessToken.slice(0, -4) + 'AAAA', await signWith('another-secret-'.repeat(4), { sub: g.userId, session_id: randomUUID() }, 600)]) {
      const res = await send(token, g.userId);
      expect(res.status, token).toBe(401);
    }
  });

  it('rejects an expired token (401)', async () => {
    const g = await t().createGuest();
    const { rows } = await t().db.query('SELECT id FROM auth_sessions WHERE user_id = $1', [g.userId]);
    const expired = await signWith(TEST_JWT_SECRET, { sub: g.userId, session_id: rows[0].id }, -60);
    expect((await send(expired, g.userId)).status).toBe(401);
  });

  it('rejects the anon key as a user token in secure mode (401)', async () => {
    const g = await t().createGuest();
    const anon = t().services.config.anonKey ?? 'no-anon-key-configured';
    expect((await send(anon, g.userId)).status).toBe(401);
  });

  it("refuses to act on another user's id (403 ERR_4006)", async () => {
    const [me, other] = [await t().createGuest(), await t().createGuest()];
    const res = await send(me.accessToken, other.userId);
    if (call.path(me.userId) === call.path(other.userId) && !call.body) return; // route names no user
    expect(res.status).toBe(403);
    expect(await code(res)).toBe('ERR_4006');
  });

  it('rejects a token whose session was ended (401)', async () => {
    const g = await t().createGuest();
    await t().db.query("UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'test' WHERE user_id = $1", [g.userId]);
    expect((await send(g.accessToken, g.userId)).status).toBe(401);
  });

  it('rejects a banned user (403 ERR_4014)', async () => {
    const g = await t().createGuest();
    await t().db.query('UPDATE users SET banned_at = now() WHERE id = $1', [g.userId]);
    const res = await send(g.accessToken, g.userId);
    expect(res.status).toBe(403);
    expect(await code(res)).toBe('ERR_4014');
  });
}
