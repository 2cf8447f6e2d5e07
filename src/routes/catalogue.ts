import { createHash } from 'node:crypto';
import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import {
  MODELS_TABLE,
  THEMES_TABLE,
  listAvailableModels,
  publicModel,
  queryModels,
  queryThemes,
} from '../db/queries/catalogue.js';
import type { AppEnv } from '../http/context.js';
import { parseRestQuery } from '../http/postgrest.js';
import type { Services } from '../services.js';
import { errorResponses } from './schemas.js';

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

const getModelsRoute = createRoute({
  method: 'get',
  path: '/functions/v1/get-models',
  tags: ['catalogue'],
  summary: 'Available models. Sends an ETag; If-None-Match with it answers 304',
  request: { headers: z.object({ 'if-none-match': z.string().optional() }) },
  responses: {
    200: {
      description: 'Models',
      headers: z.object({
        'X-Rendio-Simulated-Models': z.string().optional().openapi({
          description: 'Models whose provider has no credentials on this server: the simulator answers them with sample clips',
        }),
      }),
      content: { 'application/json': { schema: z.object({ models: z.array(Model) }) } } },
    304: { description: 'Not modified' },
    ...errorResponses(503),
  },
});

const restRows = z.array(z.record(z.string(), z.unknown()));
const restQueryDoc = z.object({
  select: z.string().optional().openapi({ example: 'id,name,category' }),
  order: z.string().optional().openapi({ example: 'is_featured.desc,name.asc' }),
  limit: z.string().optional(),
  offset: z.string().optional(),
});

const restModelsRoute = createRoute({
  method: 'get',
  path: '/rest/v1/models',
  tags: ['catalogue'],
  summary: 'PostgREST-compatible read of available models: select=, col=eq.value, order=, limit=, offset=',
  description: `Filterable: ${Object.keys(MODELS_TABLE.filterable).join(', ')}. Orderable: ${MODELS_TABLE.orderable.join(', ')}.`,
  request: { query: restQueryDoc.passthrough() },
  responses: { 200: { description: 'Rows', content: { 'application/json': { schema: restRows } } }, ...errorResponses(400) },
});

const restThemesRoute = createRoute({
  method: 'get',
  path: '/rest/v1/themes',
  tags: ['catalogue'],
  summary: 'PostgREST-compatible read of available themes: select=, col=eq.value, order=, limit=, offset=',
  description: `Filterable: ${Object.keys(THEMES_TABLE.filterable).join(', ')}. Orderable: ${THEMES_TABLE.orderable.join(', ')}.`,
  request: { query: restQueryDoc.passthrough() },
  responses: { 200: { description: 'Rows', content: { 'application/json': { schema: restRows } } }, ...errorResponses(400) },
});

/** If-None-Match matching per RFC 9110 §13.1.2 (weak comparison; lists and *). */
function etagMatches(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  if (header.trim() === '*') return true;
  const bare = (t: string) => t.trim().replace(/^W\//, '');
  return header.split(',').some((t) => bare(t) === bare(etag));
}

const pick = (row: Record<string, unknown>, columns: string[]) => Object.fromEntries(columns.map((k) => [k, row[k]]));

export function registerCatalogue(app: OpenAPIHono<AppEnv>, s: Services) {
  app.openapi(getModelsRoute, async (c) => {
    const rows = await listAvailableModels(s.db);
    const models = rows.map(publicModel);
    // For operators (curl -i), outside the body the app decodes: models answered with sample clips.
    const simulated = s.providers.simulated(rows).map((m) => m.id);
    if (simulated.length) c.header('X-Rendio-Simulated-Models', simulated.join(','));
    const body = JSON.stringify({ models });
    const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
    // Short max-age: an admin toggling a model should reach clients within minutes.
    c.header('ETag', etag);
    c.header('Cache-Control', 'public, max-age=300');
    if (etagMatches(c.req.header('if-none-match'), etag)) return c.body(null, 304);
    return c.body(body, 200, { 'Content-Type': 'application/json' }) as never;
  });

  app.openapi(restModelsRoute, async (c) => {
    const q = parseRestQuery(new URL(c.req.url).searchParams, MODELS_TABLE);
    const rows = await queryModels(s.db, q);
    return c.json(rows.map((m) => pick(publicModel(m), q.select)), 200);
  });

  app.openapi(restThemesRoute, async (c) => {
    const q = parseRestQuery(new URL(c.req.url).searchParams, THEMES_TABLE);
    return c.json(await queryThemes(s.db, q), 200);
  });
}
