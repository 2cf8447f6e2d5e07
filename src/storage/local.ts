import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { SignJWT, jwtVerify } from 'jose';
import { hmacKey } from '../auth/tokens.js';
import { SignedUrlCache } from './signed-url-cache.js';
import { StorageKeyConflict, StorageUnavailable, isSafeKey, type Bucket, type ByteRange, type ObjectBody, type ObjectStore, type StoredFile } from './types.js';

const PATH_CLASHES = new Set(['ENOTDIR', 'EISDIR', 'EEXIST', 'ENOTEMPTY', 'ENAMETOOLONG']);

/**
 * Files under DATA_DIR/storage/{bucket}/{key}, served by the API. Signed URLs carry an HS256 token
 * (Supabase's shape: /storage/v1/object/sign/{bucket}/{key}?token=…) bound to that one object.
 *
 * A file holds an object's bytes and nothing else: no sidecar files (a "<key>.type" sidecar once
 * typed objects and was itself an uploadable key). Type, size and checksum are the database row's.
 * Files being written live in DATA_DIR/storage/.partial, a name no key can reach (keys start with
 * a letter or digit).
 */
export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  private readonly key: ReturnType<typeof hmacKey>;
  private readonly urls = new SignedUrlCache((bucket, key, ttl) => this.sign(bucket, key, ttl));

  constructor(
    private readonly root: string,
    private readonly publicUrl: string,
    secret: string,
  ) {
    this.key = hmacKey(`storage:${secret}`);
  }

  private file(bucket: Bucket, key: string): string {
    if (!isSafeKey(key)) throw new Error(`unsafe storage key ${key}`);
    return path.join(this.root, bucket, key);
  }

  async put(bucket: Bucket, key: string, file: StoredFile): Promise<void> {
    const target = this.file(bucket, key);
    const partial = path.join(this.root, '.partial');
    const tmp = path.join(partial, `${bucket}.${randomBytes(8).toString('hex')}`);
    try {
      await fs.mkdir(path.dirname(target), { recursive: true });
      await fs.mkdir(partial, { recursive: true });
      // Write then rename: a crash never leaves a half-written file under the real name, and a
      // reader that opened the old file keeps reading the old bytes.
      if ('path' in file) await fs.copyFile(file.path, tmp);
      else await fs.writeFile(tmp, file.bytes);
      await fs.rename(tmp, target);
    } catch (err) {
      await fs.rm(tmp, { force: true }).catch(() => undefined);
      // A file where the key needs a folder, or a folder where it needs a file: retrying cannot help.
      if (PATH_CLASHES.has((err as { code?: string }).code ?? '')) throw new StorageKeyConflict(`${bucket}/${key} clashes with an existing object's path`);
      throw new StorageUnavailable(`could not write ${bucket}/${key}: ${(err as Error).message}`);
    }
  }

  async get(bucket: Bucket, key: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    const target = this.file(bucket, key);
    let handle: fs.FileHandle;
    try {
      handle = await fs.open(target, 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'EISDIR') return undefined;
      throw new StorageUnavailable(`could not open ${bucket}/${key}: ${(err as Error).message}`);
    }
    try {
      // The size of the file this handle reads, even if an upsert renames a new one into place.
      const { size } = await handle.stat();
      // Streamed in 64 KiB chunks; the handle closes when the stream ends or is cancelled.
      const stream = handle.createReadStream(range ? { start: range.start, end: range.end } : {});
      return { size, body: Readable.toWeb(stream) as ReadableStream<Uint8Array> };
    } catch (err) {
      await handle.close();
      throw new StorageUnavailable(`could not read ${bucket}/${key}: ${(err as Error).message}`);
    }
  }

  async delete(bucket: Bucket, key: string): Promise<void> {
    this.urls.forget(bucket, key);
    await fs.rm(this.file(bucket, key), { force: true });
  }

  signedUrl(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string> {
    return this.urls.signedUrl(bucket, key, expiresInSeconds);
  }

  private async sign(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string> {
    const token = await new SignJWT({ url: `${bucket}/${key}` })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
      .sign(await this.key);
    return `${this.publicUrl}/storage/v1/object/sign/${bucket}/${key}?token=${token}`;
  }

  /** True when token was issued by signedUrl for exactly this object and has not expired. */
  async verifySignedToken(bucket: string, key: string, token: string): Promise<boolean> {
    try {
      const { payload } = await jwtVerify(token, await this.key, { algorithms: ['HS256'] });
      return payload.url === `${bucket}/${key}`;
    } catch {
      return false;
    }
  }
}
