import { createHash } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import type { Queryable } from '../db/pool.js';
import * as keys from '../db/queries/idempotency.js';
import { ApiError } from './api-error.js';
import type { AppEnv } from './context.js';
import type { Logger } from '../logger.js';

/**
 * Stripe-style idempotency keys, scoped per user (patterns.md §1, IETF draft): the key row is
 * claimed BEFORE any work, never "check, work, store". The handler stores its response with
 * idempotency.complete(tx, …) inside the same transaction that moves the money, so either both
 * happen or neither does.
 *  - same key, same request, answered → the stored response, with X-Idempotent-Replay: true
 *  - same key, different request       → 422 ERR_4010
 *  - same key, still running           → 409 ERR_4009 (Retry-After)
 *  - a request that failed without effect leaves no key: retrying it is safe and re-executes.
 *  - a request that died mid-way (crash) leaves a lock that goes stale after LOCK_SECONDS and can be retried.
 */

const LOCK_SECONDS = 60;
// RFC 8941 sf-string (the draft's form, "quoted") or a bare token; printable ASCII only.
const KEY_FORMAT = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyClaim {
  key: string;
  complete(tx: Queryable, status: number, body: unknown): Promise<void>;
}

export type IdempotentEnv = AppEnv & { Variables: { idempotency: IdempotencyClaim } };

/** Stable fingerprint: method, path and the JSON body with keys sorted (whitespace and key order don't matter). */
export function fingerprint(method: string, path: string, rawBody: string): string {
  let canonical = rawBody;
  try {
    const sort = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sort)
        : v && typeof v === 'object'
          ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]))
          : v;
    canonical = JSON.stringify(sort(JSON.parse(rawBody)));
  } catch {
    // not JSON: fingerprint the bytes; validation rejects the request anyway
  }
  return createHash('sha256').update(`${method} ${path}\n${canonical}`).digest('hex');
}

export function parseIdempotencyKey(header: string | undefined): string {
  if (header === undefined) throw new ApiError('ERR_4018', { reason: 'missing' });
  const trimmed = header.trim();
  const key = /^".*"$/.test(trimmed) ? trimmed.slice(1, -1) : trimmed;
  if (!KEY_FORMAT.test(key)) throw new ApiError('ERR_4018', { reason: 'malformed' });
  return key;
}

export function idempotency(db: Queryable, ttlHours: number): MiddlewareHandler<IdempotentEnv> {
  return async (c, next) => {
    const key = parseIdempotencyKey(c.req.header('idempotency-key'));
    const userId = c.get('user').id;
    const print = fingerprint(c.req.method, c.req.path, await c.req.text());

    let id = await keys.claimKey(db, { userId, key, method: c.req.method, path: c.req.path, fingerprint: print, ttlHours });
    if (id === undefined) {
      const existing = await keys.findKey(db, userId, key, LOCK_SECONDS);
      if (!existing) throw new ApiError('ERR_4009', { reason: 'retry' }, { 'Retry-After': '1' }); // expired between the two statements
      if (existing.request_fingerprint !== print) throw new ApiError('ERR_4010');
      if (existing.response_status !== null) {
        return c.json(existing.response_body as object, existing.response_status as 200, { 'X-Idempotent-Replay': 'true' });
      }
      if (existing.lock_is_fresh || !(await keys.takeOverStaleKey(db, existing.id, LOCK_SECONDS))) {
        throw new ApiError('ERR_4009', undefined, { 'Retry-After': '1' });
      }
      id = existing.id;
    }

    const claimId = id;
    let completed = false;
    c.set('idempotency', {
      key,
      complete: async (tx, status, body) => {
        await keys.storeResponse(tx, claimId, status, body);
        completed = true;
      },
    });
    await next();
    // The handler failed before committing anything: free the key so a retry runs again.
    if (!completed || c.error) await freeKey(db, claimId, c.get('log'));
  };
}

/**
 * Deletes an unanswered key. Most such failures are the database being unavailable or the pool
 * exhausted (503 ERR_6001), when this delete may not get a connection either: one try inline, then
 * keep trying in the background (the answer does not wait) with backoff, for as long as the lock is
 * fresh. A key left behind would answer 409 to every retry for LOCK_SECONDS and, being locked,
 * never be removed by the hourly cleanup.
 */
async function freeKey(db: Queryable, id: number, log: Logger | undefined): Promise<void> {
  try {
    await keys.deleteUnansweredKey(db, id);
    return;
  } catch {
    // retried below
  }
  const deadline = Date.now() + LOCK_SECONDS * 1000;
  const retry = (attempt: number) => {
    const delay = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
    setTimeout(() => {
      keys.deleteUnansweredKey(db, id).catch((err) => {
        if (Date.now() + delay < deadline) retry(attempt + 1);
        else log?.warn({ err, idempotencyKeyId: id }, 'could not free an unanswered idempotency key; it goes stale and can be retried');
      });
    }, delay).unref();
  };
  retry(0);
}
