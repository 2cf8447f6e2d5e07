import type { Context, MiddlewareHandler } from 'hono';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { ApiError, forbidden, unauthenticated } from '../http/api-error.js';
import { bearerToken } from '../http/auth.js';
import { addressMatcher, type ClientIpResolver } from '../http/client-ip.js';
import type { AppEnv } from '../http/context.js';
import { ADMIN_TOKEN_PREFIX, csrfTokenValid, type AdminAuthService } from './auth.js';

/**
 * Who may use /admin: admins only, never an app user (whatever users.is_admin says) and never the
 * anon key. Admin API: `Authorization: Bearer rdadm_…` (an API token from POST /admin/api/login).
 * Console: the HttpOnly session cookie, and a CSRF token on every form. Any other bearer — an app
 * access token, the anon key — is 403 on every admin route; a missing or stale admin credential
 * is 401 (API) or a trip to the sign-in page (console).
 */

export const ADMIN_COOKIE = 'rendio_admin';
/** The sign-in routes: the only admin routes open to the unauthenticated. */
export const ADMIN_PUBLIC_PATHS: ReadonlySet<string> = new Set(['/admin/api/login', '/admin/login']);

/**
 * ADMIN_ALLOWED_CIDRS: other client addresses (as TRUST_PROXY lets us believe them) get the 404 of a
 * route that does not exist, before any other admin middleware runs, so they cannot tell that it
 * does (no 415, no sign-in page, no password hash spent on them).
 */
export function adminReachableOnlyFrom(cidrs: string[], clientIp: ClientIpResolver): MiddlewareHandler<AppEnv> {
  const allowed = addressMatcher(cidrs);
  return async (c, next) => {
    if (!allowed(clientIp(c))) throw new ApiError('ERR_4007', { resource: 'route' });
    return next();
  };
}

/** A bearer that is not an admin token at all: an app's token or the anon key. */
function refuseForeignBearer(c: Context<AppEnv>): string | undefined {
  const token = bearerToken(c);
  if (token !== undefined && !token.startsWith(ADMIN_TOKEN_PREFIX)) throw forbidden('admin credentials required');
  return token;
}

export function requireAdminToken(auth: AdminAuthService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (ADMIN_PUBLIC_PATHS.has(c.req.path)) return next();
    const token = refuseForeignBearer(c);
    if (!token) throw unauthenticated('an admin API token is required (POST /admin/api/login)');
    const admin = await auth.authenticate(token, 'api');
    if (!admin) throw unauthenticated('admin token expired or revoked');
    c.set('admin', admin);
    return next();
  };
}

export function requireConsoleSession(auth: AdminAuthService): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (ADMIN_PUBLIC_PATHS.has(c.req.path)) return next();
    if (refuseForeignBearer(c) !== undefined) throw forbidden('the console takes its session cookie, not a bearer token');
    const cookie = getCookie(c, ADMIN_COOKIE);
    const admin = cookie ? await auth.authenticate(cookie, 'console') : undefined;
    if (!admin) return c.redirect('/admin/login', 303);
    if (c.req.method !== 'GET' && c.req.method !== 'HEAD') {
      const form = await c.req.parseBody();
      const presented = typeof form._csrf === 'string' ? form._csrf : undefined;
      if (!csrfTokenValid(admin.token, presented)) throw new ApiError('ERR_4027');
    }
    c.set('admin', admin);
    return next();
  };
}

export function setConsoleCookie(c: Context<AppEnv>, token: string, expiresAt: string, secure: boolean): void {
  setCookie(c, ADMIN_COOKIE, token, { httpOnly: true, sameSite: 'Strict', secure, path: '/admin', expires: new Date(expiresAt) });
}

export function clearConsoleCookie(c: Context<AppEnv>, secure: boolean): void {
  deleteCookie(c, ADMIN_COOKIE, { path: '/admin', secure, httpOnly: true, sameSite: 'Strict' });
}
