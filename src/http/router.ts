import { OpenAPIHono, type RouteConfig, type RouteConfigToTypedResponse } from '@hono/zod-openapi';
import type { Handler } from 'hono';
import { ApiError } from './api-error.js';
import type { AppEnv } from './context.js';

/** Every route group is an OpenAPIHono whose validation failures become ERR_4008 with the field. */
export function createRouter(): OpenAPIHono<AppEnv> {
  return new OpenAPIHono<AppEnv>({
    defaultHook: (result) => {
      if (!result.success) {
        const issue = result.error.issues[0];
        const field = issue?.path.join('.');
        throw new ApiError('ERR_4008', {
          reason: issue ? `${field ? field + ': ' : ''}${issue.message}` : 'invalid input',
          ...(field ? { field } : {}),
          location: result.target,
        });
      }
    },
  });
}

/**
 * A route whose request headers are documented but not validated: each is an optional string the
 * handler reads itself, so a validator could refuse nothing, and it would build a record of every
 * header on every request (get-models' If-None-Match: a tenth of a 304's CPU with the rest).
 */
export function openapiHeadersDocumented<R extends RouteConfig>(
  app: OpenAPIHono<AppEnv>,
  route: R,
  handler: Handler<AppEnv, string, Record<string, never>, RouteConfigToTypedResponse<R> | Response | Promise<RouteConfigToTypedResponse<R> | Response>>,
): void {
  app.openAPIRegistry.registerPath(route);
  const { headers: _documented, ...request } = route.request ?? {};
  app.openapi({ ...route, request, hide: true }, handler as never);
}
