import { isDatabaseUnavailable } from '../db/pool.js';
import type { JobViewRow } from '../db/queries/video-jobs.js';
import type { JobEvents } from './events.js';
import type { JobReads } from './job-reads.js';

const HEARTBEAT_MS = 15_000;

/** What the loop writes to: Hono's SSEStreamingApi as video-events opens it (the route owns the HTTP). */
export interface EventStream {
  readonly aborted: boolean;
  onAbort(listener: () => void): void;
  write(text: string): Promise<unknown>;
  writeSSE(message: { event: string; id?: string; data: string }): Promise<void>;
}

export interface StatusStreamDeps {
  events: Pick<JobEvents, 'subscribe' | 'reads'>;
  /** EVENTS_REREAD_MS: the re-read that makes up for a lost NOTIFY; 0 = none. */
  rereadMs: number;
}

/** Wakes from job events, kept until the reader looks: a wake during a read is not lost. */
class ChangeSignal {
  private pending = false;
  private latest: JobReads | undefined;
  private resolve: ((changed: boolean) => void) | undefined;

  wake(reads: JobReads): void {
    this.pending = true;
    this.latest = reads;
    this.resolve?.(true);
  }

  /** Takes the wake in hand: the reads of the latest change (shared with its other watchers), if one came. */
  clear(): JobReads | undefined {
    const reads = this.latest;
    this.pending = false;
    this.latest = undefined;
    return reads;
  }

  /** True as soon as a wake is pending; false after ms without one. */
  next(ms: number): Promise<boolean> {
    if (this.pending) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => done(false), Math.max(0, ms));
      timer.unref();
      const done = (changed: boolean) => {
        clearTimeout(timer);
        this.resolve = undefined;
        resolve(changed);
      };
      this.resolve = done;
    });
  }
}

/**
 * One job's states as server-sent events (video-events), from the first read until it ends: a
 * "status" event with the owner's view on every change, "deleted" when it is gone, or "error"
 * ({code}) once `refused` reports that the caller may no longer see it, checked before every
 * event after the first.
 */
export async function streamJobStatus(
  stream: EventStream,
  s: StatusStreamDeps,
  jobId: string,
  refused: () => Promise<{ code: string } | undefined>,
): Promise<void> {
  const changes = new ChangeSignal();
  const unsubscribe = await s.events.subscribe(jobId, (reads) => changes.wake(reads));
  stream.onAbort(unsubscribe);
  // Pings keep proxies from closing a quiet stream; the re-read is the fallback for a lost NOTIFY.
  const waitForChange = async () => {
    const rereadAt = s.rereadMs ? Date.now() + s.rereadMs : Infinity;
    while (!stream.aborted && !(await changes.next(Math.min(HEARTBEAT_MS, rereadAt - Date.now())))) {
      await stream.write(': ping\n\n');
      if (Date.now() >= rereadAt) return;
    }
  };
  try {
    let sent: string | undefined;
    while (!stream.aborted) {
      // A wake from here on means: read again.
      const reads = changes.clear() ?? s.events.reads(jobId);
      let job: JobViewRow | undefined;
      let refusal: { code: string } | undefined;
      try {
        job = await reads.read();
        if (job && !job.deleted_at && sent !== undefined) refusal = await refused();
      } catch (err) {
        // The database is away (a restart): keep the stream open and read again once it is
        // back, woken by the LISTEN connection's reconnect or after a short wait.
        if (!isDatabaseUnavailable(err)) throw err;
        await stream.write(': waiting for the database\n\n');
        await changes.next(1000);
        continue;
      }
      if (!job || job.deleted_at) {
        await stream.writeSSE({ event: 'deleted', data: JSON.stringify({ job_id: jobId }) });
        return;
      }
      if (refusal) {
        await stream.writeSSE({ event: 'error', data: JSON.stringify({ code: refusal.code }) });
        return;
      }
      const current = (await reads.view())!;
      if (current.status !== sent) {
        await stream.writeSSE({ event: 'status', id: `${jobId}:${current.status}`, data: JSON.stringify(current) });
        sent = current.status;
      }
      if (current.status === 'completed' || current.status === 'failed') return;
      await waitForChange();
    }
  } finally {
    unsubscribe();
  }
}
