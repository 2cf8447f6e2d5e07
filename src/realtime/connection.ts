import { decodeJwt } from 'jose';
import type { RawData, WebSocket } from 'ws';
import { z } from 'zod';
import { isAnonKey } from '../auth/anon-key.js';
import type { AccessClaims } from '../auth/tokens.js';
import { isDatabaseUnavailable } from '../db/pool.js';
import { loadAuthState } from '../db/queries/users.js';
import { findJobView } from '../db/queries/video-jobs.js';
import { ApiError, notFound, unauthenticated } from '../http/api-error.js';
import { authOptions, userFromAuthState, verifiedClaims, type AuthOptions } from '../http/auth.js';
import { localizedMessage, type Language } from '../errors/i18n.js';
import { toApiError } from '../http/on-error.js';
import type { JobReads } from '../jobs/job-reads.js';
import type { Services } from '../services.js';
import { decodeMessage, encodeMessage, type PhoenixMessage, type Vsn } from './protocol.js';

/**
 * One Realtime WebSocket: the Phoenix channel server for the subset Supabase clients use to watch a
 * job (docs/ARCHITECTURE.md "Realtime"). A channel is joined with postgres_changes bindings, each
 * naming one job by `job_id=eq.<uuid>` on public.video_jobs; the job's changes reach it through
 * JobEvents (LISTEN/NOTIFY), and each one is re-read and re-authorised before it is sent — from
 * reads every watcher of that change shares (JobReads): one read of the job, its view and each
 * session's standing per change, not per socket; the token's expiry is checked without its signature.
 */

export type RealtimeDeps = Pick<Services, 'db' | 'events' | 'store' | 'config' | 'log' | 'tokens' | 'metrics' | 'rateLimits'>;

/** Bindings in one channel (the app uses one). */
const MAX_BINDINGS = 8;
/** Frames a socket may send per RATE_WINDOW_MS (a client heartbeats every 25–30 s and joins a few channels). */
const RATE_MAX = 200;
const RATE_WINDOW_MS = 10_000;

const EVENTS = ['UPDATE', 'DELETE', '*'];

/** The row's columns as Realtime describes them, so realtime-js converts nothing it should not. */
const COLUMN_TYPES: Record<string, string> = { job_id: 'uuid', credits_used: 'int4', created_at: 'timestamptz' };

const uuid = z.uuid();
const JoinPayload = z.looseObject({
  config: z
    .looseObject({
      postgres_changes: z
        .array(
          z.looseObject({
            event: z.string(),
            schema: z.string(),
            table: z.string().optional(),
            filter: z.string().optional(),
            select: z.array(z.string()).optional(),
          }),
        )
        .optional(),
    })
    .optional(),
  access_token: z.string().nullish(),
  user_token: z.string().nullish(),
});

type Principal = { kind: 'legacy' } | { kind: 'user'; userId: string; token: string; claims: AccessClaims; exp: number };

interface Binding {
  id: number;
  event: string;
  schema: string;
  table: string;
  filter: string;
  jobId: string;
}

interface Watch {
  unsubscribe: () => void;
  /** What was last sent (its signed URLs aside), so a wake that changed nothing visible sends nothing. */
  fingerprint?: string;
  record?: Record<string, unknown>;
  running: boolean;
  again: boolean;
  /** Reads that failed in a row because the database was away: the next retry waits longer. */
  failures?: number;
  /** The reads of the latest change not yet delivered (shared with the change's other watchers). */
  reads?: JobReads;
}

interface Channel {
  topic: string;
  joinRef: string | null;
  principal: Principal;
  bindings: Binding[];
  watches: Map<string, Watch>;
  stopped: boolean;
}

const unsupported = (reason: string) => new ApiError('ERR_4040', { reason });

