import { createHash, randomUUID } from 'node:crypto';
import type { MiddlewareHandler } from 'hono';
import { isDatabaseUnavailable, type Queryable } from '../db/pool.js';
import * as keys from '../db/queries/idempotency.js';
import { ApiError } from './api-error.js';
import type { AppEnv } from './context.js';
import type { Logger } from '../logger.js';

/**
 * Stripe-style idempotency keys, scoped per user (docs/reference/patterns.md §1, IETF draft): the key row is
 * claimed BEFORE any work, never "check, work, store". The handler stores its response with
 * idempotency.complete(tx, …) inside the same transaction that moves the money, so either both
 * happen or neither does.
 *  - same key, same request, answered → the stored response, with X-Idempotent-Replay: true
 *  - same key, different request       → 422 ERR_4010
 *  - same key, still running           → 409 ERR_4009 (Retry-After)
 *  - a request that failed without effect leaves no key: retrying it is safe and re-executes.
 *  - a request that died mid-way (crash) leaves a lock that goes stale after lockSeconds and can be retried.
 * A live holder renews its lock while it runs, so a request that is merely slow (waiting on a lock,
 * a connection) is never taken over; and the answer is stored only under the claimant's token, so
 * even a holder that could not renew (database trouble) and was taken over cannot answer twice:
 * its transaction rolls back with 409.
 */
// RFC 8941 sf-string (the draft's form, "quoted") or a bare token; printable ASCII only.
const KEY_FORMAT = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyClaim {
  key: string;
  /** Stores the answer inside the money transaction; ownerId = the user the work was done for. */
  complete(tx: Queryable, status: number, body: unknown, ownerId?: string): Promise<void>;
}

export type IdempotentEnv = AppEnv & { Variables: { idempotency: IdempotencyClaim } };

/**
 * Stable fingerprint: method, path and the JSON body with keys sorted (whitespace and key order
 * don't matter). user_id only names the caller (checked by auth), so it is left out: the shipped
 * app's retry after Sign in with Apple names the account instead of the guest.
 */
export function fingerprint(method: string, path: string, rawBody: string): string {
  let canonical = rawBody;
  try {
    const sort = (v: unknown): unknown =>
      Array.isArray(v)
        ? v.map(sort)
        : v && typeof v === 'object'
          ? Object.fromEntries(Object.keys(v as object).sort().map((k) => [k, sort((v as Record<string, unknown>)[k])]))
          : v;
    const parsed = JSON.parse(rawBody) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) delete (parsed as Record<string, unknown>).user_id;
    canonical = JSON.stringify(sort(parsed));
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

export function idempotency(db: Queryable, opts: { ttlHours: number; lockSeconds: number }): MiddlewareHandler<IdempotentEnv> {
  const { ttlHours, lockSeconds } = opts;
  return async (c, next) => {
    const key = parseIdempotencyKey(c.req.header('idempotency-key'));
    const userId = c.get('user').id;
    const print = fingerprint(c.req.method, c.req.path, await c.req.text());
    const claimToken = randomUUID();

    const claim = { userId, key, method: c.req.method, path: c.req.path, fingerprint: print, ttlHours, claimToken };
    // Only a guest can be merged away while it claims; an Apple account's claim is its own.
    let id: number | undefined;
    try {
      id = c.get('user').isGuest ? await claimForOwner(db, claim, lockSeconds, c.get('log')) : await keys.claimKey(db, claim);
    } catch (err) {
      // The database went away under the claim (503): it may have committed with its answer lost.
      // Such a claim has no holder, so free it now rather than let the app's retries meet 409 for lockSeconds.
      if (isDatabaseUnavailable(err)) await freeKey(() => keys.deleteUnansweredClaim(db, userId, key, claimToken), lockSeconds, c.get('log'));
      throw err;
    }
    if (id === undefined) {
      const existing = await keys.findKey(db, userId, key, lockSeconds);
      if (!existing) throw new ApiError('ERR_4009', { reason: 'retry' }, { 'Retry-After': '1' }); // expired between the two statements
      if (existing.request_fingerprint !== print) throw new ApiError('ERR_4010');
      if (existing.response_status !== null) {
        return c.json(existing.response_body as object, existing.response_status as 200, { 'X-Idempotent-Replay': 'true' });
      }
      if (existing.lock_is_fresh || !(await keys.takeOverStaleKey(db, existing.id, lockSeconds, claimToken))) {
        throw new ApiError('ERR_4009', undefined, { 'Retry-After': '1' });
      }
      id = existing.id;
    }

    const claimId = id;
    let completed = false;
    c.set('idempotency', {
      key,
      complete: async (tx, status, body, ownerId) => {
        if (!(await keys.storeResponse(tx, { id: claimId, claimToken, status, body, ownerId }))) {
          // Taken over by a retry: this request must not answer (its transaction rolls back).
          throw new ApiError('ERR_4009', { reason: 'taken_over' }, { 'Retry-After': '1' });
        }
        completed = true;
      },
    });
    // Renew well within lockSeconds, so only a dead holder's lock ever goes stale.
    const renewal = setInterval(() => void keys.renewClaim(db, claimId, claimToken).catch(() => undefined), (lockSeconds * 1000) / 4);
    renewal.unref();
    try {
      await next();
    } finally {
      clearInterval(renewal);
    }
    // The handler failed before committing anything: free the key so a retry runs again.
    if (!completed || c.error) await freeKey(() => keys.deleteUnansweredKey(db, claimId, claimToken), lockSeconds, c.get('log'));
  };
}

/**
 * Claims the key for the caller's current owner. A merge that committed while we claimed leaves
 * the claim on the merged guest: it is given up and made again for the account. Any failure
 * after the claim frees it, so a key is never left locked by a request that will not answer.
 */
async function claimForOwner(
  db: Queryable,
  claim: Parameters<typeof keys.claimKey>[1],
  lockSeconds: number,
  log: Logger | undefined,
): Promise<number | undefined> {
  const id = await keys.claimKey(db, claim);
  if (id === undefined) return undefined;
  let onOwner: boolean;
  try {
    onOwner = await keys.claimIsOnOwner(db, id);
  } catch (err) {
    await freeKey(() => keys.deleteUnansweredKey(db, id, claim.claimToken), lockSeconds, log);
    throw err;
  }
  if (onOwner) return id;
  await freeKey(() => keys.deleteUnansweredKey(db, id, claim.claimToken), lockSeconds, log);
  return keys.claimKey(db, claim);
}

/**
 * Deletes an unanswered key. Most such failures are the database being unavailable or the pool
 * exhausted (503 ERR_6001), when this delete may not get a connection either: one try inline, then
 * keep trying in the background (the answer does not wait) with backoff, for as long as the lock is
 * fresh. A key left behind would answer 409 to every retry for lockSeconds and, being locked,
 * never be removed by the hourly cleanup.
 */
async function freeKey(remove: () => Promise<void>, lockSeconds: number, log: Logger | undefined): Promise<void> {
  try {
    await remove();
    return;
  } catch {
    // retried below
  }
  const deadline = Date.now() + lockSeconds * 1000;
  const retry = (attempt: number) => {
    const delay = Math.min(5000, 100 * 2 ** attempt) * (0.5 + Math.random() / 2);
    setTimeout(() => {
      remove().catch((err) => {
        if (Date.now() + delay < deadline) retry(attempt + 1);
        else log?.warn({ err }, 'could not free an unanswered idempotency key; it goes stale and can be retried');
      });
    }, delay).unref();
  };
  retry(0);
}
