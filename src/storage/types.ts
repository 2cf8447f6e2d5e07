import { DomainError } from '../errors/domain-error.js';

/**
 * Where files live: the app's input images (public bucket `thumbnails`, which providers fetch)
 * and delivered results (private bucket `videos`, served by signed expiring URLs).
 */
export const INPUT_BUCKET = 'thumbnails';
export const RESULTS_BUCKET = 'videos';
export const BUCKETS = [INPUT_BUCKET, RESULTS_BUCKET] as const;
export type Bucket = (typeof BUCKETS)[number];

/**
 * In memory (uploads), or a file on disk (delivered videos: copied or streamed, never read whole)
 * with its SHA-256 (hex), which S3 checks the streamed bytes against.
 */
export type StoredFile = {
  /** Only S3 keeps it (it serves presigned downloads itself); what we serve comes from storage_objects. */
  contentType: string;
} & ({ bytes: Buffer } | { path: string; size: number; sha256: string });

/** Inclusive byte offsets, as in a Range header; the caller has checked them against the size. */
export interface ByteRange {
  start: number;
  end: number;
}

/** An object's bytes (all, or one range), streamed: never read whole into memory. */
export interface ObjectBody {
  /** The size of the whole object as stored, whatever the range. */
  size: number;
  body: ReadableStream<Uint8Array>;
}

export interface ObjectStore {
  readonly kind: 'local' | 's3';
  put(bucket: Bucket, key: string, file: StoredFile): Promise<void>;
  /** undefined when there is no such object. Bytes only: the metadata is the storage_objects row. */
  get(bucket: Bucket, key: string, range?: ByteRange): Promise<ObjectBody | undefined>;
  delete(bucket: Bucket, key: string): Promise<void>;
  /** A URL anyone holding it can GET until it expires. */
  signedUrl(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string>;
}

export class StorageUnavailable extends DomainError {
  readonly code = 'ERR_6002';
}

/** The key cannot be stored whatever we retry: it clashes with an existing object's path. */
export class StorageKeyConflict extends DomainError {
  readonly code = 'ERR_4008';
  override get details() {
    return { reason: 'this path clashes with one of your existing files (a file where a folder is, or the reverse)', field: 'key' };
  }
}

/** Object keys: path segments of safe characters (each at most 255, what a file system holds), no traversal. */
export function isSafeKey(key: string): boolean {
  return (
    /^[A-Za-z0-9][A-Za-z0-9._-]*(\/[A-Za-z0-9][A-Za-z0-9._-]*)*$/.test(key) &&
    key.length <= 512 &&
    !key.includes('..') &&
    key.split('/').every((segment) => segment.length <= 255)
  );
}

/**
 * The object key a URL path (still percent-encoded, as `new URL(…).pathname` gives it) names, or
 * undefined when it is malformed (`%E0%A4%A` made decodeURIComponent throw: a 500) or not a safe key.
 */
export function objectKeyFromPath(encoded: string): string | undefined {
  let key: string;
  try {
    key = decodeURIComponent(encoded);
  } catch {
    return undefined;
  }
  return isSafeKey(key) ? key : undefined;
}