function parseJoin(payload: Record<string, unknown>): { bindings: Omit<Binding, 'id'>[]; token: string | null | undefined } {
  const parsed = JoinPayload.safeParse(payload);
  if (!parsed.success) throw unsupported('malformed phx_join payload');
  const changes = parsed.data.config?.postgres_changes ?? [];
  if (changes.length === 0) {
    throw unsupported('a channel must listen to postgres_changes on public.video_jobs (broadcast and presence are not served)');
  }
  if (changes.length > MAX_BINDINGS) throw new ApiError('ERR_4041', { reason: `at most ${MAX_BINDINGS} postgres_changes per channel` });
  const bindings = changes.map((c) => {
    if (!EVENTS.includes(c.event.toUpperCase())) {
      throw unsupported(`event ${c.event}: only UPDATE, DELETE or * (a job exists before its id is known, so there is no INSERT to see)`);
    }
    if (c.schema !== 'public' || c.table !== 'video_jobs') throw unsupported('only the table public.video_jobs is served');
    const jobId = /^job_id=eq\.(.+)$/.exec(c.filter ?? '')?.[1];
    if (!jobId || !uuid.safeParse(jobId).success) throw unsupported('the filter must be job_id=eq.<job id> (one job per binding)');
    if (c.select?.length) throw unsupported('select is not supported (the record is the job as get-video-status returns it)');
    return { event: c.event, schema: c.schema, table: c.table, filter: c.filter!, jobId: jobId.toLowerCase() };
  });
  return { bindings, token: parsed.data.access_token ?? parsed.data.user_token };
}

export class RealtimeConnection {
  private readonly channels = new Map<string, Channel>();
  private readonly auth: AuthOptions;
  private queue: Promise<void> = Promise.resolve();
  private nextBindingId = 1;
  private closed = false;
  private windowStart = Date.now();
  private windowCount = 0;
  private readonly idle: NodeJS.Timeout;
  /**
   * The last user token whose session this socket checked, and who it is: a join or an
   * access_token with the same token checks only its signature and expiry again, not the database
   * (every delivery still re-checks the session, so an ended one gets nothing).
   */
  private checked: { token: string; principal: Principal } | undefined;

  constructor(
    private readonly ws: WebSocket,
    private readonly vsn: Vsn,
    private readonly deps: RealtimeDeps,
    private readonly lang: Language,
    /** The client's address as the limiter keys it (addressKey: per /64 for IPv6). */
    private readonly address: string,
  ) {
    this.auth = authOptions(deps);
    // Phoenix clients heartbeat every 25–30 s; a socket silent for longer is gone or not a client.
    this.idle = setTimeout(() => this.ws.close(1000, 'heartbeat timeout'), deps.config.realtime.heartbeatTimeoutMs);
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('close', () => this.onClose());
    ws.on('error', (err) => deps.log.debug({ err }, 'realtime socket error'));
  }

  private onFrame(data: RawData, isBinary: boolean) {
    this.idle.refresh();
    const now = Date.now();
    if (now - this.windowStart > RATE_WINDOW_MS) {
      this.windowStart = now;
      this.windowCount = 0;
    }
    if (++this.windowCount > RATE_MAX) {
      this.ws.close(1008, 'ERR_4041: too many messages');
      return;
    }
    if (isBinary) return; // vsn 2.0.0 binary frames are broadcasts, which are not served
    const msg = decodeMessage(this.vsn, (data as Buffer).toString('utf8'));
    if (!msg) {
      this.ws.close(1003, `ERR_4040: not a Phoenix ${this.vsn} message`);
      return;
    }
    // One message at a time, in order, as a Phoenix socket does (a join's checks are async).
    this.queue = this.queue.then(() => this.handle(msg)).catch((err: unknown) => this.deps.log.error({ err }, 'realtime message failed'));
  }

  private async handle(msg: PhoenixMessage) {
    if (this.closed) return;
    if (msg.topic === 'phoenix') {
      if (msg.event === 'heartbeat') this.reply(msg, 'ok', {});
      return;
    }
    if (msg.event === 'phx_join') return this.join(msg);
    const channel = this.channels.get(msg.topic);
    if (!channel) {
      this.reply(msg, 'error', { reason: 'unmatched topic' });
      return;
    }
    if (msg.event === 'phx_leave') {
      this.stop(channel);
      this.reply(msg, 'ok', {});
    } else if (msg.event === 'access_token') {
      await this.updateToken(channel, msg.payload.access_token);
    } else if (msg.ref !== null) {
      this.refuse(msg, unsupported(`event ${msg.event} (only postgres_changes are served)`));
    }
  }

