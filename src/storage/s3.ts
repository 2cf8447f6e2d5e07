import { createReadStream } from 'node:fs';
import {
  DeleteObjectCommand,
  GetObjectCommand,
  NoSuchKey,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { SignedUrlCache } from './signed-url-cache.js';
import { StorageUnavailable, isSafeKey, type Bucket, type ByteRange, type ObjectBody, type ObjectStore, type StoredFile } from './types.js';

export interface S3StoreConfig {
  bucket: string;
  region: string;
  /** Unset for AWS itself; set for Supabase Storage, R2, MinIO or a local fake. */
  endpoint: string | undefined;
  accessKeyId: string;
  secretAccessKey: string;
  /** Path-style URLs (endpoint/bucket/key): what Supabase Storage, MinIO and most fakes need. */
  forcePathStyle: boolean;
  timeoutMs: number;
}

/**
 * Any S3-compatible store (AWS S3, Supabase Storage's S3 endpoint, Cloudflare R2, MinIO). One real
 * bucket holds our logical buckets as prefixes ({bucket}/{key}), so a deploy needs one bucket and one
 * key pair. Results are handed out as presigned GET URLs; clients then download from S3, not from us.
 */
export class S3ObjectStore implements ObjectStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;
  private readonly urls = new SignedUrlCache((bucket, key, ttl) => this.presign(bucket, key, ttl));

  constructor(private readonly cfg: S3StoreConfig) {
    this.client = new S3Client({
      region: cfg.region,
      endpoint: cfg.endpoint,
      forcePathStyle: cfg.forcePathStyle,
      credentials: { accessKeyId: cfg.accessKeyId, secretAccessKey: cfg.secretAccessKey },
      requestHandler: { requestTimeout: cfg.timeoutMs, connectionTimeout: cfg.timeoutMs },
      // The SDK retries throttling and 5xx itself (3 attempts, jittered backoff).
      maxAttempts: 3,
    });
  }

  private objectKey(bucket: Bucket, key: string): string {
    if (!isSafeKey(key)) throw new Error(`unsafe storage key ${key}`);
    return `${bucket}/${key}`;
  }

  async put(bucket: Bucket, key: string, file: StoredFile): Promise<void> {
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.cfg.bucket,
          Key: this.objectKey(bucket, key),
          // A file is streamed, its length known up front as a single PUT needs, and its checksum
          // given (S3 verifies it): without one the SDK would compute a trailing checksum in an
          // aws-chunked body, which S3-compatible stores that do not speak it keep as the object.
          ...('path' in file
            ? { Body: createReadStream(file.path), ContentLength: file.size, ChecksumSHA256: Buffer.from(file.sha256, 'hex').toString('base64') }
            : { Body: file.bytes }),
          ContentType: file.contentType,
        }),
      );
    } catch (err) {
      throw new StorageUnavailable(`could not write ${bucket}/${key} to S3: ${describe(err)}`);
    }
  }

  async get(bucket: Bucket, key: string, range?: ByteRange): Promise<ObjectBody | undefined> {
    let res;
    try {
      res = await this.client.send(
        new GetObjectCommand({
          Bucket: this.cfg.bucket,
          Key: this.objectKey(bucket, key),
          Range: range ? `bytes=${range.start}-${range.end}` : undefined,
        }),
      );
    } catch (err) {
      if (err instanceof NoSuchKey || (err instanceof S3ServiceException && err.$metadata.httpStatusCode === 404)) return undefined;
      throw new StorageUnavailable(`could not read ${bucket}/${key} from S3: ${describe(err)}`);
    }
    // A ranged answer states the whole size after the slash: "bytes 0-7/1234".
    const size = range ? Number(/\/(\d+)$/.exec(res.ContentRange ?? '')?.[1]) : res.ContentLength;
    const body = res.Body?.transformToWebStream();
    if (!body || size === undefined || !Number.isSafeInteger(size)) {
      await body?.cancel();
      throw new StorageUnavailable(`S3 answered ${bucket}/${key} without a body or its size`);
    }
    return { size, body };
  }

  async delete(bucket: Bucket, key: string): Promise<void> {
    this.urls.forget(bucket, key);
    try {
      // S3 answers 204 for a key that does not exist, so deleting twice is harmless.
      await this.client.send(new DeleteObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(bucket, key) }));
    } catch (err) {
      throw new StorageUnavailable(`could not delete ${bucket}/${key} from S3: ${describe(err)}`);
    }
  }

  signedUrl(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string> {
    return this.urls.signedUrl(bucket, key, expiresInSeconds);
  }

  private async presign(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string> {
    // Presigning is a local HMAC computation: no request leaves the process.
    return getSignedUrl(this.client, new GetObjectCommand({ Bucket: this.cfg.bucket, Key: this.objectKey(bucket, key) }), {
      expiresIn: expiresInSeconds,
    });
  }
}

function describe(err: unknown): string {
  if (err instanceof S3ServiceException) return `${err.name} (HTTP ${err.$metadata.httpStatusCode ?? '?'})`;
  return err instanceof Error ? err.message : String(err);
}
