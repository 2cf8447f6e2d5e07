/**
 * `npm run bench`: load on the real server, as a separate process, over loopback, against real
 * PostgreSQL. Scenarios: generate-video (distinct Idempotency-Keys, simulator at zero delay, so the
 * worker completes jobs while the API takes new ones) and get-video-status. Prints req/s, p50/p99
 * latency and the server's peak RSS per scenario, then checks the ledger invariants.
 *
 *   npm run bench -- [--duration 10] [--connections 20] [--users 40] [--database-url postgres://…]
 *
 * The database URL names an admin connection; the bench creates and drops its own database there.
 * Default: the local PostgreSQL on 127.0.0.1:5432, else the embedded one in a temporary directory.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import pg from 'pg';
import { loadConfig } from '../src/config.js';
import { createPool } from '../src/db/pool.js';
import { RateLimits } from '../src/http/rate-limit.js';
import { startEmbeddedDatabase, type EmbeddedDatabase } from '../src/db/embedded.js';
import { adminAdjust } from '../src/ledger/ledger.js';
import { verifyLedger } from '../src/ledger/verify.js';
import { createLogger } from '../src/logger.js';
import { adminQuery, withDatabase } from '../test/db.js';

const { values: args } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '20' },
    users: { type: 'string', default: '40' },
    'database-url': { type: 'string', default: 'postgres://postgres@127.0.0.1:5432/postgres' },
    /** Also time the limiter on this Redis (e.g. redis://127.0.0.1:6379). */
    'redis-url': { type: 'string' },
    out: { type: 'string', default: path.join('bench', 'last-run.json') },
  },
});
const DURATION_S = Number(args.duration);
const CONNECTIONS = Number(args.connections);
const USERS = Number(args.users);
const ROOT = path.resolve(import.meta.dirname, '..');

interface ScenarioResult {
  scenario: string;
  requests: number;
  req_per_s: number;
  p50_ms: number;
  p99_ms: number;
  non_2xx: number;
  errors: number;
  peak_rss_mib: number;
}

async function main() {
  const { adminUrl, embedded } = await adminDatabase(args['database-url']);
  const dbName = `rendio_bench_${randomBytes(4).toString('hex')}`;
  await adminQuery(adminUrl, `CREATE DATABASE ${dbName}`);
  const dbUrl = withDatabase(adminUrl, dbName);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'rendio-bench-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  let server: ChildProcess | undefined;
  try {
    server = startServer(dbUrl, dataDir, port);
    await waitUntilReady(base, server);
    const users = await onboardUsers(base, dbUrl);
    const version = (await adminQuery(adminUrl, 'SHOW server_version')).rows[0].server_version;
    console.log(`server pid ${server.pid} on ${base}; PostgreSQL ${version}; ${USERS} users; ${CONNECTIONS} connections; ${DURATION_S} s per scenario`);

    const results: ScenarioResult[] = [];
    const jobIds: string[] = [];
    let turn = 0;
    results.push(
      await scenario('generate-video (distinct keys)', server, {
        url: `${base}/functions/v1/generate-video`,
        method: 'POST',
        requests: [
          {
            setupRequest: (req: any) => {
              const token = users[turn++ % users.length]!;
              return {
                ...req,
                headers: { 'content-type': 'application/json', authorization: `Bearer ${token}`, 'idempotency-key': randomUUID() },
                body: JSON.stringify({ model_id: 'simulator-text-to-video', prompt: 'a lighthouse in a storm, cinematic' }),
              };
            },
            onResponse: (status: number, body: string) => {
              if (status === 200 && jobIds.length < 10_000) jobIds.push(JSON.parse(body).job_id);
            },
          },
        ],
      }),
    );
    if (jobIds.length === 0) throw new Error('generate-video produced no job: nothing to read the status of');

    // Jobs belong to their users; pair each job with its owner's token for the status reads.
    const owners = await jobOwners(dbUrl, jobIds, users);
    let read = 0;
    results.push(
      await scenario('get-video-status', server, {
        url: base,
        requests: [
          {
            setupRequest: (req: any) => {
              const [jobId, token] = owners[read++ % owners.length]!;
              return { ...req, method: 'GET', path: `/functions/v1/get-video-status?job_id=${jobId}`, headers: { authorization: `Bearer ${token}` } };
            },
          },
        ],
      }),
    );

    console.table(results);
    const limiter = [await limiterLatency(dbUrl, undefined)];
    if (args['redis-url']) limiter.push(await limiterLatency(dbUrl, args['redis-url']));
    console.log("rate limiter's added latency per generate-video request (global + generate-video rules, sequential):");
    console.table(limiter);
    const violations = await withClient(dbUrl, (c) => verifyLedger(c));
    const jobs = await withClient(dbUrl, async (c) => (await c.query('SELECT status, count(*)::int AS n FROM video_jobs GROUP BY status ORDER BY status')).rows);
    console.log('jobs by state at the end:', Object.fromEntries(jobs.map((r) => [r.status, r.n])));
    writeFileSync(
      path.join(ROOT, args.out),
      `${JSON.stringify({ at: new Date().toISOString(), postgres: version, node: process.version, duration_s: DURATION_S, connections: CONNECTIONS, users: USERS, results, limiter }, null, 2)}\n`,
    );
    if (violations.length > 0) {
      console.error('LEDGER INVARIANTS VIOLATED after the benchmark:', JSON.stringify(violations, null, 2));
      process.exitCode = 1;
    } else {
      console.log('ledger invariants hold after the benchmark');
    }
  } finally {
    if (server && server.exitCode === null) {
      server.kill('SIGTERM');
      await new Promise((r) => server!.once('exit', r));
    }
    await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`).catch(() => undefined);
    await embedded?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const UNREACHABLE_LIMITS = 'global.ip=1000000000/60,generate-video.user=1000000000/3600,generate-video.ip=1000000000/3600,device-check.ip=1000000/3600';

/**
 * The limiter alone, in this process against the bench database (or Redis): what it adds to one
 * generate-video request — the global rule and generate-video's two rules, one store round trip each.
 */
async function limiterLatency(dbUrl: string, redisUrl: string | undefined): Promise<{ store: string; samples: number; p50_ms: number; p99_ms: number }> {
  const pool = createPool(dbUrl, 4);
  const config = loadConfig({ DATABASE_URL: dbUrl, RATE_LIMITS: UNREACHABLE_LIMITS, REDIS_URL: redisUrl, RATE_LIMIT_KEY_PREFIX: `bench-${randomBytes(4).toString('hex')}` });
  const limits = new RateLimits(config.rateLimits, pool, () => '127.0.0.1', createLogger('silent'));
  const users = Array.from({ length: 40 }, () => randomUUID());
  const once = async (i: number) => {
    await limits.consume('global', { ip: '127.0.0.1' });
    await limits.consume('generate-video', { ip: '127.0.0.1', user: users[i % users.length] });
  };
  try {
    await limits.ready();
    for (let i = 0; i < 200; i++) await once(i); // warm up: connections, prepared statements
    const samples: number[] = [];
    for (let i = 0; i < 2000; i++) {
      const started = performance.now();
      await once(i);
      samples.push(performance.now() - started);
    }
    samples.sort((a, b) => a - b);
    const at = (q: number) => Math.round(samples[Math.floor(q * (samples.length - 1))]! * 1000) / 1000;
    return { store: redisUrl ? 'redis' : 'postgres', samples: samples.length, p50_ms: at(0.5), p99_ms: at(0.99) };
  } finally {
    await limits.close();
    await pool.end();
  }
}

/** Runs one autocannon scenario while sampling the server's resident set size. */
async function scenario(name: string, server: ChildProcess, opts: autocannon.Options): Promise<ScenarioResult> {
  let peakKib = 0;
  const sample = () => {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${server.pid}/status`, 'utf8'));
    if (m) peakKib = Math.max(peakKib, Number(m[1]));
  };
  sample();
  const sampler = setInterval(sample, 100);
  try {
    const r = await autocannon({ ...opts, connections: CONNECTIONS, duration: DURATION_S, timeout: 10 });
    return {
      scenario: name,
      requests: r.requests.total,
      req_per_s: Math.round(r.requests.average),
      p50_ms: r.latency.p50,
      p99_ms: r.latency.p99,
      non_2xx: r.non2xx,
      errors: r.errors + r.timeouts,
      peak_rss_mib: Math.round(peakKib / 1024),
    };
  } finally {
    clearInterval(sampler);
  }
}