  private async join(msg: PhoenixMessage) {
    const subTopic = msg.topic.startsWith('realtime:') ? msg.topic.slice('realtime:'.length) : '';
    if (!subTopic) return this.refuse(msg, unsupported('the topic must be realtime:<channel name>'));
    const channel: Channel = { topic: msg.topic, joinRef: msg.join_ref ?? msg.ref, principal: { kind: 'legacy' }, bindings: [], watches: new Map(), stopped: false };
    try {
      const join = parseJoin(msg.payload);
      channel.principal = await this.chargedPrincipal(join.token);
      // Joining a joined topic again replaces the old channel, as Phoenix does.
      const existing = this.channels.get(msg.topic);
      if (existing) this.close(existing);
      const max = this.deps.config.realtime.maxChannels;
      if (this.channels.size >= max) throw new ApiError('ERR_4041', { reason: `at most ${max} channels per connection` });
      channel.bindings = join.bindings.map((b) => ({ ...b, id: this.nextBindingId++ }));
      const jobIds = [...new Set(channel.bindings.map((b) => b.jobId))];
      await this.authorizeJobs(channel.principal, jobIds);
      for (const jobId of jobIds) {
        const watch: Watch = { unsubscribe: () => undefined, running: false, again: false };
        channel.watches.set(jobId, watch);
        watch.unsubscribe = await this.deps.events.subscribe(jobId, (reads) => this.refresh(channel, jobId, reads));
      }
    } catch (err) {
      this.stop(channel);
      return this.refuse(msg, this.toApiError(err));
    }
    if (this.closed) return this.stop(channel);
    this.channels.set(channel.topic, channel);
    this.reply(msg, 'ok', {
      postgres_changes: channel.bindings.map(({ id, event, schema, table, filter }) => ({ id, event, schema, table, filter })),
    });
    this.push(channel, 'system', { extension: 'postgres_changes', status: 'ok', message: 'Subscribed to PostgreSQL', channel: subTopic });
    // The job as it is now, once: the client need not race its first fetch against this join.
    for (const jobId of channel.watches.keys()) this.refresh(channel, jobId);
  }

  /**
   * Who the token is, charged to the realtime-join limiter policy: per address before anything
   * is looked up, per user once known. A join or a new token costs a session check and job reads;
   * once a key is over its budget the limiter refuses it from memory, so refusals cost nothing.
   */
  private async chargedPrincipal(token: string | null | undefined): Promise<Principal> {
    await this.deps.rateLimits.consume('realtime-join', this.deps.rateLimits.addressKeys('realtime-join', this.address));
    const principal = await this.principal(token);
    if (principal.kind === 'user') await this.deps.rateLimits.consume('realtime-join', { user: principal.userId });
    return principal;
  }

  /** Who the token is: a user (secure mode), or in legacy mode the anon key (or none) for the app's build. */
  private async principal(token: string | null | undefined): Promise<Principal> {
    if (!token || this.isAnonKey(token)) {
      if (this.auth.legacyAnonClients && this.auth.anonKeys.length > 0) return { kind: 'legacy' };
      throw unauthenticated('a user access token is required (access_token in phx_join)');
    }
    if (this.checked?.token === token) {
      await verifiedClaims(this.auth, token);
      return this.checked.principal;
    }
    const claims = await verifiedClaims(this.auth, token);
    const user = userFromAuthState(claims, await loadAuthState(this.deps.db, claims.sub, claims.sessionId));
    const principal: Principal = { kind: 'user', userId: user.id, token, claims, exp: decodeJwt(token).exp ?? 0 };
    this.checked = { token, principal };
    return principal;
  }

  private isAnonKey(token: string): boolean {
    return isAnonKey(token, this.auth.anonKeys);
  }

