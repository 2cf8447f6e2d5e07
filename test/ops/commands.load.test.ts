import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, inject, it, onTestFinished } from 'vitest';
import { ROOT, npmRun } from '../support/process.js';

/**
 * The load and fault runs the docs name (bench/README.md, docs/RELIABILITY.md, docs/DEPLOY.md,
 * docs/PERFORMANCE.md), run through npm exactly as an operator types them, with the smallest options
 * that still do the real work: each must finish, print its verdict and leave the checkout as it was.
 * Nothing here is about speed: the numbers only have to be there. The development commands are in
 * commands.dev.test.ts (two files, so the suite runs the two sets side by side); `npm start`,
 * `npm run migrate`, `npm run verify-ledger`, `npm run admin:create` and `npm run bench:scale` have
 * their own files (runtime.process.test.ts, pooler.test.ts, test/money/verify-ledger.cli.test.ts,
 * test/admin/admin-create.cli.test.ts, bench-scale.test.ts).
 */

/** Files the published results live in: a trial run must leave them as they were. */
const published = () => ['docs/PERFORMANCE.md', 'bench/results/latest.json'].map((f) => readFileSync(path.join(ROOT, f), 'utf8'));

describe('bench commands', () => {
  it('npm run bench:scale-out: API instances and a worker through PgBouncer on a small database', { timeout: 300_000 }, async () => {
    const out = await npmRun(['bench:scale-out', '--', '--api', '2', '--workers', '1', '--users', '4', '--rest', '1']);
    expect(out).toMatch(/^\| users \/ jobs completed \| 4 \/ 4 \|$/m);
    expect(out).toMatch(/^\| SSE streams that heard their job end \(NOTIFY only\) \| 4 of 4 \|$/m);
    expect(out).toMatch(/^\| connections PostgreSQL refused \(too many clients\) \| 0 \|$/m);
    expect(out).toMatch(/SCALE-OUT: PASSED/);
  });

  it('npm run bench: every scenario and baseline runs and is reported with its ratio, into the files --json and --doc name', { timeout: 600_000 }, async () => {
    const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'rendio-commands-bench-'));
    onTestFinished(() => fs.rm(dir, { recursive: true, force: true }));
    const doc = path.join(dir, 'PERFORMANCE.md');
    const json = path.join(dir, 'latest.json');
    await fs.copyFile(path.join(ROOT, 'docs/PERFORMANCE.md'), doc);
    const before = published();

    const out = await npmRun([
      'bench', '--', '--duration', '1', '--rounds', '1', '--warmup', '0', '--connections', '2', '--users', '4', '--no-embedded', '--fanout', '1,10', '--fanout-changes', '2',
      '--database-url', inject('adminUrl'), '--json', json, '--doc', doc,
    ]);
    expect(out).toMatch(/^ledger invariants hold after the benchmark$/m);

    const report = JSON.parse(await fs.readFile(json, 'utf8')) as {
      rows: { name: string; value: number | null; ratio?: number | null; target?: string | null; baseline_p99_ms?: number | null; p99_ratio?: number | null }[];
    };
    const names = report.rows.map((r) => r.name);
    expect(names).toEqual([
      'get-video-status, in flight (API only)',
      'get-video-status, completed (API only)',
      'get-video-status while the worker runs',
      'get-models → 304',
      'get-models → 200',
      'get-user-credits',
      'generate-video (API only, 4 users)',
      'generate-video while the worker runs',
      'generate-video (API only, one user)',
      'device-check (new guest each)',
      'peak RSS (VmHWM), API only / API + worker',
      'cold start to /health, migrated PostgreSQL',
      'cold start to /health, fresh database (migrations)',
      'Realtime: one job change to 1 socket (commit → last socket)',
      'Realtime: one job change to 10 sockets (commit → last socket)',
      "rate limiter's added latency per generate-video (postgres)",
    ]);
    // Measured, whatever the number: a 1 s round on a loaded machine may well see no answer at all.
    for (const row of report.rows) {
      expect(row.value, row.name).toBeGreaterThanOrEqual(0);
      expect(out, 'the console table names every row').toContain(row.name);
    }
    // Every row with a target has its ratio to a baseline measured in the same run.
    const ratioRows = report.rows.filter((r) => r.target?.startsWith('≥'));
    expect(ratioRows).toHaveLength(6);
    for (const row of ratioRows) expect(row.ratio, row.name).toBeGreaterThanOrEqual(0);
    // And its tail against the baseline's: pgbench's p99 comes from its per-transaction log.
    const generateRow = report.rows.find((r) => r.name === 'generate-video (API only, 4 users)')!;
    expect(generateRow.baseline_p99_ms, 'pgbench p99').toBeGreaterThan(0);
    for (const row of ratioRows.filter((r) => r.baseline_p99_ms != null && r.p99_ratio != null)) {
      expect(row.target, row.name).toMatch(/p99 ≤ 3×$/);
      expect(row.p99_ratio, row.name).toBeGreaterThanOrEqual(0);
    }

    // The results section of the copy was replaced between its markers, the rest of it kept.
    const BEGIN = '<!-- bench:results:begin (written by npm run bench) -->';
    const END = '<!-- bench:results:end -->';
    const outside = (text: string) => [text.slice(0, text.indexOf(BEGIN)), text.slice(text.indexOf(END))];
    const written = await fs.readFile(doc, 'utf8');
    expect(outside(written)).toEqual(outside(before[0]!));
    const section = written.slice(written.indexOf(BEGIN), written.indexOf(END));
    expect(section).toContain('"durationS":1,"rounds":1,"warmupS":0,"connections":2}, 4 users');
    for (const row of ratioRows) expect(section).toContain(`| ${row.name} | ${row.value} req/s`);
    expect(published(), 'the published results are left alone').toEqual(before);
  });

  it('npm run bench:cold-start: a migrating start, then the timed starts and their median', { timeout: 300_000 }, async () => {
    const out = await npmRun(['bench:cold-start', '--', '--runs', '1', '--database-url', inject('adminUrl')]);
    expect(out).toMatch(/^first start \(migrates\): \d+ ms$/m);
    expect(out).toMatch(/^cold start 1: \d+ ms wall, [\d.]+ ms CPU$/m);
    expect(out).toMatch(/^wall: median \d+ ms, min \d+ ms, max \d+ ms over 1 runs$/m);
  });

  it('npm run bench:media: a large delivered video ingested (streamed, checked, rewritten, stored) with its peak RSS', { timeout: 300_000 }, async () => {
    const out = await npmRun(['bench:media', '--', '--size-mb', '8', '--database-url', inject('adminUrl')]);
    expect(out).toMatch(/^\| delivered file \| 8 MiB, index at the end \(rewritten: true\) \|$/m);
    expect(out).toMatch(/^\| checked \| 8 s, 320×180, avc1\.\w+ \|$/m);
    expect(out).toMatch(/^\| RSS before → peak during ingest \| \d+ → \d+ MiB \|$/m);
  });

  /** The verdict lines of a chaos run that lost nothing (bench/chaos.ts prints them as a table). */
  function expectChaosPassed(out: string) {
    expect(out).toMatch(/^\| jobs not terminal \| 0 \(/m);
    expect(out).toMatch(/^\| killed worker: jobs not terminal \| 0 \(/m);
    expect(out).toMatch(/^\| verify-ledger \| OK \|$/m);
    expect(out).toMatch(/^\| balances ≠ independent count \(or held ≠ 0\) \| 0 \|$/m);
    expect(out).toMatch(/^\| live subscribers \(SSE \+ Realtime\), final status heard \| 4 of 4 /m);
    expect(out).toMatch(/^\| processes crashed \| none \|$/m);
    expect(out).toMatch(/^\| client errors \| none \|$/m);
    expect(out).toMatch(/^CHAOS: PASSED$/m);
  }

  // The two runs mostly wait (fixed fault schedule, jobs settling), each on a PostgreSQL of its own:
  // side by side they cost the suite one run's time.
  it.concurrent('npm run chaos: killed processes, a PostgreSQL restart and a faulty provider lose no job and no credit', { timeout: 600_000 }, async () => {
    const out = await npmRun(['chaos', '--', '--users', '4', '--watch', '2', '--inflight', '4', '--lost-answer-wait', '10']);
    expect(out).toMatch(/^\| lost-answer wait \(SUBMIT_LOST_ANSWER_WAIT_SECONDS\) \| 10 s /m);
    expectChaosPassed(out);
  });

  it.concurrent('npm run chaos -- --pooler: the same through PgBouncer in transaction mode', { timeout: 600_000 }, async () => {
    const out = await npmRun(['chaos', '--', '--pooler', '--users', '4', '--watch', '2', '--inflight', '4']);
    expect(out).toMatch(/PostgreSQL on \d+ behind PgBouncer \(transaction mode\)/);
    expectChaosPassed(out);
  });
});

