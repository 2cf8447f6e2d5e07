import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { importSPKI, jwtVerify, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll } from 'vitest';
import { FakeHttpServer, type FakeRequest, type FakeResponse } from './http.js';

/**
 * A faithful local fake of Apple's DeviceCheck API (docs/reference/apple.md §4):
 * POST /v1/query_two_bits | /v1/update_two_bits | /v1/validate_device_token, ES256 bearer JWT with
 * kid and iss = team id, plain-text error bodies, and HTTP 200 "Failed to find bit state" for a
 * device whose bits were never set. Bits belong to the physical device, not to the token, so
 * tokens here encode a device identity: deviceToken('phone-1') twice = same device, new token.
 */

const TOKEN_PREFIX = 'fake-dc-device:';

export function deviceToken(device: string): string {
  // Real tokens are ~2 KB of opaque base64; ours carry the device name plus noise.
  return Buffer.from(`${TOKEN_PREFIX}${device}:${randomBytes(48).toString('hex')}`).toString('base64');
}

function deviceOf(token: unknown): string | undefined {
  if (typeof token !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(token)) return undefined;
  const decoded = Buffer.from(token, 'base64').toString('utf8');
  if (!decoded.startsWith(TOKEN_PREFIX)) return undefined;
  return decoded.slice(TOKEN_PREFIX.length).split(':')[0];
}

const text = (status: number, body: string): FakeResponse => ({ status, body, headers: { 'content-type': 'text/plain' } });

export class FakeDeviceCheck {
  readonly teamId = 'TEAM123456';
  readonly keyId = 'DCKEY12345';
  readonly privateKeyPem: string;
  private readonly publicKeyPem: string;
  readonly bits = new Map<string, { bit0: boolean; bit1: boolean; updated: string }>();
  readonly server: FakeHttpServer;

  constructor() {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKeyPem = privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    this.publicKeyPem = publicKey.export({ type: 'spki', format: 'pem' }).toString();
    this.server = new FakeHttpServer((req) => this.handle(req));
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  get baseUrl(): string {
    return `${this.server.url}/v1`;
  }

  /** Env for the server under test. */
  env(): Record<string, string> {
    return {
      APPLE_TEAM_ID: this.teamId,
      APPLE_DEVICECHECK_KEY_ID: this.keyId,
      APPLE_DEVICECHECK_PRIVATE_KEY: this.privateKeyPem,
      APPLE_DEVICECHECK_BASE_URL: this.baseUrl,
      APPLE_DEVICECHECK_TIMEOUT_MS: '4000',
    };
  }

  stop(): Promise<void> {
    return this.server.stop();
  }

  private verifyKey: ReturnType<typeof importSPKI> | undefined;

  private async authorized(req: FakeRequest): Promise<boolean> {
    const match = /^Bearer (.+)$/.exec(String(req.headers.authorization ?? ''));
    if (!match) return false;
    try {
      const header = decodeProtectedHeader(match[1]!);
      if (header.alg !== 'ES256' || header.kid !== this.keyId) return false;
      const { payload } = await jwtVerify(match[1]!, await (this.verifyKey ??= importSPKI(this.publicKeyPem, 'ES256')), { issuer: this.teamId });
      const age = Date.now() / 1000 - (payload.iat ?? 0);
      return age >= -60 && age <= 3600; // Apple rejects provider tokens older than an hour
    } catch {
      return false;
    }
  }

  private async handle(req: FakeRequest): Promise<FakeResponse> {
    if (req.method !== 'POST') return text(405, 'Method Not Allowed');
    if (!(await this.authorized(req))) return text(401, 'Unable to verify authorization token');
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(req.body) as Record<string, unknown>;
    } catch {
      return text(400, 'Missing or incorrectly formatted device token payload');
    }
    const device = deviceOf(body.device_token);
    if (!device) return text(400, 'Missing or incorrectly formatted device token payload');
    if (typeof body.timestamp !== 'number' || Math.abs(Date.now() - body.timestamp) > 3_600_000) {
      return text(400, 'Missing or incorrectly formatted time stamp');
    }
    if (typeof body.transaction_id !== 'string' || !body.transaction_id) {
      return text(400, 'Missing or incorrectly formatted transaction id');
    }
    switch (req.path) {
      case '/v1/validate_device_token':
        return { status: 200 };
      case '/v1/query_two_bits': {
        const state = this.bits.get(device);
        if (!state) return text(200, 'Failed to find bit state');
        return {
          status: 200,
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ bit0: state.bit0, bit1: state.bit1, last_update_time: state.updated }),
        };
      }
      case '/v1/update_two_bits': {
        if (typeof body.bit0 !== 'boolean' && typeof body.bit1 !== 'boolean') return text(400, 'Missing or incorrectly formatted bits');
        const prev = this.bits.get(device) ?? { bit0: false, bit1: false, updated: '' };
        this.bits.set(device, {
          bit0: typeof body.bit0 === 'boolean' ? body.bit0 : prev.bit0,
          bit1: typeof body.bit1 === 'boolean' ? body.bit1 : prev.bit1,
          updated: new Date().toISOString().slice(0, 7),
        });
        return { status: 200 };
      }
      default:
        return text(404, 'Not Found');
    }
  }
}

/** The DeviceCheck fake for a test file (or describe block): started before its tests, stopped after them. */
export function useFakeDeviceCheck(): FakeDeviceCheck {
  const deviceCheck = new FakeDeviceCheck();
  beforeAll(async () => {
    await deviceCheck.start();
  });
  afterAll(async () => {
    await deviceCheck.stop();
  });
  return deviceCheck;
}
