import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono, RouteConfig, RouteHandler } from '@hono/zod-openapi';
import type { Context } from 'hono';
import type { AppEnv } from '../http/context.js';

/**
 * A read function served on GET and POST. The shipped iOS app calls these with GET and its
 * parameters in the query; supabase-js `functions.invoke(name, { body })` defaults to POST with
 * the parameters as a JSON body. Both reach one handler with the same validated parameters.
 */
type GetRoute = RouteConfig & { method: 'get'; request: { query: z.ZodObject } };

/**
 * The handler's answer is checked against the route's declared responses here, where R is the
 * caller's concrete route; the registration below only sees RouteConfig (zod-openapi's types cannot
 * follow a generic route through `openapi()`), so this signature is where the check happens.
 */
type Answer<R extends RouteConfig> = Promise<Response> & ReturnType<RouteHandler<R, AppEnv>>;

export function registerGetOrPost<Q extends z.ZodObject, R extends GetRoute>(
  app: OpenAPIHono<AppEnv>,
  route: R & { request: { query: Q } },
  handler: (c: Context<AppEnv>, params: z.output<Q>) => Answer<R>,
): void {
  const schema = route.request.query;
  const get: RouteConfig = route;
  const { query: _query, ...request } = route.request;
  const post = createRoute({
    ...get,
    method: 'post',
    ...(route.operationId ? { operationId: `${route.operationId}ViaPost` } : {}),
    summary: `${route.summary ?? ''} (POST: the same parameters as a JSON body, as supabase-js functions.invoke sends them)`,
    request: { ...request, body: { content: { 'application/json': { schema } }, required: false } },
  });
  // The validators zod-openapi builds from route.request give exactly these inputs.
  app.openapi<RouteConfig, { out: { query: z.output<Q> } }>(get, (c) => handler(c, c.req.valid('query')));
  // An empty POST (invoke without a body) arrives unvalidated as {}: parse it here so defaults apply.
  app.openapi<RouteConfig, { out: { json: unknown } }>(post, (c) => handler(c, schema.parse(c.req.valid('json') ?? {})));
}
