import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { ApiError } from './http/api-error.js';
import type { AppEnv } from './http/context.js';
import { exceptCallbacks, requestContext, supabaseSurface } from './http/middleware.js';
import { createErrorHandler } from './http/on-error.js';
import { createRouter } from './http/router.js';
import { ADMIN_ALIAS_PATHS, ADMIN_LOGOUT_PATH, registerAdminApi } from './admin/api.js';
import { registerAdminConsole } from './admin/console/handlers.js';
import { adminReachableOnlyFrom } from './admin/middleware.js';
import { registerAccount } from './routes/account.js';
import { LOGOUT_PATH, registerAuthToken } from './routes/auth-token.js';
import { GET_MODELS_PATH, registerCatalogue } from './routes/catalogue.js';
import { registerCredits } from './routes/credits.js';
import { registerDeviceCheck } from './routes/device-check.js';
import { registerDocs } from './routes/docs.js';
import { registerHealth, serveMetrics } from './routes/health.js';
import { registerMergeGuest } from './routes/merge-guest.js';
import { registerProfile } from './routes/profile.js';
import { registerPurchases } from './routes/purchases.js';
import { registerPush } from './routes/push.js';
import { registerRealtime } from './routes/realtime.js';
import { registerStorage } from './routes/storage.js';
import { registerVideos } from './routes/videos.js';
import { registerWebhooks } from './routes/webhooks.js';
import type { Services } from './services.js';

/**
 * What one server serves: everything (the default), or, with ADMIN_PORT, the app's API on PORT
 * ('public') and the console and admin API on ADMIN_PORT ('admin'); src/server.ts chooses.
 */
export type AppSurface = 'all' | 'public' | 'admin';

/** Every path the admin routes live under ('/admin/*' matches '/admin' too): the console, the admin API, the seed's aliases. */
const ADMIN_PATHS = ['/admin/*', ...ADMIN_ALIAS_PATHS];

/**
 * POST routes that take no body: the JSON-only rule does not apply to them (src/http/middleware.ts).
 * get-models answers POST for supabase-js, and a bare `curl -X POST` (no Content-Type) is as good.
 */
const BODILESS_ROUTES: ReadonlySet<string> = new Set([LOGOUT_PATH, ADMIN_LOGOUT_PATH, GET_MODELS_PATH]);

/** Builds the HTTP app from its parts. No I/O here: tests build one per database. */
export function buildApp(s: Services, surface: AppSurface = 'all') {
  const servesApi = surface !== 'admin';
  const servesAdmin = surface !== 'public';
  const app = createRouter();
  app.onError(createErrorHandler(s.errorLog, s.config.maxJsonBodyBytes));
  app.notFound(() => {
    throw new ApiError('ERR_4007', { resource: 'route' });
  });
  app.use('*', requestContext(s.log, s.metrics, s.config.accessLog, s.config.tracing !== undefined));
  // ADMIN_ALLOWED_CIDRS: ahead of everything else that could answer (CORS, the apikey and JSON
  // checks, the sign-in page), so other addresses cannot tell the admin routes exist.
  if (servesAdmin && s.config.admin.allowedCidrs.length > 0) {
    const reachable = adminReachableOnlyFrom(s.config.admin.allowedCidrs, s.rateLimits.clientIp);
    for (const path of ADMIN_PATHS) app.use(path, reachable);
  }

  // Browsers (supabase-js in a web app) on the configured origins only. A preflight carries no
  // apikey, so it is answered here, before the apikey check; the headers are those supabase-js sends.
  if (s.config.corsOrigins.length > 0) {
    app.use(
      '*',
      cors({
        origin: s.config.corsOrigins,
        allowMethods: ['GET', 'HEAD', 'POST', 'PATCH', 'PUT', 'DELETE', 'OPTIONS'],
        allowHeaders: ['authorization', 'apikey', 'content-type', 'x-client-info', 'idempotency-key', 'prefer', 'range', 'accept-profile', 'content-profile', 'x-supabase-api-version', 'accept-language', 'x-request-id'],
        exposeHeaders: ['x-request-id', 'content-range', 'x-idempotent-replay', 'retry-after', 'content-language', 'ratelimit', 'ratelimit-policy'],
        maxAge: 600,
      }),
    );
  }

  // The ceiling on everything one address sends (after CORS, so a browser can read a 429); callbacks
  // are authenticated by signature and come from a provider's few addresses, so they are not counted.
  app.use('*', exceptCallbacks(s.rateLimits.middleware('global')));

  // The Supabase-shaped API surface (src/http/middleware.ts supabaseSurface): apikey, JSON-only
  // bodies, bounded size, text the database can store. The admin API is not part of it: admin
  // tokens, no apikey.
  for (const prefix of ['/functions/v1/*', '/rest/v1/*', '/auth/v1/*', '/admin/api/*']) {
    const apiKey = prefix !== '/admin/api/*';
    app.use(prefix, supabaseSurface({ acceptedAnonKeys: s.config.acceptedAnonKeys, apiKey, bodiless: BODILESS_ROUTES, maxJsonBodyBytes: s.config.maxJsonBodyBytes }));
  }

  if (servesApi) {
    // auth
    registerDeviceCheck(app, s);
    registerAuthToken(app, s);
    registerMergeGuest(app, s);
    // users and credits
    registerProfile(app, s);
    registerCredits(app, s);
    registerPurchases(app, s);
    registerAccount(app, s);
    registerPush(app, s);
    // catalogue
    registerCatalogue(app, s);
    // videos and their files
    registerVideos(app, s);
    registerStorage(app, s);
    registerRealtime(app);
    // webhooks
    registerWebhooks(app, s);
  }
  if (servesAdmin) {
    // admin (API for scripts, console for people; both through src/admin/service.ts)
    registerAdminApi(app, s);
    registerAdminConsole(app, s);
  }
  if (servesApi) {
    // operations
    registerHealth(app, s);
    registerDocs(app);
  }
  return app;
}

/** What the loopback-only METRICS_PORT serves (src/server.ts): /metrics without a token, nothing else. */
export function buildMetricsApp(s: Pick<Services, 'metrics'>) {
  return new Hono().get('/metrics', serveMetrics(s));
}

export type App = ReturnType<typeof buildApp>;
export type { AppEnv };
