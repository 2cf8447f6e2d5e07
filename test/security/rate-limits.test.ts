import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import * as ledger from '../../src/ledger/ledger.js';
import { deviceToken } from '../fakes/device-check.js';
import { createTestApp, useTestApp, type TestApp } from '../support/harness.js';

/**
 * Rate limits (the harness turns them off for every other file): generate-video 10/hour per user
 * (counted in jobs, in the database) and per address (the limiter), the limiter's counters shared by
 * instances through PostgreSQL or Redis. What the limits never refuse (replays, failed jobs, buyers),
 * jobs in flight and the carrier-sized address defaults: rate-limits.paid-work.test.ts.
 */

const SIM = 'simulator-text-to-video';
// Jobs stay pending without a worker: the in-flight limit is off here (rate-limits.paid-work.test.ts tests it).
const LIMITS_ON = { RATE_LIMITS_ENABLED: 'true', GENERATE_MAX_IN_FLIGHT: '0' };
// The address rules are carrier-sized by default; these tests fill one up.
const SMALL_ADDRESS_RULES = 'generate-video.ip=10/3600,generate-video.ip6=10/3600';
const ANON_KEY = 'anon-key-for-rate-limit-tests';
let addressSeq = 0;
/** A fresh client address per call, so only the rule under test ever fills up. */
const freshAddress = () => `10.${100 + Math.floor(addressSeq / 250)}.${addressSeq % 250}.${(addressSeq++ % 200) + 1}`;

interface Caller {
  userId: string;
  token: string;
}

async function richGuest(t: TestApp, remoteAddress = freshAddress()): Promise<Caller> {
  const body = await t.json(
    t.post('/functions/v1/device-check', { body: { device_id: randomUUID().toUpperCase(), device_token: deviceToken(randomUUID()) }, remoteAddress }),
  );
  await ledger.adminAdjust(t.db, { userId: body.user_id, amount: 1000, reason: 'rate limit test' });
  return { userId: body.user_id, token: body.access_token };
}

const generate = (t: TestApp, who: Caller, opts: { key?: string; remoteAddress?: string; headers?: Record<string, string>; legacy?: boolean } = {}) =>
  t.post('/functions/v1/generate-video', {
    token: opts.legacy ? ANON_KEY : who.token,
    body: { model_id: SIM, prompt: 'a limited clip', ...(opts.legacy ? { user_id: who.userId } : {}) },
    headers: { 'idempotency-key': opts.key ?? randomUUID(), ...opts.headers },
    remoteAddress: opts.remoteAddress ?? freshAddress(),
  });

const balance = async (t: TestApp, userId: string) => (await ledger.getAccount(t.db, userId)).balance;
const jobCount = async (t: TestApp, userId: string) =>
  (await t.db.query('SELECT count(*)::int AS n FROM video_jobs WHERE user_id = $1', [userId])).rows[0].n as number;

async function expectAllOk(responses: Response[]) {
  for (const r of responses) expect(r.status, await r.clone().text()).toBe(200);
}

