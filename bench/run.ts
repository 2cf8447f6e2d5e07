/**
 * `npm run bench`: the hot paths of the real server, measured against baselines in the same run.
 *
 *   npm run bench -- [--duration 10] [--rounds 3] [--warmup 3] [--connections 20] [--users 40]
 *                    [--database-url postgres://…] [--no-embedded]
 *                    [--json bench/results/latest.json] [--doc docs/PERFORMANCE.md]
 *
 * The server runs as its own process (compiled dist/main.js when built, else through tsx) over
 * loopback against real PostgreSQL, first as API + worker (simulator at zero delay, so jobs complete
 * while requests arrive), then as ROLE=api. Baselines, with the project's own library versions:
 * bare Hono + jose + one primary-key select (bench/baseline-server.mjs), bare Hono serving static
 * JSON, and pgbench running generate-video's own statements (bench/generate-video.pgbench.sql).
 * Every scenario has a warm-up and `rounds` rounds; the median round is reported, with the CPU the
 * server and the whole PostgreSQL cluster spent per request. Also: peak RSS (VmHWM) and cold starts.
 * Prints the table, writes bench/results/latest.json and the results section of docs/PERFORMANCE.md
 * (or the files --json and --doc name: a trial run then leaves the published numbers alone),
 * checks the ledger invariants (exit 1 on a violation) and drops every database it created.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import pg from 'pg';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../src/db/embedded.js';
import { migrate } from '../src/db/migrate.js';
import { createPool } from '../src/db/pool.js';
import { installQueueSchema } from '../src/jobs/queue.js';
import { adminAdjust } from '../src/ledger/ledger.js';
import { verifyLedger } from '../src/ledger/verify.js';
import { createLogger } from '../src/logger.js';
import { adminQuery, withDatabase } from '../test/support/db.js';
import { clusterCpuMs, coldStartMs, freePort, measure, peakRssMib, spawnNode, stop, waitForAnswer, type Load, type Measured } from './measure.js';
import { realtimeFanOut } from './fanout.js';
import { UNREACHABLE_LIMITS, limiterLatency } from './limiter.js';
import { writeReport, type Row } from './report.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '20' },
    users: { type: 'string', default: '40' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    'no-embedded': { type: 'boolean', default: false },
    /** Also time the limiter on this Redis (e.g. redis://127.0.0.1:6379). */
    'redis-url': { type: 'string' },
    /** Realtime fan-out: how many sockets watch one job's change, per size (bench/fanout.ts). */
    fanout: { type: 'string', default: '1,100,1000,5000' },
    'fanout-changes': { type: 'string', default: '20' },
    /** Where the results go instead of bench/results/latest.json and docs/PERFORMANCE.md. */
    json: { type: 'string' },
    doc: { type: 'string' },
  },
});
const LOAD: Load = { durationS: Number(args.duration), rounds: Number(args.rounds), warmupS: Number(args.warmup), connections: Number(args.connections) };
const USERS = Number(args.users);
const ROOT = path.resolve(import.meta.dirname, '..');
// npm runs scripts from the package root; a path given on the command line is from where it was typed.
const outputPath = (given: string | undefined, fallback: string) => (given ? path.resolve(process.env.INIT_CWD ?? process.cwd(), given) : path.join(ROOT, fallback));
const OUTPUT = { json: outputPath(args.json, 'bench/results/latest.json'), doc: outputPath(args.doc, 'docs/PERFORMANCE.md') };
const JWT_SECRET = randomBytes(32).toString('hex');
const COMPILED = existsSync(path.join(ROOT, 'dist', 'main.js'));
// As docs/DEPLOY.md runs it: V8's young generation capped at 8 MiB per semi-space (NODE_OPTIONS there).
const SERVER_ARGS = ['--max-semi-space-size=8', ...(COMPILED ? ['dist/main.js'] : ['--import', 'tsx', 'src/main.ts'])];

const created: string[] = [];

/** Without DEVICE_CHECK_* the server takes any well-formed token (development only): opaque base64 like Apple's. */
const deviceToken = (device: string) => Buffer.from(`bench-device:${device}:${randomBytes(48).toString('hex')}`).toString('base64');
const children: ChildProcess[] = [];

