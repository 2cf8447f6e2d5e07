import { EventEmitter } from 'node:events';
import { Logger as GraphileLogger, run, type JobHelpers, type Runner, type Task, type TaskList, type WorkerEvents } from 'graphile-worker';
import type pg from 'pg';
import { createPool } from '../db/pool.js';
import type { DatabaseListener } from '../db/listener.js';
import type { Logger } from '../logger.js';
import type { PurchaseService } from '../apple/purchases.js';
import type { AccountDeletionService } from '../auth/account-deletion.js';
import type { PushService } from '../push/notifications.js';
import type { CpuBudget } from './cpu-budget.js';
import { startHeartbeat } from './heartbeat.js';
import { SpanKind, contextFrom, inSpan } from '../tracing.js';
import type { LedgerVerificationTask } from './ledger-verification.js';
import type { RetentionService } from './retention.js';
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

/** How long the worker's pool waits out a database that is unreachable or busy before a connect fails. */
const WORKER_CONNECT_PATIENCE_MS = 120_000;

/**
 * graphile-worker's job completions (complete/fail/return: a delete or update of its job rows,
 * guarded by locked_by, so running one twice is harmless). 0.17 does not await them, so one whose
 * connection a database restart killed must not reject: the pool re-runs it (db/pool.ts).
 */