describe('rate limits: generate-video with the default per-user rule and small address rules (PostgreSQL store)', () => {
  const t = useTestApp({ ...LIMITS_ON, RATE_LIMITS: SMALL_ADDRESS_RULES });

  it('the 11th generate in an hour by one user is 429 ERR_4004 with Retry-After and RateLimit headers, charges nothing and leaves its Idempotency-Key unused', async () => {
    const g = await richGuest(t());
    for (let i = 0; i < 10; i++) {
      const ok = await generate(t(), g);
      expect(ok.status, await ok.clone().text()).toBe(200);
      expect(ok.headers.get('ratelimit-policy')).toContain('"generate-video.user";q=10;w=3600');
      expect(ok.headers.get('ratelimit')).toContain(`"generate-video.user";r=${9 - i};t=`);
    }
    const before = { balance: await balance(t(), g.userId), jobs: await jobCount(t(), g.userId) };
    const key = randomUUID();
    const refused = await generate(t(), g, { key, headers: { 'accept-language': 'tr' } });
    const body = await t().json(refused, 429);
    expect(body.error.code).toBe('ERR_4004');
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(body.error.message).toContain(`${retryAfter} saniye`);
    expect(body.error.details).toMatchObject({ rule: 'generate-video.user', retry_after: retryAfter });
    expect(refused.headers.get('ratelimit-policy')).toContain('"generate-video.user";q=10;w=3600');
    expect(refused.headers.get('ratelimit')).toMatch(/"generate-video\.user";r=0;t=\d+/);
    expect({ balance: await balance(t(), g.userId), jobs: await jobCount(t(), g.userId) }).toEqual(before);
    const claimed = await t().db.query('SELECT 1 FROM idempotency_keys WHERE key = $1', [key]);
    expect(claimed.rowCount).toBe(0);

    // Once the window is over (here: the jobs an hour older), the same key is a new request, not a replay.
    await t().db.query("UPDATE video_jobs SET created_at = created_at - interval '1 hour' WHERE user_id = $1", [g.userId]);
    const retried = await generate(t(), g, { key });
    expect(retried.status, await retried.clone().text()).toBe(200);
    expect(retried.headers.get('x-idempotent-replay')).toBeNull();
  });

  it('counts per address too: the 11th generate from one address is refused whoever sends it', async () => {
    const address = '192.0.2.10';
    const guests = await Promise.all(Array.from({ length: 11 }, () => richGuest(t())));
    for (const g of guests.slice(0, 10)) expect((await generate(t(), g, { remoteAddress: address })).status).toBe(200);
    const refused = await generate(t(), guests[10]!, { remoteAddress: address });
    const body = await t().json(refused, 429);
    expect(body.error.details).toMatchObject({ rule: 'generate-video.ip', scope: 'ip', limit: 10, window_seconds: 3600 });
    expect(await jobCount(t(), guests[10]!.userId)).toBe(0);
  });

  it('a spoofed X-Forwarded-For or CF-Connecting-IP does not give a new allowance without TRUST_PROXY', async () => {
    const address = '192.0.2.20';
    const guests = await Promise.all(Array.from({ length: 11 }, () => richGuest(t())));
    const spoof = (i: number) => ({ 'x-forwarded-for': `203.0.113.${i}`, 'cf-connecting-ip': `198.51.100.${i}` });
    for (const [i, g] of guests.slice(0, 10).entries()) expect((await generate(t(), g, { remoteAddress: address, headers: spoof(i) })).status).toBe(200);
    await t().json(generate(t(), guests[10]!, { remoteAddress: address, headers: spoof(99) }), 429);
  });

  it('limits an IPv6 client per /64', async () => {
    const guests = await Promise.all(Array.from({ length: 11 }, () => richGuest(t())));
    for (const [i, g] of guests.slice(0, 10).entries()) {
      expect((await generate(t(), g, { remoteAddress: `2001:db8:aa:bb:${i.toString(16)}::${i + 1}` })).status).toBe(200);
    }
    await t().json(generate(t(), guests[10]!, { remoteAddress: '2001:db8:aa:bb:ffff:ffff:ffff:fffe' }), 429);
    // The next /64 is someone else.
    expect((await generate(t(), guests[10]!, { remoteAddress: '2001:db8:aa:bc::1' })).status).toBe(200);
  });

  it('two server instances on one database share the counters', async () => {
    const other = await createTestApp(LIMITS_ON, { sharing: t() });
    try {
      const g = await richGuest(t());
      await expectAllOk(await Promise.all(Array.from({ length: 5 }, () => generate(t(), g))));
      await expectAllOk(await Promise.all(Array.from({ length: 5 }, () => generate(other, g))));
      await t().json(generate(other, g), 429);
      await t().json(generate(t(), g), 429);
      expect(await jobCount(t(), g.userId)).toBe(10);
    } finally {
      await other.close();
    }
  });

  it('200 concurrent generates by one user start exactly 10 jobs', async () => {
    const g = await richGuest(t());
    const responses = await Promise.all(Array.from({ length: 200 }, () => generate(t(), g)));
    const statuses = responses.map((r) => r.status);
    expect(statuses.filter((s) => s === 200).length).toBe(10);
    expect(statuses.filter((s) => s === 429).length).toBe(190);
    expect(await jobCount(t(), g.userId)).toBe(10);
  });
});

