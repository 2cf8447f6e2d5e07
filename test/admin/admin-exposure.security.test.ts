import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startHttpServers, type ListeningServer } from '../../src/server.js';
import { ADMIN_PASSWORD, adminRoutesOf, createAdmin } from '../support/admin.js';
import { useTestApp, type TestApp } from '../support/harness.js';

/**
 * Issue 23 item 9: the console and admin API need not be on the public port for everyone.
 * ADMIN_ALLOWED_CIDRS answers every admin route 404 to other client addresses (as TRUST_PROXY lets
 * us believe them); ADMIN_PORT serves the admin routes on a port of their own (ADMIN_HOST,
 * 127.0.0.1 by default) and not on PORT. The routes come from the app's router, so a new admin
 * route is covered without editing this file.
 */

/** The admin routes with their ids filled in, ready to request. */
function adminRoutes(t: TestApp) {
  const routes = adminRoutesOf(t).map((r) => ({ method: r.method, path: r.path.replace(/:id\b/g, randomUUID()) }));
  expect(routes.length, 'admin routes found in the router').toBeGreaterThanOrEqual(30);
  return routes;
}

const body = (method: string) => (method === 'GET' ? undefined : { email: 'someone@example.com', password: 'not the password', amount: 1, reason: 'a reason' });

describe('ADMIN_ALLOWED_CIDRS', () => {
  const t = useTestApp({ ADMIN_ALLOWED_CIDRS: '10.20.0.0/16, 2001:db8:aa::/48', TRUST_PROXY: '127.0.0.1' });

  it('every admin route is 404 from any other address, before anything else looks at the request; the app’s API is unaffected', async () => {
    const failures: string[] = [];
    for (const r of adminRoutes(t())) {
      for (const remoteAddress of ['198.51.100.1', '2001:db8:ab::1']) {
        const res = await t().request(r.method, r.path, { body: body(r.method), remoteAddress, headers: { 'idempotency-key': randomUUID() } });
        if (res.status !== 404) failures.push(`${r.method} ${r.path} from ${remoteAddress}: ${res.status} ${await res.text()}`);
      }
      // Through our nginx, for a client outside the list.
      const proxied = await t().request(r.method, r.path, { body: body(r.method), remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '198.51.100.2' } });
      if (proxied.status !== 404) failures.push(`${r.method} ${r.path} via the proxy: ${proxied.status}`);
    }
    // Not even the JSON-only check answers first (a 415 would tell the route exists).
    const form = await t().request('POST', '/admin/api/login', { rawBody: 'a=b', headers: { 'content-type': 'text/plain' }, remoteAddress: '198.51.100.1' });
    if (form.status !== 404) failures.push(`a text/plain sign-in: ${form.status}`);
    expect(failures, failures.join('\n')).toEqual([]);
    expect((await t().get('/functions/v1/get-models', { remoteAddress: '198.51.100.1' })).status).toBe(200);
  });

  it('from a listed address (directly or through the trusted proxy) the admin routes answer as usual', async () => {
    const admin = await createAdmin(t(), { signIn: false });
    const signIn = await t().post('/admin/api/login', { body: { email: admin.email, password: ADMIN_PASSWORD }, remoteAddress: '10.20.1.2' });
    const { token } = await t().json(signIn);
    await t().json(t().get('/admin/api/dashboard', { token, remoteAddress: '127.0.0.1', headers: { 'x-forwarded-for': '10.20.3.4' } }));
    const failures: string[] = [];
    for (const r of adminRoutes(t())) {
      const res = await t().request(r.method, r.path, { body: body(r.method), remoteAddress: '2001:db8:aa:1::5', headers: { 'idempotency-key': randomUUID() } });
      // Without credentials: 401, the sign-in page, or the sign-in's own refusals; never "no such route".
      if (res.status === 404) failures.push(`${r.method} ${r.path}: 404 ${await res.text()}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
  });
});

describe('ADMIN_PORT', () => {
  const t = useTestApp();
  const started: ListeningServer[] = [];
  afterEach(async () => {
    for (const s of started.splice(0)) await s.close().catch(() => undefined);
  });

  it('serves the admin routes on their own port (127.0.0.1 by default) and not on PORT; the app’s API only on PORT', async () => {
    const s = t().services;
    const servers = await startHttpServers({ ...s, config: { ...s.config, port: 0, host: '127.0.0.1', admin: { ...s.config.admin, port: 0, host: '127.0.0.1' } } });
    started.push(servers.api, ...(servers.admin ? [servers.admin] : []));
    expect(servers.admin, 'the admin server').toBeDefined();
    expect((servers.admin!.server.address() as AddressInfo).address).toBe('127.0.0.1');
    const at = (port: number, r: { method: string; path: string }) =>
      fetch(`http://127.0.0.1:${port}${r.path}`, {
        method: r.method,
        redirect: 'manual',
        headers: { 'content-type': 'application/json', 'idempotency-key': randomUUID() },
        body: r.method === 'GET' ? undefined : JSON.stringify(body(r.method)),
      });
    const failures: string[] = [];
    for (const r of adminRoutes(t())) {
      const publicAnswer = await at(servers.api.port, r);
      if (publicAnswer.status !== 404) failures.push(`${r.method} ${r.path} on PORT: ${publicAnswer.status}`);
      const adminAnswer = await at(servers.admin!.port, r);
      if (adminAnswer.status === 404) failures.push(`${r.method} ${r.path} on ADMIN_PORT: 404 ${await adminAnswer.text()}`);
    }
    expect(failures, failures.join('\n')).toEqual([]);
    expect((await at(servers.admin!.port, { method: 'GET', path: '/functions/v1/get-models' })).status).toBe(404);
    expect((await at(servers.api.port, { method: 'GET', path: '/functions/v1/get-models' })).status).toBe(200);
    const admin = await createAdmin(t(), { signIn: false });
    const signIn = await fetch(`http://127.0.0.1:${servers.admin!.port}/admin/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: admin.email, password: ADMIN_PASSWORD }),
    });
    expect(signIn.status, await signIn.clone().text()).toBe(200);
  });
});

describe('admin exposure configuration', () => {
  it('is open on PORT by default; validates the CIDRs and a port of its own', () => {
    expect(loadConfig({ NODE_ENV: 'test' }).admin).toMatchObject({ allowedCidrs: [], port: undefined, host: '127.0.0.1' });
    expect(loadConfig({ NODE_ENV: 'test', ADMIN_ALLOWED_CIDRS: '10.0.0.0/8,192.0.2.7', ADMIN_PORT: '3001', ADMIN_HOST: '10.0.0.2' }).admin).toMatchObject({
      allowedCidrs: ['10.0.0.0/8', '192.0.2.7'],
      port: 3001,
      host: '10.0.0.2',
    });
    expect(() => loadConfig({ NODE_ENV: 'test', ADMIN_ALLOWED_CIDRS: 'office' })).toThrow(/ADMIN_ALLOWED_CIDRS/);
    expect(() => loadConfig({ NODE_ENV: 'test', PORT: '3000', ADMIN_PORT: '3000' })).toThrow(/ADMIN_PORT/);
    expect(() => loadConfig({ NODE_ENV: 'test', METRICS_PORT: '9464', ADMIN_PORT: '9464' })).toThrow(/ADMIN_PORT/);
  });
});
