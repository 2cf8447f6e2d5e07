import type { Context } from 'hono';
import { HTTPException } from 'hono/http-exception';
import { ZodError } from 'zod';
import { ProviderLimitExceeded } from '../catalogue/pricing.js';
import { AppStoreRejected, AppStoreUnavailable } from '../apple/app-store.js';
import { DeviceCheckUnavailable, DeviceTokenRejected } from '../apple/device-check.js';
import { TransactionOwnedByAnother } from '../apple/purchases.js';
import { AppleKeysUnavailable, IdentityTokenRejected } from '../apple/sign-in.js';
import { GuestBelongsToAnotherAppleId } from '../auth/apple-accounts.js';
import { UserBanned } from '../auth/onboarding.js';
import { AdminInputRejected, AdminKeyReused, AdminSignInFailed, AdminSignInLocked, ModelNotFound, TargetAccountClosed } from '../admin/errors.js';
import { InvalidGenerationInput, InvalidPrompt, ModelUnavailable } from '../jobs/generate.js';
import { StorageKeyConflict, StorageUnavailable } from '../storage/types.js';
import { isDatabaseUnavailable } from '../db/pool.js';
import { AccountClosed, AccountNotFound, InsufficientCredits } from '../ledger/errors.js';
import { ApiError } from './api-error.js';
import type { AppEnv } from './context.js';
import type { ErrorLogWriter } from './error-log.js';
import { localizedMessage, negotiateLanguage } from '../errors/i18n.js';
import { postgrestErrorFields } from './postgrest.js';

const DATABASE_RETRY_AFTER_SECONDS = '2';

/** Turns anything thrown into an ApiError. Unknown errors become ERR_6003 with no internals. */
export function toApiError(err: unknown, maxBodyBytes: number): ApiError {
  if (err instanceof ApiError) return err;
  if (err instanceof InsufficientCredits) {
    return new ApiError('ERR_4001', { required: err.required, available: err.available });
  }
  if (err instanceof AccountNotFound) return new ApiError('ERR_4007', { resource: 'user' });
  // Deleted while this request was under way: the same answer a request arriving a moment later gets.
  if (err instanceof AccountClosed) return new ApiError('ERR_4005', { reason: 'user no longer exists' });
  if (err instanceof DeviceTokenRejected) return new ApiError('ERR_4013');
  if (err instanceof DeviceCheckUnavailable) return new ApiError('ERR_5002', { service: 'apple_devicecheck' }, { 'Retry-After': '5' });
  if (err instanceof UserBanned) return new ApiError('ERR_4014');
  if (err instanceof AdminSignInFailed) return new ApiError('ERR_4025');
  if (err instanceof AdminSignInLocked) {
    return new ApiError('ERR_4004', { retry_after: err.retryAfterSeconds }, { 'Retry-After': String(err.retryAfterSeconds) });
  }
  if (err instanceof TargetAccountClosed) return new ApiError('ERR_4026', { user_id: err.userId });
  if (err instanceof AdminKeyReused) return new ApiError('ERR_4010');
  if (err instanceof ModelNotFound) return new ApiError('ERR_4007', { resource: 'model' });
  if (err instanceof AdminInputRejected) return new ApiError('ERR_4008', { reason: err.reason, field: err.field });
  if (err instanceof AppStoreRejected) return new ApiError('ERR_4011', { reason: err.reason });
  if (err instanceof AppStoreUnavailable) return new ApiError('ERR_5002', { service: 'app_store' }, { 'Retry-After': '5' });
  if (err instanceof TransactionOwnedByAnother) return new ApiError('ERR_4012');
  if (err instanceof IdentityTokenRejected) return new ApiError('ERR_4005', { reason: `Apple identity token: ${err.message}` });
  if (err instanceof AppleKeysUnavailable) return new ApiError('ERR_5002', { service: 'sign_in_with_apple' }, { 'Retry-After': '5' });
  if (err instanceof GuestBelongsToAnotherAppleId) return new ApiError('ERR_4006', { reason: 'this guest is already linked to another Apple ID' });
  if (err instanceof InvalidPrompt) return new ApiError('ERR_4003', { field: 'prompt' });
  if (err instanceof ModelUnavailable) return new ApiError('ERR_4002', err.reason ? { reason: err.reason } : undefined);
  if (err instanceof InvalidGenerationInput) return new ApiError('ERR_4008', { reason: err.reason, field: err.field });
  if (err instanceof ProviderLimitExceeded) {
    if (err.field === 'prompt') return new ApiError('ERR_4030', { field: 'prompt', max_length: err.limit });
    if (err.field === 'image_url') return new ApiError('ERR_4008', { reason: `this model's provider: an image is ${String(err.limit)}`, field: 'image_url' });
    return new ApiError('ERR_4031', { field: `settings.${err.field}`, allowed: (err.limit as (string | number)[]).join(', ') });
  }
  if (err instanceof StorageUnavailable) return new ApiError('ERR_6002');
  if (err instanceof StorageKeyConflict) return new ApiError('ERR_4008', { reason: 'this path clashes with one of your existing files (a file where a folder is, or the reverse)', field: 'key' });
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

/** The response envelope of DESIGN §7, in the language the client asked for. */
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
  const body = c.req.path.startsWith('/auth/v1/')
    ? { code: apiError.status, error_code: apiError.code, msg: message, ...envelope }
    : c.req.path.startsWith('/rest/v1/')
      ? { ...postgrestErrorFields(apiError, message), ...envelope }
      : envelope;
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
    const fields = { requestId, code: apiError.code, status: apiError.status, method: c.req.method, path: c.req.path };
    if (apiError.status >= 500) log?.error({ ...fields, err }, 'request failed');
    else log?.info({ ...fields, details: apiError.details }, 'request rejected');
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
