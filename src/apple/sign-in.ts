import { createHash } from 'node:crypto';
import { secretsEqual } from '../auth/tokens.js';
import { createRemoteJWKSet, errors as joseErrors, jwtVerify, type JWTPayload } from 'jose';
import { DomainError, UpstreamUnavailable } from '../errors/domain-error.js';

/**
 * Sign in with Apple identity tokens (docs/reference/apple.md §5): RS256 JWTs signed with Apple's
 * rotating keys, fetched from the JWKS and cached by jose (refetched when an unknown kid appears).
 */

export const APPLE_ISSUER = 'https://appleid.apple.com';

export interface SignInWithAppleConfig {
  /** Accepted `aud` values: the app's bundle id (native) and any Services IDs (web). */
  audiences: string[];
  jwksUrl: string;
  timeoutMs: number;
  jwksCooldownMs: number;
}

export interface AppleIdentity {
  sub: string;
  email: string | null;
  emailVerified: boolean;
  isPrivateEmail: boolean;
  /** The verified token itself (SHA-256 and expiry), so it can be used once only. */
  token?: { sha256: Buffer; expiresAt: Date };
}

/** The identity token is not Apple's, not for us, expired, or its nonce does not match. */
export class IdentityTokenRejected extends DomainError {
  readonly code = 'ERR_4005';
  override get details() {
    return { reason: `Apple identity token: ${this.message}` };
  }
}
/** Apple's keys could not be fetched. */
export class AppleKeysUnavailable extends UpstreamUnavailable {
  protected readonly service = 'sign_in_with_apple';
}

const sha256 = (v: string) => createHash('sha256').update(v).digest();
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

// Apple sends these as booleans or as the strings "true"/"false".
const truthy = (v: unknown) => v === true || v === 'true';

/** A Sign in with Apple server-to-server event (its `events` claim is a JSON string). */
export interface AppleServerEvent {
  type: 'email-disabled' | 'email-enabled' | 'consent-revoked' | 'account-delete' | string;
  sub: string;
  eventTime: number | null;
}

export class AppleIdentityVerifier {
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly cfg: SignInWithAppleConfig) {
    this.jwks = createRemoteJWKSet(new URL(cfg.jwksUrl), { timeoutDuration: cfg.timeoutMs, cooldownDuration: cfg.jwksCooldownMs, cacheMaxAge: 3_600_000 });
  }

  /**
   * Verifies signature, issuer, audience and expiry, and the nonce the way GoTrue does: the client
   * sends the raw nonce, the token carries its SHA-256 hex, and the two are compared in constant
   * time. Never the raw nonce against the claim: anyone holding a token could copy its claim into
   * the request. A token that carries a nonce needs one in the request, and vice versa. (That the
   * token is used only once is the caller's check: it needs the database, see AppleAccountService.)
   */
  async verify(idToken: string, nonce?: string): Promise<AppleIdentity> {
    // Only the canonical compact form: base64 decoders forgive padding and whitespace, so one token
    // could otherwise be spelled many ways and slip past the single-use check.
    if (!COMPACT_JWS.test(idToken)) throw new IdentityTokenRejected('not a compact JWS');
    const payload = await this.verifiedClaims(idToken);
    const tokenNonce = typeof payload.nonce === 'string' ? payload.nonce : undefined;
    if (nonce !== undefined || tokenNonce !== undefined) {
      if (nonce === undefined || tokenNonce === undefined) throw new IdentityTokenRejected('nonce: the request and the token must both carry one');
      if (!secretsEqual(sha256(nonce).toString('hex'), tokenNonce.toLowerCase())) throw new IdentityTokenRejected('nonce mismatch');
    }
    if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw new IdentityTokenRejected('no subject');
    if (typeof payload.exp !== 'number') throw new IdentityTokenRejected('no expiry');
    return {
      sub: payload.sub,
      email: typeof payload.email === 'string' ? payload.email : null,
      emailVerified: truthy(payload.email_verified),
      isPrivateEmail: truthy(payload.is_private_email),
      // The signed part identifies the token: changing a character of it breaks the signature.
      token: { sha256: sha256(idToken.slice(0, idToken.lastIndexOf('.'))), expiresAt: new Date(payload.exp * 1000) },
    };
  }

  /** Verifies a server-to-server notification JWT (same keys, issuer and audience as identity tokens). */
  async serverEvent(jwt: string): Promise<AppleServerEvent> {
    const payload = await this.verifiedClaims(jwt);
    let events: unknown = payload.events;
    try {
      if (typeof events === 'string') events = JSON.parse(events);
    } catch {
      throw new IdentityTokenRejected('events is not JSON');
    }
    const e = events as { type?: unknown; sub?: unknown; event_time?: unknown } | undefined;
    if (!e || typeof e.type !== 'string' || typeof e.sub !== 'string') throw new IdentityTokenRejected('events lacks type or sub');
    return { type: e.type, sub: e.sub, eventTime: typeof e.event_time === 'number' ? e.event_time : null };
  }

  private async verifiedClaims(jwt: string): Promise<JWTPayload> {
    try {
      return (await jwtVerify(jwt, this.jwks, { issuer: APPLE_ISSUER, audience: this.cfg.audiences, algorithms: ['RS256'] })).payload;
    } catch (err) {
      // Network failures, timeouts and a JWKS endpoint answering garbage are Apple's trouble, not the user's.
      const keysUnavailable = !(err instanceof joseErrors.JOSEError) || err instanceof joseErrors.JWKSTimeout || err.code === 'ERR_JOSE_GENERIC';
      if (keysUnavailable) throw new AppleKeysUnavailable(err instanceof Error ? err.message : String(err));
      throw new IdentityTokenRejected(err.message);
    }
  }
}
