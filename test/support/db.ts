import { randomBytes } from 'node:crypto';
import pg from 'pg';

/**
 * Test databases: one template with the migrations applied, cloned per test file. Every name carries
 * the run's id (start time in base 36, then a random part), so two `npm test` runs on one PostgreSQL
 * never touch each other's databases, and a run can tell an interrupted run's leftovers by their age.
 */

export const TEST_DB_PREFIX = 'rendio_t_';

export function newRunId(): string {
  return `${Math.floor(Date.now() / 1000).toString(36)}_${randomBytes(2).toString('hex')}`;
}

export function runPrefix(runId: string): string {
  return `${TEST_DB_PREFIX}${runId}_`;
}

export function templateDb(runId: string): string {
  return `${runPrefix(runId)}template`;
}

/** When the run that made this database started (from its name), or undefined for another naming scheme. */
export function runStartedAt(datname: string): Date | undefined {
  const m = /^rendio_t_([0-9a-z]{6,})_[0-9a-f]{4}_/.exec(datname);
  return m ? new Date(parseInt(m[1]!, 36) * 1000) : undefined;
}

export function withDatabase(adminUrl: string, db: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${db}`;
  return u.toString();
}

export async function adminQuery(adminUrl: string, sql: string, values?: unknown[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}

/** A fresh database copied from the migrated template (fast: no migrations per file). */
export async function createTestDatabase(adminUrl: string): Promise<string> {
  // Imported here, not at the top: the global setup uses this module outside a test worker.
  const runId = (await import('vitest')).inject('runId');
  const template = templateDb(runId);
  const name = `${runPrefix(runId)}${randomBytes(6).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await adminQuery(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${template}`);
      return name;
    } catch (err) {
      // Two files cloning the template at the same instant can collide ("being accessed by other users").
      if (attempt >= 20 || !/being accessed by other users/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
  }
}

export async function dropTestDatabase(adminUrl: string, name: string): Promise<void> {
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
