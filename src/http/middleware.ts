import { randomUUID } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from '../logger.js';
import { secretsEqual } from '../auth/tokens.js';
import { isAnonKey } from '../auth/anon-key.js';
import { ApiError, notFound, unauthenticated } from './api-error.js';
import { bearerToken } from './auth.js';
import type { AppEnv } from './context.js';
import { negotiateLanguage } from '../errors/i18n.js';
import type { Metrics } from '../metrics.js';
import type { AccessLogLevel } from '../config/observability.js';
import { SpanKind, SpanStatusCode, contextFrom, inSpan } from '../tracing.js';
import { findUnstorableText, isStorableText, storableText } from './storable-text.js';

const SAFE_REQUEST_ID = /^[\w.-]{8,128}$/;

/**
 * Request id (accepted from X-Request-Id when sane), per-request logger, language, metrics, and the
 * access log: one line per request, written after the answer with what only then is known (route
 * pattern, status, user, error code). It is on every request's path, so whether it is written is
 * decided once here, and the line is one object built only when it is.
 */
export function requestContext(log: Logger, metrics: Metrics, accessLog: AccessLogLevel = 'info', tracing = false): MiddlewareHandler<AppEnv> {
  const accessLevel = accessLog !== 'off' && log.isLevelEnabled(accessLog) ? accessLog : undefined;
  // Every field of the access line is ours (no header, no body): the logger's redaction, whose
  // wildcard paths cost ~20 µs a line (more than the rest of the line), has nothing to find there.
  const accessLogger = log.child({}, { redact: [] });
  return async (c, next) => {
    const inbound = c.req.header('x-request-id');
    const requestId = inbound && SAFE_REQUEST_ID.test(inbound) ? inbound : randomUUID();
    c.set('requestId', requestId);
    c.set('log', log.child({ requestId }));
    c.set('lang', negotiateLanguage(c.req.header('accept-language')));
    const started = performance.now();
    if (tracing) await tracedRequest(c, requestId, next);
    else await next();
    setAnsweredHeader(c, 'X-Request-Id', requestId);
    const seconds = (performance.now() - started) / 1000;
    const route = c.req.routePath || 'unmatched';
    metrics.observeRequest(c.req.method, route, c.res.status, seconds);
    if (accessLevel) {
      accessLogger[accessLevel](
        {
          requestId,
          method: c.req.method,
          route,
          path: c.req.path,
          status: c.res.status,
          ms: Math.round(seconds * 10_000) / 10,
          userId: c.get('user')?.id,
          adminId: c.get('admin')?.adminId,
          code: c.get('errorCode'),
        },
        'request',
      );
    }
  };
}

/**
 * Sets a header on the answer a handler has already given. c.header() at that point copies the whole
 * Response, turning @hono/node-server's lightweight one into a full WHATWG Response (a tenth of a
 * 304's CPU); its headers can be set in place. A Response whose headers are immutable (one passed
 * through from fetch()) is copied, as c.header() would.
 */
export function setAnsweredHeader(c: Context<AppEnv>, name: string, value: string): void {
  try {
    c.res.headers.set(name, value);
  } catch {
    c.header(name, value);
  }
}

/**
 * The request's span (a child of the caller's traceparent, if any): what the handler enqueues
 * carries it on to the worker (src/jobs/queue.ts), so one trace runs request → queue → provider → ingest.
 */
function tracedRequest(c: Context<AppEnv>, requestId: string, next: () => Promise<void>): Promise<void> {
  const attributes = { 'http.request.method': c.req.method, 'url.path': c.req.path, 'rendio.request_id': requestId };
  return inSpan(`${c.req.method}`, attributes, async (span) => {
    await next();
    const route = c.req.routePath || 'unmatched';
    span.updateName(`${c.req.method} ${route}`);
    span.setAttributes({ 'http.route': route, 'http.response.status_code': c.res.status });
    if (c.res.status >= 500) span.setStatus({ code: SpanStatusCode.ERROR });
  }, { kind: SpanKind.SERVER, parent: contextFrom(c.req.header()) });
}

/**
 * Supabase clients send the project's anon key as `apikey` on every call (Realtime and some tools as
 * the `apikey` query parameter, as Supabase's gateway accepts it). When ANON_KEY is configured it
 * must match it or, during a rotation, ANON_KEY_PREVIOUS (constant time); without it the key is
 * ignored. The refusal is the gateway's, not a session error: "No API key found in request" or
 * "Invalid API key" (its `message` and `hint`, added by on-error.ts), so a developer is not sent
 * looking for a session problem.
 */
export function apiKeyRefusal(presented: string | undefined, acceptedAnonKeys: readonly string[]): ApiError | undefined {
  if (acceptedAnonKeys.length === 0) return undefined;
  if (!presented) return new ApiError('ERR_4042');
  return isAnonKey(presented, acceptedAnonKeys) ? undefined : new ApiError('ERR_4043');
}

/** The gateway's hints for the two refusals above, word for word (clients and people search for them). */
export const API_KEY_HINTS: Partial<Record<string, string>> = {
  ERR_4042: 'No `apikey` request header or url param was found.',
  ERR_4043: 'Double check your Supabase `anon` or `service_role` API key.',
};

export function requireApiKey(acceptedAnonKeys: readonly string[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const refusal = apiKeyRefusal(c.req.header('apikey') ?? c.req.query('apikey'), acceptedAnonKeys);
    if (refusal) throw refusal;
    await next();
  };
}

