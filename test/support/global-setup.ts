import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { migrate } from '../../src/db/migrate.js';
import { installQueueSchema } from '../../src/jobs/queue.js';
import { createLogger } from '../../src/logger.js';
import { build, isStale } from '../../scripts/build.mjs';
import { TEST_DB_PREFIX, adminQuery, newRunId, runPrefix, runStartedAt, templateDb, withDatabase } from './db.js';

/**
 * Finds a PostgreSQL to test against — TEST_DATABASE_URL, else the local server on 5432 (CI runs
 * the machine's PostgreSQL 15, so nothing newer-only creeps in), else the embedded one — and
 * builds the migrated template database every test file clones.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
    runId: string;
  }
}

async function reachable(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  try {
    await client.connect();
    await client.query('SELECT 1');
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => undefined);
  }
}

let embedded: EmbeddedDatabase | undefined;
/** No run lasts this long: an older run's databases are leftovers of an interrupted one. */
const STALE_AFTER_MS = 6 * 3600_000;

export default async function setup(project: TestProject) {
  let adminUrl = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  if (!(await reachable(adminUrl))) {
    const dir = path.join(os.tmpdir(), 'rendio-test-pg');
    console.warn(`[tests] no PostgreSQL at ${adminUrl}; starting the embedded one in ${dir}`);
    embedded = await startEmbeddedDatabase(dir, createLogger('warn'));
    adminUrl = withDatabase(embedded.url, 'postgres');
  }
  const { rows } = await adminQuery(adminUrl, 'SHOW server_version');
  console.log(`[tests] PostgreSQL ${rows[0].server_version}`);

  // Tests that start the server as a process run the compiled dist/ (as `npm start` does).
  if (await isStale()) await build({ quiet: true });

  // This run's databases carry its id: another run on the same PostgreSQL is left alone. Leftovers
  // of an interrupted run are dropped once they are older than any run lasts.
  const runId = newRunId();
  const dropAll = async (names: string[]) => {
    for (const name of names) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  };
  const ours = async () =>
    (await adminQuery(adminUrl, 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [runPrefix(runId)])).rows.map((r) => r.datname);
  const all = await adminQuery(adminUrl, 'SELECT datname FROM pg_database WHERE starts_with(datname, $1)', [TEST_DB_PREFIX]);
  const staleBefore = Date.now() - STALE_AFTER_MS;
  await dropAll(all.rows.map((r) => r.datname).filter((n: string) => (runStartedAt(n)?.getTime() ?? Infinity) < staleBefore));

  const template = templateDb(runId);
  await adminQuery(adminUrl, `CREATE DATABASE ${template}`);
  await migrate(withDatabase(adminUrl, template));
  await installQueueSchema(withDatabase(adminUrl, template));
  project.provide('adminUrl', adminUrl);
  project.provide('runId', runId);

  return async () => {
    await dropAll(await ours());
    await embedded?.stop();
  };
}
