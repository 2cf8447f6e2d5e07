import { preparedStatement, type Queryable } from '../pool.js';
import { AUTH_STATE_COLUMNS, type AuthState } from './users.js';
import { restQuerySql, type RestQuery, type TableSpec } from '../rest-query.js';

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
  /** null only for history imported from the former backend (src/import/), which ended there. */
  hold_id: string | null;
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
  /** What ingest found in the stored video (migration 0026); null before completion. */
  media_duration_seconds: number | null;
  media_width: number | null;
  media_height: number | null;
  media_codec: string | null;
  media_size_bytes: string | null;
  poster_source: 'ffmpeg' | 'provider' | null;
  media_rejection: Record<string, unknown> | null;
  // joined from models
  model_name: string;
  provider_model_id: string;
  category: 'text-to-video' | 'image-to-video';
}

const JOB_SELECT = `SELECT j.*, m.name AS model_name, m.provider_model_id, m.category
  FROM video_jobs j JOIN models m ON m.id = j.model_id`;

/** What a client is shown of a job (get-video-status, history, streams): a narrow row, read often. */
export type JobViewRow = Pick<
  VideoJobRow,
  | 'job_id'
  | 'user_id'
  | 'status'
  | 'prompt'
  | 'model_name'
  | 'credits_used'
  | 'video_key'
  | 'thumbnail_key'
  | 'error_code'
  | 'error_message'
  | 'created_at'
  | 'deleted_at'
  | 'expired_at'
  | 'media_duration_seconds'
  | 'media_width'
  | 'media_height'
  | 'media_codec'
  | 'media_size_bytes'
>;

// Only the columns a view needs (18, no jsonb): the jsonb settings and provider state cost more to parse than the query.
const JOB_VIEW_COLUMNS = `j.job_id, j.user_id, j.status, j.prompt, m.name AS model_name, j.credits_used, j.video_key, j.thumbnail_key,
       j.error_code, j.error_message, j.created_at, j.deleted_at, j.expired_at,
       j.media_duration_seconds, j.media_width, j.media_height, j.media_codec, j.media_size_bytes`;
