import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { createLogger } from '../../src/logger.js';
import { ApnsClient, ApnsTransportError, type ApnsNotification } from '../../src/push/apns.js';
import { useFakeApns } from '../fakes/apns.js';

/**
 * The APNs client against the local APNs (HTTP/2 + TLS, test CA): provider-token lifetime on an
 * injected clock shared with the fake, and connection handling (GOAWAY, a server that went away).
 */

const apns = useFakeApns();
const MINUTE = 60_000;
let clients: ApnsClient[] = [];

function client(now: () => number = Date.now, env: Record<string, string> = {}): ApnsClient {
  const config = loadConfig({ NODE_ENV: 'test', ...apns.env(), ...env }).apns!;
  const c = new ApnsClient(config, createLogger('silent'), now);
  clients.push(c);
  return c;
}

function note(token: string): ApnsNotification {
  return { token, environment: 'production', payload: { aps: { alert: { title: 't', body: 'b' } }, job_id: 'j' }, collapseId: 'job-1', expiration: 0, priority: 10 };
}

const newToken = () => randomBytes(32).toString('hex');

afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  clients = [];
  apns.now = Date.now;
  // Each test's client signs its own first token: APNs would see one update per test.
  apns.reset();
});

describe('provider token (ES256 JWT)', () => {
  it('is reused for 20+ minutes, renewed before it is an hour old, and each renewal is accepted by APNs', async () => {
    let now = Date.parse('2026-11-25T10:00:00Z');
    const clock = () => now;
    apns.now = clock;
    const c = client(clock);
    const token = newToken();
    const before = apns.jwts.size;
    const used: string[] = [];
    for (const minutes of [0, 5, 19, 21, 49]) {
      now = Date.parse('2026-11-25T10:00:00Z') + minutes * MINUTE;
      const r = await c.send(note(token));
      expect(r, JSON.stringify(r)).toMatchObject({ ok: true, status: 200 });
      used.push(apns.requests.at(-1)!.jwt);
    }
    expect(new Set(used).size).toBe(1);
    expect(apns.jwts.size - before).toBe(1);

    // 50 minutes: a new token (APNs would refuse the old one after 60, and takes a new one after 20).
    now += 1 * MINUTE;
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    now += 45 * MINUTE;
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    now += 6 * MINUTE;
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    const all = apns.requests.slice(-3).map((r) => r.jwt);
    expect(all[0]).not.toBe(used[0]);
    expect(all[1]).toBe(all[0]);
    expect(all[2]).not.toBe(all[1]);
    expect(apns.requests.slice(-3).every((r) => r.status === 200)).toBe(true);

    const [header, claims] = all[2]!.split('.').slice(0, 2).map((p) => JSON.parse(Buffer.from(p, 'base64url').toString()));
    expect(header).toEqual({ alg: 'ES256', kid: apns.keyId });
    expect(claims).toEqual({ iss: apns.teamId, iat: Math.floor(now / 1000) });
  });

  it('ExpiredProviderToken: signs a new one and retries once; a second refusal is returned, not looped', async () => {
    const c = client();
    const token = newToken();
    apns.answer(token, { status: 403, reason: 'ExpiredProviderToken' });
    const r = await c.send(note(token));
    expect(r).toMatchObject({ ok: true });
    const [first, second] = apns.requests.slice(-2);
    expect(first).toMatchObject({ status: 403, reason: 'ExpiredProviderToken' });
    expect(second!.jwt).not.toBe(first!.jwt);

    apns.answer(token, { status: 403, reason: 'ExpiredProviderToken' }, { status: 403, reason: 'ExpiredProviderToken' });
    const count = apns.requests.length;
    expect(await c.send(note(token))).toMatchObject({ ok: false, status: 403, reason: 'ExpiredProviderToken' });
    expect(apns.requests.length - count).toBe(2);
  });

  it('a provider key APNs does not know is refused (InvalidProviderToken), and the fake checks the signature', async () => {
    const c = client(Date.now, { APNS_KEY_ID: 'OTHERKEY01' });
    expect(await c.send(note(newToken()))).toMatchObject({ ok: false, status: 403, reason: 'InvalidProviderToken' });
    const stray = client(Date.now, {
      APNS_PRIVATE_KEY: (await import('node:crypto')).generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(),
    });
    expect(await stray.send(note(newToken()))).toMatchObject({ ok: false, status: 403, reason: 'InvalidProviderToken' });
  });
});

describe('the HTTP/2 connection', () => {
  it('is one long-lived connection per environment', async () => {
    const c = client();
    const before = apns.connections;
    for (let i = 0; i < 3; i++) expect(await c.send(note(newToken()))).toMatchObject({ ok: true });
    expect(await c.send({ ...note(newToken()), environment: 'sandbox' })).toMatchObject({ ok: true });
    expect(await c.send({ ...note(newToken()), environment: 'sandbox' })).toMatchObject({ ok: true });
    expect(apns.connections - before).toBe(2);
  });

  it('GOAWAY refusing a stream mid-flight: the push is sent again on a new connection, once', async () => {
    const c = client();
    const token = newToken();
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    const before = apns.connections;
    apns.answer(token, 'goaway-refuse');
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    expect(apns.connections - before).toBe(1);
    expect(apns.delivered(token)).toHaveLength(2);
  });

  it('GOAWAY after an answer: the next push opens a new connection', async () => {
    const c = client();
    const token = newToken();
    apns.answer(token, 'goaway-after-200');
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    const before = apns.connections;
    expect(await c.send(note(token))).toMatchObject({ ok: true });
    expect(apns.connections - before).toBe(1);
    expect(apns.delivered(token)).toHaveLength(2);
  });

  it('nobody listening: ApnsTransportError (the queue retries it)', async () => {
    const c = client(Date.now, { APNS_PORT: '1' });
    await expect(c.send(note(newToken()))).rejects.toBeInstanceOf(ApnsTransportError);
  });

  it('refuses a server its CA does not vouch for', async () => {
    const c = client(Date.now, { APNS_CA_FILE: '' });
    await expect(c.send(note(newToken()))).rejects.toBeInstanceOf(ApnsTransportError);
  });
});
