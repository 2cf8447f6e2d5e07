/**
 * npm run chaos — the reliability acceptance run (docs/RELIABILITY.md). Loopback only, bounded in time,
 * on a private PostgreSQL it starts (and restarts) itself:
 *  - two API processes (ROLE=api) and two workers (ROLE=worker) against the fal fake, which
 *    answers some submits with 5xx, hangs some, loses some answers after creating the request,
 *    and drops some webhooks;
 *  - many guests generate concurrently through either API;
 *  - a worker and an API process are SIGKILLed and restarted, the other worker is SIGKILLed for
 *    good, and PostgreSQL is restarted once (pg_ctl restart -m fast);
 *  - live subscribers (a video-events stream and a Realtime channel per watched job) are open across
 *    the restart with the fallback re-reads off, so each final status they hear came by NOTIFY;
 *  - then: every job terminal within the bound, verify-ledger clean, each balance equal to an
 *    independent count, fal requests per job, our 5xx by code, processes that exited, and when
 *    the subscribers heard their job end;
 *  - then a second phase, a killed worker's in-flight submits: fal takes a burst of submits and
 *    never answers them, and the only worker is SIGKILLed while they are in flight;
 *  - for both: duplicates fal bills (its own count of finished requests, per job) beside what our
 *    provider_submissions says, and time to video (created → completed).
 * Exits 1 on any stuck job, ledger violation, balance mismatch, final status not heard, or process
 * that died unbidden.
 * Options: --users N (30, two jobs each), --settle S (120: the bound for every job to end),
 * --watch N (8 jobs watched live), --pooler (every pooled connection through PgBouncer in
 * transaction mode; LISTEN and migrations direct), --lost-answer-wait S (12:
 * SUBMIT_LOST_ANSWER_WAIT_SECONDS, scaled like the lease and quiet time: 1.5× the killed-worker
 * phase's 8 s generations, as the 180 s default is to fal's 1-3 min), and --inflight N (12: jobs in
 * the killed-worker phase).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { verifyLedger } from '../src/ledger/verify.js';
import { FakeFal } from '../test/fakes/fal.js';
import { startPgBouncer } from '../test/support/pgbouncer.js';
import { freePort, startPrivatePostgres } from '../test/support/private-postgres.js';
import { liveReport, watchJob, type LiveWatch } from './chaos-live.js';

const ROOT = path.resolve(import.meta.dirname, '..');
const { values: args } = parseArgs({
  options: {
    users: { type: 'string', default: '30' },
    settle: { type: 'string', default: '120' },
    watch: { type: 'string', default: '8' },
    pooler: { type: 'boolean', default: false },
    'lost-answer-wait': { type: 'string', default: '12' },
    inflight: { type: 'string', default: '12' },
  },
});
const USERS = Number(args.users);
const LOST_ANSWER_WAIT = Number(args['lost-answer-wait']);
const INFLIGHT_JOBS = Number(args.inflight);
const JOBS_PER_USER = 2;
const SETTLE_SECONDS = Number(args.settle);
const PRICE = 4; // veo-3.1 at 4 s
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const say = (msg: string) => console.log(`[chaos +${((Date.now() - t0) / 1000).toFixed(0).padStart(3)}s] ${msg}`);

interface Proc {
  name: string;
  tail: string;
  proc: ChildProcess;
  exit?: { code: number | null; signal: string | null; expected: boolean };
  killedOnPurpose: boolean;
}

async function main() {
  const cluster = await startPrivatePostgres('chaos');
  const bouncer = args.pooler ? await startPgBouncer({ host: '127.0.0.1', port: cluster.port }, { poolSize: 10 }) : undefined;
  const fal = await new FakeFal().start();
  fal.timing = { queuedMs: 500, runningMs: 2500 };
  const ports = [await freePort(), await freePort()];
  const procs: Proc[] = [];
  const common = {
    ...fal.env(),
    DATABASE_URL: bouncer ? bouncer.url(cluster.url) : cluster.url,
    DATABASE_DIRECT_URL: cluster.url,
    // Live updates by NOTIFY only: a subscriber that hears its job end heard it through LISTEN.
    EVENTS_REREAD_MS: '0',
    HOST: '127.0.0.1',
    NODE_ENV: 'test',
    JWT_SECRET: 'chaos-secret-that-is-long-enough-for-hs256-0123456789',
    DATA_DIR: path.join(os.tmpdir(), `rendio-chaos-${randomUUID()}`),
    PUBLIC_URL: `http://127.0.0.1:${ports[0]}`,
    LOG_LEVEL: 'error',
    // One loopback address plays every user: the limits would refuse the load this run is about.
    RATE_LIMITS_ENABLED: 'false',
    PROVIDER_TIMEOUT_MS: '2000',
    PROVIDER_RETRY_BASE_MS: '500',
    SUBMIT_LEASE_SECONDS: '5',
    SUBMIT_LOST_ANSWER_WAIT_SECONDS: String(LOST_ANSWER_WAIT),
    JOB_QUIET_SECONDS: '10',
    WORKER_POLL_INTERVAL_MS: '500',
    WORKER_CONCURRENCY: '6',
  };
  const start = (name: string, env: Record<string, string>) => {
    const p: Proc = { name, tail: '', proc: spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { ...process.env, ...common, ...env }, stdio: ['ignore', 'pipe', 'pipe'] }), killedOnPurpose: false };
    const keep = (d: Buffer) => void (p.tail = (p.tail + d.toString()).slice(-4000));
    p.proc.stdout!.on('data', keep);
    p.proc.stderr!.on('data', keep);
    p.proc.on('exit', (code, signal) => (p.exit = { code, signal, expected: p.killedOnPurpose }));
    procs.push(p);
    return p;
  };
  const kill = (p: Proc) => {
    p.killedOnPurpose = true;
    p.proc.kill('SIGKILL');
  };
  const api = (i: number) => start(`api${i + 1}`, { ROLE: 'api', PORT: String(ports[i]) });
  const worker = (i: number) => start(`worker${i + 1}`, { ROLE: 'worker', PORT: String(ports[0]) });

  let apis = [api(0)];
  for (let i = 0; i < 600; i++) {
    if ((await fetch(`http://127.0.0.1:${ports[0]}/ready`).then((r) => r.status).catch(() => 0)) === 200) break;
    await sleep(200);
  }
  apis.push(api(1));
  let workers = [worker(0), worker(1)];
  say(`PostgreSQL on ${cluster.port}${bouncer ? ` behind PgBouncer (transaction mode) on ${bouncer.port}` : ''}, fal fake on ${fal.url}, APIs on ${ports.join(', ')}`);

  // The fal fake calls back like fal: once a request completes, retrying a failed delivery (fal
  // retries 10 times over 2 hours; here 4 times, 5 s apart), with 15 % of callbacks lost outright.
  const called = new Set<string>();
  const deliver = async (url: string, id: string) => {
    for (let attempt = 0; attempt < 4; attempt++) {
      const hook = fal.webhookFor(id);
      const ok = await fetch(url, { method: 'POST', body: hook.body, headers: hook.headers }).then((r) => r.ok, () => false);
      if (ok) return;
      await sleep(5000);
    }
  };
  const webhooks = setInterval(() => {
    for (const r of fal.requests.values()) {
      if (called.has(r.id) || r.cancelled || !r.webhook || Date.now() - r.createdAt < fal.timing.queuedMs + fal.timing.runningMs) continue;
      called.add(r.id);
      if (Math.random() < 0.15) continue;
      void deliver(r.webhook, r.id);
    }
  }, 200);
  // Provider faults, renewed every few seconds: 5xx, hangs (the client's timeout), lost answers.
  const faults = setInterval(() => {
    fal.server.clearFaults();
    const roll = Math.random();
    if (roll < 0.3) fal.server.inject(/^\/fal-ai\/veo3\.1$/, { status: 503, body: '{"detail":"overloaded"}', times: 2 });
    else if (roll < 0.5) fal.server.inject(/^\/fal-ai\/veo3\.1/, { status: 500, times: 1, delayMs: Infinity });
    else if (roll < 0.8) fal.loseResponses(2, Math.random() < 0.5 ? 'reset' : 'hang');
  }, 3000);

  // Clients: each guest onboards, then generates twice, retrying 5xx/network errors with its key.
  const fiveXX = new Map<string, number>();
  const users: { userId: string; credits: number; jobs: string[] }[] = [];
  const call = async (pathname: string, body: unknown, headers: Record<string, string> = {}): Promise<any> => {
    for (let attempt = 0; attempt < 60; attempt++) {
      const port = ports[Math.floor(Math.random() * 2)]!;
      try {
        const res = await fetch(`http://127.0.0.1:${port}/functions/v1/${pathname}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body), signal: AbortSignal.timeout(15_000) });
        const json = (await res.json().catch(() => ({}))) as any;
        if (res.status === 200) return json;
        const code = `${res.status} ${json?.error?.code ?? '-'}`;
        if (res.status >= 500) fiveXX.set(code, (fiveXX.get(code) ?? 0) + 1);
        if (res.status < 500 && res.status !== 409 && res.status !== 429) throw new Error(`${pathname}: ${res.status} ${JSON.stringify(json)}`);
      } catch (err) {
        if ((err as Error).message.startsWith(pathname)) throw err;
      }
      await sleep(500 + Math.random() * 1000);
    }
    throw new Error(`${pathname}: gave up`);
  };
  const client = async (i: number, delayMs = (i / USERS) * 40_000, phase = 'chaos') => {
    await sleep(delayMs);
    const guest = await call('device-check', { device_id: randomUUID(), device_token: randomBytes(96).toString('base64') /* DeviceCheck is not configured here */ });
    const user = { userId: guest.user_id as string, credits: guest.credits_remaining ?? guest.credits ?? 10, jobs: [] as string[] };
    users.push(user);
    for (let j = 0; j < JOBS_PER_USER; j++) {
      const key = randomUUID();
      const job = await call('generate-video', { model_id: 'veo-3.1-text-to-video', prompt: `${phase} ${i}.${j}`, settings: { duration: 4 } }, { authorization: `Bearer ${guest.access_token}`, 'idempotency-key': key });
      user.jobs.push(job.job_id);
    }
    return user.jobs;
  };
  const clients = Promise.allSettled(Array.from({ length: USERS }, (_, i) => client(i)));
  // Jobs watched live across the restart: created just before it, so most end after it.
  const watchSome = async (n: number): Promise<LiveWatch[]> => {
    for (let i = 0; i < 600; i++) {
      if ((await fetch(`http://127.0.0.1:${ports[0]}/ready`).then((r) => r.status).catch(() => 0)) === 200) break;
      await sleep(100);
    }
    return Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const guest = await call('device-check', { device_id: randomUUID(), device_token: randomBytes(96).toString('base64') });
        users.push({ userId: guest.user_id, credits: guest.credits_remaining ?? 10, jobs: [] });
        const job = await call('generate-video', { model_id: 'veo-3.1-text-to-video', prompt: `watched ${i}`, settings: { duration: 4 } }, { authorization: `Bearer ${guest.access_token}`, 'idempotency-key': randomUUID() });
        users.at(-1)!.jobs.push(job.job_id);
        return watchJob({ ssePort: ports[1]!, realtimePort: ports[0]! }, guest.access_token, job.job_id);
      }),
    );
  };

  // The faults of the run.
  await sleep(10_000);
  say('SIGKILL worker1 (restarted in 3 s)');
  kill(workers[0]!);
  await sleep(3000);
  workers[0] = worker(0);
  await sleep(5000);
  say('SIGKILL api1 (restarted in 2 s)');
  kill(apis[0]!);
  await sleep(2000);
  apis[0] = api(0);
  const watches = await watchSome(Number(args.watch));
  say(`watching ${watches.length} jobs live (SSE on api2, Realtime on api1)`);
  await sleep(1000);
  say('pg_ctl restart -m fast');
  await cluster.restart();
  const restartedAt = Date.now();
  await sleep(8000);
  say('SIGKILL worker2 (not restarted)');
  kill(workers[1]!);
  const clientResults = await clients;
  const clientErrors = clientResults.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
  say(`clients done: ${users.length} users, ${users.reduce((n, u) => n + u.jobs.length, 0)} jobs; settling (bound ${SETTLE_SECONDS} s)`);
  clearInterval(faults);
  fal.server.clearFaults();

  const db = new pg.Client({ connectionString: cluster.url });
  await db.connect();
  /** Waits (bounded) for every job to end; returns how many are still open and how long it took. */
  const settle = async () => {
    const settleStart = Date.now();
    let open = -1;
    while (Date.now() - settleStart < SETTLE_SECONDS * 1000) {
      open = (await db.query("SELECT count(*)::int AS n FROM video_jobs WHERE status NOT IN ('completed', 'failed')")).rows[0].n;
      if (open === 0) break;
      await sleep(1000);
    }
    return { open, settledIn: (Date.now() - settleStart) / 1000 };
  };
  const { open, settledIn } = await settle();
  const mainJobs = users.flatMap((u) => u.jobs);

  // Phase 2: a killed worker's in-flight submits. worker2 is gone for good, so worker1 is the
  // only one: fal creates each request and never answers, and worker1 dies with them in flight.
  say(`phase 2: ${INFLIGHT_JOBS} generates, fal answers no submit, SIGKILL the only worker while they are in flight`);
  const phaseStart = Date.now();
  // Generations outlast the submit lease here, as fal's video models (1-3 min) outlast its 90 s
  // default: the lease alone no longer covers a lost request's callback.
  fal.timing = { queuedMs: 500, runningMs: 7500 };
  fal.loseResponses(INFLIGHT_JOBS, 'hang');
  const phaseClients = Promise.allSettled(Array.from({ length: Math.ceil(INFLIGHT_JOBS / JOBS_PER_USER) }, (_, i) => client(i, 0, 'inflight')));
  const inFlight = () => [...fal.requests.values()].filter((r) => r.createdAt >= phaseStart).length;
  // Within the 2 s provider timeout of the first arrival: those calls are still waiting for their answer.
  for (let first = 0; Date.now() - phaseStart < 30_000; await sleep(20)) {
    if (inFlight() > 0 && !first) first = Date.now();
    if (inFlight() >= Math.min(6, INFLIGHT_JOBS) || (first && Date.now() - first > 1500)) break;
  }
  const killedInFlight = inFlight();
  say(`SIGKILL worker1 with ${killedInFlight} submits in flight (restarted in 1 s)`);
  kill(workers[0]!);
  fal.loseResponses(0);
  await sleep(1000);
  workers[0] = worker(0);
  const phaseResults = await phaseClients;
  clientErrors.push(...phaseResults.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)));
  const phaseJobs = phaseResults.flatMap((r) => (r.status === 'fulfilled' ? r.value : []));
  const phase2 = await settle();
  clearInterval(webhooks);

  // The report.
  const statuses = (await db.query('SELECT status, error_code, count(*)::int AS n FROM video_jobs GROUP BY 1, 2 ORDER BY 1, 2')).rows;
  const violations = await verifyLedger(db);
  const rows = (await db.query('SELECT user_id, status, credits_used FROM video_jobs')).rows as { user_id: string; status: string; credits_used: number }[];
  const accounts = new Map((await db.query('SELECT user_id, balance, held FROM credit_accounts')).rows.map((r) => [r.user_id as string, r as { balance: number; held: number }]));
  let mismatches = 0;
  for (const u of users) {
    // Independent: what the client was granted, less the price of each of its jobs that completed.
    const expected = u.credits - rows.filter((r) => r.user_id === u.userId && r.status === 'completed').length * PRICE;
    const account = accounts.get(u.userId);
    if (Number(account?.balance) !== expected || Number(account?.held) !== 0) mismatches++;
  }
  const perJob = new Map<string, number>();
  for (const r of fal.requests.values()) {
    const jobId = r.webhook ? new URL(r.webhook).searchParams.get('job_id') : null;
    if (jobId) perJob.set(jobId, (perJob.get(jobId) ?? 0) + 1);
  }
  const histogram = new Map<number, number>();
  for (const n of perJob.values()) histogram.set(n, (histogram.get(n) ?? 0) + 1);
  const outcomes = (await db.query('SELECT outcome, count(*)::int AS n FROM provider_submissions GROUP BY 1 ORDER BY 1')).rows;
  // Per phase: duplicates fal bills (its own count: finished requests beyond one per job), what our
  // table says of the requests no job used, and time to video.
  const jobOf = (r: { webhook: string | null }) => (r.webhook ? new URL(r.webhook).searchParams.get('job_id') : null);
  const billedPerJob = new Map<string, number>();
  for (const r of fal.billedRequests()) {
    const jobId = jobOf(r);
    if (jobId) billedPerJob.set(jobId, (billedPerJob.get(jobId) ?? 0) + 1);
  }
  const phaseReport = async (jobIds: string[]) => {
    const ids = new Set(jobIds);
    const billed = [...billedPerJob.entries()].filter(([id]) => ids.has(id)).map(([, n]) => n);
    const duplicates = billed.reduce((sum, n) => sum + Math.max(0, n - 1), 0);
    const requests = [...fal.requests.values()].filter((r) => ids.has(jobOf(r) ?? '')).length;
    const ours = (
      await db.query(
        `SELECT count(*) FILTER (WHERE outcome = 'redundant')::int AS redundant, count(*) FILTER (WHERE outcome = 'redundant' AND billed)::int AS billed,
                count(*) FILTER (WHERE outcome = 'redundant' AND billed IS NULL)::int AS unknown, count(*) FILTER (WHERE outcome = 'adopted')::int AS adopted,
                count(*) FILTER (WHERE outcome = 'sent')::int AS unanswered
           FROM provider_submissions WHERE job_id = ANY($1)`,
        [jobIds],
      )
    ).rows[0];
    // Time to video, for all completed jobs and for those that lost a submit answer (the ones the wait delays or saves).
    const times = async (lostOnly: boolean) =>
      (
        await db.query(
          `SELECT extract(epoch FROM j.completed_at - j.created_at)::float8 AS s FROM video_jobs j
            WHERE j.job_id = ANY($1) AND j.status = 'completed'
              AND (NOT $2 OR EXISTS (SELECT 1 FROM provider_submissions s WHERE s.job_id = j.job_id AND s.outcome IN ('sent', 'adopted')))
            ORDER BY 1`,
          [jobIds, lostOnly],
        )
      ).rows.map((r) => Number(r.s));
    const spread = (t: number[]) =>
      t.length ? `p50 ${t[Math.floor(0.5 * t.length)]!.toFixed(1)} s, p95 ${t[Math.min(t.length - 1, Math.floor(0.95 * t.length))]!.toFixed(1)} s, max ${t.at(-1)!.toFixed(1)} s` : '-';
    const lostTimes = await times(true);
    return {
      billed: `${duplicates} (fal billed ${billed.reduce((a, n) => a + n, 0)} requests for ${ids.size} jobs; ${requests} requests made)`,
      ours: `redundant ${ours.redundant} (billed ${ours.billed}, cancelled in time ${ours.redundant - ours.billed - ours.unknown}, unknown ${ours.unknown}); adopted ${ours.adopted}; never answered ${ours.unanswered}`,
      times: `all: ${spread(await times(false))}; the ${lostTimes.length} that lost an answer: ${spread(lostTimes)}`,
    };
  };
  const main1 = await phaseReport(mainJobs);
  const main2 = await phaseReport(phaseJobs);
  const phase2Statuses = (await db.query('SELECT status, count(*)::int AS n FROM video_jobs WHERE job_id = ANY($1) GROUP BY 1 ORDER BY 1', [phaseJobs])).rows;
  const hooks = (await db.query("SELECT split_part(outcome, ':', 1) AS outcome, count(*)::int AS n FROM webhook_events GROUP BY 1 ORDER BY 1")).rows;
  // Give a subscriber a moment to hear the last job end, then judge.
  for (let i = 0; i < 50 && liveReport(watches, new Map(watches.map((w) => [w.jobId, 0])), restartedAt).missing > 0; i++) await sleep(100);
  const ended = new Map(
    (await db.query<{ job_id: string; completed_at: string }>('SELECT job_id, completed_at FROM video_jobs WHERE job_id = ANY($1)', [watches.map((w) => w.jobId)])).rows.map((r) => [
      r.job_id,
      new Date(r.completed_at).getTime(),
    ]),
  );
  const live = liveReport(watches, ended, restartedAt);
  for (const w of watches) w.close();
  await db.end();

  // Judged before the orderly stop below: what exited during the run, and what died unbidden.
  const exited = procs.filter((p) => p.exit).map((p) => `${p.name} ${p.exit!.signal ?? p.exit!.code}${p.exit!.expected ? ' (killed on purpose)' : ''}`);
  const crashed = procs.filter((p) => p.exit && !p.exit.expected);
  for (const p of crashed) console.error(`--- ${p.name} (exit ${p.exit!.code ?? p.exit!.signal}) last output:\n${p.tail}`);
  for (const p of procs) if (!p.exit) p.proc.kill('SIGTERM');
  await sleep(3000);

  const table: [string, string][] = [
    ['lost-answer wait (SUBMIT_LOST_ANSWER_WAIT_SECONDS)', `${LOST_ANSWER_WAIT} s (lease 5 s; fal fake generations: 3 s in the storm, 8 s with the killed worker)`],
    ['users / jobs', `${users.length} / ${rows.length}`],
    ...statuses.map((s): [string, string] => [`jobs ${s.status}${s.error_code ? ` (${s.error_code})` : ''}`, String(s.n)]),
    ['jobs not terminal', `${open} (all terminal ${settledIn.toFixed(0)} s after the last generate; bound ${SETTLE_SECONDS} s)`],
    ['storm: duplicates fal billed', main1.billed],
    ['storm: our table', main1.ours],
    ['storm: time to video', main1.times],
    ['killed worker: jobs / in flight at the kill', `${phaseJobs.length} / ${killedInFlight}; ${phase2Statuses.map((s) => `${s.status} ${s.n}`).join(', ')}`],
    ['killed worker: jobs not terminal', `${phase2.open} (all terminal ${phase2.settledIn.toFixed(0)} s after the last generate)`],
    ['killed worker: duplicates fal billed', main2.billed],
    ['killed worker: our table', main2.ours],
    ['killed worker: time to video', main2.times],
    ['verify-ledger', violations.length ? `${violations.length} violations` : 'OK'],
    ['balances ≠ independent count (or held ≠ 0)', String(mismatches)],
    ['fal requests per job', [...histogram.entries()].sort().map(([k, v]) => `${k}×: ${v}`).join(', ')],
    ['submissions by outcome', outcomes.map((o) => `${o.outcome} ${o.n}`).join(', ')],
    ['webhooks received by outcome', hooks.map((o) => `${o.outcome} ${o.n}`).join(', ')],
    ...live.rows,
    ['our 5xx by code', [...fiveXX.entries()].map(([k, v]) => `${k}: ${v}`).join(', ') || 'none'],
    ['processes exited during the run', exited.join(', ')],
    ['processes crashed', crashed.map((p) => p.name).join(', ') || 'none'],
    ['client errors', clientErrors.length ? clientErrors.slice(0, 3).join('; ') : 'none'],
  ];
  console.log('\n| check | result |\n|---|---|');
  for (const [k, v] of table) console.log(`| ${k} | ${v} |`);
  await fal.stop();
  await bouncer?.stop();
  await cluster.stop();
  const failed =
    open !== 0 || phase2.open !== 0 || violations.length > 0 || mismatches > 0 || crashed.length > 0 || clientErrors.length > 0 || live.missing > 0;
  console.log(failed ? '\nCHAOS: FAILED' : '\nCHAOS: PASSED');
  process.exit(failed ? 1 : 0);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
