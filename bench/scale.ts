/**
 * `npm run bench:scale`: what the admin pages, verify-ledger and retention cost as the data grows.
 *
 *   npm run bench:scale -- [--sizes 10k:100k,100k:1M,1M:10M] [--iterations 200] [--verify-rounds 5]
 *                          [--database-url postgres://…] [--keep] [--reuse <database> (one size)]
 *
 * For each size (users:jobs) it creates a database of its own on that server, migrates it, seeds it
 * with set-based SQL (bench/scale-seed.ts: consistent with every money invariant, about 2.2 ledger
 * entries per job), then measures single-client timings, in this order:
 *  - admin search (by email, device id and user id in turn), the admin user page (the console's
 *    five queries) of a typical user and of the 20k-job user, the dashboard, the audit log of one
 *    user, a job's timeline: a warm-up, then `--iterations` runs each;
 *  - verify-ledger --full on the seeded data (it must pass, else exit 1), which records the first
 *    checkpoint; then `--verify-rounds` rounds of "a day of traffic" (jobs/365 new jobs, each of
 *    another user, written with the triggers on) followed by an incremental verify-ledger;
 *  - session retention and video retention, once each (they delete), with what they deleted.
 * Prints one table (median / p99 per row and size), then drops the databases (`--keep` keeps the
 * last one and prints its URL).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import * as adminDb from '../src/admin/queries/admins.js';
import * as reports from '../src/admin/queries/reports.js';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { RetentionService } from '../src/jobs/retention.js';
import { runLedgerVerification } from '../src/ledger/verify.js';
import { createLogger } from '../src/logger.js';
import { LocalObjectStore } from '../src/storage/local.js';
import { adminQuery, withDatabase } from '../test/support/db.js';
import { applyTraffic, seedScale, type SeedSize } from './scale-seed.js';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '10k:100k,100k:1M,1M:10M' },
    iterations: { type: 'string', default: '200' },
    'verify-rounds': { type: 'string', default: '5' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    keep: { type: 'boolean', default: false },
    /** Measure this already seeded database (one size) instead of creating and seeding one; it is kept. */
    reuse: { type: 'string' },
  },
});
const ITERATIONS = Number(args.iterations);
const VERIFY_ROUNDS = Number(args['verify-rounds']);

function count(s: string): number {
  const m = /^(\d+(?:\.\d+)?)([kKmM]?)$/.exec(s.trim());
  if (!m) throw new Error(`--sizes: "${s}" is not a number like 100k or 1M`);
  return Math.round(Number(m[1]) * (m[2]!.toLowerCase() === 'k' ? 1e3 : m[2]!.toLowerCase() === 'm' ? 1e6 : 1));
}
const SIZES: SeedSize[] = args.sizes.split(',').map((pair) => {
  const [users, jobs] = pair.split(':');
  if (!users || !jobs) throw new Error(`--sizes: "${pair}" is not users:jobs`);
  return { users: count(users), jobs: count(jobs) };
});

