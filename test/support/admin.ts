import { randomUUID } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { hashPassword } from '../../src/admin/passwords.js';
import { insertAdmin } from '../../src/admin/queries/admins.js';
import type { TestApp } from './harness.js';

/** Admins for tests: made as `npm run admin:create` makes them, signed in through the API. */

export const ADMIN_PASSWORD = 'correct horse battery staple';

export interface TestAdmin {
  id: string;
  email: string;
  token: string;
  totpSecret: string | null;
  /** The one-time code it signed in with (TOTP admins). */
  signedInWith?: string;
}

let hash: Promise<string> | undefined;

export async function createAdmin(t: TestApp, opts: { email?: string; totp?: boolean; signIn?: boolean } = {}): Promise<TestAdmin> {
  const email = opts.email ?? `support-${randomUUID().slice(0, 8)}@example.com`;
  const totpSecret = opts.totp ? new OTPAuth.Secret({ size: 20 }).base32 : null;
  // One scrypt hash for the file: every test admin has the same password.
  const row = await insertAdmin(t.db, email, await (hash ??= hashPassword(ADMIN_PASSWORD)), totpSecret);
  if (!row) throw new Error(`admin ${email} exists`);
  if (opts.signIn === false) return { id: row.id, email, token: '', totpSecret };
  const totp = totpSecret ? totpCode(totpSecret) : undefined;
  const body = await t.json(t.post('/admin/api/login', { body: { email, password: ADMIN_PASSWORD, totp } }));
  return { id: row.id, email, token: body.token, totpSecret, signedInWith: totp };
}

export const totpCode = (secret: string) => new OTPAuth.TOTP({ secret: OTPAuth.Secret.fromBase32(secret) }).generate();

/** Signs in through the console's form (nonce, then password) and returns the session cookie the pages take. */
export async function consoleCookie(t: TestApp, admin: TestAdmin): Promise<string> {
  const loginPage = await t.get('/admin/login');
  const nonceCookie = loginPage.headers.get('set-cookie')!.split(';')[0]!;
  const nonce = /name="_login" value="([^"]+)"/.exec(await loginPage.text())![1]!;
  const signIn = await t.request('POST', '/admin/login', {
    rawBody: new URLSearchParams({ _login: nonce, email: admin.email, password: ADMIN_PASSWORD }).toString(),
    headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: nonceCookie },
  });
  return signIn.headers.getSetCookie().find((c) => c.startsWith('rendio_admin='))!.split(';')[0]!;
}

/**
 * Every admin route the app's router holds (the admin API, the seed's aliases, the console), once
 * each, as registered (`:id` left in): tests that must cover every admin route read them from here,
 * so a new one is covered without a list to update.
 */
export function adminRoutesOf(t: TestApp): { method: string; path: string }[] {
  const seen = new Set<string>();
  const routes: { method: string; path: string }[] = [];
  for (const r of t.app.routes) {
    const isAdmin = r.path === '/admin' || r.path.startsWith('/admin/') || r.path.startsWith('/functions/v1/admin-');
    if (!isAdmin || r.method === 'ALL' || r.path.includes('*')) continue;
    const key = `${r.method} ${r.path}`;
    if (seen.has(key)) continue;
    seen.add(key);
    routes.push({ method: r.method, path: r.path });
  }
  return routes;
}
