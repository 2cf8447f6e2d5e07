import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono, RouteConfig } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from '../http/context.js';

/**
 * A read function served on GET and POST. The shipped iOS app calls these with GET and its
 * parameters in the query; supabase-js `functions.invoke(name, { body })` defaults to POST with
 * the parameters as a JSON body. Both reach one handler with the same validated parameters.
 */
type GetRoute = RouteConfig & { method: 'get'; request: { query: z.ZodObject } };

export function registerGetOrPost<R extends GetRoute>(
  app: OpenAPIHono<AppEnv>,
  route: R,
  handler: (c: Context<AppEnv>, params: z.output<R['request']['query']>) => Promise<Response>,
): void {
  const schema = route.request.query;
  const { query: _query, ...request } = route.request;
  const postRoute: RouteConfig = createRoute({
    ...(route as RouteConfig),
    method: 'post',
    summary: `${route.summary ?? ''} (POST: the same parameters as a JSON body, as supabase-js functions.invoke sends them)`,
    request: { ...request, body: { content: { 'application/json': { schema } }, required: false } },
  });
  const viaQuery = (c: Context<AppEnv>) => handler(c, (c.req.valid as (t: 'query') => z.output<R['request']['query']>)('query'));
  // An empty POST (invoke without a body) arrives unvalidated as {}: parse it here so defaults apply.
  const viaBody = (c: Context<AppEnv>) => handler(c, schema.parse((c.req.valid as (t: 'json') => unknown)('json') ?? {}) as z.output<R['request']['query']>);
  app.openapi(route, viaQuery as never);
  app.openapi(postRoute, viaBody as never);
}
