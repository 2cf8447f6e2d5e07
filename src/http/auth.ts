import type { Context, MiddlewareHandler } from 'hono';
import { z } from 'zod';
import { isAnonKey } from '../auth/anon-key.js';
import { InvalidAccessToken, type AccessClaims, type AccessTokens } from '../auth/tokens.js';
import type { Queryable } from '../db/pool.js';
import { loadAuthState, type AuthState } from '../db/queries/users.js';
import { ApiError, forbidden, invalid, notFound, unauthenticated } from './api-error.js';
import type { AppEnv, AuthUser } from './context.js';

/**
 * Who is calling (docs/reference/DESIGN.md §6). Secure mode (default): a verified user JWT; a user id named in the
 * request must equal the token's subject. Legacy mode (LEGACY_ANON_CLIENTS=true): the shipped
 * app sends the public anon key as Bearer and names the user by user_id — insecure by design,
 * kept only so today's app build works while it migrates.
 */

/** Where a route's request names its user (user_id in the query or body; rest/v1 uses id=eq.X). */
export type ClaimedUserId = (c: Context<AppEnv>) => Promise<string | undefined>;

export const userIdFromQueryOrBody: ClaimedUserId = async (c) => {
  const fromQuery = c.req.query('user_id');
  if (fromQuery !== undefined) return fromQuery;
  if (c.req.method === 'GET' || c.req.method === 'HEAD') return undefined;
  const body = (await c.req.json().catch(() => undefined)) as unknown;
  const v = body && typeof body === 'object' ? (body as Record<string, unknown>).user_id : undefined;
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string') throw invalid('user_id must be a string', 'user_id');
  return v;
};

const uuid = z.uuid();

export interface AuthOptions {
  db: Queryable;
  tokens: AccessTokens;
  /** ANON_KEY, and during a rotation ANON_KEY_PREVIOUS; empty without ANON_KEY. */
  anonKeys: readonly string[];
  legacyAnonClients: boolean;
}

/** The bearer token of the Authorization header; undefined without one, 401 when it is malformed. */
export function bearerToken(c: Context<AppEnv>): string | undefined {
  const header = c.req.header('authorization');
  if (!header) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match) throw unauthenticated('malformed Authorization header');
  return match[1];
}

/**
 * sessionCheck 'route': for a route whose own read carries the session check in the same statement
 * (get-video-status, polled every few seconds by every waiting app: one round trip instead of two).
 * The token's own checks run here; the route reads the user's and session's state with its row and
 * settles the user with userFromAuthState. A route that answers without having done so fails closed.
 */
export function requireUser(
  opts: AuthOptions,
  claimed: ClaimedUserId = userIdFromQueryOrBody,
  sessionCheck: 'middleware' | 'route' = 'middleware',
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const token = bearerToken(c);
    if (!token) throw unauthenticated('missing bearer token');

    if (isAnonKey(token, opts.anonKeys)) {
      if (!opts.legacyAnonClients) throw unauthenticated('a user access token is required');
      const named = await claimed(c);
      if (!named) throw unauthenticated('user_id is required with the anon key');
      if (!uuid.safeParse(named).success) throw invalid('user_id must be a UUID', 'user_id');
      let state = await loadAuthState(opts.db, named, null);
      // The shipped app keeps using a guest's id after Sign in with Apple merged it (docs/reference/ios-app.md
      // §4.8d): in this mode that id stands for the account it became part of.
      if (state?.merged_into) state = await loadAuthState(opts.db, state.merged_into, null);
      if (!state || state.deleted) throw notFound('user');
      if (state.banned) throw new ApiError('ERR_4014');
      c.set('user', { id: state.id, isGuest: state.is_guest, isAdmin: state.is_admin, sessionId: null, via: 'legacy-anon' });
      c.get('log').debug({ userId: state.id }, 'legacy anon-key request');
      return next();
    }

    if (sessionCheck === 'route') {
      const claims = await verifiedClaims(opts, token);
      const named = await claimed(c);
      if (named !== undefined && named !== claims.sub) throw forbidden('the request names another user');
      c.set('unsettledToken', claims);
      await next();
      if (c.res.ok && !c.get('user')) throw new Error(`${c.req.path} answered without checking the caller's session`);
      return;
    }

    const user = await verifiedUser(opts, token);
    const named = await claimed(c);
    if (named !== undefined && named !== user.id) throw forbidden('the request names another user');
    c.set('user', user);
    return next();
  };
}

/** The token's own checks (signature, issuer, audience, expiry), with no database: 401 when one fails. */
export async function verifiedClaims(opts: AuthOptions, token: string) {
  try {
    return await opts.tokens.verify(token);
  } catch (err) {
    if (err instanceof InvalidAccessToken) throw unauthenticated(err.message);
    throw err;
  }
}

/** The user behind a user access token: valid signature, live session, not deleted or banned. */
export async function verifiedUser(opts: AuthOptions, token: string): Promise<AuthUser> {
  const claims = await verifiedClaims(opts, token);
  return userFromAuthState(claims, await loadAuthState(opts.db, claims.sub, claims.sessionId));
}

/** The verdict on a verified token's user and session as the database has them (undefined: no such user). */
export function userFromAuthState(claims: AccessClaims, state: AuthState | undefined): AuthUser {
  if (!state || state.deleted) throw unauthenticated('user no longer exists');
  // Before the session check: a ban ends every session, and the app must learn why (ERR_4014).
  if (state.banned) throw new ApiError('ERR_4014');
  if (state.session_revoked !== false) throw unauthenticated('session ended');
  return { id: state.id, isGuest: state.is_guest, isAdmin: state.is_admin, sessionId: claims.sessionId, via: 'token' };
}

/**
 * For auth routes where signing in is optional (GoTrue's id_token grant: a guest's bearer links the
 * guest). No bearer, or the anon key, means nobody. supabase-js sends its key as Bearer on every
 * auth call, and a server without ANON_KEY cannot recognise that key: so a bearer that is not one
 * of our tokens at all (bad signature, issuer or shape) also means nobody. One of ours that has
 * expired, or whose session ended or user is banned, is still refused: silently signing in without
 * the guest would skip its merge.
 */
export async function optionalUser(c: Context<AppEnv>, opts: AuthOptions): Promise<AppEnv['Variables']['user'] | undefined> {
  const token = bearerToken(c);
  if (!token || isAnonKey(token, opts.anonKeys)) return undefined;
  const notOurs = await opts.tokens.verify(token).then(
    () => false,
    (err: unknown) => err instanceof InvalidAccessToken && !err.expired,
  );
  return notOurs ? undefined : verifiedUser(opts, token);
}

/** For routes where the bearer alone names the user (GoTrue's /user): never a user_id. */
export const noClaimedUserId: ClaimedUserId = async () => undefined;

/**
 * Legacy mode's one capability request: the anon key with no user (get-video-status by job id
 * alone, docs/reference/ios-app.md §2.11). True only in legacy mode; the route decides what such a caller sees.
 */
export function isLegacyAnonCaller(c: Context<AppEnv>, opts: AuthOptions): boolean {
  if (!opts.legacyAnonClients) return false;
  const token = bearerToken(c);
  return token !== undefined && isAnonKey(token, opts.anonKeys);
}

export const authOptions = (s: {
  db: Queryable;
  tokens: AccessTokens;
  config: { acceptedAnonKeys: readonly string[]; legacyAnonClients: boolean };
}): AuthOptions => ({ db: s.db, tokens: s.tokens, anonKeys: s.config.acceptedAnonKeys, legacyAnonClients: s.config.legacyAnonClients });
