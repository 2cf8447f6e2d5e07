import { randomUUID } from 'node:crypto';
import { AuthApiError, createClient, FunctionsHttpError, type SupabaseClient } from '@supabase/supabase-js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import ws from 'ws';
import { startHttpServer, type ListeningServer } from '../src/server.js';
import { appleSub, useFakeAppleId } from './fakes/apple-id.js';
import { useTestApp, type TestApp } from './harness.js';

/**
 * The real @supabase/supabase-js client against this server on a real socket: what a web or
 * Node client written for Supabase does (auth.setSession/getUser/refreshSession,
 * signInWithIdToken, functions.invoke), not what our own tests think it does.
 */

const ANON_KEY = 'anon-key-of-this-test-project';

function serveOverHttp(t: () => TestApp): () => string {
  let server: ListeningServer | undefined;
  beforeAll(async () => {
    server = await startHttpServer(t().app.fetch, { port: 0, hostname: '127.0.0.1', limits: t().services.config.http });
  });
  afterAll(async () => {
    await server?.close();
  });
  return () => `http://127.0.0.1:${server!.port}`;
}

const client = (url: string, key = ANON_KEY): SupabaseClient =>
  createClient(url, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: ws as never },
  });

describe('supabase-js against a server with ANON_KEY', () => {
  const t = useTestApp({ ANON_KEY });
  const url = serveOverHttp(t);

  it('setSession() and getUser() read the GoTrue user of the session (GET /auth/v1/user)', async () => {
    const g = await t().createGuest();
    const sb = client(url());
    const { data, error } = await sb.auth.setSession({ access_token: g.accessToken, refresh_token: g.refreshToken });
    expect(error).toBeNull();
    expect(data.user).toMatchObject({ id: g.userId, is_anonymous: true, aud: 'authenticated', app_metadata: { provider: 'anonymous' } });
    const got = await sb.auth.getUser();
    expect(got.error).toBeNull();
    expect(got.data.user?.id).toBe(g.userId);
  });

  it("auth errors reach supabase-js as AuthApiError with our status, code and message", async () => {
    const g = await t().createGuest();
    await t().json(t().post('/auth/v1/logout', { token: g.accessToken }), 204);
    const { error } = await client(url()).auth.getUser(g.accessToken);
    expect(error).toBeInstanceOf(AuthApiError);
    expect(error).toMatchObject({ status: 401, code: 'ERR_4005' });
    expect(error?.message).toMatch(/session is missing or has expired/); // our localized message, not "[object Object]"

    const refreshed = await client(url()).auth.refreshSession({ refresh_token: 'not-a-refresh-token' });
    expect(refreshed.error).toBeInstanceOf(AuthApiError);
    expect(refreshed.error).toMatchObject({ status: 401, code: 'ERR_4005' });
    expect(refreshed.error?.message).toMatch(/session is missing or has expired/);
  });

  it('functions.invoke() POSTs JSON: the read functions answer POST (body) as they answer GET (query)', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const job = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a red fox running through snow' }));
    const sb = client(url());
    await sb.auth.setSession({ access_token: g.accessToken, refresh_token: g.refreshToken });

    const credits = await sb.functions.invoke('get-user-credits');
    expect(credits.error, String(credits.error)).toBeNull();
    expect(credits.data).toMatchObject({ credits_remaining: g.credits - 1 });

    const profile = await sb.functions.invoke('get-user-profile', { body: { user_id: g.userId } });
    expect(profile.data).toMatchObject({ id: g.userId, is_guest: true });

    const jobs = await sb.functions.invoke('get-video-jobs', { body: { limit: 5 } });
    expect(jobs.data.jobs.map((j: { job_id: string }) => j.job_id)).toEqual([job.job_id]);

    // Compared once the job has ended: while it runs, the worker may move it between the two reads.
    await t().waitForJob(g.accessToken, job.job_id);
    const status = await sb.functions.invoke('get-video-status', { body: { job_id: job.job_id } });
    expect(status.data).toMatchObject({ job_id: job.job_id, prompt: 'a red fox running through snow' });
    // The shipped app's GET with a query is unchanged.
    const viaGet = await sb.functions.invoke(`get-video-status?job_id=${job.job_id}`, { method: 'GET' });
    // The same answer but for the signed link, whose expiry is counted from each request.
    const unsigned = (d: any) => ({ ...d, video_url: typeof d.video_url });
    expect(unsigned(viaGet.data)).toEqual(unsigned(status.data));

    // The body is validated like the query, and names no other user.
    const bad = await sb.functions.invoke('get-video-status', { body: { job_id: 'nope' } });
    expect(bad.error).toBeInstanceOf(FunctionsHttpError);
    expect((bad.error as FunctionsHttpError).context.status).toBe(400);
    const other = await sb.functions.invoke('get-user-credits', { body: { user_id: randomUUID() } });
    expect((other.error as FunctionsHttpError).context.status).toBe(403);
  });
});