describe('rate limits in legacy anon-key mode (user_id in the body)', () => {
  const t = useTestApp({ ...LIMITS_ON, LEGACY_ANON_CLIENTS: 'true', ANON_KEY });

  it('the per-user limit holds for a user named by user_id, from any address', async () => {
    const g = await richGuest(t());
    for (let i = 0; i < 10; i++) {
      const ok = await generate(t(), g, { legacy: true });
      expect(ok.status, await ok.clone().text()).toBe(200);
    }
    const body = await t().json(generate(t(), g, { legacy: true }), 429);
    expect(body.error.details).toMatchObject({ scope: 'user' });
    expect(await jobCount(t(), g.userId)).toBe(10);
  });
});

describe('rate limits behind trusted proxies (TRUST_PROXY)', () => {
  const t = useTestApp({ ...LIMITS_ON, TRUST_PROXY: '10.0.0.0/8', RATE_LIMITS: 'generate-video.user=off,generate-video.ip=2/3600,device-check.ip=off' });

  it('takes the client from X-Forwarded-For only through trusted proxies', async () => {
    const guests = await Promise.all(Array.from({ length: 4 }, () => richGuest(t())));
    const via = (proxy: string, chain: string) => ({ remoteAddress: proxy, headers: { 'x-forwarded-for': chain } });
    // The client (203.0.113.7) wrote a fake first hop; our proxies 10.x appended what they saw.
    expect((await generate(t(), guests[0]!, via('10.1.1.1', '1.2.3.4, 203.0.113.7'))).status).toBe(200);
    expect((await generate(t(), guests[1]!, via('10.2.2.2', '5.6.7.8, 203.0.113.7, 10.3.3.3'))).status).toBe(200);
    await t().json(generate(t(), guests[2]!, via('10.1.1.1', '9.9.9.9, 203.0.113.7')), 429);
    // Another client behind the same proxies has its own allowance.
    expect((await generate(t(), guests[2]!, via('10.1.1.1', '203.0.113.8'))).status).toBe(200);
    // A peer that is not our proxy is the client, whatever it claims.
    const direct = (i: number) => via('198.51.100.9', `203.0.113.${50 + i}`);
    expect((await generate(t(), guests[0]!, direct(1))).status).toBe(200);
    expect((await generate(t(), guests[1]!, direct(2))).status).toBe(200);
    await t().json(generate(t(), guests[3]!, direct(3)), 429);
  });
});

describe('rate limits behind one load balancer (TRUST_PROXY=1)', () => {
  const t = useTestApp({ ...LIMITS_ON, TRUST_PROXY: '1', RATE_LIMITS: 'generate-video.user=off,generate-video.ip=2/3600,device-check.ip=off' });

  it('a CF-Connecting-IP the client wrote (passed on by the balancer) gives no new allowance', async () => {
    const guests = await Promise.all(Array.from({ length: 3 }, () => richGuest(t())));
    // The balancer (10.0.0.5) appended the client's address, 203.0.113.9; the client made up the rest.
    const spoofed = (i: number) => ({ remoteAddress: '10.0.0.5', headers: { 'x-forwarded-for': '203.0.113.9', 'cf-connecting-ip': `198.51.100.${i}` } });
    expect((await generate(t(), guests[0]!, spoofed(1))).status).toBe(200);
    expect((await generate(t(), guests[1]!, spoofed(2))).status).toBe(200);
    await t().json(generate(t(), guests[2]!, spoofed(3)), 429);
  });
});

