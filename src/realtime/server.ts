import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { secretsEqual } from '../auth/tokens.js';
import { ApiError, unauthenticated } from '../http/api-error.js';
import { localizedMessage, negotiateLanguage } from '../http/i18n.js';
import { RealtimeConnection, type RealtimeDeps } from './connection.js';
import { VSNS, type Vsn } from './protocol.js';

export const REALTIME_PATH = '/realtime/v1/websocket';

/** A Phoenix message is small (a join with its bindings, a heartbeat); larger frames close the socket. */
const MAX_FRAME_BYTES = 64 * 1024;
const CLOSE_GRACE_MS = 2000;
const SOCKETS_GAUGE = 'rendio_realtime_sockets';

export interface RealtimeServer {
  /** Closes every Realtime socket (1001 going away), so the HTTP server's close can finish. */
  close(): Promise<void>;
}

/**
 * Serves Supabase Realtime's WebSocket on the API's HTTP server (its `upgrade` event): the apikey is
 * checked as on REST (query `apikey`, as the clients send it, or the header), then the socket speaks
 * the Phoenix protocol version the client asked for (`vsn`). Sockets count toward
 * HTTP_MAX_CONNECTIONS like any connection.
 */
export function attachRealtime(server: Server, deps: RealtimeDeps): RealtimeServer {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  if (!deps.metrics.registry.getSingleMetric(SOCKETS_GAUGE)) deps.metrics.gauge(SOCKETS_GAUGE, 'Open Realtime WebSockets', () => wss.clients.size);

  const refuse = (socket: Duplex, err: ApiError, req: IncomingMessage) => {
    const message = localizedMessage(err.code, negotiateLanguage(req.headers['accept-language']), err.details);
    const body = JSON.stringify({ error: { code: err.code, message, ...(err.details ? { details: err.details } : {}) } });
    const reason = err.status === 401 ? 'Unauthorized' : err.status === 404 ? 'Not Found' : 'Bad Request';
    socket.end(
      `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== REALTIME_PATH) return refuse(socket, new ApiError('ERR_4007', { resource: 'route' }), req);
    const anonKey = deps.config.anonKey;
    if (anonKey) {
      const header = req.headers.apikey;
      const presented = url.searchParams.get('apikey') ?? (typeof header === 'string' ? header : undefined);
      if (!presented || !secretsEqual(presented, anonKey)) return refuse(socket, unauthenticated('missing or invalid apikey'), req);
    }
    // Phoenix's default is 1.0.0, the version supabase-swift asks for.
    const vsn = (url.searchParams.get('vsn') ?? '1.0.0') as Vsn;
    if (!VSNS.includes(vsn)) return refuse(socket, new ApiError('ERR_4040', { reason: `vsn must be one of ${VSNS.join(', ')}` }), req);
    const lang = negotiateLanguage(req.headers['accept-language']);
    wss.handleUpgrade(req, socket, head, (ws) => {
      new RealtimeConnection(ws, vsn, deps, lang);
    });
  });

  return {
    close: async () => {
      const closed = new Promise<void>((resolve) => wss.close(() => resolve()));
      for (const ws of wss.clients) ws.close(1001, 'server shutting down');
      // A peer that does not answer the close handshake is cut off rather than awaited.
      const cutOff = setTimeout(() => {
        for (const ws of wss.clients) ws.terminate();
      }, CLOSE_GRACE_MS);
      await closed;
      clearTimeout(cutOff);
    },
  };
}
