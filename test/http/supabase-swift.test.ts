import { describe, expect, it } from 'vitest';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { deviceToken } from '../fakes/device-check.js';
import { useTestApp } from '../support/harness.js';
import { ANON_KEY, serveOverHttp } from '../support/supabase-js.js';

/**
 * supabase-swift (the app's client) cannot run here, so its requests are replayed byte for byte
 * as its source builds them, from github.com/supabase/supabase-swift at tag v2.37.0, commit
 * 65507b524f0ec09ebb6f6b1db0db1a8e4265436e:
 *  - Sources/Supabase/SupabaseClient.swift: every request carries `X-Client-Info: supabase-swift/2.37.0`,
 *    `Apikey: <key>` and `Authorization: Bearer <key>` until a session replaces the bearer;
 *  - Sources/Auth/Internal/APIClient.swift: auth requests add `X-Supabase-Api-Version: 2024-01-01`;
 *  - Sources/Auth/Defaults.swift: bodies are JSONEncoder with convertToSnakeCase (nil fields left out),
 *    answers are decoded with convertFromSnakeCase;
 *  - Sources/Auth/AuthClient.swift: signInAnonymously (POST signup, SignUpRequest), signInWithIdToken
 *    (POST token?grant_type=id_token, OpenIDConnectCredentials), user() (GET user), update(user:)
 *    (PUT user, UserAttributes), signOut(scope:) (POST logout?scope=…, the session's bearer, no body);
 *  - Sources/Auth/Internal/SessionManager.swift: refreshSession (POST token?grant_type=refresh_token,
 *    UserCredentials(refreshToken:));
 *  - Sources/Auth/Types.swift: what Session, User and UserIdentity require to decode (mirrored in
 *    `decodesAsSwiftSession` below);
 *  - Sources/Functions/FunctionsClient.swift and Types.swift: invoke is POST unless told otherwise,
 *    an Encodable body is JSON with `Content-Type: application/json`, `X-Client-Info` as above.
 * Realtime's frames (RealtimeClientV2.swift: ?apikey=…&vsn=1.0.0; RealtimeChannelV2.swift and
 * RealtimeJoinConfig.swift: the phx_join payload) are replayed in test/realtime/realtime.test.ts
 * ("Realtime on the wire (exact Phoenix frames)").
 */

const SWIFT_HEADERS = { 'X-Client-Info': 'supabase-swift/2.37.0', Apikey: ANON_KEY, Authorization: `Bearer ${ANON_KEY}` };
const AUTH_HEADERS = { ...SWIFT_HEADERS, 'X-Supabase-Api-Version': '2024-01-01' };
/** JSONDecoder.supabase()'s dates: ISO 8601, with or without fractional seconds. */
const SWIFT_DATE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** User.init(from:) at v2.37.0: id (UUID), aud, created_at and updated_at are required; the rest optional but typed. */
function decodesAsSwiftUser(u: any): void {
  expect(u.id).toMatch(UUID);
  expect(typeof u.aud).toBe('string');
  expect(u.created_at).toMatch(SWIFT_DATE);
  expect(u.updated_at).toMatch(SWIFT_DATE);
  for (const k of ['app_metadata', 'user_metadata']) if (u[k] !== undefined) expect(typeof u[k]).toBe('object');
  if (u.is_anonymous !== undefined) expect(typeof u.is_anonymous).toBe('boolean');
  for (const k of ['email', 'phone', 'role']) if (u[k] !== undefined && u[k] !== null) expect(typeof u[k]).toBe('string');
  for (const identity of u.identities ?? []) {
    // UserIdentity.init(from:): id (String), user_id (UUID), provider required; identity_id a UUID if present.
    expect(typeof identity.id).toBe('string');
    expect(identity.user_id).toMatch(UUID);
    expect(typeof identity.provider).toBe('string');
    if (identity.identity_id !== undefined) expect(identity.identity_id).toMatch(UUID);
    for (const k of ['created_at', 'last_sign_in_at', 'updated_at']) if (identity[k] != null) expect(identity[k]).toMatch(SWIFT_DATE);
  }
}

/** Session at v2.37.0: access_token, token_type, expires_in, expires_at, refresh_token, user — all required. */
function decodesAsSwiftSession(s: any): void {
  expect(typeof s.access_token).toBe('string');
  expect(typeof s.token_type).toBe('string');
  expect(typeof s.expires_in).toBe('number');
  expect(typeof s.expires_at).toBe('number');
  expect(typeof s.refresh_token).toBe('string');
  decodesAsSwiftUser(s.user);
}

