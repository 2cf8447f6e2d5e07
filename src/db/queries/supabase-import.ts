import type { Queryable } from '../pool.js';

/** Writes and reads of the import from the former Supabase backend (src/import/), on our database. */

export interface OurModel {
  id: string;
  provider: string;
  provider_model_id: string;
}

export async function ourModels(db: Queryable): Promise<OurModel[]> {
  const { rows } = await db.query<OurModel>('SELECT id, provider, provider_model_id FROM models');
  return rows;
}

/** A model the former backend had and we do not: kept for its jobs' history, never offered. */
export async function insertRetiredModel(
  db: Queryable,
  m: { id: string; name: string; category: string; description: string | null; provider: string; providerModelId: string; cost: number },
): Promise<void> {
  await db.query(
    `INSERT INTO models (id, name, category, description, provider, provider_model_id, pricing_type, cost_per_generation,
                         required_fields, is_available, unavailable_reason, sort_order)
     VALUES ($1, $2, $3, $4, $5, $6, 'per_video', $7, '{}', false, 'imported from the former backend', 1000)
     ON CONFLICT (id) DO NOTHING`,
    [m.id, m.name, m.category, m.description, m.provider, m.providerModelId, m.cost],
  );
}

export interface ImportedUser {
  id: string;
  email: string | null;
  deviceId: string | null;
  appleSub: string | null;
  isGuest: boolean;
  tier: string;
  language: string;
  themePreference: string;
  createdAt: string;
  supabaseAuthId: string | null;
}

const DEVICE_HASH = (col: string) => `encode(sha256(convert_to(${col}, 'UTF8')), 'hex')`;

/**
 * Inserts the users that are not here yet (ids kept); returns the ids inserted. A user whose id is
 * here already was imported before; one refused for another reason clashes with a user of ours
 * (its device_id or apple_sub is taken), which the caller tells apart with existingUsers.
 * A guest's device is recorded as the one it was onboarded from (its free grant is in its balance).
 */
export async function insertUsers(db: Queryable, users: ImportedUser[]): Promise<Set<string>> {
  if (users.length === 0) return new Set();
  const { rows } = await db.query<{ id: string }>(
    `INSERT INTO users (id, email, device_id, apple_sub, is_guest, tier, language, theme_preference, created_at, supabase_auth_id, onboarded_device_hash)
     SELECT u.id, u.email, u.device_id, u.apple_sub, u.is_guest, u.tier, u.language, u.theme, u.created_at, u.auth_id,
            CASE WHEN u.device_id IS NOT NULL THEN ${DEVICE_HASH('u.device_id')} END
       FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bool[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::uuid[])
            AS u (id, email, device_id, apple_sub, is_guest, tier, language, theme, created_at, auth_id)
     ON CONFLICT DO NOTHING
     RETURNING id::text`,
    [
      users.map((u) => u.id),
      users.map((u) => u.email),
      users.map((u) => u.deviceId),
      users.map((u) => u.appleSub),
      users.map((u) => u.isGuest),
      users.map((u) => u.tier),
      users.map((u) => u.language),
      users.map((u) => u.themePreference),
      users.map((u) => u.createdAt),
      users.map((u) => u.supabaseAuthId),
    ],
  );
  return new Set(rows.map((r) => r.id));
}

/**
 * The former backend gave each device its free credits once: the device is marked as granted here,
 * so its next device-check opens the same guest and gives nothing (granted, its DeviceCheck bit
 * still to be marked on that call).
 */
export async function markDevicesGranted(db: Queryable, users: { id: string; deviceId: string }[]): Promise<void> {
  if (users.length === 0) return;
  await db.query(
    `INSERT INTO device_grants (device_hash, first_user_id, granted)
     SELECT ${DEVICE_HASH('d.device_id')}, d.id, true FROM unnest($1::uuid[], $2::text[]) AS d (id, device_id)
     ON CONFLICT DO NOTHING`,
    [users.map((u) => u.id), users.map((u) => u.deviceId)],
  );
}

export async function existingUsers(db: Queryable, ids: string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ id: string }>('SELECT id::text FROM users WHERE id = ANY($1::uuid[])', [ids]);
  return new Set(rows.map((r) => r.id));
}

export async function existingJobs(db: Queryable, ids: string[]): Promise<Set<string>> {
  const { rows } = await db.query<{ job_id: string }>('SELECT job_id::text FROM video_jobs WHERE job_id = ANY($1::uuid[])', [ids]);
  return new Set(rows.map((r) => r.job_id));
}

export interface ImportedJob {
  jobId: string;
  userId: string;
  modelId: string;
  provider: string;
  prompt: string;
  settings: Record<string, unknown>;
  status: 'completed' | 'failed';
  creditsUsed: number;
  videoKey: string | null;
  thumbnailKey: string | null;
  errorCode: string | null;
  errorMessage: string | null;
  createdAt: string;
  completedAt: string;
  /** What the former backend knew of it that has no column here: its provider request, its file URLs. */
  source: Record<string, unknown>;
}

