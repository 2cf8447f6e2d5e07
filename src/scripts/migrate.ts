import { migrate } from '../db/migrate.js';
import { createLogger } from '../logger.js';
import { scriptDatabase } from './database-url.js';

/** `npm run migrate`: applies pending migrations (the server also does this at start). */
const { url, embedded } = await scriptDatabase();
try {
  const { applied } = await migrate(url, createLogger('info'));
  console.log(applied.length ? `applied: ${applied.join(', ')}` : 'nothing to apply: the schema is up to date');
} finally {
  await embedded?.stop();
}
