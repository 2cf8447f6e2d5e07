import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { ApiError } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/**
 * App Store money in (update-credits) and back out (Apple's refund notifications). The shipped app
 * sends {user_id, transaction_id, product_id, receipt_data, purchase_date} and decodes
 * {credits_added, total_credits} (docs/reference/ios-app.md §5); newer clients may send signed_transaction.
 */

// Apple's notifications skip the API's JSON body limit (they carry no apikey); this one bounds them.
const NOTIFICATION_BODY_LIMIT = 512 * 1024;

const UpdateCreditsBody = z
  .object({
    user_id: z.string().optional().openapi({ description: 'Optional; must equal the token subject (legacy mode: names the user)' }),
    transaction_id: z
      .string()
      .regex(/^[0-9]{1,32}$/, 'transaction_id must be the decimal StoreKit transaction id')
      .openapi({ example: '2000000847061981' }),
    product_id: z.string().min(1).max(200).optional().openapi({ description: 'What the app bought; must match what Apple signed' }),
    signed_transaction: z
      .string()
      .max(64 * 1024)
      .optional()
      .openapi({ description: "StoreKit 2 jwsRepresentation: verified locally (Apple's certificate chain) instead of asking Apple" }),
    receipt_data: z
      .string()
      .optional()
      .openapi({ description: 'Sent by the shipped app; ignored (the App Store Server API is the source of truth). Bounded by MAX_JSON_BODY_BYTES' }),
    purchase_date: z.string().optional().openapi({ description: 'Sent by the shipped app; ignored (Apple signs the real one)' }),
  })
  .openapi('UpdateCreditsRequest');

const UpdateCreditsResponse = z
  .object({
    success: z.literal(true),
    transaction_id: z.string(),
    product_id: z.string(),
    credits_added: z.number().int().openapi({ description: 'Credits this transaction gives the caller (also on a replay); 0 when Apple refunded it' }),
    credits_remaining: z.number().int(),
    total_credits: z.number().int().openapi({ description: 'Same as credits_remaining: the shipped app decodes this name' }),
    already_processed: z.boolean().openapi({ description: 'true when this transaction had already been credited to the caller' }),
    refunded: z
      .boolean()
      .openapi({ description: 'Apple refunded this purchase: it is recorded, and its credits were taken back (a reversal by Apple gives them back)' }),
  })
  .openapi('UpdateCreditsResponse');

const updateCreditsRoute = createRoute({
  method: 'post',
  path: '/functions/v1/update-credits',
  operationId: 'updateCredits',
  tags: ['purchases'],
  summary: 'Credit an App Store consumable purchase, verified with Apple',
  description:
    "The server asks Apple (Get Transaction Info: production, then sandbox) or verifies the signed transaction, checks bundle, environment, type and product, and credits the server's configured amount once per transaction id. " +
    "A purchase Apple refunded (its signed transaction says so, or a REFUND notification came first) is recorded and its credits taken back at once (refunded=true, credits_added=0), so a later REFUND_REVERSED restores them. " +
    'Re-sending the same transaction (the app retries until it can finish()) answers the same result with already_processed=true; another user gets 409 ERR_4012. ' +
    'Guests cannot buy (403 ERR_4020: sign in with Apple first) unless the server sets ALLOW_GUEST_PURCHASES=true.',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: UpdateCreditsBody } }, required: true } },
  responses: {
    200: { description: 'Credited (or already credited to you)', content: { 'application/json': { schema: UpdateCreditsResponse } } },
    ...errorResponses(400, 401, 403, 409, 413, 415, 429, 503),
  },
});

const NotificationBody = z.object({ signedPayload: z.string().min(1).max(256 * 1024) }).openapi('AppStoreServerNotification');

const notificationsRoute = createRoute({
  method: 'post',
  path: '/functions/v1/apple-server-notifications',
  operationId: 'receiveAppStoreNotification',
  security: [],
  tags: ['purchases'],
  summary: 'App Store Server Notifications V2 (REFUND, REFUND_REVERSED, CONSUMPTION_REQUEST, TEST)',
  description:
    "Verified with Apple's certificate chain, stored once per notificationUUID; a REFUND takes the credits back (never below zero: the shortfall is recorded), REFUND_REVERSED restores them. 200 once stored, also for a duplicate.",
  request: { body: { content: { 'application/json': { schema: NotificationBody } }, required: true } },
  responses: {
    200: {
      description: 'Stored (or already stored)',
      content: { 'application/json': { schema: z.object({ received: z.literal(true), outcome: z.string() }) } },
    },
    ...errorResponses(400, 413, 415, 503),
  },
});

export function registerPurchases(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(updateCreditsRoute.path, requireUser(authOptions(s)));
  app.use(updateCreditsRoute.path, s.rateLimits.middleware('update-credits'));
  app.openapi(updateCreditsRoute, async (c) => {
    const body = c.req.valid('json');
    // A guest's session comes from its device_id alone: what it bought would be anyone's who knows that id.
    if (c.get('user').isGuest && !s.config.allowGuestPurchases) throw new ApiError('ERR_4020');
    const r = await s.purchases.credit({
      userId: c.get('user').id,
      transactionId: body.transaction_id,
      productId: body.product_id,
      signedTransaction: body.signed_transaction,
    });
    return c.json(
      {
        success: true as const,
        transaction_id: r.transactionId,
        product_id: r.productId,
        credits_added: r.creditsAdded,
        credits_remaining: r.available,
        total_credits: r.available,
        already_processed: r.alreadyProcessed,
        refunded: r.refunded,
      },
      200,
    );
  });

  app.use(
    notificationsRoute.path,
    bodyLimit({
      maxSize: NOTIFICATION_BODY_LIMIT,
      onError: () => {
        throw new ApiError('ERR_4015', { limit_bytes: NOTIFICATION_BODY_LIMIT });
      },
    }),
  );
  app.openapi(notificationsRoute, async (c) => {
    const outcome = await s.purchases.receiveNotification(c.req.valid('json').signedPayload);
    return c.json({ received: true as const, outcome: outcome ?? 'duplicate' }, 200);
  });
}
