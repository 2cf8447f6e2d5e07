import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { useTestApp } from './harness.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '..');

async function verifyLedgerCli(databaseUrl: string): Promise<{ code: number; out: string }> {
  try {
    // The compiled script, as `npm run verify-ledger` runs it (dist/ is built by the global setup).
    const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, 'dist', 'scripts', 'verify-ledger.js')], {
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

  it('exits 0 when the invariants hold and 1 naming the broken one when they do not', async () => {
    const g = await t().createGuest();
    const ok = await verifyLedgerCli(t().dbUrl);
    expect(ok.code, ok.out).toBe(0);
    expect(ok.out).toMatch(/ledger OK/);

    await t().db.query('UPDATE credit_accounts SET balance = balance + 5 WHERE user_id = $1', [g.userId]);
    const bad = await verifyLedgerCli(t().dbUrl);
    expect(bad.code, bad.out).toBe(1);
    expect(bad.out).toContain('balance and held equal the sums of the ledger');
    expect(bad.out).toContain(g.userId);
    await t().db.query('UPDATE credit_accounts SET balance = balance - 5 WHERE user_id = $1', [g.userId]);
  });

  it('exits 2 when it cannot reach the database', async () => {
    const r = await verifyLedgerCli('postgres://postgres@127.0.0.1:1/none');
    expect(r.code).toBe(2);
  });
});
