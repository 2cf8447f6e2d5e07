import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { ConfigError, ENV_VARIABLES, loadConfig } from '../../src/config/index.js';
import { useTestApp } from '../support/harness.js';

describe('operational endpoints', () => {
  const METRICS_TOKEN = 'operations-metrics-token-0123456789';
  const t = useTestApp({ METRICS_TOKEN });

  it('/health and /ready', async () => {
    expect(await t().json(t().get('/health'))).toEqual({ status: 'ok' });
    expect(await t().json(t().get('/ready'))).toEqual({ status: 'ready' });
  });

  it('/metrics exposes Prometheus counters by route pattern', async () => {
    await t().get('/rest/v1/themes?select=id');
    const res = await t().get('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toMatch(/rendio_http_requests_total\{method="GET",route="\/rest\/v1\/themes",status="200"\} \d+/);
    expect(text).toContain('rendio_db_pool_total');
  });

  it('/openapi.json documents every endpoint of the contract; /docs renders it', async () => {
    const doc = await t().json(t().get('/openapi.json'));
    expect(doc.openapi).toBe('3.1.0');
    for (const path of [
      '/functions/v1/device-check',
      '/auth/v1/token',
      '/auth/v1/logout',
      '/functions/v1/get-user-credits',
      '/functions/v1/get-user-profile',
      '/rest/v1/users',
      '/functions/v1/get-models',
      '/rest/v1/models',
      '/rest/v1/themes',
      '/functions/v1/generate-video',
      '/functions/v1/get-video-status',
      '/functions/v1/get-video-jobs',
      '/functions/v1/delete-video-job',
      '/functions/v1/video-events',
      '/storage/v1/object/{bucket}/{key}',
      '/storage/v1/object/public/{bucket}/{key}',
      '/storage/v1/object/sign/{bucket}/{key}',
      '/functions/v1/update-credits',
      '/functions/v1/apple-server-notifications',
      '/functions/v1/merge-guest-user',
      '/functions/v1/delete-account',
      '/functions/v1/apple-signin-notifications',
      '/functions/v1/provider-webhook/{provider}',
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    const html = await (await t().get('/docs')).text();
    expect(html).toContain('/functions/v1/device-check');
    expect(html).toContain('ERR_4001');
  });

  it('every route the server answers is in /openapi.json, operational ones included', async () => {
    const doc = await t().json(t().get('/openapi.json'));
    // Hono's table of routes: `use` middleware is method ALL; `:name{regex}` params are OpenAPI's {name}.
    // The admin console's HTML pages (/admin, not /admin/api) are a browser UI, described in the README.
    const served = t()
      .app.routes.filter((r) => r.method !== 'ALL' && !(r.path === '/admin' || (r.path.startsWith('/admin/') && !r.path.startsWith('/admin/api/'))))
      .map((r) => `${r.method.toLowerCase()} ${r.path.replace(/:(\w+)(\{[^}]*\}\}?)?/g, '{$1}')}`);
    const documented = Object.entries(doc.paths).flatMap(([path, item]) => Object.keys(item as object).map((m) => `${m} ${path}`));
    expect(served.length).toBeGreaterThan(25);
    expect([...new Set(served)].filter((r) => !documented.includes(r))).toEqual([]);
    for (const path of ['/health', '/ready', '/metrics', '/storage/v1/object/sign/{bucket}/{key}']) expect(doc.paths).toHaveProperty([path]);
  });

  it('/docs shows each endpoint\'s request and response schemas and explains the lock mark, without emoji', async () => {
    const html = await (await t().get('/docs')).text();
    expect(html).toContain('Request body (application/json)');
    expect(html).toMatch(/<h3 id="schema-Model">Model<\/h3>/);
    expect(html).toMatch(/need <code>Authorization: Bearer &lt;access_token&gt;<\/code>/);
    expect(html).not.toMatch(/\p{Extended_Pictographic}/u);
  });
});

describe('configuration', () => {
  it('defaults for the zero-setup demo', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({ port: 3000, dataDir: './data', databaseUrl: undefined, legacyAnonClients: false, deviceCheck: undefined });
  });

  it('production refuses to start without JWT_SECRET or DeviceCheck', () => {
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(ConfigError);
    try {
      loadConfig({ NODE_ENV: 'production' });
    } catch (err) {
      const issues = (err as ConfigError).issues.join('\n');
      expect(issues).toMatch(/JWT_SECRET/);
      expect(issues).toMatch(/DeviceCheck is required/);
    }
    const ok = loadConfig({ NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), DEVICECHECK_DISABLED: 'true' });
    expect(ok.deviceCheck).toBeUndefined();
  });

  it('production refuses the legacy anon-key mode unless it is acknowledged a second time', () => {
    const prod = { NODE_ENV: 'production', JWT_SECRET: 'x'.repeat(40), DEVICECHECK_DISABLED: 'true', ANON_KEY: 'anon-key-0123456789', LEGACY_ANON_CLIENTS: 'true' };
    expect(() => loadConfig(prod)).toThrow(/LEGACY_ANON_CLIENTS_I_UNDERSTAND/);
    expect(loadConfig({ ...prod, LEGACY_ANON_CLIENTS_I_UNDERSTAND: 'true' }).legacyAnonClients).toBe(true);
    // Development keeps the one switch (the tests and a local try of the shipped app use it).
    expect(loadConfig({ ANON_KEY: 'anon-key-0123456789', LEGACY_ANON_CLIENTS: 'true' }).legacyAnonClients).toBe(true);
  });

  it('rejects half-configured DeviceCheck, bad ports and short secrets', () => {
    expect(() => loadConfig({ APPLE_TEAM_ID: 'T' })).toThrow(/DeviceCheck needs/);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/JWT_SECRET/);
    expect(() => loadConfig({ LEGACY_ANON_CLIENTS: 'maybe' })).toThrow(/LEGACY_ANON_CLIENTS/);
  });

  it('the S3 backend needs its bucket and keys; the local backend needs nothing', () => {
    expect(loadConfig({}).s3).toBeUndefined();
    expect(() => loadConfig({ STORAGE_BACKEND: 's3' })).toThrow(/S3_BUCKET[\s\S]*S3_ACCESS_KEY_ID[\s\S]*S3_SECRET_ACCESS_KEY/);
    const c = loadConfig({ STORAGE_BACKEND: 's3', S3_BUCKET: 'media', S3_ACCESS_KEY_ID: 'a', S3_SECRET_ACCESS_KEY: 'b', S3_FORCE_PATH_STYLE: 'true' });
    expect(c.s3).toMatchObject({ bucket: 'media', region: 'us-east-1', endpoint: undefined, forcePathStyle: true });
  });

  it('.env.example documents every variable the server reads, and nothing it does not', () => {
    const documented = [...readFileSync(new URL('../../.env.example', import.meta.url), 'utf8').matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]);
    expect(new Set(documented)).toEqual(new Set(ENV_VARIABLES));
  });

  it('reads PEM keys with escaped newlines from env files', () => {
    const c = loadConfig({ APPLE_TEAM_ID: 'T', APPLE_DEVICECHECK_KEY_ID: 'K', APPLE_DEVICECHECK_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----' });
    expect(c.deviceCheck?.privateKeyPem).toBe('-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----');
  });
});
