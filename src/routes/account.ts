import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { findUserByAppleSub } from '../db/queries/users.js';
import { ApiError, invalid } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { appleIdentity } from './auth-token.js';
import { UserIdQuery, bearerSecurity, errorResponses } from './schemas.js';

/**
 * In-app account deletion (Apple requires it; docs/reference/ios-app.md §2.16) and Sign in with Apple's
 * server-to-server notifications, which delete the account the same way.
 */

const deleteRoute = createRoute({
  method: 'post',
  path: '/functions/v1/delete-account',
  operationId: 'deleteAccount',
  tags: ['users'],
  summary: "Delete the caller's account: personal data, files and sessions go; the anonymised ledger and purchase records stay",
  description: 'Running videos are cancelled and refunded first. The account stops working when this answers; the purge finishes in the queue if it is interrupted.',
  security: bearerSecurity,
  request: { query: UserIdQuery },
  responses: {
    200: { description: 'Deleted', content: { 'application/json': { schema: z.object({ success: z.literal(true) }) } } },
    ...errorResponses(401, 403, 404),
  },
});

const SIWA_BODY_LIMIT = 64 * 1024;

const siwaRoute = createRoute({
  method: 'post',
  path: '/functions/v1/apple-signin-notifications',
  operationId: 'receiveSignInWithAppleNotification',
  security: [],
  tags: ['users'],
  summary: "Sign in with Apple server-to-server notifications (account-delete and consent-revoked delete the account)",
  description:
    'Apple posts a signed JWT (form field `payload`, or JSON {"payload": …}); it is verified with Apple’s keys (issuer, audience = the app). ' +
    'email-disabled / email-enabled are acknowledged. Unknown subjects are acknowledged too.',
  responses: {
    200: { description: 'Handled', content: { 'application/json': { schema: z.object({ received: z.literal(true), outcome: z.string() }) } } },
    ...errorResponses(400, 401, 413, 503),
  },
});

export function registerAccount(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(deleteRoute.path, requireUser(authOptions(s)));
  app.openapi(deleteRoute, async (c) => {
    await s.accountDeletion.delete(c.get('user').id, 'user_request');
    return c.json({ success: true as const }, 200);
  });

  app.openAPIRegistry.registerPath(siwaRoute);
  app.post(
    siwaRoute.path,
    bodyLimit({
      maxSize: SIWA_BODY_LIMIT,
      onError: () => {
        throw new ApiError('ERR_4015', { limit_bytes: SIWA_BODY_LIMIT });
      },
    }),
    async (c) => {
      const type = c.req.header('content-type') ?? '';
      let jwt: unknown;
      const body: unknown = /application\/json/i.test(type) ? await c.req.json().catch(() => undefined) : await c.req.parseBody().catch(() => undefined);
      if (body && typeof body === 'object' && 'payload' in body) jwt = body.payload;
      if (typeof jwt !== 'string' || jwt.length === 0) throw invalid('payload (the signed event JWT) is required', 'payload');

      const event = await appleIdentity(s).serverEvent(jwt);
      if (event.type !== 'account-delete' && event.type !== 'consent-revoked') return c.json({ received: true as const, outcome: 'acknowledged' }, 200);
      const user = await findUserByAppleSub(s.db, event.sub);
      if (!user) return c.json({ received: true as const, outcome: 'unknown_user' }, 200);
      await s.accountDeletion.delete(user.id, `apple_${event.type}`);
      return c.json({ received: true as const, outcome: 'account_deleted' }, 200);
    },
  );
}
