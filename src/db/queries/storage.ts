import type { Queryable } from '../pool.js';

export async function recordObject(
  db: Queryable,
  o: { bucket: string; key: string; ownerId: string | null; size: number; contentType: string },
): Promise<void> {
  await db.query(
    `INSERT INTO storage_objects (bucket, key, owner_id, size, content_type) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (bucket, key) DO UPDATE SET size = EXCLUDED.size, content_type = EXCLUDED.content_type, deleted_at = NULL
       WHERE storage_objects.owner_id IS NOT DISTINCT FROM EXCLUDED.owner_id`,
    [o.bucket, o.key, o.ownerId, o.size, o.contentType],
  );
}

export async function findObject(db: Queryable, bucket: string, key: string) {
  const { rows } = await db.query<{ owner_id: string | null; size: number; content_type: string }>(
    'SELECT owner_id, size, content_type FROM storage_objects WHERE bucket = $1 AND key = $2 AND deleted_at IS NULL',
    [bucket, key],
  );
  return rows[0];
}

export async function markObjectDeleted(db: Queryable, bucket: string, key: string): Promise<void> {
  await db.query('UPDATE storage_objects SET deleted_at = now() WHERE bucket = $1 AND key = $2', [bucket, key]);
}
