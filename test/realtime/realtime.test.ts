import { randomUUID } from 'node:crypto';
import { createClient, type RealtimeChannel, type SupabaseClient } from '@supabase/supabase-js';
import { decodeJwt } from 'jose';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startHttpServer, withRealtime, type ListeningServer } from '../../src/server.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Supabase Realtime's subset (docs/reference/ios-app.md §2.12): the app's exact subscription, driven by the real
 * realtime-js client inside @supabase/supabase-js (vsn 2.0.0), and by raw frames as supabase-swift
 * sends them (vsn 1.0.0), against the real server on a real socket.
 */

const ANON_KEY = 'anon-key-of-this-realtime-test-project';
const PROMPT = 'a lighthouse in a storm, cinematic';

function serve(t: () => TestApp): () => string {
  let server: ListeningServer | undefined;
  beforeAll(async () => {
    server = withRealtime(await startHttpServer(t().app.fetch, { port: 0, hostname: '127.0.0.1', limits: t().services.config.http }), t().services);
  });
  afterAll(async () => {
    await server?.close();
  });
  return () => `http://127.0.0.1:${server!.port}`;
}

async function waitFor<T>(what: string, probe: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const clients: SupabaseClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.removeAllChannels()));
});

function supabase(url: string, opts: { vsn?: string } = {}): SupabaseClient {
  const sb = createClient(url, ANON_KEY, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: WebSocket as never, ...(opts.vsn ? { vsn: opts.vsn } : {}) },
  });
  clients.push(sb);
  return sb;
}

/** ResultService.subscribeToJobUpdates, as supabase-js spells it. */
function watchJob(sb: SupabaseClient, jobId: string) {
  const updates: any[] = [];
  const states: { status: string; err?: Error }[] = [];
  const channel: RealtimeChannel = sb
    .channel(`video-job-${jobId}`)
    .on('postgres_changes', { event: 'UPDATE', schema: 'public', table: 'video_jobs', filter: `job_id=eq.${jobId}` }, (p) => updates.push(p))
    .subscribe((status, err) => states.push({ status, err }));
  return { channel, updates, states, statuses: () => updates.map((u) => u.new.status) };
}

async function signedIn(url: string, g: Guest, opts?: { vsn?: string }) {
  const sb = supabase(url, opts);
  const { error } = await sb.auth.setSession({ access_token: g.accessToken, refresh_token: g.refreshToken });
  expect(error).toBeNull();
  return sb;
}

