import type { OpenAPIHono } from '@hono/zod-openapi';
import { pendingMigrations } from '../db/migrate.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';

/** Liveness, readiness and Prometheus metrics: operational endpoints, outside the API contract. */
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

  app.get('/metrics', async (c) => {
    return c.body(await s.metrics.registry.metrics(), 200, { 'Content-Type': s.metrics.registry.contentType });
  });
}
