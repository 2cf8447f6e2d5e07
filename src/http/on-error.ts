import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ZodError } from 'zod';
import { isDatabaseUnavailable } from '../db/pool.js';
import { DomainError } from '../errors/domain-error.js';
import { localizedMessage, negotiateLanguage } from '../errors/i18n.js';
import { ApiError } from './api-error.js';
import type { AppEnv } from './context.js';
import type { ErrorLogWriter } from './error-log.js';
import { API_KEY_HINTS } from './middleware.js';
import { postgrestErrorFields } from './postgrest.js';

const DATABASE_RETRY_AFTER_SECONDS = '2';

/** Turns anything thrown into an ApiError. Unknown errors become ERR_6003 with no internals. */
export function toApiError(err: unknown, maxBodyBytes: number): ApiError {
  if (err instanceof ApiError) return err;
  // Each service error carries its own answer, so one branch covers them all.
  if (err instanceof DomainError) return new ApiError(err.code, err.details, err.headers);
  if (err instanceof ZodError) {
    const issue = err.issues[0];
    return new ApiError('ERR_4008', { reason: issue?.message ?? 'invalid input', field: issue?.path.join('.') || undefined });
  }
  if (err instanceof HTTPException) {
    if (err.status === 413) return new ApiError('ERR_4015', { limit_bytes: maxBodyBytes });
    if (err.status === 415) return new ApiError('ERR_4016');
    if (err.status === 400) return new ApiError('ERR_4008', { reason: err.message || 'malformed request' });
    if (err.status === 401) return new ApiError('ERR_4005', { reason: err.message });
    if (err.status === 405) return new ApiError('ERR_4017');
    if (err.status === 404) return new ApiError('ERR_4007', { resource: 'route' });
  }
  // Unreachable, restarting, or every pooled connection busy past DATABASE_CONNECT_TIMEOUT_MS.
  // Retrying is safe (generate-video's key makes it so), after a pause so a flood does not keep
  // the pool saturated.
  if (isDatabaseUnavailable(err)) return new ApiError('ERR_6001', undefined, { 'Retry-After': DATABASE_RETRY_AFTER_SECONDS });
  return new ApiError('ERR_6003');
}

/** The response envelope of docs/reference/DESIGN.md §7, in the language the client asked for. */
export function errorResponse(c: Context<AppEnv>, apiError: ApiError): Response {
  const lang = c.get('lang') ?? negotiateLanguage(c.req.header('accept-language'));
  const message = localizedMessage(apiError.code, lang, apiError.details);
  const envelope = {
    error: {
      code: apiError.code,
      message,
      ...(apiError.details ? { details: apiError.details } : {}),
      request_id: c.get('requestId'),
    },
  };
  // GoTrue's error fields on auth/v1, so supabase clients' AuthApiError carries our code and
  // message (auth-js reads msg, then error_code); the envelope stays for our own clients.
  // PostgREST's {code, message, details, hint} on rest/v1, so postgrest-js's PostgrestError carries them.
  // The gateway's {message, hint} when the apikey is missing or wrong, on every path.
  const hint = API_KEY_HINTS[apiError.code];
  const gateway = hint ? { message, hint } : {};
  const body = c.req.path.startsWith('/auth/v1/')
    ? { code: apiError.status, error_code: apiError.code, msg: message, ...gateway, ...envelope }
    : c.req.path.startsWith('/rest/v1/')
      ? { ...postgrestErrorFields(apiError, message), ...gateway, ...envelope }
      : { ...gateway, ...envelope };
  const headers: Record<string, string> = {
    'Content-Language': lang,
    Vary: 'Accept-Language',
    'Cache-Control': 'no-store',
    ...apiError.headers,
  };
  return c.json(body, apiError.status as 400, headers);
}

export function createErrorHandler(errorLog: ErrorLogWriter, maxBodyBytes: number) {
  return (err: unknown, c: Context<AppEnv>): Response => {
    const apiError = toApiError(err, maxBodyBytes);
    const requestId = c.get('requestId') ?? 'unknown';
    const log = c.get('log');
    c.set('errorCode', apiError.code);
    // The request's logger carries requestId and its access line the method, route and status:
    // a failure adds its stack (error), a refusal its details (debug), neither a key twice.
    if (apiError.status >= 500) log?.error({ code: apiError.code, path: c.req.path, err }, 'request failed');
    else if (apiError.details) log?.debug({ code: apiError.code, details: apiError.details }, 'request rejected');
    const fields = { requestId, code: apiError.code, status: apiError.status, method: c.req.method, path: c.req.path };
    const user = c.get('user');
    if (!user && (apiError.status === 401 || apiError.status === 404)) {
      errorLog.countNoise({ code: apiError.code, status: apiError.status, method: c.req.method, route: c.req.routePath || 'unmatched' });
      return errorResponse(c, apiError);
    }
    errorLog.record({
      ...fields,
      userId: user?.id,
      message: apiError.status >= 500 && err instanceof Error ? err.message.slice(0, 1000) : apiError.message,
      details: apiError.details,
    });
    return errorResponse(c, apiError);
  };
}
