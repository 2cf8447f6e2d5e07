import { parseArgs } from 'node:util';
import pg from 'pg';
import { INVARIANT_CHECK_NAMES, runLedgerVerification } from '../ledger/verify.js';
import { scriptDatabase } from './database-url.js';

/**
 * `npm run verify-ledger [-- --full]`: checks the money invariants (docs/reference/DESIGN.md §4) on any database —
 * what changed since the last verified checkpoint (a full pass when there is none yet), or with
 * `--full` every row — and records a new checkpoint when they hold.
 * Exit 0 when they hold, 1 with the offending rows when one does not, 2 when it could not check.
 */
const { values: args } = parseArgs({ options: { full: { type: 'boolean', default: false } } });
const { url, embedded } = await scriptDatabase();
const pool = new pg.Pool({ connectionString: url, max: 1 });
let exitCode = 2;
try {
  const started = Date.now();
  const r = await runLedgerVerification(pool, { full: args.full });
  const what =
    r.mode === 'full'
      ? `full pass, ${r.accountsChecked} accounts`
      : `incremental, ${r.accountsChecked} accounts changed since the last checkpoint`;
  if (r.violations.length === 0) {
    console.log(`ledger OK (${what}, ${Date.now() - started} ms): ${INVARIANT_CHECK_NAMES.length} invariants hold`);
    for (const name of INVARIANT_CHECK_NAMES) console.log(`  ✓ ${name}`);
    exitCode = 0;
  } else {
    console.error(`ledger VIOLATIONS (${r.violations.length}, ${what}):`);
    for (const v of r.violations) console.error(`  ✗ ${v.check}\n${JSON.stringify(v.rows, null, 2)}`);
    exitCode = 1;
  }
} catch (err) {
  // 42P01 undefined_table: a database the server never started on (an empty ./data, say).
  const hint = (err as { code?: string }).code === '42P01' ? ' (is the database migrated? run: npm run migrate)' : '';
  console.error(`could not verify the ledger: ${(err as Error).message}${hint}`);
} finally {
  await pool.end().catch(() => undefined);
  await embedded?.stop();
}
process.exit(exitCode);
