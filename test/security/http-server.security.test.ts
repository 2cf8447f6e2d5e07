import { once } from 'node:events';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { startHttpServers, type ListeningServer } from '../../src/server.js';
import type { Services } from '../../src/services.js';
import { useTestApp } from '../support/harness.js';

/**
 * The Security issue's items 8 (metrics are not public) and 9 (slow and too many clients), against
 * real listening servers started the way main.ts starts them (src/server.ts).
 */

const METRICS_TOKEN = 'metrics-token-0123456789abcdef';

const started: ListeningServer[] = [];
afterEach(async () => {
  for (const s of started.splice(0)) await s.close().catch(() => undefined);
});

/** startHttpServers on loopback port 0, with config overrides for this test. */
async function listen(s: Services, config: Partial<Services['config']> = {}) {
  const servers = await startHttpServers({ ...s, config: { ...s.config, port: 0, host: '127.0.0.1', ...config } });
  started.push(servers.api, ...(servers.metrics ? [servers.metrics] : []));
  return servers;
}

/** Resolves when the socket closes; fails (rather than hangs) after `limitMs`. */
function closed(socket: net.Socket, limitMs: number): Promise<number> {
  const t0 = Date.now();
  return new Promise((resolve, reject) => {
    if (socket.destroyed) return resolve(0);
    const timer = setTimeout(() => reject(new Error(`socket still open after ${limitMs} ms`)), limitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(Date.now() - t0);
    });
  });
}

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => undefined); // a reset is one way of being cut off
  await once(socket, 'connect');
  return socket;
}

describe('/metrics without METRICS_TOKEN or METRICS_PORT', () => {
  const t = useTestApp();

  it('is not served on the public port (404, whatever the bearer); /docs, /openapi.json and /health stay public', async () => {
    for (const headers of [{}, { authorization: 'Bearer anything-at-all-0123456789' }] as Record<string, string>[]) {
      const res = await t().get('/metrics', { headers });
      expect(res.status).toBe(404);
      expect(await res.text()).not.toContain('rendio_');
    }
    expect((await t().get('/docs')).status).toBe(200);
    expect((await t().get('/openapi.json')).status).toBe(200);
    expect((await t().get('/health')).status).toBe(200);
  });
});

describe('/metrics with METRICS_TOKEN; the HTTP server limits', () => {
  const t = useTestApp({ METRICS_TOKEN, HTTP_HEADERS_TIMEOUT_MS: '1000' });

  it('answers only the bearer of METRICS_TOKEN (401 otherwise)', async () => {
    for (const authorization of [undefined, 'Bearer wrong-token-0123456789abcdef', `Bearer ${METRICS_TOKEN}x`, `Basic ${METRICS_TOKEN}`]) {
      const res = await t().get('/metrics', { headers: authorization ? { authorization } : {} });
      expect(res.status, String(authorization)).toBe(401);
      expect(((await res.json()) as any).error.code).toBe('ERR_4005');
    }
    const ok = await t().get('/metrics', { headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain('rendio_http_requests_total');
  });

  it('METRICS_PORT serves /metrics (and nothing else) on 127.0.0.1 only; the public port still wants the token', async () => {
    const { api, metrics } = await listen(t().services, { metrics: { token: METRICS_TOKEN, port: 0 } });
    expect(metrics, 'the metrics server').toBeDefined();
    expect((metrics!.server.address() as AddressInfo).address).toBe('127.0.0.1');
    const scraped = await fetch(`http://127.0.0.1:${metrics!.port}/metrics`);
    expect(scraped.status).toBe(200);
    expect(await scraped.text()).toContain('rendio_http_requests_total');
    expect((await fetch(`http://127.0.0.1:${metrics!.port}/health`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${api.port}/metrics`)).status).toBe(401);
  });

  it('a client trickling its headers (a byte every 200 ms) is cut off at HTTP_HEADERS_TIMEOUT_MS, not after Node’s 60–300 s', async () => {
    const { api } = await listen(t().services);
    expect(api.server.headersTimeout).toBe(1000);
    const socket = await connect(api.port);
    const request = `GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ${'a'.repeat(500)}`;
    let i = 0;
    const trickle = setInterval(() => {
      if (!socket.destroyed) socket.write(request[i++ % request.length]!);
    }, 200);
    try {
      // 1 s timeout, checked every 250 ms: closed in ~1–1.5 s; the bound is generous for a loaded machine.
      const ms = await closed(socket, 15_000);
      expect(ms).toBeGreaterThanOrEqual(900);
    } finally {
      clearInterval(trickle);
      socket.destroy();
    }
    // The server is still there for everyone else.
    expect((await fetch(`http://127.0.0.1:${api.port}/health`)).status).toBe(200);
  });

  it('caps concurrent connections at HTTP_MAX_CONNECTIONS: one more is closed on arrival', async () => {
    const { api } = await listen(t().services, { http: { ...t().services.config.http, headersTimeoutMs: 30_000, requestTimeoutMs: 30_000, maxConnections: 2 } });
    expect(api.server.maxConnections).toBe(2);
    const held = [await connect(api.port), await connect(api.port)];
    const extra = await connect(api.port);
    await closed(extra, 10_000);
    expect(held.map((s) => s.destroyed)).toEqual([false, false]);
    for (const s of held) s.destroy();
  });
});

describe('HTTP server configuration', () => {
  it('has safe defaults, and refuses a headers timeout longer than the request timeout', () => {
    expect(loadConfig({}).http).toEqual({ headersTimeoutMs: 10_000, requestTimeoutMs: 60_000, keepAliveTimeoutMs: 5000, maxConnections: 1000 });
    expect(loadConfig({}).metrics).toEqual({ token: undefined, port: undefined });
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' })).toThrow(/HTTP_HEADERS_TIMEOUT_MS/);
    expect(() => loadConfig({ METRICS_TOKEN: 'short' })).toThrow(/METRICS_TOKEN/);
    expect(() => loadConfig({ PORT: '3000', METRICS_PORT: '3000' })).toThrow(/METRICS_PORT/);
  });
});
