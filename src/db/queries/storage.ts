import type { Queryable } from '../pool.js';

/** What we know of a stored object: everything a download is served with comes from here. */
export interface StorageObjectRow {
  owner_id: string | null;
  size: number;
  content_type: string;
  /** Hex SHA-256 of the bytes; null for rows written before migration 0008. */
  sha256: string | null;
  /** ISO timestamp (the pool parses timestamptz so): when the bytes were last written. */
  updated_at: string;
}

/** Records (or, for an upsert, rewrites) an object's row; its id, or undefined when another owner has the key. */
export async function recordObject(
  db: Queryable,
  o: { bucket: string; key: string; ownerId: string | null; size: number; contentType: string; sha256: string },
): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO storage_objects (bucket, key, owner_id, size, content_type, sha256) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (bucket, key) DO UPDATE SET size = EXCLUDED.size, content_type = EXCLUDED.content_type,
       sha256 = EXCLUDED.sha256, updated_at = now(), deleted_at = NULL
       WHERE storage_objects.owner_id IS NOT DISTINCT FROM EXCLUDED.owner_id
     RETURNING id::text AS id`,
    [o.bucket, o.key, o.ownerId, o.size, o.contentType, o.sha256],
  );
  return rows[0]?.id;
}

export async function findObject(db: Queryable, bucket: string, key: string): Promise<StorageObjectRow | undefined> {
  const { rows } = await db.query<StorageObjectRow>(
    `SELECT owner_id, size, content_type, sha256, updated_at
       FROM storage_objects WHERE bucket = $1 AND key = $2 AND deleted_at IS NULL`,
    [bucket, key],
  );
  return rows[0];
}

export async function markObjectDeleted(db: Queryable, bucket: string, key: string): Promise<void> {
  await db.query('UPDATE storage_objects SET deleted_at = now() WHERE bucket = $1 AND key = $2', [bucket, key]);
}

/** A removed object as Supabase Storage's remove() returns it. */
export interface RemovedObjectRow {
  id: string;
  key: string;
  size: number;
  content_type: string;
  sha256: string | null;
  created_at: string;
  updated_at: string;
}

/**
 * Marks the owner's listed objects deleted, atomically, and returns those it marked: keys that are
 * not the owner's, or already gone, are left out (Supabase's remove() answers the same way).
 */
export async function deleteOwnObjects(db: Queryable, bucket: string, ownerId: string, keys: string[]): Promise<RemovedObjectRow[]> {
  const { rows } = await db.query<RemovedObjectRow>(
    `UPDATE storage_objects SET deleted_at = now()
      WHERE bucket = $1 AND owner_id = $2 AND key = ANY($3::text[]) AND deleted_at IS NULL
      RETURNING id::text AS id, key, size, content_type, sha256, created_at, updated_at`,
    [bucket, ownerId, keys],
  );
  return rows;
}

/** An object with everything Storage's list() and info() show of it. */
export interface ObjectDetailsRow extends RemovedObjectRow {
  owner_id: string | null;
}

const DETAILS = 'id::text AS id, key, owner_id, size, content_type, sha256, created_at, updated_at';

/**
 * The owner's live objects in a bucket whose key starts with `prefix` (a folder path ending in /),
 * in key order, at most `max`: read through storage_objects_owner_bucket_key, the owner's rows only.
 */
export async function listOwnObjects(db: Queryable, ownerId: string, bucket: string, prefix: string, max: number): Promise<ObjectDetailsRow[]> {
  const { rows } = await db.query<ObjectDetailsRow>(
    `SELECT ${DETAILS} FROM storage_objects
      WHERE owner_id = $1 AND bucket = $2 AND deleted_at IS NULL AND starts_with(key, $3)
      ORDER BY key LIMIT $4`,
    [ownerId, bucket, prefix, max],
  );
  return rows;
}

export async function findObjectDetails(db: Queryable, bucket: string, key: string): Promise<ObjectDetailsRow | undefined> {
  const { rows } = await db.query<ObjectDetailsRow>(`SELECT ${DETAILS} FROM storage_objects WHERE bucket = $1 AND key = $2 AND deleted_at IS NULL`, [bucket, key]);
  return rows[0];
}
