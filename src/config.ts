import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import type { SignInWithAppleConfig } from './apple/sign-in.js';
import type { ApnsConfig } from './push/apns.js';
import type { S3StoreConfig } from './storage/s3.js';

/**
 * Every environment variable the server reads, parsed and validated once at start-up.
 * Handlers receive the parsed Config; nothing else reads process.env (parallel tests depend on it).
 * Each variable is documented in .env.example.
 */

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no', ''])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

// PEM keys often arrive through env files with literal "\n" escapes.
const pem = z.string().transform((v) => v.replace(/\\n/g, '\n'));

function isP256PrivateKey(pemText: string): boolean {
  try {
    const key = createPrivateKey(pemText);
    return key.asymmetricKeyType === 'ec' && key.asymmetricKeyDetails?.namedCurve === 'prime256v1';
  } catch {
    return false;
  }
}

/** A TCP port; NaN from `PORT=abc` gets the same plain sentence as an out-of-range number. */
const port = (name: string, min: number) => {
  const message = `${name} must be a port number (${min}-65535)`;
  return z.coerce.number({ error: message }).int(message).min(min, message).max(65535, message);
};

const DEFAULT_APPLE_ROOT = fileURLToPath(new URL('../assets/apple/AppleRootCA-G3.cer', import.meta.url));
const ProductMap = z.record(z.string().min(1), z.number().int().positive().max(100_000));
/** The shipped app's consumable packs (ios-app.md §5): the credits are in the product id. */
export const DEFAULT_PRODUCTS: Record<string, number> = {
  'com.rendioai.credits.starter.25': 25,
  'com.rendioai.credits.popular.60': 60,
  'com.rendioai.credits.best.150': 150,
};

