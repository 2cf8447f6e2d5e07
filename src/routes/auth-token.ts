import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { createHash } from 'node:crypto';
import { RefreshRejected } from '../auth/sessions.js';
import { updateUserMetadata } from '../auth/user-metadata.js';
import { findUserById, type UserRow } from '../db/queries/users.js';
import { ApiError, invalid, notFound, unauthenticated } from '../http/api-error.js';
import { authOptions, noClaimedUserId, optionalUser, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/** A GoTrue identity (auth.getUserIdentities()): Sign in with Apple's, the one identity an account can have. */
const GoTrueIdentity = z
  .object({
    identity_id: z.string().uuid(),
    id: z.string().openapi({ description: "The provider's id of the user (Apple's sub)" }),
    user_id: z.string().uuid(),
    identity_data: z.record(z.string(), z.unknown()),
    provider: z.literal('apple'),
    email: z.string().nullable(),
    created_at: z.string(),
    last_sign_in_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('GoTrueIdentity');

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
    identities: z.array(GoTrueIdentity).openapi({ description: 'Sign in with Apple, or none for a guest (GoTrue lists none for anonymous users)' }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('GoTrueUser');

/** A stable id for the Apple identity, derived from Apple's sub (there is no identities table: one identity per account). */
const identityId = (appleSub: string) => {
  const h = createHash('sha256').update(`apple:${appleSub}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-5${h.slice(13, 16)}-${((parseInt(h[16]!, 16) & 3) | 8).toString(16)}${h.slice(17, 20)}-${h.slice(20, 32)}`;
};

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
    user_metadata: u.user_metadata,
    identities: u.apple_sub
      ? [
          {
            identity_id: identityId(u.apple_sub),
            id: u.apple_sub,
            user_id: u.id,
            identity_data: { sub: u.apple_sub, provider_id: u.apple_sub, ...(u.email ? { email: u.email } : {}) },
            provider: 'apple' as const,
            email: u.email,
            created_at: u.created_at,
            last_sign_in_at: u.updated_at,
            updated_at: u.updated_at,
          },
        ]
      : [],
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

/** What GoTrue's /signup and PUT /user may carry; only data (user_metadata) is served, the rest is named to be refused clearly. */
const UserAttributes = z.object({
  data: z.record(z.string(), z.unknown()).optional().openapi({ description: 'user_metadata: top-level keys replace, null removes a key; at most 8 KiB of JSON' }),
  email: z.string().nullish(),
  password: z.string().nullish(),
  phone: z.string().nullish(),
  code_challenge: z.string().nullish(),
  code_challenge_method: z.string().nullish(),
});

const SignUpRequest = UserAttributes.extend({
  gotrue_meta_security: z.object({ captcha_token: z.string().nullish() }).partial().optional(),
}).openapi('SignUpRequest');

const signUpRoute = createRoute({
  operationId: 'authSignUp',
  method: 'post',
  path: '/auth/v1/signup',
  tags: ['auth'],
  summary: 'Anonymous sign-in (GoTrue-compatible: supabase-js auth.signInAnonymously()): a new guest with a session, and no free credits',
  description:
    'A guest with no device: it starts with 0 credits. Free credits come only from device-check, where DeviceCheck vouches ' +
    'for a genuine device, once per device. The guest can buy (if ALLOW_GUEST_PURCHASES), generate, and be merged into a ' +
    'Sign in with Apple account like any guest. email, phone and password sign-up are not served (400 ERR_4008). ' +
    "Limited with device-check's policy (each call creates an account).",
  security: [],
  request: { body: { content: { 'application/json': { schema: SignUpRequest } }, required: true } },
  responses: {
    200: { description: 'A new guest session', content: { 'application/json': { schema: TokenResponse } } },
    ...errorResponses(400, 415, 429, 503),
  },
});

const UpdateUserRequest = UserAttributes.extend({ nonce: z.string().nullish() }).openapi('UpdateUserRequest');

const updateUserRoute = createRoute({
  operationId: 'authUpdateUser',
  method: 'put',
  path: '/auth/v1/user',
  tags: ['auth'],
  summary: "Update the caller's user_metadata (GoTrue-compatible: supabase-js auth.updateUser({ data }))",
  description:
    'Only data (user_metadata) changes. email, phone and password are refused (400 ERR_4008): an account is a guest or its ' +
    'Sign in with Apple identity, and nothing here may change who it is.',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: UpdateUserRequest } }, required: true } },
  responses: {
    200: { description: 'The updated user', content: { 'application/json': { schema: GoTrueUser } } },
    ...errorResponses(400, 401, 403, 404, 415),
  },
});

/** The identity fields a request may not set: the account is its device or its Apple ID. */
function refuseIdentityChange(body: { email?: string | null; password?: string | null; phone?: string | null }, what: string) {
  for (const field of ['email', 'phone', 'password'] as const) {
    if (body[field] !== undefined && body[field] !== null) throw invalid(`${what} with ${field} is not served: accounts are guests or Sign in with Apple`, field);
  }
}

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

  app.use(signUpRoute.path, s.rateLimits.middleware('device-check'));
  app.openapi(signUpRoute, async (c) => {
    const body = c.req.valid('json');
    refuseIdentityChange(body, 'sign-up');
    const { user, session } = await s.onboarding.signUpAnonymously(body.data ?? {});
    return c.json({ ...session, user: goTrueUser(user) }, 200);
  });

  app.use(userRoute.path, requireUser(authOptions(s), noClaimedUserId));
  app.openapi(updateUserRoute, async (c) => {
    const body = c.req.valid('json');
    refuseIdentityChange(body, 'updating the user');
    const userId = c.get('user').id;
    const user = body.data ? await updateUserMetadata(s.db, userId, body.data) : await findUserById(s.db, userId);
    if (!user) throw notFound('user');
    return c.json(goTrueUser(user), 200);
  });
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
