import type { Bucket } from './types.js';

const MAX_ENTRIES = 10_000;

type Sign = (bucket: Bucket, key: string, expiresInSeconds: number) => Promise<string>;

/**
 * Reuses an object's signed URL while more than half of its lifetime is left. Signing is an HMAC
 * (local) or a SigV4 presign (S3) per URL, and every status poll of a completed job asks for two;
 * a URL handed out therefore stays valid between ttl/2 and ttl (docs/ARCHITECTURE.md). Deleting an
 * object forgets its URLs (each was a bearer capability until its expiry anyway).
 */
export class SignedUrlCache {
  private readonly urls = new Map<string, { url: string; freshUntil: number }>();

  constructor(
    private readonly sign: Sign,
    private readonly now: () => number = Date.now,
  ) {}

  async signedUrl(bucket: Bucket, key: string, expiresInSeconds: number): Promise<string> {
    const cacheKey = `${bucket}/${key}\n${expiresInSeconds}`;
    const now = this.now();
    const cached = this.urls.get(cacheKey);
    if (cached && cached.freshUntil > now) return cached.url;
    const url = await this.sign(bucket, key, expiresInSeconds);
    this.urls.delete(cacheKey);
    if (this.urls.size >= MAX_ENTRIES) this.urls.delete(this.urls.keys().next().value!);
    this.urls.set(cacheKey, { url, freshUntil: now + (expiresInSeconds * 1000) / 2 });
    return url;
  }

  forget(bucket: Bucket, key: string): void {
    for (const cacheKey of this.urls.keys()) if (cacheKey.startsWith(`${bucket}/${key}\n`)) this.urls.delete(cacheKey);
  }
}