const EnvSchema = z
  .object({
    NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
    PORT: port('PORT', 0).default(3000),
    HOST: z.string().default('0.0.0.0'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
    DATA_DIR: z.string().default('./data'),
    DATABASE_URL: z.string().url().optional(),
    /**
     * A direct (session) connection to the same database, for what a transaction pooler cannot
     * carry: LISTEN and the migrations. Default DATABASE_URL.
     */
    DATABASE_DIRECT_URL: z.string().url().optional(),
    /** Connections of the API's pool (the worker has its own: WORKER_DATABASE_POOL_MAX). */
    DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
    /** How long an API request waits for a pooled connection before answering 503 ERR_6001. */
    DATABASE_CONNECT_TIMEOUT_MS: z.coerce.number().int().min(50).max(60_000).default(5000),
    /**
     * How long an API statement may take, waiting at a starved pooler included, before the request
     * answers 503 ERR_6001 and the connection is dropped (0: no limit).
     */
    DATABASE_QUERY_TIMEOUT_MS: z.coerce.number().int().min(0).max(600_000).default(15_000),
    /**
     * Open video-events streams re-read their job this often when no NOTIFY came, and every live
     * subscriber (SSE, Realtime) does so while the LISTEN connection is down; 0: NOTIFY only.
     */
    EVENTS_REREAD_MS: z.coerce.number().int().min(0).max(600_000).default(15_000),
    /** Public URL clients reach this server at (used in links we hand out). */
    PUBLIC_URL: z.string().url().optional(),
    JWT_SECRET: z.string().min(32, 'JWT_SECRET must be at least 32 characters').optional(),
    JWT_ISSUER: z.string().default('rendio'),
    ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
    REFRESH_TOKEN_TTL_DAYS: z.coerce.number().int().min(1).max(365).default(60),
    ANON_KEY: z.string().min(1).optional(),
    CORS_ORIGINS: z.string().default(''),
    LEGACY_ANON_CLIENTS: bool.default(false),
    /** Production refuses legacy mode unless this second, explicit acknowledgement is set too. */
    LEGACY_ANON_CLIENTS_I_UNDERSTAND: bool.default(false),
    /**
     * Guests may buy credits. Off by default: a guest is opened by its device_id alone, which is not
     * a secret, so purchased credits belong on an Apple account (the shipped app never lets a guest buy).
     */
    ALLOW_GUEST_PURCHASES: bool.default(false),
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
    /** /metrics on the public port requires `Authorization: Bearer <METRICS_TOKEN>`; without it /metrics is 404 there. */
    METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
    /** Serves /metrics (without a token) on this port, bound to 127.0.0.1 only. */
    METRICS_PORT: port('METRICS_PORT', 1).optional(),
    INITIAL_GRANT_CREDITS: z.coerce.number().int().min(0).max(1000).default(10),
    /** Admin sign-in: failed attempts per email and client IP within the window before it is locked (429). */
    ADMIN_LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
    ADMIN_LOGIN_WINDOW_SECONDS: z.coerce.number().int().min(10).max(86_400).default(900),
    /** How long an admin console session or admin API token lives. */
    ADMIN_SESSION_TTL_HOURS: z.coerce.number().int().min(1).max(720).default(12),
    APPLE_TEAM_ID: z.string().optional(),
    APPLE_DEVICECHECK_KEY_ID: z.string().optional(),
    APPLE_DEVICECHECK_PRIVATE_KEY: pem.optional(),
    APPLE_DEVICECHECK_BASE_URL: z.string().url().default('https://api.devicecheck.apple.com/v1'),
    APPLE_DEVICECHECK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
    /** Explicit opt-out of DeviceCheck in production (e.g. a staging deploy without Apple keys). */
    DEVICECHECK_DISABLED: bool.default(false),
    /** all = API + worker in one process (the default); api or worker to scale them separately. */
    ROLE: z.enum(['all', 'api', 'worker']).default('all'),
    WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(8),
    /** Connections of the worker's own pool; default WORKER_CONCURRENCY + 3 (graphile fetches and completes on its own connections; its LISTEN is the process's shared one). */
    WORKER_DATABASE_POOL_MAX: z.coerce.number().int().min(2).max(200).optional(),
    /** How often the worker looks for delayed jobs (retries, polls), in ms. */
    WORKER_POLL_INTERVAL_MS: z.coerce.number().int().min(50).max(60_000).default(1000),
    SIMULATOR_DELAY_MS: z.coerce.number().int().min(0).max(600_000).default(6000),
    SIMULATOR_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0),
    /** Largest provider result we copy into storage, and largest input image a user may upload. */
    MAX_RESULT_BYTES: z.coerce.number().int().min(1024).default(200 * 1024 * 1024),
    MAX_UPLOAD_BYTES: z.coerce.number().int().min(1024).max(50 * 1024 * 1024).default(10 * 1024 * 1024),
    SIGNED_URL_TTL_SECONDS: z.coerce.number().int().min(60).max(7 * 86_400).default(3600),
    IDEMPOTENCY_KEY_TTL_HOURS: z.coerce.number().int().min(24).max(24 * 30).default(24),
    /** A key whose holder stopped renewing its lock this long ago is taken over (the holder died). */
    IDEMPOTENCY_LOCK_SECONDS: z.coerce.number().int().min(1).max(3600).default(60),
    PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
    /** Base of the full-jitter exponential backoff for provider retries. */
    PROVIDER_RETRY_BASE_MS: z.coerce.number().int().min(1).max(60_000).default(2000),
    FAL_KEY: z.string().min(1).optional(),
    FAL_QUEUE_URL: z.string().url().default('https://queue.fal.run'),
    FAL_JWKS_URL: z.string().url().default('https://rest.alpha.fal.ai/.well-known/jwks.json'),
    /** Hosts fal results may be downloaded from (exact, or *.suffix). */
    FAL_RESULT_HOSTS: z.string().default('fal.media,*.fal.media,*.fal.run,storage.googleapis.com'),
    /** Our fal account's user id: webhooks whose X-Fal-Webhook-User-Id differs are refused (401). */
    FAL_WEBHOOK_USER_ID: z.string().min(1).optional(),
    /** A submit lease older than this is taken over (the worker holding it died). */
    SUBMIT_LEASE_SECONDS: z.coerce.number().int().min(1).max(3600).default(90),
    /**
     * A submit whose answer was lost (timeout, reset, a worker killed mid-call) may have created the
     * request anyway; it calls back when it finishes. The job is not submitted again for this long
     * after the lost attempt (providers with webhooks only), so that request can report and be
     * adopted instead of being billed beside a second one. 0 resubmits at once. docs/RELIABILITY.md.
     */
    SUBMIT_LOST_ANSWER_WAIT_SECONDS: z.coerce.number().int().min(0).max(3600).default(180),
    /** A running job quiet this long is nudged by the sweeper (lost queue entry, dead worker). */
    JOB_QUIET_SECONDS: z.coerce.number().int().min(1).max(3600).default(120),
    /**
     * Test-only fault injection: the process SIGKILLs itself at this point of the generate flow
     * (test/crash.jobs.test.ts). Refused in production.
     */
    FAULT_CRASH_AT: z.enum(['generate:after-commit', 'submit:after-provider', 'ingest:after-store', 'complete:before-commit']).optional(),
    RUNWAY_API_KEY: z.string().min(1).optional(),
    RUNWAY_BASE_URL: z.string().url().default('https://api.dev.runwayml.com'),
    RUNWAY_RESULT_HOSTS: z.string().default('*.cloudfront.net,*.runwayml.com'),
    /** local = files under DATA_DIR/storage served by the API; s3 = any S3-compatible store. */
    STORAGE_BACKEND: z.enum(['local', 's3']).default('local'),
    S3_BUCKET: z.string().min(3).optional(),
    S3_REGION: z.string().default('us-east-1'),
    S3_ENDPOINT: z.string().url().optional(),
    S3_ACCESS_KEY_ID: z.string().min(1).optional(),
    S3_SECRET_ACCESS_KEY: z.string().min(1).optional(),
    S3_FORCE_PATH_STYLE: bool.default(false),
    S3_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
    /** The app's bundle id: App Store transactions must carry it; Sign in with Apple's default audience. */
    APPLE_BUNDLE_ID: z.string().min(1).optional(),
    /** The app's numeric Apple ID (App Store Connect): Apple puts it in production notifications. */
    APPLE_APP_APPLE_ID: z.coerce.number().int().positive().optional(),
    APP_STORE_ISSUER_ID: z.string().min(1).optional(),
    APP_STORE_KEY_ID: z.string().min(1).optional(),
    APP_STORE_PRIVATE_KEY: pem.optional(),
    APP_STORE_PRODUCTION_URL: z.string().url().default('https://api.storekit.apple.com'),
    APP_STORE_SANDBOX_URL: z.string().url().default('https://api.storekit-sandbox.apple.com'),
    APP_STORE_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
    /** DER root certificates signed App Store data must chain to (comma-separated paths). */
    APPLE_ROOT_CA_FILES: z.string().default(DEFAULT_APPLE_ROOT),
    /** OCSP revocation checks and "now" as the validity date; off only for archived test data. */
    APP_STORE_ONLINE_CHECKS: bool.default(true),
    /** Credit Sandbox purchases (App Review buys in the sandbox against production servers). */
    APP_STORE_ACCEPT_SANDBOX: bool.default(true),
    /** Answer Apple's CONSUMPTION_REQUEST notifications with Send Consumption Information. */
    APP_STORE_SEND_CONSUMPTION_INFO: bool.default(false),
    /** Accepted identity-token audiences (comma-separated); default APPLE_BUNDLE_ID. */
    APPLE_SIGN_IN_AUDIENCES: z.string().optional(),
    APPLE_ID_JWKS_URL: z.string().url().default('https://appleid.apple.com/auth/keys'),
    APPLE_ID_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(5000),
    /** Least time between two JWKS fetches caused by unknown kids (stops kid-spam from hammering Apple). */
    APPLE_ID_JWKS_COOLDOWN_MS: z.coerce.number().int().min(0).max(3_600_000).default(30_000),
    /** APNs token auth (push notifications): a .p8 key of the team; without all three, pushes are skipped. */
    APNS_TEAM_ID: z.string().min(1).optional(),
    APNS_KEY_ID: z.string().min(1).optional(),
    APNS_PRIVATE_KEY: pem.optional(),
    /** apns-topic; default APPLE_BUNDLE_ID, else the shipped app's bundle id. */
    APNS_BUNDLE_ID: z.string().min(1).optional(),
    /** Overrides both APNs hosts (api.push.apple.com, api.sandbox.push.apple.com) and their port: for tests. */
    APNS_HOST: z.string().min(1).optional(),
    APNS_PORT: z.coerce.number().int().min(1).max(65535).default(443),
    /** A PEM CA certificate the APNs connection trusts instead of the public CAs (a local fake's test CA). */
    APNS_CA_FILE: z.string().min(1).optional(),
    APNS_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
    /** Rate limits on (default). Off only for tests that are about something else (test/harness.ts). */
    RATE_LIMITS_ENABLED: bool.default(true),
    /** Overrides of the default limits: `policy.kind=points/seconds` or `policy.kind=off`, comma-separated (docs/ARCHITECTURE.md). */
    RATE_LIMITS: z.string().default(''),
    /** Prefix of every limiter key (lets instances of different deployments share one Redis). */
    RATE_LIMIT_KEY_PREFIX: z.string().regex(/^[\w.-]{1,64}$/).default('rl'),
    /** Redis for the rate limiter's counters; without it they live in PostgreSQL (table rate_limits). */
    REDIS_URL: z.string().url().optional(),
    /**
     * Which peers' X-Forwarded-For / CF-Connecting-IP to believe: a number of proxy hops in front of
     * us, or a comma-separated list of proxy addresses/CIDRs. Unset: the socket's address only.
     */
    TRUST_PROXY: z.string().default(''),
    /** error_log: rows older than this many days are deleted, and only the newest ERROR_LOG_MAX_ROWS are kept. */
    ERROR_LOG_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
    ERROR_LOG_MAX_ROWS: z.coerce.number().int().min(1000).max(1_000_000_000).default(1_000_000),
    /** Sessions revoked, or whose last refresh token expired, this many days ago are deleted. */
    SESSION_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
    /** Provider webhook events already applied are kept this many days (replays within it are recognised). */
    WEBHOOK_EVENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
    /** Stored App Store notifications (signed payloads) are kept this many days; refund states are kept for ever. */
    APP_STORE_NOTIFICATION_RETENTION_DAYS: z.coerce.number().int().min(7).max(3650).default(180),
    /** Delete the stored files of videos finished this many days ago (0 = keep for ever); history still lists them. */
    VIDEO_RETENTION_DAYS: z.coerce.number().int().min(0).max(3650).default(0),
    /** JSON object product id → credits per unit; defaults to the app's three packs. */
    IAP_PRODUCTS: z
      .string()
      .transform((v, ctx) => {
        try {
          return ProductMap.parse(JSON.parse(v));
        } catch {
          ctx.addIssue({ code: 'custom', message: 'IAP_PRODUCTS must be a JSON object of product id → positive integer credits' });
          return z.NEVER;
        }
      })
      .optional(),
  })
  .superRefine((env, ctx) => {
    if (env.DATABASE_DIRECT_URL && !env.DATABASE_URL) {
      ctx.addIssue({ code: 'custom', path: ['DATABASE_DIRECT_URL'], message: 'is the direct twin of DATABASE_URL: set DATABASE_URL too' });
    }
    const dc = [env.APPLE_TEAM_ID, env.APPLE_DEVICECHECK_KEY_ID, env.APPLE_DEVICECHECK_PRIVATE_KEY];
    const set = dc.filter(Boolean).length;
    if (set > 0 && set < 3) {
      ctx.addIssue({
        code: 'custom',
        path: ['APPLE_DEVICECHECK_PRIVATE_KEY'],
        message: 'DeviceCheck needs APPLE_TEAM_ID, APPLE_DEVICECHECK_KEY_ID and APPLE_DEVICECHECK_PRIVATE_KEY together',
      });
    }
    const appStore = [env.APP_STORE_ISSUER_ID, env.APP_STORE_KEY_ID, env.APP_STORE_PRIVATE_KEY];
    const appStoreSet = appStore.filter(Boolean).length;
    if (appStoreSet > 0 && (appStoreSet < 3 || !env.APPLE_BUNDLE_ID)) {
      ctx.addIssue({
        code: 'custom',
        path: ['APP_STORE_PRIVATE_KEY'],
        message: 'the App Store needs APPLE_BUNDLE_ID, APP_STORE_ISSUER_ID, APP_STORE_KEY_ID and APP_STORE_PRIVATE_KEY together',
      });
    }
    if (appStoreSet === 3 && !env.APPLE_APP_APPLE_ID) {
      ctx.addIssue({ code: 'custom', path: ['APPLE_APP_APPLE_ID'], message: 'required with the App Store (production notifications carry it)' });
    }
    const apns = [env.APNS_KEY_ID, env.APNS_PRIVATE_KEY].filter(Boolean).length;
    if (apns === 1 || (apns === 2 && !(env.APNS_TEAM_ID ?? env.APPLE_TEAM_ID))) {
      ctx.addIssue({
        code: 'custom',
        path: ['APNS_PRIVATE_KEY'],
        message: 'push notifications need APNS_KEY_ID, APNS_PRIVATE_KEY and APNS_TEAM_ID (or APPLE_TEAM_ID) together',
      });
    }
    // A bad key would otherwise surface only at the first push, as a task failing in the queue.
    if (env.APNS_PRIVATE_KEY && !isP256PrivateKey(env.APNS_PRIVATE_KEY)) {
      ctx.addIssue({ code: 'custom', path: ['APNS_PRIVATE_KEY'], message: 'must be the APNs key (.p8): an EC P-256 private key in PEM' });
    }
    if (env.HTTP_HEADERS_TIMEOUT_MS > env.HTTP_REQUEST_TIMEOUT_MS) {
      ctx.addIssue({ code: 'custom', path: ['HTTP_HEADERS_TIMEOUT_MS'], message: 'must not exceed HTTP_REQUEST_TIMEOUT_MS' });
    }
    if (env.METRICS_PORT !== undefined && env.METRICS_PORT === env.PORT) {
      ctx.addIssue({ code: 'custom', path: ['METRICS_PORT'], message: 'must differ from PORT (it is the loopback-only metrics port)' });
    }
    const limits = parseRateLimits(env.RATE_LIMITS);
    if (typeof limits === 'string') ctx.addIssue({ code: 'custom', path: ['RATE_LIMITS'], message: limits });
    if (parseTrustProxy(env.TRUST_PROXY) === undefined) {
      ctx.addIssue({ code: 'custom', path: ['TRUST_PROXY'], message: 'must be a number of hops or a comma-separated list of addresses/CIDRs' });
    }
    if (env.STORAGE_BACKEND === 's3') {
      for (const name of ['S3_BUCKET', 'S3_ACCESS_KEY_ID', 'S3_SECRET_ACCESS_KEY'] as const) {
        if (!env[name]) ctx.addIssue({ code: 'custom', path: [name], message: 'required when STORAGE_BACKEND=s3' });
      }
    }
    if (env.NODE_ENV === 'production') {
      if (!env.JWT_SECRET) ctx.addIssue({ code: 'custom', path: ['JWT_SECRET'], message: 'required in production' });
      if (set === 0 && !env.DEVICECHECK_DISABLED) {
        ctx.addIssue({
          code: 'custom',
          path: ['APPLE_DEVICECHECK_PRIVATE_KEY'],
          message: 'DeviceCheck is required in production (set DEVICECHECK_DISABLED=true to run without it)',
        });
      }
      if (env.FAULT_CRASH_AT) ctx.addIssue({ code: 'custom', path: ['FAULT_CRASH_AT'], message: 'fault injection is for tests only' });
      if (env.LEGACY_ANON_CLIENTS && !env.ANON_KEY) {
        ctx.addIssue({ code: 'custom', path: ['ANON_KEY'], message: 'LEGACY_ANON_CLIENTS needs ANON_KEY' });
      }
      if (env.LEGACY_ANON_CLIENTS && !env.LEGACY_ANON_CLIENTS_I_UNDERSTAND) {
        ctx.addIssue({
          code: 'custom',
          path: ['LEGACY_ANON_CLIENTS_I_UNDERSTAND'],
          message:
            'LEGACY_ANON_CLIENTS lets anyone holding the public anon key act as any user_id they name; in production also set LEGACY_ANON_CLIENTS_I_UNDERSTAND=true',
        });
      }
    }
  });

