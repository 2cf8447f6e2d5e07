import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { CompactSign } from 'jose';
import { temporaryFolder } from '../support/temp.js';

/**
 * A test certificate chain shaped like Apple's App Store signing chain (docs/reference/apple.md §1):
 * root (self-signed CA) → intermediate (CA, OID 1.2.840.113635.100.6.2.1) → leaf (OID
 * 1.2.840.113635.100.6.11.1), ECDSA P-256, with x5c = [leaf, intermediate, root] in each JWS.
 * The server under test trusts this root only because the test configures it, so the production
 * verifier (Apple's library) runs unchanged.
 */

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

x509.cryptoProvider.set(webcrypto as any);

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;
const APPLE_LEAF_OID = '1.2.840.113635.100.6.11.1';
const APPLE_INTERMEDIATE_OID = '1.2.840.113635.100.6.2.1';
const ASN1_NULL = new Uint8Array([0x05, 0x00]);
const DAY = 86_400_000;

export interface ChainOptions {
  /** Leave out Apple's marker extensions (a chain any CA could issue). */
  withoutAppleOids?: boolean;
  /** Validity window of the leaf (default: yesterday to next year). */
  leafNotBefore?: Date;
  leafNotAfter?: Date;
}

export class ApplePki {
  private constructor(
    readonly root: x509.X509Certificate,
    readonly intermediate: x509.X509Certificate,
    readonly leaf: x509.X509Certificate,
    private readonly leafKey: CryptoKey,
    private readonly intermediateKey: CryptoKey,
    private readonly opts: ChainOptions & { name: string },
  ) {}

  static async create(name = 'Fake Apple', opts: ChainOptions = {}): Promise<ApplePki> {
    const [rootKeys, interKeys, leafKeys] = await Promise.all([1, 2, 3].map(() => webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])));
    const now = Date.now();
    const rootName = `CN=${name} Root CA - G3, OU=Apple Certification Authority, O=Apple Inc., C=US`;
    const interName = `CN=${name} Worldwide Developer Relations Certification Authority, OU=G6, O=Apple Inc., C=US`;
    const root = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: '01',
      name: rootName,
      notBefore: new Date(now - 365 * DAY),
      notAfter: new Date(now + 10 * 365 * DAY),
      signingAlgorithm: SIGNING,
      keys: rootKeys as CryptoKeyPair,
      extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)],
    });
    const intermediate = await x509.X509CertificateGenerator.create({
      serialNumber: '02',
      subject: interName,
      issuer: rootName,
      notBefore: new Date(now - 365 * DAY),
      notAfter: new Date(now + 5 * 365 * DAY),
      signingAlgorithm: SIGNING,
      publicKey: (interKeys as CryptoKeyPair).publicKey,
      signingKey: (rootKeys as CryptoKeyPair).privateKey,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        ...(opts.withoutAppleOids ? [] : [new x509.Extension(APPLE_INTERMEDIATE_OID, false, ASN1_NULL)]),
      ],
    });
    const leaf = await issueLeaf(name, interName, (interKeys as CryptoKeyPair).privateKey, (leafKeys as CryptoKeyPair).publicKey, opts);
    return new ApplePki(root, intermediate, leaf, (leafKeys as CryptoKeyPair).privateKey, (interKeys as CryptoKeyPair).privateKey, { ...opts, name });
  }

  /** The same root and intermediate with a new leaf (Apple rotates leaves; an expired one must fail). */
  async withLeaf(opts: Pick<ChainOptions, 'leafNotBefore' | 'leafNotAfter'>): Promise<ApplePki> {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair;
    const leaf = await issueLeaf(this.opts.name, this.intermediate.subject, this.intermediateKey, keys.publicKey, { ...this.opts, ...opts });
    return new ApplePki(this.root, this.intermediate, leaf, keys.privateKey, this.intermediateKey, { ...this.opts, ...opts });
  }

  /** The root as a DER file, for APPLE_ROOT_CA_FILES. */
  writeRootFile(): string {
    const dir = temporaryFolder('rendio-apple-root-');
    const file = path.join(dir, 'root.cer');
    writeFileSync(file, Buffer.from(this.root.rawData));
    return file;
  }

  /** A JWS exactly as the App Store signs its data: ES256, x5c = [leaf, intermediate, root]. */
  async sign(payload: object, opts: { signWith?: CryptoKey } = {}): Promise<string> {
    const x5c = [this.leaf, this.intermediate, this.root].map((c) => Buffer.from(c.rawData).toString('base64'));
    return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
      .setProtectedHeader({ alg: 'ES256', x5c })
      .sign(opts.signWith ?? this.leafKey);
  }

  /** A key that is not the leaf's: a JWS signed with it carries a valid chain and a wrong signature. */
  static async strayKey(): Promise<CryptoKey> {
    return ((await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as CryptoKeyPair).privateKey;
  }
}

async function issueLeaf(name: string, issuer: string, issuerKey: CryptoKey, publicKey: CryptoKey, opts: ChainOptions): Promise<x509.X509Certificate> {
  const now = Date.now();
  return x509.X509CertificateGenerator.create({
    serialNumber: Date.now().toString(16),
    subject: `CN=${name} Prod ECC Mac App Store and iTunes Store Receipt Signing, OU=Apple Worldwide Developer Relations, O=Apple Inc., C=US`,
    issuer,
    notBefore: opts.leafNotBefore ?? new Date(now - DAY),
    notAfter: opts.leafNotAfter ?? new Date(now + 365 * DAY),
    signingAlgorithm: SIGNING,
    publicKey,
    signingKey: issuerKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      ...(opts.withoutAppleOids ? [] : [new x509.Extension(APPLE_LEAF_OID, false, ASN1_NULL)]),
    ],
  });
}
