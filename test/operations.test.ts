import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { useTestApp } from './harness.js';

describe('operational endpoints', () => {
  const t = useTestApp();

  it('/health and /ready', async () => {
    expect(await t().json(t().get('/health'))).toEqual({ status: 'ok' });
    expect(await t().json(t().get('/ready'))).toEqual({ status: 'ready' });
  });

  it('/metrics exposes Prometheus counters by route pattern', async () => {
    await t().get('/rest/v1/themes?select=id');
    const res = await t().get('/metrics');
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
    ]) {
      expect(doc.paths, path).toHaveProperty([path]);
    }
    const html = await (await t().get('/docs')).text();
    expect(html).toContain('/functions/v1/device-check');
    expect(html).toContain('ERR_4001');
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

  it('rejects half-configured DeviceCheck, bad ports and short secrets', () => {
    expect(() => loadConfig({ APPLE_TEAM_ID: 'T' })).toThrow(/DeviceCheck needs/);
    expect(() => loadConfig({ PORT: 'eighty' })).toThrow(/PORT/);
    expect(() => loadConfig({ JWT_SECRET: 'short' })).toThrow(/JWT_SECRET/);
    expect(() => loadConfig({ LEGACY_ANON_CLIENTS: 'maybe' })).toThrow(/LEGACY_ANON_CLIENTS/);
  });

  it('reads PEM keys with escaped newlines from env files', () => {
    const c = loadConfig({ APPLE_TEAM_ID: 'T', APPLE_DEVICECHECK_KEY_ID: 'K', APPLE_DEVICECHECK_PRIVATE_KEY: '-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----' });
    expect(c.deviceCheck?.privateKeyPem).toBe('-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----');
  });
});
