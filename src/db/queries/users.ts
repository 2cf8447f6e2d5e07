import { preparedStatement, type Queryable } from '../pool.js';

export interface UserRow {
  id: string;
  device_id: string | null;
  apple_sub: string | null;
  email: string | null;
  is_guest: boolean;
  tier: 'free' | 'premium';
  language: string;
  theme_preference: string;
  is_admin: boolean;
  banned_at: string | null;
  device_bit_marked_at: string | null;
  deleted_at: string | null;
  merged_into: string | null;
  /** GoTrue's user_metadata: the client's own pairs (auth.updateUser({ data })). */
  user_metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
}

const USER_COLUMNS = `id, device_id, apple_sub, email, is_guest, tier, language, theme_preference, is_admin,
  banned_at, device_bit_marked_at, deleted_at, merged_into, user_metadata, created_at, updated_at`;

export async function findUserById(db: Queryable, id: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0];
}

export async function findUserByDeviceId(db: Queryable, deviceId: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE device_id = $1`, [deviceId]);
  return rows[0];
}

/** The live guest a device id opens, locked (FOR SHARE) against a concurrent sign-in, merge or deletion. */
export async function lockGuestByDeviceId(db: Queryable, deviceId: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(
    `SELECT ${USER_COLUMNS} FROM users
      WHERE device_id = $1 AND is_guest AND deleted_at IS NULL AND merged_into IS NULL FOR SHARE`,
    [deviceId],
  );
  return rows[0];
}

const DEVICE_HASH = "encode(sha256(convert_to($1::text, 'UTF8')), 'hex')";

/**
 * Inserts a guest for a device unless one exists. Concurrent callers with the same device_id
 * queue on the unique index; exactly one gets the row back, the others get undefined.
 */
export async function insertGuestIfAbsent(db: Queryable, deviceId: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(
    `INSERT INTO users (device_id, is_guest, onboarded_device_hash) VALUES ($1, true, ${DEVICE_HASH})
     ON CONFLICT (device_id) DO NOTHING
     RETURNING ${USER_COLUMNS}`,
    [deviceId],
  );
  return rows[0];
}

/** A guest with no device (GoTrue's anonymous sign-up): it is owed nothing, so nothing records a grant. */
export async function insertDevicelessGuest(db: Queryable, metadata: Record<string, unknown>): Promise<UserRow> {
  const { rows } = await db.query<UserRow>(`INSERT INTO users (is_guest, user_metadata) VALUES (true, $1) RETURNING ${USER_COLUMNS}`, [metadata]);
  return rows[0]!;
}

/**
 * A live user's user_metadata, locked for a read-modify-write. FOR NO KEY UPDATE, what the UPDATE
 * takes anyway: it does not wait for (or block) the ledger's FOR KEY SHARE on the same row.
 */
export async function lockUserMetadata(db: Queryable, userId: string): Promise<Record<string, unknown> | undefined> {
  const { rows } = await db.query<{ user_metadata: Record<string, unknown> }>(
    'SELECT user_metadata FROM users WHERE id = $1 AND deleted_at IS NULL AND merged_into IS NULL FOR NO KEY UPDATE',
    [userId],
  );
  return rows[0]?.user_metadata;
}

export async function setUserMetadata(db: Queryable, userId: string, metadata: Record<string, unknown>): Promise<UserRow> {
  const { rows } = await db.query<UserRow>(`UPDATE users SET user_metadata = $2 WHERE id = $1 RETURNING ${USER_COLUMNS}`, [userId, metadata]);
  return rows[0]!;
}

/**
 * Records the first guest of a device id and what it is owed: the free credits now (granted), once
 * DeviceCheck bit0 is set (pending), or nothing. A device id gets this once, ever: undefined when
 * it had a guest before (merged or deleted since, or concurrent).
 */
export async function claimDeviceGrant(
  db: Queryable,
  deviceId: string,
  userId: string,
  grant: 'now' | 'pending' | 'none',
): Promise<{ granted: boolean; grant_pending: boolean } | undefined> {
  const { rows } = await db.query<{ granted: boolean; grant_pending: boolean }>(
    `INSERT INTO device_grants (device_hash, first_user_id, granted, grant_pending) VALUES (${DEVICE_HASH}, $2, $3, $4)
     ON CONFLICT (device_hash) DO NOTHING RETURNING granted, grant_pending`,
    [deviceId, userId, grant === 'now', grant === 'pending'],
  );
  return rows[0];
}

/**
 * Whether a user who onboarded with this device id (whether or not they still hold it: Sign in with
 * Apple, merges and deletion release it) is banned, or is now part of a banned account.
 */
export async function deviceOfBannedUser(db: Queryable, deviceId: string): Promise<boolean> {
  const { rows } = await db.query(
    `SELECT 1 FROM users u JOIN users o ON o.id = coalesce(user_current_owner(u.id), u.id)
      WHERE u.onboarded_device_hash = ${DEVICE_HASH} AND o.banned_at IS NOT NULL LIMIT 1`,
    [deviceId],
  );
  return rows.length > 0;
}

/** A device id's grant still waiting for its DeviceCheck mark; bitMarked: Apple confirmed bit0 for it. */
export async function findPendingDeviceGrant(db: Queryable, deviceId: string): Promise<{ firstUserId: string; bitMarked: boolean } | undefined> {
  const { rows } = await db.query<{ first_user_id: string; bit_marked_at: string | null }>(
    `SELECT first_user_id, bit_marked_at FROM device_grants WHERE device_hash = ${DEVICE_HASH} AND grant_pending`,
    [deviceId],
  );
  return rows[0] ? { firstUserId: rows[0].first_user_id, bitMarked: rows[0].bit_marked_at !== null } : undefined;
}

/**
 * Ends a pending grant (in the transaction that writes the grant, if any): true for the one caller
 * that moved it, so a grant completes once however many calls race to complete it.
 */
export async function settlePendingDeviceGrant(db: Queryable, deviceId: string, granted: boolean): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE device_grants SET grant_pending = false, granted = $2 WHERE device_hash = ${DEVICE_HASH} AND grant_pending`,
    [deviceId, granted],
  );
  return rowCount === 1;
}

