import 'reflect-metadata';
import { generateKeyPairSync, randomUUID, webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { compactVerify, decodeProtectedHeader, importSPKI } from 'jose';
import { afterAll, beforeAll } from 'vitest';
import { temporaryFolder } from '../support/temp.js';

/**
 * A faithful local APNs (docs/reference/apple.md §6): HTTP/2 over TLS with a certificate from a CA made
 * at test time (the client trusts it through APNS_CA_FILE), POST /3/device/{token}. It checks the
 * provider JWT (ES256 signature with the team's key, kid, iss, iat age: over an hour →
 * 403 ExpiredProviderToken; replaced less than 20 minutes after the previous one → 429
 * TooManyProviderTokenUpdates) and the apns-* headers, records what it accepted, and can be told
 * to answer any of Apple's reasons or to send GOAWAY around a stream.
 */

x509.cryptoProvider.set(webcrypto as any);

const HOUR = 3_600_000;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGNING = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface ApnsRequestRecord {
  token: string;
  headers: Record<string, string>;
  payload: any;
  jwt: string;
  /** Which TLS connection (1, 2, …) carried it. */
  connection: number;
  status: number;
  reason?: string;
}

/** A scripted answer: an APNs error, or GOAWAY refusing the stream / after answering it. */
export type ScriptedAnswer = { status: number; reason: string; timestamp?: number } | 'goaway-refuse' | 'goaway-after-200';

export class FakeApns {
  readonly teamId = 'APNSTEAM01';
  readonly keyId = 'APNSKEY001';
  readonly bundleId = 'com.rendioai.app';
  readonly privateKeyPem: string;
  private readonly publicKeyPem: string;
  /** Every request, in arrival order, with the answer it got. */
  readonly requests: ApnsRequestRecord[] = [];
  /** Provider tokens seen (distinct JWT strings). */
  readonly jwts = new Set<string>();
  connections = 0;
  /** APNs' clock (the JWT age checks); tests share theirs with the client's. */
  now: () => number = Date.now;
  /** Tokens APNs knows are no longer valid: answered 410 Unregistered with this timestamp (ms). */
  readonly unregistered = new Map<string, number>();
  private readonly script = new Map<string, ScriptedAnswer[]>();
  private current: { jwt: string; iat: number; dead: boolean } | undefined;
  private server: http2.Http2SecureServer | undefined;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private caFile = '';

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }

  async start(): Promise<this> {
    const tls = await testCertificate();
    this.caFile = path.join(temporaryFolder('rendio-apns-ca-'), 'ca.pem');
    writeFileSync(this.caFile, tls.caPem);
    const publicKey = await importSPKI(this.publicKeyPem, 'ES256');
    this.server = http2.createSecureServer({ key: tls.keyPem, cert: tls.certPem, allowHTTP1: false });
    this.server.on('session', (session) => {
      this.connections++;
      (session as any).connectionNumber = this.connections;
      this.sessions.add(session);
      session.on('close', () => this.sessions.delete(session));
      session.on('error', () => undefined);
    });
    this.server.on('stream', (stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('error', () => undefined);
      stream.on('end', () => {
        void this.handle(stream, headers, Buffer.concat(chunks), publicKey).catch(() => {
          if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR);
        });
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this;
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  /** Env for the server under test. */
  env(): Record<string, string> {
    return {
      APNS_TEAM_ID: this.teamId,
      APNS_KEY_ID: this.keyId,
      APNS_PRIVATE_KEY: this.privateKeyPem.replace(/\n/g, '\\n'),
      APNS_BUNDLE_ID: this.bundleId,
      APNS_HOST: '127.0.0.1',
      APNS_PORT: String(this.port),
      APNS_CA_FILE: this.caFile,
    };
  }

  /** The next answers for a token (in order), before the normal checks. */
  answer(token: string, ...answers: ScriptedAnswer[]): void {
    this.script.set(token, [...(this.script.get(token) ?? []), ...answers]);
  }

  /** Pushes APNs accepted (200), optionally for one token. */
  delivered(token?: string): ApnsRequestRecord[] {
    return this.requests.filter((r) => r.status === 200 && (token === undefined || r.token === token));
  }

  /** Forgets the records and the provider token in use (as if the last one were long ago). */
  reset(): void {
    this.current = undefined;
    this.requests.length = 0;
    this.script.clear();
    this.unregistered.clear();
  }

  private async handle(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer, publicKey: Awaited<ReturnType<typeof importSPKI>>): Promise<void> {
    const session = stream.session!;
    const record: ApnsRequestRecord = {
      token: '',
      headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, String(v)])),
      payload: undefined,
      jwt: '',
      connection: (session as any).connectionNumber,
      status: 0,
    };
    const reply = (status: number, reason?: string, extra: Record<string, unknown> = {}) => {
      record.status = status;
      record.reason = reason;
      this.requests.push(record);
      const apnsId = typeof headers['apns-id'] === 'string' ? headers['apns-id'] : randomUUID();
      if (status === 200) {
        stream.respond({ ':status': 200, 'apns-id': apnsId }, { endStream: true });
      } else {
        stream.respond({ ':status': status, 'apns-id': apnsId, 'content-type': 'application/json' });
        stream.end(JSON.stringify({ reason, ...extra }));
      }
    };

    const match = /^\/3\/device\/([^/?]*)$/.exec(String(headers[':path']));
    if (!match) return reply(404, 'BadPath');
    record.token = match[1]!;
    if (headers[':method'] !== 'POST') return reply(405, 'MethodNotAllowed');
    try {
      record.payload = body.length ? JSON.parse(body.toString('utf8')) : undefined;
    } catch {
      return reply(400, 'BadPayload');
    }

    // Provider token (Apple: "Establishing a token-based connection to APNs").
    const auth = /^bearer (\S+)$/i.exec(String(headers.authorization ?? ''));
    if (!auth) return reply(403, 'MissingProviderToken');
    const jwt = auth[1]!;
    record.jwt = jwt;
    this.jwts.add(jwt);
    let claims: { iss?: unknown; iat?: unknown };
    try {
      const header = decodeProtectedHeader(jwt);
      if (header.alg !== 'ES256' || header.kid !== this.keyId) return reply(403, 'InvalidProviderToken');
      const { payload } = await compactVerify(jwt, publicKey);
      claims = JSON.parse(new TextDecoder().decode(payload));
    } catch {
      return reply(403, 'InvalidProviderToken');
    }
    if (claims.iss !== this.teamId || typeof claims.iat !== 'number') return reply(403, 'InvalidProviderToken');
    const iatMs = claims.iat * 1000;
    if (iatMs > this.now() + 60_000) return reply(403, 'InvalidProviderToken');
    if (this.now() - iatMs > HOUR) return reply(403, 'ExpiredProviderToken');
    if (this.current?.jwt !== jwt) {
      if (this.current && !this.current.dead && iatMs - this.current.iat < 20 * 60_000) return reply(429, 'TooManyProviderTokenUpdates');
      this.current = { jwt, iat: iatMs, dead: false };
    }

    const scripted = this.script.get(record.token)?.shift();
    if (scripted === 'goaway-refuse') {
      // The stream is past lastStreamID: APNs never processed it; the client must retry elsewhere.
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, Math.max(0, stream.id! - 2));
      record.status = -1;
      record.reason = 'goaway-refuse';
      this.requests.push(record);
      session.close();
      return;
    }
    if (scripted && scripted !== 'goaway-after-200') {
      if (scripted.reason === 'ExpiredProviderToken') this.current!.dead = true;
      return reply(scripted.status, scripted.reason, scripted.timestamp !== undefined ? { timestamp: scripted.timestamp } : {});
    }

    if (!/^[0-9a-f]{64,200}$/i.test(record.token)) return reply(400, 'BadDeviceToken');
    if (headers['apns-topic'] === undefined) return reply(400, 'MissingTopic');
    if (headers['apns-topic'] !== this.bundleId) return reply(400, 'DeviceTokenNotForTopic');
    if (!['alert', 'background', 'location', 'voip', 'complication', 'fileprovider', 'mdm', 'liveactivity', 'pushtotalk'].includes(String(headers['apns-push-type']))) {
      return reply(400, 'InvalidPushType');
    }
    if (headers['apns-priority'] !== undefined && !['5', '10', '1'].includes(String(headers['apns-priority']))) return reply(400, 'BadPriority');
    if (headers['apns-expiration'] !== undefined && !/^\d+$/.test(String(headers['apns-expiration']))) return reply(400, 'BadExpirationDate');
    if (headers['apns-collapse-id'] !== undefined && Buffer.byteLength(String(headers['apns-collapse-id'])) > 64) return reply(400, 'BadCollapseId');
    if (headers['apns-id'] !== undefined && !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(String(headers['apns-id']))) {
      return reply(400, 'BadMessageId');
    }
    if (!record.payload?.aps) return reply(400, 'PayloadEmpty');
    if (body.length > 4096) return reply(413, 'PayloadTooLarge');
    const gone = this.unregistered.get(record.token);
    if (gone !== undefined) return reply(410, 'Unregistered', { timestamp: gone });

    reply(200);
    if (scripted === 'goaway-after-200') {
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, stream.id!);
      session.close();
    }
  }

  async stop(): Promise<void> {
    for (const s of this.sessions) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

/** A CA and a server certificate for 127.0.0.1, made fresh: nothing secret is kept in the repository. */
async function testCertificate(): Promise<{ caPem: string; certPem: string; keyPem: string }> {
  const [caKeys, serverKeys] = (await Promise.all([1, 2].map(() => webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])))) as webcrypto.CryptoKeyPair[];
  const now = Date.now();
  const caName = 'CN=Rendio Test APNs CA';
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: '01',
    name: caName,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 365 * 86_400_000),
    signingAlgorithm: SIGNING,
    keys: caKeys!,
    extensions: [new x509.BasicConstraintsExtension(true, undefined, true), new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true)],
  });
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: '02',
    subject: 'CN=127.0.0.1',
    issuer: caName,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 30 * 86_400_000),
    signingAlgorithm: SIGNING,
    publicKey: serverKeys!.publicKey,
    signingKey: caKeys!.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
      new x509.SubjectAlternativeNameExtension([{ type: 'ip', value: '127.0.0.1' }, { type: 'dns', value: 'localhost' }]),
    ],
  });
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', serverKeys!.privateKey)).toString('base64');
  const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
  return { caPem: ca.toString('pem'), certPem: cert.toString('pem'), keyPem };
}

/** The APNs fake for a test file: started before its tests, stopped after them. */
export function useFakeApns(): FakeApns {
  const apns = new FakeApns();
  beforeAll(async () => {
    await apns.start();
  });
  afterAll(async () => {
    await apns.stop();
  });
  return apns;
}
