import { withTransaction, type Queryable } from '../db/pool.js';
import { lockUserMetadata, setUserMetadata, type UserRow } from '../db/queries/users.js';
import { refuse } from '../errors/domain-error.js';

/**
 * GoTrue's user_metadata (supabase-js auth.updateUser({ data })): the user's own pairs, merged as
 * GoTrue merges them — a top-level key replaces, a null removes it. Bounded: 8 KiB as JSON here
 * keeps PostgreSQL's text form (which adds a space after each : and ,) within the column's 16 KiB check.
 */
export const MAX_USER_METADATA_BYTES = 8192;

/** Refuses metadata over the bound (at sign-up and on every update). */
export function boundedMetadata(metadata: Record<string, unknown>): Record<string, unknown> {
  if (Buffer.byteLength(JSON.stringify(metadata)) > MAX_USER_METADATA_BYTES) {
    throw refuse.invalid(`user_metadata is limited to ${MAX_USER_METADATA_BYTES} bytes of JSON`, 'data');
  }
  return metadata;
}

export async function updateUserMetadata(db: Queryable, userId: string, pairs: Record<string, unknown>): Promise<UserRow> {
  return withTransaction(db, async (tx) => {
    const current = await lockUserMetadata(tx, userId);
    if (!current) throw refuse.notFound('user');
    // A Map, not an object: a "__proto__" key from JSON stays a key instead of setting a prototype.
    const merged = new Map(Object.entries(current));
    for (const [key, value] of Object.entries(pairs)) {
      if (value === null) merged.delete(key);
      else merged.set(key, value);
    }
    return setUserMetadata(tx, userId, boundedMetadata(Object.fromEntries(merged)));
  });
}
