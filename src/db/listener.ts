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
 * with capped, jittered backoff, each attempt a new client. A connection that dies soon after it
 * opened (a flapping network path) counts as a failed attempt, so it backs off too.
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
  /** How long connecting, each LISTEN and each ping may take before the connection counts as lost. */
  statementTimeoutMs?: number;
  /** How long a connection must have lived for its loss to be retried at once. */
  stableAfterMs?: number;
}

interface Queryable {
  query(text: string, values?: unknown[]): Promise<unknown>;
}

const CHANNEL_NAME = /^[a-z_][a-z0-9_:]*$/i;
const REPROBE_MS = 60_000;

export class DatabaseListener {
  /** Set only while open and listening on every channel. */
  private client: pg.Client | undefined;
  private readonly channels = new Map<string, Set<ChannelHandlers>>();
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private pinger: NodeJS.Timeout | undefined;
  /** The tail of the statements sent on the open connection, one at a time (command()). */
  private commands: Promise<unknown> = Promise.resolve();
  private connecting: Promise<void> | undefined;
  private retryAfterConnect: number | undefined;
  private closed = false;
  private started = false;
  private readonly waiters = new Set<() => void>();
  /** A NOTIFY sent through the pool did not reach this connection: it hears nothing useful. */
  private deaf = false;
  private probeDb: Queryable | undefined;
  private probeTimer: NodeJS.Timeout | undefined;
  /** Gives up the open connection as lost (it is then reopened). */
  private dropConnection: ((err: Error) => void) | undefined;
  /** Times the connection was (re)opened: tests and metrics see a reconnect happen. */
  connects = 0;

  constructor(
    private readonly connectionString: string,
    private readonly log: Logger,
    private readonly opts: ListenerOptions = {},
  ) {}

  private get timeoutMs(): number {
    return this.opts.statementTimeoutMs ?? 5000;
  }

  /** True while changes arrive: a LISTEN connection is open on every channel and hears the pool's NOTIFYs. */
  get live(): boolean {
    return this.client !== undefined && !this.deaf;
  }

  /** Opens the connection (and keeps reopening it). Resolves true once listening, false if not within the statement timeout. */
  start(): Promise<boolean> {
    if (!this.started && !this.closed) {
      this.started = true;
      this.schedule(0);
    }
    return this.whenOpen(this.timeoutMs);
  }

