import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { afterAll, beforeAll } from 'vitest';
import { decodeProtectedHeader, importSPKI, jwtVerify } from 'jose';
import { ApplePki } from './apple-pki.js';
import { FakeHttpServer, type FakeRequest, type FakeResponse } from './http.js';

/**
 * A faithful local fake of the App Store Server API (docs/reference/apple.md §1, §3) for one
 * environment: GET /inApps/v1/transactions/{id} behind an ES256 bearer JWT (kid, iss,
 * aud=appstoreconnect-v1, bid, at most 60 min), answering {signedTransactionInfo} signed by the
 * test PKI, Apple's error bodies ({errorCode, errorMessage}) for unknown or malformed ids, and
 * PUT /inApps/v2/transactions/consumption/{id}. It also builds signed notifications as Apple sends them.
 * Faults (401, 429, 5xx, stalls) come from FakeHttpServer.inject.
 */

export const BUNDLE_ID = 'com.rendioai.app';
export const APP_APPLE_ID = 6_478_123_456;

export interface FakeTransaction {
  transactionId: string;
  originalTransactionId?: string;
  productId: string;
  type?: string;
  quantity?: number;
  bundleId?: string;
  environment?: string;
  purchaseDate?: number;
  revocationDate?: number;
  revocationReason?: number;
}

const json = (status: number, body: unknown): FakeResponse => ({ status, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });

/** The API credentials the server under test signs with; the fakes check them. */
export class AppStoreKey {
  readonly issuerId = '57246542-96fe-1a63-e053-0824d011072a';
  readonly keyId = 'ASKEY12345';
  readonly privateKeyPem: string;
  readonly publicKeyPem: string;
  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
  }
}

export class FakeAppStore {
  readonly server: FakeHttpServer;
  readonly transactions = new Map<string, FakeTransaction>();
  readonly consumptionRequests: { transactionId: string; body: any }[] = [];
  /** Apple's clock (ms): what it signs with when no signedDate is given. Tests may run it in the past. */
  clock: () => number = () => Date.now();

  constructor(
    readonly environment: 'Production' | 'Sandbox',
    readonly pki: ApplePki,
    private readonly key: AppStoreKey,
  ) {
    this.server = new FakeHttpServer((req) => this.handle(req));
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }

  /** A purchase Apple knows about in this environment. */
  add(t: FakeTransaction): FakeTransaction {
    this.transactions.set(t.transactionId, t);
    return t;
  }

  /**
   * The JWSTransaction Apple signs for t (StoreKit 2's jwsRepresentation has the same form).
   * signedDate (ms) stands for Apple's clock; it defaults to now.
   */
  signTransaction(t: FakeTransaction, pki: ApplePki = this.pki, signedDate?: number): Promise<string> {
    const now = Date.now();
    return pki.sign({
      transactionId: t.transactionId,
      originalTransactionId: t.originalTransactionId ?? t.transactionId,
      bundleId: t.bundleId ?? BUNDLE_ID,
      productId: t.productId,
      purchaseDate: t.purchaseDate ?? now - 60_000,
      originalPurchaseDate: t.purchaseDate ?? now - 60_000,
      quantity: t.quantity ?? 1,
      type: t.type ?? 'Consumable',
      inAppOwnershipType: 'PURCHASED',
      signedDate: signedDate ?? this.clock(),
      environment: t.environment ?? this.environment,
      transactionReason: 'PURCHASE',
      storefront: 'TUR',
      storefrontId: '143480',
      price: 99_990,
      currency: 'TRY',
      ...(t.revocationDate ? { revocationDate: t.revocationDate, revocationReason: t.revocationReason ?? 0 } : {}),
    });
  }

  /**
   * An App Store Server Notification V2 body ({signedPayload}) about t. opts.signedDate (ms since
   * the epoch, default now) is Apple's clock: the notification's signedDate and its transaction's.
   * It must lie inside the test PKI's leaf validity (now − 1 day … now + 1 year): with online
   * checks off, the server verifies the chain at the payload's signedDate.
   */
  async notification(
    type: string,
    t: FakeTransaction | undefined,
    opts: { uuid?: string; subtype?: string; pki?: ApplePki; bundleId?: string; signedDate?: number } = {},
  ): Promise<{ signedPayload: string }> {
    const pki = opts.pki ?? this.pki;
    const data: Record<string, unknown> = {
      appAppleId: APP_APPLE_ID,
      bundleId: opts.bundleId ?? BUNDLE_ID,
      bundleVersion: '42',
      environment: this.environment,
      ...(t ? { signedTransactionInfo: await this.signTransaction(t, pki, opts.signedDate) } : {}),
      ...(type === 'CONSUMPTION_REQUEST' ? { consumptionRequestReason: 'UNINTENDED_PURCHASE' } : {}),
    };
    const signedPayload = await pki.sign({
      notificationType: type,
      ...(opts.subtype ? { subtype: opts.subtype } : {}),
      notificationUUID: opts.uuid ?? randomUUID(),
      version: '2.0',
      // When Apple signed it (ms): notifications may arrive out of this order.
      signedDate: opts.signedDate ?? this.clock(),
      data,
    });
    return { signedPayload };
  }

