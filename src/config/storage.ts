import { z } from 'zod';
import type { S3StoreConfig } from '../storage/s3.js';
import { bool, type ReportIssue } from './env.js';

/** Where videos and uploaded images are kept, and how large they may be. */
export const storageEnv = z.object({
  /** local = files under DATA_DIR/storage served by the API; s3 = any S3-compatible store. */
  STORAGE_BACKEND: z.enum(['local', 's3']).default('local'),
  S3_BUCKET: z.string().min(3).optional(),
  S3_REGION: z.string().default('us-east-1'),
  S3_ENDPOINT: z.string().url().optional(),
  S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
  S3_FORCE_PATH_STYLE: bool.default(false),
  S3_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
  /** Largest provider result we copy into storage, and largest input image a user may upload. */
  MAX_RESULT_BYTES: z.coerce.number().int().min(1024).default(200 * 1024 * 1024),
  MAX_UPLOAD_BYTES: z.coerce.number().int().min(1024).max(50 * 1024 * 1024).default(10 * 1024 * 1024),
  SIGNED_URL_TTL_SECONDS: z.coerce.number().int().min(60).max(7 * 86_400).default(3600),
});
type StorageEnv = z.infer<typeof storageEnv>;

export interface StorageSection {
  /** undefined = the local directory backend. */
  s3: S3StoreConfig | undefined;
  limits: { maxResultBytes: number; maxUploadBytes: number };
  signedUrlTtlSeconds: number;
}

export function storageSection(e: StorageEnv, report: ReportIssue): StorageSection {
  return {
    s3: e.STORAGE_BACKEND === 's3' ? s3Store(e, report) : undefined,
    limits: { maxResultBytes: e.MAX_RESULT_BYTES, maxUploadBytes: e.MAX_UPLOAD_BYTES },
    signedUrlTtlSeconds: e.SIGNED_URL_TTL_SECONDS,
  };
}

/** STORAGE_BACKEND=s3: the store, or undefined with each missing variable reported. */
function s3Store(e: StorageEnv, report: ReportIssue): S3StoreConfig | undefined {
  const { S3_BUCKET: bucket, S3_ACCESS_KEY_ID: accessKeyId, S3_SECRET_ACCESS_KEY: secretAccessKey } = e;
  if (bucket && accessKeyId && secretAccessKey) {
    return { bucket, region: e.S3_REGION, endpoint: e.S3_ENDPOINT, accessKeyId, secretAccessKey, forcePathStyle: e.S3_FORCE_PATH_STYLE, timeoutMs: e.S3_TIMEOUT_MS };
  }
  for (const name of ['S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const) {
    if (!e[name]) report(name, 'required when STORAGE_BACKEND=s3');
  }
  return undefined;
}
