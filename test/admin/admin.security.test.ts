import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ADMIN_PUBLIC_PATHS } from '../../src/admin/middleware.js';
import { adminRoutesOf, consoleCookie, createAdmin } from '../support/admin.js';
import { useTestApp } from '../support/harness.js';

/**
 * Non-admins get 403 on every admin route: an app user's access token (even one whose users row
 * says is_admin), the anon key. No credentials: 401 (API) or the sign-in page (console). The
 * routes come from the app's router, so a route added later is covered without editing this file.
 */

const ANON_KEY = 'anon-key-for-admin-security';
const t = useTestApp({ ANON_KEY });

const adminRoutes = () => adminRoutesOf(t());

const concrete = (path: string) => path.replace(/:id\b/g, randomUUID()).replace(/\{id\}/g, randomUUID());
const isPublic = (path: string) => ADMIN_PUBLIC_PATHS.has(path);

describe('admin routes refuse everyone but admins', () => {
  it('the table covers the admin API, the seed aliases and the console', () => {
    const keys = adminRoutes().map((r) => `${r.method} ${r.path}`);
    expect(keys).toEqual(
      expect.arrayContaining([
        'POST /admin/api/users/:id/credits/grant',
        'POST /admin/api/users/:id/credits/clawback',
        'POST /admin/api/users/:id/ban',
        'PATCH /admin/api/models/:id',
        'GET /admin/api/audit',
        'POST /functions/v1/admin-refund-credits',
        'POST /functions/v1/admin-toggle-model',
        'GET /functions/v1/admin-user-stats',
        'GET /admin',
        'POST /admin/users/:id/credits',
        'POST /admin/models/:id',
      ]),
    );
    expect(keys.length).toBeGreaterThanOrEqual(30);
  });

  it('403 for an app token, an app user marked is_admin, and the anon key; 401 or the sign-in page without credentials', async () => {
    const guest = await t().createGuest();
    const staff = await t().createGuest();
    await t().db.query('UPDATE users SET is_admin = true WHERE id = $1', [staff.userId]);
    const routes = adminRoutes().filter((r) => !isPublic(r.path));
    const failures: string[] = [];
    for (const r of routes) {
      const path = concrete(r.path);
      const body = r.method === 'GET' ? undefined : { user_id: guest.userId, model_id: 'simulator-text-to-video', amount: 1, reason: 'x'.repeat(5) };
      for (const [who, token] of [
        ['guest token', guest.accessToken],
        ['is_admin app user', staff.accessToken],
        ['anon key', ANON_KEY],
      ] as const) {
        const res = await t().request(r.method, path, { token, body, headers: { apikey: ANON_KEY, 'idempotency-key': randomUUID() } });
        if (res.status !== 403) failures.push(`${r.method} ${r.path} with ${who}: ${res.status} ${await res.text()}`);
      }
      const anonymous = await t().request(r.method, path, { body, headers: { 'idempotency-key': randomUUID() } });
      const signInPage = anonymous.status === 303 && anonymous.headers.get('location') === '/admin/login';
      if (anonymous.status !== 401 && !signInPage) failures.push(`${r.method} ${r.path} without credentials: ${anonymous.status}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });

  it('a revoked or unknown admin token is 401 on the API; a valid one passes the guard', async () => {
    const admin = await createAdmin(t());
    const apiRoutes = adminRoutes().filter((r) => r.method === 'GET' && r.path.startsWith('/admin/api/') && !r.path.includes(':'));
    expect(apiRoutes.length).toBeGreaterThan(2);
    for (const r of apiRoutes) {
      expect([401, 403], r.path).not.toContain((await t().get(r.path, { token: admin.token })).status);
      expect((await t().get(r.path, { token: 'rdadm_not-a-real-token' })).status, r.path).toBe(401);
    }
    await t().post('/admin/api/logout', { token: admin.token });
    for (const r of apiRoutes) expect((await t().get(r.path, { token: admin.token })).status, r.path).toBe(401);
  });

  it('an admin API token does not open the console, and a console form without its CSRF token is refused', async () => {
    const admin = await createAdmin(t());
    expect((await t().get('/admin', { token: admin.token })).status).toBe(403);
    // Sign in through the console form.
    const loginPage = await t().get('/admin/login');
    const nonceCookie = loginPage.headers.get('set-cookie')!.split(';')[0]!;
    const nonce = /name="_login" value="([^"]+)"/.exec(await loginPage.text())![1]!;
    const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
    const signIn = await t().request('POST', '/admin/login', {
      rawBody: form({ _login: nonce, email: admin.email, password: 'correct horse battery staple' }),
      headers: { 'content-type': 'application/x-www-form-urlencoded', cookie: nonceCookie },
    });
    expect(signIn.status, await signIn.clone().text()).toBe(303);
    const setCookie = signIn.headers.getSetCookie().find((c) => c.startsWith('rendio_admin='))!;
    expect(setCookie).toMatch(/HttpOnly/);
    expect(setCookie).toMatch(/SameSite=Strict/);
    expect(setCookie).toMatch(/Secure/); // NODE_ENV=test is not development
    const cookie = setCookie.split(';')[0]!;
    const g = await t().createGuest();
    const page = await t().request('GET', `/admin/users/${g.userId}`, { headers: { cookie } });
    expect(page.status).toBe(200);
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())![1]!;
    const post = (fields: Record<string, string>) =>
      t().request('POST', `/admin/users/${g.userId}/credits`, { rawBody: form(fields), headers: { 'content-type': 'application/x-www-form-urlencoded', cookie } });
    const fields = { kind: 'grant', key: randomUUID(), amount: '2', reason: 'csrf check' };
    expect((await post(fields)).status).toBe(403);
    expect((await post({ ...fields, _csrf: 'forged' })).status).toBe(403);
    expect((await post({ ...fields, _csrf: csrf })).status).toBe(303);
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(12);
    // A sign-in form posted without the nonce its page set (login CSRF) is refused.
    const forged = await t().request('POST', '/admin/login', {
      rawBody: form({ _login: nonce, email: admin.email, password: 'correct horse battery staple' }),
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(forged.status).toBe(403);
  });
});

/**
 * Every path parameter of every route is checked before the database: a uuid where it is one,
 * text PostgreSQL can store otherwise. `PATCH /admin/api/models/%00`, the console's
 * `/admin/users/not-a-uuid/ban` and `/admin/models/%00` were 500s. The routes come from the
 * router, each called with the credentials that get it past its guard.
 */
describe('odd path parameters are refused, never a 500', () => {
  const ODD = ['', 'not-a-uuid', '%00', 'a%00b', '%ED%A0%80', '%E0%A4%A', 'constructor', 'x'.repeat(300)];

  function routesWithParameters() {
    const seen = new Set<string>();
    return t().app.routes.filter((r) => {
      const key = `${r.method} ${r.path}`;
      if (r.method === 'ALL' || !r.path.includes('/:') || seen.has(key)) return false;
      seen.add(key);
      return true;
    });
  }
  const withParameter = (path: string, value: string) => path.replace(/:\w+(\{[^/]*\})?/g, value);
  const isAdminApi = (path: string) => path.startsWith('/admin/api/') || path.startsWith('/functions/v1/admin-');
  const isConsole = (path: string) => path.startsWith('/admin/') && !isAdminApi(path);

  it('the table has the admin routes with ids and the app routes with parameters', () => {
    const keys = routesWithParameters().map((r) => `${r.method} ${r.path}`);
    expect(keys).toEqual(
      expect.arrayContaining(['PATCH /admin/api/models/:id', 'POST /admin/users/:id/ban', 'POST /admin/users/:id/credits', 'POST /admin/models/:id', 'GET /admin/users/:id']),
    );
    expect(keys.some((k) => k.includes('/storage/v1/'))).toBe(true);
  });

  it('each route answers 4xx to each odd value; the admin API and console answer 400 or 404', async () => {
    const admin = await createAdmin(t());
    const cookie = await consoleCookie(t(), admin);
    const guest = await t().createGuest();
    const page = await t().request('GET', '/admin', { headers: { cookie } });
    const csrf = /name="_csrf" value="([^"]+)"/.exec(await page.text())?.[1];
    expect(csrf, 'the console page carries its CSRF token').toBeDefined();
    const failures: string[] = [];
    for (const r of routesWithParameters()) {
      for (const value of ODD) {
        const path = withParameter(r.path, value);
        const hasBody = r.method !== 'GET' && r.method !== 'HEAD';
        let res: Response;
        if (isConsole(r.path)) {
          const form = new URLSearchParams({ _csrf: csrf!, kind: 'grant', key: randomUUID(), amount: '1', reason: 'path parameter check', is_available: 'true' });
          res = await t().request(r.method, path, { rawBody: hasBody ? form.toString() : undefined, headers: { cookie, ...(hasBody ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) } });
        } else {
          const body = hasBody ? { user_id: guest.userId, model_id: 'simulator-text-to-video', amount: 1, reason: 'path parameter check', is_available: true } : undefined;
          res = await t().request(r.method, path, { token: isAdminApi(r.path) ? admin.token : guest.accessToken, body, headers: { 'idempotency-key': randomUUID() } });
        }
        const text = await res.text();
        const admitted = isAdminApi(r.path) || isConsole(r.path) ? [400, 404] : undefined;
        if (res.status >= 500 || (admitted && !admitted.includes(res.status))) failures.push(`${r.method} ${path} → ${res.status} ${text.slice(0, 200)}`);
      }
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});
