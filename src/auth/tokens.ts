import { createHash, randomBytes, timingSafeEqual, webcrypto } from 'node:crypto';
import { SignJWT, jwtVerify, errors as joseErrors } from 'jose';

/**
 * Access tokens: HS256 JWTs with Supabase-shaped claims (sub, role, aud, is_anonymous, exp,
 * session_id), so supabase-swift and PostgREST-style consumers read them unchanged.
 * Refresh tokens: opaque random strings; only their SHA-256 is stored.
 */

export interface AccessClaims {
  sub: string;
  sessionId: string;
  isAnonymous: boolean;
}

export interface SignedAccessToken {
  token: string;
  expiresIn: number;
  expiresAt: number; // unix seconds
}

export class InvalidAccessToken extends Error {
  /** Ours but past its expiry (the client should refresh), as opposed to not one of our tokens at all. */
  constructor(
    message: string,
    readonly expired = false,
  ) {
    super(message);
  }
}

export const ACCESS_TOKEN_AUDIENCE = 'authenticated';

/** Access tokens whose signature a process remembers having verified (a few MB at most). */
const VERIFIED_TOKENS_KEPT = 10_000;

export class AccessTokens {
  // Imported once: jose given raw bytes re-imports the HMAC key through WebCrypto on every call.
  private readonly key: Promise<webcrypto.CryptoKey>;
  private readonly previousKey: Promise<webcrypto.CryptoKey> | undefined;
  /**
   * Tokens this process has verified, with their claims and expiry: the app polls get-video-status
   * every few seconds with the same token, and WebCrypto's HMAC was a fifth of that request's CPU.
   * Only the signature work is skipped: the expiry is checked on every use, by verify's clock, and
   * the session on every request, as before. Keyed by the whole token; the oldest entry goes first.
   */
  private readonly verified = new Map<string, { claims: AccessClaims; exp: number }>();

  /**
   * `previousSecret` (JWT_SECRET_PREVIOUS, during a rotation) only verifies: tokens it signed keep
   * working until they expire, so a rotation logs nobody out; every new token is signed with `secret`.
   */
  constructor(
    secret: string,
    private readonly issuer: string,
    private readonly ttlSeconds: number,
    private readonly now: () => number = Date.now,
    previousSecret?: string,
  ) {
    this.key = hmacKey(secret);
    this.previousKey = previousSecret === undefined ? undefined : hmacKey(previousSecret);
  }

  async sign(claims: AccessClaims & { email?: string | null }): Promise<SignedAccessToken> {
    const iat = Math.floor(this.now() / 1000);
    const exp = iat + this.ttlSeconds;
    const token = await new SignJWT({
      role: 'authenticated',
      is_anonymous: claims.isAnonymous,
      session_id: claims.sessionId,
      ...(claims.email ? { email: claims.email } : {}),
    })
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(claims.sub)
      .setIssuer(this.issuer)
      .setAudience(ACCESS_TOKEN_AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(exp)
      .sign(await this.key);
    return { token, expiresIn: this.ttlSeconds, expiresAt: exp };
  }

  /**
   * Whether a token verified earlier, whose exp claim (seconds) this is, has expired since: the
   * same test as verify's, by the same clock, without the signature work (a watcher re-checks it on
   * every change it is sent).
   */
  hasExpired(exp: number): boolean {
    return Math.floor(this.now() / 1000) >= exp;
  }

  /** Verifies signature (constant time, inside WebCrypto), algorithm, issuer, audience and expiry. */
  async verify(token: string): Promise<AccessClaims> {
    const known = this.verified.get(token);
    if (known) {
      if (!this.hasExpired(known.exp)) return known.claims;
      this.verified.delete(token);
      throw new InvalidAccessToken('token expired', true);
    }
    try {
      const { payload } = await this.verifiedWithCurrentOrPreviousKey(token);
      if (typeof payload.sub !== 'string' || typeof payload.session_id !== 'string') {
        throw new InvalidAccessToken('token lacks sub or session_id');
      }
      const claims = Object.freeze({ sub: payload.sub, sessionId: payload.session_id, isAnonymous: payload.is_anonymous === true });
      if (typeof payload.exp === 'number') {
        if (this.verified.size >= VERIFIED_TOKENS_KEPT) this.verified.delete(this.verified.keys().next().value!);
        this.verified.set(token, { claims, exp: payload.exp });
      }
      return claims;
    } catch (err) {
      if (err instanceof InvalidAccessToken) throw err;
      if (err instanceof joseErrors.JWTExpired) throw new InvalidAccessToken('token expired', true);
      throw new InvalidAccessToken('token invalid');
    }
  }

  /**
   * jose checks the signature before any claim, so only a signature that fails with the current key
   * is tried with the previous one: an expired or foreign-issuer token fails the same either way.
   */
  private async verifiedWithCurrentOrPreviousKey(token: string) {
    const options = { algorithms: ['HS256'], issuer: this.issuer, audience: ACCESS_TOKEN_AUDIENCE, currentDate: new Date(this.now()) };
    try {
      return await jwtVerify(token, await this.key, options);
    } catch (err) {
      if (!(err instanceof joseErrors.JWSSignatureVerificationFailed) || !this.previousKey) throw err;
      return await jwtVerify(token, await this.previousKey, options);
    }
  }
}

/** An HS256 key for jose, imported once per secret. */
export function hmacKey(secret: string | Uint8Array): Promise<webcrypto.CryptoKey> {
  const raw = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
  return webcrypto.subtle.importKey('raw', raw, { name: 'HMAC', hash: 'SHA-256' }, false, ['sign', 'verify']);
}

export function newRefreshToken(): string {
  return randomBytes(32).toString('base64url');
}

export function hashToken(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}

/** Constant-time comparison of two secrets of any length (hashing first equalises lengths). */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(hashToken(a), hashToken(b));
}
