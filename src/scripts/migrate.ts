import { migrate } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { StartupError, checkDatabase } from '../runtime.js';
import { scriptDatabase } from './database-url.js';

/** `npm run migrate`: applies pending migrations (the server also does this at start). */
const { url, setting, embedded } = await scriptDatabase({ direct: true });
try {
  if (!embedded) await checkDatabase(url, setting); // a wrong URL: one line naming it, exit 1
  const { applied } = await migrate(url, createLogger('info'));
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'nothing to apply: the schema is up to date');
} catch (err) {
  if (!(err instanceof StartupError)) throw err;
  console.error(err.message);
  process.exitCode = 1;
} finally {
  await embedded?.stop();
}
