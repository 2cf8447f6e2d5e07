import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from './config/index.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { listAvailableModels } from './db/queries/catalogue.js';
import { createPool, whenDatabaseAvailable } from './db/pool.js';
import { installQueueSchema } from './jobs/queue.js';
import { CpuBudget } from './jobs/cpu-budget.js';
import { createWorkerPool, startWorker } from './jobs/worker.js';
import type { Runner } from 'graphile-worker';
import type { Pool } from 'pg';
import { createLogger, type Logger } from './logger.js';
import { assertPortFree, checkDatabase, loadDotEnv, StartupError } from './runtime.js';
import { startHttpServers, startMetricsServer, type ListeningServer } from './server.js';
import { startTracing } from './tracing.js';
import { buildServices, type Services } from './services.js';

/** Start-up: config → database (embedded unless DATABASE_URL) → migrations → HTTP; shutdown in reverse. */

/** Says how posters are made: by the ffmpeg found at start, or (warned) only from providers' thumbnails. */
async function posterLine(services: Services): Promise<string> {
  const ffmpeg = await services.media.posterMaker();
  if (ffmpeg) return `ffmpeg at ${ffmpeg.path} (${ffmpeg.version})`;
  const why = services.config.media.ffmpegPath ? `no ffmpeg at ${services.config.media.ffmpegPath}` : 'FFMPEG_PATH=off';
  services.log.warn(`${why}: videos get the provider's thumbnail when it sends one, else none (Debian: apt-get install ffmpeg)`);
  return `provider thumbnails only (${why})`;
}

async function jwtSecretFor(config: Config, log: Logger): Promise<string> {
  if (!config.jwt.generated) return config.jwt.secret;
  // Demo mode: a random secret kept under DATA_DIR so sessions survive restarts.
  const file = path.join(path.resolve(config.dataDir), 'jwt-secret');
  if (existsSync(file)) return (await fs.readFile(file, 'utf8')).trim();
  await fs.mkdir(path.dirname(file), { recursive: true });
  const secret = randomBytes(48).toString('base64url');
  await fs.writeFile(file, secret + '\n', { mode: 0o600 });
  log.warn({ file }, 'JWT_SECRET is not set: generated one for this data directory (set JWT_SECRET in production)');
  return secret;
}

function warnAboutModes(config: Config, log: Logger) {
  if (!config.deviceCheck) {
    // One line (a banner of newlines arrives in JSON as literal \n): the fields say what to set.
    log.warn(
      { set: ['APPLE_TEAM_ID', 'APPLE_DEVICECHECK_KEY_ID', 'APPLE_DEVICECHECK_PRIVATE_KEY'] },
      'Apple DeviceCheck is NOT configured: guest onboarding does not verify devices, and free credits are limited per device_id only ' +
        '(a reinstall with a new id gets them again); set the three APPLE_* settings in production',
    );
  }
  if (!config.appStore) {
    log.warn('App Store is NOT configured (APPLE_BUNDLE_ID, APPLE_APP_APPLE_ID, APP_STORE_*): update-credits credits nothing and answers ERR_5002.');
  } else if (!config.appStore.onlineChecks) {
    log.warn('APP_STORE_ONLINE_CHECKS=false: Apple certificate revocation (OCSP) is not checked.');
  }
  if (!config.signInWithApple) {
    log.warn('Sign in with Apple is NOT configured (APPLE_BUNDLE_ID or APPLE_SIGN_IN_AUDIENCES): Apple sign-in answers ERR_5002.');
  }
  if (!config.apns) {
    log.warn('Push notifications are NOT configured (APNS_KEY_ID, APNS_PRIVATE_KEY, APNS_TEAM_ID): video ready/failed pushes are skipped.');
  }
  if (config.env === 'production' && config.admin.port === undefined && config.admin.allowedCidrs.length === 0) {
    log.warn('The admin console and API are served on PORT to every address: set ADMIN_ALLOWED_CIDRS or ADMIN_PORT (docs/DEPLOY.md).');
  }
  if (config.legacyAnonClients) {
    log.warn(
      'LEGACY_ANON_CLIENTS=true: requests bearing the public anon key may act as any user_id they name. ' +
        'This exists only for the shipped app build; turn it off once clients send user tokens.',
    );
  }
}

/**
 * Opens the LISTEN connection and checks that it hears what the pool says (a DATABASE_DIRECT_URL,
 * or a DATABASE_URL without one, that points at a transaction pooler LISTENs to nothing): the
 * listener logs an error and counts as down until it hears, so live updates fall back to re-reads.
 */
async function startListening(services: Services, log: Logger): Promise<void> {
  if (!(await services.listener.start())) {
    log.warn('the LISTEN connection is not open yet: live updates fall back to re-reads until it is (retrying)');
  }
  await services.listener.verifyHearing(services.db);
}

