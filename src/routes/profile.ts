import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { findUserById, updateUserSettings } from '../db/queries/users.js';
import { invalid, notFound } from '../http/api-error.js';
import { authOptions, requireUser, type ClaimedUserId } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import { refuseOtherMethods, restPreferences, restQueryOf, restRowsResponse, type TableSpec } from '../http/postgrest.js';
import * as ledger from '../ledger/ledger.js';
import type { Services } from '../services.js';
import { registerGetOrPost } from './get-or-post.js';
import { UserIdQuery, bearerSecurity, errorResponses } from './schemas.js';

/** The app's `User` (docs/reference/ios-app.md §2.8): every key required, dates ISO-8601. */
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
  operationId: 'getUserProfile',
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

/** The updated row, with the columns select= picks (all three without it). */
const SettingsRow = z.object({ id: z.string().uuid(), language: z.string(), theme_preference: z.string() }).partial();

const ContentRange = z.object({ 'Content-Range': z.string().openapi({ example: '0-0/*' }) });

/** What the PATCH can return and filter: its own row, named by id=eq.{id}. */
const USERS_PATCH: TableSpec = { selectable: ['id', 'language', 'theme_preference'], filterable: { id: 'uuid' }, orderable: [] };

const patchRoute = createRoute({
  method: 'patch',
  path: '/rest/v1/users',
  operationId: 'updateUser',
  tags: ['users'],
  summary: 'Update language / theme (PostgREST-compatible: ?id=eq.{id}; Prefer: return=representation returns the row)',
  description:
    'Prefer: return=representation answers 200 with the updated row in an array (the shipped app always sends it), or as one ' +
    'object with Accept: application/vnd.pgrst.object+json; return=minimal or no return preference answers 204, as PostgREST ' +
    'does. select= picks among id, language, theme_preference. Only this PATCH is served on users: no other column, no other row.',
  security: bearerSecurity,
  request: {
    query: z.object({
      id: z.string().regex(/^eq\..+$/, 'id must be eq.<user id>').openapi({ example: 'eq.6f9619ff-8b86-d011-b42d-00cf4fc964ff' }),
      select: z.string().optional().openapi({ example: 'id,language,theme_preference' }),
    }),
    headers: z.object({
      prefer: z.string().optional().openapi({ example: 'return=representation' }),
      accept: z.string().optional().openapi({ description: 'application/vnd.pgrst.object+json: the row as one object' }),
    }),
    body: { content: { 'application/json': { schema: SettingsPatch } }, required: true },
  },
  responses: {
    200: {
      description: 'return=representation: exactly one updated row',
      headers: ContentRange,
      content: { 'application/json': { schema: z.array(SettingsRow) }, 'application/vnd.pgrst.object+json': { schema: SettingsRow } },
    },
    204: { description: 'return=minimal (PostgREST\'s default): updated, no body', headers: ContentRange },
    ...errorResponses(400, 401, 403, 404, 406, 415),
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

  // PATCH only: another method is 405 (below) whoever asks, as PostgREST answers before any row is read.
  app.on('PATCH', patchRoute.path, requireUser(authOptions(s), userIdFromRestFilter));
  app.openapi(patchRoute, async (c) => {
    const q = restQueryOf(c, USERS_PATCH);
    const row = await updateUserSettings(s.db, c.get('user').id, c.req.valid('json'));
    if (!row) throw notFound('user');
    if (restPreferences(c).return !== 'representation') return c.body(null, 204, { 'Content-Range': '0-0/*' });
    const byColumn: Record<string, unknown> = row;
    return restRowsResponse(c, [Object.fromEntries(q.select.map((k) => [k, byColumn[k]]))]);
  });
  refuseOtherMethods(app, patchRoute.path, ['PATCH']);
}