describe('Realtime with user tokens (secure mode)', () => {
  const t = useTestApp({ ANON_KEY, SIMULATOR_DELAY_MS: '600' });
  const url = serve(t);
  afterEach(() => t().stopWorker());

  it("the app's subscription receives pending → processing → completed, each record the job as get-video-status returns it", async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const w = watchJob(await signedIn(url(), g), job_id);
    await waitFor('SUBSCRIBED', () => w.states.some((s) => s.status === 'SUBSCRIBED'));
    await waitFor('the job as it is now', () => w.updates.length > 0);
    await t().startWorker();
    await waitFor('completed', () => w.statuses().at(-1) === 'completed');

    expect(w.statuses()).toEqual(['pending', 'processing', 'completed']);
    const last = w.updates.at(-1);
    expect(last).toMatchObject({ eventType: 'UPDATE', schema: 'public', table: 'video_jobs', errors: null });
    expect(Date.parse(last.commit_timestamp)).not.toBeNaN();
    const status = await t().json(t().get(`/functions/v1/get-video-status?job_id=${job_id}`, { token: g.accessToken }));
    expect(Object.keys(last.new).sort()).toEqual(Object.keys(status).sort());
    expect({ ...last.new, video_url: undefined }).toEqual({ ...status, video_url: undefined });
    expect(last.new).toMatchObject({ model_name: 'Simulator', prompt: PROMPT, credits_used: 1 });
    expect(last.new.video_url).toMatch(/\/storage\/v1\/object\/sign\//);
    expect(last.old).toMatchObject({ job_id, status: 'processing' });
    expect(w.states.filter((s) => s.status === 'CHANNEL_ERROR')).toEqual([]);
    expect(await t().services.metrics.registry.getSingleMetricAsString('rendio_realtime_sockets')).toMatch(/^rendio_realtime_sockets [1-9]/m);
  });

  it("another user's job is never delivered: the join is refused as not found, and nothing arrives", async () => {
    const [owner, other] = [await t().createGuest(), await t().createGuest()];
    const { job_id } = await t().json(t().generate(owner, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const intruder = watchJob(await signedIn(url(), other), job_id);
    const refused = await waitFor('CHANNEL_ERROR', () => intruder.states.find((s) => s.status === 'CHANNEL_ERROR'));
    expect(refused.err?.message).toMatch(/^ERR_4007: The requested job was not found/);

    // The owner's own subscription sees the job through to the end; the intruder's saw nothing.
    const own = watchJob(await signedIn(url(), owner), job_id);
    await t().startWorker();
    await waitFor('completed', () => own.statuses().at(-1) === 'completed');
    expect(intruder.updates).toEqual([]);
    expect(intruder.states.some((s) => s.status === 'SUBSCRIBED')).toBe(false);
  });

  it('the anon key alone (no user token) is refused in secure mode', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const w = watchJob(supabase(url()), job_id);
    const refused = await waitFor('CHANNEL_ERROR', () => w.states.find((s) => s.status === 'CHANNEL_ERROR'));
    expect(refused.err?.message).toMatch(/^ERR_4005: /);
    expect(w.updates).toEqual([]);
  });

  it('vsn 1.0.0 through supabase-js works as 2.0.0 does', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const w = watchJob(await signedIn(url(), g, { vsn: '1.0.0' }), job_id);
    await waitFor('the pending job', () => w.statuses()[0] === 'pending');
    await t().startWorker();
    await waitFor('completed', () => w.statuses().at(-1) === 'completed');
  });

  it('closing the server closes its sockets (1001) instead of waiting on them', async () => {
    const server = withRealtime(await startHttpServer(t().app.fetch, { port: 0, hostname: '127.0.0.1', limits: t().services.config.http }), t().services);
    const s = await RawSocket.open(`http://127.0.0.1:${server.port}`, '1.0.0');
    await server.close();
    expect(await waitFor('the socket to close', () => s.closed)).toEqual({ code: 1001, reason: 'server shutting down' });
  });

  it('refuses a connection without the apikey, an unknown vsn, and a plain GET', async () => {
    const ws = `${url().replace('http', 'ws')}/realtime/v1/websocket`;
    expect(await refusedUpgrade(`${ws}?vsn=1.0.0`)).toMatchObject({ status: 401, body: { message: 'No API key found in request', error: { code: 'ERR_4042' } } });
    expect(await refusedUpgrade(`${ws}?apikey=wrong&vsn=1.0.0`)).toMatchObject({ status: 401, body: { message: 'Invalid API key', error: { code: 'ERR_4043' } } });
    expect(await refusedUpgrade(`${ws}?apikey=${ANON_KEY}&vsn=3.0.0`)).toMatchObject({ status: 400, body: { error: { code: 'ERR_4040' } } });
    expect(await refusedUpgrade(`${url().replace('http', 'ws')}/elsewhere?apikey=${ANON_KEY}`)).toMatchObject({ status: 404 });
    const plain = await fetch(`${url()}/realtime/v1/websocket?apikey=${ANON_KEY}`);
    expect(plain.status).toBe(400);
    expect(((await plain.json()) as any).error.code).toBe('ERR_4040');
  });
});

