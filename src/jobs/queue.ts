import { runMigrations } from 'graphile-worker';
import { createPool, type Queryable } from '../db/pool.js';
import { traceCarrier } from '../tracing.js';

/**
 * The durable queue is graphile-worker (PostgreSQL, SKIP LOCKED, LISTEN/NOTIFY). Jobs are added
 * with its SQL function inside OUR transaction, so a video job, its hold and its first queue
 * entry commit together or not at all (no outbox needed).
 */

export type TaskName =
  | 'submit_video_job'
  | 'poll_video_job'
  | 'ingest_video_job'
  | 'apply_webhook_event'
  | 'cancel_provider_request'
  | 'sweep_video_jobs'
  | 'cleanup_idempotency_keys'
  | 'cleanup_used_identity_tokens'
  | 'send_consumption_info'
  | 'purge_deleted_account'
  | 'send_job_push'
  | 'retention_error_log'
  | 'retention_sessions'
  | 'retention_webhook_events'
  | 'retention_app_store_notifications'
  | 'retention_rate_limits'
  | 'retention_videos'
  | 'verify_ledger';

export interface EnqueueOptions {
  runAt?: Date;
  /** Same key replaces the pending job (graphile's job_key, mode replace): one poll per video job. */
  jobKey?: string;
  maxAttempts?: number;
}

export async function enqueue(db: Queryable, task: TaskName, payload: Record<string, unknown>, opts: EnqueueOptions = {}): Promise<void> {
  // With tracing on, the task continues the trace of whatever queued it (src/tracing.ts); off, nothing is added.
  const trace = traceCarrier();
  await db.query('SELECT graphile_worker.add_job($1, $2::json, run_at := $3, job_key := $4, max_attempts := $5)', [
    task,
    JSON.stringify(trace.traceparent ? { ...payload, trace } : payload),
    opts.runAt ?? null,
    opts.jobKey ?? null,
    opts.maxAttempts ?? 25,
  ]);
}

/** Installs or upgrades graphile-worker's own schema (it versions itself). */
export async function installQueueSchema(connectionString: string): Promise<void> {
  const pool = createPool(connectionString, 1);
  try {
    await runMigrations({ pgPool: pool });
  } finally {
    await pool.end();
  }
}

/** Full-jitter exponential backoff (AWS): random(0, min(cap, base·2^attempt)), never below Retry-After. */
export function backoffMs(attempt: number, opts: { baseMs?: number; capMs?: number; retryAfterMs?: number } = {}): number {
  const base = opts.baseMs ?? 2000;
  const cap = opts.capMs ?? 5 * 60_000;
  const ceiling = Math.min(cap, base * 2 ** Math.min(attempt, 20));
  return Math.max(opts.retryAfterMs ?? 0, Math.floor(Math.random() * ceiling));
}
