import pg from 'pg';

/** Anything that can run a query: the pool, or a client inside a transaction. */
export interface Queryable {
  query<R extends pg.QueryResultRow = any>(text: string | pg.QueryConfig, values?: unknown[]): Promise<pg.QueryResult<R>>;
}

/**
 * A hot statement, prepared once per connection: parsed and planned on its first use there, then
 * only bound and executed (the status poll's read cost PostgreSQL about a fifth as much so). The
 * text under a name never changes, and selects no `*` whose columns a migration could change under
 * a cached plan. Where DATABASE_PREPARED_STATEMENTS is off (a transaction pooler that does not keep
 * them), the pool runs it unnamed.
 */
export function preparedStatement(name: string, text: string): (values: unknown[]) => pg.QueryConfig {
  return (values) => ({ name, text, values });
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
  /**
   * How long one statement may take before it fails with "Query read timeout" (pg's query_timeout;
   * isDatabaseUnavailable: a 503). Behind a transaction pooler connecting succeeds at once and a
   * starved pool makes the first statement wait instead, so this is the bound that answers then.
   */
  queryTimeoutMs?: number;
  applicationName?: string;
  /**
   * When set, `await pool.connect()` retries a failure that means "database unavailable" (pool
   * timeout, refused, restarting) with backoff for up to this long instead of failing at once.
   * For the worker's pool: see PatientPool.
   */
  retryConnectForMs?: number;
  /**
   * Whether named statements stay named (preparedStatement). Off by default: a named statement
   * lives on one server connection, and behind a transaction pooler the next EXECUTE may land on
   * another ("prepared statement … does not exist"). DATABASE_PREPARED_STATEMENTS decides for the app's pools.
   */
  preparedStatements?: boolean;
  /** Told once when a named statement met a connection that had not prepared it (names are then off). */
  onPreparedStatementsLost?: (err: unknown) => void;
  /** Told about each retried connect failure (a warning, so an outage is visible). */
  onConnectRetry?: (err: unknown, attempt: number) => void;
  /**
   * With retryConnectForMs: statements (outside a transaction, on clients from the promise-form
   * connect()) that this accepts are re-run on a fresh connection, for as long, when theirs died
   * under them. Only for statements that are safe to run twice. See PatientPool.
   */
  retryStatement?: (text: string) => boolean;
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
 *
 * A connection can also die under a statement (a database restart answers 57P01 or resets it).
 * When that statement is one of graphile-worker's job completions, nobody catches it and the
 * process dies. retryStatement names such statements; they are re-run on a fresh
 * connection of their own (not from this pool: every pooled client may be in the same state, and
 * waiting for one of them could deadlock), never inside a transaction.
 */
const RETRYING = Symbol('rendio.retryingQuery');

class PatientPool extends pg.Pool {
  constructor(
    private readonly clientConfig: pg.PoolConfig,
    private readonly retryForMs: number,
    private readonly onRetry: PoolOptions['onConnectRetry'],
    private readonly retryStatement: PoolOptions['retryStatement'],
  ) {
    super(clientConfig);
  }

  override connect(): Promise<pg.PoolClient>;
  override connect(callback: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: any) => void) => void): void;
  override connect(
    callback?: (err: Error | undefined, client: pg.PoolClient | undefined, done: (release?: any) => void) => void,
  ): Promise<pg.PoolClient> | void {
    if (callback) return super.connect(callback);
    return this.connectPatiently().then((client) => (this.retryStatement ? this.withStatementRetry(client) : client));
  }

  private withStatementRetry(client: pg.PoolClient): pg.PoolClient {
    const c = client as pg.PoolClient & { [RETRYING]?: true };
    if (c[RETRYING]) return client;
    c[RETRYING] = true;
    const original = client.query.bind(client) as (...args: unknown[]) => Promise<pg.QueryResult>;
    let inTransaction = false;
    (client as { query: unknown }).query = (...args: unknown[]) => {
      const first = args[0] as string | { text?: string } | undefined;
      const text = typeof first === 'string' ? first : (first?.text ?? '');
      if (typeof args.at(-1) === 'function') return original(...args); // callback form: as is
      const wasInTransaction = inTransaction;
      if (/^\s*(begin|start\s+transaction)\b/i.test(text)) inTransaction = true;
      else if (/^\s*(commit|rollback|end|abort)\b/i.test(text)) inTransaction = false;
      return original(...args).catch((err: unknown) => {
        if (wasInTransaction || !isDatabaseUnavailable(err) || !this.retryStatement!(text)) throw err;
        this.onRetry?.(err, 0);
        return this.runOnFreshConnection(args);
      });
    };
    return client;
  }

  private async runOnFreshConnection(args: unknown[]): Promise<pg.QueryResult> {
    const deadline = Date.now() + this.retryForMs;
    for (let attempt = 1; ; attempt++) {
      const client = new pg.Client({ ...this.clientConfig, application_name: `${this.clientConfig.application_name ?? 'rendio'}-retry` });
      client.on('error', () => undefined);
      try {
        await client.connect();
        return await (client.query as (...a: unknown[]) => Promise<pg.QueryResult>)(...args);
      } catch (err) {
        if (this.ending || !isDatabaseUnavailable(err) || Date.now() >= deadline) throw err;
        this.onRetry?.(err, attempt);
        await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2)));
      } finally {
        await client.end().catch(() => undefined);
      }
    }
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
    ...(opts.queryTimeoutMs ? { query_timeout: opts.queryTimeoutMs } : {}),
  };
  const pool = opts.retryConnectForMs
    ? new PatientPool(config, opts.retryConnectForMs, opts.onConnectRetry, opts.retryStatement)
    : new pg.Pool(config);
  // A client losing its connection (idle in the pool, or checked out between queries) must not
  // crash the process with an unhandled 'error' event; the next query on it reports the failure.
  pool.on('error', () => undefined);
  const names = { kept: opts.preparedStatements === true };
  pool.on('connect', (client) => {
    client.on('error', () => undefined);
    nameStatementsWhileKept(client, names, opts.onPreparedStatementsLost);
  });
  return pool;
}

