import { loadConfig } from '../config.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../db/embedded.js';
import { createLogger } from '../logger.js';
import { loadDotEnv } from '../runtime.js';

/** For CLI scripts: DATABASE_URL, or the embedded database under DATA_DIR (joining a running server's). */
export async function scriptDatabase(): Promise<{ url: string; embedded?: EmbeddedDatabase }> {
  loadDotEnv();
  const config = loadConfig();
  if (config.databaseUrl) return { url: config.databaseUrl };
  const embedded = await startEmbeddedDatabase(config.dataDir, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel), {
    attach: true,
  });
  return { url: embedded.url, embedded };
}
