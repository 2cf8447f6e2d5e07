import type { Queryable } from '../pool.js';

/** APNs device tokens and what each push task settled (migration 0011). */

export interface PushTokenInsert {
  token: string;
  userId: string;
  sessionId: string | null;
  environment: 'sandbox' | 'production';
  language: string | null;
}

/**
 * Registers a token for a live user, taking it from whoever had it (one device, one owner). The
 * user's row is share-locked (users first, the global lock order): a deletion or merge that holds
 * it finishes first, and then nothing is inserted for the account it ended. False = no live user.
 */
export async function upsertPushToken(db: Queryable, t: PushTokenInsert): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO push_tokens (token, user_id, session_id, environment, language)
     SELECT $1, u.id, $3, $4, $5 FROM users u WHERE u.id = $2 AND u.deleted_at IS NULL FOR SHARE
     ON CONFLICT (token) DO UPDATE
       SET user_id = excluded.user_id, session_id = excluded.session_id, environment = excluded.environment,
           language = excluded.language, registered_at = clock_timestamp()`,
    [t.token, t.userId, t.sessionId, t.environment, t.language],
  );
  return (rowCount ?? 0) > 0;
}

export async function deletePushToken(db: Queryable, userId: string, token: string): Promise<boolean> {
  const { rowCount } = await db.query('DELETE FROM push_tokens WHERE token = $1 AND user_id = $2', [token, userId]);
  return (rowCount ?? 0) > 0;
}

/** Logout: local = this session's devices; others = every device registered under another session; global = all. */
export async function deletePushTokensOnLogout(db: Queryable, userId: string, sessionId: string, scope: 'global' | 'local' | 'others'): Promise<void> {
  if (scope === 'local') await db.query('DELETE FROM push_tokens WHERE user_id = $1 AND session_id = $2', [userId, sessionId]);
  else if (scope === 'others') await db.query('DELETE FROM push_tokens WHERE user_id = $1 AND session_id IS DISTINCT FROM $2', [userId, sessionId]);
  else await db.query('DELETE FROM push_tokens WHERE user_id = $1', [userId]);
}

export async function deleteAllPushTokens(db: Queryable, userId: string): Promise<void> {
  await db.query('DELETE FROM push_tokens WHERE user_id = $1', [userId]);
}

/**
 * A merge (or a guest becoming the Apple account): the guest's devices now belong to the account.
 * Their sessions ended with the guest, so they are no longer tied to one (a later re-registration
 * ties them to the new session again).
 */
export async function movePushTokens(db: Queryable, fromUserId: string, toUserId: string): Promise<void> {
  await db.query('UPDATE push_tokens SET user_id = $2, session_id = NULL WHERE user_id = $1', [fromUserId, toUserId]);
}

/** APNs' 410: gone, unless the device registered it again after APNs learned it was invalid. */
export async function deleteUnregisteredToken(db: Queryable, token: string, apnsTimestampMs: number | undefined): Promise<boolean> {
  const { rowCount } = await db.query(
    'DELETE FROM push_tokens WHERE token = $1 AND ($2::float8 IS NULL OR registered_at <= to_timestamp($2::float8 / 1000))',
    [token, apnsTimestampMs ?? null],
  );
  return (rowCount ?? 0) > 0;
}

export async function deleteInvalidToken(db: Queryable, token: string): Promise<void> {
  await db.query('DELETE FROM push_tokens WHERE token = $1', [token]);
}

export interface JobPushTarget {
  token: string;
  environment: 'sandbox' | 'production';
  language: string;
}

export interface EndedJob {
  job_id: string;
  user_id: string;
  status: string;
  error_code: string | null;
  deleted_at: Date | null;
}

export async function findEndedJob(db: Queryable, jobId: string): Promise<EndedJob | undefined> {
  const { rows } = await db.query<EndedJob>('SELECT job_id, user_id, status, error_code, deleted_at FROM video_jobs WHERE job_id = $1', [jobId]);
  return rows[0];
}

/** The owner's devices this job's push has not settled yet, each with its language; none for a banned or deleted owner. */
export async function pendingPushTargets(db: Queryable, jobId: string, userId: string): Promise<JobPushTarget[]> {
  const { rows } = await db.query<JobPushTarget>(
    `SELECT t.token, t.environment, coalesce(t.language, u.language) AS language
       FROM push_tokens t JOIN users u ON u.id = t.user_id
      WHERE t.user_id = $1 AND u.deleted_at IS NULL AND u.banned_at IS NULL
        AND NOT EXISTS (SELECT 1 FROM push_deliveries d WHERE d.job_id = $2 AND d.token = t.token)
      ORDER BY t.registered_at`,
    [userId, jobId],
  );
  return rows;
}

export async function recordDelivery(db: Queryable, jobId: string, token: string, outcome: string, apnsId: string | null): Promise<void> {
  await db.query('INSERT INTO push_deliveries (job_id, token, outcome, apns_id) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING', [
    jobId,
    token,
    outcome,
    apnsId,
  ]);
}

/** Account purge: device tokens are personal data, also in the delivery records. */
export async function deleteDeliveriesOf(db: Queryable, userId: string): Promise<void> {
  await db.query('DELETE FROM push_deliveries d USING video_jobs j WHERE j.job_id = d.job_id AND j.user_id = $1', [userId]);
}
