import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { pendingMigrations } from '../db/migrate.js';
import type { AppEnv } from '../http/context.js';
import { requireOperatorToken } from '../http/middleware.js';
import type { Services } from '../services.js';
import { errorResponses } from './schemas.js';

// Documented in /openapi.json like every route (tag "operations"); served by plain handlers because
// their answers are for probes and Prometheus, not for the app.
const healthRoute = createRoute({
  method: 'get',
  path: '/health',
  operationId: 'getHealth',
  security: [],
  tags: ['operations'],
  summary: 'Liveness: the process answers (no database access); for restart probes',
  responses: { 200: { description: 'Alive', content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } }, ...errorResponses(429) },
});

const readyRoute = createRoute({
  method: 'get',
  path: '/ready',
  operationId: 'getReadiness',
  security: [],
  tags: ['operations'],
  summary: 'Readiness: the database answers and no migration is pending; for load balancers',
  responses: {
    200: { description: 'Ready', content: { 'application/json': { schema: z.object({ status: z.literal('ready') }) } } },
    503: {
      description: 'Not ready: database unreachable or migrations pending',
      content: {
        'application/json': {
          schema: z.object({ status: z.literal('not_ready'), reason: z.string(), pending: z.array(z.string()).optional() }),
        },
      },
    },
    ...errorResponses(429),
  },
});

const metricsRoute = createRoute({
  method: 'get',
  path: '/metrics',
  operationId: 'getMetrics',
  tags: ['operations'],
  summary: 'Prometheus metrics; on this port only with METRICS_TOKEN (bearer), else 404 (METRICS_PORT serves them on loopback)',
  security: [{ metricsToken: [] }],
  responses: {
    200: { description: 'Prometheus text exposition', content: { 'text/plain': { schema: z.string() } } },
    ...errorResponses(401, 404),
  },
});

/** Prometheus exposition of this process's registry (the public port's guarded route and METRICS_PORT's). */
export const serveMetrics = (s: Pick<Services, 'metrics'>) => async (c: Context) =>
  c.body(await s.metrics.registry.metrics(), 200, { 'Content-Type': s.metrics.registry.contentType });

/** Liveness, readiness (public) and Prometheus metrics (guarded): operational endpoints, outside the API contract. */
export function registerHealth(app: OpenAPIHono<AppEnv>, s: Services) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'metricsToken', {
    type: 'http',
    scheme: 'bearer',
    description: 'The operator token METRICS_TOKEN (not a user token)',
  });
  for (const route of [healthRoute, readyRoute, metricsRoute]) app.openAPIRegistry.registerPath(route);

  app.get('/health', (c) => c.json({ status: 'ok' }));

  app.get('/ready', async (c) => {
    try {
      const pending = await pendingMigrations(s.db);
      if (pending.length) return c.json({ status: 'not_ready', reason: 'migrations pending', pending }, 503);
      return c.json({ status: 'ready' });
    } catch {
      return c.json({ status: 'not_ready', reason: 'database unreachable' }, 503);
    }
  });

  // Metrics name routes, pools and error rates: not for the public. On this port only with
  // METRICS_TOKEN; otherwise they live on the loopback METRICS_PORT (src/server.ts) or nowhere.
  app.get('/metrics', requireOperatorToken(s.config.metrics.token), serveMetrics(s));
}