describe('supabase-swift 2.37.0 requests, replayed', () => {
  const apple = useFakeAppleId();
  const t = useTestApp(() => ({ ANON_KEY, ...apple.env() }));
  const url = serveOverHttp(t);

  const swift = async (method: string, path: string, opts: { headers?: Record<string, string>; body?: unknown } = {}) => {
    const res = await fetch(`${url()}${path}`, {
      method,
      headers: { ...opts.headers, ...(opts.body !== undefined ? { 'Content-Type': 'application/json' } : {}) },
      body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined, text };
  };

  it('Auth: signInAnonymously, refreshSession, user(), update(user:), signInWithIdToken (the guest merged), signOut(scope:)', async () => {
    // signInAnonymously() with no data: SignUpRequest(data: nil, gotrueMetaSecurity: nil) encodes as {}.
    const anon = await swift('POST', '/auth/v1/signup', { headers: AUTH_HEADERS, body: {} });
    expect(anon.status, anon.text).toBe(200);
    decodesAsSwiftSession(anon.body);
    expect(anon.body.user.is_anonymous).toBe(true);
    // With data: {"data": {...}}.
    const withData = await swift('POST', '/auth/v1/signup', { headers: AUTH_HEADERS, body: { data: { locale: 'tr' } } });
    expect(withData.body.user.user_metadata).toEqual({ locale: 'tr' });

    const refreshed = await swift('POST', '/auth/v1/token?grant_type=refresh_token', { headers: AUTH_HEADERS, body: { refresh_token: anon.body.refresh_token } });
    expect(refreshed.status, refreshed.text).toBe(200);
    decodesAsSwiftSession(refreshed.body);
    const bearer = { ...AUTH_HEADERS, Authorization: `Bearer ${refreshed.body.access_token}` };

    const user = await swift('GET', '/auth/v1/user', { headers: bearer });
    decodesAsSwiftUser(user.body);
    const updated = await swift('PUT', '/auth/v1/user', { headers: bearer, body: { data: { nickname: 'fox' } } });
    expect(updated.status, updated.text).toBe(200);
    decodesAsSwiftUser(updated.body);
    expect(updated.body.user_metadata).toEqual({ nickname: 'fox' });

    // signInWithIdToken(credentials: .init(provider: .apple, idToken:, nonce:)) with the guest's session as bearer.
    const nonce = 'raw-nonce-from-the-app';
    const idToken = await apple.identityToken({ sub: appleSub(), nonce }); // the token carries the nonce's SHA-256, as Apple's does for the app
    const signedIn = await swift('POST', '/auth/v1/token?grant_type=id_token', { headers: bearer, body: { provider: 'apple', id_token: idToken, nonce } });
    expect(signedIn.status, signedIn.text).toBe(200);
    decodesAsSwiftSession(signedIn.body);
    expect(signedIn.body.user).toMatchObject({ id: anon.body.user.id, is_anonymous: false, identities: [{ provider: 'apple' }] });

    // signOut(scope: .others) and (scope: .local): POST, no body, the session's bearer; 204.
    const second = await swift('POST', '/auth/v1/token?grant_type=refresh_token', { headers: AUTH_HEADERS, body: { refresh_token: signedIn.body.refresh_token } });
    const current = { ...AUTH_HEADERS, Authorization: `Bearer ${second.body.access_token}` };
    expect((await swift('POST', '/auth/v1/logout?scope=others', { headers: current })).status).toBe(204);
    expect((await swift('GET', '/auth/v1/user', { headers: current })).status).toBe(200);
    expect((await swift('POST', '/auth/v1/logout?scope=local', { headers: current })).status).toBe(204);
    // signOut ignores 401/403/404 (AuthClient.swift), so an ended session answering 401 is what it expects.
    expect((await swift('POST', '/auth/v1/logout?scope=global', { headers: current })).status).toBe(401);
  });

  it('Functions: the app\'s calls as FunctionsClient.invoke sends them (POST JSON by default, GET where the app asks for it)', async () => {
    // device-check: with the anon key as bearer (no session yet), the body OnboardingService sends.
    const deviceId = crypto.randomUUID().toUpperCase();
    const onboarded = await swift('POST', '/functions/v1/device-check', { headers: SWIFT_HEADERS, body: { device_id: deviceId, device_token: deviceToken(deviceId) } });
    expect(onboarded.status, onboarded.text).toBe(200);
    expect(onboarded.body).toMatchObject({ user_id: expect.any(String), credits_remaining: expect.any(Number), is_new: true, access_token: expect.any(String) });
    const g = { userId: onboarded.body.user_id as string, accessToken: onboarded.body.access_token as string, credits: onboarded.body.credits_remaining as number };
    const bearer = { ...SWIFT_HEADERS, Authorization: `Bearer ${g.accessToken}` };
    const profile = await swift('GET', `/functions/v1/get-user-profile?user_id=${g.userId}`, { headers: bearer });
    expect(profile.body).toMatchObject({ id: g.userId, is_guest: true });
    const credits = await swift('POST', '/functions/v1/get-user-credits', { headers: bearer, body: {} });
    expect(credits.status, credits.text).toBe(200);
    expect(credits.body).toMatchObject({ credits_remaining: g.credits });
    const job = await swift('POST', '/functions/v1/generate-video', {
      headers: { ...bearer, 'Idempotency-Key': crypto.randomUUID().toUpperCase() },
      body: { model_id: 'simulator-text-to-video', prompt: 'a red fox in the snow', settings: { resolution: 'auto', aspect_ratio: 'auto' } },
    });
    expect(job.status, job.text).toBe(200);
    const byPost = await swift('POST', '/functions/v1/get-video-status', { headers: bearer, body: { job_id: job.body.job_id } });
    const byGet = await swift('GET', `/functions/v1/get-video-status?job_id=${job.body.job_id}`, { headers: bearer });
    expect(byPost.body).toEqual(byGet.body);
    const history = await swift('GET', `/functions/v1/get-video-jobs?user_id=${g.userId}&limit=20&offset=0`, { headers: bearer });
    expect(history.body.jobs.map((j: { job_id: string }) => j.job_id)).toEqual([job.body.job_id]);
    const models = await swift('GET', '/functions/v1/get-models', { headers: SWIFT_HEADERS });
    expect(models.status).toBe(200);
    expect(models.body.models.length).toBeGreaterThan(0);
    const deleted = await swift('POST', '/functions/v1/delete-video-job', { headers: bearer, body: { job_id: job.body.job_id, user_id: g.userId } });
    expect(deleted.body).toEqual({ success: true });
  });
});
