import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import { SignJWT, importPKCS8, type CryptoKey } from 'jose';
import type { Logger } from '../logger.js';

/**
 * APNs provider API over HTTP/2 with token auth (docs/reference/apple.md §6). One long-lived session per
 * environment, replaced when the server sends GOAWAY, closes it or it fails. node:http2 directly:
 * apns2 cannot reach another port than 443, and node-apn's pooling hides the GOAWAY handling we
 * want to test.
 */

export type ApnsEnvironment = 'sandbox' | 'production';

export interface ApnsConfig {
  teamId: string;
  keyId: string;
  privateKeyPem: string;
  /** apns-topic. */
  bundleId: string;
  /** Replaces both Apple hosts (tests). */
  host: string | undefined;
  port: number;
  /** The CA to trust instead of the public ones (a local fake's test CA). */
  ca: Buffer | undefined;
  timeoutMs: number;
}

const HOSTS: Record<ApnsEnvironment, string> = {
  production: 'api.push.apple.com',
  sandbox: 'api.sandbox.push.apple.com',
};

/**
 * Apple: refresh the provider token no more than once every 20 minutes and no less than once every
 * 60 (older tokens get 403 ExpiredProviderToken; newer ones 429 TooManyProviderTokenUpdates).
 */
export const PROVIDER_TOKEN_MIN_AGE_MS = 20 * 60_000;
export const PROVIDER_TOKEN_REFRESH_AGE_MS = 50 * 60_000;

export interface ApnsNotification {
  token: string;
  environment: ApnsEnvironment;
  payload: Record<string, unknown>;
  collapseId: string;
  /** Epoch seconds after which APNs stops trying to deliver; 0 = once only. */
  expiration: number;
  /** 10 = now (alert), 5 = when convenient. */
  priority: 10 | 5;
}

export type ApnsResult =
  | { ok: true; status: 200; apnsId: string }
  /** timestamp: for 410, when APNs learned the token stopped being valid (ms since epoch). */
  | { ok: false; status: number; reason: string; timestamp?: number; apnsId?: string };

/** The connection failed before APNs answered (after one retry on a fresh session). */
export class ApnsTransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** What the push service needs from APNs: the fake-friendly seam. */
export interface PushSender {
  send(n: ApnsNotification): Promise<ApnsResult>;
  close(): Promise<void>;
}

export class ApnsClient implements PushSender {
  private readonly sessions = new Map<ApnsEnvironment, http2.ClientHttp2Session>();
  private key: Promise<CryptoKey> | undefined;
  private providerToken: { jwt: string; issuedAt: number } | undefined;
  private minting: Promise<string> | undefined;

