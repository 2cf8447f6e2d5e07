import type { Queryable } from '../pool.js';

export interface IdempotencyRow {
  id: number;
  request_fingerprint: string;
  response_status: number | null;
  response_body: unknown;
  lock_is_fresh: boolean;
}

/**
 * Claims (user, key) for this request with the claimant's token, or returns undefined when the
 * row already exists. Keys belong to the user's current owner (merges move them).
 */
export async function claimKey(
  db: Queryable,
  k: { userId: string; key: string; method: string; path: string; fingerprint: string; ttlHours: number; claimToken: string },
): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO idempotency_keys (user_id, key, request_method, request_path, request_fingerprint, locked_at, expires_at, claim_token)
     VALUES (coalesce(user_current_owner($1), $1), $2, $3, $4, $5, now(), now() + make_interval(hours => $6), $7)
     ON CONFLICT (user_id, key) DO NOTHING
     RETURNING id`,
    [k.userId, k.key, k.method, k.path, k.fingerprint, k.ttlHours, k.claimToken],
  );
  return rows[0]?.id;
}

/**
 * False when the claimed key sits on a user that has been merged since (the claim computed the
 * owner just before the merge committed): such a claim must be given up and made again.
 */
export async function claimIsOnOwner(db: Queryable, id: number): Promise<boolean> {
  const { rows } = await db.query<{ ok: boolean }>('SELECT user_current_owner(user_id) = user_id AS ok FROM idempotency_keys WHERE id = $1', [id]);
  return rows[0]?.ok === true;
}

/** The holder is alive: pushes its lock forward. False once the key was answered or taken over. */
export async function renewClaim(db: Queryable, id: number, claimToken: string): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE idempotency_keys SET locked_at = now() WHERE id = $1 AND claim_token = $2 AND response_status IS NULL',
    [id, claimToken],
  );
  return rowCount === 1;
}

export async function findKey(db: Queryable, userId: string, key: string, lockSeconds: number): Promise<IdempotencyRow | undefined> {
  const { rows } = await db.query<IdempotencyRow>(
    `SELECT id, request_fingerprint, response_status, response_body,
            locked_at IS NOT NULL AND locked_at > now() - make_interval(secs => $3) AS lock_is_fresh
       FROM idempotency_keys WHERE user_id = coalesce(user_current_owner($1), $1) AND key = $2`,
    [userId, key, lockSeconds],
  );
  return rows[0];
}

/** Takes over a key whose holder died without an answer (it stopped renewing its lock). */
export async function takeOverStaleKey(db: Queryable, id: number, lockSeconds: number, claimToken: string): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE idempotency_keys SET locked_at = now(), claim_token = $3
      WHERE id = $1 AND response_status IS NULL AND (locked_at IS NULL OR locked_at <= now() - make_interval(secs => $2))`,
    [id, lockSeconds, claimToken],
  );
  return rowCount === 1;
}

/**
 * Stores the answer in the caller's money transaction, only while this claimant still holds the
 * key (compare-and-set on its token): a holder whose key was taken over must roll back. The key
 * moves to the user the work was done for (a guest merged mid-request: its account).
 */
export async function storeResponse(
  db: Queryable,
  r: { id: number; claimToken: string; status: number; body: unknown; ownerId?: string },
): Promise<boolean> {
  try {
    const { rowCount } = await db.query(
      `UPDATE idempotency_keys SET response_status = $3, response_body = $4, locked_at = NULL, user_id = coalesce($5, user_id)
        WHERE id = $1 AND claim_token = $2 AND response_status IS NULL`,
      [r.id, r.claimToken, r.status, JSON.stringify(r.body), r.ownerId ?? null],
    );
    return rowCount === 1;
  } catch (err) {
    // The owner already holds this key (claimed by another request around a merge): not ours to answer.
    if ((err as { code?: string }).code === '23505') return false;
    throw err;
  }
}

export async function deleteUnansweredKey(db: Queryable, id: number, claimToken: string): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE id = $1 AND claim_token = $2 AND response_status IS NULL', [id, claimToken]);
}

/** The same, for a claim whose id we never learnt (its INSERT may have committed, its answer was lost). */
export async function deleteUnansweredClaim(db: Queryable, userId: string, key: string, claimToken: string): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND claim_token = $3 AND response_status IS NULL', [userId, key, claimToken]);
}

export async function deleteExpiredKeys(db: Queryable): Promise<number> {
  // A lock renewed in the last hour is a request still running (renewals are seconds apart); an
  // older one was left by a holder that died, and goes with the rest once expired.
  const { rowCount } = await db.query(
    "DELETE FROM idempotency_keys WHERE expires_at < now() AND (locked_at IS NULL OR locked_at < now() - interval '1 hour')",
  );
  return rowCount ?? 0;
}
