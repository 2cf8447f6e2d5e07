import { randomUUID } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config/index.js';
import { createPool } from '../../src/db/pool.js';
import { createLogger } from '../../src/logger.js';
import { buildServices } from '../../src/services.js';
import { deviceToken } from '../fakes/device-check.js';
import { TEST_JWT_SECRET, createTestApp, useTestApp } from '../support/harness.js';
import { AdminInputRejected, AdminKeyReused, AdminSignInFailed, AdminSignInLocked, ModelNotFound, TargetAccountClosed } from '../../src/admin/errors.js';
import { AppStoreRejected, AppStoreUnavailable } from '../../src/apple/app-store.js';
import { DeviceCheckUnavailable, DeviceTokenRejected } from '../../src/apple/device-check.js';
import { TransactionOwnedByAnother } from '../../src/apple/purchases.js';
import { AppleKeysUnavailable, IdentityTokenRejected } from '../../src/apple/sign-in.js';
import { GuestBelongsToAnotherAppleId } from '../../src/auth/apple-accounts.js';
import { UserBanned } from '../../src/auth/onboarding.js';
import { ProviderLimitExceeded } from '../../src/catalogue/pricing.js';
import { toApiError } from '../../src/http/on-error.js';
import { InvalidGenerationInput, InvalidPrompt, ModelUnavailable } from '../../src/jobs/generate.js';
import { AccountClosed, AccountNotFound, HoldAlreadyResolved, HoldNotFound, InsufficientCredits, InvalidAmount } from '../../src/ledger/errors.js';
import { StorageKeyConflict, StorageUnavailable } from '../../src/storage/types.js';

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

describe('what each service error answers', () => {
  // Pinned so that moving the mapping into the errors themselves cannot change an answer the app sees.
  const retry5 = { 'Retry-After': '5' };
  it.each<[string, Error, { status: number; code: string; details?: Record<string, unknown>; headers?: Record<string, string> }]>([
    ['InsufficientCredits', new InsufficientCredits(7, 2), { status: 402, code: 'ERR_4001', details: { required: 7, available: 2 } }],
    ['AccountNotFound', new AccountNotFound('u1'), { status: 404, code: 'ERR_4007', details: { resource: 'user' } }],
    ['AccountClosed', new AccountClosed('u1'), { status: 401, code: 'ERR_4005', details: { reason: 'user no longer exists' } }],
    ['HoldNotFound (a bug, not the client\'s)', new HoldNotFound('h1'), { status: 500, code: 'ERR_6003' }],
    ['HoldAlreadyResolved', new HoldAlreadyResolved('h1', 'captured'), { status: 500, code: 'ERR_6003' }],
    ['InvalidAmount', new InvalidAmount('amount must be positive'), { status: 500, code: 'ERR_6003' }],
    ['DeviceTokenRejected', new DeviceTokenRejected(400, 'Missing or badly formatted'), { status: 403, code: 'ERR_4013' }],
    ['DeviceCheckUnavailable', new DeviceCheckUnavailable('timeout'), { status: 503, code: 'ERR_5002', details: { service: 'apple_devicecheck' }, headers: retry5 }],
    ['UserBanned', new UserBanned(), { status: 403, code: 'ERR_4014' }],
    ['AdminSignInFailed', new AdminSignInFailed(), { status: 401, code: 'ERR_4025' }],
    ['AdminSignInLocked', new AdminSignInLocked(90, 'email'), { status: 429, code: 'ERR_4004', details: { retry_after: 90, scope: 'email' }, headers: { 'Retry-After': '90' } }],
    ['TargetAccountClosed', new TargetAccountClosed('u2'), { status: 409, code: 'ERR_4026', details: { user_id: 'u2' } }],
    ['AdminKeyReused', new AdminKeyReused(), { status: 422, code: 'ERR_4010' }],
    ['ModelNotFound', new ModelNotFound('m1'), { status: 404, code: 'ERR_4007', details: { resource: 'model' } }],
    ['AdminInputRejected', new AdminInputRejected('too many', 'amount'), { status: 400, code: 'ERR_4008', details: { reason: 'too many', field: 'amount' } }],
    ['AppStoreRejected', new AppStoreRejected('revoked', 'refunded'), { status: 400, code: 'ERR_4011', details: { reason: 'revoked' } }],
    ['AppStoreUnavailable', new AppStoreUnavailable('503'), { status: 503, code: 'ERR_5002', details: { service: 'app_store' }, headers: retry5 }],
    ['TransactionOwnedByAnother', new TransactionOwnedByAnother(), { status: 409, code: 'ERR_4012' }],
    ['IdentityTokenRejected', new IdentityTokenRejected('expired'), { status: 401, code: 'ERR_4005', details: { reason: 'Apple identity token: expired' } }],
    ['AppleKeysUnavailable', new AppleKeysUnavailable('jwks timeout'), { status: 503, code: 'ERR_5002', details: { service: 'sign_in_with_apple' }, headers: retry5 }],
    ['GuestBelongsToAnotherAppleId', new GuestBelongsToAnotherAppleId(), { status: 403, code: 'ERR_4006', details: { reason: 'this guest is already linked to another Apple ID' } }],
    ['InvalidPrompt', new InvalidPrompt('too short'), { status: 400, code: 'ERR_4003', details: { field: 'prompt' } }],
    ['ModelUnavailable', new ModelUnavailable(), { status: 404, code: 'ERR_4002' }],
    ['ModelUnavailable with a reason', new ModelUnavailable('paused'), { status: 404, code: 'ERR_4002', details: { reason: 'paused' } }],
    ['InvalidGenerationInput', new InvalidGenerationInput('image_url', 'not ours'), { status: 400, code: 'ERR_4008', details: { reason: 'not ours', field: 'image_url' } }],
    ['ProviderLimitExceeded on the prompt', new ProviderLimitExceeded('prompt', 800), { status: 400, code: 'ERR_4030', details: { field: 'prompt', max_length: 800 } }],
    ['ProviderLimitExceeded on the image', new ProviderLimitExceeded('image_url', 'required'), { status: 400, code: 'ERR_4008', details: { reason: "this model's provider: an image is required", field: 'image_url' } }],
    ['ProviderLimitExceeded on a setting', new ProviderLimitExceeded('duration', [5, 10]), { status: 400, code: 'ERR_4031', details: { field: 'settings.duration', allowed: '5, 10' } }],
    ['StorageUnavailable', new StorageUnavailable('s3 down'), { status: 503, code: 'ERR_6002' }],
    ['StorageKeyConflict', new StorageKeyConflict('a/b'), { status: 400, code: 'ERR_4008', details: { reason: 'this path clashes with one of your existing files (a file where a folder is, or the reverse)', field: 'key' } }],
  ])('%s', (_name, err, expected) => {
    const { status, code, details, headers } = toApiError(err, 1024);
    expect({ status, code, details, headers }).toStrictEqual({ details: undefined, headers: undefined, ...expected });
  });
});
