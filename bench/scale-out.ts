/**
 * npm run bench:scale-out — many instances on one small database, as DEPLOY's "Scaling out" says
 * they fit: a private PostgreSQL with max_connections = --max-connections (100), PgBouncer in
 * transaction mode with a server pool of --pool (30) in front of it, --api (50) ROLE=api and
 * --workers (10) ROLE=worker processes on it (DATABASE_URL through the pooler, LISTEN and migrations
 * on DATABASE_DIRECT_URL), then --users (100) guests onboarding and generating through random
 * instances, one video-events stream each. It samples the server's connections throughout and
 * prints: the peak, the count at rest (after --rest seconds, 35: past the pools' 30 s idle timeout), refused connections,
 * our 5xx, every job ended, SSE streams that heard their job end (NOTIFY only), verify-ledger.
 * Exits 1 when a job did not end, a stream missed its end, a connection was refused for too many
 * clients, or the ledger is off.
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { verifyLedger } from '../src/ledger/verify.js';
import { startPgBouncer } from '../test/support/pgbouncer.js';
import { freePort, startPrivatePostgres } from '../test/support/private-postgres.js';
import { startServer, waitFor, waitForReady, type ServerProcess } from '../test/support/process.js';
import { sseStatuses } from '../test/support/sse.js';
import { build, isStale } from '../scripts/build.mjs';

const { values: args } = parseArgs({
  options: {
    api: { type: 'string', default: '50' },
    workers: { type: 'string', default: '10' },
    users: { type: 'string', default: '100' },
    'max-connections': { type: 'string', default: '100' },
    pool: { type: 'string', default: '30' },
    settle: { type: 'string', default: '180' },
    rest: { type: 'string', default: '35' },
  },
});
const API = Number(args.api);
const WORKERS = Number(args.workers);
const USERS = Number(args.users);
const MAX_CONNECTIONS = Number(args['max-connections']);
const POOL = Number(args.pool);
const t0 = Date.now();
const say = (msg: string) => console.log(`[scale-out +${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s] ${msg}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function main() {
  if (await isStale()) await build({ quiet: true });
  const cluster = await startPrivatePostgres('scale-out', { maxConnections: MAX_CONNECTIONS });
  const bouncer = await startPgBouncer({ host: '127.0.0.1', port: cluster.port }, { poolSize: POOL });
  const db = new pg.Client({ connectionString: cluster.url, application_name: 'bench-observer' });
  await db.connect();
  // Its own connection: a sample must never queue behind the observer's other statements.
  const sampling = new pg.Client({ connectionString: cluster.url, application_name: 'bench-observer' });
  await sampling.connect();
  let peak = 0;
  let sampleRunning = false;
  const sampler = setInterval(() => {
    if (sampleRunning) return;
    sampleRunning = true;
    void sampling.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> 'bench-observer'").then(
      (r) => (peak = Math.max(peak, r.rows[0].n)),
      () => undefined,
    ).finally(() => (sampleRunning = false));
  }, 250);

  const env = {
    DATABASE_URL: bouncer.url(cluster.url),
    DATABASE_DIRECT_URL: cluster.url,
    HOST: '127.0.0.1',
    NODE_ENV: 'test',
    JWT_SECRET: 'scale-out-bench-secret-that-is-long-enough-0123456789',
    DATA_DIR: path.join(os.tmpdir(), `rendio-scale-out-${randomUUID()}`),
    LOG_LEVEL: 'error',
    EVENTS_REREAD_MS: '0',
    RATE_LIMITS_ENABLED: 'false',
    SIMULATOR_DELAY_MS: '2000',
    WORKER_CONCURRENCY: '4',
  };
  const procs: ServerProcess[] = [];
  const ports: number[] = [];
  // Started a few at a time: two cores cannot start sixty node processes at once in useful time.
  for (let i = 0; i < API; i += 5) {
    const batch: Promise<void>[] = [];
    for (let j = i; j < Math.min(API, i + 5); j++) {
      const port = await freePort();
      ports.push(port);
      const p = startServer({ ...env, ROLE: 'api', PORT: String(port) });
      procs.push(p);
      batch.push(waitForReady(port, p, 180_000));
    }
    await Promise.all(batch);
  }
  for (let i = 0; i < WORKERS; i++) procs.push(startServer({ ...env, ROLE: 'worker' }));
  await waitFor('every worker', async () => (await db.query('SELECT count(*)::int AS n FROM worker_heartbeats')).rows[0].n >= WORKERS, 180_000);
  const started = (Date.now() - t0) / 1000;
  say(`${API} API + ${WORKERS} worker processes up in ${started.toFixed(0)} s; ${USERS} users now`);

  const fiveXX = new Map<string, number>();
  const call = async (body: unknown, p: string, headers: Record<string, string> = {}): Promise<any> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = ports[Math.floor(Math.random() * ports.length)]!;
      const res = await fetch(`http://127.0.0.1:${port}/functions/v1/${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) }).catch(() => undefined);
      if (res?.status === 200) return res.json();
      const code = res ? `${res.status} ${((await res.json().catch(() => ({}))) as any)?.error?.code ?? '-'}` : 'network';
      fiveXX.set(code, (fiveXX.get(code) ?? 0) + 1);
      await sleep(500);
    }
    throw new Error(`${p}: gave up`);
  };
  const heard = await Promise.all(
    Array.from({ length: USERS }, async () => {
      const guest = await call({ device_id: randomUUID(), device_token: randomBytes(96).toString('base64') }, 'device-check');
      const auth = { authorization: `Bearer ${guest.access_token}` };
      const job = await call({ model_id: 'simulator-text-to-video', prompt: 'scale out' }, 'generate-video', { ...auth, 'idempotency-key': randomUUID() });
      const port = ports[Math.floor(Math.random() * ports.length)]!;
      const res = await fetch(`http://127.0.0.1:${port}/functions/v1/video-events?job_id=${job.job_id}`, { headers: auth });
      const statuses = await Promise.race([sseStatuses(res), sleep(Number(args.settle) * 1000).then(() => new Map<string, number>())]);
      return { jobId: job.job_id as string, ended: statuses.has('completed') || statuses.has('failed') };
    }),
  );
  const jobIds = heard.map((h) => h.jobId);
  await waitFor('every job ended', async () => (await db.query("SELECT count(*)::int AS n FROM video_jobs WHERE job_id = ANY($1) AND status IN ('completed', 'failed')", [jobIds])).rows[0].n === USERS, Number(args.settle) * 1000);
  const peakUnderLoad = peak;
  say(`load done; waiting ${args.rest} s for idle pooled connections to close (their idle timeout is 30 s)`);
  await sleep(Number(args.rest) * 1000);
  const atRest = (await db.query("SELECT application_name, count(*)::int AS n FROM pg_stat_activity WHERE backend_type = 'client backend' AND application_name <> 'bench-observer' GROUP BY 1 ORDER BY 2 DESC")).rows;
  const violations = await verifyLedger(db);
  const completed = (await db.query("SELECT count(*)::int AS n FROM video_jobs WHERE job_id = ANY($1) AND status = 'completed'", [jobIds])).rows[0].n;
  // PostgreSQL logs each connection it refuses for want of a slot.
  const refused = ((await cluster.log()).match(/too many clients|remaining connection slots are reserved/g) ?? []).length;
  clearInterval(sampler);
  const crashed = procs.filter((p) => p.proc.exitCode !== null).length;
  for (const p of procs) p.proc.kill('SIGTERM');
  await Promise.all(procs.map((p) => p.exited));
  await db.end();
  await sampling.end();
  await bouncer.stop();
  await cluster.stop();
  rmSync(env.DATA_DIR, { recursive: true, force: true });

  const missed = heard.filter((h) => !h.ended).length;
  const table: [string, string][] = [
    ['database', `max_connections ${MAX_CONNECTIONS}; PgBouncer transaction mode, server pool ${POOL}`],
    ['processes', `${API} API + ${WORKERS} workers, all up in ${started.toFixed(0)} s`],
    ['users / jobs completed', `${USERS} / ${completed}`],
    ['server connections, peak under load', String(peakUnderLoad)],
    ['server connections at rest (PgBouncer keeps idle ones for its server_idle_timeout)', atRest.map((r) => `${r.application_name || '(none)'} ${r.n}`).join(', ')],
    ['connections PostgreSQL refused (too many clients)', String(refused)],
    ['SSE streams that heard their job end (NOTIFY only)', `${USERS - missed} of ${USERS}`],
    ['our 5xx (retried)', [...fiveXX.entries()].map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ['processes that exited unbidden', String(crashed)],
    ['verify-ledger', violations.length ? `${violations.length} violations` : 'OK'],
  ];
  console.log('\n| check | result |\n|---|---|');
  for (const [k, v] of table) console.log(`| ${k} | ${v} |`);
  const failed = completed !== USERS || missed > 0 || refused > 0 || violations.length > 0 || crashed > 0;
  console.log(failed ? '\nSCALE-OUT: FAILED' : '\nSCALE-OUT: PASSED');
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