  private whenOpen(timeoutMs: number): Promise<boolean> {
    if (this.client) return Promise.resolve(true);
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
   * Checks now, after every reconnect, and every minute while it fails, that a NOTIFY sent through
   * `db` (the pool) reaches this connection. While it does not, the listener is not live, so the
   * catalogue caches nothing and subscribers fall back to re-reads. The usual cause: the direct URL
   * points at a transaction pooler, which hands the LISTEN to some server connection and drops what
   * it hears.
   */
  async verifyHearing(db: Queryable): Promise<boolean> {
    this.probeDb = db;
    return this.probe();
  }

  private async probe(): Promise<boolean> {
    const db = this.probeDb;
    if (!db || !this.client || this.closed) return false;
    clearTimeout(this.probeTimer);
    const heard = await this.hears(db, this.timeoutMs).catch(() => false);
    if (this.closed || !this.client) return heard;
    if (!heard) {
      this.probeTimer = setTimeout(() => void this.probe(), REPROBE_MS);
      this.probeTimer.unref();
    }
    if (heard === !this.deaf) return heard;
    this.deaf = !heard;
    if (this.deaf) {
      this.log.error(
        `the LISTEN connection heard no NOTIFY sent through DATABASE_URL within ${this.timeoutMs} ms: if DATABASE_URL is a transaction ` +
          'pooler, set DATABASE_DIRECT_URL to a direct (session) connection to the same database (docs/DEPLOY.md "Scaling out"); ' +
          'until it hears, live updates fall back to re-reads and get-models is not cached',
      );
    } else {
      this.log.info('the LISTEN connection hears NOTIFYs sent through DATABASE_URL again');
    }
    this.reset(!this.deaf);
    return heard;
  }

  /** True when a NOTIFY sent through `db` reaches this connection within timeoutMs. */
  private async hears(db: Queryable, timeoutMs: number): Promise<boolean> {
    const channel = `rendio_probe_${randomBytes(6).toString('hex')}`;
    let heard!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const arrived = new Promise<boolean>((resolve) => {
      heard = () => resolve(true);
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    const stop = await this.listen(channel, { onNotify: () => heard() });
    try {
      await db.query('SELECT pg_notify($1, $2)', [channel, '']);
      return await arrived;
    } finally {
      clearTimeout(timer);
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
    const client = this.client;
    if (isNew && client) {
      // A LISTEN that fails (or outlasts the statement timeout on a connection that looks open)
      // leaves this channel deaf on a connection that hears the others: it is dropped, and its
      // successor LISTENs on every channel.
      await this.command(client, `LISTEN ${quote(channel)}`, 'LISTEN').catch((err: Error) => {
        if (this.client === client) this.dropConnection?.(err);
      });
    } else if (!this.started) {
      // The first channel opens the connection (waiting a little for it). A channel added while it
      // is being opened or is down is heard once it is open (connect() LISTENs on every channel it
      // knows), and its onReset(true) then says that something may have gone unheard.
      await this.start();
    }
    return () => {
      set!.delete(handlers);
      if (set!.size || this.channels.get(channel) !== set) return;
      this.channels.delete(channel);
      // While connecting, connect() drops what is no longer wanted before it opens.
      if (this.client) void this.command(this.client, `UNLISTEN ${quote(channel)}`, 'UNLISTEN').catch(() => undefined);
    };
  }

  private schedule(delayMs: number): void {
    if (this.closed || this.timer) return;
    if (this.connecting) {
      this.retryAfterConnect = delayMs; // connect() is still settling: retry once it has
      return;
    }
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connecting = this.connect().then((retryInMs) => {
        this.connecting = undefined;
        const after = this.retryAfterConnect;
        this.retryAfterConnect = undefined;
        if (retryInMs !== undefined) this.schedule(retryInMs);
        else if (after !== undefined && !this.client) this.schedule(after);
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

  /** A statement on the connection being opened, bounded: a half-open path must not hang connect() (or close()). */
  private bounded<T>(work: Promise<T>, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`LISTEN connection: ${what} took longer than ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
  }

  /**
   * A statement on the open connection, after the ones before it: LISTENs, UNLISTENs and pings come
   * from different callers, and pg runs overlapping queries on one client only through a queue it
   * has deprecated (gone in pg 9). Bounded, so a hung one cannot hold the others forever.
   */
  private command(client: pg.Client, sql: string, what: string): Promise<unknown> {
    const run = this.commands.then(() => this.bounded(client.query(sql), what));
    this.commands = run.catch(() => undefined);
    return run;
  }

  /** One attempt; returns when to try again if it failed. */
  private async connect(): Promise<number | undefined> {
    const client = new pg.Client({
      connectionString: this.connectionString,
      application_name: this.opts.applicationName ?? 'rendio-listen',
      connectionTimeoutMillis: this.timeoutMs,
      keepAlive: true,
      keepAliveInitialDelayMillis: 10_000,
    });
    let lost = false;
    let openedAt = 0;
    let pinger: NodeJS.Timeout | undefined;
    const onLost = (err?: Error) => {
      if (lost) return;
      lost = true;
      clearInterval(pinger);
      void client.end().catch(() => undefined);
      if (this.client !== client) return; // not open yet: connect() sees `lost` and retries
      this.client = undefined;
      if (this.closed) return;
      const stable = Date.now() - openedAt >= (this.opts.stableAfterMs ?? 30_000);
      this.attempt = stable ? 0 : this.attempt + 1;
      this.log.warn({ err, attempt: this.attempt }, 'LISTEN connection lost; reconnecting');
      this.reset(false);
      this.schedule(stable ? 0 : this.backoffMs());
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
    try {
      await client.connect();
      // LISTEN on every channel before the connection is published; channels added or dropped
      // meanwhile are caught up until the set is stable (there is no await after the last check).
      const listening = new Set<string>();
      for (;;) {
        const add = [...this.channels.keys()].filter((c) => !listening.has(c));
        const drop = [...listening].filter((c) => !this.channels.has(c));
        if (!add.length && !drop.length) break;
        const sql = [...add.map((c) => `LISTEN ${quote(c)};`), ...drop.map((c) => `UNLISTEN ${quote(c)};`)].join(' ');
        await this.bounded(client.query(sql), 'LISTEN');
        for (const c of add) listening.add(c);
        for (const c of drop) listening.delete(c);
      }
    } catch (err) {
      onLost(err as Error);
      if (this.closed) return undefined;
      this.attempt++;
      if (this.attempt === 1 || this.attempt % 10 === 0) this.log.warn({ err, attempt: this.attempt }, 'LISTEN connection failed; retrying');
      return this.backoffMs();
    }
    if (this.closed || lost) {
      onLost();
      this.attempt++;
      return this.closed ? undefined : this.backoffMs();
    }
    this.client = client;
    this.dropConnection = onLost;
    openedAt = Date.now();
    const reconnected = this.connects > 0;
    this.connects++;
    if (reconnected) this.log.info('LISTEN connection open again');
    pinger = setInterval(() => {
      this.command(client, 'SELECT 1', 'a ping').catch((err: Error) => onLost(err));
    }, this.opts.pingIntervalMs ?? 30_000);
    pinger.unref();
    this.pinger = pinger;
    for (const wake of [...this.waiters]) wake();
    this.reset(this.live);
    if (this.probeDb) void this.probe();
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
    clearTimeout(this.probeTimer);
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
