import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve } from '@hono/node-server';
import { buildApp, buildMetricsApp } from './app.js';
import type { HttpServerConfig } from './config/index.js';
import { attachRealtime, type RealtimeServer } from './realtime/server.js';
import type { Services } from './services.js';

/**
 * The HTTP side of a process (main.ts; the tests start it the same way): the API on HOST:PORT;
 * with METRICS_PORT, /metrics alone on 127.0.0.1 — reachable from the machine (a Prometheus agent,
 * a sidecar), never from the network; with ADMIN_PORT, the console and admin API on
 * ADMIN_HOST:ADMIN_PORT and not on PORT.
 */
export async function startHttpServers(s: Services): Promise<{ api: ListeningServer; metrics: ListeningServer | undefined; admin: ListeningServer | undefined }> {
  const { config } = s;
  const adminApart = config.admin.port !== undefined;
  const opened: ListeningServer[] = [];
  try {
    const api = withRealtime(await startHttpServer(buildApp(s, adminApart ? 'public' : 'all').fetch, { port: config.port, hostname: config.host, limits: config.http }), s);
    opened.push(api);
    const metrics = await startMetricsServer(s);
    if (metrics) opened.push(metrics);
    const admin = config.admin.port === undefined ? undefined : await startHttpServer(buildApp(s, 'admin').fetch, { port: config.admin.port, hostname: config.admin.host, limits: config.http });
    return { api, metrics, admin };
  } catch (err) {
    for (const server of opened) await server.close();
    throw err;
  }
}

/** /metrics alone on 127.0.0.1:METRICS_PORT (every role: ROLE=worker serves nothing else), or nothing without METRICS_PORT. */
export async function startMetricsServer(s: Pick<Services, 'config' | 'metrics'>): Promise<ListeningServer | undefined> {
  const { port } = s.config.metrics;
  if (port === undefined) return undefined;
  return startHttpServer(buildMetricsApp(s).fetch, { port, hostname: '127.0.0.1', limits: s.config.http });
}

/** Serves Realtime's WebSocket on this server too; closing it first ends the sockets (they would hold close open). */
export function withRealtime(listening: ListeningServer, s: Services): ListeningServer & { realtime: RealtimeServer } {
  const realtime = attachRealtime(listening.server, s);
  return {
    ...listening,
    realtime,
    close: async () => {
      await realtime.close();
      await listening.close();
    },
  };
}

/**
 * One Node HTTP server, as main.ts and the tests start it. Node's defaults let a client that
 * trickles its headers one byte at a time hold a connection for 60 s (300 s for the whole request),
 * checked only every 30 s, with no cap on connections: a few hundred such clients starve the
 * process. The limits come from config (HTTP_*); expiry is checked at least every second.
 */

/** How long a shutdown lets open requests run on before closing their connections (main.ts gives up at 15 s). */
const CLOSE_GRACE_MS = 5000;

export interface ListeningServer {
  server: Server;
  port: number;
  /** Requests this server has started answering, ever (the worker's CPU budget watches it move). */
  requestsStarted(): number;
  /**
   * Stops accepting and lets in-flight requests finish (idle keep-alive connections are closed);
   * connections still open after the grace period — long streams such as video-events, which end
   * only with their job — are then closed, so a shutdown never waits on a client.
   */
  close(graceMs?: number): Promise<void>;
}

export async function startHttpServer(
  fetch: (request: Request) => Response | Promise<Response>,
  opts: { port: number; hostname: string; limits: HttpServerConfig },
): Promise<ListeningServer> {
  const { limits } = opts;
  let server!: Server;
  await new Promise<void>((resolve, reject) => {
    server = serve(
      {
        fetch,
        port: opts.port,
        hostname: opts.hostname,
        serverOptions: {
          headersTimeout: limits.headersTimeoutMs,
          requestTimeout: limits.requestTimeoutMs,
          connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
        },
      },
      () => resolve(),
    ) as Server;
    server.once('error', reject);
  });
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  server.maxConnections = limits.maxConnections;
  let requests = 0;
  server.on('request', () => void requests++);
  return {
    server,
    port: (server.address() as AddressInfo).port,
    requestsStarted: () => requests,
    close: (graceMs = CLOSE_GRACE_MS) =>
      new Promise<void>((resolve, reject) => {
        const cutOff = setTimeout(() => server.closeAllConnections(), graceMs);
        cutOff.unref();
        server.close((err) => {
          clearTimeout(cutOff);
          if (err) reject(err);
          else resolve();
        });
      }),
  };
}
