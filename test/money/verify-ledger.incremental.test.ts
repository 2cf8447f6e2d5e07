import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { Metrics } from '../../src/metrics.js';
import { enqueue } from '../../src/jobs/queue.js';
import { LedgerVerificationTask } from '../../src/jobs/ledger-verification.js';
import { runLedgerVerification } from '../../src/ledger/verify.js';
import { useTestApp } from '../support/harness.js';
import { waitFor } from '../support/process.js';

/**
 * Incremental verify-ledger (src/ledger/verify.ts, migration 0019): a pass checks what changed since
 * the last checkpoint, and a change committed after a pass — even one whose rows carry smaller ids
 * than rows the pass saw — is checked by the next pass.
 */

/**
 * A ledger entry that is right in itself (kind, sign, running totals) but whose account was not
 * updated: "balance and held equal the sums of the ledger" breaks for this user until fixAccount().
 */
async function forgeUnbookedEntry(c: pg.ClientBase, userId: string): Promise<number> {
  const { rows } = await c.query(
    `INSERT INTO ledger_entries (user_id, kind, amount, held_delta, reason, balance_after, held_after)
     SELECT user_id, 'admin_adjust', 5, 0, 'written by the test', balance + 5, held FROM credit_accounts WHERE user_id = $1
     RETURNING id`,
    [userId],
  );
  return Number(rows[0].id);
}

const fixAccount = (db: pg.Pool, userId: string) => db.query('UPDATE credit_accounts SET balance = balance + 5 WHERE user_id = $1', [userId]);