/** A raw socket speaking exact frames, as supabase-swift 2.37 does (vsn 1.0.0) or realtime-js (2.0.0). */
class RawSocket {
  readonly received: any[] = [];
  closed: { code: number; reason: string } | undefined;
  private constructor(
    readonly ws: WebSocket,
    readonly vsn: '1.0.0' | '2.0.0',
  ) {
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      this.received.push(Array.isArray(m) ? { join_ref: m[0], ref: m[1], topic: m[2], event: m[3], payload: m[4] } : m);
    });
    ws.on('close', (code, reason) => (this.closed = { code, reason: reason.toString() }));
  }

  static async open(url: string, vsn: '1.0.0' | '2.0.0') {
    const ws = new WebSocket(`${url.replace('http', 'ws')}/realtime/v1/websocket?apikey=${ANON_KEY}&vsn=${vsn}`);
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    return new RawSocket(ws, vsn);
  }

  sendRaw(frame: string) {
    this.ws.send(frame);
  }

  send(m: { join_ref?: string | null; ref: string | null; topic: string; event: string; payload: object }) {
    this.sendRaw(this.vsn === '2.0.0' ? JSON.stringify([m.join_ref ?? null, m.ref, m.topic, m.event, m.payload]) : JSON.stringify(m));
  }

  next(what: string, match: (m: any) => boolean) {
    return waitFor(what, () => this.received.find(match));
  }

  reply(ref: string) {
    return this.next(`reply to ${ref}`, (m) => m.event === 'phx_reply' && m.ref === ref);
  }
}

/**
 * supabase-swift 2.37's phx_join for the app's channel, as github.com/supabase/supabase-swift builds it at
 * tag v2.37.0 (commit 65507b524f0ec09ebb6f6b1db0db1a8e4265436e): Sources/Realtime/RealtimeChannelV2.swift
 * subscribe() (RealtimeJoinPayload: config, access_token, version), Sources/Realtime/RealtimeJoinConfig.swift
 * (broadcast {ack, self}, presence {key, enabled}, postgres_changes, private); the socket URL's
 * ?apikey=…&vsn=1.0.0 is Sources/Realtime/RealtimeClientV2.swift's.
 */
const swiftJoin = (jobId: string, token: string, filter = `job_id=eq.${jobId}`) => ({
  config: {
    broadcast: { ack: false, self: false },
    presence: { key: '', enabled: false },
    postgres_changes: [{ event: 'UPDATE', schema: 'public', table: 'video_jobs', filter }],
    private: false,
  },
  access_token: token,
  version: 'realtime-swift/2.37.0',
});

