import { z } from '@hono/zod-openapi';

/** Schemas shared by several route files. */

export const ErrorSchema = z
  .object({
    error: z.object({
      code: z.string().openapi({ example: 'ERR_4001' }),
      message: z.string().openapi({ example: 'Not enough credits: 8 needed, 2 available.' }),
      details: z.record(z.string(), z.unknown()).optional(),
      request_id: z.string(),
    }),
  })
  .openapi('Error');

export const errorResponses = (...statuses: number[]) =>
  Object.fromEntries(
    statuses.map((s) => [s, { description: 'Error (the code table is on /docs)', content: { 'application/json': { schema: ErrorSchema } } }]),
  );

export const UserIdQuery = z.object({
  user_id: z.string().optional().openapi({ description: 'Optional; must equal the token subject (legacy mode: names the user)' }),
});

export const bearerSecurity = [{ bearerAuth: [] }];
