import pg from 'pg';
import { beforeAll, describe, expect, it } from 'vitest';
import { applyTraffic, seedScale } from '../../bench/scale-seed.js';
import * as adminDb from '../../src/admin/queries/admins.js';
import * as reports from '../../src/admin/queries/reports.js';
import type { Queryable } from '../../src/db/pool.js';
import { RetentionService } from '../../src/jobs/retention.js';
import { OWN_JOBS_TABLE, queryOwnJobs } from '../../src/db/queries/video-jobs.js';
import { applyRangeHeader, parseRestQuery } from '../../src/http/postgrest.js';
import { changesFrom, checkLedger } from '../../src/ledger/verify.js';
import { createLogger } from '../../src/logger.js';
import { useTestApp } from '../support/harness.js';

/**
 * The admin reads, the incremental verify-ledger and the retention tasks find their rows through
 * an index (docs/PERFORMANCE.md "Costs at scale"), checked on their real SQL: each statement they
 * send is recorded, then EXPLAINed as a prepared statement with a generic plan (what a statement
 * cache or a pooler's prepared statements get: no parameter value to plan around) and sequential
 * scans disabled, so a plan that still reads a big table whole proves no index serves the query.
 * A scan of a big table must be an index scan with an index condition — a whole index walked with
 * a filter (how "($3 IS NULL OR target_id = $3)" read the audit log) is a scan of everything too —
 * except on a partial index, whose rows are the few the query wants (open holds, merge entries).
 */

const BIG = ['users', 'video_jobs', 'ledger_entries', 'credit_holds', 'credit_accounts', 'admin_actions', 'auth_sessions', 'refresh_tokens'];
const U = 400;
const J = 4000;

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  'Index Cond'?: string;
  Plans?: PlanNode[];
}

/** Forwards to the pool and remembers every statement with its parameters. */
function recording(db: pg.Pool): { db: Queryable; statements: Array<{ sql: string; values: unknown[] }> } {
  const statements: Array<{ sql: string; values: unknown[] }> = [];
  const q = {
    query: (sql: string, values: unknown[] = []) => {
      statements.push({ sql, values });
      return db.query(sql, values);
    },
  };
  return { db: q as unknown as Queryable, statements };
}