async function main() {
  const { adminUrl, embedded } = await adminDatabase(args['database-url']);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rendio-bench-'));
  const rows: Row[] = [];
  const extra: Record<string, unknown> = {};
  try {
    const dbUrl = await newDatabase(adminUrl);
    const version = (await adminQuery(adminUrl, 'SHOW server_version')).rows[0].server_version as string;
    const postmasterPid = await findPostmasterPid(adminUrl);
    console.log(`PostgreSQL ${version}${postmasterPid ? '' : ' (its CPU is not readable here)'}; server ${COMPILED ? 'dist/main.js' : 'src/main.ts via tsx'}; ${USERS} users; ${LOAD.connections} connections; warm-up ${LOAD.warmupS} s, then ${LOAD.rounds} × ${LOAD.durationS} s`);

    // ---- API + worker in one process (the default start) ----
    let server = await startServer(dbUrl, dataDir, {});
    const users = await onboardUsers(server.base, dbUrl);
    const watch = { serverPid: server.child.pid, postmasterPid };
    const generateWithWorker = await measure(LOAD, generateLoad(server.base, users), watch);
    const owners = await jobOwners(dbUrl, users, 'any');
    const statusWithWorker = await measure(LOAD, statusLoad(server.base, owners), watch);
    const completed = await completedJobs(dbUrl, users, Math.min(200, owners.length));
    const rssAll = peakRssMib(server.child.pid!);
    extra.jobs_after_worker_run = await jobsByState(dbUrl);
    await stop(server.child);

    // ---- ROLE=api ----
    const migratedStartMs = await coldStartMs(() => serverProcess(dbUrl, dataDir, { ROLE: 'api' }, server.port), `${server.base}/health`, 3);
    server = await startServer(dbUrl, dataDir, { ROLE: 'api' });
    const apiWatch = { serverPid: server.child.pid, postmasterPid };
    const generateApi = await measure(LOAD, generateLoad(server.base, users), apiWatch);
    const generateOneUser = await measure(LOAD, generateLoad(server.base, users.slice(0, 1)), apiWatch);
    const inFlight = await jobOwners(dbUrl, users, 'in flight');
    const statusApi = await measure(LOAD, statusLoad(server.base, inFlight), apiWatch);
    const statusCompleted = completed.length ? await measure(LOAD, statusLoad(server.base, completed), apiWatch) : undefined;
    const modelsRes = await fetch(`${server.base}/functions/v1/get-models`);
    const modelsBody = await modelsRes.text();
    const etag = modelsRes.headers.get('etag')!;
    const models200 = await measure(LOAD, { url: `${server.base}/functions/v1/get-models` }, apiWatch);
    const models304 = await measure(LOAD, { url: `${server.base}/functions/v1/get-models`, headers: { 'if-none-match': etag } }, apiWatch);
    const credits = await measure(LOAD, rotating(server.base, users, (t) => ({ method: 'GET', path: '/functions/v1/get-user-credits', headers: { authorization: `Bearer ${t}` } })), apiWatch);
    let devices = 0;
    const deviceCheck = await measure(
      LOAD,
      rotating(server.base, [''], () => {
        const id = `bench-dc-${process.pid}-${devices++}`;
        return { method: 'POST', path: '/functions/v1/device-check', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ device_id: id, device_token: deviceToken(id) }) };
      }),
      apiWatch,
    );
    const rssApi = peakRssMib(server.child.pid!);
    await stop(server.child);

    // ---- Realtime fan-out, on a fresh ROLE=api process (its memory per socket from a clean start) ----
    server = await startServer(dbUrl, dataDir, { ROLE: 'api', HTTP_MAX_CONNECTIONS: '20000' });
    const [fanJob, fanToken] = inFlight[0] ?? owners[0]!;
    const fanOut = await realtimeFanOut({
      base: server.base,
      dbUrl,
      serverPid: server.child.pid!,
      jobId: fanJob,
      token: fanToken,
      sizes: args.fanout.split(',').map(Number),
      changes: Number(args['fanout-changes']),
    });
    await stop(server.child);

    // ---- Baselines ----
    const staticFile = path.join(dataDir, 'get-models.json');
    writeFileSync(staticFile, modelsBody);
    const basePort = await freePort();
    const baseUrl = `http://127.0.0.1:${basePort}`;
    const baselineEnv = { DATABASE_URL: dbUrl, JWT_SECRET, PORT: String(basePort), STATIC_BODY_FILE: staticFile };
    const bareStartMs = await coldStartMs(() => spawnNode(['bench/baseline-server.mjs'], ROOT, baselineEnv), `${baseUrl}/static`, 3);
    const bare = spawnNode(['bench/baseline-server.mjs'], ROOT, baselineEnv);
    children.push(bare);
    await waitForAnswer(`${baseUrl}/static`, bare);
    const bareWatch = { serverPid: bare.pid, postmasterPid };
    const bareStatus = await measure(LOAD, rotating(baseUrl, inFlight, ([job, token]) => ({ method: 'GET', path: `/status?job_id=${job}`, headers: { authorization: `Bearer ${token}` } })), bareWatch);
    const bareStatic = await measure(LOAD, { url: `${baseUrl}/static` }, bareWatch);
    const bareRss = peakRssMib(bare.pid!);
    await stop(bare);
    const pgbench = await pgbenchGenerate(adminUrl, postmasterPid);

    // ---- Cold starts that need a database of their own ----
    const freshUrl = await newDatabase(adminUrl);
    const freshStartMs = await coldStartMs(() => serverProcess(freshUrl, dataDir, { ROLE: 'api' }, basePort), `${baseUrl}/health`, 1);
    let embeddedStartMs: number | undefined;
    if (!args['no-embedded']) {
      const embeddedDir = mkdtempSync(path.join(tmpdir(), 'rendio-bench-embedded-'));
      try {
        // The first start creates and migrates the cluster; the measured one finds it ready.
        await coldStartMs(() => serverProcess(undefined, embeddedDir, { ROLE: 'api' }, basePort), `${baseUrl}/health`, 1);
        embeddedStartMs = await coldStartMs(() => serverProcess(undefined, embeddedDir, { ROLE: 'api' }, basePort), `${baseUrl}/health`, 1);
      } finally {
        rmSync(embeddedDir, { recursive: true, force: true });
      }
    }

    // A target is a throughput ratio and, where the baseline has a p99, a tail: p99 ≤ P99_WITHIN × the baseline's.
    const P99_WITHIN = 3;
    const r = (name: string, m: Measured | undefined, baseline?: { name: string; m: Measured }, target?: number): Row => {
      const ratio = m && baseline && baseline.m.req_per_s > 0 ? m.req_per_s / baseline.m.req_per_s : undefined;
      const p99Ratio = m && baseline && baseline.m.p99_ms > 0 && Number.isFinite(m.p99_ms) ? m.p99_ms / baseline.m.p99_ms : undefined;
      return {
        name,
        value: m?.req_per_s ?? null,
        unit: 'req/s',
        p50_ms: m?.p50_ms ?? null,
        p99_ms: m?.p99_ms ?? null,
        non_2xx: m?.non_2xx ?? null,
        server_cpu_ms: m?.server_cpu_ms_per_req ?? null,
        pg_cpu_ms: m?.pg_cpu_ms_per_req ?? null,
        baseline: baseline?.name ?? null,
        baseline_value: baseline?.m.req_per_s ?? null,
        baseline_p99_ms: baseline && Number.isFinite(baseline.m.p99_ms) ? baseline.m.p99_ms : null,
        ratio: ratio !== undefined ? Math.round(ratio * 100) / 100 : null,
        p99_ratio: p99Ratio !== undefined ? Math.round(p99Ratio * 10) / 10 : null,
        target: target !== undefined ? `≥ ${target}${p99Ratio !== undefined ? `, p99 ≤ ${P99_WITHIN}×` : ''}` : null,
        met: ratio !== undefined && target !== undefined ? ratio >= target && (p99Ratio === undefined || p99Ratio <= P99_WITHIN) : null,
      };
    };
    const bareStatusB = { name: 'bare Hono + jose + PK select', m: bareStatus };
    const staticB = { name: 'bare Hono static JSON', m: bareStatic };
    const pgbenchB = pgbench ? { name: "pgbench, generate-video's SQL", m: pgbench } : undefined;
    rows.push(
      r('get-video-status, in flight (API only)', statusApi, bareStatusB, 0.7),
      r('get-video-status, completed (API only)', statusCompleted, bareStatusB, 0.7),
      r('get-video-status while the worker runs', statusWithWorker, bareStatusB, 0.5),
      r('get-models → 304', models304, staticB, 0.5),
      r('get-models → 200', models200, staticB),
      r('get-user-credits', credits, bareStatusB),
      r(`generate-video (API only, ${USERS} users)`, generateApi, pgbenchB, 0.8),
      r('generate-video while the worker runs', generateWithWorker, pgbenchB, 0.5),
      r('generate-video (API only, one user)', generateOneUser, pgbenchB),
      r('device-check (new guest each)', deviceCheck),
      { name: 'peak RSS (VmHWM), API only / API + worker', value: Math.max(rssApi, rssAll), unit: 'MiB', detail: `${rssApi} / ${rssAll}`, baseline: 'bare Hono', baseline_value: bareRss, target: '< 200 MiB', met: Math.max(rssApi, rssAll) < 200 },
      { name: 'cold start to /health, migrated PostgreSQL', value: migratedStartMs, unit: 'ms', baseline: 'bare Hono', baseline_value: bareStartMs, ratio: Math.round((migratedStartMs / bareStartMs) * 10) / 10, target: '< 1000 ms', met: migratedStartMs < 1000 },
      { name: 'cold start to /health, fresh database (migrations)', value: freshStartMs, unit: 'ms' },
      ...(embeddedStartMs !== undefined ? [{ name: 'cold start to /health, embedded PostgreSQL (existing data dir)', value: embeddedStartMs, unit: 'ms' } as Row] : []),
      ...fanOut.map(
        (f): Row => ({
          name: `Realtime: one job change to ${f.sockets} socket${f.sockets === 1 ? '' : 's'} (commit → last socket)`,
          value: f.p50_ms,
          unit: 'ms median',
          p50_ms: f.p50_ms,
          p99_ms: f.p99_ms,
          detail: `p99 ${f.p99_ms} ms; ${f.rss_per_socket_kib} KiB per socket; ${f.cpu_us_per_event} µs server CPU per delivered event`,
        }),
      ),
    );

    const limiter = [await limiterLatency(dbUrl, undefined)];
    if (args['redis-url']) limiter.push(await limiterLatency(dbUrl, args['redis-url']));
    for (const l of limiter) rows.push({ name: `rate limiter's added latency per generate-video (${l.store})`, value: l.p50_ms, unit: 'ms median', detail: `p99 ${l.p99_ms} ms`, target: '< 1 ms', met: l.p50_ms < 1 });

    const violations = await withClient(dbUrl, (c) => verifyLedger(c));
    writeReport(rows, {
      at: new Date().toISOString(),
      postgres: version,
      node: process.version,
      server: COMPILED ? 'dist/main.js' : 'tsx src/main.ts',
      load: LOAD,
      users: USERS,
      rounds_req_per_s: Object.fromEntries(
        Object.entries({ generateApi, generateWithWorker, generateOneUser, statusApi, statusCompleted, statusWithWorker, models200, models304, credits, deviceCheck, bareStatus, bareStatic, pgbench }).map(([k, m]) => [k, m?.rounds_req_per_s]),
      ),
      ...extra,
      ledger_violations: violations.length,
    }, OUTPUT);
    if (violations.length > 0) {
      console.error('LEDGER INVARIANTS VIOLATED after the benchmark:', JSON.stringify(violations, null, 2));
      process.exitCode = 1;
    } else {
      console.log('ledger invariants hold after the benchmark');
    }
  } finally {
    for (const c of children) await stop(c);
    for (const db of created) await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${db} WITH (FORCE)`).catch(() => undefined);
    await embedded?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

// ---------- the server ----------

function serverProcess(dbUrl: string | undefined, dataDir: string, env: Record<string, string>, port: number): ChildProcess {
  return spawnNode(SERVER_ARGS, ROOT, {
    NODE_ENV: 'development',
    DATABASE_URL: dbUrl,
    DATA_DIR: dataDir,
    PORT: String(port),
    HOST: '127.0.0.1',
    JWT_SECRET,
    LOG_LEVEL: 'error',
    SIMULATOR_DELAY_MS: '0',
    WORKER_POLL_INTERVAL_MS: '200',
    // The limiter runs (its cost is part of every number) but never refuses: one address, few users.
    RATE_LIMITS: UNREACHABLE_LIMITS,
    // NODE_ENV=development turns the limits off unless asked: the bench measures them.
    RATE_LIMITS_ENABLED: 'true',
    // The fan-out scenario opens thousands of sockets from this one address.
    REALTIME_MAX_SOCKETS_PER_ADDRESS: '10000',
    ...env,
  });
}

async function startServer(dbUrl: string, dataDir: string, env: Record<string, string>) {
  const port = await freePort();
  const child = serverProcess(dbUrl, dataDir, env, port);
  children.push(child);
  const base = `http://127.0.0.1:${port}`;
  await waitForAnswer(`${base}/ready`, child);
  return { child, base, port };
}

