import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { hashPassword } from '../../src/admin/passwords.js';
import { insertAdmin } from '../../src/admin/queries/admins.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { adminQuery, dropTestDatabase, runPrefix, withDatabase } from '../support/db.js';
import { deviceToken } from '../fakes/device-check.js';
import { startPgBouncer, type PgBouncer } from '../support/pgbouncer.js';
import { freePort, startProcess, startServer, waitFor, type ServerProcess } from '../support/process.js';

/**
 * Scale-out as managed PostgreSQL runs it: two API instances and a worker, every pooled connection
 * through PgBouncer in transaction mode, LISTEN and migrations on DATABASE_DIRECT_URL. Named
 * prepared statements, session advisory locks and a LISTEN through the pooler each broke this
 * (a crash-looping worker, a start that hung, live updates that never came); here every job ends,
 * every live update comes through NOTIFY (the fallback re-reads are off) and the ledger holds.
 */

const ANON_KEY = 'pooler-test-anon-key';
const METRICS_TOKEN = 'pooler-test-metrics-token-0123456789';
const POOL_SIZE = 6;

describe('behind a transaction pooler (PgBouncer, pool_mode=transaction)', () => {
  const adminUrl = inject('adminUrl');
  let dbName: string;
  let directUrl: string;
  let bouncer: PgBouncer;
  let direct: pg.Pool;
  const procs: ServerProcess[] = [];
  const ports: number[] = [];
  const sockets: WebSocket[] = [];
  const base = (i: number) => `http://127.0.0.1:${ports[i]}`;

  beforeAll(async () => {
    // An empty database: the three processes migrate it together as they start.
    dbName = `${runPrefix(inject('runId'))}pooler_${Date.now().toString(36)}`;
    await adminQuery(adminUrl, `CREATE DATABASE ${dbName}`);
    directUrl = withDatabase(adminUrl, dbName);
    const upstream = new URL(adminUrl);
    bouncer = await startPgBouncer({ host: upstream.hostname, port: Number(upstream.port || 5432) }, { poolSize: POOL_SIZE });
    direct = new pg.Pool({ connectionString: directUrl, max: 2 });
    const env = {
      DATABASE_URL: bouncer.url(directUrl),
      DATABASE_DIRECT_URL: directUrl,
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
      JWT_SECRET: 'pooler-test-secret-that-is-long-enough-0123456789',
      ANON_KEY,
      METRICS_TOKEN,
      DATA_DIR: path.join(os.tmpdir(), `rendio-pooler-${randomUUID()}`),
      LOG_LEVEL: 'warn',
      // NOTIFY only: a live update that comes at all came through the LISTEN connection.
      EVENTS_REREAD_MS: '0',
      SIMULATOR_DELAY_MS: '3000',
      WORKER_POLL_INTERVAL_MS: '1000',
      RATE_LIMITS_ENABLED: 'false',
      // Per process more than the pooler's POOL_SIZE server connections: they share them.
      DATABASE_POOL_MAX: '10',
      DATABASE_QUERY_TIMEOUT_MS: '3000',
    };
    for (let i = 0; i < 2; i++) ports.push(await freePort());
    procs.push(startServer({ ...env, ROLE: 'api', PORT: String(ports[0]) }));
    procs.push(startServer({ ...env, ROLE: 'api', PORT: String(ports[1]) }));
    procs.push(startServer({ ...env, ROLE: 'worker' }));
    for (let i = 0; i < 2; i++) {
      await waitFor(`API ${i}`, async () => (await fetch(`${base(i)}/ready`).catch(() => undefined))?.status === 200, 120_000, () => procs[i]!.output());
    }
    await waitFor('the worker', async () => (await direct.query('SELECT 1 FROM worker_heartbeats').catch(() => ({ rowCount: 0 }))).rowCount! > 0, 120_000, () => procs[2]!.output());
  }, 240_000);

  afterAll(async () => {
    for (const s of sockets) s.terminate();
    for (const p of procs) p.proc.kill('SIGTERM');
    await Promise.all(procs.map((p) => p.exited));
    await direct?.end();
    await bouncer?.stop();
    if (dbName) await dropTestDatabase(adminUrl, dbName);
  }, 60_000);

  const call = async (i: number, method: string, p: string, opts: { token?: string; body?: unknown; headers?: Record<string, string> } = {}) => {
    const res = await fetch(`${base(i)}${p}`, {
      method,
      headers: {
        apikey: ANON_KEY,
        ...(opts.body !== undefined ? { 'content-type': 'application/json' } : {}),
        ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}),
        ...opts.headers,
      },
      body: opts.body !== undefined ? JSON.stringify(opts.body) : undefined,
    });
    return res;
  };
  const ok = async (res: Promise<Response>) => {
    const r = await res;
    if (r.status !== 200) throw new Error(`${r.url} answered ${r.status}: ${await r.text()}`);
    return (await r.json()) as any;
  };
  const onboard = (i: number) => ok(call(i, 'POST', '/functions/v1/device-check', { body: { device_id: randomUUID(), device_token: deviceToken('pooler') } }));

  it('every process migrated, started and LISTENs on its one direct connection; none through the pooler', async () => {
    const { rows } = await direct.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = 'rendio-listen' AND datname = current_database()");
    expect(rows[0].n).toBe(3);
    for (let i = 0; i < 2; i++) {
      const metrics = await (await call(i, 'GET', '/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
      expect(metrics).toMatch(/^rendio_db_listen_connected 1$/m);
    }
    for (const p of procs) expect(p.output()).not.toMatch(/heard no NOTIFY|prepared statement|"level":(50|60)/);
    const { rows: migrations } = await direct.query('SELECT count(*)::int AS n FROM schema_migrations');
    expect(migrations[0].n).toBeGreaterThan(10);
  });

  it('generate with one Idempotency-Key on two instances, live updates through NOTIFY on both transports, status, deletion', async () => {
    const guest = await onboard(0);
    const key = randomUUID();
    const body = { model_id: 'simulator-text-to-video', prompt: 'through the pooler' };
    const first = await call(0, 'POST', '/functions/v1/generate-video', { token: guest.access_token, body, headers: { 'idempotency-key': key } });
    expect(first.status).toBe(200);
    const job = (await first.json()) as { job_id: string };
    const replay = await call(1, 'POST', '/functions/v1/generate-video', { token: guest.access_token, body, headers: { 'idempotency-key': key } });
    expect(replay.status).toBe(200);
    expect(replay.headers.get('x-idempotent-replay')).toBe('true');
    expect(((await replay.json()) as { job_id: string }).job_id).toBe(job.job_id);

    // SSE on instance 1, Realtime on instance 0.
    const sse = await call(1, 'GET', `/functions/v1/video-events?job_id=${job.job_id}`, { token: guest.access_token });
    expect(sse.status).toBe(200);
    const realtime: string[] = [];
    const ws = new WebSocket(`ws://127.0.0.1:${ports[0]}/realtime/v1/websocket?apikey=${ANON_KEY}&vsn=1.0.0`);
    sockets.push(ws);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.event === 'postgres_changes') realtime.push(m.payload.data.record.status);
    });
    const topic = `realtime:video-job-${job.job_id}`;
    ws.send(JSON.stringify({
      topic, event: 'phx_join', ref: '1', join_ref: '1',
      payload: { config: { postgres_changes: [{ event: 'UPDATE', schema: 'public', table: 'video_jobs', filter: `job_id=eq.${job.job_id}` }] }, access_token: guest.access_token },
    }));
    const statuses = [...(await sse.text()).matchAll(/^data: (.+)$/gm)].map((m) => (JSON.parse(m[1]!) as { status: string }).status);
    expect(statuses).toEqual(['pending', 'processing', 'completed']);
    await waitFor('completed on Realtime', () => realtime.includes('completed'), 30_000);

    const status = await ok(call(1, 'GET', `/functions/v1/get-video-status?job_id=${job.job_id}`, { token: guest.access_token }));
    expect(status.status).toBe('completed');
    const video = await call(0, 'GET', new URL(status.video_url).pathname + new URL(status.video_url).search);
    expect(video.status).toBe(200);

    expect((await call(1, 'POST', '/functions/v1/delete-video-job', { token: guest.access_token, body: { job_id: job.job_id } })).status).toBe(200);
    expect((await call(0, 'GET', `/functions/v1/get-video-status?job_id=${job.job_id}`, { token: guest.access_token })).status).toBe(404);
  });

  it("an admin's catalogue change on one instance reaches the other's get-models through NOTIFY", async () => {
    const email = `ops-${randomUUID().slice(0, 8)}@example.com`;
    const password = 'correct horse battery staple';
    await insertAdmin(direct, email, await hashPassword(password), null);
    const admin = await ok(call(0, 'POST', '/admin/api/login', { body: { email, password } }));
    const before = await call(1, 'GET', '/functions/v1/get-models');
    const etag = before.headers.get('etag')!;
    const { models } = (await before.json()) as { models: { id: string; is_featured: boolean }[] };
    const model = models[0]!;
    expect((await call(1, 'GET', '/functions/v1/get-models', { headers: { 'if-none-match': etag } })).status).toBe(304);
    const patched = await call(0, 'PATCH', `/admin/api/models/${model.id}`, { token: admin.token, body: { is_featured: !model.is_featured } });
    expect(patched.status).toBe(200);
    await waitFor('the new catalogue on the other instance', async () => (await call(1, 'GET', '/functions/v1/get-models', { headers: { 'if-none-match': etag } })).status === 200, 10_000);
  });

  it('a burst of users larger than the pooler\'s pool: every job ends, nothing is charged twice', { timeout: 180_000 }, async () => {
    const USERS = 16;
    const jobs = await Promise.all(
      Array.from({ length: USERS }, async (_, n) => {
        const i = n % 2;
        const guest = await onboard(i);
        const job = await ok(call(i, 'POST', '/functions/v1/generate-video', { token: guest.access_token, body: { model_id: 'simulator-text-to-video', prompt: `burst ${n}` }, headers: { 'idempotency-key': randomUUID() } }));
        return { token: guest.access_token as string, jobId: job.job_id as string, i };
      }),
    );
    await waitFor('every job ended', async () => {
      const { rows } = await direct.query("SELECT count(*)::int AS n FROM video_jobs WHERE job_id = ANY($1) AND status IN ('completed', 'failed')", [jobs.map((j) => j.jobId)]);
      return rows[0].n === USERS;
    }, 150_000, () => procs[2]!.output().slice(-3000));
    const { rows } = await direct.query("SELECT count(*)::int AS n FROM video_jobs WHERE job_id = ANY($1) AND status = 'completed'", [jobs.map((j) => j.jobId)]);
    expect(rows[0].n).toBe(USERS);
    expect(await verifyLedger(direct)).toEqual([]);
    // The worker never died on a prepared statement (it crash-looped before).
    expect(procs[2]!.proc.exitCode).toBeNull();
    expect(procs[2]!.output()).not.toMatch(/prepared statement/);
    // The server saw at most the pooler's connections for this database, plus the three LISTENs.
    const { rows: conns } = await direct.query(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND backend_type = 'client backend' AND application_name <> 'rendio-listen' AND pid <> pg_backend_pid()",
    );
    expect(conns[0].n).toBeLessThanOrEqual(POOL_SIZE);
  });

  it('a starved pooler answers 503 ERR_6001 within the query timeout instead of hanging', { timeout: 60_000 }, async () => {
    const guest = await onboard(0);
    await bouncer.admin(`PAUSE ${dbName}`);
    try {
      const started = Date.now();
      const res = await call(0, 'GET', '/functions/v1/get-user-credits', { token: guest.access_token });
      expect(res.status).toBe(503);
      expect(((await res.json()) as { error: { code: string } }).error.code).toBe('ERR_6001');
      expect(res.headers.get('retry-after')).not.toBeNull();
      // Bounded by DATABASE_QUERY_TIMEOUT_MS (3 s), not by PgBouncer's query_wait_timeout (120 s).
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await bouncer.admin(`RESUME ${dbName}`);
    }
    expect((await call(0, 'GET', '/functions/v1/get-user-credits', { token: guest.access_token })).status).toBe(200);
  });

  it('npm run migrate through the pooler itself never leaves its lock behind (three runs in a row)', { timeout: 120_000 }, async () => {
    for (let run = 0; run < 3; run++) {
      const p = startProcess('npm', ['run', 'migrate'], { env: { DATABASE_URL: bouncer.url(directUrl), DATABASE_DIRECT_URL: '', LOG_LEVEL: 'warn' } });
      const { code } = await p.exited;
      expect(code, p.output()).toBe(0);
      expect(p.output()).toMatch(/nothing to apply/);
    }
    const { rows } = await direct.query("SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 727274001 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
    expect(rows[0].n).toBe(0);
  });

  it('a LISTEN connection through the pooler is reported at start-up and counts as down (it would hear nothing); prepared statements turn themselves off', { timeout: 120_000 }, async () => {
    const port = await freePort();
    const p = startServer({
      // Both URLs at the pooler, so DATABASE_PREPARED_STATEMENTS=auto takes it for a direct connection.
      DATABASE_URL: bouncer.url(directUrl),
      DATABASE_DIRECT_URL: bouncer.url(directUrl),
      ANON_KEY,
      ROLE: 'api',
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
      JWT_SECRET: 'pooler-test-secret-that-is-long-enough-0123456789',
      DATA_DIR: path.join(os.tmpdir(), `rendio-pooler-${randomUUID()}`),
      LOG_LEVEL: 'warn',
      METRICS_TOKEN,
    });
    try {
      await waitFor('the warning', () => /heard no NOTIFY sent through DATABASE_URL/.test(p.output()), 60_000, () => p.output());
      // It counts as down: fallback re-reads instead of a cache nothing would invalidate.
      await waitFor('the listener reported down', async () => {
        const res = await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } }).catch(() => undefined);
        return /^rendio_db_listen_connected 0$/m.test((await res?.text()) ?? '');
      }, 60_000, () => p.output());
      // Named statements through a pooler that does not keep them meet server connections that never
      // prepared them (or another client's): the first such failure turns names off and is re-run,
      // so every request is answered; concurrent requests make the pooler mix connections up.
      const api = (path: string, token?: string, body?: unknown) =>
        fetch(`http://127.0.0.1:${port}${path}`, {
          method: body === undefined ? 'GET' : 'POST',
          headers: { apikey: ANON_KEY, ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
          body: body === undefined ? undefined : JSON.stringify(body),
        });
      const guests = await Promise.all(
        Array.from({ length: 4 }, async () => (await (await api('/functions/v1/device-check', undefined, { device_id: randomUUID(), device_token: deviceToken('pooler') })).json()) as { access_token: string }),
      );
      const statuses: number[] = [];
      for (let round = 0; round < 20 && !/had not prepared it/.test(p.output()); round++) {
        const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => api('/functions/v1/get-user-credits', guests[i % guests.length]!.access_token)));
        statuses.push(...answers.map((r) => r.status));
      }
      expect(p.output()).toMatch(/had not prepared it: DATABASE_URL is a transaction pooler/);
      const after = await Promise.all(Array.from({ length: 12 }, (_, i) => api('/functions/v1/get-user-credits', guests[i % guests.length]!.access_token)));
      statuses.push(...after.map((r) => r.status));
      expect(new Set(statuses)).toEqual(new Set([200]));
    } finally {
      p.proc.kill('SIGTERM');
      await p.exited;
    }
  });
});