const JOB_VIEW_SELECT = `SELECT ${JOB_VIEW_COLUMNS}
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

export async function findJobView(db: Queryable, jobId: string): Promise<JobViewRow | undefined> {
  const { rows } = await db.query<JobViewRow>(jobView([jobId]));
  return rows[0];
}

// The two column lists share no name (id / job_id, deleted / deleted_at): one flat row, split below.
// v.* is the fixed list JOB_VIEW_COLUMNS, so a prepared plan's row type cannot change under it.
const jobViewWithAuth = preparedStatement(
  'job_view_with_auth',
  `SELECT ${AUTH_STATE_COLUMNS}, v.*
     FROM users u LEFT JOIN auth_sessions s ON s.id = $2
     LEFT JOIN LATERAL (SELECT ${JOB_VIEW_COLUMNS} FROM video_jobs j JOIN models m ON m.id = j.model_id WHERE j.job_id = $3) v ON true
    WHERE u.id = $1`,
);
const jobView = preparedStatement('job_view', `${JOB_VIEW_SELECT} WHERE j.job_id = $1`);

/**
 * get-video-status's one round trip (the app polls it every few seconds while a video is made):
 * the caller's standing and session (AuthState, as loadAuthState reads it) and the job, by primary
 * keys, in one statement. auth is undefined when the user does not exist; job when the job does not.
 */
export async function findJobViewWithAuth(
  db: Queryable,
  jobId: string,
  userId: string,
  sessionId: string,
): Promise<{ auth: AuthState | undefined; job: JobViewRow | undefined }> {
  const { rows } = await db.query<AuthState & JobViewRow>(jobViewWithAuth([userId, sessionId, jobId]));
  const row = rows[0];
  if (!row) return { auth: undefined, job: undefined };
  const { id, is_guest, is_admin, banned, deleted, merged_into, session_revoked, ...job } = row;
  return { auth: { id, is_guest, is_admin, banned, deleted, merged_into, session_revoked }, job: job.job_id === null ? undefined : job };
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

/**
 * How long a job whose last submit answer was lost waits for that request's callback before it is
 * submitted again (SUBMIT_LOST_ANSWER_WAIT_SECONDS), and the providers that call back at all.
 */
export interface LostAnswerWait {
  seconds: number;
  providers: string[];
}

// When the job's latest unanswered attempt (outcome 'sent': the request may exist) stops blocking a
// resubmission; NULL when it has none or its provider never calls back.
const lostAnswerUntil = (seconds: string, providers: string) => `CASE WHEN j.provider = ANY(${providers}::text[]) THEN
    (SELECT max(s.created_at) FROM provider_submissions s WHERE s.job_id = j.job_id AND s.outcome = 'sent') + make_interval(secs => ${seconds})
  END`;

/**
 * Takes the submit lease: only one worker submits a queued job at a time; an expired lease is
 * taken over, but never before the job's scheduled retry (next_attempt_at), nor while an earlier
 * request whose answer was lost may still call back (wait.seconds after it was sent).
 */
export async function claimSubmit(db: Queryable, jobId: string, leaseSeconds: number, wait: LostAnswerWait): Promise<VideoJobRow | undefined> {
  const { rows } = await db.query<{ job_id: string }>(
    `UPDATE video_jobs j SET submit_lease_until = now() + make_interval(secs => $2), attempts = attempts + 1, next_attempt_at = NULL
      WHERE job_id = $1 AND status = 'queued' AND (submit_lease_until IS NULL OR submit_lease_until < now())
        AND (next_attempt_at IS NULL OR next_attempt_at <= now())
        AND coalesce(${lostAnswerUntil('$3', '$4')} <= now(), true)
      RETURNING job_id`,
    [jobId, leaseSeconds, wait.seconds, wait.providers],
  );
  return rows[0] ? findJob(db, jobId) : undefined;
}

/** A queued job that cannot be claimed yet: when it can (lease over, retry due, lost answer waited for); undefined otherwise. */
export async function submitDueAt(db: Queryable, jobId: string, wait: LostAnswerWait): Promise<Date | undefined> {
  const { rows } = await db.query<{ due: string | null }>(
    `SELECT due FROM (
       SELECT greatest(submit_lease_until, next_attempt_at, ${lostAnswerUntil('$2', '$3')}) AS due FROM video_jobs j
        WHERE job_id = $1 AND status = 'queued'
     ) d WHERE due > now()`,
    [jobId, wait.seconds, wait.providers],
  );
  return rows[0]?.due ? new Date(rows[0].due) : undefined;
}

/** Gives the lease back after a retryable failure; the job is next tried at retryAt. */
export async function releaseSubmitLease(db: Queryable, jobId: string, retryAt?: Date): Promise<void> {
  await db.query("UPDATE video_jobs SET submit_lease_until = NULL, next_attempt_at = $2 WHERE job_id = $1 AND status = 'queued'", [jobId, retryAt ?? null]);
}

/** A poll failed retryably: counted, and not to be repeated (by the sweep either) before retryAt. */
export async function deferPoll(db: Queryable, jobId: string, retryAt: Date): Promise<void> {
  await db.query('UPDATE video_jobs SET attempts = attempts + 1, next_attempt_at = $2 WHERE job_id = $1', [jobId, retryAt]);
}

export async function markSubmitted(db: Queryable, jobId: string, providerJobId: string, state: Record<string, unknown> | null): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE video_jobs SET status = 'submitted', provider_job_id = $2, provider_state = $3, submitted_at = now(), submit_lease_until = NULL, next_attempt_at = NULL
      WHERE job_id = $1 AND status = 'queued'`,
    [jobId, providerJobId, state ? JSON.stringify(state) : null],
  );
  return rowCount === 1;
}

