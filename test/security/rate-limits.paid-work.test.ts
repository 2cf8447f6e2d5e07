import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { findJob } from '../../src/db/queries/video-jobs.js';
import * as ledger from '../../src/ledger/ledger.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { deviceToken } from '../fakes/device-check.js';
import { createTestApp, useTestApp, type TestApp } from '../support/harness.js';

/**
 * Issue 29: the limits never refuse what a user already paid for — a replay of an answered
 * generate-video, the point of a job that failed, a paying account's generations past the free
 * tier — and bursts are bounded by jobs in flight. Issue 23 item 4: per-address rules are a
 * backstop that a carrier's NAT address fits through; a 429 names its rule and when it resets.
 */

const SIM = 'simulator-text-to-video';
let addressSeq = 0;
const freshAddress = () => `10.${60 + Math.floor(addressSeq / 250)}.${addressSeq % 250}.${(addressSeq++ % 200) + 1}`;

interface Caller {
  userId: string;
  token: string;
}

async function onboard(t: TestApp, remoteAddress = freshAddress()): Promise<Response> {
  return t.post('/functions/v1/device-check', { body: { device_id: randomUUID().toUpperCase(), device_token: deviceToken(randomUUID()) }, remoteAddress });
}

async function richGuest(t: TestApp): Promise<Caller> {
  const body = await t.json(onboard(t));
  await ledger.adminAdjust(t.db, { userId: body.user_id, amount: 1000, reason: 'rate limit test' });
  return { userId: body.user_id, token: body.access_token };
}

const generate = (t: TestApp, who: Caller, opts: { key?: string; prompt?: string; remoteAddress?: string; headers?: Record<string, string> } = {}) =>
  t.post('/functions/v1/generate-video', {
    token: who.token,
    body: { model_id: SIM, prompt: opts.prompt ?? 'a limited clip' },
    headers: { 'idempotency-key': opts.key ?? randomUUID(), ...opts.headers },
    remoteAddress: opts.remoteAddress ?? freshAddress(),
  });

async function expectOk(res: Response | Promise<Response>): Promise<any> {
  const r = await res;
  const text = await r.clone().text();
  expect(r.status, text).toBe(200);
  return JSON.parse(text);
}

/** What the worker does when the provider reports a failure: submit, then apply the failed status. */
async function failAtProvider(t: TestApp, jobId: string): Promise<void> {
  await t.services.jobs.submit(jobId);
  const job = await findJob(t.db, jobId);
  await t.services.jobs.applyStatus(job!, { state: 'failed', code: 'ERR_5002', message: 'provider outage' });
  expect((await findJob(t.db, jobId))?.status).toBe('failed');
}

// Jobs stay pending without a worker: the in-flight limit is off here and has its own tests below.
const LIMITS_ON = { RATE_LIMITS_ENABLED: 'true', GENERATE_MAX_IN_FLIGHT: '0' };

describe('generate-video: a replay is answered whatever the limits say, and spends nothing', () => {
  const t = useTestApp({ ...LIMITS_ON, RATE_LIMITS: 'generate-video.ip=2/3600' });

  it('a user past the hourly limit gets the stored answer of an earlier key, and replays spend no point', async () => {
    const g = await richGuest(t());
    const keys = Array.from({ length: 10 }, () => randomUUID());
    const answers = [];
    for (const key of keys.slice(0, 9)) answers.push(await expectOk(generate(t(), g, { key })));
    // Three replays of an answered key: on main each spent a point, and the 10th generation below was refused.
    for (let i = 0; i < 3; i++) {
      const replay = await generate(t(), g, { key: keys[8] });
      expect((await expectOk(replay)).job_id).toBe(answers[8].job_id);
      expect(replay.headers.get('x-idempotent-replay')).toBe('true');
    }
    answers.push(await expectOk(generate(t(), g, { key: keys[9] })));
    const refused = await t().json(generate(t(), g), 429);
    expect(refused.error.details).toMatchObject({ rule: 'generate-video.user', scope: 'user', limit: 10 });

    // The 10th answer was lost on the network: the retry gets it, though the limit is reached.
    const replay = await generate(t(), g, { key: keys[9] });
    expect(await expectOk(replay)).toEqual(answers[9]);
    expect(replay.headers.get('x-idempotent-replay')).toBe('true');
    const jobs = await t().db.query('SELECT count(*)::int AS n FROM video_jobs WHERE user_id = $1', [g.userId]);
    expect(jobs.rows[0].n).toBe(10);
  });

  it('a replay from an address past its limit is answered too; a refused new key stays unused', async () => {
    const address = '192.0.2.90';
    const [a, b] = [await richGuest(t()), await richGuest(t())];
    const keyA = randomUUID();
    const first = await expectOk(generate(t(), a, { key: keyA, remoteAddress: address }));
    await expectOk(generate(t(), b, { remoteAddress: address }));
    const keyB = randomUUID();
    const refused = await t().json(generate(t(), b, { key: keyB, remoteAddress: address }), 429);
    expect(refused.error.details).toMatchObject({ rule: 'generate-video.ip', scope: 'ip' });
    expect((await t().db.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [keyB])).rowCount).toBe(0);
    const replay = await generate(t(), a, { key: keyA, remoteAddress: address });
    expect(await expectOk(replay)).toEqual(first);
    expect(replay.headers.get('x-idempotent-replay')).toBe('true');
  });
});

