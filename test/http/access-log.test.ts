import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { createLogger } from '../../src/logger.js';
import { parseStrictJson } from '../support/strict-json.js';
import { useTestApp } from '../support/harness.js';

/**
 * One access-log line per request, with what an operator searches by (route pattern, status, user,
 * error code), at a level that can be turned down, and no key written twice on any line a request
 * produces (a strict ingester refuses such a document). The server process's own lines, start to
 * stop, are checked in test/ops/logs.process.test.ts.
 */

const lines: string[] = [];
const memory = { write: (line: string) => void lines.push(line) };
const records = () => lines.map((line) => parseStrictJson(line));
const accessLines = (requestId: string) => records().filter((r) => r.msg === 'request' && r.requestId === requestId);

describe('the access log', () => {
  const t = useTestApp({}, () => ({ log: createLogger('debug', {}, { destination: memory }) }));
  beforeAll(() => {
    // An unexpected error, as a bug would throw it: the 500 path's lines are checked like the rest.
    t().app.get('/test-only/boom', () => {
      throw new Error('a bug');
    });
  });

  it('writes one line per request, answered or refused, with no key twice on any line', async () => {
    const guest = await t().createGuest();
    const ids = { ok: `ok-${randomUUID()}`, rejected: `rejected-${randomUUID()}`, unauthenticated: `unauth-${randomUUID()}`, notFound: `nf-${randomUUID()}`, failed: `boom-${randomUUID()}` };
    await t().json(t().get('/functions/v1/get-user-credits', { token: guest.accessToken, headers: { 'x-request-id': ids.ok } }));
    await t().json(t().post('/functions/v1/generate-video', { token: guest.accessToken, body: { prompt: 'a red fox in the snow', model_id: 42 }, headers: { 'x-request-id': ids.rejected, 'idempotency-key': randomUUID() } }), 400);
    await t().json(t().get('/functions/v1/get-user-credits', { token: 'not-a-token', headers: { 'x-request-id': ids.unauthenticated } }), 401);
    await t().json(t().get('/functions/v1/no-such-function', { headers: { 'x-request-id': ids.notFound } }), 404);
    await t().json(t().get('/test-only/boom', { headers: { 'x-request-id': ids.failed } }), 500);

    expect(accessLines(ids.ok)).toEqual([
      expect.objectContaining({ level: 30, method: 'GET', route: '/functions/v1/get-user-credits', path: '/functions/v1/get-user-credits', status: 200, userId: guest.userId, ms: expect.any(Number) }),
    ]);
    expect(accessLines(ids.ok)[0]).not.toHaveProperty('code');
    expect(accessLines(ids.rejected)).toEqual([expect.objectContaining({ status: 400, code: 'ERR_4008', userId: guest.userId, route: '/functions/v1/generate-video' })]);
    expect(accessLines(ids.unauthenticated)).toEqual([expect.objectContaining({ status: 401, code: 'ERR_4005' })]);
    expect(accessLines(ids.unauthenticated)[0]).not.toHaveProperty('userId');
    expect(accessLines(ids.notFound)).toEqual([expect.objectContaining({ status: 404, code: 'ERR_4007' })]);
    expect(accessLines(ids.failed)).toEqual([expect.objectContaining({ status: 500, code: 'ERR_6003' })]);
    // The 500 also has its stack, the refusal its details (debug): each once, on lines of their own.
    expect(records().filter((r) => r.requestId === ids.failed && r.msg === 'request failed')).toEqual([expect.objectContaining({ level: 50, err: expect.objectContaining({ message: 'a bug' }) })]);
    expect(records().filter((r) => r.requestId === ids.rejected && r.msg === 'request rejected')).toEqual([expect.objectContaining({ level: 20, details: expect.anything() })]);
    // Every line the requests wrote parsed strictly above (records() throws on a key written twice).
    expect(records().length).toBeGreaterThanOrEqual(8);
  });

  it('is turned down by ACCESS_LOG (debug, off) and by LOG_LEVEL above it', async () => {
    const s = t().services;
    const cases = [
      { label: 'ACCESS_LOG=debug, LOG_LEVEL=debug', config: { accessLog: 'debug' as const }, level: 'debug', expected: [20] },
      { label: 'ACCESS_LOG=debug, LOG_LEVEL=info', config: { accessLog: 'debug' as const }, level: 'info', expected: [] },
      { label: 'ACCESS_LOG=info, LOG_LEVEL=warn', config: { accessLog: 'info' as const }, level: 'warn', expected: [] },
      { label: 'ACCESS_LOG=off, LOG_LEVEL=debug', config: { accessLog: 'off' as const }, level: 'debug', expected: [] },
    ];
    for (const c of cases) {
      const app = buildApp({ ...s, log: createLogger(c.level, {}, { destination: memory }), config: { ...s.config, ...c.config } });
      const requestId = `turned-${randomUUID()}`;
      expect((await app.request('/health', { headers: { 'x-request-id': requestId } })).status).toBe(200);
      expect(accessLines(requestId).map((r) => r.level), c.label).toEqual(c.expected);
    }
  });
});
