import { describe, expect, it } from 'vitest';
import { randomUUID } from 'node:crypto';
import { useTestApp } from '../support/harness.js';

const ANON = 'anon-key-for-the-shipped-app-0123456789';

describe('get-video-status from the shipped app (legacy anon-key mode)', () => {
  const t = useTestApp({ ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true' });
  // docs/reference/ios-app.md §2.11: the anon key as Bearer and apikey, job_id only — no user_id.
  const legacy = { token: ANON, headers: { apikey: ANON } };

  it('answers by the job id alone with only the status fields the app decodes, until the job is deleted', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a private prompt about my cat' }));
    const path = `/functions/v1/get-video-status?job_id=${res.job_id}`;

    const first = await t().json(t().get(path, legacy));
    expect(['pending', 'processing', 'completed']).toContain(first.status);
    const deadline = Date.now() + 20_000;
    let last = first;
    while (last.status !== 'completed' && last.status !== 'failed' && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      last = await t().json(t().get(path, legacy));
    }
    expect(last, JSON.stringify(last)).toMatchObject({ job_id: res.job_id, status: 'completed', model_name: 'Simulator', credits_used: 1 });
    expect(Object.keys(last).sort()).toEqual(['created_at', 'credits_used', 'job_id', 'model_name', 'status', 'thumbnail_url', 'video_url']);
    expect(JSON.stringify(last)).not.toContain('cat');
    expect(typeof last.video_url).toBe('string');

    // Secure mode is unchanged: the owner's token sees the full job, with the prompt.
    const own = await t().json(t().get(path, { token: g.accessToken }));
    expect(own).toMatchObject({ job_id: res.job_id, prompt: 'a private prompt about my cat', status: 'completed' });
    // Another user's token still cannot see it.
    const other = await t().createGuest();
    await t().json(t().get(path, { token: other.accessToken }), 404);

    await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: res.job_id } }));
    await t().json(t().get(path, legacy), 404);
  });

  it('an unknown job id is 404 and a malformed one 400; without the anon key or a token it is 401', async () => {
    await t().json(t().get(`/functions/v1/get-video-status?job_id=${randomUUID()}`, legacy), 404);
    await t().json(t().get('/functions/v1/get-video-status?job_id=not-a-uuid', legacy), 400);
    await t().json(t().get(`/functions/v1/get-video-status?job_id=${randomUUID()}`, { token: 'not-the-anon-key' }), 401);
    await t().json(t().get(`/functions/v1/get-video-status?job_id=${randomUUID()}`), 401);
  });
});

describe('get-video-status in secure mode', () => {
  const t = useTestApp({ ANON_KEY: ANON });

  it('the anon key alone does not read a job', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'secure mode clip' }));
    await t().json(t().get(`/functions/v1/get-video-status?job_id=${res.job_id}`, { token: ANON, headers: { apikey: ANON } }), 401);
  });
});
