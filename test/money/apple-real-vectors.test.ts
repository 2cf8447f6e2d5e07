import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AppStoreRejected, AppStoreVerifier } from '../../src/apple/app-store.js';
import { loadConfig } from '../../src/config/index.js';

/**
 * Apple's real chain, not ours: a genuine Apple-signed sandbox Consumable transaction
 * (test/vectors/apple, copied from shared/test-vectors/apple) checked by the production verifier configured with the real Apple
 * Root CA - G3 that ships in assets/apple. Our test PKI alone would prove nothing about Apple's
 * certificates, OIDs or signature encoding. Online checks are off because the vector's leaf
 * expired in 2025: the library then validates the chain at the payload's signedDate.
 */

// The vectors are third-party public data, copied into test/vectors/apple (sources in its README);
// TEST_APPLE_VECTORS_DIR may point elsewhere.
const candidates = [process.env.TEST_APPLE_VECTORS_DIR, path.resolve(import.meta.dirname, '../vectors/apple')].filter((d): d is string => Boolean(d));
const VECTORS = candidates.find((d) => existsSync(path.join(d, 'sandbox-consumable-transaction.jws')));
if (!VECTORS) throw new Error(`Apple test vectors not found; looked in ${candidates.join(', ')} (set TEST_APPLE_VECTORS_DIR)`);
const jws = readFileSync(path.join(VECTORS, 'sandbox-consumable-transaction.jws'), 'utf8').trim();
// The root the server ships and loads by default (APPLE_ROOT_CA_FILES), byte-identical to Apple's.
const shippedRoots = loadConfig({}).appleRootCertificates;

const verifier = (over: Partial<ConstructorParameters<typeof AppStoreVerifier>[0]> = {}) =>
  new AppStoreVerifier({ bundleId: 'com.goodheartapp', appAppleId: 1, rootCertificates: shippedRoots, onlineChecks: false, acceptSandbox: true, ...over });

async function rejection(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    if (err instanceof AppStoreRejected) return err.reason;
    throw err;
  }
  throw new Error('accepted, but it should have been refused');
}

/** Changes one character of part `index` (0 header, 1 payload, 2 signature) of the JWS. */
function tamper(index: number, at: number): string {
  const parts = jws.split('.');
  const part = parts[index]!;
  const pos = Math.min(at, part.length - 2);
  const flipped = part[pos] === 'A' ? 'B' : 'A';
  parts[index] = part.slice(0, pos) + flipped + part.slice(pos + 1);
  return parts.join('.');
}

describe('the real Apple-signed sandbox transaction', () => {
  it('the shipped root is Apple Root CA - G3 and matches the published certificate', () => {
    expect(shippedRoots).toHaveLength(1);
    expect(shippedRoots[0]!.equals(readFileSync(path.join(VECTORS, 'AppleRootCA-G3.cer')))).toBe(true);
  });

  it("is accepted by the production verifier with Apple's real root", async () => {
    const tx = await verifier().transaction(jws);
    expect(tx).toMatchObject({
      transactionId: '2000000847061981',
      bundleId: 'com.goodheartapp',
      productId: 'gh_super_good_ticket_1',
      type: 'Consumable',
      environment: 'Sandbox',
      quantity: 1,
    });
  });

  it('every tampered copy is refused: payload, signature or certificate chain', async () => {
    const copies = [tamper(1, 40), tamper(1, 200), tamper(2, 10), tamper(2, 60), tamper(0, 120), tamper(0, 3000), tamper(0, 5000)];
    // The payload re-encoded with a different product but the original signature.
    const [h, p, s] = jws.split('.');
    const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
    copies.push([h, Buffer.from(JSON.stringify({ ...payload, productId: 'gh_mega_pack_1000' })).toString('base64url'), s].join('.'));
    for (const copy of copies) {
      expect(copy).not.toBe(jws);
      expect(await rejection(verifier().transaction(copy))).toMatch(/bad_signature|wrong_environment|wrong_bundle/);
    }
  });

  it('is refused for another bundle, when sandbox purchases are not accepted, and against a foreign root', async () => {
    expect(await rejection(verifier({ bundleId: 'com.rendioai.app' }).transaction(jws))).toBe('wrong_bundle');
    expect(await rejection(verifier({ acceptSandbox: false }).transaction(jws))).toBe('wrong_environment');
    const { ApplePki } = await import('../fakes/apple-pki.js');
    const foreignRoot = Buffer.from((await ApplePki.create()).root.rawData);
    expect(await rejection(verifier({ rootCertificates: [foreignRoot] }).transaction(jws))).toBe('bad_signature');
  });
});
