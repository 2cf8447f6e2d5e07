import type pg from 'pg';
import { createPool, type Queryable } from './db/pool.js';
import type { DeviceCheckClient } from './apple/device-check.js';
import type { OnboardingService } from './auth/onboarding.js';
import type { SessionService } from './auth/sessions.js';
import type { AccessTokens } from './auth/tokens.js';
import type { Config } from './config/index.js';
import type { ErrorLogWriter } from './http/error-log.js';
import type { Metrics } from './metrics.js';
import type { Logger } from './logger.js';
import type { ProviderRegistry } from './providers/registry.js';
import type { ObjectStore } from './storage/types.js';
import type { AppStore } from './apple/app-store.js';
import type { PurchaseService } from './apple/purchases.js';
import { AppleIdentityVerifier } from './apple/sign-in.js';
import { AppleAccountService } from './auth/apple-accounts.js';
import { AccountDeletionService } from './auth/account-deletion.js';
import type { GenerationService } from './jobs/generate.js';
import type { VideoJobService } from './jobs/video-jobs.js';
import { JobEvents } from './jobs/events.js';
import { jobView } from './jobs/job-view.js';
import { DatabaseListener } from './db/listener.js';
import { CatalogueCache } from './catalogue/cache.js';
import { RateLimits } from './http/rate-limit.js';
import { KeyedLock } from './db/keyed-lock.js';
import { LedgerVerificationTask } from './jobs/ledger-verification.js';
import { RetentionService } from './jobs/retention.js';
import { clientIpResolver } from './http/client-ip.js';
import type { WorkerDeps } from './jobs/worker.js';
import { ApnsClient } from './push/apns.js';
import { PushService } from './push/notifications.js';
import { AdminAuthService } from './admin/auth.js';
import { AdminService } from './admin/service.js';
import { StorageService } from './storage/service.js';

/** Everything a route may use, built once at start-up (main.ts) or per test (test/support/harness.ts). */
export interface Services {
  config: Config;
  db: pg.Pool;
  log: Logger;
  metrics: Metrics;
  errorLog: ErrorLogWriter;
  tokens: AccessTokens;
  sessions: SessionService;
  onboarding: OnboardingService;
  deviceCheck: DeviceCheckClient | undefined;
  store: ObjectStore;
  /** What users may store and read where (the storage routes' rules). */
  storage: StorageService;
  providers: ProviderRegistry;
  jobs: VideoJobService;
  /** Checks delivered videos and makes their posters (ffmpeg found at start). */
  media: MediaIngest;
  generation: GenerationService;
  /** The process's one LISTEN connection (direct, never through a pooler), shared by events, catalogue and worker. */
  listener: DatabaseListener;
  events: JobEvents;
  catalogue: CatalogueCache;
  appStore: AppStore | undefined;
  purchases: PurchaseService;
  appleIdentity: AppleIdentityVerifier | undefined;
  appleAccounts: AppleAccountService;
  accountDeletion: AccountDeletionService;
  /** Video pushes (APNs); sends nothing when APNs is not configured. */
  push: PushService;
  /** The support team's console and API (src/admin/). */
  adminAuth: AdminAuthService;
  admin: AdminService;
  /** The onboarding lock's own connections (see buildServices). */
  lockDb: pg.Pool;
  /** What the worker's tasks call: the same services, bound to the worker's own pool. */
  worker: WorkerDeps;
  /** The worker role's pool (the API's `db` when none was given, e.g. tests without a worker). */
  workerDb: pg.Pool;
  rateLimits: RateLimits;
}

import { AppleDeviceCheck } from './apple/device-check.js';
import { AppStore as AppStoreClient } from './apple/app-store.js';
import { PurchaseService as Purchases } from './apple/purchases.js';
import { enqueue } from './jobs/queue.js';
import { deleteExpiredKeys } from './db/queries/idempotency.js';
import { deleteExpiredIdentityTokens } from './db/queries/sessions.js';
import { OnboardingService as Onboarding } from './auth/onboarding.js';
import { SessionService as Sessions } from './auth/sessions.js';
import { AccessTokens as Tokens } from './auth/tokens.js';
import { ErrorLogWriter as ErrorLog } from './http/error-log.js';
import { Metrics as MetricsRegistry } from './metrics.js';
import { GenerationService as Generation } from './jobs/generate.js';
import { VideoJobService as VideoJobs } from './jobs/video-jobs.js';
import { MediaIngest } from './media/ingest.js';
import { ProviderRegistry as Providers } from './providers/registry.js';
import { FalProvider } from './providers/fal.js';
import { RunwayProvider } from './providers/runway.js';
import { SimulatorProvider } from './providers/simulator.js';
import type { ProviderAdapter, ProviderName } from './providers/types.js';
import { objectStoreFor } from './storage/store.js';
import { StorageLinks } from './storage/links.js';
import { ledgerTotals, queueStats } from './db/queries/observability.js';

