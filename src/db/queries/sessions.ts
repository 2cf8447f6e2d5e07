import type { Queryable } from '../pool.js';

export interface RefreshTokenRow {
  id: number;
  session_id: string;
  user_id: string;
  rotated_at: string | null;
  expires_at: string;
  session_revoked_at: string | null;
  is_expired: boolean;
}

export async function insertSession(db: Queryable, userId: string): Promise<string> {
  const { rows } = await db.query<{ id: string }>('INSERT INTO auth_sessions (user_id) VALUES ($1) RETURNING id', [userId]);
  return rows[0]!.id;
}

export async function insertRefreshToken(
  db: Queryable,
  t: { sessionId: string; tokenHash: Buffer; parentId?: number; ttlDays: number },
): Promise<void> {
  await db.query(
    `INSERT INTO refresh_tokens (session_id, token_hash, parent_id, expires_at)
     VALUES ($1, $2, $3, now() + make_interval(days => $4))`,
    [t.sessionId, t.tokenHash, t.parentId ?? null, t.ttlDays],
  );
}

/** Locks the token row so two refreshes with one token serialise (the second sees it rotated). */
export async function lockRefreshToken(db: Queryable, tokenHash: Buffer): Promise<RefreshTokenRow | undefined> {
  const { rows } = await db.query<RefreshTokenRow>(
    `SELECT t.id, t.session_id, s.user_id, t.rotated_at, t.expires_at, s.revoked_at AS session_revoked_at,
            t.expires_at <= now() AS is_expired
       FROM refresh_tokens t JOIN auth_sessions s ON s.id = t.session_id
      WHERE t.token_hash = $1
      FOR UPDATE OF t`,
    [tokenHash],
  );
  return rows[0];
}

export async function markRotated(db: Queryable, tokenId: number, sessionId: string): Promise<void> {
  await db.query('UPDATE refresh_tokens SET rotated_at = now() WHERE id = $1', [tokenId]);
  await db.query('UPDATE auth_sessions SET last_refreshed_at = now() WHERE id = $1', [sessionId]);
}

export async function revokeSession(db: Queryable, sessionId: string, reason: string): Promise<void> {
  await db.query(
    'UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE id = $1 AND revoked_at IS NULL',
    [sessionId, reason],
  );
}

export async function revokeAllSessions(db: Queryable, userId: string, reason: string): Promise<void> {
  await db.query(
    'UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $2 WHERE user_id = $1 AND revoked_at IS NULL',
    [userId, reason],
  );
}

export async function revokeOtherSessions(db: Queryable, userId: string, keepSessionId: string, reason: string): Promise<void> {
  await db.query(
    'UPDATE auth_sessions SET revoked_at = now(), revoked_reason = $3 WHERE user_id = $1 AND id <> $2 AND revoked_at IS NULL',
    [userId, keepSessionId, reason],
  );
}

/**
 * Records a Sign in with Apple identity token as used. False when it was used before: a replay.
 * Kept until the token expires (after that Apple's own expiry refuses it).
 */
export async function rememberIdentityToken(db: Queryable, sha256: Buffer, expiresAt: Date): Promise<boolean> {
  const { rowCount } = await db.query(
    'INSERT INTO used_identity_tokens (token_hash, expires_at) VALUES ($1, $2) ON CONFLICT (token_hash) DO NOTHING',
    [sha256, expiresAt],
  );
  return rowCount === 1;
}

export async function deleteExpiredIdentityTokens(db: Queryable): Promise<number> {
  const { rowCount } = await db.query('DELETE FROM used_identity_tokens WHERE expires_at < now()');
  return rowCount ?? 0;
}