describe('verify-ledger incremental', () => {
  const t = useTestApp();
  const pool = () => t().db as pg.Pool;

  it('checks only the accounts changed since the last checkpoint, and drops the marks it covered', async () => {
    await t().createGuest();
    await t().createGuest();
    const first = await runLedgerVerification(pool());
    expect(first.violations).toEqual([]);
    expect(first.mode).toBe('full'); // no checkpoint yet
    // (How many accounts a pass checks also depends on transactions of other databases on the
    // server: a checkpoint is the oldest running transaction's id, cluster-wide, and marks at or
    // above it are read again. Exact scopes are checked in verify-ledger.invariants.test.ts.)
    const nothing = await runLedgerVerification(pool());
    expect(nothing).toMatchObject({ mode: 'incremental', violations: [] });

    const g = await t().createGuest();
    const one = await runLedgerVerification(pool());
    expect(one).toMatchObject({ mode: 'incremental', violations: [] });
    expect(one.accountsChecked).toBeGreaterThanOrEqual(1);
    const left = await t().db.query('SELECT count(*)::int AS n FROM ledger_changes WHERE xid < $1::xid8', [one.verifiedBelow]);
    expect(left.rows[0].n).toBe(0);

    const full = await runLedgerVerification(pool(), { full: true });
    expect(full).toMatchObject({ mode: 'full', violations: [] });
    expect(full.accountsChecked).toBeGreaterThanOrEqual(3);
    expect(g.userId).toBeTruthy();
  });

  it('a change committed after a pass, with a smaller ledger id than rows that pass saw, is checked by the next pass', async () => {
    const late = await t().createGuest();
    const early = await t().createGuest();
    expect((await runLedgerVerification(pool())).violations).toEqual([]);

    const writer = await pool().connect();
    try {
      await writer.query('BEGIN');
      const lateId = await forgeUnbookedEntry(writer, late.userId); // not committed yet
      // Another user's entries commit meanwhile, with larger ids.
      await t().createGuest();
      await t().db.query('SELECT 1');
      const seen = await t().db.query('SELECT max(id)::bigint AS id FROM ledger_entries');
      expect(Number(seen.rows[0].id)).toBeGreaterThan(lateId);
      const between = await runLedgerVerification(pool());
      expect(between.violations).toEqual([]); // the late entry is not visible yet
      await writer.query('COMMIT');
    } finally {
      writer.release();
    }

    // A checkpoint "every id up to the largest seen" would skip the late entry; this one does not.
    const next = await runLedgerVerification(pool());
    expect(next.mode).toBe('incremental');
    expect(next.violations.map((v) => v.check)).toEqual(['balance and held equal the sums of the ledger']);
    expect(JSON.stringify(next.violations[0]!.rows)).toContain(late.userId);
    expect(JSON.stringify(next.violations)).not.toContain(early.userId);
    // Nothing moved: the pass after still reports it, until it is fixed.
    expect((await runLedgerVerification(pool())).violations).toHaveLength(1);
    await fixAccount(pool(), late.userId);
    expect((await runLedgerVerification(pool())).violations).toEqual([]);
  });

  it('a transaction that began before a pass and writes only after it is checked by the next pass', async () => {
    const g = await t().createGuest();
    expect((await runLedgerVerification(pool())).violations).toEqual([]);
    const writer = await pool().connect();
    try {
      await writer.query('BEGIN ISOLATION LEVEL REPEATABLE READ');
      await writer.query('SELECT count(*) FROM credit_accounts'); // its snapshot, no transaction id yet
      expect((await runLedgerVerification(pool())).violations).toEqual([]);
      await forgeUnbookedEntry(writer, g.userId);
      await writer.query('COMMIT');
    } finally {
      writer.release();
    }
    const next = await runLedgerVerification(pool());
    expect(next.violations.map((v) => v.check)).toEqual(['balance and held equal the sums of the ledger']);
    await fixAccount(pool(), g.userId);
    expect((await runLedgerVerification(pool())).violations).toEqual([]);
  });

  it("a checkpoint from another cluster (a logical restore: transaction ids the database never gave out) is ignored: the pass is full", async () => {
    await t().createGuest();
    expect((await runLedgerVerification(pool())).violations).toEqual([]);
    await t().db.query(
      `INSERT INTO ledger_verify_checkpoints (mode, verified_below, accounts_checked, started_at)
       VALUES ('full', (pg_current_xact_id()::text::bigint + 1000000000)::text::xid8, 0, now())`,
    );
    await t().db.query(`INSERT INTO ledger_changes (xid, kind, id) SELECT (pg_current_xact_id()::text::bigint + 1000000000)::text::xid8, 'u', id::text FROM users LIMIT 1`);
    const r = await runLedgerVerification(pool());
    expect(r).toMatchObject({ mode: 'full', violations: [] });
    // The foreign marks are gone with it; the next pass is incremental again.
    expect((await t().db.query('SELECT count(*)::int AS n FROM ledger_changes WHERE xid >= pg_snapshot_xmax(pg_current_snapshot())')).rows[0].n).toBe(0);
    expect((await t().db.query('SELECT count(*)::int AS n FROM ledger_verify_checkpoints WHERE verified_below >= pg_snapshot_xmax(pg_current_snapshot())')).rows[0].n).toBe(0);
    expect((await runLedgerVerification(pool())).mode).toBe('incremental');
  });

  it('the nightly task alerts on a broken invariant: an error log line and rendio_ledger_violations', async () => {
    const g = await t().createGuest();
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => void (lines.push(String(chunk)), done()) });
    const metrics = new Metrics();
    const task = new LedgerVerificationTask(pool(), pino({ level: 'info' }, sink), metrics);
    expect((await task.run()).violations).toEqual([]);
    expect(await metrics.registry.metrics()).toMatch(/^rendio_ledger_violations 0$/m);

    await t().db.query('UPDATE credit_accounts SET balance = balance + 1 WHERE user_id = $1', [g.userId]);
    const r = await task.run();
    expect(r.violations.map((v) => v.check)).toEqual(['balance and held equal the sums of the ledger']);
    const text = await metrics.registry.metrics();
    expect(text).toMatch(/^rendio_ledger_violations 1$/m);
    expect(text).toMatch(/^rendio_ledger_verifications_total\{mode="incremental",outcome="violations"\} 1$/m);
    const errors = lines.map((l) => JSON.parse(l)).filter((l) => l.level === 50);
    expect(errors, lines.join('')).toHaveLength(1);
    expect(errors[0].msg).toContain('balance and held equal the sums of the ledger');
    expect(JSON.stringify(errors[0].violations)).toContain(g.userId);

    await t().db.query('UPDATE credit_accounts SET balance = balance - 1 WHERE user_id = $1', [g.userId]);
    expect((await task.run()).violations).toEqual([]);
    expect(await metrics.registry.metrics()).toMatch(/^rendio_ledger_violations 0$/m);
  });

  it('verify_ledger is a worker task that records a checkpoint', async () => {
    await t().createGuest();
    const before = (await t().db.query('SELECT count(*)::int AS n FROM ledger_verify_checkpoints')).rows[0].n as number;
    await t().startWorker();
    try {
      await enqueue(t().db, 'verify_ledger', {});
      await waitFor('the verify_ledger task to record a checkpoint', async () => (await t().db.query('SELECT count(*)::int AS n FROM ledger_verify_checkpoints')).rows[0].n > before, 30_000);
    } finally {
      await t().stopWorker();
    }
  });
});
