import { createHash, generateKeyPairSync, randomBytes, type KeyObject } from 'node:crypto';
import { SignJWT, exportJWK } from 'jose';
import { afterAll, beforeAll } from 'vitest';
import { FakeHttpServer, type FakeResponse } from './http.js';

/**
 * A faithful local fake of Sign in with Apple (docs/reference/apple.md §5): a JWKS endpoint
 * (GET /auth/keys) with rotating RS256 keys named by kid, and identity tokens with Apple's claims —
 * iss https://appleid.apple.com, aud = bundle id, sub, email (often a private relay address),
 * email_verified / is_private_email as the strings Apple sometimes sends, nonce (the SHA-256 hex of
 * the client's raw nonce) and nonce_supported.
 */

interface SigningKey {
  kid: string;
  privateKey: KeyObject;
  publicKey: KeyObject;
}

export interface IdentityClaims {
  sub?: string;
  aud?: string;
  iss?: string;
  email?: string;
  /** The raw nonce; the token carries its SHA-256 hex, as the app's nonce convention does. */
  nonce?: string;
  expiresInSeconds?: number;
}

export class FakeAppleId {
  readonly server: FakeHttpServer;
  private keys: SigningKey[] = [];

  constructor(readonly bundleId: string) {
    this.rotate();
    this.server = new FakeHttpServer(() => this.jwks());
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  get jwksUrl(): string {
    return `${this.server.url}/auth/keys`;
  }

  env(): Record<string, string> {
    return { APPLE_SIGN_IN_AUDIENCES: this.bundleId, APPLE_ID_JWKS_URL: this.jwksUrl, APPLE_ID_TIMEOUT_MS: '5000', APPLE_ID_JWKS_COOLDOWN_MS: '0' };
  }

  /** Apple publishes a new key; tokens are signed with it from now on (the old one stays listed). */
  rotate(): void {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    this.keys.unshift({ kid: randomBytes(5).toString('base64url'), privateKey, publicKey });
  }

  private async jwks(): Promise<FakeResponse> {
    const keys = await Promise.all(
      this.keys.map(async (k) => ({ ...(await exportJWK(k.publicKey)), kid: k.kid, use: 'sig', alg: 'RS256' })),
    );
    return { status: 200, body: JSON.stringify({ keys }), headers: { 'content-type': 'application/json' } };
  }

  /** Any claims, signed like Apple's JWTs (RS256, current kid, iss, aud = the app, 10 minutes). */
  async sign(claims: Record<string, unknown>, signWith?: KeyObject): Promise<string> {
    const key = this.keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', kid: key.kid })
      .setIssuer('https://appleid.apple.com')
      .setAudience(this.bundleId)
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(signWith ?? key.privateKey);
  }

  /** An identity token as the native sheet returns it. */
  async identityToken(claims: IdentityClaims = {}, opts: { signWith?: KeyObject; kid?: string } = {}): Promise<string> {
    const key = this.keys[0]!;
    const now = Math.floor(Date.now() / 1000);
    const sub = claims.sub ?? appleSub();
    return new SignJWT({
      email: claims.email ?? `${sub.slice(0, 10)}@privaterelay.appleid.com`,
      email_verified: 'true',
      is_private_email: 'true',
      auth_time: now,
      // Apple's hash of the authorization code issued with this token: different for every sign-in,
      // so two tokens for one user in the same second differ (as Apple's do).
      c_hash: randomBytes(16).toString('base64url'),
      nonce_supported: true,
      ...(claims.nonce ? { nonce: createHash('sha256').update(claims.nonce).digest('hex') } : {}),
    })
      .setProtectedHeader({ alg: 'RS256', kid: opts.kid ?? key.kid })
      .setIssuer(claims.iss ?? 'https://appleid.apple.com')
      .setAudience(claims.aud ?? this.bundleId)
      .setSubject(sub)
      .setIssuedAt(now)
      .setExpirationTime(now + (claims.expiresInSeconds ?? 600))
      .sign(opts.signWith ?? key.privateKey);
  }
}

/** A server-to-server notification JWT, as Apple posts it (form field `payload`). */
export async function signServerEvent(
  fake: FakeAppleId,
  event: { type: string; sub: string; email?: string },
  opts: { signWith?: KeyObject } = {},
): Promise<string> {
  return fake.sign(
    { jti: randomBytes(8).toString('hex'), events: JSON.stringify({ ...event, event_time: Date.now() }) },
    opts.signWith,
  );
}

/** Apple's sub format: "001234.0123456789abcdef0123456789abcdef.1234". */
export function appleSub(): string {
  return `00${randomBytes(2).readUInt16BE(0) % 10000}.${randomBytes(16).toString('hex')}.${1000 + (randomBytes(2).readUInt16BE(0) % 9000)}`;
}

/** The Sign in with Apple fake for a test file: started before its tests, stopped after them. */
export function useFakeAppleId(bundleId = 'com.rendioai.app'): FakeAppleId {
  const apple = new FakeAppleId(bundleId);
  beforeAll(async () => {
    await apple.start();
  });
  afterAll(async () => {
    await apple.server.stop();
  });
  return apple;
}