describe('generate-video: failed jobs give their point back', () => {
  const t = useTestApp(LIMITS_ON);

  it('a job that fails at the provider frees its slot; one the user cancelled does not', async () => {
    const g = await richGuest(t());
    const ids: string[] = [];
    for (let i = 0; i < 10; i++) ids.push((await expectOk(generate(t(), g, { prompt: `clip ${i}` }))).job_id);
    await t().json(generate(t(), g), 429);

    // A provider outage fails a job and refunds it: the user may generate again at once.
    await failAtProvider(t(), ids[0]!);
    expect(await ledger.getAccount(t().db, g.userId)).toMatchObject({ held: 9 });
    const again = await generate(t(), g);
    await expectOk(again);
    expect(again.headers.get('ratelimit')).toMatch(/"generate-video\.user";r=0;t=\d+/);
    await t().json(generate(t(), g), 429);

    // Deleting a running job cancels it (and refunds it), but its provider request may have run: it still counts.
    expect((await t().post('/functions/v1/delete-video-job', { token: g.token, body: { job_id: ids[1] } })).status).toBe(200);
    const stillRefused = await t().json(generate(t(), g), 429);
    expect(stillRefused.error.details).toMatchObject({ rule: 'generate-video.user' });
  });
});

describe('generate-video: accounts that bought credits have their own limit', () => {
  const { fakes: appStore, txId } = useAppStoreFakes();
  const env = () => ({ ...appStore().env(), ...LIMITS_ON, ALLOW_GUEST_PURCHASES: 'true' });
  const t = useTestApp(env);

  it('a buyer is served past the free limit, up to the buyer limit; a non-buyer is not', async () => {
    const [buyer, free] = [await richGuest(t()), await richGuest(t())];
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
    await expectOk(t().post('/functions/v1/update-credits', { token: buyer.token, body: { transaction_id: tx.transactionId } }));
    for (let i = 0; i < 10; i++) {
      await expectOk(generate(t(), buyer));
      await expectOk(generate(t(), free));
    }
    const eleventh = await generate(t(), buyer);
    await expectOk(eleventh);
    expect(eleventh.headers.get('ratelimit-policy')).toContain('"generate-video.buyer";q=60;w=3600');
    expect(eleventh.headers.get('ratelimit')).toContain('"generate-video.buyer";r=49;');
    expect((await t().json(generate(t(), free), 429)).error.details).toMatchObject({ rule: 'generate-video.user', limit: 10 });

    // The buyer rule is configurable like the others, and refuses like them.
    const small = await createTestApp({ ...env(), RATE_LIMITS: 'generate-video.buyer=12/3600' }, { sharing: t() });
    try {
      await expectOk(generate(small, buyer));
      const refused = await small.json(generate(small, buyer), 429);
      expect(refused.error.details).toMatchObject({ rule: 'generate-video.buyer', scope: 'buyer', limit: 12, window_seconds: 3600 });
    } finally {
      await small.close();
    }
  });
});

describe('generate-video: jobs in flight per user', () => {
  const t = useTestApp({ RATE_LIMITS_ENABLED: 'true', GENERATE_MAX_IN_FLIGHT: '3' });

  it('a burst of 20 taps starts 3 jobs; the rest are refused with when to try again, in the user\'s language', async () => {
    const g = await richGuest(t());
    const responses = await Promise.all(Array.from({ length: 20 }, (_, i) => generate(t(), g, { prompt: `burst ${i}`, headers: { 'accept-language': 'tr' } })));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200), statuses.join(',')).toHaveLength(3);
    expect(statuses.filter((s) => s === 429), statuses.join(',')).toHaveLength(17);
    const refusal = responses.find((r) => r.status === 429)!;
    const body = (await refusal.json()) as any;
    const retryAfter = Number(refusal.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(body.error).toMatchObject({ code: 'ERR_4004', details: { rule: 'generate-video.in_flight', scope: 'in_flight', limit: 3, retry_after: retryAfter } });
    expect(body.error.message).toContain(`${retryAfter} saniye`);

    // One ends: one more may start.
    const running = await t().db.query<{ job_id: string }>('SELECT job_id FROM video_jobs WHERE user_id = $1 ORDER BY created_at LIMIT 1', [g.userId]);
    expect(await t().completeJobNow(running.rows[0]!.job_id)).toBe('completed');
    await expectOk(generate(t(), g));
    await t().json(generate(t(), g), 429);
  });
});

describe('per-address rules are a backstop that fits a carrier-grade NAT (production defaults)', () => {
  const t = useTestApp(LIMITS_ON);

  it('25 phones behind one IPv4 address onboard and generate; one IPv6 /64 is held to its tighter rule', async () => {
    const carrier = '198.51.100.200';
    const phones: Caller[] = [];
    for (let i = 0; i < 25; i++) {
      const body = await t().json(onboard(t(), carrier));
      phones.push({ userId: body.user_id, token: body.access_token });
    }
    for (const phone of phones) await expectOk(generate(t(), phone, { remoteAddress: carrier }));

    const home = (i: number) => `2001:db8:77:1:${(i + 1).toString(16)}::1`;
    for (let i = 0; i < 20; i++) await expectOk(onboard(t(), home(i)));
    const refused = await onboard(t(), home(20));
    const body = await t().json(refused, 429);
    expect(body.error.details).toMatchObject({ rule: 'device-check.ip6', scope: 'ip6', limit: 20, window_seconds: 3600 });
    expect(Number(refused.headers.get('retry-after'))).toBe(body.error.details.retry_after);
  });

  it('in development (no NODE_ENV=production) the limits are off unless turned on; elsewhere they are on', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).rateLimits.enabled).toBe(false);
    expect(loadConfig({}).rateLimits.enabled).toBe(false);
    expect(loadConfig({ NODE_ENV: 'development', RATE_LIMITS_ENABLED: 'true' }).rateLimits.enabled).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).rateLimits.enabled).toBe(true);
  });
});
