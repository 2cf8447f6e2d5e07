import { BrokenCircuitError, ConsecutiveBreaker, circuitBreaker, handleWhen, type CircuitBreakerPolicy } from 'cockatiel';
import fs from 'node:fs/promises';
import { ProviderError, type Download } from './types.js';

/**
 * What every HTTP provider adapter shares: per-call timeouts, a circuit breaker per provider (a
 * dead provider fails fast instead of tying up workers), classification of HTTP failures into
 * retryable or not, and size-limited downloads from allow-listed result hosts only.
 */

export interface ProviderResponse {
  status: number;
  headers: Headers;
  text: string;
}

export function createBreaker(): CircuitBreakerPolicy {
  return circuitBreaker(
    handleWhen((err) => err instanceof ProviderError && err.retryable),
    { halfOpenAfter: 30_000, breaker: new ConsecutiveBreaker(5) },
  );
}

export function retryAfterMs(headers: Headers): number | undefined {
  const v = headers.get('retry-after');
  if (!v) return undefined;
  const seconds = Number(v);
  if (Number.isFinite(seconds)) return Math.max(0, seconds * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - Date.now()) : undefined;
}

export async function providerFetch(
  provider: string,
  breaker: CircuitBreakerPolicy,
  url: string,
  init: RequestInit,
  timeoutMs: number,
): Promise<ProviderResponse> {
  try {
    return await breaker.execute(async () => {
      let res: Response;
      try {
        res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
      } catch (err) {
        const timedOut = (err as Error).name === 'TimeoutError';
        throw new ProviderError(`${provider}: ${timedOut ? 'timed out' : 'network error'}: ${(err as Error).message}`, 'ERR_5002', true);
      }
      const text = await res.text().catch(() => '');
      // 429 and 5xx are the provider's transient trouble: retry later (and they count against the breaker).
      if (res.status === 429 || res.status >= 500) {
        throw new ProviderError(`${provider}: HTTP ${res.status}: ${text.slice(0, 300)}`, 'ERR_5002', true, retryAfterMs(res.headers));
      }
      return { status: res.status, headers: res.headers, text };
    });
  } catch (err) {
    if (err instanceof BrokenCircuitError) {
      throw new ProviderError(`${provider}: circuit open after repeated failures; not calling it for now`, 'ERR_5002', true, 30_000);
    }
    throw err;
  }
}

export function parseJson(provider: string, text: string): Record<string, unknown> {
  try {
    const v = JSON.parse(text) as unknown;
    if (v && typeof v === 'object' && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new ProviderError(`${provider}: malformed response: ${text.slice(0, 200)}`, 'ERR_5002', false);
}

/** Hosts a result may be downloaded from: exact names or "*.suffix". */
export function hostAllowed(url: URL, allowed: readonly string[]): boolean {
  return allowed.some((h) => (h.startsWith('*.') ? url.hostname.endsWith(h.slice(1)) : url.hostname === h || url.host === h));
}

/**
 * Streams a result into a file, size-limited, never holding it in memory (a video can be hundreds
 * of MB). The caller owns the file, written or partly written, and removes it.
 */
export async function downloadLimited(
  provider: string,
  rawUrl: string,
  allowedHosts: readonly string[],
  maxBytes: number,
  timeoutMs: number,
  toFile: string,
): Promise<Download> {
  let url: URL;
  try {
    url = new URL(rawUrl);
  } catch {
    throw new ProviderError(`${provider}: result URL is not a URL`, 'ERR_5002', false);
  }
  if (!hostAllowed(url, allowedHosts)) throw new ProviderError(`${provider}: refusing to download from ${url.host}`, 'ERR_5002', false);
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'error' });
  } catch (err) {
    throw new ProviderError(`${provider}: download failed: ${(err as Error).message}`, 'ERR_5002', true);
  }
  if (!res.ok || !res.body) throw new ProviderError(`${provider}: download answered ${res.status}`, 'ERR_5002', res.status >= 500 || res.status === 429);
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > maxBytes) throw new ProviderError(`${provider}: result is ${declared} bytes, over the ${maxBytes} limit`, 'ERR_5002', false);
  let sizeBytes = 0;
  const file = await fs.open(toFile, 'w');
  try {
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      sizeBytes += chunk.length;
      if (sizeBytes > maxBytes) throw new ProviderError(`${provider}: result exceeds the ${maxBytes} byte limit`, 'ERR_5002', false);
      await file.write(chunk);
    }
  } catch (err) {
    if (err instanceof ProviderError) throw err;
    throw new ProviderError(`${provider}: download broke off after ${sizeBytes} bytes: ${(err as Error).message}`, 'ERR_5002', true);
  } finally {
    await file.close();
  }
  return { sizeBytes, contentType: res.headers.get('content-type')?.split(';')[0] ?? 'application/octet-stream' };
}
