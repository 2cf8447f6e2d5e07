import { randomUUID } from 'node:crypto';
import { SignJWT, importPKCS8 } from 'jose';
import type { DeviceCheckConfig } from '../config/index.js';
import { DomainError, UpstreamUnavailable } from '../errors/domain-error.js';

/**
 * Apple DeviceCheck two-bit API (docs/reference/apple.md §4). We use bit0 = "this device already
 * received the initial free credits", which survives reinstalls. Apple answers a device it never
 * saw with HTTP 200 and the plain-text body "Failed to find bit state" — not JSON.
 */

export interface DeviceBits {
  bit0: boolean;
  bit1: boolean;
  lastUpdateTime: string | null;
}

/** Apple says the token itself is bad: the caller is not a genuine device. */
export class DeviceTokenRejected extends DomainError {
  readonly code = 'ERR_4013';
  constructor(
    public readonly status: number,
    public readonly body: string,
  ) {
    super(`DeviceCheck rejected the device token (${status}): ${body.slice(0, 200)}`);
  }
}

/** Apple could not be asked: network, timeout, 5xx, 429 or our own credentials. */
export class DeviceCheckUnavailable extends UpstreamUnavailable {
  protected readonly service = 'apple_devicecheck';
  constructor(
    message: string,
    public readonly status?: number,
  ) {
    super(message);
  }
}

export interface DeviceCheckClient {
  queryTwoBits(deviceToken: string): Promise<DeviceBits | null>;
  updateTwoBits(deviceToken: string, bits: { bit0: boolean; bit1: boolean }): Promise<void>;
}

const BIT_STATE_NOT_FOUND = /^(failed to find bit state|bit state not found)$/i;
// Apple accepts provider tokens up to an hour old; refresh well before that.
const TOKEN_REUSE_MS = 30 * 60 * 1000;

export class AppleDeviceCheck implements DeviceCheckClient {
  private cached: { jwt: string; at: number } | undefined;
  private key: ReturnType<typeof importPKCS8> | undefined;

  constructor(
    private readonly config: DeviceCheckConfig,
    private readonly now: () => number = Date.now,
  ) {}

  private async authToken(): Promise<string> {
    const now = this.now();
    if (this.cached && now - this.cached.at < TOKEN_REUSE_MS) return this.cached.jwt;
    this.key ??= importPKCS8(this.config.privateKeyPem, 'ES256');
    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.config.keyId })
      .setIssuer(this.config.teamId)
      .setIssuedAt(Math.floor(now / 1000))
      .sign(await this.key);
    this.cached = { jwt, at: now };
    return jwt;
  }

  private async call(path: string, body: Record<string, unknown>): Promise<{ status: number; text: string }> {
    let res: Response;
    try {
      res = await fetch(`${this.config.baseUrl}${path}`, {
        method: 'POST',
        headers: { authorization: `Bearer ${await this.authToken()}`, 'content-type': 'application/json' },
        body: JSON.stringify({ ...body, transaction_id: randomUUID(), timestamp: this.now() }),
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
    } catch (err) {
      throw new DeviceCheckUnavailable(`DeviceCheck request failed: ${(err as Error).message}`);
    }
    const text = await res.text().catch(() => '');
    if (res.status === 400) throw new DeviceTokenRejected(res.status, text);
    if (res.status === 401 || res.status === 403) {
      // Our key, team or kid is wrong: a server configuration problem, never the user's fault.
      this.cached = undefined;
      throw new DeviceCheckUnavailable(`DeviceCheck refused our credentials (${res.status}): ${text.slice(0, 200)}`, res.status);
    }
    if (res.status !== 200) throw new DeviceCheckUnavailable(`DeviceCheck answered ${res.status}: ${text.slice(0, 200)}`, res.status);
    return { status: res.status, text };
  }

  async queryTwoBits(deviceToken: string): Promise<DeviceBits | null> {
    const { text } = await this.call('/query_two_bits', { device_token: deviceToken });
    const trimmed = text.trim();
    if (BIT_STATE_NOT_FOUND.test(trimmed)) return null;
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new DeviceCheckUnavailable(`DeviceCheck returned an unreadable body: ${trimmed.slice(0, 200)}`);
    }
    const p = parsed as { bit0?: unknown; bit1?: unknown; last_update_time?: unknown };
    if (typeof p.bit0 !== 'boolean' || typeof p.bit1 !== 'boolean') {
      throw new DeviceCheckUnavailable('DeviceCheck returned bits in an unexpected shape');
    }
    return { bit0: p.bit0, bit1: p.bit1, lastUpdateTime: typeof p.last_update_time === 'string' ? p.last_update_time : null };
  }

  async updateTwoBits(deviceToken: string, bits: { bit0: boolean; bit1: boolean }): Promise<void> {
    await this.call('/update_two_bits', { device_token: deviceToken, bit0: bits.bit0, bit1: bits.bit1 });
  }
}