/**
 * The queue's depth and age and the ledger's totals, read from the database when scraped (every
 * instance reports the same values: dashboards take max, not sum). On the API's pool where there
 * is one: it fails fast, where the worker's waits out an outage.
 */
function registerDatabaseGauges(metrics: MetricsRegistry, db: pg.Pool, log: Logger): void {
  const onError = (err: unknown) => log.warn({ err }, 'metrics: could not read the database');
  metrics.labelledGauges(() => queueStats(db), { maxAgeMs: 5_000, timeoutMs: 5_000, onError }, [
    { name: 'rendio_queue_jobs', help: 'Queue tasks by task and state (ready: due and waiting for a worker; scheduled: due later; running; dead: out of attempts)', labelNames: ['task', 'state'], values: (rows) => rows.flatMap((r) => (['ready', 'scheduled', 'running', 'dead'] as const).map((state) => [{ task: r.task, state }, r[state]] as [{ task: string; state: string }, number])) },
    { name: 'rendio_queue_oldest_ready_age_seconds', help: 'How long the longest-waiting due task of each kind has waited for a worker (0: none waiting)', labelNames: ['task'], values: (rows) => rows.map((r) => [{ task: r.task }, r.oldest_ready_seconds]) },
  ]);
  metrics.labelledGauges(() => ledgerTotals(db), { maxAgeMs: 60_000, timeoutMs: 10_000, onError }, [
    { name: 'rendio_ledger_credits', help: 'Credits on every account together by state (balance, held by running jobs, available, debt); read at most once a minute', labelNames: ['state'], values: (t) => (['balance', 'held', 'available', 'debt'] as const).map((state) => [{ state }, t[state]]) },
    { name: 'rendio_ledger_accounts', help: 'Credit accounts (read at most once a minute)', labelNames: [], values: (t) => [[{}, t.accounts]] },
  ]);
}

