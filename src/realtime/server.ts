import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer } from 'ws';
import { ApiError } from '../http/api-error.js';
import { API_KEY_HINTS, apiKeyRefusal } from '../http/middleware.js';
import { addressKey, clientAddressOf } from '../http/client-ip.js';
import { localizedMessage, negotiateLanguage } from '../errors/i18n.js';
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

  // Sockets per client address: one address cannot hold the server's connections (and with them the
  // provider and Apple callbacks that arrive on the same port) with idle, heartbeating sockets.
  const addressOf = clientAddressOf(deps.config);
  const openPerAddress = new Map<string, number>();

  const refuse = (socket: Duplex, err: ApiError, req: IncomingMessage) => {
    const message = localizedMessage(err.code, negotiateLanguage(req.headers['accept-language']), err.details);
    const hint = API_KEY_HINTS[err.code];
    const body = JSON.stringify({ ...(hint ? { message, hint } : {}), error: { code: err.code, message, ...(err.details ? { details: err.details } : {}) } });
    const reason = err.status === 401 ? 'Unauthorized' : err.status === 404 ? 'Not Found' : err.status === 429 ? 'Too Many Requests' : 'Bad Request';
    socket.end(
      `HTTP/1.1 ${err.status} ${reason}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
  };

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => socket.destroy());
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname !== REALTIME_PATH) return refuse(socket, new ApiError('ERR_4007', { resource: 'route' }), req);
    const header = req.headers.apikey;
    const keyRefusal = apiKeyRefusal(url.searchParams.get('apikey') ?? (typeof header === 'string' ? header : undefined), deps.config.acceptedAnonKeys);
    if (keyRefusal) return refuse(socket, keyRefusal, req);
    // Phoenix's default is 1.0.0, the version supabase-swift asks for.
    const vsn = (url.searchParams.get('vsn') ?? '1.0.0') as Vsn;
    if (!VSNS.includes(vsn)) return refuse(socket, new ApiError('ERR_4040', { reason: `vsn must be one of ${VSNS.join(', ')}` }), req);
    const address = addressKey(addressOf(req.socket.remoteAddress, (name) => {
      const v = req.headers[name];
      return Array.isArray(v) ? v.join(',') : v;
    }));
    const open = openPerAddress.get(address) ?? 0;
    if (open >= deps.config.realtime.maxSocketsPerAddress) {
      return refuse(socket, new ApiError('ERR_4041', { reason: `at most ${deps.config.realtime.maxSocketsPerAddress} open sockets per address` }), req);
    }
    openPerAddress.set(address, open + 1);
    const lang = negotiateLanguage(req.headers['accept-language']);
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      const left = (openPerAddress.get(address) ?? 1) - 1;
      if (left > 0) openPerAddress.set(address, left);
      else openPerAddress.delete(address);
    };
    socket.once('close', uncount);
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.once('close', uncount);
      new RealtimeConnection(ws, vsn, deps, lang, address);
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
