import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from 'node:crypto';
import { secretsEqual } from '../auth/tokens.js';
import { createBreaker, downloadLimited, parseJson, providerFetch } from './http.js';
import {
  ProviderError,
  WebhookRejected,
  type CancelAnswer,
  type ProviderAdapter,
  type ProviderJobRef,
  type ProviderStatus,
  type SubmitInput,
  type WebhookEvent,
} from './types.js';

/**
 * fal.ai queue API (docs/reference/providers.md §1): submit with ?fal_webhook=, then status/result/cancel
 * at the URLs submit returned (fal-js issue #214: rebuilt URLs 404 for some 3+ segment ids).
 * COMPLETED is terminal for success AND failure: failure shows as error/error_type on the status or
 * a non-2xx result. Webhooks are Ed25519-signed over "request_id\nuser_id\ntimestamp\nsha256hex(body)"
 * with keys from fal's JWKS, and (FAL_WEBHOOK_USER_ID) must name our fal account.
 */

export interface FalOptions {
  apiKey: string;
  queueUrl: string;
  jwksUrl: string;
  resultHosts: string[];
  timeoutMs: number;
  /**
   * Our fal account's user id (FAL_WEBHOOK_USER_ID). fal signs every account's webhooks with the
   * same keys, so a valid signature proves fal sent it, not that it is for us: when set, the
   * X-Fal-Webhook-User-Id header must equal it.
   */
  webhookUserId?: string;
  /** Least time between JWKS refetches triggered by unknown signers (a forged-signature flood must not become a fetch flood). */
  jwksMinRefreshMs?: number;
}

const WEBHOOK_TOLERANCE_SECONDS = 300;
const JWKS_TTL_MS = 24 * 60 * 60 * 1000;
const JWKS_REFRESH_MIN_INTERVAL_MS = 60 * 1000;

/** Model input per fal endpoint family: field names and value formats differ (docs/reference/providers.md table). */
export function falInput(input: SubmitInput): Record<string, unknown> {
  const { prompt, settings, imageUrl, providerModelId: id } = input;
  if (id.startsWith('fal-ai/veo3.1')) {
    return {
      prompt,
      duration: `${settings.duration}s`,
      ...(settings.aspect_ratio ? { aspect_ratio: settings.aspect_ratio } : {}),
      ...(settings.resolution ? { resolution: settings.resolution } : {}),
      generate_audio: true,
      ...(imageUrl ? { image_url: imageUrl } : {}),
    };
  }
  if (id.startsWith('fal-ai/kling-video')) {
    return {
      prompt,
      duration: String(settings.duration),
      ...(settings.aspect_ratio && !imageUrl ? { aspect_ratio: settings.aspect_ratio } : {}),
      ...(imageUrl ? { start_image_url: imageUrl } : {}),
    };
  }
  if (id.startsWith('fal-ai/pika')) {
    return {
      prompt,
      duration: settings.duration,
      ...(settings.resolution ? { resolution: settings.resolution } : {}),
      ...(settings.aspect_ratio && !imageUrl ? { aspect_ratio: settings.aspect_ratio } : {}),
      ...(imageUrl ? { image_url: imageUrl } : {}),
    };
  }
  if (id.startsWith('fal-ai/sora-2')) {
    throw new ProviderError('Sora 2 was retired upstream on 2026-09-24', 'ERR_5002', false);
  }
  return { prompt, duration: settings.duration, ...(imageUrl ? { image_url: imageUrl } : {}) };
}

function isContentPolicy(body: unknown): boolean {
  const detail = (body as { detail?: unknown })?.detail;
  const types = Array.isArray(detail) ? detail.map((d) => (d as { type?: string })?.type) : [];
  const errorType = (body as { error_type?: string })?.error_type;
  return types.includes('content_policy_violation') || errorType === 'content_policy_violation';
}

function describe(body: unknown): string {
  const detail = (body as { detail?: unknown })?.detail;
  if (typeof detail === 'string') return detail;
  if (Array.isArray(detail)) return detail.map((d) => (d as { msg?: string })?.msg ?? JSON.stringify(d)).join('; ');
  return JSON.stringify(body).slice(0, 300);
}

export class FalProvider implements ProviderAdapter {
  readonly name = 'fal' as const;
  readonly webhooks = true;
  readonly pollIntervalSeconds = 10;
  private readonly breaker = createBreaker();
  private jwks: { keys: KeyObject[]; fetchedAt: number } | undefined;

  constructor(private readonly opts: FalOptions) {}

