import { describe, expect, it } from 'vitest';
import { AccessTokens, InvalidAccessToken } from '../../src/auth/tokens.js';

/**
 * Access tokens: a token's signature is verified once per process (the app polls with the same
 * token every few seconds), but its expiry on every use, by the issuer's clock, and nothing about
 * a token it has verified vouches for any other string.
 */
const SECRET = 'a-secret-for-access-token-tests-0123456789';
const claims = { sub: '7c9e6679-7425-40de-944b-e07fc1f90ae7', sessionId: 'f47ac10b-58cc-4372-a567-0e02b2c3d479', isAnonymous: true };

describe('access tokens', () => {
  it('a token verified before is refused once it expires, by the same clock', async () => {
    let now = Date.parse('2026-12-04T12:00:00Z');
    const tokens = new AccessTokens(SECRET, 'rendio', 60, () => now);
    const { token } = await tokens.sign(claims);
    expect(await tokens.verify(token)).toMatchObject({ sub: claims.sub, sessionId: claims.sessionId });
    now += 30_000;
    expect(await tokens.verify(token)).toMatchObject({ sub: claims.sub });
    now += 31_000;
    await expect(tokens.verify(token)).rejects.toMatchObject({ expired: true });
    await expect(tokens.verify(token)).rejects.toBeInstanceOf(InvalidAccessToken);
  });

  it('a verified token vouches for nothing else: a changed payload or signature is refused', async () => {
    const tokens = new AccessTokens(SECRET, 'rendio', 3600);
    const { token } = await tokens.sign(claims);
    await tokens.verify(token);
    const [header, payload, signature] = token.split('.');
    const forged = JSON.parse(Buffer.from(payload!, 'base64url').toString());
    forged.sub = '00000000-0000-4000-8000-000000000000';
    await expect(tokens.verify(`${header}.${Buffer.from(JSON.stringify(forged)).toString('base64url')}.${signature}`)).rejects.toBeInstanceOf(InvalidAccessToken);
    await expect(tokens.verify(`${header}.${payload}.${signature!.slice(0, -2)}AA`)).rejects.toBeInstanceOf(InvalidAccessToken);
    // Another process (another secret) never saw it verified and refuses it.
    await expect(new AccessTokens('another-secret-for-access-token-tests-987', 'rendio', 3600).verify(token)).rejects.toBeInstanceOf(InvalidAccessToken);
  });
});
