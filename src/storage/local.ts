import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { SignJWT, jwtVerify } from 'jose';
import { StorageUnavailable, isSafeKey, type Bucket, type ObjectStore, type StoredFile } from './types.js';

/**
 * Files under DATA_DIR/storage/{bucket}/{key}, served by the API. Signed URLs carry an HS256 token
 * (Supabase's shape: /storage/v1/object/sign/{bucket}/{key}?token=…) bound to that one object.
 */
export class LocalObjectStore implements ObjectStore {
  readonly kind = 'local' as const;
  private readonly key: Uint8Array;

  constructor(
    private readonly root: string,
    private readonly publicUrl: string,
    secret: string,
  ) {
    this.key = new TextEncoder().encode(`storage:${secret}`);
  }

  private file(bucket: Bucket, key: string): string {
    if (!isSafeKey(key)) throw new Error(`unsafe storage key ${key}`);
    return path.join(this.root, bucket, key);
  }

  async put(bucket: Bucket, key: string, file: StoredFile): Promise<void> {
    const target = this.file(bucket, key);
    try {
      await fs.mkdir(path.dirname(target), { recursive: true });
      // Write then rename: a crash never leaves a half-written file under the real name.
      const tmp = `${target}.${randomBytes(4).toString('hex')}.tmp`;
      await fs.writeFile(tmp, file.bytes);
      await fs.writeFile(`${target}.type`, file.contentType);
      await fs.rename(tmp, target);
    } catch (err) {
      throw new StorageUnavailable(`could not write ${bucket}/${key}: ${(err as Error).message}`);
    }
  }

  async get(bucket: Bucket, key: string): Promise<StoredFile | undefined> {
    const target = this.file(bucket, key);
    if (!existsSync(target)) return undefined;
    const [bytes, contentType] = await Promise.all([
      fs.readFile(target),
      fs.readFile(`${target}.type`, 'utf8').catch(() => 'application/octet-stream'),
    ]);
    return { bytes, contentType };
  }

  async delete(bucket: Bucket, key: string): Promise<void> {
    const target = this.file(bucket, key);
    await fs.rm(target, { force: true });
    await fs.rm(`${target}.type`, { force: true });
  }

  async signedUrl(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string> {
    const token = await new SignJWT({ url: `${bucket}/${key}` })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
      .sign(this.key);
    return `${this.publicUrl}/storage/v1/object/sign/${bucket}/${key}?token=${token}`;
  }

  /** True when token was issued by signedUrl for exactly this object and has not expired. */
  async verifySignedToken(bucket: string, key: string, token: string): Promise<boolean> {
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      return payload.url === `${bucket}/${key}`;
    } catch {
      return false;
    }
  }
}