export type Env = z.infer<typeof EnvSchema>;

/** The names of every variable read (test/operations.test.ts checks .env.example documents each). */
export const ENV_VARIABLES = Object.keys(EnvSchema.shape);

export interface DeviceCheckConfig {
  teamId: string;
  keyId: string;
  privateKeyPem: string;
  baseUrl: string;
  timeoutMs: number;
}

export interface HttpServerConfig {
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  maxConnections: number;
}

export interface Config {
  env: Env['NODE_ENV'];
  port: number;
  host: string;
  logLevel: Env['LOG_LEVEL'];
  dataDir: string;
  databaseUrl: string | undefined;
  /** For LISTEN and migrations (a session); DATABASE_URL may be a transaction pooler. */
  databaseDirectUrl: string | undefined;
  /** The API's pool: size, and how long a request waits for a connection / a statement (then 503 ERR_6001). */
  databasePoolMax: number;
  databaseConnectTimeoutMs: number;
  databaseQueryTimeoutMs: number;
  /** Fallback re-read of live subscriptions when no NOTIFY came (0: off). */
  eventsRereadMs: number;
  publicUrl: string;
  jwt: { secret: string; issuer: string; accessTtlSeconds: number; refreshTtlDays: number; generated: boolean };
  anonKey: string | undefined;
  /** Browser origins allowed to call the API (CORS); empty: no CORS headers at all. */
  corsOrigins: string[];
  legacyAnonClients: boolean;
  allowGuestPurchases: boolean;
  maxJsonBodyBytes: number;
  /** The Node HTTP server's limits against slow and too many clients (src/http/server.ts). */
  http: HttpServerConfig;
  /** Supabase Realtime subset (src/realtime): idle socket timeout, channels per socket, sockets per address. */
  realtime: { heartbeatTimeoutMs: number; maxChannels: number; maxSocketsPerAddress: number };
  /** /metrics: a bearer token for the public port, and/or a loopback-only port of its own. */
  metrics: { token: string | undefined; port: number | undefined };
  initialGrantCredits: number;
  /** The admin console and API (src/admin/): sign-in lockout and session lifetime. */
  admin: { loginMaxFailures: number; loginWindowSeconds: number; sessionTtlHours: number; secureCookies: boolean };
  deviceCheck: DeviceCheckConfig | undefined;
  role: 'all' | 'api' | 'worker';
  /** databasePoolMax: the worker role's own pool (never shared with the API, so neither starves the other). */
  worker: { concurrency: number; pollIntervalMs: number; databasePoolMax: number };
  simulator: { delayMs: number; failureRate: number };
  limits: { maxResultBytes: number; maxUploadBytes: number };
  signedUrlTtlSeconds: number;
  idempotencyKeyTtlHours: number;
  idempotencyLockSeconds: number;
  providerTimeoutMs: number;
  providerRetryBaseMs: number;
  submitLeaseSeconds: number;
  submitLostAnswerWaitSeconds: number;
  jobQuietSeconds: number;
  crashAt: Env['FAULT_CRASH_AT'];
  fal: { apiKey: string; queueUrl: string; jwksUrl: string; resultHosts: string[]; webhookUserId: string | undefined } | undefined;
  runway: { apiKey: string; baseUrl: string; resultHosts: string[] } | undefined;
  /** undefined = the local directory backend. */
  s3: S3StoreConfig | undefined;
  /** undefined = purchases cannot be verified, so none is credited. */
  appStore: AppStoreConfig | undefined;
  /** Root certificates for App Store signed data (also used to verify notifications). */
  appleRootCertificates: Buffer[];
  products: Record<string, number>;
  /** undefined = Sign in with Apple is not configured (no audience to accept). */
  signInWithApple: SignInWithAppleConfig | undefined;
  /** undefined = no APNs key: pushes are skipped (one start-up line says so). */
  apns: ApnsConfig | undefined;
  rateLimits: RateLimitConfig;
  trustProxy: TrustProxy;
  retention: RetentionConfig;
}

