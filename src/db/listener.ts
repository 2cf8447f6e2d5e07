import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { Logger } from '../logger.js';

/**
 * The process's one LISTEN connection. Job events (SSE, Realtime), the catalogue cache and the
 * worker's queue nudges each name their channel here and share it. It is a direct connection
 * (DATABASE_DIRECT_URL): a transaction pooler hands each statement to any server connection, so a
 * LISTEN through it hears nothing.
 *
 * While it is down nothing is heard, so every channel's onReset runs twice: when it is lost (read
 * the truth from the database instead of waiting for a NOTIFY) and when it listens again (anything
 * changed in between went unheard). It reconnects for as long as the process lives: at once, then
 * with capped, jittered backoff, each attempt a new client.
 */

export interface ChannelHandlers {
  onNotify(payload: string): void;
  /** The connection was lost (live = false) or listens again (live = true): changes may have gone unheard. */
  onReset?(live: boolean): void;
}

export interface ListenerOptions {
  applicationName?: string;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  /** A statement on the idle connection this often, so a half-open one (a dropped network path) is noticed. */
  pingIntervalMs?: number;
  /** How long connecting (and each ping) may take before the attempt counts as failed. */
  connectTimeoutMs?: number;
}

const CHANNEL_NAME = /^[a-z_][a-z0-9_:]*$/i;

