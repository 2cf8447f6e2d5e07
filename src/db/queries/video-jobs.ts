import type { Queryable } from '../pool.js';

export type JobStatus = 'queued' | 'submitted' | 'processing' | 'ingesting' | 'completed' | 'failed';

export interface VideoJobRow {
  job_id: string;
  user_id: string;
  model_id: string;
  theme_id: string | null;
  prompt: string;
  settings: { duration: number; resolution?: string; aspect_ratio?: string };
  image_url: string | null;
  status: JobStatus;
  provider: string;
  provider_job_id: string | null;
  provider_state: Record<string, unknown> | null;
  credits_used: number;
  hold_id: string;
  video_key: string | null;
  thumbnail_key: string | null;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  deadline_at: string;
  created_at: string;
  submitted_at: string | null;
  completed_at: string | null;
  deleted_at: string | null;
  /** Set when VIDEO_RETENTION_DAYS deleted the stored files (src/jobs/retention.ts). */
  expired_at: string | null;
  // joined from models
  model_name: string;
  provider_model_id: string;
  category: 'text-to-video' | 'image-to-video';
}

const JOB_SELECT = `SELECT j.*, m.name AS model_name, m.provider_model_id, m.category
  FROM video_jobs j JOIN models m ON m.id = j.model_id`;

/** What a new job row is made of. */
export interface JobInsert {
  jobId: string;
  userId: string;
  modelId: string;
  themeId: string | null;
  prompt: string;
  settings: Record<string, unknown>;
  imageUrl: string | null;
  provider: string;
  creditsUsed: number;
  holdId: string;
  deadlineSeconds: number;
}

export async function insertJob(db: Queryable, j: JobInsert): Promise<{ created_at: string }> {
  const { rows } = await db.query<{ created_at: string }>(
    `INSERT INTO video_jobs (job_id, user_id, model_id, theme_id, prompt, settings, image_url, provider, credits_used, hold_id, deadline_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, now() + make_interval(secs => $11))
     RETURNING created_at`,
    [j.jobId, j.userId, j.modelId, j.themeId, j.prompt, JSON.stringify(j.settings), j.imageUrl, j.provider, j.creditsUsed, j.holdId, j.deadlineSeconds],
  );
  return rows[0]!;
}

export async function findJob(db: Queryable, jobId: string): Promise<VideoJobRow | undefined> {
  const { rows } = await db.query<VideoJobRow>(`${JOB_SELECT} WHERE j.job_id = $1`, [jobId]);
  return rows[0];
}

export async function findJobByProviderId(db: Queryable, provider: string, providerJobId: string): Promise<VideoJobRow | undefined> {
  const { rows } = await db.query<VideoJobRow>(`${JOB_SELECT} WHERE j.provider = $1 AND j.provider_job_id = $2`, [provider, providerJobId]);
  return rows[0];
}

export async function findRunningJobsOf(db: Queryable, userId: string): Promise<VideoJobRow[]> {
  const { rows } = await db.query<VideoJobRow>(`${JOB_SELECT} WHERE j.user_id = $1 AND j.status NOT IN ('completed', 'failed')`, [userId]);
  return rows;
}

/** Whose job it is (unlocked), so a state change can lock the owner's account before the job. */
export async function findJobUserId(db: Queryable, jobId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ user_id: string }>('SELECT user_id FROM video_jobs WHERE job_id = $1', [jobId]);
  return rows[0]?.user_id;
}

/** Locks the job row for a state change; callers re-check its status under the lock. */
export async function lockJob(db: Queryable, jobId: string): Promise<VideoJobRow | undefined> {
  const { rows } = await db.query<VideoJobRow>(`${JOB_SELECT} WHERE j.job_id = $1 FOR UPDATE OF j`, [jobId]);
  return rows[0];
}

/** Takes the submit lease: only one worker submits a queued job at a time; an expired lease is taken over. */
export async function claimSubmit(db: Queryable, jobId: string, leaseSeconds: number): Promise<VideoJobRow | undefined> {
  const { rows } = await db.query<{ job_id: string }>(
    `UPDATE video_jobs SET submit_lease_until = now() + make_interval(secs => $2), attempts = attempts + 1
      WHERE job_id = $1 AND status = 'queued' AND (submit_lease_until IS NULL OR submit_lease_until < now())
      RETURNING job_id`,
    [jobId, leaseSeconds],
  );
  return rows[0] ? findJob(db, jobId) : undefined;
}

export async function releaseSubmitLease(db: Queryable, jobId: string): Promise<void> {
  await db.query("UPDATE video_jobs SET submit_lease_until = NULL WHERE job_id = $1 AND status = 'queued'", [jobId]);
}

