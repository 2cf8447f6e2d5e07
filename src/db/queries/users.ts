import type { Queryable } from '../pool.js';

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
  created_at: string;
  updated_at: string;
}

const USER_COLUMNS = `id, device_id, apple_sub, email, is_guest, tier, language, theme_preference, is_admin,
  banned_at, device_bit_marked_at, deleted_at, created_at, updated_at`;

export async function findUserById(db: Queryable, id: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE id = $1`, [id]);
  return rows[0];
}

export async function findUserByDeviceId(db: Queryable, deviceId: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(`SELECT ${USER_COLUMNS} FROM users WHERE device_id = $1`, [deviceId]);
  return rows[0];
}

/**
 * Inserts a guest for a device unless one exists. Concurrent callers with the same device_id
 * queue on the unique index; exactly one gets the row back, the others get undefined.
 */
export async function insertGuestIfAbsent(db: Queryable, deviceId: string): Promise<UserRow | undefined> {
  const { rows } = await db.query<UserRow>(
    `INSERT INTO users (device_id, is_guest) VALUES ($1, true)
     ON CONFLICT (device_id) DO NOTHING
     RETURNING ${USER_COLUMNS}`,
    [deviceId],
  );
  return rows[0];
}

export async function markDeviceBitSet(db: Queryable, userId: string): Promise<void> {
  await db.query('UPDATE users SET device_bit_marked_at = now() WHERE id = $1 AND device_bit_marked_at IS NULL', [userId]);
}

export interface AuthState {
  id: string;
  is_guest: boolean;
  is_admin: boolean;
  banned: boolean;
  deleted: boolean;
  session_revoked: boolean | null; // null: no such session
}

/** One round trip per authenticated request: the user's standing and the session's. */
export async function loadAuthState(db: Queryable, userId: string, sessionId: string | null): Promise<AuthState | undefined> {
  const { rows } = await db.query<AuthState>(
    `SELECT u.id, u.is_guest, u.is_admin, u.banned_at IS NOT NULL AS banned, u.deleted_at IS NOT NULL AS deleted,
            CASE WHEN s.id IS NULL THEN NULL ELSE s.revoked_at IS NOT NULL OR s.user_id <> u.id END AS session_revoked
       FROM users u LEFT JOIN auth_sessions s ON s.id = $2
      WHERE u.id = $1`,
    [userId, sessionId],
  );
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
