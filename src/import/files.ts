import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import type { SupabaseStorageS3 } from '../config/supabase-import.js';
import type { SourceObject } from '../db/queries/supabase-source.js';

/**
 * The former backend's files: a job's `video_url` / `thumbnail_url` is a Supabase Storage URL
 * (`…/storage/v1/object/public/{bucket}/{path}`, also `sign/` and `authenticated/`). Its bytes are
 * read from an export of the project's storage laid out `{dir}/{bucket}/{path}` (what `supabase
 * storage cp -r` or an S3 sync of the Storage S3 endpoint writes), or from that S3 endpoint itself.
 * Each file is checked against its storage.objects row (size, and the MD5 eTag where it is one)
 * before it is kept.
 */

export const SOURCE_BUCKETS = ['videos', 'thumbnails'] as const;

export interface SourceFileRef {
  bucket: string;
  name: string;
}

const STORAGE_PATH = /\/storage\/v1\/object\/(?:public\/|sign\/|authenticated\/)?([^/?#]+)\/([^?#]+)/;

/** The storage object a URL names, or undefined for any other URL (a provider's CDN, say). */
export function storageRef(url: string): SourceFileRef | undefined {
  let pathname: string;
  try {
    pathname = new URL(url).pathname;
  } catch {
    return undefined;
  }
  const m = STORAGE_PATH.exec(pathname);
  if (!m || !(SOURCE_BUCKETS as readonly string[]).includes(m[1]!)) return undefined;
  try {
    return { bucket: m[1]!, name: decodeURIComponent(m[2]!) };
  } catch {
    return undefined;
  }
}

export type FetchOutcome = { ok: true; bytes: Buffer; sha256: string; contentType: string | undefined } | { ok: false; reason: string };

export interface FileSource {
  fetch(ref: SourceFileRef, row: SourceObject | undefined): Promise<FetchOutcome>;
}

/** The bytes as storage.objects describes them, or why not. */
function checked(bytes: Buffer, row: SourceObject | undefined): FetchOutcome {
  const meta = row?.metadata ?? undefined;
  if (meta?.size !== undefined && Number(meta.size) !== bytes.length) return { ok: false, reason: `size ${bytes.length} differs from storage.objects (${meta.size})` };
  const etag = meta?.eTag?.replace(/"/g, '');
  if (etag && /^[0-9a-f]{32}$/.test(etag) && createHash('md5').update(bytes).digest('hex') !== etag) {
    return { ok: false, reason: 'checksum differs from storage.objects (MD5 eTag)' };
  }
  return { ok: true, bytes, sha256: createHash('sha256').update(bytes).digest('hex'), contentType: meta?.mimetype };
}

/** `--storage <dir>`: a directory holding `videos/…` and `thumbnails/…`. */
export class StorageExport implements FileSource {
  private readonly root: string;
  constructor(dir: string) {
    this.root = path.resolve(dir);
  }

  async fetch(ref: SourceFileRef, row: SourceObject | undefined): Promise<FetchOutcome> {
    const file = path.resolve(this.root, ref.bucket, ref.name);
    // A name with `..` must not read outside the export.
    if (!file.startsWith(this.root + path.sep)) return { ok: false, reason: 'path outside the export' };
    try {
      return checked(await fs.readFile(file), row);
    } catch (err) {
      return { ok: false, reason: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not in the storage export' : `unreadable: ${(err as Error).message}` };
    }
  }
}

/** `--storage s3`: the project's Storage S3 endpoint (path-style; its buckets are Storage's). */
export class SupabaseStorageS3Source implements FileSource {
  private readonly client: S3Client;
  constructor(cfg: SupabaseStorageS3) {
    this.client = new S3Client({
      region: cfg.region,
      endpoint: cfg.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
      maxAttempts: 3,
    });
  }

  async fetch(ref: SourceFileRef, row: SourceObject | undefined): Promise<FetchOutcome> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: ref.bucket, Key: ref.name }));
      return checked(Buffer.from(await got.Body!.transformToByteArray()), row);
    } catch (err) {
      return { ok: false, reason: err instanceof NoSuchKey ? 'not in Supabase Storage' : `unreadable: ${(err as Error).message}` };
    }
  }
}
