import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { buildApp } from './app.js';
import { ConfigError, loadConfig, type Config } from './config.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { createPool } from './db/pool.js';
import { deleteExpiredKeys } from './db/queries/idempotency.js';
import { installQueueSchema } from './jobs/queue.js';
import { startWorker } from './jobs/worker.js';
import { createLogger, type Logger } from './logger.js';
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

  const db = createPool(databaseUrl, config.databasePoolMax);
  const services = buildServices({ config, db, log, defaultMetrics: true, databaseUrl });
  const worker =
    config.role === 'api'
      ? undefined
      : await startWorker({
          pool: db,
          jobs: services.jobs,
          purchases: services.purchases,
          accountDeletion: services.accountDeletion,
          cleanupIdempotencyKeys: () => deleteExpiredKeys(db),
          concurrency: config.worker.concurrency,
          pollIntervalMs: config.worker.pollIntervalMs,
          log,
        });
  const server =
    config.role === 'worker'
      ? undefined
      : serve({ fetch: buildApp(services).fetch, port: config.port, hostname: config.host }, (info) => {
          log.info({ port: info.port, role: config.role, embedded: Boolean(embedded) }, `rendio listening on http://localhost:${info.port}`);
        });
  if (!server) log.info('worker started (ROLE=worker: no HTTP)');

  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down: draining requests');
    const force = setTimeout(() => {
      log.error('shutdown took longer than 15 s; exiting');
      process.exit(1);
    }, 15_000);
    force.unref();
    // Order matters: stop taking requests and let in-flight ones finish, then the pool, then postgres.
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
    // Running tasks finish (graphile-worker waits for them); unfinished ones are retried elsewhere.
    await worker?.stop();
    await services.events.close();
    await services.errorLog.drain();
    await db.end();
    await embedded?.stop();
    log.info('stopped');
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
}

main().catch((err) => {
  console.error('fatal: could not start', err);
  process.exit(1);
});
