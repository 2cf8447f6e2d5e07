import { createRoute, z, type RouteConfig } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { ModelRow } from '../db/queries/catalogue.js';
import { ApiError, notFound } from '../http/api-error.js';
import { addressKey } from '../http/client-ip.js';
import type { AppEnv } from '../http/context.js';
import { bearerSecurity, errorResponses } from '../routes/schemas.js';
import type { Services } from '../services.js';
import { requireAdminToken } from './middleware.js';
import type { AdminActionRow } from './queries/admins.js';
import { BanBody, ChartRangeQuery, CreditChangeBody, IdempotencyKey, ModelId, ModelPatchBody, SearchQuery, SignInBody, UserId } from './schemas.js';
import { creditsMoved, type Actor } from './service.js';

/**
 * The admin API (/admin/api/*) for the support team's scripts, and the seed's admin functions
 * (functions/v1/admin-refund-credits, admin-toggle-model, admin-user-stats) as aliases. Admin
 * bearer tokens only (src/admin/middleware.ts); every change is audit-logged by AdminService.
 * The aliases name their target user in the body or query: the one place a user id comes from a
 * request, because the caller is an admin acting on that user, never the user.
 */

const tags = ['admin'];
/** Logout takes no body: whatever a script sends with it is ignored, never a 415. */
export const ADMIN_LOGOUT_PATH = '/admin/api/logout';
const security = bearerSecurity;
const any = z.record(z.string(), z.unknown());
/** Generic in the schema, so each handler's c.json(...) is checked against what its route declares. */
const json = <S extends z.ZodType>(schema: S, description: string) => ({ description, content: { 'application/json': { schema } } });

const AdminAction = z
  .object({
    id: z.number().int(),
    admin_id: z.string(),
    admin_email: z.string().optional(),
    action: z.string().openapi({ example: 'grant_credits' }),
    target_type: z.enum(['user', 'model']),
    target_id: z.string(),
    amount: z.number().int().nullable().openapi({ description: 'For a credit change, what was asked' }),
    moved: z.number().int().nullable().openapi({ description: 'For a credit change, what moved: a clawback never takes more than is available, the rest is after.shortfall' }),
    reason: z.string().nullable(),
    request_id: z.string(),
    before: any.nullable(),
    after: any.nullable(),
    created_at: z.string(),
  })
  .openapi('AdminAction');

const CreditChangeResult = z.object({ replayed: z.boolean(), action: AdminAction }).openapi('AdminCreditChangeResult');
const BanResult = z.object({ action: AdminAction });
const ModelChangeResult = z.object({ model: any, action: AdminAction });
const UserParam = z.object({ id: UserId.openapi({ param: { name: 'id', in: 'path' } }) });
const ModelParam = z.object({ id: ModelId.openapi({ param: { name: 'id', in: 'path' } }) });
const IdempotencyHeader = z.object({ 'idempotency-key': IdempotencyKey.optional().openapi({ description: 'Required: a retry with the same key moves nothing and answers the first result' }) });

/**
 * The audit row as the API shows it (the request key and fingerprint are internal). Typed by the
 * response schema: a field the schema promises and the row lacks fails to compile here.
 */
const stripAction = ({ idempotency_key: _k, fingerprint: _f, ...rest }: AdminActionRow): z.infer<typeof AdminAction> => ({ ...rest, moved: creditsMoved(rest) });
const modelChange = (r: { model: ModelRow; action: AdminActionRow }) => ({ model: r.model, action: stripAction(r.action) });

/** Each route's operationId is its key here, prefixed: adminLogin, adminGrant, adminRefundAlias… */
const withOperationIds = <T extends Record<string, RouteConfig>>(byName: T): T =>
  Object.fromEntries(Object.entries(byName).map(([name, route]) => [name, { ...route, operationId: `admin${name[0]!.toUpperCase()}${name.slice(1)}` }])) as T;

/** A read: GET, admin token, a request schema, one answer. */
const readRoute = <P extends string, R extends NonNullable<RouteConfig['request']>, S extends z.ZodType>(path: P, summary: string, request: R, answer: ReturnType<typeof json<S>>, errors: number[]) =>
  createRoute({ method: 'get', path, tags, security, summary, request, responses: { 200: answer, ...errorResponses(...errors) } });

