import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import * as ledger from '../ledger/ledger.js';
import type { Services } from '../services.js';
import { registerGetOrPost } from './get-or-post.js';
import { UserIdQuery, bearerSecurity, errorResponses } from './schemas.js';

const CreditsResponse = z
  .object({
    credits_remaining: z.number().int().openapi({ description: 'Credits available to spend: balance minus credits held by running jobs' }),
    balance: z.number().int(),
    held: z.number().int(),
    debt: z.number().int().openapi({
      description:
        'Credits still owed after a refund or clawback found them held by running jobs: paid first from every later release and credit. ' +
        'While it is above 0, credits_remaining is 0 (balance equals held)',
    }),
  })
  .openapi('Credits');

const route = createRoute({
  method: 'get',
  path: '/functions/v1/get-user-credits',
  operationId: 'getUserCredits',
  tags: ['credits'],
  summary: "The caller's spendable credits",
  security: bearerSecurity,
  request: { query: UserIdQuery },
  responses: {
    200: { description: 'Credits', content: { 'application/json': { schema: CreditsResponse } } },
    ...errorResponses(401, 403, 404),
  },
});

export function registerCredits(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(route.path, requireUser(authOptions(s)));
  registerGetOrPost(app, route, async (c) => {
    const account = await ledger.getAccount(s.db, c.get('user').id);
    return c.json({ credits_remaining: account.available, balance: account.balance, held: account.held, debt: account.debt }, 200);
  });
}
