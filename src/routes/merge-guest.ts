import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { findUserByDeviceId, findUserById } from '../db/queries/users.js';
import { forbidden, invalid, notFound } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import type { Services } from '../services.js';
import { appleIdentity } from './auth-token.js';
import { UserProfile, userProfile } from './profile.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/**
 * The shipped app's Sign in with Apple (docs/reference/ios-app.md §2.15): {device_id, apple_sub} after the native
 * sheet; it decodes {success, user}. Here the identity token is required and verified (the old
 * backend trusted apple_sub); only the opt-in legacy mode accepts the app's request without one.
 * device_id names the guest: its device id, or its user id (the app sends that when the profile
 * was not loaded, §4.8a).
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const MergeBody = z
  .object({
    device_id: z.string().min(1).max(200),
    apple_sub: z.string().min(10).max(200).regex(/^[a-zA-Z0-9._-]+$/, 'apple_sub has unexpected characters'),
    identity_token: z.string().min(1).max(16_384).optional().openapi({ description: 'Required unless the server runs the legacy anon-key mode' }),
    nonce: z.string().min(1).max(512).optional(),
  })
  .openapi('MergeGuestRequest');

const MergeResponse = z
  .object({
    success: z.literal(true),
    user: UserProfile,
    merged: z.enum(['none', 'became', 'merged', 'already_merged']).openapi({ description: 'What happened to the guest' }),
    // A session only when the Apple identity was verified (never for legacy's unverified apple_sub).
    access_token: z.string().optional(),
    refresh_token: z.string().optional(),
    token_type: z.literal('bearer').optional(),
    expires_in: z.number().int().optional(),
    expires_at: z.number().int().optional(),
  })
  .openapi('MergeGuestResponse');

const route = createRoute({
  method: 'post',
  path: '/functions/v1/merge-guest-user',
  operationId: 'mergeGuestUser',
  tags: ['auth'],
  summary: "Sign in with Apple from the shipped app: the caller's guest joins the Apple account (a new Apple account simply becomes the guest)",
  description:
    'Credits (through the ledger), jobs, files and purchases move atomically; doing it twice changes nothing; after a merge into an existing account ' +
    'the guest can no longer sign in. Returns the profile and a session for the Apple account.',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: MergeBody } }, required: true } },
  responses: {
    200: { description: 'Signed in', content: { 'application/json': { schema: MergeResponse } } },
    ...errorResponses(400, 401, 403, 404, 429, 503),
  },
});

/** In legacy mode the app names no user_id here: the guest is whoever device_id names. */
function guestNamedByDeviceId(s: Services) {
  return async (c: Context<AppEnv>): Promise<string | undefined> => {
    const body: unknown = await c.req.json().catch(() => undefined);
    if (!body || typeof body !== 'object') return undefined;
    if ('user_id' in body && typeof body.user_id === 'string') return body.user_id;
    const deviceId = 'device_id' in body ? body.device_id : undefined;
    if (typeof deviceId !== 'string') return undefined;
    const byDevice = await findUserByDeviceId(s.db, deviceId);
    if (byDevice) return byDevice.id;
    if (UUID.test(deviceId) && (await findUserById(s.db, deviceId))) return deviceId;
    return undefined;
  };
}

export function registerMergeGuest(app: OpenAPIHono<AppEnv>, s: Services) {
  app.use(route.path, requireUser(authOptions(s), guestNamedByDeviceId(s)));
  app.use(route.path, s.rateLimits.middleware('merge-guest-user'));
  app.openapi(route, async (c) => {
    const body = c.req.valid('json');
    const caller = c.get('user');
    const guest = await findUserById(s.db, caller.id);
    if (!guest) throw notFound('user');
    if (body.device_id !== guest.device_id && body.device_id !== guest.id) throw forbidden('device_id is not the caller’s device');
    // With the anon key the caller is whoever names the guest's user id, which is not a secret (it
    // is in its upload URLs): the guest's own device id must be known, with or without a token.
    if (caller.via === 'legacy-anon' && guest.is_guest && body.device_id !== guest.device_id) {
      throw forbidden('with the anon key, device_id must be the guest’s device id');
    }

    let identity;
    const verified = Boolean(body.identity_token);
    if (body.identity_token) {
      identity = await appleIdentity(s).verify(body.identity_token, body.nonce);
      if (identity.sub !== body.apple_sub) throw forbidden('apple_sub does not match the identity token');
    } else if (caller.via === 'legacy-anon') {
      // The shipped build sends no identity token; legacy mode trusts apple_sub, loudly, for guests only.
      if (!guest.is_guest) throw invalid('identity_token is required', 'identity_token');
      c.get('log').warn({ userId: caller.id }, 'legacy merge-guest-user without identity_token: apple_sub NOT verified');
      identity = { sub: body.apple_sub, email: null, emailVerified: false, isPrivateEmail: false };
    } else {
      throw invalid('identity_token is required', 'identity_token');
    }

    const r = await s.appleAccounts.signIn(identity, guest.is_guest ? guest.id : undefined);
    return c.json({ success: true as const, user: await userProfile(s, r.user.id), merged: r.guest, ...(verified ? r.session : {}) }, 200);
  });
}
