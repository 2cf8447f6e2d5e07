import { loadConfig } from '../config/index.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../db/embedded.js';
import { createLogger } from '../logger.js';
import { loadDotEnv } from '../runtime.js';

/**
 * For CLI scripts: DATABASE_URL (DATABASE_DIRECT_URL with `direct`, for what needs a session), or
 * the embedded database under DATA_DIR (joining a running server's).
 */
export async function scriptDatabase(opts: { direct?: boolean } = {}): Promise<{ url: string; setting?: string; embedded?: EmbeddedDatabase }> {
  loadDotEnv();
  const config = loadConfig();
  if (opts.direct && config.databaseDirectUrl) return { url: config.databaseDirectUrl, setting: process.env.DATABASE_DIRECT_URL ? 'DATABASE_DIRECT_URL' : 'DATABASE_URL' };
  if (config.databaseUrl) return { url: config.databaseUrl, setting: 'DATABASE_URL' };
  const embedded = await startEmbeddedDatabase(config.dataDir, createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel), {
    attach: true,
  });
  return { url: embedded.url, embedded };
}
