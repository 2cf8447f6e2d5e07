import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { recordObject } from '../db/queries/storage.js';
import type { Queryable } from '../db/pool.js';
import type { Bucket, ObjectStore } from './types.js';

/**
 * Stores an object's bytes, then records its metadata — type, size, owner, SHA-256 — in
 * storage_objects, the only place downloads read it from. Bytes first: a row never names bytes
 * that are not there (a crash in between leaves an unlisted file, which nothing serves).
 * Returns the row's id.
 */
export async function saveObject(
  store: ObjectStore,
  db: Queryable,
  o: { bucket: Bucket; key: string; ownerId: string | null; bytes: Buffer; contentType: string },
): Promise<string | undefined> {
  await store.put(o.bucket, o.key, { bytes: o.bytes, contentType: o.contentType });
  const sha256 = createHash('sha256').update(o.bytes).digest('hex');
  return recordObject(db, { bucket: o.bucket, key: o.key, ownerId: o.ownerId, size: o.bytes.length, contentType: o.contentType, sha256 });
}

/** saveObject for a file on disk (a delivered video): stored and hashed as a stream, never read whole. */
export async function saveFile(
  store: ObjectStore,
  db: Queryable,
  o: { bucket: Bucket; key: string; ownerId: string | null; path: string; size: number; contentType: string },
): Promise<string | undefined> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(o.path)) hash.update(chunk as Buffer);
  const sha256 = hash.digest('hex');
  await store.put(o.bucket, o.key, { path: o.path, size: o.size, contentType: o.contentType, sha256 });
  return recordObject(db, { bucket: o.bucket, key: o.key, ownerId: o.ownerId, size: o.size, contentType: o.contentType, sha256 });
}