/** Grant and clawback share their shape: a user, a request key, an amount and a reason. */
const creditRoute = (verb: 'grant' | 'clawback', summary: string, answer: string) =>
  createRoute({
    method: 'post',
    path: `/admin/api/users/{id}/credits/${verb}`,
    tags,
    security,
    summary,
    request: { params: UserParam, headers: IdempotencyHeader, body: { content: { 'application/json': { schema: CreditChangeBody } }, required: true } },
    responses: { 200: json(CreditChangeResult, answer), ...errorResponses(400, 401, 403, 404, 409, 422) },
  });

const banRoute = (verb: 'ban' | 'unban', summary: string) =>
  createRoute({
    method: 'post',
    path: `/admin/api/users/{id}/${verb}`,
    tags,
    security,
    summary,
    request: { params: UserParam, body: { content: { 'application/json': { schema: BanBody } }, required: true } },
    responses: { 200: json(BanResult, 'The audit row'), ...errorResponses(400, 401, 403, 404, 409) },
  });

const routes = withOperationIds({
  login: createRoute({
    method: 'post',
    path: '/admin/api/login',
    tags,
    security: [],
    summary: 'Admin sign-in: an API token for scripts (email, password, TOTP code if enabled). Failed attempts lock per email and address.',
    request: { body: { content: { 'application/json': { schema: SignInBody } }, required: true } },
    responses: {
      200: json(z.object({ token: z.string(), token_type: z.literal('bearer'), expires_at: z.string(), admin: z.object({ id: z.string(), email: z.string() }) }), 'An admin API token'),
      ...errorResponses(400, 401, 429),
    },
  }),
  logout: createRoute({ method: 'post', path: ADMIN_LOGOUT_PATH, tags, security, summary: 'Revokes this admin API token', responses: { 204: { description: 'Revoked' }, ...errorResponses(401, 403) } }),
  dashboard: createRoute({ method: 'get', path: '/admin/api/dashboard', tags, security, summary: 'Today: jobs by status, failure rate per provider, credits sold and refunded; open holds', responses: { 200: json(any, 'Dashboard'), ...errorResponses(401, 403) } }),
  charts: readRoute(
    '/admin/api/charts',
    "The dashboard's charts over the last 24 h, 7 or 30 days: jobs started, completed and failed and the failure rate per provider, time to video (p50, p95) per model, credits sold, refunded and clawed back, queue depth",
    { query: z.object({ range: ChartRangeQuery }) },
    json(any, 'Bucket starts and one series per provider, model or kind, one value per bucket'),
    [400, 401, 403],
  ),
  searchUsers: readRoute('/admin/api/users', 'Find users by user or job id (whole or its first 4+ hex digits), device id or email (any case, whole or its start), Apple sub or App Store transaction id; only whole matches when there are any', { query: z.object({ q: SearchQuery }) }, json(z.object({ users: z.array(any) }), 'Matching users with their balance'), [400, 401, 403]),
  user: readRoute('/admin/api/users/{id}', 'A user: account, stats, latest ledger entries, jobs and admin actions', { params: UserParam }, json(any, 'The user'), [400, 401, 403, 404]),
  userStats: readRoute('/admin/api/users/{id}/stats', "A user's jobs by status, success rate, credits bought, spent, refunded, clawed back", { params: UserParam }, json(any, 'Stats'), [400, 401, 403, 404]),
  grant: creditRoute('grant', 'Give credits (through the ledger; reason required; idempotent per Idempotency-Key)', 'The audit row (replayed=true for a retry)'),
  clawback: creditRoute(
    'clawback',
    'Take credits back: never below zero, never credits held by running jobs (the rest is the shortfall)',
    'The audit row (after.shortfall = what could not be taken)',
  ),
  ban: banRoute('ban', 'Ban: every request answers ERR_4014, sessions end, the device cannot onboard a new guest'),
  unban: banRoute('unban', 'Lift a ban (ended sessions stay ended)'),
  models: createRoute({ method: 'get', path: '/admin/api/models', tags, security, summary: 'Every model, available or not, with pricing and provider', responses: { 200: json(z.object({ models: z.array(any) }), 'Models'), ...errorResponses(401, 403) } }),
  updateModel: createRoute({
    method: 'patch',
    path: '/admin/api/models/{id}',
    tags,
    security,
    summary:
      "Make a model the app's active one, enable/disable it, feature it, change its price or catalogue order (get-models and its ETag change). 409 ERR_4028 when the app would be left with no model to show, unless confirm_empty_catalogue",
    request: { params: ModelParam, body: { content: { 'application/json': { schema: ModelPatchBody } }, required: true } },
    responses: { 200: json(ModelChangeResult, 'The model and the audit row'), ...errorResponses(400, 401, 403, 404, 409) },
  }),
  jobTimeline: readRoute('/admin/api/jobs/{id}', "A job's timeline: states, provider ids, ledger steps, webhook events, errors", { params: UserParam }, json(any, 'The job and its events'), [400, 401, 403, 404]),
  failures: readRoute('/admin/api/failures', 'Recent failures by provider (jobs that ended within the last `hours`)', { query: z.object({ hours: z.coerce.number().min(0.1).max(24 * 30).default(24) }) }, json(any, 'Per provider, and the latest failed jobs'), [400, 401, 403]),
  audit: readRoute('/admin/api/audit', 'The audit log, newest first; next page: before=<next_before>', { query: z.object({ before: z.coerce.number().int().positive().optional(), limit: z.coerce.number().int().min(1).max(200).default(50) }) }, json(z.object({ actions: z.array(AdminAction), next_before: z.number().int().nullable() }), 'A page of the audit log'), [400, 401, 403]),
  // The seed's admin functions.
  refundAlias: createRoute({
    method: 'post',
    path: '/functions/v1/admin-refund-credits',
    tags,
    security,
    summary: 'Seed alias of POST /admin/api/users/{id}/credits/grant (user_id in the body)',
    request: {
      headers: IdempotencyHeader,
      body: { content: { 'application/json': { schema: z.object({ user_id: z.uuid() }).extend(CreditChangeBody.shape) } }, required: true },
    },
    responses: { 200: json(CreditChangeResult, 'The audit row'), ...errorResponses(400, 401, 403, 404, 409, 422) },
  }),
  toggleAlias: createRoute({
    method: 'post',
    path: '/functions/v1/admin-toggle-model',
    tags,
    security,
    summary: 'Seed alias of PATCH /admin/api/models/{id}: is_available (default: flip it), is_featured',
    request: {
      body: {
        content: {
          'application/json': {
            schema: z.object({ model_id: ModelId, is_available: z.boolean().optional(), is_featured: z.boolean().optional(), reason: z.string().max(500).optional(), confirm_empty_catalogue: z.boolean().optional() }),
          },
        },
        required: true,
      },
    },
    responses: { 200: json(ModelChangeResult, 'The model and the audit row'), ...errorResponses(400, 401, 403, 404, 409) },
  }),
  statsAlias: readRoute('/functions/v1/admin-user-stats', 'Seed alias of GET /admin/api/users/{id}/stats (user_id in the query)', { query: z.object({ user_id: z.uuid() }) }, json(any, 'Stats'), [400, 401, 403, 404]),
});