  /** A user sees only their own jobs; legacy mode any live job it names by id (the id is the capability). */
  private async authorizeJobs(principal: Principal, jobIds: string[]) {
    for (const jobId of jobIds) {
      const job = await findJobView(this.deps.db, jobId);
      // Another user's job is "not found", as on REST: no way to probe which ids exist.
      if (!job || job.deleted_at || (principal.kind === 'user' && job.user_id !== principal.userId)) throw notFound('job');
    }
  }

  private async updateToken(channel: Channel, token: unknown) {
    // A token that changes nothing (the channel's own, or the anon key again in legacy mode) costs nothing.
    if (typeof token !== 'string') return;
    if (channel.principal.kind === 'user' ? token === channel.principal.token : !token || this.isAnonKey(token)) return;
    try {
      const principal = await this.chargedPrincipal(token);
      const sameUser = principal.kind === channel.principal.kind && (principal.kind === 'legacy' || principal.userId === (channel.principal as { userId: string }).userId);
      if (!sameUser) await this.authorizeJobs(principal, [...channel.watches.keys()]);
      channel.principal = principal;
    } catch (err) {
      this.shutdown(channel, this.toApiError(err));
    }
  }

  /**
   * Re-reads the job after a wake (with the reads the wake's other watchers share, or fresh ones);
   * wakes during a read coalesce into one more read, of the latest change.
   */
  private refresh(channel: Channel, jobId: string, reads?: JobReads) {
    const watch = channel.watches.get(jobId);
    // Nothing is sent before the join's reply; the read that follows it covers wakes until then.
    if (!watch || channel.stopped || this.channels.get(channel.topic) !== channel) return;
    if (reads) watch.reads = reads;
    if (watch.running) {
      watch.again = true;
      return;
    }
    watch.running = true;
    void (async () => {
      try {
        do {
          watch.again = false;
          const current = watch.reads ?? this.deps.events.reads(jobId);
          watch.reads = undefined;
          await this.deliver(channel, jobId, watch, current);
          watch.failures = 0;
        } while (watch.again && !channel.stopped);
      } catch (err) {
        // The database is away (a restart): the channel stays and reads again, backing off with
        // jitter (1 s doubling to 30 s) so every watch of every instance does not hit a database
        // coming back in lockstep; a wake from the reopened LISTEN connection may come first.
        if (isDatabaseUnavailable(err)) {
          watch.failures = (watch.failures ?? 0) + 1;
          const delay = Math.min(30_000, 1000 * 2 ** (watch.failures - 1)) * (0.5 + Math.random() / 2);
          setTimeout(() => this.refresh(channel, jobId), delay).unref();
          return;
        }
        this.deps.log.warn({ err, jobId }, 'realtime delivery failed; the client will rejoin');
        this.fail(channel);
      } finally {
        watch.running = false;
      }
    })();
  }

  private async deliver(channel: Channel, jobId: string, watch: Watch, reads: JobReads) {
    const job = await reads.read();
    if (channel.stopped) return;
    let visible = Boolean(job && !job.deleted_at);
    // Every delivery is re-authorised: a token that expired or whose session ended gets nothing more.
    if (channel.principal.kind === 'user') {
      const { claims, exp } = channel.principal;
      let userId: string;
      try {
        if (this.deps.tokens.hasExpired(exp)) throw unauthenticated('token expired');
        userId = userFromAuthState(claims, await reads.standing(claims.sub, claims.sessionId)).id;
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        // The session ended: the next join with this token checks it again (and is refused).
        if (this.checked?.token === channel.principal.token) this.checked = undefined;
        return this.shutdown(channel, err);
      }
      visible &&= job!.user_id === userId;
    }
    if (channel.stopped) return;
    if (!visible) {
      if (watch.record) this.sendChange(channel, jobId, 'DELETE', undefined, { job_id: jobId });
      watch.unsubscribe();
      channel.watches.delete(jobId);
      return;
    }
    const record = await this.record(channel.principal, reads);
    const fingerprint = JSON.stringify({ ...record, video_url: job!.video_key, thumbnail_url: job!.thumbnail_key });
    if (fingerprint === watch.fingerprint || channel.stopped) return;
    const old = watch.record ?? { job_id: jobId };
    watch.fingerprint = fingerprint;
    watch.record = record;
    this.sendChange(channel, jobId, 'UPDATE', record, old);
  }

