import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from '../logger.js';

/**
 * Plain SQL migrations applied in file-name order, each in its own transaction, recorded with a
 * checksum in schema_migrations (see migrate() for how instances starting together take turns).
 */

const MIGRATIONS_DIR = fileURLToPath(new URL('./migrations/', import.meta.url));
// Arbitrary constant key for the migration lock (pg_advisory_xact_lock); shared by every instance of this service.
const MIGRATION_LOCK_KEY = 727_274_001;

export interface Migration {
  version: string;
  name: string;
  sql: string;
  checksum: string;
}

export async function loadMigrations(): Promise<Migration[]> {
  const files = (await fs.readdir(MIGRATIONS_DIR)).filter((f) => /^\d{4}_[\w-]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await fs.readFile(MIGRATIONS_DIR + file, 'utf8');
      return {
        version: file.slice(0, 4),
        name: file,
        sql,
        checksum: createHash('sha256').update(sql).digest('hex'),
      };
    }),
  );
}

/** How long one attempt waits for another instance's migration lock before saying so and waiting again. */
const LOCK_WAIT_MS = 5000;

/**
 * Applies what is pending, one migration per transaction. Each transaction takes the migration lock
 * as a transaction-scoped advisory lock (released by its COMMIT or ROLLBACK, or a dropped
 * connection: nothing can leak it, even through a transaction pooler, where a session lock stays
 * with whichever server connection took it), then reads schema_migrations under the lock, so two
 * instances starting together apply each migration once. A wait for the lock is bounded by
 * lock_timeout and logged with who holds it, so a start never hangs without a word.
 */
export async function migrate(connectionString: string, log?: Logger): Promise<{ applied: string[] }> {
  const migrations = await loadMigrations();
  const client = new pg.Client({ connectionString, application_name: 'rendio-migrate' });
  // A connection lost mid-migration (a database restart) fails the pending query; unhandled, the
  // 'error' event would kill the process instead.
  client.on('error', () => undefined);
  await client.connect();
  const applied: string[] = [];
  try {
    for (;;) {
      await client.query('BEGIN');
      try {
        if (!(await lockWithinTransaction(client, log))) continue;
        await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
          version text PRIMARY KEY, name text NOT NULL, checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())`);
        const next = nextPending(migrations, (await client.query<AppliedRow>('SELECT version, checksum, name FROM schema_migrations')).rows);
        if (!next) {
          await client.query('COMMIT');
          // One line for the lot: a fresh database applies every migration, and a line each was a screenful.
          const schema = migrations.at(-1)?.name ?? 'none';
          log?.info({ applied: applied.length, schema }, applied.length ? `migrations: ${applied.length} applied; schema at ${schema}` : `migrations: schema up to date at ${schema}`);
          return { applied };
        }
        try {
          await client.query(next.sql);
        } catch (err) {
          // Keeps the SQLSTATE: a restart mid-migration (57P01) is then waited out like any other outage.
          throw Object.assign(new Error(`Migration ${next.name} failed: ${(err as Error).message}`, { cause: err }), { code: (err as { code?: string }).code });
        }
        await client.query('INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)', [next.version, next.name, next.checksum]);
        await client.query('COMMIT');
        applied.push(next.name);
        log?.debug({ migration: next.name }, 'migration applied');
      } catch (err) {
        await client.query('ROLLBACK').catch(() => undefined);
        throw err;
      }
    }
  } finally {
    await client.end().catch(() => undefined);
  }
}

interface AppliedRow {
  version: string;
  checksum: string;
  name: string;
}

function nextPending(migrations: Migration[], rows: AppliedRow[]): Migration | undefined {
  const done = new Map(rows.map((r) => [r.version, r]));
  for (const m of migrations) {
    const prior = done.get(m.version);
    if (!prior) return m;
    if (prior.checksum !== m.checksum) throw new Error(`Migration ${m.name} was changed after it was applied; add a new migration instead`);
  }
  return undefined;
}

/**
 * Takes the migration lock for this transaction; false, with the transaction rolled back and the
 * holder logged, when another holder kept it past LOCK_WAIT_MS.
 */
async function lockWithinTransaction(client: pg.Client, log?: Logger): Promise<boolean> {
  await client.query(`SET LOCAL lock_timeout = ${LOCK_WAIT_MS}`);
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK_KEY]);
  } catch (err) {
    if ((err as { code?: string }).code !== '55P03') throw err; // lock_not_available
    await client.query('ROLLBACK');
    const { rows } = await client.query<{ pid: number; application_name: string; state: string; xact_start: string | null }>(
      `SELECT a.pid, a.application_name, a.state, a.xact_start FROM pg_locks l JOIN pg_stat_activity a USING (pid)
        WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 AND l.objid = $1
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [MIGRATION_LOCK_KEY],
    );
    const message = 'waiting for the migration lock: another process is migrating this database';
    if (log) log.warn({ holders: rows }, message);
    else console.warn(`${message} (held by ${JSON.stringify(rows)})`);
    return false;
  }
  // The migration's own DDL waits as the operator configured (role or database setting), not ours.
  await client.query('SET LOCAL lock_timeout TO DEFAULT');
  return true;
}

/** For /ready: true when every migration this build knows is applied. */
export async function pendingMigrations(db: { query: pg.Pool['query'] }): Promise<string[]> {
  const migrations = await loadMigrations();
  const { rows } = await db.query<{ version: string }>('SELECT version FROM schema_migrations');
  const done = new Set(rows.map((r) => r.version));
  return migrations.filter((m) => !done.has(m.version)).map((m) => m.name);
}
