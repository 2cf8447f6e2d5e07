import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { RefreshRejected } from '../auth/sessions.js';
import { findUserById, type UserRow } from '../db/queries/users.js';
import { ApiError, invalid, notFound, unauthenticated } from '../http/api-error.js';
import { authOptions, noClaimedUserId, optionalUser, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/** GoTrue-shaped user, so supabase clients decode it. */
const GoTrueUser = z
  .object({
    id: z.string().uuid(),
    aud: z.literal('authenticated'),
    role: z.literal('authenticated'),
    email: z.string().nullable(),
    phone: z.string(),
    is_anonymous: z.boolean(),
    app_metadata: z.object({ provider: z.string(), providers: z.array(z.string()) }),
    user_metadata: z.record(z.string(), z.unknown()),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('GoTrueUser');

export function goTrueUser(u: UserRow): z.infer<typeof GoTrueUser> {
  const provider = u.apple_sub ? 'apple' : 'anonymous';
  return {
    id: u.id,
    aud: 'authenticated',
    role: 'authenticated',
    email: u.email,
    phone: '',
    is_anonymous: u.is_guest,
    app_metadata: { provider, providers: [provider] },
    user_metadata: {},
    created_at: u.created_at,
    updated_at: u.updated_at,
  };
}

const TokenResponse = z
  .object({
    access_token: z.string(),
    token_type: z.literal('bearer'),
    expires_in: z.number().int(),
    expires_at: z.number().int(),
    refresh_token: z.string(),
    user: GoTrueUser,
  })
  .openapi('TokenResponse');

const TokenRequest = z
  .object({
    refresh_token: z.string().min(1).max(512).optional().openapi({ description: 'grant_type=refresh_token' }),
    provider: z.literal('apple').optional().openapi({ description: 'grant_type=id_token: only "apple"' }),
    id_token: z.string().min(1).max(16_384).optional().openapi({ description: 'grant_type=id_token: the Sign in with Apple identity token' }),
    nonce: z.string().min(1).max(512).optional().openapi({ description: 'grant_type=id_token: the raw nonce whose SHA-256 the token carries' }),
  })
  .openapi('TokenRequest');

const tokenRoute = createRoute({
  method: 'post',
  path: '/auth/v1/token',
  operationId: 'token',
  security: [],
  tags: ['auth'],
  summary: 'Sessions (GoTrue-compatible): refresh a session, or sign in with Apple',
  description:
    'grant_type=refresh_token rotates the refresh token. Presenting an already-rotated token revokes the whole session ' +
    '(every token descended from the same sign-in). grant_type=id_token with provider "apple" verifies the identity token ' +
    "(Apple's keys, issuer, audience, expiry, nonce) and signs in, creating the account on first use; with a guest's bearer " +
    'token the guest is merged into the Apple account (or becomes it), atomically and idempotently.',
  request: {
    query: z.object({ grant_type: z.string().openapi({ example: 'refresh_token' }) }),
    body: { content: { 'application/json': { schema: TokenRequest } }, required: true },
  },
  responses: {
    200: { description: 'A new session', content: { 'application/json': { schema: TokenResponse } } },
    ...errorResponses(400, 401, 403, 415, 429, 503),
  },
});

/** Logout takes no body: whatever a client sends with it (curl -X POST, text/plain) is ignored, never a 415. */
export const LOGOUT_PATH = '/auth/v1/logout';

const logoutRoute = createRoute({
  method: 'post',
  path: LOGOUT_PATH,
  operationId: 'logout',
  tags: ['auth'],
  summary: 'End sessions (GoTrue-compatible). scope=global (default) ends every session of the user; local ends this one; others every other one',
  security: bearerSecurity,
  request: { query: z.object({ scope: z.enum(['global', 'local', 'others']).default('global') }) },
  responses: { 204: { description: 'Signed out' }, ...errorResponses(400, 401) },
});

const userRoute = createRoute({
  method: 'get',
  path: '/auth/v1/user',
  operationId: 'getUser',
  tags: ['auth'],
  summary: "The caller's user (GoTrue-compatible; supabase-js getUser() and setSession() call it)",
  security: bearerSecurity,
  responses: {
    200: { description: 'The user', content: { 'application/json': { schema: GoTrueUser } } },
    ...errorResponses(401, 403, 404),
  },
});

/** The identity-token verifier, or ERR_5002 when this server has no audience configured. */
export function appleIdentity(s: Services) {
  if (!s.appleIdentity) throw new ApiError('ERR_5002', { service: 'sign_in_with_apple', reason: 'not configured (APPLE_BUNDLE_ID / APPLE_SIGN_IN_AUDIENCES)' });
  return s.appleIdentity;
}

export function registerAuthToken(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(tokenRoute.path, s.rateLimits.middleware('auth-token'));
  app.openapi(tokenRoute, async (c) => {
    const { grant_type } = c.req.valid('query');
    const body = c.req.valid('json');
    if (grant_type === 'id_token') {
      if (!body.id_token) throw invalid('id_token is required', 'id_token');
      if (body.provider !== 'apple') throw invalid('provider must be "apple"', 'provider');
      const guest = await optionalUser(c, authOptions(s));
      const identity = await appleIdentity(s).verify(body.id_token, body.nonce);
      const r = await s.appleAccounts.signIn(identity, guest?.isGuest ? guest.id : undefined);
      return c.json({ ...r.session, user: goTrueUser(r.user) }, 200);
    }
    if (grant_type !== 'refresh_token') throw invalid(`unsupported grant_type "${grant_type}"`, 'grant_type');
    const { refresh_token } = body;
    if (!refresh_token) throw invalid('refresh_token is required', 'refresh_token');
    try {
      const { tokens, user } = await s.sessions.refresh(refresh_token);
      return c.json({ ...tokens, user: goTrueUser(user) }, 200);
    } catch (err) {
      if (err instanceof RefreshRejected) {
        if (err.reason === 'reused') c.get('log').warn('refresh token reuse detected: session revoked');
        if (err.reason === 'banned') throw new ApiError('ERR_4014');
        throw unauthenticated(`refresh token ${err.reason}`);
      }
      throw err;
    }
  });

  app.use(userRoute.path, requireUser(authOptions(s), noClaimedUserId));
  app.openapi(userRoute, async (c) => {
    const user = await findUserById(s.db, c.get('user').id);
    if (!user) throw notFound('user');
    return c.json(goTrueUser(user), 200);
  });

  app.use(logoutRoute.path, requireUser(authOptions(s)));
  app.openapi(logoutRoute, async (c) => {
    const user = c.get('user');
    if (!user.sessionId) throw unauthenticated('logout needs a user access token');
    await s.sessions.logout(user.id, user.sessionId, c.req.valid('query').scope);
    return c.body(null, 204);
  });
}
