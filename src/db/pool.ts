import pg from 'pg';

/** Anything that can run a query: the pool, or a client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = any>(text: string, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/** A client that is inside a transaction opened by withTransaction. */
export interface Tx extends Queryable {
  readonly inTransaction: true;
}

// Timestamps leave the database as ISO-8601 strings with offset (what the app's decoder wants),
// bigint sums as numbers (credit amounts are far below 2^53).
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.NUMERIC, (v) => Number(v));
pg.types.setTypeParser(pg.types.builtins.TIMESTAMPTZ, timestamptzToIso);

const UTC_TIMESTAMP = /^(\d{4}-\d\d-\d\d) (\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\+00$/;

/**
 * PostgreSQL's text timestamptz as ISO-8601 with milliseconds and Z, as Date#toISOString writes it.
 * A server in UTC (the usual) sends +00, so the common case is a string rewrite (a tenth of the cost of a Date round
 * trip, once per timestamp of every row); any other offset or form goes through Date.
 */
export function timestamptzToIso(v: string): string {
  const m = UTC_TIMESTAMP.exec(v);
  if (!m) return new Date(v.replace(' ', 'T').replace(/([+-]\d\d)$/, '$1:00')).toISOString();
  return `${m[1]}T${m[2]}.${`${m[3] ?? ''}000`.slice(0, 3)}Z`;
}

export interface PoolOptions {
  /** How long connect() waits for a free or new connection before failing (pg's connectionTimeoutMillis). */
  connectionTimeoutMillis?: number;
  applicationName?: string;
  /**
   * When set, `await pool.connect()` retries a failure that means "database unavailable" (pool
   * timeout, refused, restarting) with backoff for up to this long instead of failing at once.
   * For the worker's pool: see PatientPool.
   */
  retryConnectForMs?: number;
  /** Told about each retried connect failure (a warning, so an outage is visible). */
  onConnectRetry?: (err: unknown, attempt: number) => void;
}

/**
 * A pool whose promise-form connect() waits out a database hiccup. The worker role needs it
 * because graphile-worker 0.17 calls its own connect() where nobody can handle a failure:
 *  - completeJob/failJob are not awaited (worker.js) and retry only SQLSTATE 40001/40P01/57P03 and
 *    EHOSTUNREACH/ETIMEDOUT, so a pool timeout there was an unhandled rejection (the crash);
 *  - the first task-identifier lookup is cached even when it rejects (taskIdentifiers.js), after
 *    which the runner fetches no job at all until the process restarts (the holds left open).
 * Waiting is harmless there: nothing waits on the worker but its own queue. The callback form
 * (pool.query) is unchanged, so a failing task still fails and is retried by the queue.
 */
class PatientPool extends pg.Pool {
  constructor(
    config: pg.PoolConfig,
    private readonly retryForMs: number,
    private readonly onRetry: PoolOptions['onConnectRetry'],
  ) {
    super(config);
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: any) => void) => void): void;
  override connect(
    callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: any) => void) => void,
  ): Promise<pg.PoolClient> | void {
    if (callback) return super.connect(callback);
    return this.connectPatiently();
  }

  private async connectPatiently(): Promise<pg.PoolClient> {
    const deadline = Date.now() + this.retryForMs;
    for (let attempt = 1; ; attempt++) {
      try {
        return await super.connect();
      } catch (err) {
        if (this.ending || !isDatabaseUnavailable(err) || Date.now() >= deadline) throw err;
        this.onRetry?.(err, attempt);
        const delay = Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2);
        await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      }
    }
  }
}

export function createPool(connectionString: string, max = 10, opts: PoolOptions = {}): pg.Pool {
  const config: pg.PoolConfig = {
    connectionString,
    max,
    // A request must fail fast with ERR_6001 when the database is gone (or the pool is exhausted), not hang.
    connectionTimeoutMillis: opts.connectionTimeoutMillis ?? 5000,
    idleTimeoutMillis: 30_000,
    application_name: opts.applicationName ?? 'rendio',
  };
  const pool = opts.retryConnectForMs ? new PatientPool(config, opts.retryConnectForMs, opts.onConnectRetry) : new pg.Pool(config);
  // A client losing its connection (idle in the pool, or checked out between queries) must not
  // crash the process with an unhandled 'error' event; the next query on it reports the failure.
  pool.on('error', () => undefined);
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

function isTx(db: Queryable): db is Tx {
  return (db as Partial<Tx>).inTransaction === true;
}

/**
 * Thrown inside a transaction that found the world changed under it in a way its locks cannot
 * cover (e.g. a row appeared that must be locked earlier in the lock order): start over.
 */
export class RetryTransaction extends Error {}

// deadlock_detected, serialization_failure: the transaction was rolled back whole, so running it
// again is safe. The lock order (docs/ARCHITECTURE.md) makes these rare; they must never be a 500.
const RETRYABLE_CODES = new Set(['40P01', '40001']);
const MAX_ATTEMPTS = 5;

function isRetryable(err: unknown): boolean {
  return err instanceof RetryTransaction || RETRYABLE_CODES.has((err as { code?: string } | null)?.code ?? '');
}

/**
 * Runs fn in a transaction. Joins the caller's transaction when db already is one, so a ledger
 * entry, the job row and the queue job commit together or not at all. A top-level transaction
 * that deadlocks (or throws RetryTransaction) is rolled back and run again, so fn must keep its
 * effects inside the database.
 */
export async function withTransaction<T>(db: Queryable, fn: (tx: Tx) => Promise<T>): Promise<T> {
  if (isTx(db)) return fn(db);
  for (let attempt = 1; ; attempt++) {
    try {
      return await runTransaction(db as pg.Pool, fn);
    } catch (err) {
      if (attempt >= MAX_ATTEMPTS || !isRetryable(err)) throw err;
      // Full jitter, so the two sides of a deadlock do not collide again in lockstep.
      await new Promise((r) => setTimeout(r, Math.random() * 20 * attempt));
    }
  }
}

async function runTransaction<T>(pool: pg.Pool, fn: (tx: Tx) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const tx = Object.assign(Object.create(null), {
    inTransaction: true as const,
    query: client.query.bind(client),
  }) as Tx;
  try {
    await client.query('BEGIN');
    const result = await fn(tx);
    await client.query('COMMIT');
    client.release();
    return result;
  } catch (err) {
    try {
      await client.query('ROLLBACK');
      client.release();
    } catch {
      // The connection is broken; destroy it instead of returning it to the pool.
      client.release(true);
    }
    throw err;
  }
}

const CONNECTION_ERROR_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'EPIPE']);

/** True when err means "the database is unreachable", as opposed to a bad query. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!err || typeof err !== 'object') return false;
  const e = err as { code?: string; message?: string };
  if (e.code && CONNECTION_ERROR_CODES.has(e.code)) return true;
  // 08xxx connection exceptions; 57P01-57P03 admin shutdown, crash shutdown, cannot connect now.
  if (e.code && (/^08/.test(e.code) || /^57P0[123]$/.test(e.code))) return true;
  const msg = e.message ?? '';
  return (
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED/i.test(
      msg,
    ) || (err instanceof AggregateError && err.errors.some(isDatabaseUnavailable))
  );
}