export function isQueueCompletion(text: string): boolean {
  return /^\s*(with\s+j\s+as\s*\(\s*)?(delete\s+from|update)\s+\S*\._private_jobs\b/i.test(text);
}

/**
 * The worker role's own pool: never shared with the API (a flood of requests must not starve the
 * queue, nor the queue the API), and patient — see PatientPool in db/pool.ts for why graphile-worker
 * needs that.
 */
export function createWorkerPool(connectionString: string, max: number, log?: Logger, preparedStatements = false, onPreparedStatementsLost?: (err: unknown) => void): pg.Pool {
  return createPool(connectionString, max, {
    applicationName: 'rendio-worker',
    preparedStatements,
    onPreparedStatementsLost,
    retryConnectForMs: WORKER_CONNECT_PATIENCE_MS,
    retryStatement: isQueueCompletion,
    onConnectRetry: (err, attempt) => {
      if (attempt === 1 || attempt % 10 === 0) log?.warn({ err, attempt }, 'worker: no database connection yet; retrying');
    },
  });
}

/** What the tasks call into. */
export interface WorkerDeps {
  jobs: VideoJobService;
  purchases: PurchaseService;
  accountDeletion: AccountDeletionService;
  push: PushService;
  cleanupIdempotencyKeys: () => Promise<number>;
  cleanupUsedIdentityTokens: () => Promise<number>;
  retention: RetentionService;
  ledgerVerification: LedgerVerificationTask;
}

/**
 * Retention (src/jobs/retention.ts), spread over the night (UTC) so no two run at once; the limiter's
 * expired counters hourly. Each task is a whole pass: a missed night is caught up by the next.
 */
const RETENTION_CRONTAB = [
  '11 3 * * * retention_error_log ?max=1',
  '21 3 * * * retention_sessions ?max=1',
  '31 3 * * * retention_webhook_events ?max=1',
  '41 3 * * * retention_app_store_notifications ?max=1',
  '51 3 * * * retention_videos ?max=1',
  '27 * * * * retention_rate_limits ?max=1',
];

/**
 * verify-ledger, incrementally (what changed since the last verified checkpoint), after the night's
 * retention. A broken invariant is logged as an error and raises rendio_ledger_violations.
 */
const LEDGER_CRONTAB = ['7 4 * * * verify_ledger ?max=1'];

/** Every task takes a turn from the CPU budget first (ROLE=all), then runs. */
function budgeted(tasks: TaskList, budget: CpuBudget | undefined): TaskList {
  if (!budget) return tasks;
  return Object.fromEntries(
    Object.entries(tasks).map(([name, task]) => [name, async (...args: Parameters<Task>) => (await budget.turn(), task!(...args))]),
  );
}

export function taskList({ jobs, purchases, accountDeletion, push, cleanupIdempotencyKeys, cleanupUsedIdentityTokens, retention, ledgerVerification }: WorkerDeps): TaskList {
  return {
    submit_video_job: async (p) => jobs.submit(payload(p).jobId),
    poll_video_job: async (p) => jobs.poll(payload(p).jobId),
    ingest_video_job: async (p) => jobs.ingest(payload(p).jobId),
    apply_webhook_event: async (p) => {
      const eventId = (p as { eventId?: unknown } | null)?.eventId;
      if (typeof eventId !== 'number') throw new Error('task payload lacks eventId');
      await jobs.applyWebhookEvent(eventId);
    },
    cancel_provider_request: async (p) => {
      const { provider, providerJobId, state, providerModelId } = (p ?? {}) as { provider?: unknown; providerJobId?: unknown; state?: unknown; providerModelId?: unknown };
      if (typeof provider !== 'string' || typeof providerJobId !== 'string' || typeof providerModelId !== 'string') throw new Error('task payload lacks the request');
      const answer = await jobs.cancelRequest(provider, { providerJobId, providerModelId, state: (state ?? null) as Record<string, unknown> | null });
      // No usable answer (timeout, 5xx): ask again later (graphile's backoff); a real answer replaces 'unknown'.
      if (answer === 'unknown') throw new Error(`${provider} gave no usable answer to cancelling ${providerJobId}`);
    },
    sweep_video_jobs: async () => void (await jobs.sweep()),
    cleanup_idempotency_keys: async () => void (await cleanupIdempotencyKeys()),
    cleanup_used_identity_tokens: async () => void (await cleanupUsedIdentityTokens()),
    retention_error_log: async () => void (await retention.errorLog()),
    retention_sessions: async () => void (await retention.sessions()),
    retention_webhook_events: async () => void (await retention.webhookEvents()),
    retention_app_store_notifications: async () => void (await retention.appStoreNotifications()),
    retention_rate_limits: async () => void (await retention.rateLimits()),
    retention_videos: async () => void (await retention.videos()),
    verify_ledger: async () => void (await ledgerVerification.run()),
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
    // Throws on APNs 429/5xx: graphile's retry (exponential backoff) sends to the devices not yet settled.
    send_job_push: async (p) => push.sendForJob(payload(p).jobId),
  };
}

/** Each task in a span that continues the trace its payload carries (enqueue put it there), if tracing is on. */
function traced(tasks: TaskList): TaskList {
  return Object.fromEntries(
    Object.entries(tasks).map(([name, task]) => [
      name,
      (p: unknown, helpers: JobHelpers) => {
        const jobId = (p as { jobId?: unknown } | null)?.jobId;
        const attributes = { 'rendio.task': name, ...(typeof jobId === 'string' ? { 'rendio.job_id': jobId } : {}), 'rendio.attempt': helpers.job.attempts };
        return inSpan(`task ${name}`, attributes, async () => task!(p, helpers), { kind: SpanKind.CONSUMER, parent: contextFrom((p as { trace?: unknown } | null)?.trace) });
      },
    ]),
  );
}

/**
 * graphile-worker keeps a connection of its own for LISTEN "jobs:insert" (taken with the callback
 * form of pool.connect, which nothing else of its calls). Handed this pool, it gets a stand-in
 * whose LISTENs are channels of the process's shared listener instead: one LISTEN connection per
 * process, and behind a transaction pooler its wake-ups still arrive (a LISTEN through the pooler
 * would hear nothing). Everything else is the pool itself.
 */
export function poolWithSharedListen(pool: pg.Pool, listener: DatabaseListener): pg.Pool {
  return new Proxy(pool, {
    get(target, prop) {
      if (prop === 'connect') {
        return (callback?: (err: Error | undefined, client: unknown, release: () => void) => void) => {
          if (!callback) return target.connect();
          const client = new SharedListenClient(listener);
          queueMicrotask(() => callback(undefined, client, () => client.release()));
          return undefined;
        };
      }
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
}

/** The part of a pg client graphile's listener uses: query (LISTEN/UNLISTEN only), events, release. */
class SharedListenClient extends EventEmitter {
  private readonly stops = new Map<string, () => void>();

  constructor(private readonly listener: DatabaseListener) {
    super();
  }

  async query(text: string): Promise<{ rows: never[] }> {
    for (const [, verb, channel] of text.matchAll(/\b(UNLISTEN|LISTEN)\s+"([^"]+)"/gi)) {
      if (verb!.toUpperCase() === 'UNLISTEN') {
        this.stops.get(channel!)?.();
        this.stops.delete(channel!);
      } else if (!this.stops.has(channel!)) {
        const stop = await this.listener.listen(channel!, {
          onNotify: (payload) => this.emit('notification', { channel, payload, processId: 0 }),
          // Tasks added while nobody listened were announced to no one: look for work now.
          onReset: (live) => {
            if (live && channel === 'jobs:insert') this.emit('notification', { channel, payload: '{"count":1}', processId: 0 });
          },
        });
        this.stops.set(channel!, stop);
      }
    }
    return { rows: [] };
  }

  release(): void {
    for (const stop of this.stops.values()) stop();
    this.stops.clear();
  }
}

export async function startWorker(opts: WorkerDeps & {
  /** The worker role's own pool (never the API's), built with retryConnectForMs: see db/pool.ts PatientPool. */
  pool: pg.Pool;
  /** The process's LISTEN connection: graphile's wake-ups come through it (poolWithSharedListen). */
  listener: DatabaseListener;
  concurrency: number;
  pollIntervalMs: number;
  log: Logger;
  /** ROLE=all: the API's share of the event loop comes first (cpu-budget.ts). */
  budget?: CpuBudget;
}): Promise<Runner> {
  const log = opts.log.child({ component: 'worker' });
  const logger = new GraphileLogger(() => (level, message, meta) => {
    const fn = level === 'error' ? log.error.bind(log) : level === 'warning' ? log.warn.bind(log) : log.debug.bind(log);
    fn(meta ?? {}, message);
  });
  // graphile locks jobs by its pool's id: that id is what our heartbeat announces (heartbeat.ts).
  const events: WorkerEvents = new EventEmitter();
  let stopHeartbeat: (() => Promise<void>) | undefined;
  events.on('pool:create', ({ workerPool }) => void (stopHeartbeat = startHeartbeat(opts.pool, workerPool.id, log)));
  events.on('pool:gracefulShutdown:complete', () => void stopHeartbeat?.());
  const runner = await run({
    pgPool: poolWithSharedListen(opts.pool, opts.listener),
    events,
    taskList: budgeted(traced(taskList(opts)), opts.budget),
    // Timeouts and stuck-job nudges every minute; expired idempotency keys hourly; retention and verify-ledger nightly.
    crontab: [
      '* * * * * sweep_video_jobs ?max=1',
      '7 * * * * cleanup_idempotency_keys ?max=1',
      '17 * * * * cleanup_used_identity_tokens ?max=1',
      ...RETENTION_CRONTAB,
      ...LEDGER_CRONTAB,
    ].join('\n'),
    concurrency: opts.concurrency,
    pollInterval: opts.pollIntervalMs,
    noHandleSignals: true,
    logger,
    // Completions stay unbatched (graphile's default, pinned): a batched completeJob/failJob that
    // fails even once makes graphile shut the whole runner down ("queue is in an inconsistent
    // state"), whereas an unbatched one waits out a hiccup in the pool's patient connect().
    //
    // No named prepared statements: behind a transaction pooler the next statement may run on a
    // server connection that never saw the PREPARE ("prepared statement … does not exist"), which
    // crash-looped the worker. Unnamed statements cost a parse per fetch, which no task notices.
    preset: { worker: { completeJobBatchDelay: -1, failJobBatchDelay: -1, preparedStatements: false } },
  });
  // A worker that (re)starts recovers at once what a crashed one left behind, without waiting for cron.
  await opts.jobs.sweep().catch((err) => log.error({ err }, 'startup sweep failed'));
  return runner;
}