/** Inserts the jobs not here yet (ended, no hold: migration 0027); returns the ids inserted. */
export async function insertJobs(db: Queryable, jobs: ImportedJob[]): Promise<Set<string>> {
  if (jobs.length === 0) return new Set();
  const { rows } = await db.query<{ job_id: string }>(
    `INSERT INTO video_jobs (job_id, user_id, model_id, prompt, settings, status, provider, provider_state, credits_used, hold_id,
                             video_key, thumbnail_key, error_code, error_message, deadline_at, created_at, submitted_at, completed_at, imported_at)
     SELECT j.job_id, j.user_id, j.model_id, j.prompt, j.settings, j.status, j.provider, jsonb_build_object('imported', j.source), j.credits_used, NULL,
            j.video_key, j.thumbnail_key, j.error_code, j.error_message, j.created_at, j.created_at, j.created_at, j.completed_at, now()
       FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::text[], $5::jsonb[], $6::text[], $7::text[], $8::jsonb[], $9::int[],
                   $10::text[], $11::text[], $12::text[], $13::text[], $14::timestamptz[], $15::timestamptz[])
            AS j (job_id, user_id, model_id, prompt, settings, status, provider, source, credits_used,
                  video_key, thumbnail_key, error_code, error_message, created_at, completed_at)
     ON CONFLICT (job_id) DO NOTHING
     RETURNING job_id::text`,
    [
      jobs.map((j) => j.jobId),
      jobs.map((j) => j.userId),
      jobs.map((j) => j.modelId),
      jobs.map((j) => j.prompt),
      jobs.map((j) => JSON.stringify(j.settings)),
      jobs.map((j) => j.status),
      jobs.map((j) => j.provider),
      jobs.map((j) => JSON.stringify(j.source)),
      jobs.map((j) => j.creditsUsed),
      jobs.map((j) => j.videoKey),
      jobs.map((j) => j.thumbnailKey),
      jobs.map((j) => j.errorCode),
      jobs.map((j) => j.errorMessage),
      jobs.map((j) => j.createdAt),
      jobs.map((j) => j.completedAt),
    ],
  );
  return new Set(rows.map((r) => r.job_id));
}

export interface ImportedTotals {
  users: number;
  opening_credits: number;
  refunded_jobs: number;
  refunded_credits: number;
  purchases: number;
  purchase_credits: number;
  jobs: number;
  videos: number;
  thumbnails: number;
}

/** Everything imported so far (this run and earlier ones), from the ledger and the imported rows. */
export async function importedTotals(db: Queryable): Promise<ImportedTotals> {
  const { rows } = await db.query<ImportedTotals>(
    `SELECT e.users, e.opening_credits, e.refunded_jobs, e.refunded_credits, p.purchases, p.purchase_credits, j.jobs, j.videos, j.thumbnails
       FROM (SELECT count(*) FILTER (WHERE job_id IS NULL AND transaction_id IS NULL)::int AS users,
                    coalesce(sum(amount) FILTER (WHERE job_id IS NULL AND transaction_id IS NULL), 0)::bigint AS opening_credits,
                    count(*) FILTER (WHERE job_id IS NOT NULL)::int AS refunded_jobs,
                    coalesce(sum(amount) FILTER (WHERE job_id IS NOT NULL), 0)::bigint AS refunded_credits
               FROM ledger_entries WHERE kind = 'import') e,
            (SELECT count(*)::int AS purchases, coalesce(sum(t.credits), 0)::bigint AS purchase_credits
               FROM ledger_entries m JOIN iap_transactions t ON t.transaction_id = m.transaction_id
              WHERE m.kind = 'import' AND m.transaction_id IS NOT NULL) p,
            (SELECT count(*)::int AS jobs, count(video_key)::int AS videos, count(thumbnail_key)::int AS thumbnails
               FROM video_jobs WHERE imported_at IS NOT NULL) j`,
  );
  return rows[0]!;
}

export interface ImportedPurchase {
  transactionId: string;
  userId: string;
  productId: string;
  credits: number;
  purchasedAt: string;
}

/**
 * Records the Apple transactions not here yet, each on its buyer's current owner (the end of its
 * merge chain); returns the ones recorded now, with that owner. The former backend kept no signed
 * transaction, product or environment: the product is the pack of that many credits, Production.
 */
export async function insertPurchases(db: Queryable, purchases: ImportedPurchase[]): Promise<Map<string, string>> {
  if (purchases.length === 0) return new Map();
  const { rows } = await db.query<{ transaction_id: string; user_id: string }>(
    `INSERT INTO iap_transactions (transaction_id, original_transaction_id, user_id, product_id, quantity, credits, environment, purchased_at, signed_transaction)
     SELECT p.transaction_id, p.transaction_id, user_current_owner(p.user_id), p.product_id, 1, p.credits, 'Production', p.purchased_at, ''
       FROM unnest($1::text[], $2::uuid[], $3::text[], $4::int[], $5::timestamptz[]) AS p (transaction_id, user_id, product_id, credits, purchased_at)
     ON CONFLICT (transaction_id) DO NOTHING
     RETURNING transaction_id, user_id::text`,
    [
      purchases.map((p) => p.transactionId),
      purchases.map((p) => p.userId),
      purchases.map((p) => p.productId),
      purchases.map((p) => p.credits),
      purchases.map((p) => p.purchasedAt),
    ],
  );
  return new Map(rows.map((r) => [r.transaction_id, r.user_id]));
}

/** Of these Apple transactions, who holds each here, and whether the import marked it. */
export async function knownPurchases(db: Queryable, transactionIds: string[]): Promise<Map<string, { userId: string; imported: boolean }>> {
  const { rows } = await db.query<{ transaction_id: string; user_id: string; imported: boolean }>(
    `SELECT t.transaction_id, t.user_id::text,
            EXISTS (SELECT 1 FROM ledger_entries e WHERE e.transaction_id = t.transaction_id AND e.kind = 'import') AS imported
       FROM iap_transactions t WHERE t.transaction_id = ANY($1::text[])`,
    [transactionIds],
  );
  return new Map(rows.map((r) => [r.transaction_id, { userId: r.user_id, imported: r.imported }]));
}
