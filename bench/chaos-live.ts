import WebSocket from 'ws';
import { sseStatuses } from '../test/support/sse.js';

/**
 * npm run chaos's live subscribers: a video-events stream and a Realtime channel per watched job,
 * opened before the database restart. The run turns the fallback re-reads off (EVENTS_REREAD_MS=0),
 * so every status that arrives came through NOTIFY; each arrival is timed against the job's
 * completed_at to show how soon after the change the subscriber heard of it.
 */

export interface LiveWatch {
  jobId: string;
  /** When each public status arrived, by transport (ms since the epoch). */
  sse: Map<string, number>;
  realtime: Map<string, number>;
  close(): void;
}

export async function watchJob(base: { ssePort: number; realtimePort: number }, token: string, jobId: string): Promise<LiveWatch> {
  const w: LiveWatch = { jobId, sse: new Map(), realtime: new Map(), close: () => undefined };
  const abort = new AbortController();
  const res = await fetch(`http://127.0.0.1:${base.ssePort}/functions/v1/video-events?job_id=${jobId}`, { headers: { authorization: `Bearer ${token}` }, signal: abort.signal });
  if (res.status !== 200) throw new Error(`video-events answered ${res.status}`);
  void sseStatuses(res, w.sse).catch(() => undefined);
  const ws = new WebSocket(`ws://127.0.0.1:${base.realtimePort}/realtime/v1/websocket?vsn=1.0.0`);
  await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.event === 'postgres_changes') w.realtime.set(m.payload.data.record.status, Date.now());
  });
  ws.on('error', () => undefined);
  ws.send(
    JSON.stringify({
      topic: `realtime:video-job-${jobId}`,
      event: 'phx_join',
      ref: '1',
      join_ref: '1',
      payload: { config: { postgres_changes: [{ event: 'UPDATE', schema: 'public', table: 'video_jobs', filter: `job_id=eq.${jobId}` }] }, access_token: token },
    }),
  );
  // Phoenix closes a socket without heartbeats; the app's client sends one every 25 s.
  const heartbeat = setInterval(() => ws.send(JSON.stringify({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: 'hb' })), 20_000);
  w.close = () => {
    clearInterval(heartbeat);
    abort.abort();
    ws.terminate();
  };
  return w;
}

const TERMINAL = ['completed', 'failed'];

/** Table rows for the watched jobs, and whether any final status failed to arrive. */
export function liveReport(watches: LiveWatch[], endedAt: Map<string, number>, restartedAt: number): { rows: [string, string][]; missing: number } {
  let missing = 0;
  const lags: number[] = [];
  let afterRestart = 0;
  for (const w of watches) {
    const ended = endedAt.get(w.jobId);
    for (const heard of [w.sse, w.realtime]) {
      const status = TERMINAL.find((s) => heard.has(s));
      if (!status || ended === undefined) {
        missing++;
        continue;
      }
      if (ended > restartedAt) {
        afterRestart++;
        lags.push(heard.get(status)! - ended);
      }
    }
  }
  lags.sort((a, b) => a - b);
  const pct = (p: number) => (lags.length ? `${lags[Math.min(lags.length - 1, Math.floor(p * lags.length))]} ms` : '-');
  return {
    missing,
    rows: [
      ['live subscribers (SSE + Realtime), final status heard', `${watches.length * 2 - missing} of ${watches.length * 2} (NOTIFY only: fallback re-reads off)`],
      ['  of which ended after the database restart', String(afterRestart)],
      ['  delivery after the restart, from the job ending: p50 / max', `${pct(0.5)} / ${pct(1)}`],
    ],
  };
}
