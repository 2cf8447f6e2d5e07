import { generateKeyPairSync } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { FalProvider } from '../../src/providers/fal.js';
import { FakeFal } from '../fakes/fal.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

const VEO = 'veo-3.1-text-to-video';

describe('fal provider against the local fal fake', () => {
  const fal = new FakeFal();
  beforeAll(() => fal.start());
  afterAll(() => fal.stop());
  beforeEach(() => fal.server.clearFaults());
  const t = falTestApp(fal);

  async function start(g: Guest, prompt: string) {
    const res = await t().json(t().generate(g, { model_id: VEO, prompt, settings: { duration: 4 } }));
    await until(async () => (await job(t(), res.job_id)).provider_job_id !== null);
    const row = await job(t(), res.job_id);
    return { jobId: res.job_id as string, requestId: row.provider_job_id as string };
  }

  const deliver = (hook: { body: string; headers: Record<string, string> }) =>
    t().app.request('/functions/v1/provider-webhook/fal', { method: 'POST', body: hook.body, headers: hook.headers });

  it('submits the mapped input with our webhook URL, completes on the signed webhook, stores the video', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const { jobId, requestId } = await start(g, 'a lighthouse in a storm');
    const sent = fal.requests.get(requestId)!;
    expect(sent.endpoint).toBe('fal-ai/veo3.1');
    expect(sent.input).toMatchObject({ prompt: 'a lighthouse in a storm', duration: '4s', aspect_ratio: '16:9', resolution: '720p' });
    expect(sent.webhook).toBe(`https://api.rendio.test/functions/v1/provider-webhook/fal?job_id=${jobId}&attempt=1`);

    await new Promise((r) => setTimeout(r, 250)); // the fake finishes the request
    const res = await deliver(fal.webhookFor(requestId));
    expect(await res.json()).toEqual({ received: true, outcome: 'accepted' });
    const done = await t().waitForJob(g.accessToken, jobId);
    expect(done).toMatchObject({ status: 'completed', credits_used: 4 });
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(6);

    // Replayed (fal retries): 200, nothing changes.
    const again = await deliver(fal.webhookFor(requestId));
    expect(await again.json()).toEqual({ received: true, outcome: 'duplicate' });
    const captures = await t().db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE job_id = $1 AND kind = 'capture'", [jobId]);
    expect(captures.rows[0].n).toBe(1);
  });

  it('completes by polling when no webhook arrives', async () => {
    const g = await t().createGuest();
    const { jobId } = await start(g, 'a quiet harbour at dawn');
    await new Promise((r) => setTimeout(r, 250));
    await t().services.jobs.poll(jobId);
    await t().services.jobs.ingest(jobId);
    expect((await job(t(), jobId)).status).toBe('completed');
  });

  it('a webhook saying OK with payload null and a payload_error completes the job from the response URL (no lost video)', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const { jobId, requestId } = await start(g, 'a glacier calving into the sea [fal:payload-error]');
    const r = fal.requests.get(requestId)!;
    await until(async () => Date.now() - r.createdAt > fal.timing.queuedMs + fal.timing.runningMs);
    const hook = fal.webhookFor(requestId);
    expect(JSON.parse(hook.body)).toMatchObject({ status: 'OK', payload: null, payload_error: expect.any(String) });
    expect(await (await deliver(hook)).json()).toEqual({ received: true, outcome: 'accepted' });
    const done = await t().waitForJob(g.accessToken, jobId);
    expect(done, JSON.stringify(done)).toMatchObject({ status: 'completed', credits_used: 4, error_code: null });
    expect(done.video_url).toEqual(expect.any(String));
    // Fetched from the response URL submit returned, not by rebuilding one.
    expect(fal.server.calls(new RegExp(`^/fal-ai/veo3\\.1/requests/${requestId}$`)).length).toBeGreaterThan(0);
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(6);
  });

  it('a content-policy rejection fails the job with ERR_5003 and releases every credit', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const { jobId, requestId } = await start(g, 'something nasty [fal:reject]');
    await new Promise((r) => setTimeout(r, 250));
    await deliver(fal.webhookFor(requestId));
    const done = await t().waitForJob(g.accessToken, jobId);
    expect(done).toMatchObject({ status: 'failed', error_code: 'ERR_5003' });
    // The user reads our words; fal's own stay in provider_error for operators.
    expect(done.error_message).toBe('The video provider rejected this prompt. Your credits were returned.');
    const { rows } = await t().db.query('SELECT provider_error FROM video_jobs WHERE job_id = $1', [jobId]);
    expect(rows[0].provider_error).toMatch(/^fal: /);
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
  });

  it("a setting the model does not declare is not sent: the app's resolution on Kling (which has none) never reaches fal", async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'kling-2.6-pro-text-to-video', prompt: 'a kite over dunes', settings: { resolution: '1080p', aspect_ratio: 'auto', duration: 5 } }));
    await until(async () => (await job(t(), res.job_id)).provider_job_id !== null);
    const sent = fal.requests.get((await job(t(), res.job_id)).provider_job_id)!;
    expect(sent.input).toEqual({ prompt: 'a kite over dunes', duration: '5', aspect_ratio: '16:9' });
  });

  it('forged, tampered, stale and header-less webhooks are rejected and change nothing', async () => {
    const g = await t().createGuest();
    const { jobId, requestId } = await start(g, 'target of forgery');
    const { privateKey: attackerKey } = generateKeyPairSync('ed25519');
    const good = fal.webhookFor(requestId);
    const cases = [
      fal.webhookFor(requestId, { key: attackerKey }),
      { body: good.body.replace('"OK"', '"ERROR"'), headers: good.headers },
      // Well outside fal's ±300 s window: a loaded machine takes seconds between signing and delivery.
      fal.webhookFor(requestId, { timestamp: Math.floor(Date.now() / 1000) - 400 }),
      fal.webhookFor(requestId, { timestamp: Math.floor(Date.now() / 1000) + 400 }),
      { body: good.body, headers: { 'content-type': 'application/json' } },
      { body: good.body, headers: { ...good.headers, 'x-fal-webhook-signature': 'ab' } },
    ];
    for (const hook of cases) {
      const res = await deliver(hook);
      expect(res.status, hook.body.slice(0, 60)).toBe(401);
    }
    const events = await t().db.query('SELECT count(*)::int AS n FROM webhook_events WHERE event_id = $1', [requestId]);
    expect(events.rows[0].n).toBe(0);
    expect((await job(t(), jobId)).status).toBe('submitted');
  });

  it('a webhook validly signed by fal for another fal account (X-Fal-Webhook-User-Id) is refused with 401 and stores nothing', async () => {
    const g = await t().createGuest();
    const { jobId, requestId } = await start(g, 'someone else’s webhook');
    await new Promise((r) => setTimeout(r, 250)); // the fake finishes the request
    for (const userId of ['another-fal-user', `${fal.userId}x`, fal.userId.slice(0, -1)]) {
      const res = await deliver(fal.webhookFor(requestId, { userId }));
      expect(res.status, userId).toBe(401);
      expect(((await res.json()) as any).error.details.reason).toMatch(/another fal account/);
    }
    const events = await t().db.query('SELECT count(*)::int AS n FROM webhook_events WHERE event_id = $1', [requestId]);
    expect(events.rows[0].n).toBe(0);
    expect((await job(t(), jobId)).status).toBe('submitted');
    // Ours is accepted.
    expect((await deliver(fal.webhookFor(requestId))).status).toBe(200);
  });

  it('without FAL_WEBHOOK_USER_ID the user id is only checked by the signature', async () => {
    const open = new FalProvider({ ...loadConfig({ ...fal.env(), FAL_WEBHOOK_USER_ID: undefined }).fal!, timeoutMs: 2000 });
    expect(loadConfig(fal.env()).fal!.webhookUserId).toBe(fal.userId);
    const hook = fal.webhookFor('00000000-0000-0000-0000-000000000001', { userId: 'another-fal-user' });
    const event = await open.verifyWebhook(hook.body, new Headers(hook.headers));
    expect(event.providerJobId).toBe('00000000-0000-0000-0000-000000000001');
  });

  it('accepts webhooks signed with a rotated key, and logs (not errors) unknown request ids', async () => {
    const g = await t().createGuest();
    const { requestId } = await start(g, 'after rotation');
    fal.rotateKey(true);
    expect((await deliver(fal.webhookFor(requestId))).status).toBe(200);
    const unknown = await deliver(fal.webhookFor('00000000-0000-0000-0000-000000000000'));
    expect(await unknown.json()).toEqual({ received: true, outcome: 'unknown_job' });
  });

  it('malformed provider JSON fails the job (not the worker) and refunds', async () => {
    const g = await t().createGuest();
    const { jobId } = await start(g, 'bad gateway body [fal:garbage-result]');
    await new Promise((r) => setTimeout(r, 250));
    await t().services.jobs.poll(jobId);
    const row = await job(t(), jobId);
    expect(row).toMatchObject({ status: 'failed', error_code: 'ERR_5002' });
  });

  it('a provider that never finishes is failed with ERR_5001 at the deadline and cancelled there, by the queue: a 503 on the cancel is asked again', { timeout: 30_000 }, async () => {
    const g = await t().createGuest();
    const { jobId, requestId } = await start(g, 'stuck forever [fal:hang]');
    await t().services.jobs.poll(jobId);
    expect((await job(t(), jobId)).status).toBe('submitted');
    await t().db.query("UPDATE video_jobs SET deadline_at = now() - interval '1 second' WHERE job_id = $1", [jobId]);
    fal.server.inject(/\/cancel$/, { status: 503, body: '{"detail":"overloaded"}', times: 1 });
    await t().services.jobs.sweep();
    expect(await job(t(), jobId)).toMatchObject({ status: 'failed', error_code: 'ERR_5001' });
    // The cancel was queued with the failure: the worker sends it, and sends it again after the 503.
    await t().startWorker();
    await until(async () => fal.requests.get(requestId)!.cancelled, 20_000);
    const answer = async () => (await t().db.query('SELECT cancel_answer, billed FROM provider_submissions WHERE provider_job_id = $1', [requestId])).rows[0];
    await until(async () => (await answer()).cancel_answer === 'cancelled', 10_000);
    expect(await answer()).toEqual({ cancel_answer: 'cancelled', billed: false });
    await t().stopWorker();
  });
});

