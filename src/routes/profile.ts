import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { findUserById, updateUserSettings } from '../db/queries/users.js';
import { invalid, notFound } from '../http/api-error.js';
import { authOptions, requireUser, type ClaimedUserId } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import * as ledger from '../ledger/ledger.js';
import type { Services } from '../services.js';
import { registerGetOrPost } from './get-or-post.js';
import { UserIdQuery, bearerSecurity, errorResponses } from './schemas.js';

/** The app's `User` (ios-app.md §2.8): every key required, dates ISO-8601. */
export const UserProfile = z
  .object({
    id: z.string().uuid(),
    email: z.string().nullable(),
    device_id: z.string().nullable(),
    apple_sub: z.string().nullable(),
    is_guest: z.boolean(),
    tier: z.enum(['free', 'premium']),
    credits_remaining: z.number().int(),
    credits_total: z.number().int(),
    initial_grant_claimed: z.boolean(),
    language: z.string(),
    theme_preference: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('UserProfile');

/** The profile as the app decodes it: the user row with the ledger's numbers. */
export async function userProfile(s: Pick<Services, 'db'>, id: string): Promise<z.infer<typeof UserProfile>> {
  const [user, account, total, granted] = await Promise.all([
    findUserById(s.db, id),
    ledger.getAccount(s.db, id),
    ledger.totalCredited(s.db, id),
    ledger.hasGrant(s.db, id),
  ]);
  if (!user) throw notFound('user');
  return {
    id: user.id,
    email: user.email,
    device_id: user.device_id,
    apple_sub: user.apple_sub,
    is_guest: user.is_guest,
    tier: user.tier,
    credits_remaining: account.available,
    credits_total: total,
    initial_grant_claimed: granted,
    language: user.language,
    theme_preference: user.theme_preference,
    created_at: user.created_at,
    updated_at: user.updated_at,
  };
}

const profileRoute = createRoute({
  method: 'get',
  path: '/functions/v1/get-user-profile',
  tags: ['users'],
  summary: "The caller's profile",
  security: bearerSecurity,
  request: { query: UserIdQuery },
  responses: {
    200: { description: 'Profile', content: { 'application/json': { schema: UserProfile } } },
    ...errorResponses(401, 403, 404),
  },
});

const SettingsPatch = z
  .object({
    language: z.enum(['en', 'tr', 'es']).optional(),
    theme_preference: z.enum(['system', 'light', 'dark']).optional(),
  })
  // PostgREST would let a client write any column RLS allows; we allow exactly these two.
  .strict()
  .refine((p) => p.language !== undefined || p.theme_preference !== undefined, 'send language and/or theme_preference')
  .openapi('SettingsPatch');

const SettingsRow = z.object({ id: z.string().uuid(), language: z.string(), theme_preference: z.string() });

const patchRoute = createRoute({
  method: 'patch',
  path: '/rest/v1/users',
  tags: ['users'],
  summary: 'Update language / theme (PostgREST-compatible: ?id=eq.{id}, returns the updated row in an array)',
  security: bearerSecurity,
  request: {
    query: z.object({ id: z.string().regex(/^eq\..+$/, 'id must be eq.<user id>').openapi({ example: 'eq.6f9619ff-8b86-d011-b42d-00cf4fc964ff' }) }),
    body: { content: { 'application/json': { schema: SettingsPatch } }, required: true },
  },
  responses: {
    200: { description: 'Exactly one updated row', content: { 'application/json': { schema: z.array(SettingsRow) } } },
    ...errorResponses(400, 401, 403, 404, 415),
  },
});

/** rest/v1/users names its row as ?id=eq.{id}. */
const userIdFromRestFilter: ClaimedUserId = async (c) => {
  const raw = c.req.query('id');
  if (!raw) throw invalid('id=eq.<user id> is required', 'id');
  if (!raw.startsWith('eq.')) throw invalid('id must be eq.<user id>', 'id');
  return raw.slice(3);
};

export function registerProfile(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(profileRoute.path, requireUser(authOptions(s)));
  registerGetOrPost(app, profileRoute, async (c) => c.json(await userProfile(s, c.get('user').id), 200));

  app.use(patchRoute.path, requireUser(authOptions(s), userIdFromRestFilter));
  app.openapi(patchRoute, async (c) => {
    const row = await updateUserSettings(s.db, c.get('user').id, c.req.valid('json'));
    if (!row) throw notFound('user');
    return c.json([row], 200);
  });
}
