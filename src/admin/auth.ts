import { createHash, randomBytes } from 'node:crypto';
import * as OTPAuth from 'otpauth';
import { hashToken, secretsEqual } from '../auth/tokens.js';
import type { Queryable } from '../db/pool.js';
import { AdminSignInFailed, AdminSignInLocked } from './errors.js';
import { hashPassword, verifyPassword } from './passwords.js';
import * as adminDb from './queries/admins.js';

/**
 * Admin identities: email + password (+ TOTP when the admin has a secret), never app users.
 * A sign-in opens a console session (cookie) or an API token (bearer); both are random tokens
 * stored as SHA-256 in admin_sessions, with an expiry, revocable. Failed sign-ins are counted in
 * the database (admin_login_attempts) per email and client address (an IPv6 /64, as the rate limits
 * key it), and per email alone: either over its limit locks sign-in. The second budget is what holds
 * against guesses spread over many addresses; its price is that they can lock an admin out until
 * the window ends (ADMIN_ALLOWED_CIDRS or ADMIN_PORT keep strangers from trying at all).
 */

/** Admin tokens carry a prefix, so a route can tell an app's token (403) from a stale admin one (401). */
export const ADMIN_TOKEN_PREFIX = 'rdadm_';

export interface AdminIdentity {
  adminId: string;
  email: string;
  sessionId: string;
  /** The raw session token (console: the CSRF token is derived from it). */
  token: string;
}

export interface AdminAuthOptions {
  loginMaxFailures: number;
  loginMaxFailuresPerEmail: number;
  loginWindowSeconds: number;
  sessionTtlHours: number;
}

export const normaliseEmail = (email: string) => email.trim().toLowerCase();

export function totpFor(secretBase32: string, label = 'admin'): OTPAuth.TOTP {
  return new OTPAuth.TOTP({ issuer: 'Rendio admin', label, secret: OTPAuth.Secret.fromBase32(secretBase32), digits: 6, period: 30 });
}

export class AdminAuthService {
  private dummyHash: Promise<string> | undefined;

  constructor(
    private readonly db: Queryable,
    private readonly opts: AdminAuthOptions,
  ) {}

  /** Checks the credentials (after counting the attempt) and opens a session of the given kind. */
  async signIn(
    input: { email: string; password: string; totp?: string; addressKey: string },
    kind: adminDb.AdminSessionKind,
  ): Promise<{ token: string; expiresAt: string; adminId: string; email: string }> {
    const email = normaliseEmail(input.email);
    const attempt = await adminDb.recordLoginAttempt(this.db, email, input.addressKey, this.opts.loginWindowSeconds);
    if (attempt.fromAddress.failures > this.opts.loginMaxFailures) throw new AdminSignInLocked(attempt.fromAddress.retryAfter, 'address');
    if (attempt.forEmail.failures > this.opts.loginMaxFailuresPerEmail) throw new AdminSignInLocked(attempt.forEmail.retryAfter, 'email');
    const admin = await adminDb.findAdminByEmail(this.db, email);
    // Unknown emails cost a hash too, so timing does not reveal which emails are admins.
    const passwordOk = await verifyPassword(input.password, admin?.password_hash ?? (await (this.dummyHash ??= hashPassword(randomBytes(16).toString('hex')))));
    if (!admin || !passwordOk || admin.disabled_at) throw new AdminSignInFailed();
    if (admin.totp_secret) {
      const code = (input.totp ?? '').replace(/\s+/g, '');
      const totp = totpFor(admin.totp_secret);
      const delta = /^\d{6}$/.test(code) ? totp.validate({ token: code, window: 1 }) : null;
      if (delta === null || !(await adminDb.useTotpStep(this.db, admin.id, totp.counter() + delta))) throw new AdminSignInFailed();
    }
    await adminDb.markLoginSucceeded(this.db, attempt.id, email, input.addressKey);
    const token = ADMIN_TOKEN_PREFIX + randomBytes(32).toString('base64url');
    const session = await adminDb.insertAdminSession(this.db, { adminId: admin.id, kind, tokenHash: hashToken(token), ttlHours: this.opts.sessionTtlHours });
    return { token, expiresAt: session.expires_at, adminId: admin.id, email: admin.email };
  }

  /** The admin behind a live token of that kind, or undefined. */
  async authenticate(token: string, kind: adminDb.AdminSessionKind): Promise<AdminIdentity | undefined> {
    if (!token.startsWith(ADMIN_TOKEN_PREFIX)) return undefined;
    const s = await adminDb.findAdminSession(this.db, hashToken(token), kind);
    return s ? { adminId: s.admin_id, email: s.email, sessionId: s.session_id, token } : undefined;
  }

  signOut(sessionId: string): Promise<void> {
    return adminDb.revokeAdminSession(this.db, sessionId);
  }
}

/**
 * The console's CSRF token: derived from the session token (which only the browser's HttpOnly
 * cookie holds), so a page of another origin can neither read nor guess it. Every console form
 * carries it; SameSite=Strict on the cookie is the second layer.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHash('sha256').update(`csrf:${sessionToken}`).digest('base64url');
}

export function csrfTokenValid(sessionToken: string, presented: string | undefined): boolean {
  return presented !== undefined && secretsEqual(presented, csrfTokenFor(sessionToken));
}
