import { z } from 'zod';
import type { ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

/** The worker and the life of a video job, from the generate request to its end. */
export const jobsEnv = z.object({
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(8),
  /** Connections of the worker's own pool; default WORKER_CONCURRENCY + 3 (graphile fetches and completes on its own connections; its LISTEN is the process's shared one). */
  WORKER_DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(200).optional(),
  /**
   * ROLE=all only: while the API answers requests and the event loop is busier than this share,
   * the worker's next task waits (src/jobs/cpu-budget.ts), so a backlog cannot starve the API. 1: no budget.
   */
  WORKER_CPU_SHARE: z.coerce.number().min(0.05).max(1).default(0.5),
  /** How often the worker looks for delayed jobs (retries, polls), in ms. */
  WORKER_POLL_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
  IDEMPOTENCY_KEY_TTL_HOURS: z.coerce.number().int().min(24).max(24 * 30).default(24),
  /** A key whose holder stopped renewing its lock this long ago is taken over (the holder died). */
  IDEMPOTENCY_LOCK_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
  /** A submit lease older than this is taken over (the worker holding it died). */
  SUBMIT_LEASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(90),
  /**
   * A submit whose answer was lost (timeout, reset, a worker killed mid-call) may have created the
   * request anyway; it calls back when it finishes. The job is not submitted again for this long
   * after the lost attempt (providers with webhooks only), so that request can report and be
   * adopted instead of being billed beside a second one. 0 resubmits at once. docs/RELIABILITY.md.
   */
  SUBMIT_LOST_ANSWER_WAIT_SECONDS: z.coerce.number().int().min(0).max(3600).default(180),
  /** A running job quiet this long is nudged by the sweeper (lost queue entry, dead worker). */
  JOB_QUIET_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
  /**
   * Test-only fault injection: the process SIGKILLs itself at this point of the generate flow
   * (test/reliability/crash.jobs.test.ts). Refused in production.
   */
  FAULT_CRASH_AT: z.enum(['generate:after-commit', 'submit:after-provider', 'ingest:after-store', 'complete:before-commit']).optional(),
});
type JobsEnv = z.infer<typeof jobsEnv>;

export interface JobsSection {
  /** databasePoolMax: the worker role's own pool (never shared with the API, so neither starves the other). */
  worker: { concurrency: number; pollIntervalMs: number; databasePoolMax: number; cpuShare: number };
  idempotencyKeyTtlHours: number;
  idempotencyLockSeconds: number;
  submitLeaseSeconds: number;
  submitLostAnswerWaitSeconds: number;
  jobQuietSeconds: number;
  crashAt: JobsEnv['FAULT_CRASH_AT'];
}

export function jobsSection(e: JobsEnv & Pick<ServerEnv, 'NODE_ENV'>, report: ReportIssue): JobsSection {
  if (e.NODE_ENV === 'production' && e.FAULT_CRASH_AT) report('FAULT_CRASH_AT', 'fault injection is for tests only');
  return {
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      pollIntervalMs: e.WORKER_POLL_INTERVAL_MS,
      databasePoolMax: e.WORKER_DATABASE_POOL_MAX ?? e.WORKER_CONCURRENCY + 3,
      cpuShare: e.WORKER_CPU_SHARE,
    },
    idempotencyKeyTtlHours: e.IDEMPOTENCY_KEY_TTL_HOURS,
    idempotencyLockSeconds: e.IDEMPOTENCY_LOCK_SECONDS,
    submitLeaseSeconds: e.SUBMIT_LEASE_SECONDS,
    submitLostAnswerWaitSeconds: e.SUBMIT_LOST_ANSWER_WAIT_SECONDS,
    jobQuietSeconds: e.JOB_QUIET_SECONDS,
    crashAt: e.FAULT_CRASH_AT,
  };
}
