import { randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, expect, inject } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import type { Runner } from 'graphile-worker';
import { createPool } from '../../src/db/pool.js';
import * as jobsDb from '../../src/db/queries/video-jobs.js';
import { createWorkerPool, startWorker } from '../../src/jobs/worker.js';
import type { ProviderAdapter, ProviderName } from '../../src/providers/types.js';
import { simulatorOutput } from '../../src/providers/simulator.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { createLogger, type Logger } from '../../src/logger.js';
import { buildServices, type Services } from '../../src/services.js';
import { createTestDatabase, dropTestDatabase, withDatabase } from './db.js';
import { deviceToken } from '../fakes/device-check.js';

/**
 * Builds the real app against its own fresh PostgreSQL database and offers the verbs tests read
 * like: createGuest(), get/post/patch with a user's token. Requests go in-process (app.request).
 */

export const TEST_JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

export interface Guest {
  userId: string;
  deviceId: string;
  accessToken: string;
  refreshToken: string;
  credits: number;
}

export interface RequestOptions {
  token?: string | null;
  /** The socket address the request arrives from (as @hono/node-server reports it); default 127.0.0.1. */
  remoteAddress?: string;
  headers?: Record<string, string>;
  body?: unknown;
  rawBody?: string;
}

export class TestApp {
  private worker: Runner | undefined;

  constructor(
    readonly app: App,
    readonly services: Services,
    readonly dbName: string,
    readonly dbUrl: string,
    /** False for a second instance on another app's database (it must not drop it). */
    private readonly ownsDatabase = true,
  ) {}

  get db() {
    return this.services.db;
  }

  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { ...opts.headers };
    if (opts.token) headers.authorization = `Bearer ${opts.token}`;
    if (this.services.config.anonKey && headers.apikey === undefined) headers.apikey = this.services.config.anonKey;
    let body: string | undefined = opts.rawBody;
    if (opts.body !== undefined) {
      body = JSON.stringify(opts.body);
      headers['content-type'] ??= 'application/json';
    }
    // What @hono/node-server hands the app as its env: the request's socket (getConnInfo reads it).
    const socket = { remoteAddress: opts.remoteAddress ?? '127.0.0.1', remotePort: 40000, remoteFamily: (opts.remoteAddress ?? '').includes(':') ? 'IPv6' : 'IPv4' };
    return this.app.request(path, { method, headers, body }, { incoming: { socket } });
  }

  get = (path: string, opts?: RequestOptions) => this.request('GET', path, opts);
  post = (path: string, opts?: RequestOptions) => this.request('POST', path, opts);
  patch = (path: string, opts?: RequestOptions) => this.request('PATCH', path, opts);

  /** POST/GET and parse JSON, failing with the body when the status is not the expected one. */
  async json<T = any>(res: Response | Promise<Response>, expectedStatus = 200): Promise<T> {
    const r = await res;
    const text = await r.text();
    expect(r.status, `HTTP ${r.status}: ${text}`).toBe(expectedStatus);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  async createGuest(deviceId: string = randomUUID().toUpperCase(), device = deviceId): Promise<Guest> {
    const body = await this.json(
      this.post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken(device) } }),
    );
    return {
      userId: body.user_id,
      deviceId,
      accessToken: body.access_token,
      refreshToken: body.refresh_token,
      credits: body.credits_remaining,
    };
  }

  /** Runs the real worker (graphile-worker) against this app's database, on its own pool as in main.ts. */
  async startWorker(): Promise<void> {
    this.worker ??= await startWorker({
      ...this.services.worker,
      pool: this.services.workerDb,
      listener: this.services.listener,
      concurrency: this.services.config.worker.concurrency,
      pollIntervalMs: 100,
      log: this.services.log,
    });
  }

  async stopWorker(): Promise<void> {
    await this.worker?.stop();
    this.worker = undefined;
  }

  /**
   * Completes a job deterministically, without the worker: the same service-layer steps the worker
   * would run, minus the waiting. submit() hands the job to the simulator (in-process, instant);
   * applyStatus() with the simulator's own 'succeeded' output is exactly what a poll would apply
   * (it marks the job ingesting); ingest() copies the simulator's video (of the paid shape) and captures the hold
   * in the completing transaction. Returns the job's status after (or 'missing').
   */
  async completeJobNow(jobId: string): Promise<string> {
    await this.services.jobs.submit(jobId);
    const row = await jobsDb.findJob(this.db, jobId);
    if (!row) return 'missing';
    await this.services.jobs.applyStatus(row, { state: 'succeeded', output: simulatorOutput(row.settings.duration, row.settings.aspect_ratio) });
    await this.services.jobs.ingest(jobId);
    return (await jobsDb.findJob(this.db, jobId))?.status ?? 'missing';
  }

  /** Waits until the job reaches one of the states (public API view), failing with its last state. */
  async waitForJob(token: string, jobId: string, states: string[] = ['completed', 'failed'], timeoutMs = 20_000): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: any;
    while (Date.now() < deadline) {
      last = await this.json(this.get(`/functions/v1/get-video-status?job_id=${jobId}`, { token }));
      if (states.includes(last.status)) return last;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`job ${jobId} did not reach ${states.join('|')}: ${JSON.stringify(last)}`);
  }

  async generate(guest: Guest, body: Record<string, unknown>, key: string = randomUUID().toUpperCase()): Promise<Response> {
    return this.post('/functions/v1/generate-video', { token: guest.accessToken, body, headers: { 'idempotency-key': key } });
  }

  /**
   * Runs a locking statement in an open transaction on a connection of its own, as another session
   * would, and keeps the locks until release(): how tests make a request wait at a known step.
   */
  async holdLocks(sql: string, values: unknown[] = []): Promise<{ release: () => Promise<void> }> {
    const client = new pg.Client({ connectionString: this.dbUrl });
    await client.connect();
    await client.query('BEGIN');
    await client.query(sql, values);
    return {
      release: async () => {
        await client.query('COMMIT');
        await client.end();
      },
    };
  }

  async assertLedgerInvariants(): Promise<void> {
    const violations = await verifyLedger(this.db);
    expect(violations, JSON.stringify(violations, null, 2)).toEqual([]);
  }

  async close(): Promise<void> {
    await this.stopWorker();
    this.services.events.close();
    this.services.catalogue.close();
    await this.services.listener.close();
    await this.services.push.close();
    await this.services.errorLog.drain();
    await this.services.rateLimits.close();
    await this.db.end();
    await this.services.lockDb.end();
    await this.services.workerDb.end();
    if (this.ownsDatabase) {
      await dropTestDatabase(inject('adminUrl'), this.dbName);
      // The local object store's files of this database (uploads, videos) go with it.
      rmSync(this.services.config.dataDir, { recursive: true, force: true });
    }
  }
}

