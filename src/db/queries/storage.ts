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

export async function recordObject(
  db: Queryable,
  o: { bucket: string; key: string; ownerId: string | null; size: number; contentType: string; sha256: string },
): Promise<void> {
  await db.query(
    `INSERT INTO storage_objects (bucket, key, owner_id, size, content_type, sha256) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (bucket, key) DO UPDATE SET size = EXCLUDED.size, content_type = EXCLUDED.content_type,
       sha256 = EXCLUDED.sha256, updated_at = now(), deleted_at = NULL
       WHERE storage_objects.owner_id IS NOT DISTINCT FROM EXCLUDED.owner_id`,
    [o.bucket, o.key, o.ownerId, o.size, o.contentType, o.sha256],
  );
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
