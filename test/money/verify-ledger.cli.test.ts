import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { adminQuery, dropTestDatabase, runPrefix, withDatabase } from '../support/db.js';
import { useTestApp } from '../support/harness.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');

/** `npm run verify-ledger [-- --full]`, exactly as the docs name it. */
async function verifyLedgerCli(databaseUrl: string, ...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await run('npm', ['run', '--silent', 'verify-ledger', ...(args.length ? ['--', ...args] : [])], {
      cwd: ROOT,
      env: { ...process.env, DATABASE_URL: databaseUrl },
    });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

describe('npm run verify-ledger', () => {
  const t = useTestApp();

  it('exits 0 when the invariants hold and 1 naming the broken one when they do not, incrementally and in full', async () => {
    const g = await t().createGuest();
    const full = await verifyLedgerCli(t().dbUrl, '--full');
    expect(full.code, full.out).toBe(0);
    expect(full.out).toMatch(/ledger OK \(full pass/);

    // Only what changed since that pass: the new guest's account.
    const g2 = await t().createGuest();
    const incremental = await verifyLedgerCli(t().dbUrl);
    expect(incremental.code, incremental.out).toBe(0);
    expect(incremental.out).toMatch(/ledger OK \(incremental, \d+ accounts changed since the last checkpoint/);

    await t().db.query('UPDATE credit_accounts SET balance = balance + 5 WHERE user_id = $1', [g.userId]);
    for (const args of [[], [], ['--full']]) {
      // Twice incrementally: a failed pass records no checkpoint, so the next one still sees it.
      const bad = await verifyLedgerCli(t().dbUrl, ...args);
      expect(bad.code, bad.out).toBe(1);
      expect(bad.out).toContain('balance and held equal the sums of the ledger');
      expect(bad.out).toContain(g.userId);
      expect(bad.out).not.toContain(g2.userId);
    }
    await t().db.query('UPDATE credit_accounts SET balance = balance - 5 WHERE user_id = $1', [g.userId]);
    const fixed = await verifyLedgerCli(t().dbUrl);
    expect(fixed.code, fixed.out).toBe(0);
    expect(fixed.out).toMatch(/ledger OK \(incremental/);
  });

  it('exits 2 when it cannot reach the database', async () => {
    const r = await verifyLedgerCli('postgres://postgres@127.0.0.1:1/none');
    expect(r.code, r.out).toBe(2);
    expect(r.out).toMatch(/could not verify the ledger/);
  });

  it('exits 2 and says to migrate on a database without the schema', async () => {
    const adminUrl = inject('adminUrl');
    const name = `${runPrefix(inject('runId'))}unmigrated_${Date.now().toString(36)}`;
    await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
    try {
      const r = await verifyLedgerCli(withDatabase(adminUrl, name));
      expect(r.code, r.out).toBe(2);
      expect(r.out).toMatch(/is the database migrated\? run: npm run migrate/);
    } finally {
      await dropTestDatabase(adminUrl, name);
    }
  });
});