function startServer(dbUrl: string, dataDir: string, port: number): ChildProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      NODE_ENV: 'development',
      DATABASE_URL: dbUrl,
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      JWT_SECRET: randomBytes(32).toString('hex'),
      LOG_LEVEL: 'error',
      SIMULATOR_DELAY_MS: '0',
      WORKER_POLL_INTERVAL_MS: '200',
      // The limiter runs (its cost is part of every number) but never refuses: one address, few users.
      RATE_LIMITS: UNREACHABLE_LIMITS,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

async function waitUntilReady(base: string, server: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null) throw new Error(`the server exited with ${server.exitCode} before it was ready`);
    const ok = await fetch(`${base}/ready`).then((r) => r.ok).catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error('the server was not ready within 60 s');
}

/**
 * Guests through the real onboarding (no DeviceCheck configured, so any well-formed token; the fake's
 * module imports vitest and cannot load here), each topped up (audited admin adjustment) so no request is 402. */
async function onboardUsers(base: string, dbUrl: string): Promise<string[]> {
  const tokens: string[] = [];
  const pool = createPool(dbUrl, 1);
  try {
    for (let i = 0; i < USERS; i++) {
      const res = await fetch(`${base}/functions/v1/device-check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ device_id: randomUUID().toUpperCase(), device_token: randomBytes(64).toString('base64') }),
      });
      const body = (await res.json()) as { user_id: string; access_token: string };
      if (!res.ok) throw new Error(`device-check failed: ${JSON.stringify(body)}`);
      await adminAdjust(pool, { userId: body.user_id, amount: 1_000_000, reason: 'benchmark top-up' });
      tokens.push(body.access_token);
    }
  } finally {
    await pool.end();
  }
  return tokens;
}

async function jobOwners(dbUrl: string, jobIds: string[], tokens: string[]): Promise<[string, string][]> {
  const byUser = new Map<string, string>();
  for (const t of tokens) byUser.set(JSON.parse(Buffer.from(t.split('.')[1]!, 'base64url').toString()).sub, t);
  const { rows } = await withClient(dbUrl, (c) => c.query('SELECT job_id, user_id FROM video_jobs WHERE job_id = ANY($1)', [jobIds]));
  return rows.map((r) => [r.job_id, byUser.get(r.user_id)!]);
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


function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
    srv.on('error', reject);
  });
}

main().catch((err) => {
  console.error('benchmark failed:', err);
  process.exit(1);
});
