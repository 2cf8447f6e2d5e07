import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { createPool } from './db/pool.js';
import { installQueueSchema } from './jobs/queue.js';
import { createWorkerPool, startWorker } from './jobs/worker.js';
import type { Runner } from 'graphile-worker';
import { createLogger, type Logger } from './logger.js';
import { startHttpServers, type ListeningServer } from './server.js';
import { buildServices } from './services.js';

/** Start-up: config → database (embedded unless DATABASE_URL) → migrations → HTTP; shutdown in reverse. */

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
    const banner = '!'.repeat(78);
    log.warn(
      `\n${banner}\n  Apple DeviceCheck is NOT configured: guest onboarding does not verify devices, and\n` +
        `  free credits are limited per device_id only (a reinstall with a new id gets them again).\n` +
        `  Set APPLE_TEAM_ID, APPLE_DEVICECHECK_KEY_ID and APPLE_DEVICECHECK_PRIVATE_KEY for production.\n${banner}`,
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
  if (config.legacyAnonClients) {
    log.warn(
      'LEGACY_ANON_CLIENTS=true: requests bearing the public anon key may act as any user_id they name. ' +
        'This exists only for the shipped app build; turn it off once clients send user tokens.',
    );
  }
}

async function main() {
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
  const log = createLogger(config.logLevel);

  let embedded: EmbeddedDatabase | undefined;
  let databaseUrl = config.databaseUrl;
  if (!databaseUrl) {
    log.info({ dataDir: config.dataDir }, 'no DATABASE_URL: starting the embedded PostgreSQL');
    embedded = await startEmbeddedDatabase(config.dataDir, log);
    databaseUrl = embedded.url;
  }

  await migrate(databaseUrl, log);
  await installQueueSchema(databaseUrl);
  config = { ...config, jwt: { ...config.jwt, secret: await jwtSecretFor(config, log) } };
  warnAboutModes(config, log);

  // One pool per role (docs/ARCHITECTURE.md "Pools per role"): the API's fails fast (a request
  // waits at most DATABASE_CONNECT_TIMEOUT_MS, then 503 ERR_6001 with Retry-After); the worker's is
  // its own, sized for its concurrency and patient, so neither can starve the other.
  const apiDb =
    config.role === 'worker'
      ? undefined
      : createPool(databaseUrl, config.databasePoolMax, { connectionTimeoutMillis: config.databaseConnectTimeoutMs });
  const workerDb = config.role === 'api' ? undefined : createWorkerPool(databaseUrl, config.worker.databasePoolMax, log);
  // ROLE=worker serves no requests: the request-side services (built but unused) get the worker's pool.
  const db = (apiDb ?? workerDb)!;
  const services = buildServices({ config, db, workerDb, log, defaultMetrics: true, databaseUrl });
  // A limiter Redis still connecting would make the first requests count per instance (insurance):
  // give it a few seconds before serving, but never refuse to start for it.
  await Promise.race([services.rateLimits.ready(), new Promise((resolve) => setTimeout(resolve, 5000).unref())]);

  let servers: { api: ListeningServer; metrics: ListeningServer | undefined } | undefined;
  let worker: Runner | undefined;
  let stopping = false;
  const shutdown = async (reason: string, exitCode = 0) => {
    if (stopping) return;
    stopping = true;
    log.info({ reason }, 'shutting down: draining requests');
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
    await step('http', () => servers?.api.close());
    await step('metrics http', () => servers?.metrics?.close());
    await step('worker', () => worker?.stop());
    await step('events', () => services.events.close());
    await step('error log', () => services.errorLog.drain());
    await step('rate limits', () => services.rateLimits.close());
    await step('api pool', () => apiDb?.end());
    await step('worker pool', () => workerDb?.end());
    await step('embedded postgres', () => embedded?.stop());
    log.info({ exitCode }, 'stopped');
    process.exit(exitCode);
  };
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
  process.on('uncaughtException', fatal('uncaughtException'));

  if (config.role !== 'api') {
    worker = await startWorker({
      ...services.worker,
      pool: services.workerDb,
      concurrency: config.worker.concurrency,
      pollIntervalMs: config.worker.pollIntervalMs,
      log,
    });
  }
  if (config.role !== 'worker') {
    try {
      servers = await startHttpServers(services);
    } catch (err) {
      return fatal('listen')(err); // e.g. the port is taken: stop the worker and the database cleanly
    }
    log.info({ port: servers.api.port, role: config.role, embedded: Boolean(embedded) }, `rendio listening on http://localhost:${servers.api.port}`);
    if (servers.metrics) log.info({ port: servers.metrics.port }, `metrics on http://127.0.0.1:${servers.metrics.port}/metrics (loopback only)`);
    else if (!config.metrics.token) log.info('/metrics is off: set METRICS_TOKEN (bearer on the public port) or METRICS_PORT (loopback only)');
  } else {
    log.info('worker started (ROLE=worker: no HTTP)');
  }
}

main().catch((err) => {
  console.error('fatal: could not start', err);
  process.exit(1);
});
