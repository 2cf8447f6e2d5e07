import { createRoute, z } from '@hono/zod-openapi';
import type { TableSpec } from '../http/postgrest.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/** The OpenAPI side of rest/v1's read-only tables (catalogue.ts, videos.ts). */

const restRow = z.record(z.string(), z.unknown());
/** An array; with .single() (Accept: application/vnd.pgrst.object+json) the one row itself. */
const restRowsContent = {
  'application/json': { schema: z.array(restRow) },
  'application/vnd.pgrst.object+json': { schema: restRow },
};
const restRowsHeaders = z.object({
  'Content-Range': z.string().openapi({ description: 'first-last/total, or */total without rows; the total is * unless Prefer: count=… asked for it' }),
  'Preference-Applied': z.string().optional().openapi({ description: 'count=exact when a count was asked for' }),
});
const restQueryDoc = z.object({
  select: z.string().optional().openapi({ example: 'id,name,category' }),
  order: z.string().optional().openapi({ example: 'is_featured.desc,name.asc' }),
  limit: z.string().optional(),
  offset: z.string().optional(),
});
const restReadHeaders = z.object({
  accept: z.string().optional().openapi({ description: 'application/vnd.pgrst.object+json (supabase-js .single()): one object, else 406 PGRST116' }),
  prefer: z.string().optional().openapi({ description: 'count=exact (planned and estimated are answered exactly): the total in Content-Range' }),
  range: z.string().optional().openapi({ description: 'Rows first-last (PostgREST\'s Range header), intersected with limit/offset', example: '0-9' }),
  'range-unit': z.string().optional().openapi({ example: 'items' }),
});
const restRowsResponses = {
  200: { description: 'Rows (Content-Range: first-last/total or */total)', headers: restRowsHeaders, content: restRowsContent },
  206: { description: 'With a count, when the rows are only part of the total', headers: restRowsHeaders, content: restRowsContent },
  ...errorResponses(400, 406),
};
const REST_SYNTAX =
  'PostgREST-compatible read (also HEAD): select=, col=[not.]op.value with op eq|neq|gt|gte|lt|lte|like|ilike|in.(a,b)|is.null|true|false, ' +
  '[not.]or=(…)/and=(…) over the same filters, order=, limit=, offset=, or the Range header (Range: 0-9, Range-Unit: items)';

/** A read-only rest/v1 table: GET (and HEAD) with PostgREST's query syntax over the table's whitelist. */
export const restTableRoute = <P extends string>(o: { path: P; operationId: string; table: TableSpec; what: string; tags: string[]; security?: typeof bearerSecurity; note?: string }) =>
  createRoute({
    method: 'get',
    path: o.path,
    operationId: o.operationId,
    tags: o.tags,
    summary: `${o.what}. ${REST_SYNTAX}`,
    description:
      `Filterable: ${Object.keys(o.table.filterable).join(', ')}. Orderable: ${o.table.orderable.join(', ')}. ` +
      `Read-only: other methods answer 405 (PGRST117).${o.note ? ` ${o.note}` : ''}`,
    // Public unless the table is the caller's own rows.
    security: o.security ?? [],
    request: { query: restQueryDoc.passthrough(), headers: restReadHeaders },
    responses: o.security ? { ...restRowsResponses, ...errorResponses(401, 403) } : restRowsResponses,
  });

/** The columns a select= asked for, in its order. */
export const pickColumns = (row: Record<string, unknown>, columns: string[]): Record<string, unknown> => Object.fromEntries(columns.map((k) => [k, row[k]]));