describe('fal outage', () => {
  const fal = new FakeFal();
  beforeAll(() => fal.start());
  afterAll(() => fal.stop());
  // Its own app: the circuit breaker this test opens must not leak into other tests.
  const t = falTestApp(fal);

  it('a 503 storm: retries with backoff, the circuit opens (fails fast), and after the deadline the job fails and is refunded', async () => {
    await t().startWorker();
    fal.server.inject(/^\/fal-ai\/veo3\.1/, { status: 503, body: '{"detail":"overloaded","error_type":"runner_scheduling_failure"}', times: Infinity });
    const g = await t().createGuest();
    const before = fal.server.calls(/^\/fal-ai\/veo3\.1/).length;
    const res = await t().json(t().generate(g, { model_id: VEO, prompt: 'during an outage', settings: { duration: 4 } }));
    await until(async () => fal.server.calls(/^\/fal-ai\/veo3\.1/).length - before >= 5, 10_000);
    await new Promise((r) => setTimeout(r, 500));
    // Breaker: 5 consecutive failures, then calls stop reaching the provider.
    expect(fal.server.calls(/^\/fal-ai\/veo3\.1/).length - before).toBe(5);
    expect((await job(t(), res.job_id)).status).toBe('queued');
    await t().db.query("UPDATE video_jobs SET deadline_at = now() - interval '1 second' WHERE job_id = $1", [res.job_id]);
    await t().services.jobs.sweep();
    const done = await t().waitForJob(g.accessToken, res.job_id);
    expect(done).toMatchObject({ status: 'failed', error_code: 'ERR_5001' });
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
  });

});

function falTestApp(fal: FakeFal) {
  return useTestApp(
    () => ({ ...fal.env(), PROVIDER_RETRY_BASE_MS: '20', PUBLIC_URL: 'https://api.rendio.test' }),
    () => ({ providers: { fal: new FalProvider({ ...loadConfig(fal.env()).fal!, timeoutMs: 2000, jwksMinRefreshMs: 0 }) } }),
  );
}

async function job(t: TestApp, jobId: string) {
  return (await t.db.query('SELECT * FROM video_jobs WHERE job_id = $1', [jobId])).rows[0];
}

async function until(check: () => Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('condition not reached in time');
}
