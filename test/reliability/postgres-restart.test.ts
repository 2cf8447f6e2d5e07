import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyLedger } from '../../src/ledger/verify.js';
import { deviceToken } from '../fakes/device-check.js';
import { freePort, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.js';
import { forEachSseEvent } from '../support/sse.js';

/**
 * Issue 14 items 1 and 5: PostgreSQL restarts (pg_ctl restart -m fast: every connection gets
 * 57P01) while an API process and a worker process are busy with jobs and live SSE streams. The
 * worker must ride it out (no exit), every job must end, and every open stream must stay open and
 * deliver the job's final status. A private cluster: the shared one is never restarted.
 */

const ROOT = path.resolve(import.meta.dirname, '../..');

interface Proc {
  proc: ChildProcess;
  exitCode: () => number | null | undefined;
  output: () => string;
  stop: () => Promise<void>;
}

function start(env: Record<string, string>): Proc {
  let out = '';
  let code: number | null | undefined;
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], { cwd: ROOT, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d) => (out = (out + d).slice(-20_000)));
  proc.stderr!.on('data', (d) => (out = (out + d).slice(-20_000)));
  const exited = new Promise<void>((resolve) => proc.on('exit', (c, signal) => ((code = signal ? -1 : c), resolve())));
  return {
    proc,
    exitCode: () => code,
    output: () => out,
    stop: async () => {
      if (code === undefined) proc.kill('SIGTERM');
      await exited;
    },
  };
}

async function until<T>(what: string, fn: () => Promise<T | undefined>, limitMs: number): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = await fn().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Reads a job's SSE stream to its end; returns the statuses it carried. */
async function statusesOf(res: Response): Promise<string[]> {
  const statuses: string[] = [];
  await forEachSseEvent(res, (e) => e.event === 'status' && statuses.push(e.data.status));
  return statuses;
}

describe('a PostgreSQL restart under load', () => {
  let cluster: PrivatePostgres;
  let api: Proc;
  let worker: Proc;
  let port: number;

  beforeAll(async () => {
    cluster = await startPrivatePostgres('restart');
    port = await freePort();
    const env = {
      DATABASE_URL: cluster.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
      JWT_SECRET: 'restart-test-secret-that-is-long-enough-0123456789',
      DATA_DIR: path.join(os.tmpdir(), `rendio-restart-${randomUUID()}`),
      LOG_LEVEL: 'warn',
      SIMULATOR_DELAY_MS: '3000',
      WORKER_POLL_INTERVAL_MS: '200',
      WORKER_CONCURRENCY: '6',
      SUBMIT_LEASE_SECONDS: '5',
      JOB_QUIET_SECONDS: '5',
      PROVIDER_RETRY_BASE_MS: '200',
      // One loopback address plays 30 users here: rate limits are test/security/rate-limits.test.ts's subject.
      RATE_LIMITS_ENABLED: 'false',
    };
    api = start({ ...env, ROLE: 'api' });
    await until('the API', async () => ((await fetch(`http://127.0.0.1:${port}/ready`)).status === 200 ? true : undefined), 120_000);
    worker = start({ ...env, ROLE: 'worker' });
  }, 180_000);

  afterAll(async () => {
    await worker?.stop();
    await api?.stop();
    await cluster?.stop();
  }, 60_000);

  it('the worker survives, every job ends, and live streams deliver the final status', { timeout: 300_000 }, async () => {
    const base = `http://127.0.0.1:${port}/functions/v1`;
    const post = async (p: string, body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}/${p}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
      if (res.status !== 200) throw new Error(`${p} answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as any;
    };
    const generate = async () => {
      const guest = await until('onboarding', () => post('device-check', { device_id: randomUUID(), device_token: deviceToken('restart') }), 60_000);
      const key = randomUUID();
      const job = await until(
        'generate',
        () => post('generate-video', { model_id: 'simulator-text-to-video', prompt: 'ride out a restart' }, { authorization: `Bearer ${guest.access_token}`, 'idempotency-key': key }),
        60_000,
      );
      return { token: guest.access_token as string, jobId: job.job_id as string };
    };

    const jobs = await Promise.all(Array.from({ length: 30 }, generate));
    // Live streams opened before the restart, read to their end.
    const streams = jobs.slice(0, 10).map(async ({ token, jobId }) => {
      const res = await fetch(`${base}/video-events?job_id=${jobId}`, { headers: { authorization: `Bearer ${token}` } });
      expect(res.status).toBe(200);
      return statusesOf(res);
    });
    // Wait until the worker is busy with them, then restart the database twice, with more work arriving.
    const db = () => new pg.Client({ connectionString: cluster.url });
    const count = async (sql: string) => {
      const c = db();
      await c.connect();
      try {
        return Number((await c.query(sql)).rows[0].n);
      } finally {
        await c.end();
      }
    };
    await until('jobs in flight', async () => ((await count("SELECT count(*) AS n FROM video_jobs WHERE status <> 'queued'")) >= 10 ? true : undefined), 120_000);
    const more = Promise.all(Array.from({ length: 10 }, generate));
    // What a restart does to the worker's in-flight statements (57P01), made frequent enough that
    // some land on graphile-worker's own job completions, then the real restarts.
    const killer = db();
    await killer.connect();
    for (let i = 0; i < 60; i++) {
      await killer.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'rendio-worker'");
      await new Promise((r) => setTimeout(r, 50));
    }
    await killer.end();
    await cluster.restart();
    await new Promise((r) => setTimeout(r, 1500));
    await cluster.restart();
    jobs.push(...(await more));

    const unfinished = await until(
      'every job to end',
      async () => {
        const n = await count("SELECT count(*) AS n FROM video_jobs WHERE status NOT IN ('completed', 'failed')");
        return n === 0 ? n : undefined;
      },
      180_000,
    ).catch(() => -1);
    expect(worker.exitCode(), worker.output()).toBeUndefined();
    expect(api.exitCode(), api.output()).toBeUndefined();
    expect(unfinished, worker.output()).toBe(0);
    expect(await count('SELECT count(*) AS n FROM video_jobs')).toBe(40);

    for (const statuses of await Promise.all(streams)) {
      expect(['completed', 'failed']).toContain(statuses.at(-1));
    }
    const c = db();
    await c.connect();
    try {
      expect(await verifyLedger(c)).toEqual([]);
    } finally {
      await c.end();
    }
  });
});
