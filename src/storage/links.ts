import { SignJWT, jwtVerify } from 'jose';
import { hmacKey } from '../auth/tokens.js';

/**
 * The tokens of Supabase Storage's signed links that this server answers itself, whatever the
 * backend: downloads (createSignedUrl/createSignedUrls: GET /object/sign/{bucket}/{key}?token=) and
 * uploads (createSignedUploadUrl, then uploadToSignedUrl: PUT /object/upload/sign/{bucket}/{key}?token=).
 * Each is bound to one object and one purpose; an upload token also to its owner and upsert choice.
 * With S3 the bytes still come from S3, streamed through the API, so the URL is one supabase-js can
 * prefix with its storage URL (a presigned S3 URL is absolute, and it prefixed that too).
 */
export type LinkPurpose = 'download' | 'upload';

export interface LinkClaims {
  owner?: string;
  upsert?: boolean;
}

/** An upload link lasts as Supabase's does: two hours. */
export const UPLOAD_LINK_SECONDS = 2 * 60 * 60;

export class StorageLinks {
  private readonly key: ReturnType<typeof hmacKey>;

  constructor(secret: string) {
    // Its own key, derived from the JWT secret: a link token is never an access token, or the reverse.
    this.key = hmacKey(`storage-links:${secret}`);
  }

  async sign(purpose: LinkPurpose, bucket: string, key: string, expiresInSeconds: number, claims: LinkClaims = {}): Promise<string> {
    return new SignJWT({ url: `${bucket}/${key}`, purpose, ...claims })
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime(Math.floor(Date.now() / 1000) + expiresInSeconds)
      .sign(await this.key);
  }

  /** The claims of a token issued for exactly this object and purpose, not expired; undefined otherwise. */
  async verify(purpose: LinkPurpose, bucket: string, key: string, token: string): Promise<LinkClaims | undefined> {
    try {
      const { payload } = await jwtVerify(token, await this.key, { algorithms: ['HS256'] });
      if (payload.url !== `${bucket}/${key}` || payload.purpose !== purpose) return undefined;
      return { owner: typeof payload.owner === 'string' ? payload.owner : undefined, upsert: payload.upsert === true };
    } catch {
      return undefined;
    }
  }
}