/** Every connection this process may open, by pool: DEPLOY's arithmetic, logged at start-up. */
function connectionBudget(config: Config, services: Services) {
  const api = config.role === 'worker' ? 0 : config.databasePoolMax + services.lockDb.options.max;
  const worker = config.role === 'api' ? 0 : config.worker.databasePoolMax;
  return {
    pooled: { api: config.role === 'worker' ? 0 : config.databasePoolMax, onboardingLocks: config.role === 'worker' ? 0 : services.lockDb.options.max, worker },
    direct: { listen: 1 },
    total: api + worker + 1,
    throughPooler: config.databaseDirectUrl !== config.databaseUrl,
  };
}

async function main() {
  loadDotEnv();
  let config: Config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(1);
    }
    throw err;
  }
  const log = createLogger(config.logLevel, {}, { format: config.logFormat });
  const tracing = config.tracing && (await startTracing(config.tracing));
  if (config.tracing) log.info({ endpoint: config.tracing.endpoint }, 'OpenTelemetry traces on (OTEL_EXPORTER_OTLP_ENDPOINT)');

  // Everything start-up creates, so that shutdown (a signal, a fatal error, or a failed start-up)
  // stops exactly what exists, in reverse order.
  let embedded: EmbeddedDatabase | undefined;
  let apiDb: Pool | undefined;
  let workerDb: Pool | undefined;
  let services: Services | undefined;
  let servers: { api: ListeningServer | undefined; metrics: ListeningServer | undefined; admin: ListeningServer | undefined } | undefined;
  let worker: Runner | undefined;
  let budget: CpuBudget | undefined;
  let stopping = false;
  const shutdown = async (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'shutting down: draining requests');
    // Should a step stall with nothing left holding the event loop open, node exits with this.
    process.exitCode = exitCode;
    const force = setTimeout(() => {
      log.error('shutdown took longer than 15 s; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    // Order matters: stop taking requests and let in-flight ones finish, then the worker (running
    // tasks finish; unfinished ones are retried elsewhere), then the pools, then postgres. A step
    // that fails is logged and the next one still runs.
    const step = async (name: string, fn: () => Promise<unknown> | undefined) => {
      try {
        await fn();
      } catch (err) {
        log.error({ err, step: name }, 'shutdown step failed');
      }
    };
    await step('http', () => servers?.api?.close());
    await step('metrics http', () => servers?.metrics?.close());
    await step('admin http', () => servers?.admin?.close());
    await step('worker', () => worker?.stop());
    budget?.close();
    await step('listen', () => services?.listener.close());
    await step('apns', () => services?.push.close());
    await step('error log', () => services?.errorLog.drain());
    await step('rate limits', () => services?.rateLimits.close());
    await step('api pool', () => apiDb?.end());
    await step('lock pool', () => services?.lockDb.end());
    await step('worker pool', () => workerDb?.end());
    await step('embedded postgres', () => embedded?.stop());
    await step('traces', () => tracing?.shutdown());
    log.info({ exitCode }, 'stopped');
    process.exit(exitCode);
  };
  // Installed before anything starts, so a signal during start-up (e.g. Ctrl-C while migrating)
  // also stops what was started so far.
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  // Nothing may die silently: a rejection nobody handled or an exception nobody caught is logged
  // with its stack, then the process drains and stops (exit 1) for its supervisor to restart it,
  // rather than carry on in an unknown state. Database hiccups are not meant to get here (the
  // worker's pool waits them out; the API answers 503), so one that does is a bug worth a restart.
  const fatal = (kind: string) => (err: unknown) => {
    log.fatal({ err, kind }, `${kind}: shutting down`);
    void shutdown(kind, 1);
  };
  process.on('unhandledRejection', fatal('unhandledRejection'));
  // A server never runs out of work on its own: an empty event loop means a wait that nothing holds
  // open (an unref'd timer awaited at start-up), and node would otherwise exit 0 without a word.
  process.on('beforeExit', () => {
    if (stopping) return;
    log.fatal('the event loop emptied while the process was meant to run: a bug; exiting 1');
    process.exit(1);
  });
  process.on('uncaughtException', fatal('uncaughtException'));

  try {
    // Cheap checks first: a taken port or a wrong DATABASE_URL is reported in a line, before the
    // embedded database is started (seconds) and migrated.
    if (config.role !== 'worker') {
      await assertPortFree('PORT', config.host, config.port);
      if (config.admin.port !== undefined) await assertPortFree('ADMIN_PORT', config.admin.host, config.admin.port);
    }
    if (config.metrics.port !== undefined) await assertPortFree('METRICS_PORT', '127.0.0.1', config.metrics.port);
    // DATABASE_URL serves the pools (it may be a transaction pooler); the direct URL what needs a
    // session: the migrations' connection and the one LISTEN connection.
    let databaseUrl = config.databaseUrl;
    let directUrl = config.databaseDirectUrl;
    if (databaseUrl && directUrl) {
      await checkDatabase(databaseUrl);
      if (directUrl !== databaseUrl) await checkDatabase(directUrl, 'DATABASE_DIRECT_URL');
    } else {
      log.info({ dataDir: config.dataDir }, 'no DATABASE_URL: starting the embedded PostgreSQL');
      embedded = await startEmbeddedDatabase(config.dataDir, log);
      databaseUrl = directUrl = embedded.url;
    }

    // Started while the database restarts (a supervisor restarting everything at once): wait for it.
    const migrationUrl = directUrl;
    const startupRetry = (err: unknown, attempt: number) => log.warn({ err, attempt }, 'database unavailable at start-up; retrying');
    await whenDatabaseAvailable(() => migrate(migrationUrl, log), 120_000, startupRetry);
    await whenDatabaseAvailable(() => installQueueSchema(migrationUrl), 120_000, startupRetry);
    config = { ...config, jwt: { ...config.jwt, secret: await jwtSecretFor(config, log) } };
    warnAboutModes(config, log);

    // One pool per role (docs/ARCHITECTURE.md "Pools per role"): the API's fails fast (a request
    // waits at most DATABASE_CONNECT_TIMEOUT_MS, then 503 ERR_6001 with Retry-After); the worker's is
    // its own, sized for its concurrency and patient, so neither can starve the other.
    apiDb =
      config.role === 'worker'
        ? undefined
        : createPool(databaseUrl, config.databasePoolMax, {
            connectionTimeoutMillis: config.databaseConnectTimeoutMs,
            queryTimeoutMs: config.databaseQueryTimeoutMs,
            preparedStatements: config.databasePreparedStatements,
            onPreparedStatementsLost: preparedStatementsLost(log),
          });
    workerDb = config.role === 'api' ? undefined : createWorkerPool(databaseUrl, config.worker.databasePoolMax, log, config.databasePreparedStatements, preparedStatementsLost(log));
    // ROLE=worker serves no requests: the request-side services (built but unused) get the worker's pool.
    const db = (apiDb ?? workerDb)!;
    services = buildServices({ config, db, workerDb, log, defaultMetrics: true, databaseUrl, directDatabaseUrl: directUrl });
    await startListening(services, log);
    log.info(connectionBudget(config, services), 'database connections: at most this many per process');
    // A limiter Redis still connecting would make the first requests count per instance (insurance):
    // give it a few seconds before serving, but never refuse to start for it.
    await Promise.race([services.rateLimits.ready(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
    services.providers.announceSimulated(await listAvailableModels(services.db));
    const posters = await posterLine(services);

    // ROLE=all: the worker yields to the API's requests (src/jobs/cpu-budget.ts); WORKER_CPU_SHARE=1 turns it off.
    budget = config.role === 'all' && config.worker.cpuShare < 1 ? new CpuBudget(config.worker.cpuShare) : undefined;
    if (config.role !== 'api') {
      worker = await startWorker({
        budget,
        ...services.worker,
        pool: services.workerDb,
        listener: services.listener,
        concurrency: config.worker.concurrency,
        pollIntervalMs: config.worker.pollIntervalMs,
        log,
      });
    }
    if (config.role !== 'worker') {
      const started = await startHttpServers(services);
      servers = started;
      budget?.whileServing(() => started.api.requestsStarted());
      log.info({ port: started.api.port, role: config.role, embedded: Boolean(embedded), posters }, `rendio listening on http://localhost:${started.api.port} (posters: ${posters})`);
      if (started.metrics) log.info({ port: started.metrics.port }, `metrics on http://127.0.0.1:${started.metrics.port}/metrics (loopback only)`);
      else if (!config.metrics.token) log.info('/metrics is off: set METRICS_TOKEN (bearer on the public port) or METRICS_PORT (loopback only)');
      if (started.admin) log.info({ port: started.admin.port, host: config.admin.host }, `admin console and API on http://${config.admin.host}:${started.admin.port}/admin (not on PORT)`);
    } else {
      // A worker serves no API, but its queue, jobs and providers are what an operator watches most.
      const metrics = await startMetricsServer(services);
      servers = metrics && { api: undefined, metrics, admin: undefined };
      log.info(
        { ...(metrics ? { port: metrics.port } : {}), posters },
        `${metrics ? `worker started (ROLE=worker: no API; metrics on http://127.0.0.1:${metrics.port}/metrics)` : 'worker started (ROLE=worker: no HTTP; set METRICS_PORT for /metrics)'} (posters: ${posters})`,
      );
    }
  } catch (err) {
    if (stopping) return; // a signal arrived during start-up: shutdown is already stopping what exists
    // A StartupError is the whole story in one line; anything else is a bug or an outage: its stack.
    if (err instanceof StartupError) console.error(err.message);
    else log.fatal({ err }, 'start-up failed');
    await shutdown('start-up failed', 1);
  }
}

main().catch((err) => {
  console.error('fatal: could not start', err);
  process.exit(1);
});

/** Said once per pool when DATABASE_PREPARED_STATEMENTS let names through a pooler that loses them. */
function preparedStatementsLost(log: Logger) {
  return (err: unknown) =>
    log.error(
      { err },
      'a prepared statement met a database connection that had not prepared it: DATABASE_URL is a transaction pooler that does not keep them. ' +
        'Statements run unnamed from now on; set DATABASE_DIRECT_URL to the direct connection (docs/DEPLOY.md "Scaling out") or DATABASE_PREPARED_STATEMENTS=off',
    );
}
