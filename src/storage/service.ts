import type { Queryable } from '../db/pool.js';
import { findUserById } from '../db/queries/users.js';
import { deleteOwnObjects, findObject, findObjectDetails, listOwnObjects, type ObjectDetailsRow, type RemovedObjectRow, type StorageObjectRow } from '../db/queries/storage.js';
import { RequestRefused, refuse } from '../errors/domain-error.js';
import { ACCEPTED_IMAGE_TYPES, sniffImageType } from './image-types.js';
import { StorageLinks, UPLOAD_LINK_SECONDS } from './links.js';
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

/** One entry of Storage's list(): a file (with its row) or a folder (without). */
export interface ListEntry {
  name: string;
  object?: ObjectDetailsRow;
}

export interface ListOptions {
  prefix: string;
  limit: number;
  offset: number;
  sortBy: { column: 'name' | 'created_at' | 'updated_at' | 'last_accessed_at'; order: 'asc' | 'desc' };
  search: string;
}

/** The most objects one folder listing reads; a user's folder holds their uploads, far fewer. */
const MAX_LISTED_OBJECTS = 10_000;
const NO_ACCESS = 'Either the object does not exist or you do not have access to it';

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
    private readonly links: StorageLinks,
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

  /**
   * A link to one of the owner's objects that anyone holding it can read until it expires, relative
   * to /storage/v1 as Supabase answers it (supabase-js prefixes its storage URL), on either backend.
   */
  async signedUrl(bucket: string, key: string, ownerId: string, expiresInSeconds: number): Promise<string> {
    const own = await this.ownObject(bucket, key, ownerId);
    return `/object/sign/${own.bucket}/${own.key}?token=${await this.links.sign('download', own.bucket, own.key, expiresInSeconds)}`;
  }

  /** createSignedUrls: a link per path, or Supabase's error text for one that is not the owner's. */
  async signedUrls(bucket: string, keys: string[], ownerId: string, expiresInSeconds: number) {
    const out: { path: string; signedURL: string | null; error: string | null }[] = [];
    for (const path of keys) {
      const url = await this.signedUrl(bucket, path, ownerId, expiresInSeconds).catch((err: unknown) => {
        if (err instanceof RequestRefused && err.code === 'ERR_4007') return null;
        throw err;
      });
      out.push({ path, signedURL: url, error: url ? null : NO_ACCESS });
    }
    return out;
  }

  /** An object's details (info()), the owner's only. */
  async info(bucket: string, key: string, ownerId: string): Promise<ObjectDetailsRow> {
    await this.ownObject(bucket, key, ownerId);
    const row = await findObjectDetails(this.db, bucket, key);
    if (!row) throw refuse.notFound('object');
    return row;
  }

  /**
   * list(): the entries directly in a folder of the owner's, as Supabase lists them (files, and the
   * folders below as entries without an id). Another user's folder lists nothing, as row-level
   * security shows it; the root lists the owner's own folder.
   */
  async list(bucket: string, ownerId: string, o: ListOptions): Promise<ListEntry[]> {
    const folder = o.prefix.replace(/^\/+|\/+$/g, '');
    if (!isBucket(bucket)) throw refuse.notFound('bucket');
    if (folder !== ownerId && !folder.startsWith(`${ownerId}/`) && folder !== '') return [];
    const under = folder === '' ? '' : `${folder}/`;
    const rows = await listOwnObjects(this.db, ownerId, bucket, under, MAX_LISTED_OBJECTS);
    const entries = new Map<string, ListEntry>();
    for (const row of rows) {
      const rest = row.key.slice(under.length);
      const slash = rest.indexOf('/');
      const name = slash === -1 ? rest : rest.slice(0, slash);
      if (!entries.has(name)) entries.set(name, slash === -1 ? { name, object: row } : { name });
    }
    const search = o.search.toLowerCase();
    const sortValue = (e: ListEntry) => (o.sortBy.column === 'name' ? e.name : o.sortBy.column === 'created_at' ? e.object?.created_at : e.object?.updated_at);
    const direction = o.sortBy.order === 'desc' ? -1 : 1;
    return [...entries.values()]
      .filter((e) => e.name.toLowerCase().startsWith(search))
      .sort((a, b) => {
        const [x, y] = [sortValue(a), sortValue(b)];
        if (x === y) return a.name < b.name ? -1 : 1;
        if (x === undefined) return 1; // folders have no dates: last, as PostgreSQL puts nulls
        if (y === undefined) return -1;
        return (x < y ? -1 : 1) * direction;
      })
      .slice(o.offset, o.offset + o.limit);
  }

  /**
   * copy() and move(): from one of the owner's objects to a key in their own folder of the inputs
   * bucket, with the rules of an upload (an image, upsert to replace). A move removes the source,
   * so it starts only from the owner's uploads.
   */
  async copy(o: { bucket: string; from: string; to: string; toBucket?: string; ownerId: string; upsert: boolean; move?: boolean }): Promise<string> {
    if (o.move && o.bucket !== INPUT_BUCKET) throw refuse.forbidden(`only your uploads in ${INPUT_BUCKET} can be moved`);
    const source = await this.ownObject(o.bucket, o.from, o.ownerId);
    const destination = o.toBucket ?? o.bucket;
    await this.upload({
      bucket: destination,
      key: o.to,
      ownerId: o.ownerId,
      overwrite: o.upsert,
      read: async () => {
        const object = await this.store.get(source.bucket, source.key);
        if (!object) throw refuse.notFound('object');
        return Buffer.from(await new Response(object.body).arrayBuffer());
      },
    });
    if (o.move && !(destination === o.bucket && o.to === o.from)) await this.remove(o.bucket, o.ownerId, async () => [o.from]);
    return `${destination}/${o.to}`;
  }

  /** createSignedUploadUrl: a link that uploads to this one key of the owner's, for two hours. */
  async signedUploadUrl(bucket: string, key: string, ownerId: string, upsert: boolean): Promise<string> {
    if (bucket !== INPUT_BUCKET) throw refuse.forbidden(`uploads go to the ${INPUT_BUCKET} bucket`);
    if (!isSafeKey(key)) throw refuse.invalid('the object path has unsupported characters', 'key');
    if (!key.startsWith(`${ownerId}/`)) throw refuse.forbidden('upload into your own folder: {user id}/…');
    return `/object/upload/sign/${bucket}/${key}?token=${await this.links.sign('upload', bucket, key, UPLOAD_LINK_SECONDS, { owner: ownerId, upsert })}`;
  }

  /** uploadToSignedUrl: the token is the authority, for the owner and upsert choice it was issued with. */
  async uploadWithLink(bucket: string, key: string, token: string, read: () => Promise<Buffer>): Promise<string> {
    const claims = await this.links.verify('upload', bucket, key, token);
    if (!claims?.owner) throw refuse.forbidden('the upload link is invalid or has expired');
    // The link outlives nothing its owner lost: a banned, deleted or merged account uploads no more.
    const owner = await findUserById(this.db, claims.owner);
    if (!owner || owner.deleted_at || owner.banned_at || owner.merged_into) throw refuse.forbidden('the upload link is invalid or has expired');
    return this.upload({ bucket, key, ownerId: claims.owner, overwrite: claims.upsert === true, read });
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

  /**
   * An object named by a signed link: the local backend's result URLs (get-video-status), or a link
   * createSignedUrl handed out on either backend (with S3 the bytes are streamed from S3).
   */
  async signedObject(bucket: string, key: string, token: string): Promise<ReadableObject> {
    if (bucket !== RESULTS_BUCKET && bucket !== INPUT_BUCKET) throw refuse.notFound('object');
    const valid =
      (this.store instanceof LocalObjectStore && (await this.store.verifySignedToken(bucket, key, token))) ||
      (await this.links.verify('download', bucket, key, token)) !== undefined;
    if (!valid) throw refuse.forbidden('the link is invalid or has expired');
    return this.stored(bucket, key);
  }

  private async stored(bucket: Bucket, key: string): Promise<ReadableObject> {
    if (!isSafeKey(key)) throw refuse.notFound('object');
    const row = await findObject(this.db, bucket, key);
    if (!row) throw refuse.notFound('object');
    return { bucket, key, row };
  }
}