export type LimitKind = 'ip' | 'user' | 'device';
export interface LimitRule {
  points: number;
  seconds: number;
}
/**
 * What a limited endpoint does when the counters' store (PostgreSQL or Redis) cannot answer:
 * `insurance` counts in this instance's memory (the limit then holds per instance) and serves;
 * `closed` refuses with 503 ERR_5002 (service rate_limiter).
 */
export type StoreDownPolicy = 'insurance' | 'closed';
export interface RateLimitPolicy {
  rules: Partial<Record<LimitKind, LimitRule>>;
  whenStoreDown: StoreDownPolicy;
}
export const RATE_LIMIT_POLICIES = ['global', 'generate-video', 'device-check', 'auth-token', 'update-credits', 'merge-guest-user', 'admin-login'] as const;
export type RateLimitPolicyName = (typeof RATE_LIMIT_POLICIES)[number];

const HOUR = 3600;
/** The production defaults (issue 9); RATE_LIMITS overrides single rules. */
export const DEFAULT_RATE_LIMITS: Record<RateLimitPolicyName, RateLimitPolicy> = {
  // Every request from one address (per /64 for IPv6). Generous: carrier NAT puts many phones behind one address.
  global: { rules: { ip: { points: 600, seconds: 60 } }, whenStoreDown: 'insurance' },
  // What costs us money at a provider: 10 an hour per user, and per address (many guests from one address).
  'generate-video': { rules: { user: { points: 10, seconds: HOUR }, ip: { points: 10, seconds: HOUR } }, whenStoreDown: 'insurance' },
  // Hands out free credits: a few new guests per hour per address, and it fails closed.
  'device-check': { rules: { ip: { points: 5, seconds: HOUR }, device: { points: 10, seconds: HOUR } }, whenStoreDown: 'closed' },
  // refresh_token and id_token grants (the app refreshes at launch and on foreground).
  'auth-token': { rules: { ip: { points: 120, seconds: HOUR } }, whenStoreDown: 'insurance' },
  'update-credits': { rules: { user: { points: 30, seconds: HOUR }, ip: { points: 60, seconds: HOUR } }, whenStoreDown: 'insurance' },
  'merge-guest-user': { rules: { user: { points: 10, seconds: HOUR }, ip: { points: 20, seconds: HOUR } }, whenStoreDown: 'insurance' },
  // Admin sign-in (API and console): each attempt costs a password hash, known email or not; the
  // per-email lockout (ADMIN_LOGIN_MAX_FAILURES) cannot stop one address trying many emails.
  'admin-login': { rules: { ip: { points: 30, seconds: 900 } }, whenStoreDown: 'insurance' },
};

