import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as ledger from '../../src/ledger/ledger.js';
import { useTestApp } from '../support/harness.js';
import { itEnforcesUserAuth } from '../support/user-auth.js';

const SIM = 'simulator-text-to-video';

describe('generate-video: idempotency, concurrency and validation', () => {
  const t = useTestApp();

  const jobsOf = async (userId: string) =>
    (await t().db.query('SELECT count(*)::int AS n FROM video_jobs WHERE user_id = $1', [userId])).rows[0].n as number;

  it('50 concurrent requests with one key make exactly one job and one hold', { timeout: 180_000 }, async () => {
    const g = await t().createGuest();
    const key = randomUUID();
    const body = { model_id: SIM, prompt: 'one and only one' };
    const responses = await Promise.all(Array.from({ length: 50 }, () => t().generate(g, body, key)));
    const statuses = responses.map((r) => r.status);
    expect(statuses.every((s) => s === 200 || s === 409), statuses.join(',')).toBe(true);
    const ok = await Promise.all(responses.filter((r) => r.status === 200).map((r) => r.json() as Promise<any>));
    expect(new Set(ok.map((b) => b.job_id)).size).toBe(1);
    expect(await jobsOf(g.userId)).toBe(1);
    const holds = await t().db.query('SELECT count(*)::int AS n FROM credit_holds WHERE user_id = $1', [g.userId]);
    expect(holds.rows[0].n).toBe(1);
    // Once answered, a retry replays the very same answer.
    const replay = await t().generate(g, body, key);
    expect(replay.status).toBe(200);
    expect(replay.headers.get('x-idempotent-replay')).toBe('true');
    expect(((await replay.json()) as any).job_id).toBe(ok[0].job_id);
  });

  it('200 concurrent requests with distinct keys from a user who can afford 7 → exactly 7 jobs, the rest 402', { timeout: 180_000 }, async () => {
    const g = await t().createGuest();
    await ledger.adminAdjust(t().db, { userId: g.userId, amount: -3, reason: 'test: leave 7 credits' });
    const responses = await Promise.all(Array.from({ length: 200 }, (_, i) => t().generate(g, { model_id: SIM, prompt: `clip ${i}` })));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200)).toHaveLength(7);
    expect(statuses.filter((s) => s === 402)).toHaveLength(193);
    const refused = (await responses.find((r) => r.status === 402)!.json()) as any;
    expect(refused.error).toMatchObject({ code: 'ERR_4001', details: { required: 1, available: 0 } });
    expect(await jobsOf(g.userId)).toBe(7);
    expect(await ledger.getAccount(t().db, g.userId)).toEqual({ balance: 7, held: 7, available: 0, debt: 0 });
  });

  it('the same key with a different body is 422 and moves nothing', async () => {
    const g = await t().createGuest();
    const key = randomUUID();
    await t().json(t().generate(g, { model_id: SIM, prompt: 'first body' }, key));
    const res = await t().json(t().generate(g, { model_id: SIM, prompt: 'second body' }, key), 422);
    expect(res.error.code).toBe('ERR_4010');
    expect(await jobsOf(g.userId)).toBe(1);
  });

  it('keys are scoped per user: another user with the same key gets their own job', async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    const key = randomUUID();
    const ra = await t().json(t().generate(a, { model_id: SIM, prompt: 'same key, user a' }, key));
    const rb = await t().json(t().generate(b, { model_id: SIM, prompt: 'same key, user a' }, key));
    expect(rb.job_id).not.toBe(ra.job_id);
  });

  it('a refused request leaves the key free: after buying credits, the same key works', async () => {
    const g = await t().createGuest();
    await ledger.adminAdjust(t().db, { userId: g.userId, amount: -10, reason: 'test: empty' });
    const key = randomUUID();
    await t().json(t().generate(g, { model_id: SIM, prompt: 'try me' }, key), 402);
    await ledger.adminAdjust(t().db, { userId: g.userId, amount: 5, reason: 'test: top up' });
    const ok = await t().json(t().generate(g, { model_id: SIM, prompt: 'try me' }, key));
    expect(ok.credits_remaining).toBe(4);
  });

  it('a request that died mid-way (stale lock) can be retried; a fresh lock answers 409', async () => {
    const g = await t().createGuest();
    const key = randomUUID();
    const body = { model_id: SIM, prompt: 'crashed first attempt' };
    const { fingerprint } = await import('../../src/http/idempotency.js');
    await t().db.query(
      `INSERT INTO idempotency_keys (user_id, key, request_method, request_path, request_fingerprint, locked_at)
       VALUES ($1, $2, 'POST', '/functions/v1/generate-video', $3, now())`,
      [g.userId, key, fingerprint('POST', '/functions/v1/generate-video', JSON.stringify(body))],
    );
    const busy = await t().json(t().generate(g, body, key), 409);
    expect(busy.error.code).toBe('ERR_4009');
    await t().db.query("UPDATE idempotency_keys SET locked_at = now() - interval '5 minutes' WHERE key = $1", [key]);
    await t().json(t().generate(g, body, key));
    expect(await jobsOf(g.userId)).toBe(1);
  });

  it.each([
    [{ 'idempotency-key': undefined }, 400, 'ERR_4018'],
    [{ 'idempotency-key': '' }, 400, 'ERR_4018'],
    [{ 'idempotency-key': 'x'.repeat(256) }, 400, 'ERR_4018'],
    [{ 'idempotency-key': 'has space' }, 400, 'ERR_4018'],
  ])('Idempotency-Key %j → %i %s', async (headers, status, code) => {
    const g = await t().createGuest();
    const h = Object.fromEntries(Object.entries(headers).filter(([, v]) => v !== undefined)) as Record<string, string>;
    const res = await t().json(t().post('/functions/v1/generate-video', { token: g.accessToken, headers: h, body: { model_id: SIM, prompt: 'hello there' } }), status);
    expect(res.error.code).toBe(code);
  });

  it.each([
    [{ model_id: SIM, prompt: '  hi ' }, 400, 'ERR_4003'],
    [{ model_id: SIM, prompt: 'x'.repeat(5001) }, 400, 'ERR_4003'],
    [{ model_id: 'no-such-model', prompt: 'hello there' }, 404, 'ERR_4002'],
    [{ model_id: 'sora-2-image-to-video', prompt: 'hello there' }, 404, 'ERR_4002'],
    [{ prompt: 'hello there' }, 400, 'ERR_4008'],
    [{ theme_id: '00000000-0000-4000-8000-000000000000', prompt: 'hello there' }, 400, 'ERR_4008'],
    [{ model_id: SIM, prompt: 'hello there', settings: { duration: 12 } }, 400, 'ERR_4008'],
    [{ model_id: SIM, prompt: 'hello there', settings: { aspect_ratio: '4:3' } }, 400, 'ERR_4008'],
    [{ model_id: SIM, prompt: 'hello there', image_url: 'https://example.com/a.jpg' }, 400, 'ERR_4008'],
    [{ model_id: 'simulator-image-to-video', prompt: 'hello there' }, 400, 'ERR_4008'],
    [{ model_id: 'simulator-image-to-video', prompt: 'hello there', image_url: 'http://169.254.169.254/latest/meta-data' }, 400, 'ERR_4008'],
    [{ model_id: SIM, prompt: 42 }, 400, 'ERR_4008'],
  ])('rejects %j before any money moves (%i %s)', async (body, status, code) => {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, body), status);
    expect(res.error.code).toBe(code);
    expect(await jobsOf(g.userId)).toBe(0);
    expect((await ledger.getAccount(t().db, g.userId)).held).toBe(0);
  });

  it('image-to-video accepts only the caller’s own upload from our inputs bucket', async () => {
    const [g, other] = [await t().createGuest(), await t().createGuest()];
    const jpeg = Buffer.from('/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAgGBgcGBQgHBwcJCQgKDBQNDAsLDBkSEw8UHRofHh0aHBwgJC4nICIsIxwcKDcpLDAxNDQ0Hyc5PTgyPC4zNDL/wAALCAABAAEBAREA/8QAFAABAAAAAAAAAAAAAAAAAAAACf/EABQQAQAAAAAAAAAAAAAAAAAAAAD/2gAIAQEAAD8AKp//2Q==', 'base64');
    const upload = await t().app.request(`/storage/v1/object/thumbnails/${g.userId}/input_1.jpg`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'image/jpeg' },
      body: jpeg,
    });
    expect(upload.status, await upload.clone().text()).toBe(200);
    const publicUrl = `${t().services.config.publicUrl}/storage/v1/object/public/thumbnails/${g.userId}/input_1.jpg`;
    // Providers fetch it without auth.
    const fetched = await t().app.request(new URL(publicUrl).pathname);
    expect(fetched.status).toBe(200);
    expect(Buffer.from(await fetched.arrayBuffer())).toEqual(jpeg);

    const ok = await t().json(t().generate(g, { model_id: 'simulator-image-to-video', prompt: 'animate this', image_url: publicUrl }));
    expect(ok.credits_used).toBe(1);
    const theirs = await t().json(t().generate(other, { model_id: 'simulator-image-to-video', prompt: 'animate this', image_url: publicUrl }), 400);
    expect(theirs.error.details.field).toBe('image_url');

    // Upload rules: own folder only, images only.
    const foreign = await t().app.request(`/storage/v1/object/thumbnails/${other.userId}/x.jpg`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'image/jpeg' },
      body: jpeg,
    });
    expect(foreign.status).toBe(403);
    const notImage = await t().app.request(`/storage/v1/object/thumbnails/${g.userId}/x.html`, {
      method: 'POST',
      headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'text/html' },
      body: '<script>',
    });
    expect(notImage.status).toBe(415);
    const anonymous = await t().app.request(`/storage/v1/object/thumbnails/${g.userId}/y.jpg`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: jpeg });
    expect(anonymous.status).toBe(401);
    // The private results bucket is never public.
    expect((await t().app.request(`/storage/v1/object/public/videos/${g.userId}/a.mp4`)).status).toBe(404);
  });

  describe('generate-video security', () => {
    itEnforcesUserAuth(t, { method: 'POST', path: () => '/functions/v1/generate-video', body: (id) => ({ user_id: id, model_id: SIM, prompt: 'hello there' }) });
  });
  describe('get-video-jobs security', () => {
    itEnforcesUserAuth(t, { method: 'GET', path: (id) => `/functions/v1/get-video-jobs?user_id=${id}` });
  });
});
