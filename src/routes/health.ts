import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { pendingMigrations } from '../db/migrate.js';
import type { AppEnv } from '../http/context.js';
import { requireOperatorToken } from '../http/middleware.js';
import type { Services } from '../services.js';

/** Prometheus exposition of this process's registry (the public port's guarded route and METRICS_PORT's). */
export const serveMetrics = (s: Pick<Services, 'metrics'>) => async (c: Context) =>
  c.body(await s.metrics.registry.metrics(), 200, { 'Content-Type': s.metrics.registry.contentType });

/** Liveness, readiness (public) and Prometheus metrics (guarded): operational endpoints, outside the API contract. */
export function registerHealth(app: OpenAPIHono<AppEnv>, s: Services) {
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