/** Whether this device id got a grant whose DeviceCheck mark is still owed (it survives merges and deletion). */
export async function deviceMarkOwed(db: Queryable, deviceId: string): Promise<boolean> {
  const { rows } = await db.query(`SELECT 1 FROM device_grants WHERE device_hash = ${DEVICE_HASH} AND granted AND bit_marked_at IS NULL`, [deviceId]);
  return rows.length > 0;
}

export async function markDeviceBitSet(db: Queryable, deviceId: string): Promise<void> {
  await db.query(`UPDATE device_grants SET bit_marked_at = now() WHERE device_hash = ${DEVICE_HASH} AND bit_marked_at IS NULL`, [deviceId]);
  await db.query('UPDATE users SET device_bit_marked_at = now() WHERE device_id = $1 AND device_bit_marked_at IS NULL', [deviceId]);
}

export interface AuthState {
  id: string;
  is_guest: boolean;
  is_admin: boolean;
  banned: boolean;
  deleted: boolean;
  merged_into: string | null;
  session_revoked: boolean | null; // null: no such session
}

/** AuthState's columns, from users u joined to the session s; a query that reads more joins these in. */
export const AUTH_STATE_COLUMNS = `u.id, u.is_guest, u.is_admin, u.banned_at IS NOT NULL AS banned, u.deleted_at IS NOT NULL AS deleted, u.merged_into,
       CASE WHEN s.id IS NULL THEN NULL ELSE s.revoked_at IS NOT NULL OR s.user_id <> u.id END AS session_revoked`;

const authState = preparedStatement(
  'auth_state',
  `SELECT ${AUTH_STATE_COLUMNS}
     FROM users u LEFT JOIN auth_sessions s ON s.id = $2
    WHERE u.id = $1`,
);

/** One round trip per authenticated request: the user's standing and the session's. */
export async function loadAuthState(db: Queryable, userId: string, sessionId: string | null): Promise<AuthState | undefined> {
  const { rows } = await db.query<AuthState>(authState([userId, sessionId]));
  return rows[0];
}

export async function updateUserSettings(
  db: Queryable,
  userId: string,
  patch: { language?: string; theme_preference?: string },
): Promise<{ id: string; language: string; theme_preference: string } | undefined> {
  const { rows } = await db.query<{ id: string; language: string; theme_preference: string }>(
    `UPDATE users SET language = coalesce($2, language), theme_preference = coalesce($3, theme_preference)
      WHERE id = $1 AND deleted_at IS NULL
      RETURNING id, language, theme_preference`,
    [userId, patch.language ?? null, patch.theme_preference ?? null],
  );
  return rows[0];
}

/** Locks a user row (Sign in with Apple's merge serialises on the rows involved). */
export async function lockUser(db: Queryable, id: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1 FOR UPDATE`, [id]);
  return rows[0];
}

export async function lockUserByAppleSub(db: Queryable, appleSub: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE apple_sub = $1 FOR UPDATE`, [appleSub]);
  return rows[0];
}

