import { OpenAPIHono } from '@hono/zod-openapi';
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
