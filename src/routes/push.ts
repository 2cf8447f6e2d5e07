import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { deletePushToken, upsertPushToken } from '../db/queries/push.js';
import { notFound } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import { supportedLanguage } from '../errors/i18n.js';
import type { Services } from '../services.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/**
 * The device's APNs token, so the queue can tell the user when a video is ready or failed
 * (docs/ARCHITECTURE.md, Push notifications). A user has one token per device; a token has one
 * owner: registering it again moves it to the caller (the phone changed hands, or signed in anew).
 */

const Token = z
  .string()
  .regex(/^[0-9a-fA-F]{64,200}$/, 'token must be the APNs device token as hex (64 to 200 hex digits)')
  .transform((t) => t.toLowerCase())
  .openapi({ description: 'The device token from didRegisterForRemoteNotificationsWithDeviceToken, hex-encoded', example: 'a1'.repeat(32) });

const UserIdInBody = z.string().optional().openapi({ description: 'Optional; must equal the token subject (legacy mode: names the user)' });

const RegisterBody = z
  .object({
    token: Token,
    environment: z.enum(['sandbox', 'production']).openapi({ description: "The app's aps-environment entitlement: development builds get sandbox tokens" }),
    locale: z
      .string()
      .max(35)
      .optional()
      .openapi({ description: "The device's language (e.g. tr-TR); pushes use it when it is en, tr or es, else the profile's language", example: 'tr-TR' }),
    user_id: UserIdInBody,
  })
  .openapi('RegisterPushTokenRequest');

const UnregisterBody = z.object({ token: Token, user_id: UserIdInBody }).openapi('UnregisterPushTokenRequest');

const registerRoute = createRoute({
  method: 'post',
  path: '/functions/v1/register-push-token',
  operationId: 'registerPushToken',
  tags: ['users'],
  summary: "Register this device's APNs token for video ready/failed notifications",
  description: 'Idempotent. A token another user registered before moves to the caller. Logout, account deletion and 410 answers from APNs remove it.',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: RegisterBody } }, required: true } },
  responses: {
    200: { description: 'Registered', content: { 'application/json': { schema: z.object({ success: z.literal(true) }) } } },
    ...errorResponses(400, 401, 403, 404),
  },
});

const unregisterRoute = createRoute({
  method: 'post',
  path: '/functions/v1/unregister-push-token',
  operationId: 'unregisterPushToken',
  tags: ['users'],
  summary: "Stop notifications to this device (the caller's token only)",
  description: 'Idempotent: removed tells whether the caller had the token.',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: UnregisterBody } }, required: true } },
  responses: {
    200: { description: 'Unregistered', content: { 'application/json': { schema: z.object({ success: z.literal(true), removed: z.boolean() }) } } },
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerPush(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(registerRoute.path, requireUser(authOptions(s)));
  app.openapi(registerRoute, async (c) => {
    const { token, environment, locale } = c.req.valid('json');
    const user = c.get('user');
    const registered = await upsertPushToken(s.db, {
      token,
      userId: user.id,
      sessionId: user.sessionId,
      environment,
      language: supportedLanguage(locale) ?? null,
    });
    // The account ended (deleted, merged) between the auth check and the insert.
    if (!registered) throw notFound('user');
    return c.json({ success: true as const }, 200);
  });

  app.use(unregisterRoute.path, requireUser(authOptions(s)));
  app.openapi(unregisterRoute, async (c) => {
    const removed = await deletePushToken(s.db, c.get('user').id, c.req.valid('json').token);
    return c.json({ success: true as const, removed }, 200);
  });
}
