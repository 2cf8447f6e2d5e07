import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { ApiError } from '../http/api-error.js';
import type { AppEnv } from '../http/context.js';
import { REALTIME_PATH } from '../realtime/server.js';
import { errorResponses } from './schemas.js';

const websocketRoute = createRoute({
  method: 'get',
  path: REALTIME_PATH,
  operationId: 'connectRealtime',
  security: [],
  tags: ['realtime'],
  summary: 'Supabase Realtime (WebSocket, Phoenix protocol): a job\'s changes as postgres_changes UPDATEs',
  description:
    'Open with `Upgrade: websocket` (src/realtime, docs/ARCHITECTURE.md "Realtime"). Query: `apikey` (the anon key, ' +
    'checked as on REST when ANON_KEY is set), `vsn` 1.0.0 (JSON objects, the default) or 2.0.0 (arrays). Join ' +
    '`realtime:<name>` with `config.postgres_changes` = [{event: UPDATE|DELETE|*, schema: public, table: video_jobs, ' +
    'filter: job_id=eq.<id>}] and `access_token` (a user token; in legacy mode the anon key). The reply lists each ' +
    'binding with its `id`; each change of the job arrives as `postgres_changes` with `record` = the job as ' +
    'get-video-status returns it. Anything else is refused with ERR_4040, too many channels with ERR_4041. ' +
    'A plain GET (no upgrade) is this 400.',
  request: {
    query: z.object({
      apikey: z.string().optional(),
      vsn: z.enum(['1.0.0', '2.0.0']).optional(),
    }),
  },
  responses: {
    101: { description: 'Switching Protocols: the socket speaks Phoenix vsn 1.0.0 or 2.0.0' },
    ...errorResponses(400, 401),
  },
});

/** Only the documentation and the answer to a GET without upgrade: the socket itself is src/realtime/server.ts. */
export function registerRealtime(app: OpenAPIHono<AppEnv>) {
  app.openapi(websocketRoute, () => {
    throw new ApiError('ERR_4040', { reason: 'connect with a WebSocket (Upgrade: websocket)' });
  });
}
