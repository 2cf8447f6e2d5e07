import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import {
  MODELS_TABLE,
  THEMES_TABLE,
  type ModelRow,
  publicModel,
  queryModels,
  queryThemes,
} from '../db/queries/catalogue.js';
import type { AppEnv } from '../http/context.js';
import { openapiHeadersDocumented } from '../http/router.js';
import { refuseOtherMethods, restPreferences, restQueryOf, restRowsResponse } from '../http/postgrest.js';
import type { Services } from '../services.js';
import { errorResponses } from './schemas.js';
import { pickColumns, restTableRoute } from './rest-schemas.js';

const FieldConfig = <T extends z.ZodTypeAny>(t: T) =>
  z.object({ required: z.boolean().optional(), default: t.optional(), options: z.array(t).optional() });

const RequiredFields = z
  .object({
    requires_prompt: z.boolean().optional(),
    requires_image: z.boolean().optional(),
    requires_settings: z.boolean().optional(),
    settings: z
      .object({
        resolution: FieldConfig(z.string()).optional(),
        aspect_ratio: FieldConfig(z.string()).optional(),
        duration: FieldConfig(z.number().int()).optional(),
      })
      .optional(),
  })
  .openapi('RequiredFields');

const Model = z
  .object({
    id: z.string().openapi({ example: 'veo-3.1-text-to-video' }),
    name: z.string(),
    category: z.enum(['text-to-video', 'image-to-video']),
    description: z.string().nullable(),
    thumbnail_url: z.string().nullable(),
    is_featured: z.boolean(),
    is_active: z.boolean(),
    is_available: z.boolean(),
    pricing_type: z.enum(['per_video', 'per_second']),
    cost_per_generation: z.number().int().openapi({ description: 'Credits at the default settings' }),
    credits_per_second: z.number().int().nullable(),
    has_audio: z.boolean(),
    required_fields: RequiredFields,
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi('Model');

const modelsCacheHeaders = z.object({
  ETag: z.string().openapi({ description: 'Changes whenever the answer does' }),
  'Cache-Control': z.string().openapi({ example: 'public, max-age=300' }),
});

export const GET_MODELS_PATH = '/functions/v1/get-models';

const getModelsRoute = createRoute({
  method: 'get',
  path: GET_MODELS_PATH,
  operationId: 'getModels',
  security: [],
  tags: ['catalogue'],
  summary: 'Available models. Sends an ETag; If-None-Match with it answers 304',
  request: { headers: z.object({ 'if-none-match': z.string().optional() }) },
  responses: {
    200: {
      description: 'Models',
      headers: modelsCacheHeaders.extend({
        'X-Rendio-Simulated-Models': z.string().optional().openapi({
          description: 'Models whose provider has no credentials on this server: the simulator answers them with sample clips',
        }),
      }),
      content: { 'application/json': { schema: z.object({ models: z.array(Model) }) } } },
    304: { description: 'Not modified', headers: modelsCacheHeaders },
    ...errorResponses(401, 429, 503),
  },
});

/** supabase-js `functions.invoke('get-models')` POSTs by default (an empty JSON body): the same answer, ETag and 304 included. */
const getModelsByPostRoute = createRoute({
  ...getModelsRoute,
  method: 'post',
  operationId: 'getModelsViaPost',
  summary: `${getModelsRoute.summary} (POST, as supabase-js functions.invoke sends it; any body is ignored)`,
});

const restModelsRoute = restTableRoute({ path: '/rest/v1/models', operationId: 'listModels', table: MODELS_TABLE, what: 'Available models', tags: ['catalogue'] });
const restThemesRoute = restTableRoute({ path: '/rest/v1/themes', operationId: 'listThemes', table: THEMES_TABLE, what: 'Available themes', tags: ['catalogue'] });

/** If-None-Match matching per RFC 9110 §13.1.2 (weak comparison; lists and *). */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header === etag) return true; // what a client sends back, nearly always
  if (header.trim() === '*') return true;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === bare(etag));
}

export function registerCatalogue(app: OpenAPIHono<AppEnv>, s: Services) {
  // For operators (curl -i), outside the body the app decodes: models answered with sample clips.
  // Worked out once per catalogue snapshot (the providers' credentials are fixed for the process).
  const simulatedOf = new WeakMap<object, string>();
  const simulatedHeader = (rows: ModelRow[]) => {
    let header = simulatedOf.get(rows);
    if (header === undefined) simulatedOf.set(rows, (header = s.providers.simulated(rows).map((m) => m.id).join(',')));
    return header;
  };
  const answerModels = async (c: Context<AppEnv>) => {
    const { body, etag, rows } = await s.catalogue.models();
    const simulated = simulatedHeader(rows);
    if (simulated) c.header('X-Rendio-Simulated-Models', simulated);
    // Short max-age: an admin toggling a model should reach clients within minutes.
    c.header('ETag', etag);
    c.header('Cache-Control', 'public, max-age=300');
    if (etagMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304);
    // Serialised once per catalogue change (the ETag is of these bytes), not per request.
    return c.body(body, 200, { 'Content-Type': 'application/json' });
  };
  openapiHeadersDocumented(app, getModelsRoute, answerModels);
  openapiHeadersDocumented(app, getModelsByPostRoute, answerModels);

  app.openapi(restModelsRoute, async (c) => {
    const q = restQueryOf(c, MODELS_TABLE);
    const { rows, total } = await queryModels(s.db, q, restPreferences(c).count);
    return restRowsResponse(c, rows.map((m) => pickColumns(publicModel(m), q.select)), { offset: q.offset, total });
  });
  refuseOtherMethods(app, restModelsRoute.path, ['GET', 'HEAD']);

  app.openapi(restThemesRoute, async (c) => {
    const q = restQueryOf(c, THEMES_TABLE);
    const { rows, total } = await queryThemes(s.db, q, restPreferences(c).count);
    return restRowsResponse(c, rows, { offset: q.offset, total });
  });
  refuseOtherMethods(app, restThemesRoute.path, ['GET', 'HEAD']);
}
