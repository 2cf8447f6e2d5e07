import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { fingerprint } from '../../src/http/idempotency.js';
import { useTestApp, type TestApp } from '../support/harness.js';

/**
 * An Idempotency-Key is taken over only from a holder that is gone, never from one that is slow:
 * the live holder renews its lock, and only the current claimant may store an answer.
 */

const SIM = 'simulator-text-to-video';
const LOCK_SECONDS = 2;

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Holds the user's account row locked from another connection, as a long transaction would. */
const blockAccount = (t: TestApp, userId: string) => t.holdLocks('SELECT 1 FROM credit_accounts WHERE user_id = $1 FOR UPDATE', [userId]);

async function keyRow(t: TestApp, key: string) {
  const { rows } = await t.db.query(
    `SELECT locked_at, created_at, response_status, extract(epoch FROM locked_at - created_at) AS renewed_after
       FROM idempotency_keys WHERE key = $1`,
    [key],
  );
  return rows[0] as { response_status: number | null; renewed_after: number } | undefined;
}

async function countJobs(t: TestApp, userId: string): Promise<number> {
  return (await t.db.query('SELECT count(*)::int AS n FROM video_jobs WHERE user_id = $1', [userId])).rows[0].n;
}

describe('idempotency keys and slow requests', () => {
  const t = useTestApp({ IDEMPOTENCY_LOCK_SECONDS: String(LOCK_SECONDS) });

  it('a request blocked longer than the lock window keeps its key: the retry gets 409, then the one answer', async () => {
    const g = await t().createGuest();
    const key = randomUUID();
    const body = { model_id: SIM, prompt: 'slow but alive' };
    const block = await blockAccount(t(), g.userId);
    let first: Promise<Response> | undefined;
    try {
      first = t().generate(g, body, key);
      // The holder is stuck on the account lock well past the lock window, renewing its claim.
      await until('the holder to renew its lock past the window', async () => {
        const row = await keyRow(t(), key);
        return row && row.renewed_after > LOCK_SECONDS * 1.5 ? row : undefined;
      });
      const retry = await t().json(t().generate(g, body, key), 409);
      expect(retry.error.code).toBe('ERR_4009');
    } finally {
      await block.release();
    }
    const answer = await t().json(first!);
    const replay = await t().generate(g, body, key);
    expect(replay.status).toBe(200);
    expect(replay.headers.get('x-idempotent-replay')).toBe('true');
    expect(((await replay.json()) as any).job_id).toBe(answer.job_id);
    expect(await countJobs(t(), g.userId)).toBe(1);
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(9);
  });

  it('a holder whose key was taken over (it could not renew) rolls back instead of answering twice', async () => {
    const g = await t().createGuest();
    const key = randomUUID();
    const body = { model_id: SIM, prompt: 'taken over while blocked' };
    const block = await blockAccount(t(), g.userId);
    let first: Promise<Response> | undefined;
    try {
      first = t().generate(g, body, key);
      await until('the claim', () => keyRow(t(), key));
      // What a retry on another instance does once the lock looks stale: a new claimant's token.
      await t().db.query('UPDATE idempotency_keys SET claim_token = gen_random_uuid(), locked_at = now() WHERE key = $1', [key]);
    } finally {
      await block.release();
    }
    const res = await t().json(first!, 409);
    expect(res.error).toMatchObject({ code: 'ERR_4009', details: { reason: 'taken_over' } });
    expect(await countJobs(t(), g.userId)).toBe(0);
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
    // The new claimant still owns the key; the loser did not delete it.
    expect(await keyRow(t(), key)).toMatchObject({ response_status: null });
  });

  it('a holder that died (no renewals) is taken over after the window, and the retry does the work once', async () => {
    const g = await t().createGuest();
    const key = randomUUID();
    const body = { model_id: SIM, prompt: 'holder crashed' };
    // A claim left by a process that died mid-request: never renewed, never answered.
    await t().db.query(
      `INSERT INTO idempotency_keys (user_id, key, request_method, request_path, request_fingerprint, locked_at, claim_token)
       SELECT $1, $2, 'POST', '/functions/v1/generate-video', request_fingerprint, now() - interval '1 hour', gen_random_uuid()
         FROM (SELECT $3::text AS request_fingerprint) f`,
      [g.userId, key, fingerprint('POST', '/functions/v1/generate-video', JSON.stringify(body))],
    );
    const res = await t().json(t().generate(g, body, key));
    expect(await countJobs(t(), g.userId)).toBe(1);
    const replay = await t().json(t().generate(g, body, key));
    expect(replay.job_id).toBe(res.job_id);
  });
});