/**
 * A named statement's SQLSTATE when the server connection it meets is not the one that prepared it:
 * 26000 (it does not exist there) or 42P05 (another client prepared that name there). A transaction
 * pooler that does not keep prepared statements does this, e.g. DATABASE_URL pointing at one
 * without DATABASE_DIRECT_URL set, which DATABASE_PREPARED_STATEMENTS=auto cannot tell apart from a
 * direct connection.
 */
const LOST_PREPARED_STATEMENT = new Set(['26000', '42P05']);

/**
 * Statements on this client keep their names while `names.kept`, and run unnamed otherwise. On the
 * client, not the pool, so that statements in a transaction (withTransaction) are covered too (the
 * rate limiter's PostgreSQL store names its statements as well). The first named statement that
 * meets a connection that did not prepare it turns names off for the whole pool and is run again
 * unnamed: a misplaced pooler costs one warning, not an outage. (Inside a transaction the retry meets
 * the aborted transaction and fails as the statement did.)
 */
function nameStatementsWhileKept(client: pg.PoolClient, names: { kept: boolean }, onLost?: (err: unknown) => void): void {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  const unnamed = (config: pg.QueryConfig) => ({ ...config, name: undefined });
  (client as { query: unknown }).query = (config: unknown, ...rest: unknown[]) => {
    if (!isNamedConfig(config)) return query(config, ...rest);
    if (!names.kept) return query(unnamed(config), ...rest);
    const lost = (err: unknown) => {
      if (!LOST_PREPARED_STATEMENT.has((err as { code?: string } | null)?.code ?? '')) return false;
      if (names.kept) onLost?.(err);
      names.kept = false;
      return true;
    };
    // pg-pool's pool.query passes a callback; everything else takes the promise.
    const callback = rest.at(-1);
    if (typeof callback === 'function') {
      const args = rest.slice(0, -1);
      return query(config, ...args, (err: unknown, result: unknown) => (err && lost(err) ? query(unnamed(config), ...args, callback) : callback(err, result)));
    }
    return (query(config, ...rest) as Promise<unknown>).catch((err: unknown) => {
      if (lost(err)) return query(unnamed(config), ...rest);
      throw err;
    });
  };
}

/** A plain { name, text, values } object (not a Submittable such as a cursor, which must stay itself). */
const isNamedConfig = (config: unknown): config is pg.QueryConfig =>
  config !== null && typeof config === 'object' && 'name' in config && typeof (config as { submit?: unknown }).submit !== 'function';

/** pg's query_timeout fired: the statement may still run on the server, so its connection is not reused. */
export function isQueryTimeout(err: unknown): boolean {
  return err instanceof Error && err.message === 'Query read timeout';
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
    if (isQueryTimeout(err)) {
      client.release(true); // busy with the timed-out statement: a ROLLBACK would wait behind it
      throw err;
    }
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
    /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED|^Query read timeout$/i.test(
      msg,
    ) || (err instanceof AggregateError && err.errors.some(isDatabaseUnavailable))
  );
}

/**
 * Runs fn again (backoff up to 5 s) while it fails because the database is unavailable, for up to
 * patienceMs: a process starting while the database restarts waits for it instead of exiting.
 */
export async function whenDatabaseAvailable<T>(fn: () => Promise<T>, patienceMs: number, onRetry?: (err: unknown, attempt: number) => void): Promise<T> {
  const deadline = Date.now() + patienceMs;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!isDatabaseUnavailable(err) || Date.now() >= deadline) throw err;
      onRetry?.(err, attempt);
      await new Promise((r) => setTimeout(r, Math.min(5000, 100 * 2 ** Math.min(attempt, 6)) * (0.5 + Math.random() / 2)));
    }
  }
}
