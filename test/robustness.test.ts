import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { useTestApp } from './harness.js';

/** Whatever a client sends, the answer is a documented 4xx in the envelope — never a 500. */
describe('robustness of every endpoint that reads a body or query', () => {
  const t = useTestApp();

  const endpoints = (userId: string) => [
    { method: 'POST', path: '/functions/v1/device-check', auth: false },
    { method: 'POST', path: '/auth/v1/token?grant_type=refresh_token', auth: false },
    { method: 'POST', path: '/auth/v1/logout', auth: true },
    { method: 'PATCH', path: `/rest/v1/users?id=eq.${userId}`, auth: true },
    { method: 'GET', path: '/functions/v1/get-user-credits', auth: true },
    { method: 'GET', path: '/functions/v1/get-user-profile', auth: true },
    { method: 'GET', path: '/functions/v1/get-video-status', auth: true },
    { method: 'GET', path: '/functions/v1/get-video-jobs', auth: true },
    { method: 'POST', path: '/functions/v1/delete-video-job', auth: true },
    { method: 'POST', path: '/functions/v1/update-credits', auth: true },
    { method: 'POST', path: '/functions/v1/merge-guest-user', auth: true },
    { method: 'POST', path: '/auth/v1/token?grant_type=id_token', auth: false },
    { method: 'POST', path: '/functions/v1/apple-server-notifications', auth: false },
    { method: 'POST', path: '/functions/v1/apple-signin-notifications', auth: false },
    { method: 'POST', path: '/functions/v1/provider-webhook/fal', auth: false },
  ];

  it('random JSON bodies never produce a 5xx', async () => {
    const g = await t().createGuest();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...endpoints(g.userId)), fc.jsonValue({ maxDepth: 3 }), async (ep, value) => {
        const res = await t().request(ep.method, ep.path, { token: ep.auth ? g.accessToken : undefined, body: ep.method === 'GET' ? undefined : value });
        expect(res.status, `${ep.method} ${ep.path} ${JSON.stringify(value)}`).toBeLessThan(500);
        if (res.status >= 400) expect(((await res.json()) as any).error.code).toMatch(/^ERR_4\d{3}$/);
      }),
      { numRuns: 150 },
    );
  });

  it('random bytes, odd content types and odd query strings never produce a 5xx', async () => {
    const g = await t().createGuest();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...endpoints(g.userId)),
        fc.string({ maxLength: 300 }),
        fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', 'multipart/form-data', ''),
        fc.string({ maxLength: 40 }),
        async (ep, raw, type, query) => {
          const sep = ep.path.includes('?') ? '&' : '?';
          const path = `${ep.path}${sep}x=${encodeURIComponent(query)}&user_id=${encodeURIComponent(query)}`;
          const res = await t().request(ep.method, path, {
            token: ep.auth ? g.accessToken : undefined,
            rawBody: ep.method === 'GET' ? undefined : raw,
            headers: type ? { 'content-type': type } : {},
          });
          expect(res.status, `${ep.method} ${path} ${type} ${JSON.stringify(raw)}`).toBeLessThan(500);
        },
      ),
      { numRuns: 150 },
    );
  });

  it.each(['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer a b', 'Token abc'])('Authorization %j → 401', async (header) => {
    const res = await t().get('/functions/v1/get-user-credits', { headers: { authorization: header } });
    expect(res.status).toBe(401);
  });

  it('the PostgREST readers survive random query strings', async () => {
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/rest/v1/models', '/rest/v1/themes'), fc.dictionary(fc.constantFrom('select', 'order', 'limit', 'offset', 'id', 'is_featured', 'name', 'category'), fc.string({ maxLength: 30 })), async (base, params) => {
        const res = await t().get(`${base}?${new URLSearchParams(params)}`);
        expect(res.status, `${base}?${new URLSearchParams(params)}`).toBeLessThan(500);
      }),
      { numRuns: 150 },
    );
  });
});
