import { z } from 'zod';
import type { ReportIssue } from './env.js';

/** Without DATABASE_URL the server runs its embedded PostgreSQL under DATA_DIR. */
export const databaseEnv = z.object({
  DATABASE_URL: z.string().url().optional(),
  /**
   * A direct (session) connection to the same database, for what a transaction pooler cannot
   * carry: LISTEN and the migrations. Default DATABASE_URL.
   */
  DATABASE_DIRECT_URL: z.string().url().optional(),
  /** Connections of the API's pool (the worker has its own: WORKER_DATABASE_POOL_MAX). */
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /** How long an API request waits for a pooled connection before answering 503 ERR_6001. */
  DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(5000),
  /**
   * How long an API statement may take, waiting at a starved pooler included, before the request
   * answers 503 ERR_6001 and the connection is dropped (0: no limit).
   */
  DATABASE_QUERY_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(15_000),
  /**
   * Named (prepared) statements for the hot reads (src/db/pool.ts preparedStatement): parsed and
   * planned once per connection. auto: on unless DATABASE_DIRECT_URL differs from DATABASE_URL (a
   * transaction pooler may hand the next EXECUTE to another server connection); on: through a
   * pooler that keeps them (PgBouncer 1.21+ with max_prepared_statements); off.
   */
  DATABASE_PREPARED_STATEMENTS: z.enum(['auto', 'on', 'off']).default('auto'),
  /**
   * Open video-events streams re-read their job this often when no NOTIFY came, and every live
   * subscriber (SSE, Realtime) does so while the LISTEN connection is down; 0: NOTIFY only.
   */
  EVENTS_REREAD_MS: z.coerce.number().int().min(0).max(600_000).default(15_000),
});
type DatabaseEnv = z.infer<typeof databaseEnv>;

export interface DatabaseSection {
  databaseUrl: string | undefined;
  /** For LISTEN and migrations (a session); DATABASE_URL may be a transaction pooler. */
  databaseDirectUrl: string | undefined;
  /** The API's pool: size, and how long a request waits for a connection / a statement (then 503 ERR_6001). */
  databasePoolMax: number;
  databaseConnectTimeoutMs: number;
  databaseQueryTimeoutMs: number;
  /** Whether the app's pools keep statements named (DATABASE_PREPARED_STATEMENTS resolved). */
  databasePreparedStatements: boolean;
  /** Fallback re-read of live subscriptions when no NOTIFY came (0: off). */
  eventsRereadMs: number;
}

export function databaseSection(e: DatabaseEnv, report: ReportIssue): DatabaseSection {
  if (e.DATABASE_DIRECT_URL && !e.DATABASE_URL) report('DATABASE_DIRECT_URL', 'is the direct twin of DATABASE_URL: set DATABASE_URL too');
  return {
    databaseUrl: e.DATABASE_URL,
    databaseDirectUrl: e.DATABASE_DIRECT_URL ?? e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    databaseQueryTimeoutMs: e.DATABASE_QUERY_TIMEOUT_MS,
    databasePreparedStatements:
      e.DATABASE_PREPARED_STATEMENTS === 'auto' ? !e.DATABASE_DIRECT_URL || e.DATABASE_DIRECT_URL === e.DATABASE_URL : e.DATABASE_PREPARED_STATEMENTS === 'on',
    eventsRereadMs: e.EVENTS_REREAD_MS,
  };
}
