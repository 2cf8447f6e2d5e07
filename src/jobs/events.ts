import pg from 'pg';
import type { Logger } from '../logger.js';

/**
 * Job state changes for SSE subscribers. One LISTEN connection per process (opened on the first
 * subscriber, reconnected on loss) fans NOTIFYs from the video_jobs trigger out by job id.
 */
export class JobEvents {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly subscribers = new Map<string, Set<() => void>>();
  private closed = false;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
  ) {}

  private async connect(): Promise<void> {
    const client = new pg.Client({ connectionString: this.connectionString, application_name: 'rendio-events' });
    client.on('notification', (msg) => {
      try {
        const { job_id } = JSON.parse(msg.payload ?? '{}') as { job_id?: string };
        if (job_id) for (const wake of this.subscribers.get(job_id) ?? []) wake();
      } catch {
        // a malformed payload is not ours
      }
    });
    client.on('error', (err) => {
      this.log.warn({ err }, 'job events connection lost; reconnecting');
      this.client = undefined;
      this.connecting = undefined;
      // Subscribers may have missed a change: wake them all so they re-read the job.
      for (const set of this.subscribers.values()) for (const wake of set) wake();
      if (!this.closed && this.subscribers.size) setTimeout(() => void this.ensure().catch(() => undefined), 1000).unref();
    });
    await client.connect();
    await client.query('LISTEN video_job_events');
    this.client = client;
  }

  private ensure(): Promise<void> {
    if (this.client) return Promise.resolve();
    this.connecting ??= this.connect().catch((err) => {
      this.connecting = undefined;
      throw err;
    });
    return this.connecting;
  }

  /** Calls wake on every change of this job until the returned function is called. */
  async subscribe(jobId: string, wake: () => void): Promise<() => void> {
    await this.ensure();
    let set = this.subscribers.get(jobId);
    if (!set) this.subscribers.set(jobId, (set = new Set()));
    set.add(wake);
    return () => {
      set!.delete(wake);
      if (set!.size === 0) this.subscribers.delete(jobId);
    };
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}
