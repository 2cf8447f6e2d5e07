import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { ApiError, notFound, unauthenticated } from '../http/api-error.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { WebhookRejected } from '../providers/types.js';
import { errorResponses } from './schemas.js';

const route = createRoute({
  method: 'post',
  path: '/functions/v1/provider-webhook/{provider}',
  operationId: 'receiveProviderWebhook',
  security: [],
  tags: ['webhooks'],
  summary: "A provider's completion callback (fal). Signature verified on the raw bytes before parsing; replays change nothing",
  request: {
    params: z.object({ provider: z.string() }),
    // Ours, in the callback URL we give the provider: which job and submit attempt the request is
    // (so a request whose submit answer was lost is recognised). Not trusted alone: only an attempt
    // on record without a request id can be claimed, and only by a signed callback.
    query: z.object({ job_id: z.string().uuid().optional(), attempt: z.coerce.number().int().min(0).optional() }),
  },
  responses: {
    200: { description: 'Stored (or already stored)', content: { 'application/json': { schema: z.object({ received: z.literal(true), outcome: z.string() }) } } },
    ...errorResponses(401, 404, 413),
  },
});

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export function registerWebhooks(app: OpenAPIHono<AppEnv>, s: Services) {
  app.openAPIRegistry.registerPath(route);
  app.post(
    '/functions/v1/provider-webhook/:provider',
    bodyLimit({
      maxSize: 1024 * 1024,
      onError: () => {
        throw new ApiError('ERR_4015', { limit_bytes: 1024 * 1024 });
      },
    }),
    async (c) => {
      const name = c.req.param('provider');
      let adapter;
      try {
        adapter = s.providers.for(name);
      } catch {
        throw notFound('provider');
      }
      if (!adapter.verifyWebhook) throw notFound('provider webhook');
      const raw = await c.req.text();
      let event;
      try {
        event = await adapter.verifyWebhook(raw, c.req.raw.headers);
      } catch (err) {
        if (err instanceof WebhookRejected) throw unauthenticated(`webhook rejected: ${err.message}`);
        throw err;
      }
      const jobId = c.req.query('job_id');
      const attempt = Number(c.req.query('attempt'));
      const origin = jobId && UUID.test(jobId) && Number.isSafeInteger(attempt) && attempt >= 0 ? { jobId, attempt } : undefined;
      const outcome = await s.jobs.receiveWebhook(name, event, origin);
      return c.json({ received: true as const, outcome }, 200);
    },
  );
}
