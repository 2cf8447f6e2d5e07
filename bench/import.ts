/**
 * `npm run bench:import`: how fast `npm run import:supabase` moves a former Supabase deployment, and
 * how much memory it needs.
 *
 *   npm run bench:import -- [--users 100k] [--jobs-per-user 2] [--batch-size 1000]
 *                           [--database-url postgres://…] [--keep]
 *
 * Creates two databases on that server: the former backend's (test/fixtures/supabase-legacy/schema.sql),
 * seeded with set-based SQL — users with device ids (10% Apple users) and an auth.users row, a free
 * grant each in quota_log, a purchase for 20% of them, `--jobs-per-user` jobs each (1% still running)
 * — and ours, migrated. Then runs the import in this process (files are not copied: their cost is
 * the copy's, disk or network, not the import's), then verify-ledger --full. Prints one table
 * (rows, seconds, rows/s per phase), the peak resident memory, and the time 1M users / 10M jobs
 * would take at those rates. Drops both databases (`--keep` keeps them and prints their URLs).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { Progress } from '../src/import/progress.js';
import { importFromSupabase } from '../src/import/supabase.js';
import { runLedgerVerification } from '../src/ledger/verify.js';
import { LocalObjectStore } from '../src/storage/local.js';
import { adminQuery, withDatabase } from '../test/support/db.js';

const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '100k' },
    'jobs-per-user': { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '1000' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    keep: { type: 'boolean', default: false },
  },
});
const m = /^(\d+)([kKmM]?)$/.exec(args.users);
if (!m) throw new Error(`--users: "${args.users}" is not a number like 100k or 1M`);
const USERS = Number(m[1]) * (m[2]!.toLowerCase() === 'k' ? 1e3 : m[2]!.toLowerCase() === 'm' ? 1e6 : 1);
const JOBS_PER_USER = Number(args['jobs-per-user']);
const adminUrl = args['database-url'];
const suffix = `${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
const sourceName = `rendio_bench_import_src_${suffix}`;
const targetName = `rendio_bench_import_dst_${suffix}`;
const ROOT = path.resolve(import.meta.dirname, '..');

async function seedSource(url: string): Promise<void> {
  const db = new pg.Client({ connectionString: url });
  await db.connect();
  try {
    await db.query(readFileSync(path.join(ROOT, 'test/fixtures/supabase-legacy/schema.sql'), 'utf8'));
    await db.query(`INSERT INTO models (id, name, category, cost_per_generation, provider, provider_model_id, pricing_type, is_active) VALUES
      ('00000000-0000-4000-8000-000000000001', 'Sora 2 Image-to-Video', 'image-to-video', 4, 'fal', 'fal-ai/sora-2/image-to-video', 'per_second', true)`);
    await db.query(`INSERT INTO auth.users (id, is_anonymous) SELECT gen_random_uuid(), true FROM generate_series(1, $1)`, [USERS]);
    await db.query(
      `INSERT INTO users (id, device_id, apple_sub, is_guest, credits_remaining, credits_total, auth_user_id, created_at)
       SELECT id, 'device-' || n, CASE WHEN n % 10 = 0 THEN 'apple.' || n END, n % 10 <> 0, (n * 7) % 200, 10, id,
              now() - (n % 365) * interval '1 day'
         FROM (SELECT id, row_number() OVER () AS n FROM auth.users) a`,
    );
    await db.query(`INSERT INTO quota_log (user_id, change, reason, balance_after) SELECT id, 10, 'initial_grant', 10 FROM users`);
    await db.query(
      `INSERT INTO quota_log (user_id, change, reason, transaction_id, balance_after)
       SELECT id, 60, 'iap_purchase', 'bench-' || id, 70 FROM users WHERE credits_remaining % 5 = 0`,
    );
    await db.query(
      `INSERT INTO video_jobs (user_id, model_id, prompt, settings, status, video_url, credits_used, created_at, completed_at)
       SELECT u.id, '00000000-0000-4000-8000-000000000001', 'a prompt ' || g, '{"duration": 4}',
              CASE WHEN (g + u.credits_remaining) % 100 = 0 THEN 'processing' ELSE 'completed' END,
              'https://abcdefgh.supabase.co/storage/v1/object/public/videos/' || u.id || '/2025-11/' || g || '.mp4',
              4, u.created_at, u.created_at + interval '2 minutes'
         FROM users u, generate_series(1, $1) g`,
      [JOBS_PER_USER],
    );
    await db.query('ANALYZE');
  } finally {
    await db.end();
  }
}

let peakRss = 0;
const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 100);
const storeDir = mkdtempSync(path.join(tmpdir(), 'rendio-bench-import-'));
await adminQuery(adminUrl, `CREATE DATABASE ${sourceName}`);
await adminQuery(adminUrl, `CREATE DATABASE ${targetName}`);
const sourceUrl = withDatabase(adminUrl, sourceName);
const targetUrl = withDatabase(adminUrl, targetName);
const from = new pg.Pool({ connectionString: sourceUrl, max: 2 });
const to = new pg.Pool({ connectionString: targetUrl, max: 4 });
try {
  const seeding = performance.now();
  await seedSource(sourceUrl);
  await migrate(targetUrl);
  console.log(`seeded ${USERS.toLocaleString('en')} users / ${(USERS * JOBS_PER_USER).toLocaleString('en')} jobs in ${((performance.now() - seeding) / 1000).toFixed(1)} s`);
  peakRss = process.memoryUsage().rss;
  const started = performance.now();
  const report = await importFromSupabase({
    from,
    to,
    store: new LocalObjectStore(storeDir, 'http://127.0.0.1', 'bench-secret-bench-secret-bench-secret'),
    dryRun: false,
    batchSize: Number(args['batch-size']),
    products: {},
    progress: new Progress(),
  });
  const importSeconds = (performance.now() - started) / 1000;
  const verifying = performance.now();
  const verified = await runLedgerVerification(to, { full: true });
  const verifySeconds = (performance.now() - verifying) / 1000;
  if (!report.checks.every((c) => c.ok) || verified.violations.length > 0) {
    console.error(JSON.stringify({ checks: report.checks, violations: verified.violations.slice(0, 3) }, null, 2));
    throw new Error('the import did not balance or verify-ledger failed');
  }
  const n = (x: number) => Math.round(x).toLocaleString('en');
  console.log('\n| phase | source rows | seconds | rows/s |\n|---|---|---|---|');
  for (const p of report.phases) console.log(`| ${p.phase} | ${n(p.rows)} | ${p.seconds.toFixed(1)} | ${n(p.rows / p.seconds)} |`);
  console.log(`| whole import (totals check included) | | ${importSeconds.toFixed(1)} | |`);
  console.log(`| verify-ledger --full after it | ${n(verified.accountsChecked)} accounts | ${verifySeconds.toFixed(1)} | |`);
  console.log(`peak resident memory: ${n(peakRss / 1024 / 1024)} MiB`);
  const rate = (phase: string) => {
    const p = report.phases.find((x) => x.phase === phase)!;
    return p.rows / p.seconds;
  };
  const purchasesPerUser = (report.phases.find((x) => x.phase === 'purchases')?.rows ?? 0) / USERS;
  const at = (users: number, jobs: number) => users / rate('users') + (users * purchasesPerUser) / rate('purchases') + jobs / rate('jobs');
  console.log(`at these rates: 1M users / 10M jobs ≈ ${(at(1e6, 1e7) / 60).toFixed(0)} min; 10M users / 100M jobs ≈ ${(at(1e7, 1e8) / 3600).toFixed(1)} h`);
  console.log('import balanced and verify-ledger OK');
} finally {
  clearInterval(sampler);
  await from.end();
  await to.end();
  rmSync(storeDir, { recursive: true, force: true });
  if (args.keep) console.log(`kept databases: ${sourceUrl} ${targetUrl}`);
  else {
    await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${sourceName} WITH (FORCE)`);
    await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${targetName} WITH (FORCE)`);
  }
}