export class DatabaseListener {
  private client: pg.Client | undefined;
  private readonly channels = new Map<string, Set<ChannelHandlers>>();
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | undefined;
  private closed = false;
  private started = false;
  private readonly waiters = new Set<() => void>();
  /** Times the connection was (re)opened: tests and metrics see a reconnect happen. */
  connects = 0;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
    private readonly opts: ListenerOptions = {},
  ) {}

  /** True while a LISTEN connection is open and listening on every channel. */
  get live(): boolean {
    return this.client !== undefined;
  }

  /** Opens the connection (and keeps reopening it). Resolves once listening, or at once if that fails for now. */
  start(): Promise<boolean> {
    if (!this.started && !this.closed) {
      this.started = true;
      this.schedule(0);
    }
    return this.whenLive(this.opts.connectTimeoutMs ?? 5000);
  }

  /** Resolves when live (true) or after timeoutMs (false). */
  whenLive(timeoutMs: number): Promise<boolean> {
    if (this.live) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(t);
        this.waiters.delete(wake);
        resolve(v);
      };
      const wake = () => done(true);
      // Not unref'd: at start-up this wait may be all that keeps the event loop alive.
      const t = setTimeout(() => done(false), timeoutMs);
      this.waiters.add(wake);
    });
  }

  /**
   * True when a NOTIFY sent through `db` reaches this connection within timeoutMs. False means the
   * two are not one database as seen by LISTEN: most often, this connection goes through a
   * transaction pooler (which hands the LISTEN to a server connection and drops what it hears).
   */
  async hears(db: { query(text: string, values?: unknown[]): Promise<unknown> }, timeoutMs: number): Promise<boolean> {
    const channel = `rendio_probe_${randomBytes(6).toString('hex')}`;
    let heard!: () => void;
    const arrived = new Promise<boolean>((resolve) => {
      heard = () => resolve(true);
      setTimeout(() => resolve(false), timeoutMs);
    });
    const stop = await this.listen(channel, { onNotify: () => heard() });
    try {
      await db.query('SELECT pg_notify($1, $2)', [channel, '']);
      return await arrived;
    } finally {
      stop();
    }
  }

  /** Starts hearing `channel`; the returned function stops. */
  async listen(channel: string, handlers: ChannelHandlers): Promise<() => void> {
    if (!CHANNEL_NAME.test(channel)) throw new Error(`not a channel name: ${channel}`);
    let set = this.channels.get(channel);
    const isNew = !set;
    if (!set) this.channels.set(channel, (set = new Set()));
    set.add(handlers);
    if (isNew && this.client) {
      // A failure here is a lost connection: its handler reopens it and LISTENs on every channel.
      await this.client.query(`LISTEN ${quote(channel)}`).catch(() => undefined);
    } else if (!this.started) {
      // The first channel opens the connection (waiting a little for it). A channel added while it
      // is down is heard once it is open again (connect() LISTENs on every channel it knows), and
      // its onReset(true) then says that something may have gone unheard.
      await this.start();
    }
    return () => {
      set!.delete(handlers);
      if (set!.size || this.channels.get(channel) !== set) return;
      this.channels.delete(channel);
      void this.client?.query(`UNLISTEN ${quote(channel)}`).catch(() => undefined);
    };
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.timer || this.connecting) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connecting = this.connect().then((retryInMs) => {
        this.connecting = undefined;
        if (retryInMs !== undefined) this.schedule(retryInMs);
      });
    }, delayMs);
    // Not unref'd: while a start-up waits for this connection nothing else may hold the event loop
    // open, and node would exit 0 without a word (seen in npm run chaos). close() clears it.
  }

  private backoffMs(): number {
    const min = this.opts.reconnectMinMs ?? 100;
    const max = this.opts.reconnectMaxMs ?? 5000;
    return Math.min(max, min * 2 ** Math.min(this.attempt, 16)) * (0.5 + Math.random() / 2);
  }

  /** One attempt; returns when to try again if it failed. */
  private async connect(): Promise<number | undefined> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: this.opts.applicationName ?? 'rendio-listen',
      connectionTimeoutMillis: this.opts.connectTimeoutMs ?? 5000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    let lost = false;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      clearInterval(this.pinger);
      void client.end().catch(() => undefined);
      if (this.client !== client) return; // a failed attempt: retried below
      this.client = undefined;
      if (this.closed) return;
      this.log.warn({ err }, 'LISTEN connection lost; reconnecting');
      this.reset(false);
      this.schedule(0);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', (msg) => {
      for (const h of this.channels.get(msg.channel) ?? []) {
        try {
          h.onNotify(msg.payload ?? '');
        } catch (err) {
          this.log.error({ err, channel: msg.channel }, 'LISTEN handler failed');
        }
      }
    });
    const names = [...this.channels.keys()];
    try {
      await client.connect();
      if (names.length) await client.query(names.map((c) => `LISTEN ${quote(c)};`).join(' '));
    } catch (err) {
      lost = true;
      await client.end().catch(() => undefined);
      if (this.closed) return undefined;
      this.attempt++;
      if (this.attempt === 1 || this.attempt % 10 === 0) this.log.warn({ err, attempt: this.attempt }, 'LISTEN connection failed; retrying');
      return this.backoffMs();
    }
    if (this.closed || lost) {
      await client.end().catch(() => undefined);
      this.attempt++;
      return this.closed ? undefined : this.backoffMs();
    }
    this.client = client;
    // Channels added while connecting were not in the LISTEN above (listen() saw no client yet).
    const added = [...this.channels.keys()].filter((c) => !names.includes(c));
    if (added.length) await client.query(added.map((c) => `LISTEN ${quote(c)};`).join(' ')).catch(() => undefined);
    const reconnected = this.connects > 0;
    this.connects++;
    this.attempt = 0;
    if (reconnected) this.log.info('LISTEN connection open again');
    const pingTimeoutMs = this.opts.connectTimeoutMs ?? 5000;
    this.pinger = setInterval(() => {
      const timeout = setTimeout(() => onLost(new Error(`LISTEN connection did not answer a ping within ${pingTimeoutMs} ms`)), pingTimeoutMs);
      client.query('SELECT 1').then(
        () => clearTimeout(timeout),
        (err: Error) => {
          clearTimeout(timeout);
          onLost(err);
        },
      );
    }, this.opts.pingIntervalMs ?? 30_000);
    this.pinger.unref();
    for (const wake of [...this.waiters]) wake();
    this.reset(true);
    return undefined;
  }

  private reset(live: boolean): void {
    for (const set of this.channels.values()) {
      for (const h of set) {
        try {
          h.onReset?.(live);
        } catch (err) {
          this.log.error({ err }, 'LISTEN reset handler failed');
        }
      }
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    clearInterval(this.pinger);
    await this.connecting?.catch(() => undefined);
    const client = this.client;
    this.client = undefined;
    await client?.end().catch(() => undefined);
  }
}

function quote(channel: string): string {
  return `"${channel}"`;
}
