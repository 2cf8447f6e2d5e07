import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createPool } from '../../src/db/pool.js';
import { createLogger } from '../../src/logger.js';
import { buildServices } from '../../src/services.js';
import { deviceToken } from '../fakes/device-check.js';
import { TEST_JWT_SECRET, createTestApp, useTestApp } from '../support/harness.js';

const DC = '/functions/v1/device-check';

describe('error handling: every bad input gets a documented code, never a 500', () => {
  const t = useTestApp();

  it.each([
    ['malformed JSON', { rawBody: '{"device_id": ', headers: { 'content-type': 'application/json' } }, 400, 'ERR_4008'],
    ['an empty body', { rawBody: '', headers: { 'content-type': 'application/json' } }, 400, 'ERR_4008'],
    ['a JSON array', { body: [1, 2] }, 400, 'ERR_4008'],
    ['wrong types', { body: { device_id: 12, device_token: true } }, 400, 'ERR_4008'],
    ['a missing field', { body: { device_id: randomUUID() } }, 400, 'ERR_4008'],
    ['a device_token that is not base64', { body: { device_id: randomUUID(), device_token: 'not base64 at all!!' } }, 400, 'ERR_4008'],
    ['a device_id with spaces', { body: { device_id: 'a b', device_token: deviceToken('x') } }, 400, 'ERR_4008'],
    ['a non-JSON content type', { rawBody: 'device_id=1', headers: { 'content-type': 'application/x-www-form-urlencoded' } }, 415, 'ERR_4016'],
    ['no content type', { rawBody: '{}' }, 415, 'ERR_4016'],
    ['a huge body', { body: { device_id: randomUUID(), device_token: 'A'.repeat(200_000) } }, 413, 'ERR_4015'],
  ])('device-check with %s → %i %s', async (_label, opts, status, code) => {
    const res = await t().json(t().post(DC, opts as never), status);
    expect(res.error.code).toBe(code);
    expect(typeof res.error.message).toBe('string');
    expect(res.error.request_id).toBeTruthy();
  });

  it('a validation error names the field', async () => {
    const res = await t().json(t().post(DC, { body: { device_id: 'ok-id', device_token: 5 } }), 400);
    expect(res.error.details.field).toBe('device_token');
  });

  it('unknown routes answer 404 ERR_4007 in the envelope', async () => {
    const res = await t().json(t().get('/functions/v1/no-such-function'), 404);
    expect(res.error.code).toBe('ERR_4007');
  });

  it.each([
    ['tr-TR,tr;q=0.9,en;q=0.8', 'tr', 'Oturumunuz'],
    ['es', 'es', 'sesión'],
    ['fr-FR, de;q=0.5', 'en', 'session'],
    ['en;q=0.1, es;q=0.9', 'es', 'sesión'],
  ])('Accept-Language %s → message in %s with Content-Language', async (accept, lang, word) => {
    const res = await t().get('/functions/v1/get-user-credits', { headers: { 'accept-language': accept } });
    expect(res.status).toBe(401);
    expect(res.headers.get('content-language')).toBe(lang);
    expect(res.headers.get('vary')).toMatch(/Accept-Language/);
    const body = (await res.json()) as { error: { code: string; message: string } };
    expect(body.error.code).toBe('ERR_4005');
    expect(body.error.message).toContain(word);
  });

  it('every error is stored in error_log with its request id', async () => {
    const requestId = `test-${randomUUID()}`;
    const res = await t().post('/functions/v1/device-check', { headers: { 'x-request-id': requestId }, body: { device_id: '' } });
    expect(res.headers.get('x-request-id')).toBe(requestId);
    await t().services.errorLog.drain();
    const { rows } = await t().db.query('SELECT code, status, path FROM error_log WHERE request_id = $1', [requestId]);
    expect(rows).toEqual([{ code: 'ERR_4008', status: 400, path: '/functions/v1/device-check' }]);
  });

  it('anonymous 401 and 404 noise is counted per hour, code and route instead of stored row by row', async () => {
    const counts = async () => {
      await t().services.errorLog.drain();
      const { rows } = await t().db.query("SELECT code, route, sum(count)::int AS n FROM error_log_aggregates WHERE code IN ('ERR_4005', 'ERR_4007') GROUP BY 1, 2");
      return Object.fromEntries(rows.map((r) => [`${r.code} ${r.route}`, r.n as number]));
    };
    const before = await counts();
    const requestId = `test-${randomUUID()}`;
    await Promise.all(Array.from({ length: 5 }, () => t().get('/functions/v1/get-user-credits', { headers: { 'x-request-id': requestId } })));
    await Promise.all(Array.from({ length: 3 }, (_, i) => t().get(`/no/such/path/${i}`)));
    const after = await counts();
    expect((await t().db.query('SELECT 1 FROM error_log WHERE request_id = $1', [requestId])).rowCount).toBe(0);
    const added = (k: string) => (after[k] ?? 0) - (before[k] ?? 0);
    expect({ unauthenticated: added('ERR_4005 /functions/v1/get-user-credits'), unknownRoute: added('ERR_4007 /*') }).toEqual({ unauthenticated: 5, unknownRoute: 3 });
  });
});

describe('failures behind the API', () => {
  it('an unexpected exception becomes ERR_6003 with no internals', async () => {
    const t = await createTestApp();
    try {
      t.app.get('/functions/v1/__boom', () => {
        throw new Error('SELECT secret FROM internals; password=hunter2');
      });
      const res = await t.json(t.get('/functions/v1/__boom'), 500);
      expect(res.error.code).toBe('ERR_6003');
      expect(JSON.stringify(res)).not.toMatch(/secret|hunter2|SELECT|stack/i);
    } finally {
      await t.close();
    }
  });

  describe('database unreachable', () => {
    const dead = createPool('postgres://postgres@127.0.0.1:1/nothing', 2);
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: TEST_JWT_SECRET, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/nothing' });
    const app = buildApp(buildServices({ config, db: dead, log: createLogger('silent'), databaseUrl: config.databaseUrl! }));
    afterAll(() => dead.end());

    it.each([
      ['POST', DC, { device_id: randomUUID(), device_token: deviceToken('x') }],
      ['GET', '/rest/v1/themes', undefined],
      ['GET', '/functions/v1/get-models', undefined],
    ])('%s %s → 503 ERR_6001', async (method, path, body) => {
      const res = await app.request(path, {
        method,
        headers: body ? { 'content-type': 'application/json' } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      const json = (await res.json()) as { error: { code: string } };
      expect(res.status, JSON.stringify(json)).toBe(503);
      expect(json.error.code).toBe('ERR_6001');
    });

    it('/ready says not ready while /health stays live', async () => {
      expect((await app.request('/ready')).status).toBe(503);
      expect((await app.request('/health')).status).toBe(200);
    });
  });
});
