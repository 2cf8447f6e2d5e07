import pg from 'pg';
import type { Logger } from '../logger.js';

/**
 * Job state changes for SSE subscribers. One LISTEN connection per process (opened on the first
 * subscriber) fans NOTIFYs from the video_jobs trigger out by job id. When it is lost (a database
 * restart), it is reopened at once and then with backoff for as long as anyone listens, and every
 * subscriber is woken twice — on the loss and once listening again — so each re-reads its job and
 * no change made while nobody listened goes unseen.
 */
const RECONNECT_MIN_MS = 100;
const RECONNECT_MAX_MS = 5000;

export class JobEvents {
  private client: pg.Client | undefined;
  private connecting: Promise<void> | undefined;
  private readonly subscribers = new Map<string, Set<() => void>>();
  private closed = false;
  private reconnectTimer: NodeJS.Timeout | undefined;

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
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost || this.closed) return;
      lost = true;
      this.log.warn({ err }, 'job events connection lost; reconnecting');
      if (this.client === client) this.client = undefined;
      this.wakeAll();
      this.reconnect(0);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    try {
      await client.connect();
      await client.query('LISTEN video_job_events');
    } catch (err) {
      lost = true; // a failed attempt is retried by whoever made it
      await client.end().catch(() => undefined);
      throw err;
    }
    this.client = client;
  }

  /** Subscribers may have missed a change: each re-reads its job. */
  private wakeAll(): void {
    for (const set of this.subscribers.values()) for (const wake of set) wake();
  }

  private reconnect(attempt: number): void {
    if (this.closed || this.reconnectTimer || !this.subscribers.size) return;
    const delay = attempt === 0 ? 0 : Math.min(RECONNECT_MAX_MS, RECONNECT_MIN_MS * 2 ** attempt) * (0.5 + Math.random() / 2);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.ensure().then(
        () => {
          this.log.info('job events listening again');
          this.wakeAll();
        },
        () => this.reconnect(attempt + 1),
      );
    }, delay);
    this.reconnectTimer.unref();
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
    clearTimeout(this.reconnectTimer);
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }
}
