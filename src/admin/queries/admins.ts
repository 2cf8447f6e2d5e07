import type { Queryable } from '../../db/pool.js';

/** SQL of the admin console and API: admins, their sessions, sign-in attempts, the audit log. */

export interface AdminRow {
  id: string;
  email: string;
  password_hash: string;
  totp_secret: string | null;
  disabled_at: string | null;
}

export async function insertAdmin(db: Queryable, email: string, passwordHash: string, totpSecret: string | null): Promise<AdminRow | undefined> {
  const { rows } = await db.query<AdminRow>(
    `INSERT INTO admins (email, password_hash, totp_secret) VALUES ($1, $2, $3)
     ON CONFLICT (email) DO NOTHING RETURNING id, email, password_hash, totp_secret, disabled_at`,
    [email, passwordHash, totpSecret],
  );
  return rows[0];
}

export async function updateAdminPassword(db: Queryable, email: string, passwordHash: string, totpSecret: string | null): Promise<AdminRow | undefined> {
  const { rows } = await db.query<AdminRow>(
    `UPDATE admins SET password_hash = $2, totp_secret = $3 WHERE email = $1 RETURNING id, email, password_hash, totp_secret, disabled_at`,
    [email, passwordHash, totpSecret],
  );
  return rows[0];
}

export async function findAdminByEmail(db: Queryable, email: string): Promise<AdminRow | undefined> {
  const { rows } = await db.query<AdminRow>('SELECT id, email, password_hash, totp_secret, disabled_at FROM admins WHERE email = $1', [email]);
  return rows[0];
}

/**
 * Uses up a TOTP time step: true once per step and admin (an UPDATE that only moves forward, so
 * two sign-ins with one code cannot both pass).
 */
export async function useTotpStep(db: Queryable, adminId: string, step: number): Promise<boolean> {
  const { rowCount } = await db.query(
    'UPDATE admins SET totp_last_step = $2 WHERE id = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)',
    [adminId, step],
  );
  return rowCount === 1;
}

export type AdminSessionKind = 'console' | 'api';

export async function insertAdminSession(
  db: Queryable,
  s: { adminId: string; kind: AdminSessionKind; tokenHash: Buffer; ttlHours: number },
): Promise<{ id: string; expires_at: string }> {
  const { rows } = await db.query<{ id: string; expires_at: string }>(
    `INSERT INTO admin_sessions (admin_id, kind, token_hash, expires_at) VALUES ($1, $2, $3, now() + make_interval(hours => $4))
     RETURNING id, expires_at`,
    [s.adminId, s.kind, s.tokenHash, s.ttlHours],
  );
  return rows[0]!;
}

/** The live session a token names: not expired, not revoked, its admin not disabled. */
export async function findAdminSession(db: Queryable, tokenHash: Buffer, kind: AdminSessionKind) {
  const { rows } = await db.query<{ session_id: string; admin_id: string; email: string }>(
    `SELECT s.id AS session_id, a.id AS admin_id, a.email
       FROM admin_sessions s JOIN admins a ON a.id = s.admin_id
      WHERE s.token_hash = $1 AND s.kind = $2 AND s.revoked_at IS NULL AND s.expires_at > now() AND a.disabled_at IS NULL`,
    [tokenHash, kind],
  );
  return rows[0];
}

