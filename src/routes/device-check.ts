import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { addressKey } from '../http/client-ip.js';
import { deviceIdFromBody } from '../http/rate-limit.js';
import { errorResponses } from './schemas.js';

// The app sends StableID: an uppercase UUID or an App Store appTransactionID (not documented as a UUID).
const DeviceCheckBody = z
  .object({
    device_id: z
      .string()
      .regex(/^[A-Za-z0-9._:-]{1,200}$/, 'device_id must be 1-200 letters, digits or . _ : -')
      .openapi({ example: '6F9619FF-8B86-D011-B42D-00CF4FC964FF' }),
    device_token: z
      .string()
      .min(16, 'device_token is too short')
      .max(16_384, 'device_token is too long')
      .regex(/^[A-Za-z0-9+/_-]+={0,2}$/, 'device_token must be base64')
      .openapi({ description: 'base64 of DCDevice.generateToken()' }),
  })
  .openapi('DeviceCheckRequest');

const SessionFields = {
  access_token: z.string(),
  refresh_token: z.string(),
  token_type: z.literal('bearer'),
  expires_in: z.number().int(),
  expires_at: z.number().int(),
};

const DeviceCheckResponse = z
  .object({
    success: z.literal(true),
    user_id: z.string().uuid(),
    credits_remaining: z.number().int(),
    is_new: z.boolean(),
    initial_grant_given: z.boolean(),
    ...SessionFields,
  })
  .openapi('DeviceCheckResponse');

const route = createRoute({
  method: 'post',
  path: '/functions/v1/device-check',
  operationId: 'deviceCheck',
  security: [],
  tags: ['auth'],
  summary: 'Guest onboarding: verify the device with Apple DeviceCheck, create the guest with its free credits, start a session',
  description:
    'Idempotent per device_id: an existing device gets its user back with a fresh session (is_new=false). ' +
    'The free credits are granted at most once per device_id and per physical device (DeviceCheck bit0).',
  request: { body: { content: { 'application/json': { schema: DeviceCheckBody } }, required: true } },
  responses: {
    200: { description: 'The guest and a session', content: { 'application/json': { schema: DeviceCheckResponse } } },
    ...errorResponses(400, 403, 413, 415, 429, 503),
  },
});

export function registerDeviceCheck(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(route.path, s.rateLimits.middleware('device-check', deviceIdFromBody));
  app.openapi(route, async (c) => {
    const { device_id, device_token } = c.req.valid('json');
    const r = await s.onboarding.onboard(device_id, device_token, addressKey(s.rateLimits.clientIp(c)));
    return c.json(
      {
        success: true as const,
        user_id: r.user.id,
        credits_remaining: r.available,
        is_new: r.isNew,
        initial_grant_given: r.granted,
        ...r.session,
      },
      200,
    );
  });
}