  private headers(): Record<string, string> {
    return { authorization: `Key ${this.opts.apiKey}`, accept: 'application/json', 'content-type': 'application/json' };
  }

  private call(url: string, init: RequestInit) {
    return providerFetch('fal', this.breaker, url, { ...init, headers: this.headers() }, this.opts.timeoutMs);
  }

  /** Fallback URLs from owner/alias when submit returned none (docs: subpaths are not used for status). */
  private urls(job: ProviderJobRef) {
    const [owner, alias] = job.providerModelId.split('/');
    const base = `${this.opts.queueUrl}/${owner}/${alias}/requests/${job.providerJobId}`;
    const s = (job.state ?? {}) as Record<string, string | undefined>;
    return { status: s.status_url ?? `${base}/status`, response: s.response_url ?? base, cancel: s.cancel_url ?? `${base}/cancel` };
  }

  async submit(input: SubmitInput) {
    const url = new URL(`${this.opts.queueUrl}/${input.providerModelId}`);
    if (input.webhookUrl) url.searchParams.set('fal_webhook', input.webhookUrl);
    const res = await this.call(url.toString(), { method: 'POST', body: JSON.stringify(falInput(input)) });
    const body = parseJson('fal', res.text);
    if (res.status === 422 && isContentPolicy(body)) throw new ProviderError(`fal rejected the input: ${describe(body)}`, 'ERR_5003', false);
    if (res.status >= 400) throw new ProviderError(`fal submit answered ${res.status}: ${describe(body)}`, 'ERR_5002', false);
    if (typeof body.request_id !== 'string' || !body.request_id) throw new ProviderError('fal submit returned no request_id', 'ERR_5002', false);
    const state: Record<string, unknown> = {};
    for (const k of ['status_url', 'response_url', 'cancel_url']) if (typeof body[k] === 'string') state[k] = body[k];
    return { providerJobId: body.request_id, state };
  }

  async status(job: ProviderJobRef): Promise<ProviderStatus> {
    const urls = this.urls(job);
    const res = await this.call(`${urls.status}?logs=0`, { method: 'GET' });
    if (res.status >= 400) throw new ProviderError(`fal status answered ${res.status}`, 'ERR_5002', res.status === 404 ? false : true);
    const body = parseJson('fal', res.text);
    switch (body.status) {
      case 'IN_QUEUE':
        return { state: 'queued' };
      case 'IN_PROGRESS':
        return { state: 'running' };
      case 'COMPLETED':
        if (body.error) {
          return { state: 'failed', code: isContentPolicy(body) ? 'ERR_5003' : 'ERR_5002', message: `fal: ${String(body.error)}` };
        }
        return this.result(urls.response);
      default:
        throw new ProviderError(`fal status has an unknown value: ${String(body.status)}`, 'ERR_5002', false);
    }
  }

  /** From the response URL submit returned (fal keeps results there after the webhook). */
  fetchResult(job: ProviderJobRef): Promise<ProviderStatus> {
    return this.result(this.urls(job).response);
  }

  private async result(responseUrl: string): Promise<ProviderStatus> {
    const res = await this.call(responseUrl, { method: 'GET' });
    const body = parseJson('fal', res.text);
    if (res.status >= 400) {
      return { state: 'failed', code: isContentPolicy(body) ? 'ERR_5003' : 'ERR_5002', message: `fal: ${describe(body)}` };
    }
    return this.output(body);
  }

  private output(body: Record<string, unknown>): ProviderStatus {
    const video = (body.video as { url?: unknown } | undefined)?.url;
    if (typeof video !== 'string') return { state: 'failed', code: 'ERR_5002', message: 'fal: the result has no video url' };
    const thumbnail = (body.thumbnail as { url?: unknown } | undefined)?.url;
    return { state: 'succeeded', output: { videoUrl: video, ...(typeof thumbnail === 'string' ? { thumbnailUrl: thumbnail } : {}) } };
  }

  /**
   * PUT cancel_url (docs/reference/providers.md §1): 202 CANCELLATION_REQUESTED (a queued request is removed, a
   * running one is signalled to stop), 400 ALREADY_COMPLETED once it finished (billed), 404 for a
   * request fal does not know. fal's answer does not say whether a finished request succeeded.
   */
  async cancel(job: ProviderJobRef): Promise<CancelAnswer> {
    let res;
    try {
      res = await this.call(this.urls(job).cancel, { method: 'PUT' });
    } catch {
      return 'unknown'; // 5xx, timeout, network, open circuit
    }
    const status = (() => {
      try {
        return String((JSON.parse(res.text) as { status?: unknown }).status ?? '');
      } catch {
        return '';
      }
    })();
    if (status === 'ALREADY_COMPLETED') return 'already_finished';
    if (res.status === 404) return 'unknown';
    if (res.status < 300) return 'cancelled';
    return 'refused';
  }