const JSON_TYPE = /^application\/([\w.+-]+\+)?json\b/i;
const sendsBody = (c: Context<AppEnv>) => {
  if (c.req.method !== 'POST' && c.req.method !== 'PATCH' && c.req.method !== 'PUT') return false;
  const length = c.req.header('content-length');
  return length ? Number(length) > 0 : c.req.raw.body !== null;
};

/**
 * An operator endpoint on the public port: served only to `Authorization: Bearer <secret>`
 * (compared in constant time, 401 otherwise). With no secret configured it does not exist on this
 * port (404), so nothing is exposed by default.
 */
export function requireOperatorToken(secret: string | undefined): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!secret) throw notFound('route');
    const presented = bearerToken(c);
    if (!presented || !secretsEqual(presented, secret)) throw unauthenticated('this endpoint needs its operator token');
    await next();
  };
}

/**
 * Rejects request bodies that are not JSON before any handler parses them. Routes that take no
 * body (logout) are listed in `bodiless`: they never read one, so its type cannot matter, and a
 * 415 there left the token valid for a client that sent none the way curl -X POST does.
 */
export function requireJsonBody(bodiless: ReadonlySet<string> = new Set()): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (sendsBody(c) && !bodiless.has(c.req.path) && !JSON_TYPE.test(c.req.header('content-type') ?? '')) throw new ApiError('ERR_4016');
    await next();
  };
}

const UNSTORABLE_REASON = 'text must be valid Unicode without U+0000';

/**
 * Refuses text the database cannot store (U+0000, lone surrogates: see storable-text.ts) in any
 * query name or value and in any JSON string or key, before a handler, an auth lookup or a
 * catalogue filter sends it to PostgreSQL — each of those was a 500. Runs after the body limit.
 * A prompt keeps its own code (ERR_4003); every other field is ERR_4008 with the field.
 */
export function rejectUnstorableText(): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const url = c.req.url;
    for (const [name, value] of url.includes('?') ? new URL(url).searchParams : []) {
      if (!isStorableText(name) || !isStorableText(value)) throw unstorable(storableText(name), 'query');
    }
    if (sendsBody(c) && JSON_TYPE.test(c.req.header('content-type') ?? '')) {
      const raw = await c.req.text(); // cached: the validator and handlers read the same text
      let body: unknown;
      try {
        body = JSON.parse(raw);
      } catch {
        body = undefined; // malformed JSON is the validator's to refuse
      }
      const path = findUnstorableText(body);
      if (path) throw unstorable(path.length > 0 ? path.join('.') : 'body', 'json');
    }
    await next();
  };
}

const unstorable = (field: string, location: 'query' | 'json') =>
  field === 'prompt' && location === 'json'
    ? new ApiError('ERR_4003', { field, reason: UNSTORABLE_REASON })
    : new ApiError('ERR_4008', { reason: `${field}: ${UNSTORABLE_REASON}`, field, location });

/** A body over maxBytes is refused with ERR_4015 (naming the limit) before anything reads it. */
export function limitBodyTo(maxBytes: number): MiddlewareHandler<AppEnv> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () => {
      throw new ApiError('ERR_4015', { limit_bytes: maxBytes });
    },
  });
}

/**
 * The Supabase-shaped surface's checks, in this order, as one middleware (each was its own layer,
 * and a 304 of get-models paid for every one): the apikey (unless `apiKey` is false: the admin API
 * takes admin tokens instead), JSON-only bodies (but on the `bodiless` routes), the body's size,
 * and text the database can store in the query and the body. Server-to-server callbacks skip them:
 * their signatures authenticate them and they carry provider- or Apple-shaped bodies.
 */
export function supabaseSurface(opts: {
  acceptedAnonKeys: readonly string[];
  apiKey: boolean;
  bodiless: ReadonlySet<string>;
  maxJsonBodyBytes: number;
}): MiddlewareHandler<AppEnv> {
  const limitBody = limitBodyTo(opts.maxJsonBodyBytes);
  const checkText = rejectUnstorableText();
  return async (c, next) => {
    if (isCallback(c)) return next();
    if (opts.apiKey) {
      const refusal = apiKeyRefusal(c.req.header('apikey') ?? c.req.query('apikey'), opts.acceptedAnonKeys);
      if (refusal) throw refusal;
    }
    // GET and HEAD have no body (fetch refuses to build one), and asking for c.req.raw.body makes
    // @hono/node-server materialise a full Request: measurable on the status poll.
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return checkText(c, next);
    if (sendsBody(c) && !opts.bodiless.has(c.req.path) && !JSON_TYPE.test(c.req.header('content-type') ?? '')) throw new ApiError('ERR_4016');
    return limitBody(c, async () => {
      await checkText(c, next);
    });
  };
}

const CALLBACK_PATHS = ['/functions/v1/provider-webhook/', '/functions/v1/apple-server-notifications', '/functions/v1/apple-signin-notifications'];
const isCallback = (c: Context<AppEnv>) => CALLBACK_PATHS.some((p) => c.req.path.startsWith(p));

/** Runs the middleware for everything but server-to-server callbacks. */
export function exceptCallbacks(mw: MiddlewareHandler<AppEnv>): MiddlewareHandler<AppEnv> {
  return (c, next) => (isCallback(c) ? next() : mw(c, next));
}