export async function markSubmitted(db: Queryable, jobId: string, providerJobId: string, state: Record<string, unknown> | null): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE video_jobs SET status = 'submitted', provider_job_id = $2, provider_state = $3, submitted_at = now(), submit_lease_until = NULL
      WHERE job_id = $1 AND status = 'queued'`,
    [jobId, providerJobId, state ? JSON.stringify(state) : null],
  );
  return rowCount === 1;
}

export async function markProcessing(db: Queryable, jobId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE video_jobs SET status = 'processing', last_polled_at = now() WHERE job_id = $1 AND status = 'submitted'",
    [jobId],
  );
  return rowCount === 1;
}

export async function touchPolled(db: Queryable, jobId: string): Promise<void> {
  await db.query('UPDATE video_jobs SET last_polled_at = now() WHERE job_id = $1', [jobId]);
}

/** Records the provider's output and moves to ingesting; false if the job already moved on. */
export async function markIngesting(db: Queryable, jobId: string, output: Record<string, unknown>): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE video_jobs SET status = 'ingesting', provider_state = coalesce(provider_state, '{}'::jsonb) || jsonb_build_object('output', $2::jsonb)
      WHERE job_id = $1 AND status IN ('submitted', 'processing')`,
    [jobId, JSON.stringify(output)],
  );
  return rowCount === 1;
}

export async function setCompleted(db: Queryable, jobId: string, videoKey: string, thumbnailKey: string | null): Promise<void> {
  await db.query(
    "UPDATE video_jobs SET status = 'completed', video_key = $2, thumbnail_key = $3, completed_at = now() WHERE job_id = $1",
    [jobId, videoKey, thumbnailKey],
  );
}

export async function setFailed(db: Queryable, jobId: string, code: string, message: string): Promise<void> {
  await db.query(
    "UPDATE video_jobs SET status = 'failed', error_code = $2, error_message = $3, completed_at = now(), submit_lease_until = NULL WHERE job_id = $1",
    [jobId, code, message.slice(0, 1000)],
  );
}

export async function setDeleted(db: Queryable, jobId: string): Promise<void> {
  await db.query('UPDATE video_jobs SET deleted_at = now() WHERE job_id = $1', [jobId]);
}

/** Jobs the sweeper must look at: past their deadline, or quiet for longer than they should be. */
export async function findStaleJobs(db: Queryable, quietSeconds: number, limit = 500) {
  const { rows } = await db.query<{ job_id: string; status: JobStatus; overdue: boolean }>(
    `SELECT job_id, status, deadline_at < now() AS overdue FROM video_jobs
      WHERE status NOT IN ('completed', 'failed')
        AND (deadline_at < now() OR updated_at < now() - make_interval(secs => $1))
      ORDER BY deadline_at LIMIT $2`,
    [quietSeconds, limit],
  );
  return rows;
}

/** Newest first. Keyset (cursor) when given, else offset (what the shipped app sends). */
export async function listJobs(
  db: Queryable,
  userId: string,
  page: { limit: number; offset?: number; afterJobId?: string },
): Promise<VideoJobRow[]> {
  const values: unknown[] = [userId, page.limit];
  let where = 'j.user_id = $1 AND j.deleted_at IS NULL';
  if (page.afterJobId) {
    // The cursor names the last job seen; comparing against its stored row keeps full timestamp precision.
    values.push(page.afterJobId);
    where += ' AND (j.created_at, j.job_id) < (SELECT created_at, job_id FROM video_jobs WHERE job_id = $3 AND user_id = $1)';
  }
  const offset = page.afterJobId ? '' : ` OFFSET ${Math.max(0, page.offset ?? 0)}`;
  const { rows } = await db.query<VideoJobRow>(
    `${JOB_SELECT} WHERE ${where} ORDER BY j.created_at DESC, j.job_id DESC LIMIT $2${offset}`,
    values,
  );
  return rows;
}

/** Stores a verified provider callback once; false when this event was already received. */
export async function recordWebhookEvent(
  db: Queryable,
  e: { provider: string; eventId: string; jobId: string | null; payload: unknown; outcome: string },
): Promise<number | undefined> {
  const { rows } = await db.query<{ id: number }>(
    `INSERT INTO webhook_events (provider, event_id, job_id, payload, outcome) VALUES ($1, $2, $3, $4, $5)
     ON CONFLICT (provider, event_id) DO NOTHING RETURNING id`,
    [e.provider, e.eventId, e.jobId, JSON.stringify(e.payload), e.outcome],
  );
  return rows[0]?.id;
}

export async function findWebhookEvent(db: Queryable, id: number) {
  const { rows } = await db.query<{ provider: string; job_id: string | null; payload: unknown }>(
    'SELECT provider, job_id, payload FROM webhook_events WHERE id = $1',
    [id],
  );
  return rows[0];
}