// ---------- loads ----------

type RequestShape = { method: string; path: string; headers?: Record<string, string>; body?: string };

/** Requests built in turn from the items (round robin). */
function rotating<T>(base: string, items: T[], build: (item: T) => RequestShape) {
  let turn = 0;
  return { url: base, requests: [{ setupRequest: (req: any) => ({ ...req, ...build(items[turn++ % items.length]!) }) }] };
}

function generateLoad(base: string, tokens: string[]) {
  let turn = 0;
  return {
    url: `${base}/functions/v1/generate-video`,
    method: 'POST' as const,
    requests: [
      {
        setupRequest: (req: any) => ({
          ...req,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens[turn++ % tokens.length]}`, 'idempotency-key': randomUUID() },
          body: JSON.stringify({ model_id: 'simulator-text-to-video', prompt: 'a lighthouse in a storm, cinematic' }),
        }),
      },
    ],
  };
}

const statusLoad = (base: string, owners: [string, string][]) =>
  rotating(base, owners, ([job, token]) => ({ method: 'GET', path: `/functions/v1/get-video-status?job_id=${job}`, headers: { authorization: `Bearer ${token}` } }));

// ---------- data ----------

/** Guests through the real onboarding, each topped up (audited admin adjustment) so no request is 402. */
async function onboardUsers(base: string, dbUrl: string): Promise<string[]> {
  const tokens: string[] = [];
  const pool = createPool(dbUrl, 1);
  try {
    for (let i = 0; i < USERS; i++) {
      const id = `bench-${process.pid}-${i}`;
      const res = await fetch(`${base}/functions/v1/device-check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ device_id: id, device_token: deviceToken(id) }),
      });
      const body = (await res.json()) as { user_id: string; access_token: string };
      if (!res.ok) throw new Error(`device-check failed: ${JSON.stringify(body)}`);
      await adminAdjust(pool, { userId: body.user_id, amount: 10_000_000, reason: 'benchmark top-up' });
      tokens.push(body.access_token);
    }
  } finally {
    await pool.end();
  }
  return tokens;
}

const subOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).sub as string;

async function jobOwners(dbUrl: string, tokens: string[], which: 'any' | 'in flight'): Promise<[string, string][]> {
  // From the database, not from the answers autocannon saw: a request it stopped waiting for at the
  // end of a short round still made its job (the server finishes what it started).
  const byUser = new Map(tokens.map((t) => [subOf(t), t]));
  const { rows } = await withClient(dbUrl, (c) =>
    c.query(`SELECT job_id, user_id FROM video_jobs WHERE user_id = ANY($1) AND ($2 OR status NOT IN ('completed', 'failed')) LIMIT 10000`, [[...byUser.keys()], which === 'any']),
  );
  if (rows.length === 0) throw new Error(`generate-video produced no job${which === 'any' ? '' : ' in flight'}: nothing to read the status of`);
  return rows.map((r) => [r.job_id, byUser.get(r.user_id)!]);
}

/**
 * Completed jobs (signed URLs on every read) and their owners' tokens: waits up to a minute for
 * `wanted` of them (fewer than 200 when a short run made fewer jobs, so it does not wait out the minute).
 */
async function completedJobs(dbUrl: string, tokens: string[], wanted: number): Promise<[string, string][]> {
  const byUser = new Map(tokens.map((t) => [subOf(t), t]));
  const deadline = Date.now() + 60_000;
  for (;;) {
    const { rows } = await withClient(dbUrl, (c) => c.query("SELECT job_id, user_id FROM video_jobs WHERE status = 'completed' LIMIT 2000"));
    if (rows.length >= wanted || Date.now() > deadline) return rows.map((r) => [r.job_id, byUser.get(r.user_id)!]);
    await new Promise((r) => setTimeout(r, 500));
  }
}

