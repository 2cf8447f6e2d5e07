import { describe, expect, it } from 'vitest';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Inputs that used to be 500 ERR_6003 with a stack trace (Security issue, item 7): text PostgreSQL
 * cannot store (U+0000; lone surrogates were silently stored as U+FFFD), a malformed
 * percent-escape, and Object.prototype's names looked up as PostgREST columns. Each is now a 400
 * naming the field.
 */
describe('input the database cannot store, malformed escapes and prototype keys are 400s', () => {
  const t = useTestApp(() => ({ ANON_KEY: 'anon-key-for-input-hardening', LEGACY_ANON_CLIENTS: 'true' }));

  interface Case {
    name: string;
    send: (t: TestApp, g: Guest) => Promise<Response>;
    code: 'ERR_4003' | 'ERR_4008';
    field: string;
  }
  const imageUrl = (t: TestApp, g: Guest, tail: string) => `${t.services.config.publicUrl}/storage/v1/object/public/thumbnails/${g.userId}/${tail}`;
  const cases: Case[] = [
    { name: 'NUL in the prompt', send: (t, g) => t.generate(g, { model_id: 'veo-3.1-text-to-video', prompt: 'a cat\u0000 walking' }), code: 'ERR_4003', field: 'prompt' },
    { name: 'lone surrogate in the prompt', send: (t, g) => t.generate(g, { model_id: 'veo-3.1-text-to-video', prompt: 'a cat \ud800 walking' }), code: 'ERR_4003', field: 'prompt' },
    { name: 'NUL in model_id', send: (t, g) => t.generate(g, { model_id: 'veo\u0000', prompt: 'a cat walking' }), code: 'ERR_4008', field: 'model_id' },
    { name: 'NUL in a settings value', send: (t, g) => t.generate(g, { model_id: 'veo-3.1-text-to-video', prompt: 'a cat walking', settings: { resolution: '\u0000' } }), code: 'ERR_4008', field: 'settings.resolution' },
    {
      name: 'bad percent-escape in image_url',
      send: (t, g) => t.generate(g, { model_id: 'simulator-image-to-video', prompt: 'a cat walking', image_url: imageUrl(t, g, '%E0%A4%A') }),
      code: 'ERR_4008',
      field: 'image_url',
    },
    {
      name: 'escaped NUL in image_url',
      send: (t, g) => t.generate(g, { model_id: 'simulator-image-to-video', prompt: 'a cat walking', image_url: imageUrl(t, g, 'a%00.jpg') }),
      code: 'ERR_4008',
      field: 'image_url',
    },
    { name: 'NUL in a PATCH rest/v1/users field', send: (t, g) => t.patch(`/rest/v1/users?id=eq.${g.userId}`, { token: g.accessToken, body: { language: 'en', theme_preference: 'dark\u0000' } }), code: 'ERR_4008', field: 'theme_preference' },
    { name: 'NUL in a PATCH rest/v1/users key', send: (t, g) => t.patch(`/rest/v1/users?id=eq.${g.userId}`, { token: g.accessToken, body: { 'language\u0000': 'en' } }), code: 'ERR_4008', field: 'language\\u0000' },
    { name: 'NUL in the rest/v1/users id filter', send: (t, g) => t.patch(`/rest/v1/users?id=eq.${g.userId}%00`, { token: g.accessToken, body: { language: 'en' } }), code: 'ERR_4008', field: 'id' },
    {
      name: 'NUL in merge-guest-user device_id',
      send: (t, g) => t.post('/functions/v1/merge-guest-user', { token: g.accessToken, body: { device_id: `${g.deviceId}\u0000`, apple_sub: '001234.abcdefabcdef' } }),
      code: 'ERR_4008',
      field: 'device_id',
    },
    {
      name: 'NUL in merge-guest-user device_id (legacy anon key)',
      send: (t) => t.post('/functions/v1/merge-guest-user', { token: t.services.config.anonKey, body: { device_id: 'x\u0000', apple_sub: '001234.abcdefabcdef' } }),
      code: 'ERR_4008',
      field: 'device_id',
    },
    { name: 'NUL in device-check device_id', send: (t) => t.post('/functions/v1/device-check', { body: { device_id: 'A\u0000', device_token: 'AAAAAAAAAAAAAAAAAAAAAAAA' } }), code: 'ERR_4008', field: 'device_id' },
    {
      name: 'NUL in update-credits fields',
      send: (t, g) => t.post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: '2000000847061981', product_id: 'com.rendioai.credits.starter.25', receipt_data: 'MII\u0000' } }),
      code: 'ERR_4008',
      field: 'receipt_data',
    },
    { name: 'NUL in a refresh token', send: (t) => t.post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: 'abc\u0000' } }), code: 'ERR_4008', field: 'refresh_token' },
    { name: 'NUL deep in an ignored field', send: (t, g) => t.generate(g, { model_id: 'veo-3.1-text-to-video', prompt: 'a cat walking', extra: [{ x: ['\u0000'] }] }), code: 'ERR_4008', field: 'extra.0.x.0' },
    { name: 'NUL in a themes filter value', send: (t) => t.get('/rest/v1/themes?model_id=eq.%00'), code: 'ERR_4008', field: 'model_id' },
    { name: 'NUL in a models filter value', send: (t) => t.get('/rest/v1/models?id=eq.a%00b'), code: 'ERR_4008', field: 'id' },
    { name: 'NUL in a query name', send: (t, g) => t.get('/functions/v1/get-user-credits?%00=1', { token: g.accessToken }), code: 'ERR_4008', field: '\\u0000' },
    ...['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf'].flatMap((name): Case[] => [
      { name: `themes?${name}=eq.1`, send: (t) => t.get(`/rest/v1/themes?${name}=eq.1`), code: 'ERR_4008', field: name },
      { name: `models?${name}=eq.1`, send: (t) => t.get(`/rest/v1/models?${name}=eq.1`), code: 'ERR_4008', field: name },
    ]),
  ];

  it.each(cases)('$name → 400 $code naming $field', async ({ send, code, field }) => {
    const g = await t().createGuest();
    const res = await send(t(), g);
    const body = await t().json(res, 400);
    expect(body.error.code, JSON.stringify(body)).toBe(code);
    expect(body.error.details.field, JSON.stringify(body)).toBe(field);
  });

  it('nothing was written for any of them: no job, no held credit', async () => {
    const jobs = await t().db.query('SELECT count(*)::int AS n FROM video_jobs');
    expect(jobs.rows[0].n).toBe(0);
  });

  it('storage paths with a malformed escape are refused, not a 500', async () => {
    const g = await t().createGuest();
    expect((await t().get(`/storage/v1/object/public/thumbnails/${g.userId}/%E0%A4%A`)).status).toBe(404);
    expect((await t().get(`/storage/v1/object/sign/videos/${g.userId}/%E0%A4%A?token=x`)).status).toBe(403);
    const upload = await t().post(`/storage/v1/object/thumbnails/${g.userId}/%E0%A4%A`, { token: g.accessToken, rawBody: 'xx', headers: { 'content-type': 'image/jpeg' } });
    expect((await t().json(upload, 400)).error.details.field).toBe('key');
  });

  it('the error log keeps rows whose path quotes a NUL', async () => {
    await t().get('/functions/v1/nothing-here-%00');
    await t().services.errorLog.drain();
    expect(t().services.errorLog.dropped).toBe(0);
  });
});