async function waitForRow(t: TestApp, jobId: string, status: string) {
  const deadline = Date.now() + 20_000;
  while ((await t.db.query('SELECT status FROM video_jobs WHERE job_id = $1', [jobId])).rows[0]?.status !== status) {
    if (Date.now() > deadline) throw new Error(`job ${jobId} did not reach ${status}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function refusedUpgrade(url: string): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => reject(new Error('upgrade was accepted')));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: body ? JSON.parse(body) : undefined }));
    });
    ws.once('error', () => undefined);
  });
}

describe('Realtime on the wire (exact Phoenix frames)', () => {
  const t = useTestApp({ ANON_KEY, SIMULATOR_DELAY_MS: '600', REALTIME_MAX_CHANNELS: '1' });
  const url = serve(t);
  const sockets: RawSocket[] = [];
  const open = async (vsn: '1.0.0' | '2.0.0') => {
    const s = await RawSocket.open(url(), vsn);
    sockets.push(s);
    return s;
  };
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.ws.close();
    await t().stopWorker();
  });
  /** A guest's new job, watched as the app does over vsn 1.0.0 (join ref '1'), its pending state received. */
  const watchingGuest = async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const s = await open('1.0.0');
    const topic = `realtime:video-job-${job_id}`;
    s.send({ topic, event: 'phx_join', payload: swiftJoin(job_id, g.accessToken), ref: '1', join_ref: '1' });
    await s.next('the pending job', (m) => m.event === 'postgres_changes');
    return { g, job_id: job_id as string, s, topic };
  };

  it('vsn 1.0.0 (supabase-swift): heartbeat, join with the binding ids, the job, phx_leave', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const s = await open('1.0.0');
    const topic = `realtime:video-job-${job_id}`;

    s.send({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: '1' });
    expect(await s.reply('1')).toEqual({ join_ref: null, ref: '1', topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} } });

    s.send({ topic, event: 'phx_join', payload: swiftJoin(job_id, g.accessToken), ref: '2', join_ref: '2' });
    const joined = await s.reply('2');
    expect(joined).toMatchObject({ join_ref: '2', topic, payload: { status: 'ok' } });
    const [binding] = joined.payload.response.postgres_changes;
    // supabase-swift decodes the id as Int and matches `ids` against it; realtime-js compares it as is.
    expect(binding).toEqual({ id: expect.any(Number), event: 'UPDATE', schema: 'public', table: 'video_jobs', filter: `job_id=eq.${job_id}` });
    expect(await s.next('system', (m) => m.event === 'system')).toMatchObject({
      topic,
      payload: { extension: 'postgres_changes', status: 'ok', message: 'Subscribed to PostgreSQL', channel: `video-job-${job_id}` },
    });
    const change = await s.next('postgres_changes', (m) => m.event === 'postgres_changes');
    expect(change).toMatchObject({ topic, ref: null, payload: { ids: [binding.id], data: { type: 'UPDATE', schema: 'public', table: 'video_jobs', errors: null } } });
    expect(change.payload.data.record).toMatchObject({ job_id, status: 'pending', model_name: 'Simulator', prompt: PROMPT });
    expect(change.payload.data.columns).toContainEqual({ name: 'credits_used', type: 'int4' });

    s.send({ topic, event: 'phx_leave', payload: {}, ref: '3', join_ref: '2' });
    expect(await s.reply('3')).toMatchObject({ payload: { status: 'ok' } });
    await t().startWorker();
    await t().waitForJob(g.accessToken, job_id);
    // A left channel gets nothing more, and a push to it is an unmatched topic.
    s.send({ topic, event: 'access_token', payload: { access_token: g.accessToken }, ref: '4', join_ref: '2' });
    expect(await s.reply('4')).toMatchObject({ payload: { status: 'error', response: { reason: 'unmatched topic' } } });
    expect(s.received.filter((m) => m.event === 'postgres_changes')).toHaveLength(1);
  });

  it('vsn 2.0.0 frames are arrays: [join_ref, ref, topic, event, payload]', async () => {
    const s = await open('2.0.0');
    s.sendRaw(JSON.stringify([null, '7', 'phoenix', 'heartbeat', {}]));
    await s.reply('7');
    expect(s.received[0]).toEqual({ join_ref: null, ref: '7', topic: 'phoenix', event: 'phx_reply', payload: { status: 'ok', response: {} } });
  });

  it('refuses other filters, tables and events with ERR_4040, a bad token with ERR_4005, an unknown job with ERR_4007', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const s = await open('1.0.0');
    const join = (ref: string, payload: object) => {
      s.send({ topic: `realtime:t${ref}`, event: 'phx_join', payload, ref, join_ref: ref });
      return s.reply(ref).then((m) => m.payload);
    };
    const base = swiftJoin(job_id, g.accessToken);
    const withChange = (change: object) => ({ ...base, config: { ...base.config, postgres_changes: [change] } });
    const update = { event: 'UPDATE', schema: 'public', table: 'video_jobs' };

    for (const [ref, payload] of [
      ['1', swiftJoin(job_id, g.accessToken, 'status=eq.pending')],
      ['2', swiftJoin(job_id, g.accessToken, `job_id=neq.${job_id}`)],
      ['3', withChange({ ...update })],
      ['4', withChange({ ...update, table: 'users', filter: `job_id=eq.${job_id}` })],
      ['5', withChange({ ...update, event: 'INSERT', filter: `job_id=eq.${job_id}` })],
      ['6', { ...base, config: { ...base.config, postgres_changes: [] } }],
    ] as const) {
      const reply = await join(ref, payload);
      expect(reply.status, ref).toBe('error');
      expect(reply.response.reason, ref).toMatch(/^ERR_4040: This Realtime request is not supported: /);
    }
    expect((await join('7', swiftJoin(job_id, 'not-a-token'))).response.reason).toMatch(/^ERR_4005: /);
    expect((await join('8', swiftJoin(job_id, ANON_KEY))).response.reason).toMatch(/^ERR_4005: /);
    expect((await join('9', swiftJoin(randomUUID(), g.accessToken))).response.reason).toMatch(/^ERR_4007: /);
    expect(s.received.filter((m) => m.event === 'postgres_changes')).toEqual([]);
  });

  it('access_token: a new token of the same user keeps the channel, and changes keep coming', async () => {
    const { g, job_id, s, topic } = await watchingGuest();
    // Another token of the same session (a refresh within the same second would sign the very same one).
    const { session_id } = decodeJwt(g.accessToken) as { session_id: string };
    const other = await t().services.tokens.sign({ sub: g.userId, sessionId: session_id, isAnonymous: true, email: 'same-user@example.com' });
    expect(other.token).not.toBe(g.accessToken);
    s.send({ topic, event: 'access_token', payload: { access_token: other.token }, ref: '2', join_ref: '1' });
    await t().startWorker();
    await s.next('completed', (m) => m.event === 'postgres_changes' && m.payload.data.record.status === 'completed');
    expect(s.received.filter((m) => m.event === 'system' && m.payload.status === 'error')).toEqual([]);
    expect(s.received.filter((m) => m.event === 'phx_close')).toEqual([]);
  });

  it("access_token: another user's token ends the channel (system error, phx_close) before any more data", async () => {
    const { g, job_id, s, topic } = await watchingGuest();
    const other = await t().createGuest();

    s.send({ topic, event: 'access_token', payload: { access_token: other.accessToken }, ref: '2', join_ref: '1' });
    expect(await s.next('system error', (m) => m.event === 'system' && m.payload.status === 'error')).toMatchObject({
      topic,
      payload: { extension: 'system', message: expect.stringMatching(/^ERR_4007: /) },
    });
    expect(await s.next('phx_close', (m) => m.event === 'phx_close')).toMatchObject({ topic, join_ref: '1', payload: {} });
    await t().startWorker();
    await t().waitForJob(g.accessToken, job_id);
    expect(s.received.filter((m) => m.event === 'postgres_changes')).toHaveLength(1);
  });

  it('a session that ends mid-subscription gets nothing more: the next change ends the channel instead', async () => {
    const { g, job_id, s, topic } = await watchingGuest();
    await t().json(t().post('/auth/v1/logout', { token: g.accessToken }), 204);
    await t().startWorker();
    expect(await s.next('system error', (m) => m.event === 'system' && m.payload.status === 'error')).toMatchObject({
      payload: { message: expect.stringMatching(/^ERR_4005: /) },
    });
    await s.next('phx_close', (m) => m.event === 'phx_close');
    // The job runs to the end (the session's logout does not stop it); none of it reaches the socket.
    await waitForRow(t(), job_id, 'completed');
    expect(s.received.filter((m) => m.event === 'postgres_changes')).toHaveLength(1);
  });

  it('event "*" also hears the job deleted (DELETE with its key), then nothing more', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const s = await open('2.0.0');
    const join = swiftJoin(job_id, g.accessToken);
    join.config.postgres_changes[0]!.event = '*';
    s.send({ join_ref: '1', ref: '1', topic: `realtime:any-${job_id}`, event: 'phx_join', payload: join });
    const id = (await s.reply('1')).payload.response.postgres_changes[0].id;
    await s.next('the pending job', (m) => m.event === 'postgres_changes');
    await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id } }));
    const deleted = await s.next('DELETE', (m) => m.event === 'postgres_changes' && m.payload.data.type === 'DELETE');
    expect(deleted.payload).toMatchObject({ ids: [id], data: { type: 'DELETE', old_record: { job_id }, errors: null } });
    expect(deleted.payload.data.record).toBeUndefined();
  });

  it('one socket may join at most REALTIME_MAX_CHANNELS channels (ERR_4041)', async () => {
    const g = await t().createGuest();
    const jobs = [];
    for (let i = 0; i < 2; i++) jobs.push((await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }))).job_id);
    const s = await open('2.0.0');
    for (const [i, jobId] of jobs.entries()) s.send({ join_ref: `${i}`, ref: `${i}`, topic: `realtime:video-job-${jobId}`, event: 'phx_join', payload: swiftJoin(jobId, g.accessToken) });
    expect((await s.reply('0')).payload.status).toBe('ok');
    expect((await s.reply('1')).payload.response.reason).toMatch(/^ERR_4041: Realtime limit reached: at most 1 channels per connection/);
  });
});

/** How many times the API's pool hands out a connection while `run` runs: each one is a query or a transaction. */
async function checkoutsDuring(t: TestApp, run: () => Promise<void>): Promise<number> {
  let n = 0;
  const count = () => void n++;
  t.db.on('acquire', count);
  try {
    await run();
  } finally {
    t.db.off('acquire', count);
  }
  return n;
}

/**
 * What a join costs the database (issue 23 item 8: 20 sockets sending 190 phx_join frames each in
 * 10 s made ~6,000 transactions in 9 s). A socket's token is checked against the database once per
 * token, not on every join; joins and access_token events are charged to the realtime-join limiter
 * policy per address and per user, and once refused they cost the database nothing.
 */
describe("Realtime's cost to the database", () => {
  describe('token checks', () => {
    const t = useTestApp({ ANON_KEY });
    const url = serve(t);

    it('ten joins with one token check the session once, then only look the job up', async () => {
      const g = await t().createGuest();
      const s = await RawSocket.open(url(), '2.0.0');
      const joins = 10;
      const checkouts = await checkoutsDuring(t(), async () => {
        for (let i = 1; i <= joins; i++) {
          // A job id nobody has: the join is refused (ERR_4007) right after the token and the lookup.
          s.send({ join_ref: `${i}`, ref: `${i}`, topic: `realtime:t${i}`, event: 'phx_join', payload: swiftJoin(randomUUID(), g.accessToken) });
          expect((await s.reply(`${i}`)).payload.response.reason).toMatch(/^ERR_4007: /);
        }
      });
      s.ws.close();
      expect(checkouts, 'one session check, then one job lookup per join').toBe(1 + joins);
    });
  });

  describe('the realtime-join limiter policy', () => {
    const t = useTestApp({ ANON_KEY, RATE_LIMITS_ENABLED: 'true', RATE_LIMITS: 'realtime-join.user=4/600,realtime-join.ip=7/600' });
    const url = serve(t);

    it('joins beyond the per-user and per-address budgets are refused with ERR_4004, and then cost no database work', async () => {
      const g = await t().createGuest();
      const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
      const s = await RawSocket.open(url(), '2.0.0');
      let ref = 0;
      const join = async (token: string) => {
        const r = `${++ref}`;
        s.send({ join_ref: r, ref: r, topic: `realtime:video-job-${job_id}`, event: 'phx_join', payload: swiftJoin(job_id, token) });
        return (await s.reply(r)).payload;
      };
      const outcomes: string[] = [];
      for (let i = 0; i < 4; i++) outcomes.push((await join(g.accessToken)).status);
      expect(outcomes).toEqual(['ok', 'ok', 'ok', 'ok']);
      // The user's fifth join is over its budget: refused with the seconds to wait.
      const fifth = await join(g.accessToken);
      expect(fifth).toMatchObject({ status: 'error', response: { reason: expect.stringMatching(/^ERR_4004: .*\d+/) } });

      // Another user from the same address: its own budget is fresh, the address's runs out at 7 joins.
      const other = await t().createGuest();
      const { job_id: otherJob } = await t().json(t().generate(other, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
      const joinOther = async () => {
        const r = `${++ref}`;
        s.send({ join_ref: r, ref: r, topic: `realtime:other-${otherJob}`, event: 'phx_join', payload: swiftJoin(otherJob, other.accessToken) });
        return (await s.reply(r)).payload;
      };
      expect((await joinOther()).status).toBe('ok');
      expect((await joinOther()).status).toBe('ok');
      expect((await joinOther()).response.reason).toMatch(/^ERR_4004: /);
      // Let the accepted joins' first deliveries finish before counting.
      await waitFor('the first records', () => s.received.filter((m) => m.event === 'postgres_changes').length >= 2);

      const refused = 50;
      const checkouts = await checkoutsDuring(t(), async () => {
        for (let i = 0; i < refused; i++) expect((await join(g.accessToken)).response.reason).toMatch(/^ERR_4004: /);
      });
      expect(checkouts, `${refused} refused joins`).toBe(0);
      s.ws.close();
    });
  });

  describe('access_token events', () => {
    // Its own app: the limiter counts per address, and every socket of a test comes from 127.0.0.1.
    const t = useTestApp({ ANON_KEY, RATE_LIMITS_ENABLED: 'true', RATE_LIMITS: 'realtime-join.user=3/600,realtime-join.ip=off' });
    const url = serve(t);

    it('a new token is charged like a join (the same one again is free): over the budget the channel ends with ERR_4004', async () => {
      const g = await t().createGuest();
      const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
      const { session_id } = decodeJwt(g.accessToken) as { session_id: string };
      const tokenOfSession = async (n: number) => (await t().services.tokens.sign({ sub: g.userId, sessionId: session_id, isAnonymous: true, email: `same-user-${n}@example.com` })).token;
      const s = await RawSocket.open(url(), '1.0.0');
      const topic = `realtime:video-job-${job_id}`;
      s.send({ topic, event: 'phx_join', payload: swiftJoin(job_id, g.accessToken), ref: '1', join_ref: '1' });
      expect((await s.reply('1')).payload.status).toBe('ok');
      const accessToken = (token: string, ref: string) => s.send({ topic, event: 'access_token', payload: { access_token: token }, ref, join_ref: '1' });
      for (let i = 0; i < 5; i++) accessToken(g.accessToken, `same${i}`);
      accessToken(await tokenOfSession(2), 'a2');
      accessToken(await tokenOfSession(3), 'a3');
      // Frames are handled in order: the heartbeat's reply comes after both tokens were taken.
      s.send({ topic: 'phoenix', event: 'heartbeat', payload: {}, ref: 'hb' });
      await s.reply('hb');
      expect(s.received.filter((m) => m.event === 'system' && m.payload.status === 'error')).toEqual([]);

      accessToken(await tokenOfSession(4), 'a4');
      expect(await s.next('system error', (m) => m.event === 'system' && m.payload.status === 'error')).toMatchObject({
        topic,
        payload: { extension: 'system', message: expect.stringMatching(/^ERR_4004: /) },
      });
      await s.next('phx_close', (m) => m.event === 'phx_close');
      s.ws.close();
    });
  });
});

describe('Realtime in legacy anon-key mode (the shipped app build)', () => {
  const t = useTestApp({ ANON_KEY, LEGACY_ANON_CLIENTS: 'true', SIMULATOR_DELAY_MS: '600' });
  const url = serve(t);
  afterEach(() => t().stopWorker());

  it('the anon key subscribes to one job by its id and receives it to the end, as VideoJob decodes it', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    // supabase-swift with no session: the socket's access token is the anon key.
    const w = watchJob(supabase(url()), job_id);
    await waitFor('the pending job', () => w.statuses()[0] === 'pending');
    await t().startWorker();
    await waitFor('completed', () => w.statuses().at(-1) === 'completed');
    expect(w.statuses()).toEqual(['pending', 'processing', 'completed']);
    const record = w.updates.at(-1).new;
    // Exactly VideoJob's keys (docs/reference/ios-app.md §2.13): its decoder requires prompt and model_name; no error text.
    expect(Object.keys(record).sort()).toEqual(['created_at', 'credits_used', 'job_id', 'model_name', 'prompt', 'status', 'thumbnail_url', 'video_url']);
    expect(record).toMatchObject({ job_id, model_name: 'Simulator', prompt: PROMPT, credits_used: 1, status: 'completed' });
  });

  it('an id that names no job is refused, and a deleted job can no longer be joined', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const unknown = watchJob(supabase(url()), randomUUID());
    expect((await waitFor('CHANNEL_ERROR', () => unknown.states.find((s) => s.status === 'CHANNEL_ERROR'))).err?.message).toMatch(/^ERR_4007: /);
    await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id } }));
    const deleted = watchJob(supabase(url()), job_id);
    expect((await waitFor('CHANNEL_ERROR', () => deleted.states.find((s) => s.status === 'CHANNEL_ERROR'))).err?.message).toMatch(/^ERR_4007: /);
    expect(deleted.updates).toEqual([]);
  });
});

describe('Realtime limits', () => {
  const t = useTestApp({ ANON_KEY, REALTIME_HEARTBEAT_TIMEOUT_MS: '1000' });
  const url = serve(t);

  it('a socket that sends no heartbeat is closed', async () => {
    const s = await RawSocket.open(url(), '1.0.0');
    const closed = await waitFor('the server to close the idle socket', () => s.closed);
    expect(closed).toEqual({ code: 1000, reason: 'heartbeat timeout' });
  });
});

describe('Realtime sockets per address', () => {
  const t = useTestApp({ ANON_KEY, REALTIME_MAX_SOCKETS_PER_ADDRESS: '2' });
  const url = serve(t);

  it('one address holds at most REALTIME_MAX_SOCKETS_PER_ADDRESS sockets; a closed one frees its place', async () => {
    const first = await RawSocket.open(url(), '1.0.0');
    const second = await RawSocket.open(url(), '1.0.0');
    const refused = await refusedUpgrade(`${url().replace('http', 'ws')}/realtime/v1/websocket?apikey=${ANON_KEY}&vsn=1.0.0`);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe('ERR_4041');
    first.ws.close();
    await waitFor('the server to see the close', () => first.closed);
    // The server counts the socket out on its own close event: give it a few tries.
    let third: RawSocket | undefined;
    for (let i = 0; i < 50 && !third; i++) {
      third = await RawSocket.open(url(), '1.0.0').catch(() => undefined);
      if (!third) await new Promise((r) => setTimeout(r, 100));
    }
    expect(third).toBeDefined();
    third!.ws.close();
    second.ws.close();
  });
});

describe('Realtime while the LISTEN connection is down', () => {
  // Port 1 refuses every connection: this process never LISTENs, as for the minutes a database
  // restart or a network cut lasts.
  const t = useTestApp({ ANON_KEY, SIMULATOR_DELAY_MS: '600', DATABASE_DIRECT_URL: 'postgres://postgres@127.0.0.1:1/unreachable', EVENTS_REREAD_MS: '300' });
  const url = serve(t);
  afterEach(() => t().stopWorker());

  it('subscribers re-read on a timer instead, so the final status still arrives', async () => {
    const g = await t().createGuest();
    const { job_id } = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: PROMPT }));
    const sb = await signedIn(url(), g);
    const watch = watchJob(sb, job_id);
    await waitFor('subscribed', () => watch.states.find((s) => s.status === 'SUBSCRIBED'));
    await t().startWorker();
    await waitFor('completed', () => watch.statuses().includes('completed'), 60_000);
    expect(t().services.listener.live).toBe(false);
  });
});
