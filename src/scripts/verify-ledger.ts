import pg from 'pg';
import { verifyLedger, INVARIANT_CHECK_NAMES } from '../ledger/verify.js';
import { scriptDatabase } from './database-url.js';

/**
 * `npm run verify-ledger`: checks the money invariants (DESIGN §4) on any database.
 * Exit 0 when they hold, 1 with the offending rows when one does not, 2 when it could not check.
 */
const { url, embedded } = await scriptDatabase();
const client = new pg.Client({ connectionString: url });
let exitCode = 2;
try {
  await client.connect();
  // One snapshot for every check, so a busy database cannot show a half-finished operation.
  await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  const violations = await verifyLedger(client);
  await client.query('COMMIT');
  if (violations.length === 0) {
    console.log(`ledger OK: ${INVARIANT_CHECK_NAMES.length} invariants hold`);
    for (const name of INVARIANT_CHECK_NAMES) console.log(`  ✓ ${name}`);
    exitCode = 0;
  } else {
    console.error(`ledger VIOLATIONS (${violations.length}):`);
    for (const v of violations) console.error(`  ✗ ${v.check}\n${JSON.stringify(v.rows, null, 2)}`);
    exitCode = 1;
  }
} catch (err) {
  console.error('could not verify the ledger:', (err as Error).message);
} finally {
  await client.end().catch(() => undefined);
  await embedded?.stop();
}
process.exit(exitCode);
