import type { Queryable } from '../db/pool.js';
import { deleteOwnObjects, findObject, type RemovedObjectRow, type StorageObjectRow } from '../db/queries/storage.js';
import { RequestRefused, refuse } from '../errors/domain-error.js';
import { ACCEPTED_IMAGE_TYPES, sniffImageType } from './image-types.js';
import { LocalObjectStore } from './local.js';
import { saveObject } from './objects.js';
import { BUCKETS, INPUT_BUCKET, RESULTS_BUCKET, isSafeKey, type Bucket, type ObjectStore } from './types.js';

/** An object a caller may read, with the row everything it is served with comes from. */
export interface ReadableObject {
  bucket: Bucket;
  key: string;
  row: StorageObjectRow;
}

const isBucket = (name: string): name is Bucket => BUCKETS.some((b) => b === name);

/**
 * The rules of the Supabase Storage surface (docs/reference/ios-app.md §2.3): users write only input images, only
 * into their own folder of the public inputs bucket, and read only their own objects; results are
 * private and reached through signed, expiring URLs. Bucket and key come from the URL as sent, so
 * every verb checks them before anything reaches the store or SQL.
 */
export class StorageService {
  constructor(
    private readonly db: Queryable,
    private readonly store: ObjectStore,
  ) {}

  /**
   * Stores an input image at {user id}/… in the inputs bucket; its id. `read` gives the bytes and is
   * called only once the target is allowed, so a refused upload's body is never buffered.
   */
  async upload(o: { bucket: string; key: string; ownerId: string; overwrite: boolean; read: () => Promise<Buffer> }): Promise<string> {
    const { bucket, key, ownerId } = o;
    if (bucket !== INPUT_BUCKET) throw refuse.forbidden(`uploads go to the ${INPUT_BUCKET} bucket`);
    if (!isSafeKey(key)) throw refuse.invalid('the object path has unsupported characters', 'key');
    if (!key.startsWith(`${ownerId}/`)) throw refuse.forbidden('upload into your own folder: {user id}/…');
    const bytes = await o.read();
    if (bytes.length === 0) throw refuse.invalid('the body is empty', 'body');
    // The bytes decide, not the Content-Type header (the app always says image/jpeg).
    const contentType = sniffImageType(bytes);
    if (!contentType) throw new RequestRefused('ERR_4021', { allowed: [...ACCEPTED_IMAGE_TYPES] });
    const existing = await findObject(this.db, bucket, key);
    if (existing && !o.overwrite) throw new RequestRefused('ERR_4012', { reason: 'the object already exists; send x-upsert: true' });
    const id = await saveObject(this.store, this.db, { bucket, key, ownerId, bytes, contentType });
    if (id === undefined) throw refuse.forbidden('this object belongs to another user');
    return id;
  }

  /** One of the owner's objects, or 404 (another user's object is indistinguishable from none). */
  async ownObject(bucket: string, key: string, ownerId: string): Promise<ReadableObject> {
    if (!isBucket(bucket) || !isSafeKey(key)) throw refuse.notFound('object');
    const row = await findObject(this.db, bucket, key);
    if (!row || row.owner_id !== ownerId) throw refuse.notFound('object');
    return { bucket, key, row };
  }

  /** A URL to one of the owner's objects that anyone holding it can read until it expires. */
  async signedUrl(bucket: string, key: string, ownerId: string, expiresInSeconds: number): Promise<string> {
    const own = await this.ownObject(bucket, key, ownerId);
    return this.store.signedUrl(own.bucket, own.key, expiresInSeconds);
  }

  /**
   * Removes the owner's listed uploads and answers those removed; keys that are not the owner's or
   * do not exist are skipped. `keys` is read only once the bucket is allowed.
   */
  async remove(bucket: string, ownerId: string, keys: () => Promise<string[]>): Promise<RemovedObjectRow[]> {
    if (bucket !== INPUT_BUCKET) throw refuse.forbidden(`only your uploads in ${INPUT_BUCKET} can be removed; a result goes with its job (delete-video-job)`);
    const own = (await keys()).filter((k) => isSafeKey(k) && k.startsWith(`${ownerId}/`));
    // Rows first: from here nothing serves them; then the bytes (a failure leaves unlisted bytes only).
    const removed = await deleteOwnObjects(this.db, bucket, ownerId, own);
    for (const r of removed) await this.store.delete(bucket, r.key);
    return removed;
  }

  /** An input image, readable without auth: providers fetch the app's image by its public URL. */
  async publicObject(bucket: string, key: string): Promise<ReadableObject> {
    if (bucket !== INPUT_BUCKET) throw refuse.notFound('object');
    return this.stored(INPUT_BUCKET, key);
  }

  /** An object named by a signed URL of the local backend (the S3 backend hands out presigned S3 URLs instead). */
  async signedObject(bucket: string, key: string, token: string): Promise<ReadableObject> {
    if ((bucket !== RESULTS_BUCKET && bucket !== INPUT_BUCKET) || !(this.store instanceof LocalObjectStore)) throw refuse.notFound('object');
    if (!(await this.store.verifySignedToken(bucket, key, token))) throw refuse.forbidden('the link is invalid or has expired');
    return this.stored(bucket, key);
  }

  private async stored(bucket: Bucket, key: string): Promise<ReadableObject> {
    if (!isSafeKey(key)) throw refuse.notFound('object');
    const row = await findObject(this.db, bucket, key);
    if (!row) throw refuse.notFound('object');
    return { bucket, key, row };
  }
}