/** The uuid PostgreSQL makes of md5(label || n) (the seed's ids). */
const seededId = (label: string, n: number) => {
  const h = createHash('md5').update(`${label}${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const pick = (from: number, to: number) => from + Math.floor(Math.random() * (to - from + 1));

interface Cell {
  samples: number[];
  note?: string;
}
type Results = Map<string, Cell>;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

async function sample(results: Results, what: string, run: (i: number) => Promise<unknown>, iterations = ITERATIONS): Promise<void> {
  for (let i = 0; i < Math.min(10, iterations); i++) await run(i); // warm-up
  const samples: number[] = [];
  for (let i = 0; i < iterations; i++) samples.push(await timed(() => run(i)));
  results.set(what, { samples });
}

const ROWS = [
  'admin search by email / device / id',
  'admin user page, typical user',
  'admin user page, 20k-job user',
  'admin dashboard',
  'admin actions of one user',
  'admin job timeline',
  'verify-ledger --full (seeded data)',
  'verify-ledger incremental (a day of traffic)',
  'session retention',
  'video retention',
] as const;

async function measureSize(adminUrl: string, name: string, size: SeedSize): Promise<{ results: Results; url: string; summary: string }> {
  const url = withDatabase(adminUrl, name);
  const results: Results = new Map();
  const log = (msg: string) => console.log(msg);
  let summary: string;
  if (args.reuse) {
    summary = `${size.users} users, ${size.jobs} jobs: seeded earlier (${name})`;
  } else {
    await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
    await migrate(url);
    const seeder = new pg.Client({ connectionString: url });
    await seeder.connect();
    let seeded;
    try {
      console.log(`seeding ${size.users} users, ${size.jobs} jobs into ${name}`);
      seeded = await seedScale(seeder, size, log);
    } finally {
      await seeder.end();
    }
    summary = `${size.users} users, ${size.jobs} jobs, ${seeded.ledgerEntries} ledger entries (heavy user: ${seeded.heavyUserJobs} jobs): seeded in ${seeded.seconds.toFixed(1)} s`;
  }
  console.log(summary);

  // The app's pool (its type parsers: timestamps as ISO strings, bigint as numbers).
  const pool = createPool(url, 4, { connectionTimeoutMillis: 60_000 });
  try {
    const U = size.users;
    // Guests are users with n % 10 < 7, Apple accounts (with an email) the others.
    const apple = () => {
      const n = pick(2, U);
      return n - (n % 10) + 7 <= U ? n - (n % 10) + 7 : 7;
    };
    const guest = () => {
      const n = pick(2, U);
      // The first guest of n's ten, which lies past the last user when n is the last ten's start.
      return n - (n % 10) + 1 <= U ? n - (n % 10) + 1 : 1;
    };
    await sample(results, ROWS[0], async (i) => {
      const q = i % 3 === 0 ? `User${apple()}@Example.com` : i % 3 === 1 ? `device-${guest()}` : seededId('u', pick(1, U));
      const found = await reports.searchUsers(pool, q);
      if (found.length !== 1) throw new Error(`search for ${q} found ${found.length} users`);
    });
    const userPage = async (userId: string) => {
      const user = await reports.findUserView(pool, userId);
      if (!user) throw new Error(`no user ${userId}`);
      // As AdminService.userDetail: the four reads at once.
      await Promise.all([
        reports.userStats(pool, userId),
        reports.ledgerEntriesOf(pool, userId, 50),
        reports.jobsOf(pool, userId, 50),
        adminDb.listAdminActions(pool, { limit: 20, targetType: 'user', targetId: userId }),
      ]);
    };
    await sample(results, ROWS[1], () => userPage(seededId('u', pick(2, U))));
    await sample(results, ROWS[2], () => userPage(seededId('u', 1)));
    await sample(results, ROWS[3], () => reports.dashboard(pool));
    await sample(results, ROWS[4], async (i) => {
      const n = i % 2 === 0 ? 1 : Math.max(50, Math.floor(pick(50, U) / 50) * 50);
      await adminDb.listAdminActions(pool, { limit: 20, targetType: 'user', targetId: seededId('u', n) });
    });
    await sample(results, ROWS[5], async () => {
      if (!(await reports.jobTimeline(pool, seededId('j', pick(1, size.jobs))))) throw new Error('job not found');
    });

    // verify-ledger: the seeded data must hold every invariant; that pass is the first checkpoint.
    if (!args.reuse) {
      let full: Awaited<ReturnType<typeof runLedgerVerification>> | undefined;
      const fullMs = await timed(async () => (full = await runLedgerVerification(pool, { full: true })));
      if (full!.violations.length > 0) throw new Error(`verify-ledger --full found violations in the seeded data:\n${JSON.stringify(full!.violations, null, 2)}`);
      console.log(`verify-ledger --full on the seeded data: OK (${full!.accountsChecked} accounts)`);
      results.set(ROWS[6], { samples: [fullMs], note: `${full!.accountsChecked} accounts` });
    }
    const perDay = Math.max(5, Math.floor(size.jobs / 365));
    const incremental: number[] = [];
    let checked = 0;
    for (let round = 1; round <= VERIFY_ROUNDS; round++) {
      await applyTraffic(pool, { users: U, jobs: perDay, round });
      let r: Awaited<ReturnType<typeof runLedgerVerification>> | undefined;
      incremental.push(await timed(async () => (r = await runLedgerVerification(pool))));
      if (r!.mode !== 'incremental' || r!.violations.length > 0) throw new Error(`incremental verify-ledger: ${JSON.stringify(r)}`);
      checked = r!.accountsChecked;
    }
    if (VERIFY_ROUNDS > 0) {
      console.log(`verify-ledger incremental: OK (${VERIFY_ROUNDS} rounds, ${checked} accounts each)`);
      results.set(ROWS[7], { samples: incremental, note: `${checked} accounts changed` });
    }

    const dir = mkdtempSync(path.join(tmpdir(), 'rendio-scale-'));
    try {
      const retention = new RetentionService(
        pool,
        new LocalObjectStore(dir, 'http://127.0.0.1', 'bench-scale-secret'),
        { errorLogDays: 30, errorLogMaxRows: 1_000_000, sessionDays: 30, refreshTokenTtlDays: 60, webhookEventDays: 30, appStoreNotificationDays: 180, videoDays: 30 },
        createLogger('silent'),
      );
      let sessions = 0;
      const sessionsMs = await timed(async () => (sessions = await retention.sessions()));
      results.set(ROWS[8], { samples: [sessionsMs], note: `${sessions} sessions deleted` });
      let videos = 0;
      const videosMs = await timed(async () => (videos = await retention.videos()));
      results.set(ROWS[9], { samples: [videosMs], note: `${videos} jobs expired` });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  } finally {
    await pool.end();
  }
  return { results, url, summary };
}

function formatMs(ms: number): string {
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 100) return `${Math.round(ms)} ms`;
  return `${ms.toFixed(1)} ms`;
}

function cell(c: Cell | undefined): string {
  if (!c) return '—';
  const sorted = [...c.samples].sort((a, b) => a - b);
  const times = sorted.length === 1 ? formatMs(sorted[0]!) : `${formatMs(percentile(sorted, 50))} / ${formatMs(percentile(sorted, 99))}`;
  return `${times}${c.note ? ` (${c.note})` : ''}`;
}

const short = (n: number) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));

async function main() {
  const adminUrl = args['database-url'];
  const measured: Array<{ size: SeedSize; results: Results; summary: string }> = [];
  let kept: string | undefined;
  for (const [i, size] of SIZES.entries()) {
    const name = args.reuse ?? `rendio_scale_${Date.now().toString(36)}_${i}`;
    let measuredSize;
    try {
      measuredSize = await measureSize(adminUrl, name, size);
    } catch (err) {
      if (!args.reuse) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => undefined);
      throw err;
    }
    const { results, url, summary } = measuredSize;
    measured.push({ size, results, summary });
    if (args.reuse || (args.keep && i === SIZES.length - 1)) kept = url;
    else await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }
  const version = (await adminQuery(adminUrl, 'SHOW server_version')).rows[0].server_version as string;
  console.log(`\nCosts at scale: PostgreSQL ${version}, one client, ${ITERATIONS} runs per read (median / p99; a single time where it ran once)`);
  for (const m of measured) console.log(`  ${m.summary}`);
  console.log(`\n| what | ${measured.map((m) => `${short(m.size.users)} users / ${short(m.size.jobs)} jobs`).join(' | ')} |`);
  console.log(`|---|${measured.map(() => '---').join('|')}|`);
  for (const row of ROWS) console.log(`| ${row} | ${measured.map((m) => cell(m.results.get(row))).join(' | ')} |`);
  if (kept) console.log(`\nkept database: ${kept}`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