/** Wires the services from parsed config and an open pool. The one place implementations are chosen. */
export function buildServices(opts: {
  config: Config;
  db: pg.Pool;
  log: Logger;
  defaultMetrics?: boolean;
  now?: () => number;
  /** Tests plug providers in here (e.g. adapters pointed at local fakes). */
  providers?: Partial<Record<ProviderName, ProviderAdapter>>;
  store?: ObjectStore;
  /** The database URL the pools connect to (may be a transaction pooler). */
  databaseUrl: string;
  /** A direct (session) URL for the LISTEN connection; default databaseUrl. */
  directDatabaseUrl?: string;
  /** The worker role's own pool; default db. */
  workerDb?: pg.Pool;
}): Services {
  const { config, db, log } = opts;
  const workerDb = opts.workerDb ?? db;
  const metrics = new MetricsRegistry({ defaultMetrics: opts.defaultMetrics });
  const errorLog = new ErrorLog(db, log);
  const tokens = new Tokens(config.jwt.secret, config.jwt.issuer, config.jwt.accessTtlSeconds, opts.now, config.jwt.previousSecret);
  const sessions = new Sessions(db, tokens, config.jwt.refreshTtlDays);
  const deviceCheck = config.deviceCheck ? new AppleDeviceCheck(config.deviceCheck, opts.now) : undefined;
  const rateLimits = new RateLimits(config.rateLimits, db, clientIpResolver(config), log);
  // The per-address onboarding lock holds a connection while Apple answers: its own few connections,
  // so a burst of onboardings from many addresses can never hold the API pool its own work needs.
  const lockDb = createPool(opts.databaseUrl, 4, { connectionTimeoutMillis: 30_000, applicationName: 'rendio-onboarding-locks' });
  const onboarding = new Onboarding(db, sessions, deviceCheck, config.initialGrantCredits, log, new KeyedLock(lockDb, 'onboarding-address'));
  const store = opts.store ?? objectStoreFor(config);
  const providers = new Providers(
    {
      simulator: new SimulatorProvider({ delayMs: config.simulator.delayMs, failureRate: config.simulator.failureRate }),
      ...(config.fal ? { fal: new FalProvider({ ...config.fal, timeoutMs: config.providerTimeoutMs }) } : {}),
      ...(config.runway ? { runway: new RunwayProvider({ ...config.runway, timeoutMs: config.providerTimeoutMs }) } : {}),
      ...opts.providers,
    },
    log,
    metrics.providerCall.bind(metrics),
  );
  const media = new MediaIngest(store, log, { ...config.media, maxResultBytes: config.limits.maxResultBytes });
  const jobOptions = {
    webhookBaseUrl: config.publicUrl,
    maxResultBytes: config.limits.maxResultBytes,
    retryBaseMs: config.providerRetryBaseMs,
    submitLeaseSeconds: config.submitLeaseSeconds,
    lostAnswerWaitSeconds: config.submitLostAnswerWaitSeconds,
    quietSeconds: config.jobQuietSeconds,
    crashAt: config.crashAt,
    pushOnEnd: config.apns !== undefined,
    onSubmission: metrics.submission.bind(metrics),
    onCancel: metrics.cancelAnswer.bind(metrics),
    onDuplicateBilled: metrics.duplicateBilled.bind(metrics),
    onJobEnd: metrics.jobEnded.bind(metrics),
    media,
    onMediaRejected: metrics.mediaRejected.bind(metrics),
  };
  const jobs = new VideoJobs(db, providers, store, log, jobOptions);
  const limits = config.rateLimits;
  const generateRules = limits.policies['generate-video'].rules;
  const generation = new Generation(
    db,
    jobs,
    providers,
    config.publicUrl,
    config.crashAt,
    limits.enabled ? { user: generateRules.user, buyer: generateRules.buyer, maxInFlight: limits.generateMaxInFlight } : undefined,
    metrics.jobStarted.bind(metrics),
  );
  metrics.gauge('rendio_db_pool_total', 'Connections in the pool', () => db.totalCount);
  metrics.gauge('rendio_db_pool_waiting', 'Requests waiting for a connection', () => db.waitingCount);
  metrics.gauge('rendio_error_log_dropped', 'error_log rows not stored (overload or database down)', () => errorLog.dropped);
  registerDatabaseGauges(metrics, db, log);
  const listener = new DatabaseListener(opts.directDatabaseUrl ?? opts.databaseUrl, log);
  metrics.gauge('rendio_db_listen_connected', '1 while the LISTEN connection is open (live updates, catalogue, worker wake-ups)', () => (listener.live ? 1 : 0));
  const events = new JobEvents(listener, config.eventsRereadMs, { db, view: (job) => jobView({ store, config }, job) });
  const catalogue = new CatalogueCache(db, listener);
  const appStore = config.appStore ? new AppStoreClient(config.appStore, config.appleRootCertificates) : undefined;
  const enqueueConsumptionInfo = (tx: Queryable, notificationUuid: string) =>
    enqueue(tx, 'send_consumption_info', { notificationUuid }, { jobKey: `consumption:${notificationUuid}` });
  const purchases = new Purchases(db, appStore, config.products, log, enqueueConsumptionInfo);
  const appleIdentity = config.signInWithApple ? new AppleIdentityVerifier(config.signInWithApple) : undefined;
  const appleAccounts = new AppleAccountService(db, sessions, log);
  const accountDeletion = new AccountDeletionService(db, jobs, store, log);
  // One APNs client (one HTTP/2 connection per environment) per process, used by the worker's tasks.
  const pushSender = config.apns ? new ApnsClient(config.apns, log.child({ component: 'apns' }), opts.now) : undefined;
  const push = new PushService(workerDb, pushSender, log, metrics, opts.now);
  // The worker's tasks get their own instances of the same (stateless) services over the worker's
  // pool, so a flood of requests exhausting the API's pool cannot starve the queue, nor the queue
  // the API. Instances rather than a pool parameter per call: the services keep one constructor
  // and cannot mix the two pools up. Providers (with their circuit breakers) and storage are shared.
  const workerJobs = workerDb === db ? jobs : new VideoJobs(workerDb, providers, store, log, jobOptions);
  const worker: WorkerDeps = {
    jobs: workerJobs,
    purchases: workerDb === db ? purchases : new Purchases(workerDb, appStore, config.products, log, enqueueConsumptionInfo),
    accountDeletion: workerDb === db ? accountDeletion : new AccountDeletionService(workerDb, workerJobs, store, log),
    push,
    cleanupIdempotencyKeys: () => deleteExpiredKeys(workerDb),
    cleanupUsedIdentityTokens: () => deleteExpiredIdentityTokens(workerDb),
    retention: new RetentionService(workerDb, store, config.retention, log),
    ledgerVerification: new LedgerVerificationTask(workerDb, log.child({ component: 'verify-ledger' }), metrics),
  };
  if (workerDb !== db) {
    metrics.gauge('rendio_worker_db_pool_total', 'Connections in the worker pool', () => workerDb.totalCount);
    metrics.gauge('rendio_worker_db_pool_waiting', 'Worker tasks waiting for a connection', () => workerDb.waitingCount);
  }
  return {
    config,
    db,
    log,
    metrics,
    errorLog,
    tokens,
    sessions,
    onboarding,
    deviceCheck,
    store,
    storage: new StorageService(db, store, new StorageLinks(config.jwt.secret)),
    providers,
    jobs,
    media,
    generation,
    listener,
    events,
    catalogue,
    appStore,
    purchases,
    appleIdentity,
    appleAccounts,
    accountDeletion,
    push,
    adminAuth: new AdminAuthService(db, {
      loginMaxFailures: config.admin.loginMaxFailures,
      loginMaxFailuresPerEmail: config.admin.loginMaxFailuresPerEmail,
      loginWindowSeconds: config.admin.loginWindowSeconds,
      sessionTtlHours: config.admin.sessionTtlHours,
    }),
    admin: new AdminService(db, () => catalogue.invalidate()),
    worker,
    workerDb,
    lockDb,
    rateLimits,
  };
}
