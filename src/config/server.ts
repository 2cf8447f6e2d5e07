import { z } from 'zod';
import { commaList, port, withoutTrailingSlash, type ReportIssue } from './env.js';

/** The process, and the HTTP server it runs: what it listens on and what it allows clients. */
export const serverEnv = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  /** all = API + worker in one process (the default); api or worker to scale them separately. */
  ROLE: z.enum(['all', 'api', 'worker']).default('all'),
  PORT: port('PORT', 0).default(3000),
  HOST: z.string().default('0.0.0.0'),
  DATA_DIR: z.string().default('./data'),
  /** Public URL clients reach this server at (used in links we hand out). */
  PUBLIC_URL: z.string().url().optional(),
  CORS_ORIGINS: z.string().default(''),
  MAX_JSON_BODY_BYTES: z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(64 * 1024),
  /** Slow clients (slowloris): a request's headers must arrive within this, the whole request within the next; Node's defaults are 60 s and 300 s. */
  HTTP_HEADERS_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  HTTP_REQUEST_TIMEOUT_MS: z.coerce.number().int().min(100).max(3_600_000).default(60_000),
  /** An idle keep-alive connection is closed after this. */
  HTTP_KEEP_ALIVE_TIMEOUT_MS: z.coerce.number().int().min(100).max(600_000).default(5000),
  /** Connections the HTTP server holds at once; more are closed as they arrive. */
  HTTP_MAX_CONNECTIONS: z.coerce.number().int().min(1).max(1_000_000).default(1000),
  /** Realtime (WebSocket): a socket that sends nothing (Phoenix clients heartbeat every 25–30 s) for this long is closed. */
  REALTIME_HEARTBEAT_TIMEOUT_MS: z.coerce.number().int().min(1000).max(600_000).default(60_000),
  /** Realtime: channels one socket may have joined at once (the app uses one per job it shows). */
  REALTIME_MAX_CHANNELS: z.coerce.number().int().min(1).max(1000).default(10),
  /** Open Realtime sockets per client address (per /64 for IPv6); one more is refused with 429 ERR_4041. */
  REALTIME_MAX_SOCKETS_PER_ADDRESS: z.coerce.number().int().min(1).max(10_000).default(20),
});
export type ServerEnv = z.infer<typeof serverEnv>;

export interface HttpServerConfig {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export interface ServerSection {
  env: ServerEnv['NODE_ENV'];
  role: ServerEnv['ROLE'];
  port: number;
  host: string;
  dataDir: string;
  publicUrl: string;
  /** Browser origins allowed to call the API (CORS); empty: no CORS headers at all. */
  corsOrigins: string[];
  maxJsonBodyBytes: number;
  /** The Node HTTP server's limits against slow and too many clients (src/http/server.ts). */
  http: HttpServerConfig;
  /** Supabase Realtime subset (src/realtime): idle socket timeout, channels per socket, sockets per address. */
  realtime: { heartbeatTimeoutMs: number; maxChannels: number; maxSocketsPerAddress: number };
}

export function serverSection(e: ServerEnv, report: ReportIssue): ServerSection {
  if (e.HTTP_HEADERS_TIMEOUT_MS > e.HTTP_REQUEST_TIMEOUT_MS) report('HTTP_HEADERS_TIMEOUT_MS', 'must not exceed HTTP_REQUEST_TIMEOUT_MS');
  return {
    env: e.NODE_ENV,
    role: e.ROLE,
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    publicUrl: withoutTrailingSlash(e.PUBLIC_URL ?? `http://localhost:${e.PORT}`),
    corsOrigins: commaList(e.CORS_ORIGINS),
    maxJsonBodyBytes: e.MAX_JSON_BODY_BYTES,
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
    },
    realtime: { heartbeatTimeoutMs: e.REALTIME_HEARTBEAT_TIMEOUT_MS, maxChannels: e.REALTIME_MAX_CHANNELS, maxSocketsPerAddress: e.REALTIME_MAX_SOCKETS_PER_ADDRESS },
  };
}