  private async authorized(req: FakeRequest): Promise<boolean> {
    const token = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''))?.[1];
    if (!token) return false;
    try {
      if (decodeProtectedHeader(token).kid !== this.key.keyId) return false;
      const { payload } = await jwtVerify(token, await importSPKI(this.key.publicKeyPem, 'ES256'), {
        algorithms: ['ES256'],
        issuer: this.key.issuerId,
        audience: 'appstoreconnect-v1',
      });
      return payload.bid === BUNDLE_ID && typeof payload.iat === 'number' && typeof payload.exp === 'number' && payload.exp - payload.iat <= 3600;
    } catch {
      return false;
    }
  }

  private async handle(req: FakeRequest): Promise<FakeResponse> {
    // Apple answers a bad token with a bare 401.
    if (!(await this.authorized(req))) return { status: 401, body: 'Unauthenticated' };
    const url = new URL(req.path, 'http://fake');
    const get = /^\/inApps\/v1\/transactions\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'GET' && get) {
      const id = decodeURIComponent(get[1]!);
      if (!/^[0-9]+$/.test(id)) return json(400, { errorCode: 4000006, errorMessage: 'Invalid transaction id.' });
      const t = this.transactions.get(id);
      if (!t) return json(404, { errorCode: 4040010, errorMessage: 'Transaction id not found.' });
      return json(200, { signedTransactionInfo: await this.signTransaction(t) });
    }
    const consumption = /^\/inApps\/v2\/transactions\/consumption\/([^/]+)$/.exec(url.pathname);
    if (req.method === 'PUT' && consumption) {
      const body = JSON.parse(req.body || '{}');
      if (body.customerConsented !== true) return json(400, { errorCode: 4000035, errorMessage: 'Invalid request. The customer consented field is required and must indicate the customer consented.' });
      if (!this.transactions.has(consumption[1]!)) return json(404, { errorCode: 4040010, errorMessage: 'Transaction id not found.' });
      this.consumptionRequests.push({ transactionId: consumption[1]!, body });
      return { status: 202 };
    }
    return json(404, { errorCode: 4040000, errorMessage: 'Not found' });
  }
}

/**
 * Production and sandbox fakes on one test PKI, and the env that points the server at them.
 * Guests cannot buy by default (ERR_4020); files that exercise guest purchases — the money paths a
 * deployment with ALLOW_GUEST_PURCHASES=true must hold, e.g. a purchase in flight while the guest
 * merges — set it explicitly.
 */
export async function startAppStoreFakes(): Promise<{
  pki: ApplePki;
  key: AppStoreKey;
  production: FakeAppStore;
  sandbox: FakeAppStore;
  env: () => Record<string, string>;
  stop: () => Promise<void>;
}> {
  const pki = await ApplePki.create();
  const key = new AppStoreKey();
  const production = await new FakeAppStore('Production', pki, key).start();
  const sandbox = await new FakeAppStore('Sandbox', pki, key).start();
  const rootFile = pki.writeRootFile();
  return {
    pki,
    key,
    production,
    sandbox,
    env: () => ({
      APPLE_BUNDLE_ID: BUNDLE_ID,
      APPLE_APP_APPLE_ID: String(APP_APPLE_ID),
      APP_STORE_ISSUER_ID: key.issuerId,
      APP_STORE_KEY_ID: key.keyId,
      APP_STORE_PRIVATE_KEY: key.privateKeyPem,
      APP_STORE_PRODUCTION_URL: production.server.url,
      APP_STORE_SANDBOX_URL: sandbox.server.url,
      APP_STORE_TIMEOUT_MS: '5000',
      APPLE_ROOT_CA_FILES: rootFile,
      // The test PKI publishes no OCSP responder; the effective date is then the payload's signedDate.
      APP_STORE_ONLINE_CHECKS: 'false',
    }),
    stop: async () => {
      await production.stop();
      await sandbox.stop();
    },
  };
}

export type AppStoreFakes = Awaited<ReturnType<typeof startAppStoreFakes>>;

/**
 * The fakes for one test file (started before its apps, stopped after), plus fresh transaction ids.
 * Returns getters: the fakes exist only once beforeAll ran.
 */
export function useAppStoreFakes(): { fakes: () => AppStoreFakes; txId: () => string } {
  let fakes: AppStoreFakes | undefined;
  let next = 2_000_000_900_000_000 + Math.floor(Math.random() * 1e9);
  beforeAll(async () => {
    fakes = await startAppStoreFakes();
  });
  afterAll(async () => {
    await fakes?.stop();
  });
  return {
    fakes: () => {
      if (!fakes) throw new Error('App Store fakes not started (used outside a test?)');
      return fakes;
    },
    txId: () => String(next++),
  };
}
