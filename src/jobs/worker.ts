import { Logger as GraphileLogger, run, type Runner, type TaskList } from 'graphile-worker';
import type pg from 'pg';
import type { Logger } from '../logger.js';
import type { PurchaseService } from '../apple/purchases.js';
import type { AccountDeletionService } from '../auth/account-deletion.js';
import type { VideoJobService } from './video-jobs.js';

/**
 * The worker role: graphile-worker runs our tasks (at least once each, so every task is
 * idempotent) and the schedules. Signals are ours to handle (main.ts), not graphile's.
 */

interface JobPayload {
  jobId: string;
}

function payload(p: unknown): JobPayload {
  const jobId = (p as Partial<JobPayload> | null)?.jobId;
  if (typeof jobId !== 'string') throw new Error('task payload lacks jobId');
  return { jobId };
}

/** What the tasks call into. */
export interface WorkerDeps {
  jobs: VideoJobService;
  purchases: PurchaseService;
  accountDeletion: AccountDeletionService;
  cleanupIdempotencyKeys: () => Promise<number>;
}

export function taskList({ jobs, purchases, accountDeletion, cleanupIdempotencyKeys }: WorkerDeps): TaskList {
  return {
    submit_video_job: async (p) => jobs.submit(payload(p).jobId),
    poll_video_job: async (p) => jobs.poll(payload(p).jobId),
    ingest_video_job: async (p) => jobs.ingest(payload(p).jobId),
    apply_webhook_event: async (p) => {
      const eventId = (p as { eventId?: unknown } | null)?.eventId;
      if (typeof eventId !== 'number') throw new Error('task payload lacks eventId');
      await jobs.applyWebhookEvent(eventId);
    },
    sweep_video_jobs: async () => void (await jobs.sweep()),
    cleanup_idempotency_keys: async () => void (await cleanupIdempotencyKeys()),
    send_consumption_info: async (p) => {
      const uuid = (p as { notificationUuid?: unknown } | null)?.notificationUuid;
      if (typeof uuid !== 'string') throw new Error('task payload lacks notificationUuid');
      await purchases.sendConsumptionInfo(uuid);
    },
    purge_deleted_account: async (p) => {
      const userId = (p as { userId?: unknown } | null)?.userId;
      if (typeof userId !== 'string') throw new Error('task payload lacks userId');
      await accountDeletion.purge(userId);
    },
  };
}

export async function startWorker(opts: WorkerDeps & {
  pool: pg.Pool;
  concurrency: number;
  pollIntervalMs: number;
  log: Logger;
}): Promise<Runner> {
  const log = opts.log.child({ component: 'worker' });
  const logger = new GraphileLogger(() => (level, message, meta) => {
    const fn = level === 'error' ? log.error.bind(log) : level === 'warning' ? log.warn.bind(log) : log.debug.bind(log);
    fn(meta ?? {}, message);
  });
  const runner = await run({
    pgPool: opts.pool,
    taskList: taskList(opts),
    // Timeouts and stuck-job nudges every minute; expired idempotency keys hourly.
    crontab: ['* * * * * sweep_video_jobs ?max=1', '7 * * * * cleanup_idempotency_keys ?max=1'].join('\n'),
    concurrency: opts.concurrency,
    pollInterval: opts.pollIntervalMs,
    noHandleSignals: true,
    logger,
  });
  // A worker that (re)starts recovers at once what a crashed one left behind, without waiting for cron.
  await opts.jobs.sweep().catch((err) => log.error({ err }, 'startup sweep failed'));
  return runner;
}
