import type pg from 'pg';
import { expect } from 'vitest';
import { INVARIANT_CHECK_NAMES, checkLedger, verifyLedger, type Violation } from '../../src/ledger/verify.js';
import type { TestApp } from './harness.js';

/**
 * How the verify-ledger tests break a correct state: in a transaction that is rolled back, so the
 * tests of a file share one app and each starts from a state where every invariant holds.
 */
export function ledgerBreaking(app: () => TestApp) {
  /**
   * Runs the break in a transaction, returns what verifyLedger sees inside it, and rolls back. The
   * incremental pass (only what changed since the break began, migration 0019's marks) must see
   * exactly what the full pass sees, from the changed accounts alone.
   */
  async function whenBroken(breakIt: (c: pg.PoolClient) => Promise<void>): Promise<Violation[]> {
    const c = await (app().db as pg.Pool).connect();
    try {
      await c.query('BEGIN');
      // Changes from this transaction on (its own id): exactly the break's.
      const since = (await c.query('SELECT pg_current_xact_id()::text AS xid')).rows[0].xid as string;
      await breakIt(c);
      const full = await verifyLedger(c);
      const incremental = await checkLedger(c, { changedSince: since });
      expect(sameViolations(incremental.violations), 'the incremental pass sees what the full pass sees').toEqual(sameViolations(full));
      const accounts = (await c.query('SELECT count(*)::int AS n FROM credit_accounts')).rows[0].n;
      expect(incremental.accountsChecked).toBeLessThan(accounts);
      return full;
    } finally {
      await c.query('ROLLBACK');
      c.release();
    }
  }

  /** Exactly one check reports, and one of its rows names every given id (as one of its values). */
  function expectOnly(violations: Violation[], check: string, ...ids: string[]): void {
    // What was reported first: a check that does not exist (yet) reports nothing.
    expect(violations.map((v) => v.check), JSON.stringify(violations, null, 2)).toEqual([check]);
    expect(INVARIANT_CHECK_NAMES).toContain(check);
    const rows = violations[0]!.rows;
    const named = rows.filter((r) => ids.every((id) => Object.values(r).some((v) => v !== null && String(v) === id)));
    expect(named, `a row of "${check}" names ${ids.join(', ')}: ${JSON.stringify(rows)}`).not.toEqual([]);
  }

  async function expectClean(): Promise<void> {
    const violations = await verifyLedger(app().db);
    expect(violations, JSON.stringify(violations, null, 2)).toEqual([]);
  }

  return { whenBroken, expectOnly, expectClean };
}

/** Violations in a comparable form: each check with its rows, in a fixed order. */
function sameViolations(violations: Violation[]): Array<{ check: string; rows: string[] }> {
  return violations.map((v) => ({ check: v.check, rows: v.rows.map((r) => JSON.stringify(r)).sort() }));
}