/** The request still running is the job's: marks it processing (from submitted); false once the job ended or uses another request. */
export async function markProcessing(db: Queryable, jobId: string, providerJobId: string): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE video_jobs SET status = 'processing', last_polled_at = now() WHERE job_id = $1 AND provider_job_id = $2 AND status IN ('submitted', 'processing')",
    [jobId, providerJobId],
  );
  return rowCount === 1;
}

/** Marks a job as looked at (the sweep nudged it), so the next sweep leaves it alone for a while. */
export async function touchJob(db: Queryable, jobId: string): Promise<void> {
  await db.query('UPDATE video_jobs SET updated_at = now() WHERE job_id = $1', [jobId]);
}

export async function touchPolled(db: Queryable, jobId: string): Promise<void> {
  await db.query('UPDATE video_jobs SET last_polled_at = now(), next_attempt_at = NULL WHERE job_id = $1', [jobId]);
}

/** Records the provider's output and moves to ingesting; false if the job already moved on. */
export async function markIngesting(db: Queryable, jobId: string, providerJobId: string, output: Record<string, unknown>): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE video_jobs SET status = 'ingesting', provider_state = coalesce(provider_state, '{}'::jsonb) || jsonb_build_object('output', $3::jsonb)
      WHERE job_id = $1 AND provider_job_id = $2 AND status IN ('submitted', 'processing')`,
    [jobId, providerJobId, JSON.stringify(output)],
  );
  return rowCount === 1;
}

/** What ingest found in the stored video (src/media/ingest.ts). */
export interface StoredMedia {
  durationSeconds: number;
  width: number;
  height: number;
  codec: string;
  sizeBytes: number;
  posterSource: 'ffmpeg' | 'provider' | null;
}

export async function setCompleted(db: Queryable, jobId: string, videoKey: string, thumbnailKey: string | null, media?: StoredMedia): Promise<void> {
  await db.query(
    `UPDATE video_jobs SET status = 'completed', video_key = $2, thumbnail_key = $3, completed_at = now(),
            media_duration_seconds = $4, media_width = $5, media_height = $6, media_codec = $7, media_size_bytes = $8, poster_source = $9
      WHERE job_id = $1`,
    [jobId, videoKey, thumbnailKey, media?.durationSeconds ?? null, media?.width ?? null, media?.height ?? null, media?.codec ?? null, media?.sizeBytes ?? null, media?.posterSource ?? null],
  );
}

/** Keeps, for operators, what a provider delivered that failed ingest's checks. */
export async function setMediaRejection(db: Queryable, jobId: string, rejection: Record<string, unknown>): Promise<void> {
  await db.query('UPDATE video_jobs SET media_rejection = $2 WHERE job_id = $1', [jobId, JSON.stringify(rejection)]);
}

/**
 * error_message is what the user reads: userMessage in the owner's language. The provider's own
 * words (raw text, failure codes) go to provider_error, for operators only.
 */
export async function setFailed(db: Queryable, jobId: string, code: string, userMessage: (language: string) => string, providerError: string): Promise<void> {
  const { rows } = await db.query<{ language: string }>(
    'SELECT u.language FROM video_jobs j JOIN users u ON u.id = j.user_id WHERE j.job_id = $1',
    [jobId],
  );
  await db.query(
    `UPDATE video_jobs SET status = 'failed', error_code = $2, error_message = $3, provider_error = $4,
       completed_at = now(), submit_lease_until = NULL WHERE job_id = $1`,
    [jobId, code, userMessage(rows[0]?.language ?? 'en'), providerError.slice(0, 1000)],
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
        AND (deadline_at < now() OR updated_at < now() - make_interval(secs => $1)
               -- a scheduled retry (backoff, Retry-After, open circuit) or a live submit lease decides, not the sweep
               AND (next_attempt_at IS NULL OR next_attempt_at <= now())
               AND (status <> 'queued' OR submit_lease_until IS NULL OR submit_lease_until <= now()))
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
): Promise<JobViewRow[]> {
  const values: unknown[] = [userId, page.limit];
  let where = 'j.user_id = $1 AND j.deleted_at IS NULL';
  if (page.afterJobId) {
    // The cursor names the last job seen; comparing against its stored row keeps full timestamp precision.
    values.push(page.afterJobId);
    where += ' AND (j.created_at, j.job_id) < (SELECT created_at, job_id FROM video_jobs WHERE job_id = $3 AND user_id = $1)';
  }
  const offset = page.afterJobId ? '' : ` OFFSET ${Math.max(0, page.offset ?? 0)}`;
  const { rows } = await db.query<JobViewRow>(
    `${JOB_VIEW_SELECT} WHERE ${where} ORDER BY j.created_at DESC, j.job_id DESC LIMIT $2${offset}`,
    values,
  );
  return rows;
}

/**
 * video_jobs on rest/v1: the owner's jobs with get-video-jobs' columns. Names are those of the job's
 * public view; status is the public one (jobs/job-view.ts PUBLIC_STATUS: queued and submitted are
 * pending, ingesting is processing), so a filter means what the client reads.
 */
const PUBLIC_STATUS_SQL = `(CASE WHEN j.status IN ('queued', 'submitted') THEN 'pending' WHEN j.status = 'ingesting' THEN 'processing' ELSE j.status END)`;
const OWN_JOB_FILTERS = {
  job_id: 'uuid',
  user_id: 'uuid',
  status: 'text',
  prompt: 'text',
  model_name: 'text',
  credits_used: 'integer',
  error_code: 'text',
  error_message: 'text',
  created_at: 'timestamp',
} as const;

export const OWN_JOBS_TABLE: TableSpec = {
  selectable: ['job_id', 'status', 'prompt', 'model_name', 'credits_used', 'video_url', 'thumbnail_url', 'error_code', 'error_message', 'created_at', 'media'],
  filterable: OWN_JOB_FILTERS,
  orderable: Object.keys(OWN_JOB_FILTERS).filter((c) => c !== 'user_id'),
  sql: {
    job_id: 'j.job_id',
    user_id: 'j.user_id',
    status: PUBLIC_STATUS_SQL,
    prompt: 'j.prompt',
    model_name: 'm.name',
    credits_used: 'j.credits_used',
    error_code: 'j.error_code',
    error_message: 'j.error_message',
    created_at: 'j.created_at',
  },
};

/**
 * The owner's jobs for a rest/v1 query, and with count their total. Every query starts at
 * video_jobs_history (user_id, created_at DESC, job_id DESC WHERE deleted_at IS NULL): only the
 * owner's rows are read, whatever the filters and order, so the cost is that user's job count
 * (newest first by default, as get-video-jobs), not the table's.
 */
export async function queryOwnJobs(db: Queryable, userId: string, q: RestQuery, count: boolean): Promise<{ rows: JobViewRow[]; total?: number }> {
  const ordered = q.order.length ? q : { ...q, order: [{ column: 'created_at', descending: true }, { column: 'job_id', descending: true }] };
  const { where, tail, values } = restQuerySql(ordered, OWN_JOBS_TABLE, 2);
  const own = 'j.user_id = $1 AND j.deleted_at IS NULL';
  const [{ rows }, total] = await Promise.all([
    db.query<JobViewRow>(`${JOB_VIEW_SELECT} WHERE ${own}${where}${tail}`, [userId, ...values]),
    count
      ? db
          .query<{ n: number }>(`SELECT count(*)::int AS n FROM video_jobs j JOIN models m ON m.id = j.model_id WHERE ${own}${where}`, [userId, ...values])
          .then((r) => r.rows[0]!.n)
      : undefined,
  ]);
  return { rows, total };
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
  const { rows } = await db.query<{ provider: string; job_id: string | null; payload: unknown; outcome: string | null }>(
    'SELECT provider, job_id, payload, outcome FROM webhook_events WHERE id = $1',
    [id],
  );
  return rows[0];
}

/** Notes a submit attempt before the provider is called (the call may create a request we never hear about). */
export async function recordSubmission(db: Queryable, jobId: string, attempt: number, provider: string): Promise<void> {
  await db.query('INSERT INTO provider_submissions (job_id, attempt, provider) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [jobId, attempt, provider]);
}

export async function setSubmissionOutcome(
  db: Queryable,
  jobId: string,
  attempt: number,
  providerJobId: string,
  outcome: 'accepted' | 'redundant',
): Promise<void> {
  await db.query('UPDATE provider_submissions SET provider_job_id = $3, outcome = $4 WHERE job_id = $1 AND attempt = $2', [jobId, attempt, providerJobId, outcome]);
}

/** The provider answered the submit with an error (or was not called): no request exists, nothing to wait for. */
export async function setSubmissionNotCreated(db: Queryable, jobId: string, attempt: number): Promise<void> {
  await db.query("UPDATE provider_submissions SET outcome = 'not_created' WHERE job_id = $1 AND attempt = $2 AND outcome = 'sent'", [jobId, attempt]);
}

/** A submit attempt that never learnt its request id (the answer was lost), or undefined. */
export async function findLostSubmission(db: Queryable, provider: string, jobId: string, attempt: number) {
  const { rows } = await db.query<{ job_id: string; attempt: number }>(
    "SELECT job_id, attempt FROM provider_submissions WHERE provider = $1 AND job_id = $2 AND attempt = $3 AND provider_job_id IS NULL AND outcome = 'sent'",
    [provider, jobId, attempt],
  );
  return rows[0];
}

/**
 * Claims a lost submission for the request that just reported; false when another report claimed
 * it first. billed: for a redundant one, whether the provider finished it (it reported a result).
 */
export async function claimLostSubmission(
  db: Queryable,
  jobId: string,
  attempt: number,
  providerJobId: string,
  outcome: 'adopted' | 'redundant',
  billed: boolean | null = null,
): Promise<boolean> {
  const { rowCount } = await db.query(
    "UPDATE provider_submissions SET provider_job_id = $3, outcome = $4, billed = $5 WHERE job_id = $1 AND attempt = $2 AND provider_job_id IS NULL AND outcome = 'sent'",
    [jobId, attempt, providerJobId, outcome, billed],
  );
  return rowCount === 1;
}

/**
 * Whether a callback of this job received before the given one reported a result (a video, or
 * "done" without it): that request answered first with a result and is the one the job keeps,
 * whether or not its callback has been applied yet.
 */
export async function resultReportedBefore(db: Queryable, jobId: string, webhookEventId: number): Promise<boolean> {
  const { rows } = await db.query<{ reported: boolean }>(
    `SELECT EXISTS (SELECT 1 FROM webhook_events WHERE job_id = $1 AND id < $2 AND payload->>'state' IN ('succeeded', 'result_ready')) AS reported`,
    [jobId, webhookEventId],
  );
  return rows[0]!.reported;
}

/**
 * Another submit attempt of this job never learnt its request id and no report has claimed it:
 * its request may exist, run and still deliver a result.
 */
export async function otherSubmissionUnanswered(db: Queryable, jobId: string, attempt: number): Promise<boolean> {
  const { rows } = await db.query<{ unanswered: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM provider_submissions WHERE job_id = $1 AND attempt <> $2 AND provider_job_id IS NULL AND outcome = 'sent') AS unanswered",
    [jobId, attempt],
  );
  return rows[0]!.unanswered;
}

/** A submitter holds the job's lease right now: its request may exist and run, though we do not know it yet. */
export async function isSubmitting(db: Queryable, jobId: string): Promise<boolean> {
  const { rows } = await db.query<{ submitting: boolean }>(
    "SELECT EXISTS (SELECT 1 FROM video_jobs WHERE job_id = $1 AND status = 'queued' AND submit_lease_until > now()) AS submitting",
    [jobId],
  );
  return rows[0]!.submitting;
}

/** Makes a request the job's own (an adopted orphan): submitted if it was still queued, else the request swapped. */
export async function adoptRequest(db: Queryable, jobId: string, providerJobId: string): Promise<void> {
  await db.query(
    `UPDATE video_jobs SET provider_job_id = $2, provider_state = NULL, submit_lease_until = NULL, next_attempt_at = NULL,
            status = CASE WHEN status = 'queued' THEN 'submitted' ELSE status END,
            submitted_at = coalesce(submitted_at, now())
      WHERE job_id = $1`,
    [jobId, providerJobId],
  );
}

/** A request its job no longer uses (another one was adopted in its place); its cancel is queued with this. */
export async function markRedundant(db: Queryable, provider: string, providerJobId: string): Promise<void> {
  await db.query("UPDATE provider_submissions SET outcome = 'redundant' WHERE provider = $1 AND provider_job_id = $2", [provider, providerJobId]);
}

/**
 * Keeps the provider's answer to a cancel of this request, and whether that makes it billed: the
 * first real answer stays (a retried cancel's does not replace it), an 'unknown' is replaced. Returns the request's row, if we made it.
 */
export async function recordCancelAnswer(
  db: Queryable,
  provider: string,
  providerJobId: string,
  answer: 'cancelled' | 'refused' | 'already_finished' | 'unknown',
): Promise<{ job_id: string; outcome: string; billed: boolean | null } | undefined> {
  const { rows } = await db.query<{ job_id: string; outcome: string; billed: boolean | null }>(
    `UPDATE provider_submissions
        SET cancel_answer = $3, cancel_answered_at = now(),
            billed = CASE $3 WHEN 'already_finished' THEN true WHEN 'cancelled' THEN false ELSE billed END
      WHERE provider = $1 AND provider_job_id = $2 AND (cancel_answer IS NULL OR cancel_answer = 'unknown')
      RETURNING job_id, outcome, billed`,
    [provider, providerJobId, answer],
  );
  return rows[0];
}

/**
 * What generate-video's per-user limits count, for one user (src/jobs/generate-limits.ts): jobs
 * created within the window that did not fail on their own (a job the user cancelled, ERR_4019,
 * still counts: its provider request may have run), the oldest of them (when a slot frees), and
 * the jobs still running. Every job ends by its deadline, far within a day, so one range scan of
 * video_jobs_user_created over the last day (or the window, if longer) sees them all.
 */
export async function countGenerateUsage(
  db: Queryable,
  userId: string,
  windowSeconds: { user: number; buyer: number },
): Promise<{ bought: boolean; counted: number; oldestCountedAgeSeconds: number | null; inFlight: number }> {
  // Whether the user has bought (which tier's window counts) and the count, in one statement: generate-video runs it twice.
  const { rows } = await db.query<{ bought: boolean; counted: number; oldest_age: number | null; in_flight: number }>(
    `WITH tier AS (
       SELECT bought, CASE WHEN bought THEN $3::int ELSE $2::int END AS window_seconds
         FROM (SELECT EXISTS (SELECT 1 FROM iap_transactions WHERE user_id = $1 AND revoked_at IS NULL) AS bought) b
     ), recent AS (
       SELECT created_at, status, error_code FROM video_jobs
       WHERE user_id = $1 AND created_at > now() - make_interval(secs => greatest($2::int, $3::int, 86400))
     ), counted AS (
       SELECT created_at FROM recent, tier
       WHERE created_at > now() - make_interval(secs => tier.window_seconds) AND (status <> 'failed' OR error_code = 'ERR_4019')
     )
     SELECT (SELECT bought FROM tier) AS bought, -- by iap_transactions_user
            (SELECT count(*)::int FROM counted) AS counted,
            (SELECT extract(epoch FROM now() - min(created_at))::float8 FROM counted) AS oldest_age,
            (SELECT count(*)::int FROM recent WHERE status NOT IN ('completed', 'failed')) AS in_flight`,
    [userId, windowSeconds.user, windowSeconds.buyer],
  );
  const row = rows[0]!;
  return { bought: row.bought, counted: row.counted, oldestCountedAgeSeconds: row.oldest_age, inFlight: row.in_flight };
}