export async function revokeAdminSession(db: Queryable, sessionId: string): Promise<void> {
  await db.query('UPDATE admin_sessions SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [sessionId]);
}

/** Failed (or still unresolved) sign-ins within the window, and the seconds until the oldest of them leaves it. */
export interface FailureCount {
  failures: number;
  retryAfter: number;
}

/**
 * Records a sign-in attempt and counts the failed (or still unresolved) attempts within the window,
 * this one included: for this email from this address, and for this email from anywhere. Insert
 * first, then count: concurrent guesses each see the others, so none slips past the limit.
 * `address` is the client's address key (an IPv6 /64).
 */
export async function recordLoginAttempt(
  db: Queryable,
  email: string,
  address: string,
  windowSeconds: number,
): Promise<{ id: number; fromAddress: FailureCount; forEmail: FailureCount }> {
  // Nothing older than the window counts any more: pruned here, so no sweeper is needed.
  await db.query('DELETE FROM admin_login_attempts WHERE created_at < now() - make_interval(secs => $1)', [windowSeconds]);
  const { rows: ins } = await db.query<{ id: number }>('INSERT INTO admin_login_attempts (email, ip) VALUES ($1, $2) RETURNING id', [email, address]);
  // The (email, ip, created_at) index serves both counts: the email alone is its prefix.
  const { rows } = await db.query<{ address_failures: number; address_oldest: number | null; email_failures: number; email_oldest: number | null }>(
    `SELECT count(*) FILTER (WHERE ip = $2)::int AS address_failures,
            extract(epoch FROM min(created_at) FILTER (WHERE ip = $2) + make_interval(secs => $3) - now())::int AS address_oldest,
            count(*)::int AS email_failures,
            extract(epoch FROM min(created_at) + make_interval(secs => $3) - now())::int AS email_oldest
       FROM admin_login_attempts
      WHERE email = $1 AND NOT succeeded AND created_at > now() - make_interval(secs => $3)`,
    [email, address, windowSeconds],
  );
  const r = rows[0]!;
  const retryAfter = (oldest: number | null) => Math.max(1, oldest ?? windowSeconds);
  return {
    id: ins[0]!.id,
    fromAddress: { failures: r.address_failures, retryAfter: retryAfter(r.address_oldest) },
    forEmail: { failures: r.email_failures, retryAfter: retryAfter(r.email_oldest) },
  };
}

/**
 * A successful sign-in clears the failures before it from its address; those from elsewhere still
 * count against the email's budget until they leave the window.
 */
export async function markLoginSucceeded(db: Queryable, attemptId: number, email: string, address: string): Promise<void> {
  await db.query('UPDATE admin_login_attempts SET succeeded = true WHERE id = $1', [attemptId]);
  await db.query('DELETE FROM admin_login_attempts WHERE email = $1 AND ip = $2 AND NOT succeeded AND id < $3', [email, address, attemptId]);
}

// ---------------------------------------------------------------------------------------------
// The audit log.
// ---------------------------------------------------------------------------------------------

export interface AdminActionRow {
  id: number;
  admin_id: string;
  admin_email?: string;
  action: string;
  target_type: 'user' | 'model';
  target_id: string;
  amount: number | null;
  reason: string | null;
  request_id: string;
  idempotency_key: string | null;
  fingerprint: string | null;
  before: Record<string, unknown> | null;
  after: Record<string, unknown> | null;
  created_at: string;
}

export interface AdminActionInsert {
  adminId: string;
  action: string;
  targetType: 'user' | 'model';
  targetId: string;
  amount?: number | null;
  reason?: string | null;
  requestId: string;
  idempotencyKey?: string | null;
  fingerprint?: string | null;
  before: unknown;
  after: unknown;
}

/** Appends an audit row; undefined when the admin already used this idempotency key. */
export async function insertAdminAction(db: Queryable, a: AdminActionInsert): Promise<AdminActionRow | undefined> {
  const { rows } = await db.query<AdminActionRow>(
    `INSERT INTO admin_actions (admin_id, action, target_type, target_id, amount, reason, request_id, idempotency_key, fingerprint, before, after)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
     ON CONFLICT DO NOTHING RETURNING *`,
    [
      a.adminId,
      a.action,
      a.targetType,
      a.targetId,
      a.amount ?? null,
      a.reason ?? null,
      a.requestId,
      a.idempotencyKey ?? null,
      a.fingerprint ?? null,
      JSON.stringify(a.before ?? null),
      JSON.stringify(a.after ?? null),
    ],
  );
  return rows[0];
}

export async function findAdminActionByKey(db: Queryable, adminId: string, key: string): Promise<AdminActionRow | undefined> {
  const { rows } = await db.query<AdminActionRow>('SELECT * FROM admin_actions WHERE admin_id = $1 AND idempotency_key = $2', [adminId, key]);
  return rows[0];
}

/** Newest first, keyset-paginated by id (before = the last id of the previous page). */
export async function listAdminActions(
  db: Queryable,
  q: { before?: number; limit: number; targetType?: string; targetId?: string },
): Promise<AdminActionRow[]> {
  // Only the filters given: "($3 IS NULL OR target_id = $3)" cannot use the target index in a
  // generic plan, so one user's actions were read by walking the whole log newest first.
  const values: unknown[] = [];
  const where: string[] = [];
  const filter = (sql: string, value: unknown) => {
    values.push(value);
    where.push(sql.replace('?', `$${values.length}`));
  };
  if (q.before != null) filter('x.id < ?::bigint', q.before);
  if (q.targetType != null) filter('x.target_type = ?::text', q.targetType);
  if (q.targetId != null) filter('x.target_id = ?::text', q.targetId);
  values.push(q.limit);
  const { rows } = await db.query<AdminActionRow>(
    `SELECT x.*, a.email AS admin_email FROM admin_actions x JOIN admins a ON a.id = x.admin_id
      ${where.length > 0 ? `WHERE ${where.join(' AND ')}` : ''}
      ORDER BY x.id DESC LIMIT $${values.length}`,
    values,
  );
  return rows;
}