const jobsByState = async (dbUrl: string) =>
  Object.fromEntries((await withClient(dbUrl, (c) => c.query('SELECT status, count(*)::int AS n FROM video_jobs GROUP BY status ORDER BY status'))).rows.map((r) => [r.status, r.n]));

// ---------- pgbench ----------

/** generate-video's statements as a pgbench script on a migrated copy of the schema; undefined without pgbench. */
async function pgbenchGenerate(adminUrl: string, postmasterPid: number | undefined): Promise<Measured | undefined> {
  const binary = ['/usr/bin/pgbench', ...['15', '16', '17', '18'].map((v) => `/usr/lib/postgresql/${v}/bin/pgbench`)].find((p) => existsSync(p));
  if (!binary) {
    console.warn('pgbench not found: the generate-video baseline is skipped');
    return undefined;
  }
  const dbUrl = await newDatabase(adminUrl);
  await migrate(dbUrl);
  await installQueueSchema(dbUrl);
  await withClient(dbUrl, (c) =>
    c.query(`WITH u AS (INSERT INTO users (id, is_guest) SELECT gen_random_uuid(), true FROM generate_series(1, $1) RETURNING id)
             INSERT INTO credit_accounts (user_id, balance) SELECT id, 10000000 FROM u`, [USERS]),
  );
  const run = async (seconds: number) => {
    // -l: every transaction's latency (µs, the third field) in per-thread files, for the p99.
    const logDir = mkdtempSync(path.join(tmpdir(), 'rendio-pgbench-'));
    try {
      const { stdout } = await promisify(execFile)(
        binary,
        ['-n', '-M', 'extended', '-c', String(LOAD.connections), '-j', '2', '-T', String(seconds), '-D', `users=${USERS}`, '-l', '--log-prefix', path.join(logDir, 'tx'), '-f', path.join(ROOT, 'bench/generate-video.pgbench.sql'), dbUrl],
        { maxBuffer: 1 << 20 },
      );
      const tps = Number(/tps = ([\d.]+)/.exec(stdout)?.[1]);
      const latency = Number(/latency average = ([\d.]+) ms/.exec(stdout)?.[1]);
      const transactions = Number(/number of transactions actually processed: (\d+)/.exec(stdout)?.[1]);
      const latenciesMs = readdirSync(logDir)
        .flatMap((f) => readFileSync(path.join(logDir, f), 'utf8').split('\n'))
        .map((line) => Number(line.split(' ')[2]) / 1000)
        .filter((ms) => Number.isFinite(ms))
        .sort((a, b) => a - b);
      const p99 = latenciesMs.length ? Math.round(latenciesMs[Math.floor(0.99 * (latenciesMs.length - 1))]! * 100) / 100 : NaN;
      return { tps, latency, transactions, p99 };
    } finally {
      rmSync(logDir, { recursive: true, force: true });
    }
  };
  if (LOAD.warmupS > 0) await run(LOAD.warmupS);
  const before = postmasterPid ? cpuOf(postmasterPid) : undefined;
  const rounds = [];
  for (let i = 0; i < LOAD.rounds; i++) rounds.push(await run(LOAD.durationS));
  const after = postmasterPid ? cpuOf(postmasterPid) : undefined;
  const total = rounds.reduce((n, r) => n + r.transactions, 0);
  const mid = [...rounds].sort((a, b) => a.tps - b.tps)[Math.floor(rounds.length / 2)]!;
  return {
    req_per_s: Math.round(mid.tps),
    p50_ms: mid.latency,
    p99_ms: mid.p99,
    requests: total,
    non_2xx: 0,
    errors: 0,
    server_cpu_ms_per_req: null,
    pg_cpu_ms_per_req: before !== undefined && after !== undefined ? Math.round(((after - before) / total) * 1000) / 1000 : null,
    rounds_req_per_s: rounds.map((r) => Math.round(r.tps)),
  };
}