export interface RateLimitConfig {
  enabled: boolean;
  policies: Record<RateLimitPolicyName, RateLimitPolicy>;
  keyPrefix: string;
  redisUrl: string | undefined;
}

/** hops: that many proxies in front of us; cidrs: the proxies' addresses; neither: trust no header. */
export type TrustProxy = { kind: 'none' } | { kind: 'hops'; hops: number } | { kind: 'cidrs'; cidrs: string[] };

export interface RetentionConfig {
  errorLogDays: number;
  errorLogMaxRows: number;
  sessionDays: number;
  /** How long a refresh token lives (REFRESH_TOKEN_TTL_DAYS): when an unused session's tokens have all expired. */
  refreshTokenTtlDays: number;
  webhookEventDays: number;
  appStoreNotificationDays: number;
  /** 0 = off. */
  videoDays: number;
}

/** `generate-video.user=20/3600,device-check.ip=off` → the defaults with those rules replaced; a string is the error. */
export function parseRateLimits(spec: string): Record<RateLimitPolicyName, RateLimitPolicy> | string {
  const policies = structuredClone(DEFAULT_RATE_LIMITS);
  for (const item of commaList(spec)) {
    const m = /^([\w-]+)\.(ip|user|device)=(?:(off)|(\d+)\/(\d+))$/.exec(item);
    if (!m) return `"${item}" is not policy.kind=points/seconds or policy.kind=off`;
    const name = m[1] as RateLimitPolicyName;
    if (!RATE_LIMIT_POLICIES.includes(name)) return `unknown policy "${m[1]}" (known: ${RATE_LIMIT_POLICIES.join(', ')})`;
    const kind = m[2] as LimitKind;
    if (m[3]) delete policies[name].rules[kind];
    else {
      const points = Number(m[4]);
      const seconds = Number(m[5]);
      if (points < 1 || seconds < 1) return `"${item}": points and seconds must be at least 1`;
      policies[name].rules[kind] = { points, seconds };
    }
  }
  return policies;
}