/** Every admin API path, for the middleware below (and its tests). */
export const ADMIN_ALIAS_PATHS = [routes.refundAlias.path, routes.toggleAlias.path, routes.statsAlias.path];

const actor = (c: Context<AppEnv>): Actor => ({ adminId: c.get('admin').adminId, requestId: c.get('requestId') });

function requireKey(key: string | undefined): string {
  if (!key) throw new ApiError('ERR_4018');
  return key;
}

export function registerAdminApi(app: OpenAPIHono<AppEnv>, s: Services) {
  const guard = requireAdminToken(s.adminAuth);
  app.use(routes.login.path, s.rateLimits.middleware('admin-login'));
  app.use('/admin/api/*', guard);
  for (const path of ADMIN_ALIAS_PATHS) app.use(path, guard);

  app.openapi(routes.login, async (c) => {
    const body = c.req.valid('json');
    const r = await s.adminAuth.signIn({ ...body, addressKey: addressKey(s.rateLimits.clientIp(c)) }, 'api');
    return c.json({ token: r.token, token_type: 'bearer', expires_at: r.expiresAt, admin: { id: r.adminId, email: r.email } }, 200);
  });

  app.openapi(routes.logout, async (c) => {
    await s.adminAuth.signOut(c.get('admin').sessionId);
    return c.body(null, 204);
  });

  app.openapi(routes.dashboard, async (c) => c.json(await s.admin.dashboard(), 200));
  app.openapi(routes.charts, async (c) => c.json(await s.admin.charts(c.req.valid('query').range), 200));

  app.openapi(routes.searchUsers, async (c) => c.json({ users: await s.admin.searchUsers(c.req.valid('query').q) }, 200));

  app.openapi(routes.user, async (c) => {
    const d = await s.admin.userDetail(c.req.valid('param').id);
    return c.json({ ...d, actions: d.actions.map(stripAction) }, 200);
  });

  app.openapi(routes.userStats, async (c) => c.json(await s.admin.userStats(c.req.valid('param').id), 200));

  const creditChange = (verb: 'grantCredits' | 'clawBackCredits') => async (c: Context<AppEnv>, userId: string, body: { amount: number; reason: string }, key: string | undefined): Promise<z.infer<typeof CreditChangeResult>> => {
    const r = await s.admin[verb](actor(c), { userId, amount: body.amount, reason: body.reason, idempotencyKey: requireKey(key) });
    return { replayed: r.replayed, action: stripAction(r.action) };
  };
  const grant = creditChange('grantCredits');
  const clawback = creditChange('clawBackCredits');

  app.openapi(routes.grant, async (c) => c.json(await grant(c, c.req.valid('param').id, c.req.valid('json'), c.req.valid('header')['idempotency-key']), 200));
  app.openapi(routes.clawback, async (c) => c.json(await clawback(c, c.req.valid('param').id, c.req.valid('json'), c.req.valid('header')['idempotency-key']), 200));

  app.openapi(routes.ban, async (c) => c.json({ action: stripAction(await s.admin.ban(actor(c), c.req.valid('param').id, c.req.valid('json').reason)) }, 200));
  app.openapi(routes.unban, async (c) => c.json({ action: stripAction(await s.admin.unban(actor(c), c.req.valid('param').id, c.req.valid('json').reason)) }, 200));

  app.openapi(routes.models, async (c) => c.json({ models: await s.admin.models() }, 200));
  app.openapi(routes.updateModel, async (c) => c.json(modelChange(await s.admin.updateModel(actor(c), c.req.valid('param').id, c.req.valid('json'))), 200));

  app.openapi(routes.jobTimeline, async (c) => {
    const t = await s.admin.jobTimeline(c.req.valid('param').id);
    if (!t) throw new ApiError('ERR_4007', { resource: 'job' });
    return c.json(t, 200);
  });

  app.openapi(routes.failures, async (c) => c.json(await s.admin.failures(c.req.valid('query').hours), 200));

  app.openapi(routes.audit, async (c) => {
    const q = c.req.valid('query');
    const actions = await s.admin.auditLog(q);
    return c.json({ actions: actions.map(stripAction), next_before: actions.length === q.limit ? (actions.at(-1)?.id ?? null) : null }, 200);
  });

  app.openapi(routes.refundAlias, async (c) => {
    const body = c.req.valid('json');
    return c.json(await grant(c, body.user_id, body, c.req.valid('header')['idempotency-key']), 200);
  });

  app.openapi(routes.toggleAlias, async (c) => {
    const { model_id, is_available, is_featured, reason, confirm_empty_catalogue } = c.req.valid('json');
    // The seed's toggle flips availability when told nothing else.
    const flip = is_available === undefined && is_featured === undefined ? !(await s.admin.model(model_id)).is_available : is_available;
    return c.json(modelChange(await s.admin.updateModel(actor(c), model_id, { is_available: flip, is_featured, reason, confirm_empty_catalogue })), 200);
  });

  app.openapi(routes.statsAlias, async (c) => c.json(await s.admin.userStats(c.req.valid('query').user_id), 200));

  // An /admin/api path no route above matches (`/admin/api/users//ban`: an empty id) is the API's
  // 404; falling through to the console under /admin, a body already read by the API's body
  // limit was read again there (a 500).
  app.all('/admin/api/*', () => {
    throw notFound('route');
  });
}
