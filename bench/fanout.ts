import { readFileSync } from 'node:fs';
import pg from 'pg';
import WebSocket from 'ws';

/**
 * Realtime fan-out: one job's status change delivered to 1, 100, 1,000 and 5,000 open sockets of
 * one process (the bench's ROLE=api server), each joined to the job's channel as the app joins it
 * (supabase-swift's phx_join, vsn 1.0.0, the owner's access token). Per size: the time from the
 * change's COMMIT returning to the last socket receiving it (p50 / p99 over `changes` changes), the
 * server's memory per open socket (its VmRSS with the sockets open, less its VmRSS before the first
 * was opened, ÷ sockets: the bench gives it a fresh process), and the server's CPU per delivered event. The change is written straight to the job's row, as the worker would commit it;
 * the job's status is put back afterwards.
 */

export interface FanOutRow {
  sockets: number;
  p50_ms: number;
  p99_ms: number;
  rss_per_socket_kib: number;
  cpu_us_per_event: number;
}

const TICKS_PER_S = 100;

function cpuTicks(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

function rssKib(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0);
}

const quantile = (sorted: number[], q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!;

/** A socket joined to the job's channel; resolves once the join is answered and the job's first record arrived. */
function joinedSocket(wsBase: string, jobId: string, token: string, onStatus: (status: string) => void): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${wsBase}/realtime/v1/websocket?apikey=bench&vsn=1.0.0`);
    const topic = `realtime:job-${jobId}`;
    let joined = false;
    ws.once('error', reject);
    ws.on('open', () =>
      ws.send(
        JSON.stringify({
          topic,
          event: 'phx_join',
          ref: '1',
          join_ref: '1',
          payload: {
            config: { broadcast: { ack: false, self: false }, presence: { key: '', enabled: false }, postgres_changes: [{ event: 'UPDATE', schema: 'public', table: 'video_jobs', filter: `job_id=eq.${jobId}` }], private: false },
            access_token: token,
          },
        }),
      ),
    );
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString()) as { event: string; payload: { status?: string; response?: unknown; data?: { record?: { status: string } } } };
      if (m.event === 'phx_reply' && m.payload.status !== 'ok') return reject(new Error(`join refused: ${JSON.stringify(m.payload.response)}`));
      if (m.event !== 'postgres_changes') return;
      const status = m.payload.data?.record?.status;
      if (!status) return;
      if (!joined) {
        joined = true;
        resolve(ws);
      } else onStatus(status);
    });
  });
}

export async function realtimeFanOut(opts: { base: string; dbUrl: string; serverPid: number; jobId: string; token: string; sizes: number[]; changes: number }): Promise<FanOutRow[]> {
  const wsBase = opts.base.replace('http', 'ws');
  const db = new pg.Client({ connectionString: opts.dbUrl });
  await db.connect();
  const original = (await db.query('SELECT status FROM video_jobs WHERE job_id = $1', [opts.jobId])).rows[0].status as string;
  const rows: FanOutRow[] = [];
  // The two internal states alternate, so every change is one the app sees (pending ↔ processing);
  // the first is the one the job is not shown as now.
  const states = [{ internal: 'submitted', shown: 'pending' }, { internal: 'processing', shown: 'processing' }];
  let turn = ['ingesting', 'processing'].includes(original) ? 0 : 1;
  const rssFresh = rssKib(opts.serverPid);
  try {
    for (const size of opts.sizes) {
      let waiting: { shown: string; left: number; done: () => void } | undefined;
      const sockets: WebSocket[] = [];
      const onStatus = (status: string) => {
        if (waiting && status === waiting.shown && --waiting.left === 0) waiting.done();
      };
      // Joined in batches, so the server is not asked for thousands of joins in one instant.
      for (let i = 0; i < size; i += 100) {
        const batch = await Promise.all(Array.from({ length: Math.min(100, size - i) }, () => joinedSocket(wsBase, opts.jobId, opts.token, onStatus)));
        sockets.push(...batch);
      }
      const rssPerSocket = Math.max(0, rssKib(opts.serverPid) - rssFresh) / size;
      const latencies: number[] = [];
      const cpuBefore = cpuTicks(opts.serverPid);
      for (let c = 0; c < opts.changes; c++) {
        const next = states[turn++ % 2]!;
        const delivered = new Promise<void>((done, fail) => {
          const timer = setTimeout(() => fail(new Error(`only ${size - (waiting?.left ?? 0)} of ${size} sockets got the change within 60 s`)), 60_000);
          waiting = { shown: next.shown, left: size, done: () => (clearTimeout(timer), done()) };
        });
        await db.query('UPDATE video_jobs SET status = $2 WHERE job_id = $1', [opts.jobId, next.internal]);
        const committed = performance.now();
        await delivered;
        latencies.push(performance.now() - committed);
      }
      const cpuMs = ((cpuTicks(opts.serverPid) - cpuBefore) / TICKS_PER_S) * 1000;
      for (const ws of sockets) ws.terminate();
      latencies.sort((a, b) => a - b);
      rows.push({
        sockets: size,
        p50_ms: Math.round(quantile(latencies, 0.5) * 10) / 10,
        p99_ms: Math.round(quantile(latencies, 0.99) * 10) / 10,
        rss_per_socket_kib: Math.round(rssPerSocket * 10) / 10,
        cpu_us_per_event: Math.round(((cpuMs * 1000) / (opts.changes * size)) * 10) / 10,
      });
      console.log(`realtime fan-out to ${size} sockets: p50 ${rows.at(-1)!.p50_ms} ms, p99 ${rows.at(-1)!.p99_ms} ms, ${rows.at(-1)!.rss_per_socket_kib} KiB/socket, ${rows.at(-1)!.cpu_us_per_event} µs CPU per delivered event`);
      // Let the server see the closes before the next size opens its sockets.
      await new Promise((r) => setTimeout(r, 500));
    }
  } finally {
    await db.query('UPDATE video_jobs SET status = $2 WHERE job_id = $1', [opts.jobId, original]);
    await db.end();
  }
  return rows;
}