function cpuOf(postmasterPid: number): number | undefined {
  try {
    return clusterCpuMs(postmasterPid);
  } catch {
    return undefined;
  }
}

// ---------- databases ----------

async function newDatabase(adminUrl: string): Promise<string> {
  const name = `rendio_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
  created.push(name);
  return withDatabase(adminUrl, name);
}

async function findPostmasterPid(adminUrl: string): Promise<number | undefined> {
  try {
    const dir = (await adminQuery(adminUrl, 'SHOW data_directory')).rows[0].data_directory as string;
    return Number(readFileSync(path.join(dir, 'postmaster.pid'), 'utf8').split('\n')[0]);
  } catch {
    return undefined;
  }
}

async function adminDatabase(url: string): Promise<{ adminUrl: string; embedded?: EmbeddedDatabase }> {
  const reachable = await withClient(url, (c) => c.query('SELECT 1')).then(() => true, () => false);
  if (reachable) return { adminUrl: url };
  console.warn(`no PostgreSQL at ${url}: starting the embedded one`);
  const embedded = await startEmbeddedDatabase(mkdtempSync(path.join(tmpdir(), 'rendio-bench-pg-')), createLogger('warn'));
  return { adminUrl: withDatabase(embedded.url, 'postgres'), embedded };
}

async function withClient<T>(url: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3000 });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => undefined);
  }
}

main().catch((err) => {
  console.error('benchmark failed:', err);
  process.exit(1);
});