/** A new Apple account; undefined when a concurrent sign-in created it first (unique apple_sub). */
export async function insertAppleUserIfAbsent(db: Queryable, appleSub: string, email: string | null): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(
    `INSERT INTO users (apple_sub, email, is_guest) VALUES ($1, $2, false)
     ON CONFLICT (apple_sub) DO NOTHING RETURNING ${USER_COLUMNS}`,
    [appleSub, email],
  );
  return rows[0];
}

/**
 * The guest becomes the Apple account (same id: nothing of theirs has to move). It gives up its
 * device id: from now on only Apple's identity opens it (device-check on that device onboards a
 * new guest, with no second grant — device_grants remembers the device id's).
 */
export async function linkAppleToGuest(db: Queryable, guestId: string, appleSub: string, email: string | null): Promise<UserRow> {
  const { rows } = await db.query<UserRow>(
    `UPDATE users SET apple_sub = $2, email = coalesce($3, email), is_guest = false, device_id = NULL WHERE id = $1 RETURNING ${USER_COLUMNS}`,
    [guestId, appleSub, email],
  );
  return rows[0]!;
}

/**
 * Hands a merged guest's jobs, files and purchases to the account it merged into, and leaves the
 * guest as a tombstone: deleted, pointing at its new owner, device_id released.
 */
export async function moveGuestInto(db: Queryable, guestId: string, intoId: string): Promise<void> {
  await db.query('UPDATE video_jobs SET user_id = $2 WHERE user_id = $1', [guestId, intoId]);
  await db.query('UPDATE storage_objects SET owner_id = $2 WHERE owner_id = $1', [guestId, intoId]);
  await db.query('UPDATE iap_transactions SET user_id = $2 WHERE user_id = $1', [guestId, intoId]);
  // A retry of the guest's request by the account finds the first answer (keys are per user).
  await db.query(
    `UPDATE idempotency_keys k SET user_id = $2 WHERE k.user_id = $1
        AND NOT EXISTS (SELECT 1 FROM idempotency_keys o WHERE o.user_id = $2 AND o.key = k.key)`,
    [guestId, intoId],
  );
  await db.query('DELETE FROM idempotency_keys WHERE user_id = $1', [guestId]);
  await db.query('UPDATE users SET merged_into = $2, deleted_at = now(), device_id = NULL WHERE id = $1', [guestId, intoId]);
}

/**
 * Account deletion (Apple requires it in-app): personal data goes, the anonymised money trail
 * stays (ledger entries and purchase records keep the user id, which no longer names anyone).
 */
export async function markDeleted(db: Queryable, userId: string): Promise<void> {
  // The identities go with the account at once: signing in with that Apple ID, or onboarding that
  // device id, must start afresh, never reopen (or merge a guest's credits into) the deleted account.
  await db.query('UPDATE users SET deleted_at = coalesce(deleted_at, now()), apple_sub = NULL, device_id = NULL WHERE id = $1', [userId]);
}

/** The account's personal data and its jobs' prompts and input URLs (the user's words and pictures), scrubbed together. */
export async function scrubDeletedUser(db: Queryable, userId: string): Promise<void> {
  await db.query(
    `WITH account AS (
       UPDATE users SET email = NULL, apple_sub = NULL, device_id = NULL, language = 'en', theme_preference = 'system',
              deleted_at = coalesce(deleted_at, now())
        WHERE id = $1)
     UPDATE video_jobs SET prompt = '', image_url = NULL, deleted_at = coalesce(deleted_at, now()) WHERE user_id = $1`,
    [userId],
  );
}

export async function liveObjectsOwnedBy(db: Queryable, userId: string): Promise<{ bucket: string; key: string }[]> {
  const { rows } = await db.query<{ bucket: string; key: string }>(
    'SELECT bucket, key FROM storage_objects WHERE owner_id = $1 AND deleted_at IS NULL',
    [userId],
  );
  return rows;
}

export async function jobIdsOf(db: Queryable, userId: string): Promise<string[]> {
  const { rows } = await db.query<{ job_id: string }>('SELECT job_id FROM video_jobs WHERE user_id = $1 AND deleted_at IS NULL', [userId]);
  return rows.map((r) => r.job_id);
}

export async function findUserByAppleSub(db: Queryable, appleSub: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE apple_sub = $1`, [appleSub]);
  return rows[0];
}
