import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { RefreshRejected } from '../auth/sessions.js';
import type { UserRow } from '../db/queries/users.js';
import { invalid, unauthenticated } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
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

const tokenRoute = createRoute({
  method: 'post',
  path: '/auth/v1/token',
  tags: ['auth'],
  summary: 'Exchange a refresh token for a new session (GoTrue-compatible); the old refresh token stops working',
  description:
    'grant_type=refresh_token rotates the refresh token. Presenting an already-rotated token revokes the whole session ' +
    '(every token descended from the same sign-in).',
  request: {
    query: z.object({ grant_type: z.string().openapi({ example: 'refresh_token' }) }),
    body: {
      content: { 'application/json': { schema: z.object({ refresh_token: z.string().min(1).max(512) }).openapi('RefreshRequest') } },
      required: true,
    },
  },
  responses: {
    200: { description: 'A new session', content: { 'application/json': { schema: TokenResponse } } },
    ...errorResponses(400, 401, 415),
  },
});

const logoutRoute = createRoute({
  method: 'post',
  path: '/auth/v1/logout',
  tags: ['auth'],
  summary: 'End sessions (GoTrue-compatible). scope=global (default) ends every session of the user; local ends this one; others every other one',
  security: bearerSecurity,
  request: { query: z.object({ scope: z.enum(['global', 'local', 'others']).default('global') }) },
  responses: { 204: { description: 'Signed out' }, ...errorResponses(400, 401) },
});

export function registerAuthToken(app: OpenAPIHono<AppEnv>, s: Services) {
  app.openapi(tokenRoute, async (c) => {
    const { grant_type } = c.req.valid('query');
    if (grant_type !== 'refresh_token') throw invalid(`unsupported grant_type "${grant_type}"`, 'grant_type');
    const { refresh_token } = c.req.valid('json');
    try {
      const { tokens, user } = await s.sessions.refresh(refresh_token);
      return c.json({ ...tokens, user: goTrueUser(user) }, 200);
    } catch (err) {
      if (err instanceof RefreshRejected) {
        if (err.reason === 'reused') c.get('log').warn('refresh token reuse detected: session revoked');
        throw unauthenticated(`refresh token ${err.reason}`);
      }
      throw err;
    }
  });

  app.use(logoutRoute.path, requireUser(authOptions(s)));
  app.openapi(logoutRoute, async (c) => {
    const user = c.get('user');
    if (!user.sessionId) throw unauthenticated('logout needs a user access token');
    await s.sessions.logout(user.id, user.sessionId, c.req.valid('query').scope);
    return c.body(null, 204);
  });
}