  constructor(
    private readonly config: ApnsConfig,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  async send(n: ApnsNotification): Promise<ApnsResult> {
    const jwt = await this.currentToken();
    const result = await this.sendOnce(n, jwt);
    // The only answer a new provider token fixes; APNs itself declared this one dead, so the
    // 20-minute minimum between updates does not apply.
    if (!result.ok && result.status === 403 && result.reason === 'ExpiredProviderToken') {
      this.log.warn('APNs rejected the provider token as expired; signing a new one');
      return this.sendOnce(n, await this.currentToken(jwt));
    }
    return result;
  }

  private async sendOnce(n: ApnsNotification, jwt: string): Promise<ApnsResult> {
    try {
      return await this.request(n, jwt);
    } catch (err) {
      // A GOAWAY that refused our stream, or a connection that died under it: once more on a fresh
      // session. A second failure goes back to the queue, which retries with backoff.
      this.drop(n.environment);
      this.log.warn({ err: (err as Error).message, environment: n.environment }, 'APNs connection failed; reconnecting');
      try {
        return await this.request(n, jwt);
      } catch (again) {
        this.drop(n.environment);
        throw new ApnsTransportError(`APNs request failed: ${(again as Error).message}`, { cause: again });
      }
    }
  }

  /**
   * The provider JWT, reused until PROVIDER_TOKEN_REFRESH_AGE_MS old. `rejected`: APNs answered
   * ExpiredProviderToken to that one, so it is replaced (unless a concurrent send already did).
   */
  private async currentToken(rejected?: string): Promise<string> {
    const current = this.providerToken;
    if (current && (rejected ? current.jwt !== rejected : this.now() - current.issuedAt < PROVIDER_TOKEN_REFRESH_AGE_MS)) return current.jwt;
    // Concurrent sends share one new token: each new one counts as an update at Apple.
    this.minting ??= (async () => {
      this.key ??= importPKCS8(this.config.privateKeyPem, 'ES256');
      const issuedAt = this.now();
      const jwt = await new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: this.config.keyId })
        .setIssuer(this.config.teamId)
        .setIssuedAt(Math.floor(issuedAt / 1000))
        .sign(await this.key);
      this.providerToken = { jwt, issuedAt };
      return jwt;
    })().finally(() => {
      this.minting = undefined;
    });
    return this.minting;
  }

  private session(env: ApnsEnvironment): http2.ClientHttp2Session {
    const existing = this.sessions.get(env);
    if (existing && !existing.closed && !existing.destroyed) return existing;
    const host = this.config.host ?? HOSTS[env];
    const session = http2.connect(`https://${host}:${this.config.port}`, {
      ...(this.config.ca ? { ca: this.config.ca } : {}),
    });
    const forget = () => {
      if (this.sessions.get(env) === session) this.sessions.delete(env);
    };
    session.on('goaway', (code, lastStreamId) => {
      this.log.info({ environment: env, code, lastStreamId }, 'APNs sent GOAWAY; the next push opens a new connection');
      forget();
    });
    session.on('close', forget);
    session.on('error', (err) => {
      this.log.warn({ err: err.message, environment: env }, 'APNs connection error');
      forget();
    });
    // An idle connection must not keep the process (or a test) alive.
    session.unref();
    this.sessions.set(env, session);
    return session;
  }

  private drop(env: ApnsEnvironment): void {
    const s = this.sessions.get(env);
    this.sessions.delete(env);
    if (s && !s.destroyed) s.destroy();
  }

  private request(n: ApnsNotification, jwt: string): Promise<ApnsResult> {
    const session = this.session(n.environment);
    return new Promise<ApnsResult>((resolve, reject) => {
      const body = JSON.stringify(n.payload);
      const req = session.request({
        ':method': 'POST',
        ':path': `/3/device/${n.token}`,
        authorization: `bearer ${jwt}`,
        'apns-id': randomUUID(),
        'apns-topic': this.config.bundleId,
        'apns-push-type': 'alert',
        'apns-priority': String(n.priority),
        'apns-expiration': String(n.expiration),
        'apns-collapse-id': n.collapseId,
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      });
      let status = 0;
      let apnsId: string | undefined;
      const chunks: Buffer[] = [];
      req.setTimeout(this.config.timeoutMs, () => {
        req.close(http2.constants.NGHTTP2_CANCEL);
        reject(new Error(`APNs did not answer within ${this.config.timeoutMs} ms`));
      });
      req.on('response', (headers) => {
        status = Number(headers[':status']);
        const id = headers['apns-id'];
        apnsId = typeof id === 'string' ? id : undefined;
      });
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('error', reject);
      req.on('close', () => {
        if (status === 0) return reject(new Error(`APNs stream closed without an answer (code ${req.rstCode})`));
        if (status === 200) return resolve({ ok: true, status: 200, apnsId: apnsId ?? '' });
        let parsed: { reason?: unknown; timestamp?: unknown } = {};
        try {
          parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof parsed;
        } catch {
          // A body that is not JSON (a proxy's error page): the status alone decides.
        }
        resolve({
          ok: false,
          status,
          reason: typeof parsed.reason === 'string' ? parsed.reason : `HTTP ${status}`,
          ...(typeof parsed.timestamp === 'number' ? { timestamp: parsed.timestamp } : {}),
          ...(apnsId ? { apnsId } : {}),
        });
      });
      req.end(body);
    });
  }

  async close(): Promise<void> {
    const open = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.all(open.map((s) => new Promise<void>((resolve) => (s.closed ? resolve() : s.close(() => resolve())))));
  }
}