describe('admin reads, incremental verify-ledger and retention use indexes', () => {
  const t = useTestApp();
  let partial: Set<string>;
  let indexOf: Map<string, string>;

  /** Every index and constraint of the schema, as SQL. */
  const schema = async () =>
    (
      await t().db.query<{ def: string }>(
        `SELECT indexdef AS def FROM pg_indexes WHERE schemaname = 'public'
         UNION ALL SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) || ' ' || convalidated FROM pg_constraint WHERE connamespace = 'public'::regnamespace
         ORDER BY 1`,
      )
    ).rows.map((r) => r.def);

  beforeAll(async () => {
    const migrated = await schema();
    const client = new pg.Client({ connectionString: t().dbUrl });
    await client.connect();
    try {
      await seedScale(client, { users: U, jobs: J });
    } finally {
      await client.end();
    }
    // The seed drops the big tables' indexes and keys while it loads: all are back, validated.
    expect(await schema()).toEqual(migrated);
    const ix = await t().db.query<{ indexname: string; tablename: string; partial: boolean }>(
      "SELECT indexname, tablename, indexdef LIKE '% WHERE %' AS partial FROM pg_indexes WHERE schemaname = 'public'",
    );
    partial = new Set(ix.rows.filter((r) => r.partial).map((r) => r.indexname));
    indexOf = new Map(ix.rows.map((r) => [r.indexname, r.tablename]));
  }, 300_000);

  /** Whole-table reads of the big tables in the generic plan of each statement. */
  async function wholeTableReads(statements: Array<{ sql: string; values: unknown[] }>): Promise<string[]> {
    const found: string[] = [];
    const c = await (t().db as pg.Pool).connect();
    try {
      await c.query('BEGIN');
      await c.query('SET LOCAL enable_seqscan = off');
      await c.query('SET LOCAL plan_cache_mode = force_generic_plan');
      for (const [i, s] of statements.entries()) {
        await c.query(`PREPARE plan_check_${i} AS ${s.sql}`);
        const args = s.values.map((v) => (v === null || v === undefined ? 'NULL' : c.escapeLiteral(toLiteral(v))));
        const { rows } = await c.query(`EXPLAIN (FORMAT JSON) EXECUTE plan_check_${i}${args.length ? `(${args.join(', ')})` : ''}`);
        const walk = (n: PlanNode) => {
          const table = n['Relation Name'] ?? (n['Index Name'] ? indexOf.get(n['Index Name']) : undefined);
          if (table && BIG.includes(table)) {
            const where = `${n['Node Type']} on ${table}${n['Index Name'] ? ` (${n['Index Name']})` : ''} in: ${s.sql.replace(/\s+/g, ' ').slice(0, 160)}`;
            if (n['Node Type'] === 'Seq Scan') found.push(where);
            if (/^(Index Scan|Index Only Scan|Bitmap Index Scan)$/.test(n['Node Type']) && !n['Index Cond'] && !partial.has(n['Index Name']!)) found.push(`${where} (no index condition)`);
          }
          for (const child of n.Plans ?? []) walk(child);
        };
        walk(rows[0]['QUERY PLAN'][0].Plan);
      }
    } finally {
      await c.query('ROLLBACK');
      await c.query('DEALLOCATE ALL'); // prepared statements outlive the transaction
      c.release();
    }
    return found;
  }

  it('the admin console and API reads', async () => {
    const r = recording(t().db as pg.Pool);
    const userId = (await t().db.query("SELECT md5('u' || 17)::uuid AS id")).rows[0].id as string;
    expect(await reports.searchUsers(r.db, 'User17@Example.com')).toHaveLength(1);
    expect(await reports.searchUsers(r.db, 'device-21')).toHaveLength(1);
    expect(await reports.searchUsers(r.db, userId)).toHaveLength(1);
    expect(await reports.findUserView(r.db, userId)).toBeDefined();
    expect((await reports.userStats(r.db, userId)).jobs_total).toBeGreaterThan(0);
    expect(await reports.ledgerEntriesOf(r.db, userId, 50)).not.toEqual([]);
    expect(await reports.jobsOf(r.db, userId, 50)).not.toEqual([]);
    const heavy = (await t().db.query("SELECT md5('u' || 1)::uuid AS id")).rows[0].id as string;
    expect(await adminDb.listAdminActions(r.db, { limit: 20, targetType: 'user', targetId: heavy })).toHaveLength(1);
    expect(await adminDb.listAdminActions(r.db, { limit: 20, before: 1000 })).not.toEqual([]);
    const job = (await t().db.query("SELECT md5('j' || 1234)::uuid AS id")).rows[0].id as string;
    expect(await reports.jobTimeline(r.db, job)).toBeDefined();
    expect((await reports.dashboard(r.db)).open_holds.count).toBeGreaterThan(0);
    expect(r.statements.length).toBeGreaterThanOrEqual(15);
    expect(await wholeTableReads(r.statements)).toEqual([]);
  });

  it('an incremental verify-ledger pass', async () => {
    const since = await changesFrom(t().db);
    await applyTraffic(t().db as pg.Pool, { users: U, jobs: 5, round: 1 });
    const r = recording(t().db as pg.Pool);
    const checked = await checkLedger(r.db, { changedSince: since });
    expect(checked.violations).toEqual([]);
    expect(checked.accountsChecked).toBe(5);
    expect(await wholeTableReads(r.statements)).toEqual([]);
  });

  it("rest/v1 video_jobs: every filter, order and count a user can send reads only that user's rows", async () => {
    const r = recording(t().db as pg.Pool);
    const userId = (await t().db.query("SELECT user_id FROM video_jobs GROUP BY 1 ORDER BY count(*) DESC LIMIT 1")).rows[0].user_id as string;
    const queries = [
      '',
      'select=job_id,status&status=eq.pending',
      'prompt=ilike.*fox*&order=credits_used.desc',
      'or=(status.eq.failed,and(credits_used.gt.2,model_name.like.S*))&order=model_name',
      'error_code=is.null&created_at=lt.2100-01-01&order=status.asc,created_at.desc',
      'job_id=in.(00000000-0000-0000-0000-000000000001)',
    ];
    let read = 0;
    for (const query of queries) read += (await queryOwnJobs(r.db, userId, parseRestQuery(new URLSearchParams(query), OWN_JOBS_TABLE), true)).rows.length;
    read += (await queryOwnJobs(r.db, userId, applyRangeHeader(parseRestQuery(new URLSearchParams(''), OWN_JOBS_TABLE), '0-4', 'items'), false)).rows.length;
    expect(read).toBeGreaterThan(0);
    expect(r.statements.length).toBe(queries.length * 2 + 1);
    expect(await wholeTableReads(r.statements)).toEqual([]);
  });

  it('session and video retention', async () => {
    const r = recording(t().db as pg.Pool);
    const retention = new RetentionService(r.db, t().services.store, { ...t().services.config.retention, videoDays: 30 }, createLogger('silent'));
    expect(await retention.sessions()).toBeGreaterThan(0);
    expect(await retention.videos()).toBeGreaterThan(0);
    expect(await wholeTableReads(r.statements)).toEqual([]);
  });
});

function toLiteral(v: unknown): string {
  if (Array.isArray(v)) return `{${v.map((x) => `"${String(x).replace(/(["\\])/g, '\\$1')}"`).join(',')}}`;
  if (v instanceof Date) return v.toISOString();
  return String(v);
}
