import type { Queryable } from '../pool.js';

/**
 * Reads of the app's former Supabase database (schema: test/fixtures/supabase-legacy/README.md),
 * read-only, in keyset pages (`WHERE id > last ORDER BY id LIMIT n`), so memory stays bounded at any size.
 */

export interface SourceModel {
  id: string;
  name: string;
  category: string;
  description: string | null;
  cost_per_generation: number;
  provider: string;
  provider_model_id: string;
}

export interface SourceUser {
  id: string;
  email: string | null;
  device_id: string | null;
  apple_sub: string | null;
  is_guest: boolean | null;
  tier: string | null;
  credits_remaining: number | null;
  language: string | null;
  theme_preference: string | null;
  created_at: string | null;
  auth_user_id: string | null;
  /** The auth.users row the user names, when it exists. */
  auth_id: string | null;
  /** An older user (created first; the smaller id on a tie) has the same device_id / apple_sub. */
  device_id_taken: boolean;
  apple_sub_taken: boolean;
}

export interface SourcePurchase {
  id: string;
  user_id: string;
  transaction_id: string;
  change: number;
  reason: string;
  created_at: string | null;
  /** The former refund handler wrote `<transaction_id>_refund` for it: refunded there. */
  refunded: boolean;
}

export interface SourceJob {
  job_id: string;
  user_id: string;
  model_id: string;
  prompt: string;
  settings: Record<string, unknown> | null;
  status: string | null;
  video_url: string | null;
  thumbnail_url: string | null;
  credits_used: number;
  error_message: string | null;
  provider_job_id: string | null;
  created_at: string | null;
  completed_at: string | null;
}

export interface SourceObject {
  bucket_id: string;
  name: string;
  metadata: { size?: number; eTag?: string; mimetype?: string } | null;
}

export interface SourceTotals {
  users: number;
  credits: number;
  negative_users: number;
  negative_credits: number;
  purchases: number;
  purchase_credits: number;
  jobs: number;
  running_jobs: number;
  running_credits: number;
}

/** Below every uuid: where each keyset read starts. */
export const FIRST_KEY = '00000000-0000-0000-0000-000000000000';

export async function models(db: Queryable): Promise<SourceModel[]> {
  const { rows } = await db.query<SourceModel>(
    'SELECT id::text, name, category, description, cost_per_generation, provider, provider_model_id FROM public.models ORDER BY id',
  );
  return rows;
}

// "Taken" compares (created_at, id) with the older rows through the columns' indexes; a missing
// created_at sorts first, as the oldest.
export async function usersAfter(db: Queryable, after: string, limit: number): Promise<SourceUser[]> {
  const { rows } = await db.query<SourceUser>(
    `SELECT u.id::text, u.email, u.device_id, u.apple_sub, u.is_guest, u.tier, u.credits_remaining, u.language, u.theme_preference,
            u.created_at, u.auth_user_id::text, a.id::text AS auth_id,
            (u.device_id IS NOT NULL AND EXISTS (SELECT 1 FROM public.users o WHERE o.device_id = u.device_id
               AND (coalesce(o.created_at, '-infinity'), o.id) < (coalesce(u.created_at, '-infinity'), u.id))) AS device_id_taken,
            (u.apple_sub IS NOT NULL AND EXISTS (SELECT 1 FROM public.users o WHERE o.apple_sub = u.apple_sub
               AND (coalesce(o.created_at, '-infinity'), o.id) < (coalesce(u.created_at, '-infinity'), u.id))) AS apple_sub_taken
       FROM public.users u LEFT JOIN auth.users a ON a.id = u.auth_user_id
      WHERE u.id > $1::uuid ORDER BY u.id LIMIT $2`,
    [after, limit],
  );
  return rows;
}

/** quota_log rows that carry an Apple transaction id (purchases and the refund rows the refund handler wrote). */
export async function purchasesAfter(db: Queryable, after: string, limit: number): Promise<SourcePurchase[]> {
  const { rows } = await db.query<SourcePurchase>(
    `SELECT q.id::text, q.user_id::text, q.transaction_id, q.change, q.reason, q.created_at,
            EXISTS (SELECT 1 FROM public.quota_log r WHERE r.transaction_id = q.transaction_id || '_refund') AS refunded
       FROM public.quota_log q
      WHERE q.transaction_id IS NOT NULL AND q.id > $1::uuid ORDER BY q.id LIMIT $2`,
    [after, limit],
  );
  return rows;
}

export async function jobsAfter(db: Queryable, after: string, limit: number): Promise<SourceJob[]> {
  const { rows } = await db.query<SourceJob>(
    `SELECT job_id::text, user_id::text, model_id::text, prompt, settings, status, video_url, thumbnail_url, credits_used,
            error_message, provider_job_id, created_at, completed_at
       FROM public.video_jobs WHERE job_id > $1::uuid ORDER BY job_id LIMIT $2`,
    [after, limit],
  );
  return rows;
}

export async function storageObjects(db: Queryable, wanted: { bucket: string; name: string }[]): Promise<SourceObject[]> {
  if (wanted.length === 0) return [];
  const { rows } = await db.query<SourceObject>(
    `SELECT o.bucket_id, o.name, o.metadata FROM storage.objects o
       JOIN unnest($1::text[], $2::text[]) AS w (bucket_id, name) ON w.bucket_id = o.bucket_id AND w.name = o.name`,
    [wanted.map((w) => w.bucket), wanted.map((w) => w.name)],
  );
  return rows;
}

/** What the import must account for; purchases as the import reads them (a positive credit with a transaction id, not a refund row). */
export async function totals(db: Queryable): Promise<SourceTotals> {
  const { rows } = await db.query<SourceTotals>(
    `SELECT u.users, u.credits, u.negative_users, u.negative_credits, p.purchases, p.purchase_credits, j.jobs, j.running_jobs, j.running_credits
       FROM (SELECT count(*)::int AS users, coalesce(sum(credits_remaining), 0)::int AS credits,
                    count(*) FILTER (WHERE credits_remaining < 0)::int AS negative_users,
                    coalesce(sum(credits_remaining) FILTER (WHERE credits_remaining < 0), 0)::int AS negative_credits FROM public.users) u,
            (SELECT count(*)::int AS purchases, coalesce(sum(change), 0)::int AS purchase_credits FROM public.quota_log
              WHERE transaction_id IS NOT NULL AND change > 0 AND reason <> 'apple_refund') p,
            (SELECT count(*)::int AS jobs, count(*) FILTER (WHERE status IS NULL OR status IN ('pending', 'processing'))::int AS running_jobs,
                    coalesce(sum(credits_used) FILTER (WHERE status IS NULL OR status IN ('pending', 'processing')), 0)::int AS running_credits
               FROM public.video_jobs) j`,
  );
  return rows[0]!;
}