describe('rate limits with Redis (REDIS_URL)', () => {
  const prefix = `rl-test-${randomUUID()}`;
  // The limiter's rules live in Redis (generate-video's per-user rule counts jobs in the database).
  const env = { ...LIMITS_ON, RATE_LIMITS: 'generate-video.user=off,generate-video.ip=10/3600', REDIS_URL: 'redis://127.0.0.1:6379', RATE_LIMIT_KEY_PREFIX: prefix };
  const t = useTestApp(env);
  const redis = new Redis('redis://127.0.0.1:6379', { lazyConnect: true });
  beforeAll(() => redis.connect());
  afterAll(async () => {
    const keys = await redis.keys(`${prefix}:*`);
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('two server instances share the counters through Redis, not PostgreSQL', async () => {
    const other = await createTestApp(env, { sharing: t() });
    try {
      // Until its Redis connection is up an instance counts in its own memory (the insurance).
      await Promise.all([t().services.rateLimits.ready(), other.services.rateLimits.ready()]);
      const g = await richGuest(t());
      const remoteAddress = '192.0.2.40';
      await expectAllOk(await Promise.all(Array.from({ length: 6 }, () => generate(t(), g, { remoteAddress }))));
      await expectAllOk(await Promise.all(Array.from({ length: 4 }, () => generate(other, g, { remoteAddress }))));
      await t().json(generate(other, g, { remoteAddress }), 429);
      await t().json(generate(t(), g, { remoteAddress }), 429);
      expect(await jobCount(t(), g.userId)).toBe(10);
      expect(await redis.keys(`${prefix}:generate-video:ip:*`)).toHaveLength(1);
      expect((await t().db.query('SELECT count(*)::int AS n FROM rate_limits')).rows[0].n).toBe(0);
    } finally {
      await other.close();
    }
  });
});

describe('rate limits when the store is down (Redis unreachable)', () => {
  // Guests are made by an instance with a working store; the instance under test has a dead Redis.
  const t = useTestApp(LIMITS_ON);
  let down: TestApp;
  beforeAll(async () => {
    down = await createTestApp(
      { ...LIMITS_ON, RATE_LIMITS: 'generate-video.user=off,generate-video.ip=10/3600', REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_KEY_PREFIX: `rl-down-${randomUUID()}` },
      { sharing: t() },
    );
  });
  afterAll(() => down.close());

  it('generate-video (insurance) keeps limiting from this instance\'s memory', async () => {
    const g = await richGuest(t());
    const remoteAddress = '192.0.2.50';
    for (let i = 0; i < 10; i++) {
      const ok = await generate(down, g, { remoteAddress });
      expect(ok.status, await ok.clone().text()).toBe(200);
    }
    await t().json(generate(down, g, { remoteAddress }), 429);
    expect(await jobCount(t(), g.userId)).toBe(10);
  });

  it('device-check (fails closed) answers 503 ERR_5002 and creates nothing', async () => {
    const deviceId = randomUUID().toUpperCase();
    const res = await down.post('/functions/v1/device-check', { body: { device_id: deviceId, device_token: deviceToken('phone-x') }, remoteAddress: freshAddress() });
    const body = await down.json(res, 503);
    expect(body.error).toMatchObject({ code: 'ERR_5002', details: { service: 'rate_limiter' } });
    expect((await t().db.query('SELECT 1 FROM users WHERE device_id = $1', [deviceId])).rowCount).toBe(0);
  });
});

describe('the global per-address ceiling', () => {
  const t = useTestApp({ ...LIMITS_ON, RATE_LIMITS: 'global.ip=3/60' });

  it('refuses any request from an address past its ceiling, and not another address', async () => {
    const address = '192.0.2.30';
    for (let i = 0; i < 3; i++) expect((await t().get('/functions/v1/get-models', { remoteAddress: address })).status).not.toBe(429);
    const refused = await t().get('/functions/v1/get-models', { remoteAddress: address });
    const body = await t().json(refused, 429);
    expect(body.error.code).toBe('ERR_4004');
    expect(refused.headers.get('ratelimit-policy')).toBe('"global.ip";q=3;w=60');
    expect((await t().get('/functions/v1/get-models', { remoteAddress: '192.0.2.31' })).status).not.toBe(429);
  });

  it("counts in this instance's memory, never in the shared store (a backstop on every request: no store round trip)", async () => {
    const address = '192.0.2.32';
    for (let i = 0; i < 3; i++) expect((await t().get('/functions/v1/get-models', { remoteAddress: address })).status).not.toBe(429);
    expect((await t().get('/functions/v1/get-models', { remoteAddress: address })).status).toBe(429);
    const { rows } = await t().db.query("SELECT count(*)::int AS n FROM rate_limits WHERE key LIKE '%:global:%'");
    expect(rows[0].n).toBe(0);
  });
});

describe('rate limit configuration', () => {
  const load = (env: Record<string, string>) => () => loadConfig({ NODE_ENV: 'test', ...env });

  it('has the production defaults, and RATE_LIMITS overrides single rules', () => {
    const defaults = loadConfig({ NODE_ENV: 'test' }).rateLimits.policies;
    expect(defaults['generate-video'].rules).toEqual({
      user: { points: 10, seconds: 3600 },
      buyer: { points: 60, seconds: 3600 },
      ip: { points: 600, seconds: 3600 },
      ip6: { points: 60, seconds: 3600 },
    });
    expect(defaults['device-check']).toMatchObject({ rules: { ip: { points: 300, seconds: 3600 }, ip6: { points: 20, seconds: 3600 } }, whenStoreDown: 'closed' });
    const changed = loadConfig({ NODE_ENV: 'test', RATE_LIMITS: 'generate-video.user=20/60, generate-video.ip6=off, device-check.ip=off' }).rateLimits.policies;
    expect(changed['generate-video'].rules).toEqual({ user: { points: 20, seconds: 60 }, buyer: { points: 60, seconds: 3600 }, ip: { points: 600, seconds: 3600 } });
    expect(changed['device-check'].rules.ip).toBeUndefined();
  });

  it.each([
    [{ RATE_LIMITS: 'generate-video.user=ten/3600' }, 'RATE_LIMITS'],
    [{ RATE_LIMITS: 'no-such-endpoint.ip=1/60' }, 'RATE_LIMITS'],
    [{ RATE_LIMITS: 'global.ip=0/60' }, 'RATE_LIMITS'],
    [{ RATE_LIMITS: 'device-check.buyer=5/60' }, 'RATE_LIMITS'],
    [{ GENERATE_MAX_IN_FLIGHT: '-1' }, 'GENERATE_MAX_IN_FLIGHT'],
    [{ TRUST_PROXY: 'my-load-balancer' }, 'TRUST_PROXY'],
    [{ TRUST_PROXY: '10.0.0.0/33' }, 'TRUST_PROXY'],
  ])('refuses %o at start-up', (env, name) => {
    expect(load(env)).toThrow(ConfigError);
    expect(load(env)).toThrow(name);
  });

  it('accepts TRUST_PROXY as hops or as addresses and CIDRs', () => {
    expect(loadConfig({ NODE_ENV: 'test', TRUST_PROXY: '2' }).trustProxy).toEqual({ kind: 'hops', hops: 2 });
    expect(loadConfig({ NODE_ENV: 'test', TRUST_PROXY: '10.0.0.0/8, 2001:db8::/32,192.0.2.1' }).trustProxy).toEqual({
      kind: 'cidrs',
      cidrs: ['10.0.0.0/8', '2001:db8::/32', '192.0.2.1'],
    });
  });
});

describe('admin sign-in attempts per address', () => {
  const t = useTestApp({ ...LIMITS_ON, RATE_LIMITS: 'admin-login.ip=2/900' });

  it('are limited whatever the email (each costs a password hash): the 3rd from one address is 429; another address is not', async () => {
    const attempt = (email: string, address: string) =>
      t().post('/admin/api/login', { body: { email, password: 'not the password at all' }, remoteAddress: address });
    expect((await attempt('a@example.com', '192.0.2.60')).status).toBe(401);
    expect((await attempt('b@example.com', '192.0.2.60')).status).toBe(401);
    const limited = await t().json(attempt('c@example.com', '192.0.2.60'), 429);
    expect(limited.error.code).toBe('ERR_4004');
    expect((await attempt('c@example.com', '192.0.2.61')).status).toBe(401);
  });
});