export interface TestAppOptions {
  providers?: Partial<Record<ProviderName, ProviderAdapter>>;
  /** Another server instance on this app's database (two processes behind one load balancer). */
  sharing?: TestApp;
  /** The app's logger (default: TEST_LOG_LEVEL, silent); tests of the logs pass one writing to memory. */
  log?: Logger;
}

export async function createTestApp(env: Record<string, string | undefined> = {}, opts: TestAppOptions = {}): Promise<TestApp> {
  const adminUrl = inject('adminUrl');
  const dbName = opts.sharing?.dbName ?? (await createTestDatabase(adminUrl));
  const dbUrl = withDatabase(adminUrl, dbName);
  const config = loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_JWT_SECRET,
    DATABASE_URL: dbUrl,
    DATA_DIR: `${process.env.TMPDIR ?? '/tmp'}/rendio-test-data/${dbName}`,
    SIMULATOR_DELAY_MS: '300',
    DATABASE_POOL_MAX: '20',
    // Tests assert outcomes, not latency: a burst of requests queues for a connection instead of
    // answering 503 ERR_6001 when a loaded machine is slow (test/reliability/flood.test.ts sets its own).
    DATABASE_CONNECT_TIMEOUT_MS: '60000',
    WORKER_CONCURRENCY: '4',
    // Rate limits are off unless a test is about them (test/security/rate-limits.test.ts turns them on with
    // the production defaults): the other files send every request from one address.
    RATE_LIMITS_ENABLED: 'false',
    ...env,
  });
  const log = opts.log ?? createLogger(process.env.TEST_LOG_LEVEL ?? 'silent');
  const db = createPool(dbUrl, config.databasePoolMax, { connectionTimeoutMillis: config.databaseConnectTimeoutMs, preparedStatements: config.databasePreparedStatements });
  const workerDb = createWorkerPool(dbUrl, config.worker.databasePoolMax, log, config.databasePreparedStatements);
  const services = buildServices({ config, db, workerDb, log, providers: opts.providers, databaseUrl: dbUrl, directDatabaseUrl: config.databaseDirectUrl });
  return new TestApp(buildApp(services), services, dbName, dbUrl, !opts.sharing);
}

/**
 * One app for the whole file, with the ledger invariants checked after every test
 * (docs/reference/DESIGN.md §8). Returns a getter because the app exists only once beforeAll ran.
 */
export function useTestApp(
  env: Record<string, string | undefined> | (() => Record<string, string | undefined>) = {},
  opts: TestAppOptions | (() => TestAppOptions) = {},
): () => TestApp {
  let t: TestApp | undefined;
  beforeAll(async () => {
    t = await createTestApp(typeof env === 'function' ? env() : env, typeof opts === 'function' ? opts() : opts);
  });
  afterEach(async () => {
    await t?.assertLedgerInvariants();
  });
  afterAll(async () => {
    await t?.close();
  });
  return () => {
    if (!t) throw new Error('test app not ready (used outside a test?)');
    return t;
  };
}
