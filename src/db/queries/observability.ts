import type { Queryable } from '../pool.js';

/** Read-only aggregates for /metrics (src/services.ts registers them; each reading is cached there). */

export interface QueueTaskStats {
  task: string;
  /** Due and waiting for a worker. */
  ready: number;
  /** Scheduled for later (a poll's next turn, a retry's backoff). */
  scheduled: number;
  /** Taken by a worker now. */
  running: number;
  /** Out of attempts: graphile keeps them, nothing runs them again. */
  dead: number;
  /** How long the longest-waiting due task has waited since it came due (0 when none is waiting). */
  oldest_ready_seconds: number;
}

/**
 * graphile-worker's queue by task. Its table holds only what is pending (done tasks are deleted),
 * a few rows per running video job, so a full read per scrape stays small.
 */
export async function queueStats(db: Queryable): Promise<QueueTaskStats[]> {
  const { rows } = await db.query<QueueTaskStats>(
    `SELECT t.identifier AS task,
            count(*) FILTER (WHERE j.is_available AND j.run_at <= now())::int AS ready,
            count(*) FILTER (WHERE j.is_available AND j.run_at > now())::int AS scheduled,
            count(*) FILTER (WHERE j.locked_at IS NOT NULL)::int AS running,
            count(*) FILTER (WHERE j.attempts >= j.max_attempts)::int AS dead,
            coalesce(extract(epoch FROM now() - min(j.run_at) FILTER (WHERE j.is_available AND j.run_at <= now())), 0)::float8 AS oldest_ready_seconds
       FROM graphile_worker._private_jobs j
       JOIN graphile_worker._private_tasks t ON t.id = j.task_id
      GROUP BY t.identifier`,
  );
  return rows;
}

export interface LedgerTotals {
  balance: number;
  held: number;
  available: number;
  debt: number;
  accounts: number;
}

/**
 * Every account's totals summed (the ledger keeps them on credit_accounts, so no entry is read):
 * one sequential pass over the accounts, which is why /metrics reuses a reading for a minute.
 */
export async function ledgerTotals(db: Queryable): Promise<LedgerTotals> {
  const { rows } = await db.query<LedgerTotals>(
    `SELECT coalesce(sum(balance), 0)::float8 AS balance, coalesce(sum(held), 0)::float8 AS held,
            coalesce(sum(balance - held), 0)::float8 AS available, coalesce(sum(debt), 0)::float8 AS debt,
            count(*)::float8 AS accounts
       FROM credit_accounts`,
  );
  return rows[0]!;
}
