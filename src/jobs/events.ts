import type { DatabaseListener } from '../db/listener.js';
import type { Queryable } from '../db/pool.js';
import type { JobViewRow } from '../db/queries/video-jobs.js';
import { JobReads } from './job-reads.js';
import type { JobView } from './job-view.js';

/** A watcher of one job: woken with the reads it shares with every other watcher of that change. */
export type JobWake = (reads: JobReads) => void;

/** The NOTIFY channel of the video_jobs trigger (migration 0004): a payload {"job_id": …} per change. */
export const JOB_EVENTS_CHANNEL = 'video_job_events';

/**
 * Job state changes for SSE and Realtime subscribers, fanned out by job id from the process's
 * LISTEN connection (db/listener.ts). A wake means "read the job again"; it carries no state, only the reads (JobReads) every watcher
 * woken by the same change shares, so a change watched by thousands of sockets is read once.
 *
 * NOTIFY is the primary path. Subscribers are also woken when the connection is lost and when it
 * listens again (a change in between went unheard), and, while it is down, every `rereadMs` (a
 * database restart can take minutes; 0 turns that fallback off, for tests that must see NOTIFY
 * deliver).
 */
export class JobEvents {
  private readonly subscribers = new Map<string, Set<JobWake>>();
  private stopListening: (() => void) | undefined;
  private starting: Promise<void> | undefined;
  private fallback: NodeJS.Timeout | undefined;

  constructor(
    private readonly listener: DatabaseListener,
    private readonly rereadMs: number,
    private readonly reader: { db: Queryable; view: (job: JobViewRow) => Promise<JobView> },
  ) {}

  /** Fresh reads of a job, for a watcher reading on its own (its first read, a retry). */
  reads(jobId: string): JobReads {
    return new JobReads(this.reader.db, this.reader.view, jobId);
  }

  private wake(jobId: string, set: Set<JobWake>): void {
    const reads = this.reads(jobId);
    for (const wake of set) wake(reads);
  }

  /** True while changes arrive through NOTIFY (no fallback re-reads are running). */
  get live(): boolean {
    return this.listener.live;
  }

  private start(): Promise<void> {
    this.starting ??= this.listener
      .listen(JOB_EVENTS_CHANNEL, {
        onNotify: (payload) => {
          let jobId: unknown;
          try {
            jobId = (JSON.parse(payload) as { job_id?: unknown }).job_id;
          } catch {
            return; // a malformed payload is not ours
          }
          const set = typeof jobId === 'string' ? this.subscribers.get(jobId) : undefined;
          if (set) this.wake(jobId as string, set);
        },
        onReset: (live) => {
          this.wakeAll();
          this.setFallback(!live);
        },
      })
      .then((stop) => {
        this.stopListening = stop;
        this.setFallback(!this.listener.live);
      });
    return this.starting;
  }

  /** While the LISTEN connection is down, subscribers re-read on a timer instead. */
  private setFallback(on: boolean): void {
    clearInterval(this.fallback);
    this.fallback = undefined;
    if (!on || !this.rereadMs) return;
    this.fallback = setInterval(() => this.wakeAll(), this.rereadMs);
    this.fallback.unref();
  }

  private wakeAll(): void {
    for (const [jobId, set] of this.subscribers) this.wake(jobId, set);
  }

  /** Calls wake on every change of this job until the returned function is called. */
  async subscribe(jobId: string, wake: JobWake): Promise<() => void> {
    await this.start();
    let set = this.subscribers.get(jobId);
    if (!set) this.subscribers.set(jobId, (set = new Set()));
    set.add(wake);
    return () => {
      set!.delete(wake);
      if (set!.size === 0 && this.subscribers.get(jobId) === set) this.subscribers.delete(jobId);
    };
  }

  close(): void {
    clearInterval(this.fallback);
    this.stopListening?.();
  }
}