  download(url: string, maxBytes: number, toFile: string) {
    return downloadLimited('fal', url, this.opts.resultHosts, maxBytes, Math.max(this.opts.timeoutMs, 60_000), toFile);
  }

  private async keys(forceRefresh: boolean): Promise<KeyObject[]> {
    const now = Date.now();
    const fresh = this.jwks && now - this.jwks.fetchedAt < JWKS_TTL_MS;
    const mayRefresh = !this.jwks || now - this.jwks.fetchedAt >= (this.opts.jwksMinRefreshMs ?? JWKS_REFRESH_MIN_INTERVAL_MS);
    if (this.jwks && (fresh && !forceRefresh || !mayRefresh)) return this.jwks.keys;
    const res = await fetch(this.opts.jwksUrl, { signal: AbortSignal.timeout(this.opts.timeoutMs) });
    if (!res.ok) throw new WebhookRejected(`fal JWKS answered ${res.status}`);
    const { keys = [] } = (await res.json()) as { keys?: { kty?: string; crv?: string; x?: string }[] };
    const parsed = keys
      .filter((k) => k.kty === 'OKP' && k.crv === 'Ed25519' && typeof k.x === 'string')
      // Some deployments pad x with '='; base64url decoding tolerates it once stripped.
      .map((k) => createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: k.x!.replace(/=+$/, '') }, format: 'jwk' }));
    this.jwks = { keys: parsed, fetchedAt: now };
    return parsed;
  }

  async verifyWebhook(rawBody: string, headers: Headers): Promise<WebhookEvent> {
    const requestId = headers.get('x-fal-webhook-request-id');
    const userId = headers.get('x-fal-webhook-user-id');
    const timestamp = headers.get('x-fal-webhook-timestamp');
    const signatureHex = headers.get('x-fal-webhook-signature');
    if (!requestId || !userId || !timestamp || !signatureHex) throw new WebhookRejected('missing fal webhook headers');
    // Before the signature (no JWKS fetch for someone else's webhook); constant time like any credential check.
    if (this.opts.webhookUserId !== undefined && !secretsEqual(userId, this.opts.webhookUserId)) {
      throw new WebhookRejected('webhook is for another fal account');
    }
    if (!/^\d{1,12}$/.test(timestamp) || Math.abs(Date.now() / 1000 - Number(timestamp)) > WEBHOOK_TOLERANCE_SECONDS) {
      throw new WebhookRejected('stale or malformed webhook timestamp');
    }
    if (!/^[0-9a-fA-F]{128}$/.test(signatureHex)) throw new WebhookRejected('malformed webhook signature');
    const message = Buffer.from(`${requestId}\n${userId}\n${timestamp}\n${createHash('sha256').update(rawBody).digest('hex')}`);
    const signature = Buffer.from(signatureHex, 'hex');
    const valid = async (refresh: boolean) => (await this.keys(refresh)).some((key) => verifySignature(null, message, key, signature));
    // An unknown signer may mean fal rotated its keys: refetch once (rate-limited) before refusing.
    if (!(await valid(false)) && !(await valid(true))) throw new WebhookRejected('webhook signature does not verify');

    let body: Record<string, unknown>;
    try {
      body = JSON.parse(rawBody) as Record<string, unknown>;
    } catch {
      throw new WebhookRejected('webhook body is not JSON');
    }
    if (body.request_id !== requestId) throw new WebhookRejected('webhook body names another request');
    let status: ProviderStatus;
    if (body.status === 'OK' && body.payload && typeof body.payload === 'object') {
      status = this.output(body.payload as Record<string, unknown>);
    } else if (body.status === 'OK' && body.payload_error !== undefined && body.payload_error !== null) {
      // The request succeeded but fal could not serialise its result into the webhook
      // (docs/reference/providers.md §1: payload null + payload_error). The result is still at the response URL:
      // failing here would lose a video we paid for.
      status = { state: 'result_ready' };
    } else {
      status = { state: 'failed', code: isContentPolicy(body.payload) ? 'ERR_5003' : 'ERR_5002', message: `fal: ${String(body.error ?? body.payload_error ?? 'error')}` };
    }
    return { eventId: requestId, providerJobId: requestId, status };
  }
}
