import type { Queryable } from '../pool.js';

export interface IdempotencyRow {
  id: number;
  request_fingerprint: string;
  response_status: number | null;
  response_body: unknown;
  lock_is_fresh: boolean;
}

/** Claims (user, key) for this request, or returns undefined when the row already exists. */
export async function claimKey(
  db: Queryable,
  k: { userId: string; key: string; method: string; path: string; fingerprint: string; ttlHours: number },
): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO idempotency_keys (user_id, key, request_method, request_path, request_fingerprint, locked_at, expires_at)
     VALUES ($1, $2, $3, $4, $5, now(), now() + make_interval(hours => $6))
     ON CONFLICT (user_id, key) DO NOTHING
     RETURNING id`,
    [k.userId, k.key, k.method, k.path, k.fingerprint, k.ttlHours],
  );
  return rows[0]?.id;
}

export async function findKey(db: Queryable, userId: string, key: string, lockSeconds: number): Promise<IdempotencyRow | undefined> {
  const { rows } = await db.query<IdempotencyRow>(
    `SELECT id, request_fingerprint, response_status, response_body,
            locked_at IS NOT NULL AND locked_at > now() - make_interval(secs => $3) AS lock_is_fresh
       FROM idempotency_keys WHERE user_id = $1 AND key = $2`,
    [userId, key, lockSeconds],
  );
  return rows[0];
}

/** Takes over a key whose first request died without an answer (its lock went stale). */
export async function takeOverStaleKey(db: Queryable, id: number, lockSeconds: number): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE idempotency_keys SET locked_at = now()
      WHERE id = $1 AND response_status IS NULL AND (locked_at IS NULL OR locked_at <= now() - make_interval(secs => $2))`,
    [id, lockSeconds],
  );
  return rowCount === 1;
}

export async function storeResponse(db: Queryable, id: number, status: number, body: unknown): Promise<void> {
  await db.query('UPDATE idempotency_keys SET response_status = $2, response_body = $3, locked_at = NULL WHERE id = $1', [
    id,
    status,
    JSON.stringify(body),
  ]);
}

export async function deleteUnansweredKey(db: Queryable, id: number): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE id = $1 AND response_status IS NULL', [id]);
}

export async function deleteExpiredKeys(db: Queryable): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM idempotency_keys WHERE expires_at < now() AND locked_at IS NULL');
  return rowCount ?? 0;
}
