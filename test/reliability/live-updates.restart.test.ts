import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { deviceToken } from '../fakes/device-check.js';
import { freePort, startPrivatePostgres, type PrivatePostgres } from '../support/private-postgres.js';
import { startServer, waitFor, type ServerProcess } from '../support/process.js';
import { sseStatuses } from '../support/sse.js';

/**
 * Live updates after a PostgreSQL restart. The server's fallback re-reads are turned off
 * (EVENTS_REREAD_MS=0), so every status that reaches an SSE stream or a Realtime channel after the
 * restart came through NOTIFY on the reopened LISTEN connection: a process that stopped listening
 * (a reconnect that reused its settled promise and opened nothing) delivers none of them.
 */

const JOBS = 4;

interface Watched {
  jobId: string;
  /** When each status arrived, by transport. */
  sse: Map<string, number>;
  realtime: Map<string, number>;
}

describe('live updates across a PostgreSQL restart', () => {
  let cluster: PrivatePostgres;
  let server: ServerProcess;
  let port: number;
  const sockets: WebSocket[] = [];

  beforeAll(async () => {
    cluster = await startPrivatePostgres('live-updates');
    port = await freePort();
    server = startServer({
      DATABASE_URL: cluster.url,
      PORT: String(port),
      HOST: '127.0.0.1',
      NODE_ENV: 'test',
      JWT_SECRET: 'live-updates-test-secret-that-is-long-enough-0123',
      ANON_KEY: 'live-updates-anon-key',
      DATA_DIR: path.join(os.tmpdir(), `rendio-live-${randomUUID()}`),
      LOG_LEVEL: 'warn',
      EVENTS_REREAD_MS: '0',
      // Long enough that every job is still running when the database comes back.
      SIMULATOR_DELAY_MS: '30000',
      WORKER_POLL_INTERVAL_MS: '200',
      JOB_QUIET_SECONDS: '5',
      PROVIDER_RETRY_BASE_MS: '200',
      RATE_LIMITS_ENABLED: 'false',
    });
    await waitFor('the server', async () => (await fetch(`http://127.0.0.1:${port}/ready`).catch(() => undefined))?.status === 200, 120_000, () => server.output());
  }, 180_000);

  afterAll(async () => {
    for (const s of sockets) s.terminate();
    server?.proc.kill('SIGTERM');
    await server?.exited;
    await cluster?.stop();
  }, 60_000);

  const listenSessions = async (): Promise<{ n: number; since: Date | null }> => {
    const c = new pg.Client({ connectionString: cluster.url });
    await c.connect();
    try {
      const { rows } = await c.query("SELECT count(*)::int AS n, min(backend_start) AS since FROM pg_stat_activity WHERE application_name = 'rendio-listen'");
      return rows[0];
    } finally {
      await c.end();
    }
  };

  it('every status after the restart reaches SSE and Realtime through NOTIFY on the one reopened LISTEN connection', { timeout: 300_000 }, async () => {
    const base = `http://127.0.0.1:${port}/functions/v1`;
    const post = async (p: string, body: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${base}/${p}`, { method: 'POST', headers: { 'content-type': 'application/json', apikey: 'live-updates-anon-key', ...headers }, body: JSON.stringify(body) });
      if (res.status !== 200) throw new Error(`${p} answered ${res.status}: ${await res.text()}`);
      return (await res.json()) as any;
    };
    // One LISTEN connection for the whole process (events, catalogue, the worker's wake-ups).
    expect((await listenSessions()).n).toBe(1);

    const watched: Watched[] = [];
    const streams: Promise<void>[] = [];
    for (let i = 0; i < JOBS; i++) {
      const guest = await post('device-check', { device_id: randomUUID(), device_token: deviceToken('live') });
      const job = await post('generate-video', { model_id: 'simulator-text-to-video', prompt: 'live through a restart' }, { authorization: `Bearer ${guest.access_token}`, 'idempotency-key': randomUUID() });
      const w: Watched = { jobId: job.job_id, sse: new Map(), realtime: new Map() };
      watched.push(w);
      const res = await fetch(`${base}/video-events?job_id=${w.jobId}`, { headers: { authorization: `Bearer ${guest.access_token}`, apikey: 'live-updates-anon-key' } });
      expect(res.status).toBe(200);
      streams.push(sseStatuses(res, w.sse).then(() => undefined));
      const ws = new WebSocket(`ws://127.0.0.1:${port}/realtime/v1/websocket?apikey=live-updates-anon-key&vsn=1.0.0`);
      sockets.push(ws);
      await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
      ws.on('message', (data) => {
        const m = JSON.parse(data.toString());
        if (m.event === 'postgres_changes') w.realtime.set(m.payload.data.record.status, Date.now());
      });
      const topic = `realtime:video-job-${w.jobId}`;
      ws.send(JSON.stringify({
        topic, event: 'phx_join', ref: '1', join_ref: '1',
        payload: { config: { postgres_changes: [{ event: 'UPDATE', schema: 'public', table: 'video_jobs', filter: `job_id=eq.${w.jobId}` }] }, access_token: guest.access_token },
      }));
    }
    await waitFor('every job processing, on both transports', () => watched.every((w) => w.sse.has('processing') && w.realtime.has('processing')), 120_000);

    const restartedAt = new Date();
    await cluster.restart();
    let reopenedAt = 0;
    await waitFor('the LISTEN connection open again', async () => {
      const s = await listenSessions().catch(() => undefined);
      if (!(s?.n === 1 && s.since !== null && new Date(s.since) > restartedAt)) return false;
      reopenedAt = new Date(s.since).getTime();
      return true;
    }, 60_000, () => server.output());

    await Promise.race([Promise.all(streams), new Promise((r) => setTimeout(r, 120_000))]);
    await waitFor('the final status on every Realtime channel', () => watched.every((w) => w.realtime.has('completed')), 60_000);

    // Every job ended after the LISTEN connection was back (so what told the subscribers was a
    // NOTIFY, not the wake on reconnecting), and the fallback is off: nothing else could have.
    const c = new pg.Client({ connectionString: cluster.url });
    await c.connect();
    const { rows } = await c.query<{ job_id: string; completed_at: string }>('SELECT job_id, completed_at FROM video_jobs WHERE job_id = ANY($1)', [watched.map((w) => w.jobId)]);
    await c.end();
    const lags = rows.flatMap((r) => {
      const w = watched.find((x) => x.jobId === r.job_id)!;
      const at = new Date(r.completed_at).getTime();
      return [w.sse.get('completed')! - at, w.realtime.get('completed')! - at];
    });
    expect(watched.every((w) => w.sse.has('completed'))).toBe(true);
    for (const r of rows) expect(new Date(r.completed_at).getTime()).toBeGreaterThan(reopenedAt);
    expect((await listenSessions()).n).toBe(1);
    console.log(`[live updates] delivery after the restart, ms from completed_at: ${lags.sort((a, b) => a - b).join(', ')}`);
  });
});