export function parseTrustProxy(spec: string): TrustProxy | undefined {
  const items = commaList(spec);
  if (items.length === 0) return { kind: 'none' };
  if (items.length === 1 && /^\d+$/.test(items[0]!)) {
    const hops = Number(items[0]);
    return hops === 0 ? { kind: 'none' } : hops <= 10 ? { kind: 'hops', hops } : undefined;
  }
  for (const item of items) {
    const [address, bits, ...rest] = item.split('/');
    const family = isIP(address ?? '');
    if (family === 0 || rest.length > 0) return undefined;
    if (bits !== undefined && (!/^\d+$/.test(bits) || Number(bits) > (family === 4 ? 32 : 128))) return undefined;
  }
  return { kind: 'cidrs', cidrs: items };
}

export interface AppStoreConfig {
  bundleId: string;
  appAppleId: number;
  issuerId: string;
  keyId: string;
  privateKeyPem: string;
  productionUrl: string;
  sandboxUrl: string;
  timeoutMs: number;
  onlineChecks: boolean;
  acceptSandbox: boolean;
  sendConsumptionInfo: boolean;
}

export class ConfigError extends Error {
  constructor(public readonly issues: string[]) {
    super(`Invalid configuration:\n  - ${issues.join('\n  - ')}`);
  }
}

