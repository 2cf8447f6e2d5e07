import { z } from 'zod';

/**
 * `npm run import:supabase -- --storage s3`: the former Supabase project's Storage S3 endpoint
 * (Project Settings → Storage → S3 access keys), whose buckets `videos` and `thumbnails` the import
 * copies files from. Read only by that command; the server ignores them.
 */
export const supabaseImportEnv = z.object({
  SUPABASE_S3_ENDPOINT: z.string().url().optional(),
  SUPABASE_S3_REGION: z.string().default('us-east-1'),
  SUPABASE_S3_ACCESS_KEY_ID: z.string().min(1).optional(),
  SUPABASE_S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
});
type SupabaseImportEnv = z.infer<typeof supabaseImportEnv>;

export interface SupabaseStorageS3 {
  endpoint: string;
  region: string;
  accessKeyId: string;
  secretAccessKey: string;
}

export interface SupabaseImportSection {
  /** undefined unless all of endpoint and keys are set; `missing` names what is not. */
  supabaseStorageS3: SupabaseStorageS3 | { missing: string[] };
}

export function supabaseImportSection(e: SupabaseImportEnv): SupabaseImportSection {
  const { SUPABASE_S3_ENDPOINT: endpoint, SUPABASE_S3_ACCESS_KEY_ID: accessKeyId, SUPABASE_S3_SECRET_ACCESS_KEY: secretAccessKey } = e;
  if (endpoint && accessKeyId && secretAccessKey) return { supabaseStorageS3: { endpoint, region: e.SUPABASE_S3_REGION, accessKeyId, secretAccessKey } };
  const missing = (['SUPABASE_S3_ENDPOINT', 'SUPABASE_S3_ACCESS_KEY_ID', 'SUPABASE_S3_SECRET_ACCESS_KEY'] as const).filter((name) => !e[name]);
  return { supabaseStorageS3: { missing } };
}
