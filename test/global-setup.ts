import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { installQueueSchema } from '../src/jobs/queue.js';
import { createLogger } from '../src/logger.js';
import { TEMPLATE_DB, adminQuery, withDatabase } from './db.js';

/**
 * Finds a PostgreSQL to test against — TEST_DATABASE_URL, else the local server on 5432 (CI runs
 * the machine's PostgreSQL 15, so nothing newer-only creeps in), else the embedded one — and
 * builds the migrated template database every test file clones.
 */

declare module 'vitest' {
  export interface ProvidedContext {
    adminUrl: string;
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

  // Leftovers of an interrupted run, then a template migrated from scratch.
  const stale = await adminQuery(adminUrl, "SELECT datname FROM pg_database WHERE datname LIKE 'rendio_t_%'");
  for (const r of stale.rows) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${r.datname} WITH (FORCE)`);
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${TEMPLATE_DB} WITH (FORCE)`);
  await adminQuery(adminUrl, `CREATE DATABASE ${TEMPLATE_DB}`);
  await migrate(withDatabase(adminUrl, TEMPLATE_DB));
  await installQueueSchema(withDatabase(adminUrl, TEMPLATE_DB));
  project.provide('adminUrl', adminUrl);

  return async () => {
    const left = await adminQuery(adminUrl, "SELECT datname FROM pg_database WHERE datname LIKE 'rendio_t_%'");
    for (const r of left.rows) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${r.datname} WITH (FORCE)`);
    await embedded?.stop();
  };
}