/**
 * The shipped app's bundle id as the team knows it: ios-app.md only shows the com.rendioai prefix
 * (keychain service, product ids), so set APNS_BUNDLE_ID or APPLE_BUNDLE_ID when it differs.
 */
export const DEFAULT_APNS_BUNDLE_ID = 'com.rendioai.app';

function readFileOrFail(name: string, p: string): Buffer {
  try {
    return readFileSync(p);
  } catch (err) {
    throw new ConfigError([`${name}: cannot read ${p}: ${(err as Error).message}`]);
  }
}

function readRootCertificates(paths: string): Buffer[] {
  return commaList(paths).map((p) => readFileOrFail('APPLE_ROOT_CA_FILES', p));
}

const commaList = (v: string) => v.split(',').map((h) => h.trim()).filter(Boolean);

export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  // Empty strings in env files mean "not set", not "set to nothing".
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const e = parsed.data;
  const generatedSecret = !e.JWT_SECRET;
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    logLevel: e.LOG_LEVEL,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    databaseDirectUrl: e.DATABASE_DIRECT_URL ?? e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    databaseConnectTimeoutMs: e.DATABASE_CONNECT_TIMEOUT_MS,
    databaseQueryTimeoutMs: e.DATABASE_QUERY_TIMEOUT_MS,
    eventsRereadMs: e.EVENTS_REREAD_MS,
    publicUrl: (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    jwt: {
      // Without a configured secret (the embedded demo) main.ts persists one under DATA_DIR so
      // sessions survive restarts; this placeholder is replaced there.
      secret: e.JWT_SECRET ?? '',
      issuer: e.JWT_ISSUER,
      accessTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
      refreshTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
      generated: generatedSecret,
    },
    anonKey: e.ANON_KEY,
    corsOrigins: commaList(e.CORS_ORIGINS),
    legacyAnonClients: e.LEGACY_ANON_CLIENTS,
    allowGuestPurchases: e.ALLOW_GUEST_PURCHASES,
    maxJsonBodyBytes: e.MAX_JSON_BODY_BYTES,
    http: {
      headersTimeoutMs: e.HTTP_HEADERS_TIMEOUT_MS,
      requestTimeoutMs: e.HTTP_REQUEST_TIMEOUT_MS,
      keepAliveTimeoutMs: e.HTTP_KEEP_ALIVE_TIMEOUT_MS,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
    },
    realtime: { heartbeatTimeoutMs: e.REALTIME_HEARTBEAT_TIMEOUT_MS, maxChannels: e.REALTIME_MAX_CHANNELS, maxSocketsPerAddress: e.REALTIME_MAX_SOCKETS_PER_ADDRESS },
    metrics: { token: e.METRICS_TOKEN, port: e.METRICS_PORT },
    initialGrantCredits: e.INITIAL_GRANT_CREDITS,
    admin: {
      loginMaxFailures: e.ADMIN_LOGIN_MAX_FAILURES,
      loginWindowSeconds: e.ADMIN_LOGIN_WINDOW_SECONDS,
      sessionTtlHours: e.ADMIN_SESSION_TTL_HOURS,
      // Secure cookies need HTTPS (browsers also accept them from http://localhost and 127.0.0.1);
      // development may be served over plain http on another host name.
      secureCookies: e.NODE_ENV !== 'development',
    },
    deviceCheck:
      e.APPLE_TEAM_ID && e.APPLE_DEVICECHECK_KEY_ID && e.APPLE_DEVICECHECK_PRIVATE_KEY && !e.DEVICECHECK_DISABLED
        ? {
            teamId: e.APPLE_TEAM_ID,
            keyId: e.APPLE_DEVICECHECK_KEY_ID,
            privateKeyPem: e.APPLE_DEVICECHECK_PRIVATE_KEY,
            baseUrl: e.APPLE_DEVICECHECK_BASE_URL.replace(/\/+$/, ''),
            timeoutMs: e.APPLE_DEVICECHECK_TIMEOUT_MS,
          }
        : undefined,
    role: e.ROLE,
    worker: {
      concurrency: e.WORKER_CONCURRENCY,
      pollIntervalMs: e.WORKER_POLL_INTERVAL_MS,
      databasePoolMax: e.WORKER_DATABASE_POOL_MAX ?? e.WORKER_CONCURRENCY + 3,
    },
    simulator: { delayMs: e.SIMULATOR_DELAY_MS, failureRate: e.SIMULATOR_FAILURE_RATE },
    limits: { maxResultBytes: e.MAX_RESULT_BYTES, maxUploadBytes: e.MAX_UPLOAD_BYTES },
    signedUrlTtlSeconds: e.SIGNED_URL_TTL_SECONDS,
    idempotencyKeyTtlHours: e.IDEMPOTENCY_KEY_TTL_HOURS,
    idempotencyLockSeconds: e.IDEMPOTENCY_LOCK_SECONDS,
    providerTimeoutMs: e.PROVIDER_TIMEOUT_MS,
    providerRetryBaseMs: e.PROVIDER_RETRY_BASE_MS,
    submitLeaseSeconds: e.SUBMIT_LEASE_SECONDS,
    submitLostAnswerWaitSeconds: e.SUBMIT_LOST_ANSWER_WAIT_SECONDS,
    jobQuietSeconds: e.JOB_QUIET_SECONDS,
    crashAt: e.FAULT_CRASH_AT,
    fal: e.FAL_KEY
      ? {
          apiKey: e.FAL_KEY,
          queueUrl: e.FAL_QUEUE_URL.replace(/\/+$/, ''),
          jwksUrl: e.FAL_JWKS_URL,
          resultHosts: commaList(e.FAL_RESULT_HOSTS),
          webhookUserId: e.FAL_WEBHOOK_USER_ID,
        }
      : undefined,
    runway: e.RUNWAY_API_KEY
      ? { apiKey: e.RUNWAY_API_KEY, baseUrl: e.RUNWAY_BASE_URL.replace(/\/+$/, ''), resultHosts: commaList(e.RUNWAY_RESULT_HOSTS) }
      : undefined,
    appStore:
      e.APPLE_BUNDLE_ID && e.APPLE_APP_APPLE_ID && e.APP_STORE_ISSUER_ID && e.APP_STORE_KEY_ID && e.APP_STORE_PRIVATE_KEY
        ? {
            bundleId: e.APPLE_BUNDLE_ID,
            appAppleId: e.APPLE_APP_APPLE_ID,
            issuerId: e.APP_STORE_ISSUER_ID,
            keyId: e.APP_STORE_KEY_ID,
            privateKeyPem: e.APP_STORE_PRIVATE_KEY,
            productionUrl: e.APP_STORE_PRODUCTION_URL.replace(/\/+$/, ''),
            sandboxUrl: e.APP_STORE_SANDBOX_URL.replace(/\/+$/, ''),
            timeoutMs: e.APP_STORE_TIMEOUT_MS,
            onlineChecks: e.APP_STORE_ONLINE_CHECKS,
            acceptSandbox: e.APP_STORE_ACCEPT_SANDBOX,
            sendConsumptionInfo: e.APP_STORE_SEND_CONSUMPTION_INFO,
          }
        : undefined,
    appleRootCertificates: readRootCertificates(e.APPLE_ROOT_CA_FILES),
    products: e.IAP_PRODUCTS ?? DEFAULT_PRODUCTS,
    signInWithApple: (() => {
      const audiences = commaList(e.APPLE_SIGN_IN_AUDIENCES ?? e.APPLE_BUNDLE_ID ?? '');
      return audiences.length > 0 ? { audiences, jwksUrl: e.APPLE_ID_JWKS_URL, timeoutMs: e.APPLE_ID_TIMEOUT_MS, jwksCooldownMs: e.APPLE_ID_JWKS_COOLDOWN_MS } : undefined;
    })(),
    apns:
      e.APNS_KEY_ID && e.APNS_PRIVATE_KEY && (e.APNS_TEAM_ID ?? e.APPLE_TEAM_ID)
        ? {
            teamId: (e.APNS_TEAM_ID ?? e.APPLE_TEAM_ID)!,
            keyId: e.APNS_KEY_ID,
            privateKeyPem: e.APNS_PRIVATE_KEY,
            bundleId: e.APNS_BUNDLE_ID ?? e.APPLE_BUNDLE_ID ?? DEFAULT_APNS_BUNDLE_ID,
            host: e.APNS_HOST,
            port: e.APNS_PORT,
            ca: e.APNS_CA_FILE ? readFileOrFail('APNS_CA_FILE', e.APNS_CA_FILE) : undefined,
            timeoutMs: e.APNS_TIMEOUT_MS,
          }
        : undefined,
    rateLimits: {
      enabled: e.RATE_LIMITS_ENABLED,
      policies: parseRateLimits(e.RATE_LIMITS) as Record<RateLimitPolicyName, RateLimitPolicy>,
      keyPrefix: e.RATE_LIMIT_KEY_PREFIX,
      redisUrl: e.REDIS_URL,
    },
    trustProxy: parseTrustProxy(e.TRUST_PROXY)!,
    retention: {
      errorLogDays: e.ERROR_LOG_RETENTION_DAYS,
      errorLogMaxRows: e.ERROR_LOG_MAX_ROWS,
      sessionDays: e.SESSION_RETENTION_DAYS,
      refreshTokenTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
      webhookEventDays: e.WEBHOOK_EVENT_RETENTION_DAYS,
      appStoreNotificationDays: e.APP_STORE_NOTIFICATION_RETENTION_DAYS,
      videoDays: e.VIDEO_RETENTION_DAYS,
    },
    s3:
      e.STORAGE_BACKEND === 's3'
        ? {
            bucket: e.S3_BUCKET!,
            region: e.S3_REGION,
            endpoint: e.S3_ENDPOINT,
            accessKeyId: e.S3_ACCESS_KEY_ID!,
            secretAccessKey: e.S3_SECRET_ACCESS_KEY!,
            forcePathStyle: e.S3_FORCE_PATH_STYLE,
            timeoutMs: e.S3_TIMEOUT_MS,
          }
        : undefined,
  };
}
