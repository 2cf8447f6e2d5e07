import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { loadConfig } from '../config/index.js';
import { migrate } from '../db/migrate.js';
import { StorageExport, SupabaseStorageS3Source, type FileSource } from '../import/files.js';
import { Progress } from '../import/progress.js';
import { formatReport, importFromSupabase } from '../import/supabase.js';
import { INVARIANT_CHECK_NAMES, runLedgerVerification } from '../ledger/verify.js';
import { objectStoreFor } from '../storage/store.js';
import { scriptDatabase } from './database-url.js';

/**
 * `npm run import:supabase -- --from <postgres URL> [--storage <dir> | s3] [--dry-run] [--batch-size N]`:
 * moves the app's former Supabase backend onto this server's database (DATABASE_URL, or the
 * embedded one) and object store (STORAGE_BACKEND), ids kept (docs/DEPLOY.md "Moving from Supabase").
 * Exit 0 when every total agrees and verify-ledger passes; 1 when one does not; 2 when it could not run.
 */
const USAGE = 'usage: npm run import:supabase -- --from <postgres URL of the old database> [--storage <directory of its storage export> | s3] [--dry-run] [--batch-size N]';
function parsedArgs() {
  try {
    return parseArgs({
      options: {
        from: { type: 'string' },
        storage: { type: 'string' },
        'dry-run': { type: 'boolean', default: false },
        'batch-size': { type: 'string', default: '1000' },
      },
    }).values;
  } catch (err) {
    console.error(`${(err as Error).message}\n${USAGE}`);
    process.exit(2);
  }
}
const args = parsedArgs();
const batchSize = Number(args['batch-size']);
if (!args.from || !Number.isInteger(batchSize) || batchSize < 1 || batchSize > 50_000) {
  console.error(USAGE);
  process.exit(2);
}
const config = loadConfig();
let files: FileSource | undefined;
if (args.storage === 's3') {
  const s3 = config.supabaseStorageS3;
  if ('missing' in s3) {
    console.error(`--storage s3 reads the former project's Storage S3 endpoint: set ${s3.missing.join(', ')}`);
    process.exit(2);
  }
  files = new SupabaseStorageS3Source(s3);
} else if (args.storage !== undefined) {
  if (!statSync(args.storage, { throwIfNoEntry: false })?.isDirectory()) {
    console.error(`--storage ${args.storage}: not a directory (give the directory of the storage export, holding videos/ and thumbnails/, or s3)`);
    process.exit(2);
  }
  files = new StorageExport(args.storage);
}

const { url, embedded } = await scriptDatabase();
const from = new pg.Pool({ connectionString: args.from, max: 2, application_name: 'rendio-import-source' });
const to = new pg.Pool({ connectionString: url, max: 4, application_name: 'rendio-import' });
let exitCode = 2;
try {
  await migrate(url);
  const report = await importFromSupabase({
    from,
    to,
    store: objectStoreFor(config),
    files,
    dryRun: args['dry-run'],
    batchSize,
    products: config.products,
    progress: new Progress(),
  });
  console.log(formatReport(report));
  exitCode = report.checks.every((c) => c.ok) ? 0 : 1;
  if (!report.dryRun) {
    const v = await runLedgerVerification(to);
    if (v.violations.length === 0) console.log(`ledger OK (${v.mode}): ${INVARIANT_CHECK_NAMES.length} invariants hold`);
    else {
      console.error(`ledger VIOLATIONS after the import:`);
      for (const x of v.violations) console.error(`  ✗ ${x.check}\n${JSON.stringify(x.rows.slice(0, 20), null, 2)}`);
      exitCode = 1;
    }
  }
} catch (err) {
  console.error(`could not import: ${(err as Error).message}`);
} finally {
  await from.end().catch(() => undefined);
  await to.end().catch(() => undefined);
  await embedded?.stop();
}
process.exit(exitCode);