  /**
   * The row the app decodes as VideoJob (docs/reference/ios-app.md §2.12): for a user, the job as get-video-status
   * returns it; in legacy mode VideoJob's own keys (its decoder needs the prompt), no error text.
   */
  private async record(principal: Principal, reads: JobReads): Promise<Record<string, unknown>> {
    const view = (await reads.view())!;
    if (principal.kind === 'user') return view;
    const { error_code: _code, error_message: _message, ...videoJob } = view;
    return videoJob;
  }

  private sendChange(channel: Channel, jobId: string, type: 'UPDATE' | 'DELETE', record: Record<string, unknown> | undefined, oldRecord: Record<string, unknown>) {
    const ids = channel.bindings.filter((b) => b.jobId === jobId && (b.event === '*' || b.event.toUpperCase() === type)).map((b) => b.id);
    if (ids.length === 0) return;
    const columns = Object.keys(record ?? oldRecord).map((name) => ({ name, type: COLUMN_TYPES[name] ?? 'text' }));
    this.push(channel, 'postgres_changes', {
      ids,
      data: {
        schema: 'public',
        table: 'video_jobs',
        commit_timestamp: new Date().toISOString(),
        type,
        eventType: type,
        columns,
        ...(record ? { record } : {}),
        old_record: oldRecord,
        errors: null,
      },
    });
  }

  private toApiError(err: unknown): ApiError {
    const apiError = toApiError(err, this.deps.config.maxJsonBodyBytes);
    if (apiError.code === 'ERR_6003') this.deps.log.error({ err }, 'realtime join failed');
    return apiError;
  }

  private send(m: PhoenixMessage) {
    if (this.ws.readyState === this.ws.OPEN) this.ws.send(encodeMessage(this.vsn, m));
  }

  private reply(msg: PhoenixMessage, status: 'ok' | 'error', response: Record<string, unknown>) {
    this.send({ join_ref: msg.join_ref, ref: msg.ref, topic: msg.topic, event: 'phx_reply', payload: { status, response } });
  }

  /** A join or push refused, in Realtime's shape: reason "CODE: message". */
  private refuse(msg: PhoenixMessage, err: ApiError) {
    this.reply(msg, 'error', { reason: `${err.code}: ${localizedMessage(err.code, this.lang, err.details)}` });
  }

  private push(channel: Channel, event: string, payload: Record<string, unknown>) {
    this.send({ join_ref: channel.joinRef, ref: null, topic: channel.topic, event, payload });
  }

  private stop(channel: Channel) {
    channel.stopped = true;
    for (const watch of channel.watches.values()) watch.unsubscribe();
    channel.watches.clear();
    if (this.channels.get(channel.topic) === channel) this.channels.delete(channel.topic);
  }

  /** The server ends a channel: phx_close to its join, as Phoenix does. */
  private close(channel: Channel) {
    this.stop(channel);
    this.send({ join_ref: channel.joinRef, ref: channel.joinRef, topic: channel.topic, event: 'phx_close', payload: {} });
  }

  /** Ends a channel whose access is gone, saying why first (Realtime's system message), then phx_close. */
  private shutdown(channel: Channel, err: ApiError) {
    const subTopic = channel.topic.slice('realtime:'.length);
    this.push(channel, 'system', { extension: 'system', status: 'error', message: `${err.code}: ${localizedMessage(err.code, this.lang, err.details)}`, channel: subTopic });
    this.close(channel);
  }

  /** Something broke while serving a channel: phx_error, and the client rejoins after its backoff. */
  private fail(channel: Channel) {
    if (channel.stopped) return;
    this.stop(channel);
    this.send({ join_ref: channel.joinRef, ref: channel.joinRef, topic: channel.topic, event: 'phx_error', payload: {} });
  }

  private onClose() {
    this.closed = true;
    clearTimeout(this.idle);
    for (const channel of [...this.channels.values()]) this.stop(channel);
  }
}