describe('supabase-js against a server without ANON_KEY (it sends its key as Bearer on auth calls)', () => {
  const apple = useFakeAppleId();
  const t = useTestApp(() => apple.env());
  const url = serveOverHttp(t);

  it('refreshSession() and signInWithIdToken() are not refused as carrying an invalid user token', async () => {
    const g = await t().createGuest();
    const refreshed = await client(url(), 'some-anon-key').auth.refreshSession({ refresh_token: g.refreshToken });
    expect(refreshed.error).toBeNull();
    expect(refreshed.data.user?.id).toBe(g.userId);

    const signedIn = await client(url(), 'some-anon-key').auth.signInWithIdToken({ provider: 'apple', token: await apple.identityToken({ sub: appleSub() }) });
    expect(signedIn.error).toBeNull();
    expect(signedIn.data.user?.app_metadata.provider).toBe('apple');
  });

  it('elsewhere a bearer that is not a user token is still 401', async () => {
    await t().json(t().get('/functions/v1/get-user-credits', { token: 'some-anon-key' }), 401);
    await t().json(t().get('/auth/v1/user', { token: 'some-anon-key' }), 401);
  });
});

describe('CORS', () => {
  const ORIGIN = 'https://app.example.com';
  const t = useTestApp({ ANON_KEY, CORS_ORIGINS: `${ORIGIN}, https://admin.example.com` });
  const preflight = (origin: string) =>
    t().app.request('/functions/v1/get-user-credits', {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,apikey,content-type,x-client-info' },
    });

  it('a configured origin gets its preflight answered before the apikey check, with the headers supabase-js sends', async () => {
    const res = await preflight(ORIGIN);
    expect(res.status, await res.clone().text()).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(ORIGIN);
    const allowed = res.headers.get('access-control-allow-headers')?.split(',').map((h) => h.trim()) ?? [];
    for (const h of ['authorization', 'apikey', 'content-type', 'x-client-info', 'idempotency-key', 'prefer', 'range', 'accept-profile', 'content-profile']) {
      expect(allowed).toContain(h);
    }
    const g = await t().createGuest();
    const res2 = await t().get('/functions/v1/get-user-credits', { token: g.accessToken, headers: { origin: ORIGIN } });
    expect(res2.headers.get('access-control-allow-origin')).toBe(ORIGIN);
  });

  it('another origin gets no CORS headers', async () => {
    const res = await preflight('https://evil.example.com');
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('CORS by default', () => {
  const t = useTestApp({ ANON_KEY });
  it('without CORS_ORIGINS there are no CORS headers, and a preflight meets the apikey check', async () => {
    const res = await t().app.request('/functions/v1/get-user-credits', { method: 'OPTIONS', headers: { origin: 'https://app.example.com', 'access-control-request-method': 'GET' } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    expect(res.status).toBe(401);
  });
});
