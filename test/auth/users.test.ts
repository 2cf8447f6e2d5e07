import { describe, expect, it } from 'vitest';
import { useTestApp } from '../support/harness.js';
import { itEnforcesUserAuth } from '../support/user-auth.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

describe('credits and profile', () => {
  const t = useTestApp();

  it('get-user-credits: {credits_remaining: Int} for the token owner (docs/reference/ios-app.md §2.7)', async () => {
    const g = await t().createGuest();
    const body = await t().json(t().get(`/functions/v1/get-user-credits?user_id=${g.userId}`, { token: g.accessToken }));
    expect(body).toEqual({ credits_remaining: 10, balance: 10, held: 0, debt: 0 });
    // The user_id parameter is optional with a token.
    expect(await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).toMatchObject({ credits_remaining: 10 });
  });

  it('get-user-profile: the app’s User shape with every key and ISO-8601 dates (§2.8)', async () => {
    const g = await t().createGuest();
    const body = await t().json(t().get(`/functions/v1/get-user-profile?user_id=${g.userId}`, { token: g.accessToken }));
    expect(Object.keys(body).sort()).toEqual(
      ['apple_sub', 'created_at', 'credits_remaining', 'credits_total', 'device_id', 'email', 'id', 'initial_grant_claimed', 'is_guest', 'language', 'theme_preference', 'tier', 'updated_at'].sort(),
    );
    expect(body).toMatchObject({
      id: g.userId,
      device_id: g.deviceId,
      apple_sub: null,
      email: null,
      is_guest: true,
      tier: 'free',
      credits_remaining: 10,
      credits_total: 10,
      initial_grant_claimed: true,
      language: 'en',
      theme_preference: 'system',
    });
    expect(body.created_at).toMatch(ISO);
    expect(body.updated_at).toMatch(ISO);
  });

  it('PATCH rest/v1/users?id=eq.{id} updates settings and returns exactly one row (§2.9)', async () => {
    const g = await t().createGuest();
    const rows = await t().json(
      t().patch(`/rest/v1/users?id=eq.${g.userId}`, {
        token: g.accessToken,
        headers: { prefer: 'return=representation' },
        body: { language: 'tr', theme_preference: 'dark' },
      }),
    );
    expect(rows).toEqual([{ id: g.userId, language: 'tr', theme_preference: 'dark' }]);
    // Without return=representation PostgREST answers 204 and no body (its default is return=minimal).
    const minimal = await t().patch(`/rest/v1/users?id=eq.${g.userId}`, { token: g.accessToken, body: { language: 'es' } });
    expect(minimal.status).toBe(204);
    expect(await minimal.text()).toBe('');
    const profile = await t().json(t().get('/functions/v1/get-user-profile', { token: g.accessToken }));
    expect(profile).toMatchObject({ language: 'es', theme_preference: 'dark' });
  });

  it.each([
    [{ language: 'fr' }, 'language'],
    [{ theme_preference: 'blue' }, 'theme_preference'],
    [{ is_admin: true }, ''],
    [{ language: 'en', credits: 1000 }, ''],
    [{}, ''],
    [{ language: 42 }, 'language'],
  ])('PATCH users rejects %j with ERR_4008 and changes nothing', async (body, field) => {
    const g = await t().createGuest();
    const res = await t().json(t().patch(`/rest/v1/users?id=eq.${g.userId}`, { token: g.accessToken, body }), 400);
    expect(res.error.code).toBe('ERR_4008');
    if (field) expect(res.error.details.field).toBe(field);
    const { rows } = await t().db.query('SELECT language, is_admin FROM users WHERE id = $1', [g.userId]);
    expect(rows[0]).toEqual({ language: 'en', is_admin: false });
  });

  it('PATCH users without an id filter is refused', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().patch('/rest/v1/users', { token: g.accessToken, body: { language: 'tr' } }), 400);
    expect(res.error.code).toBe('ERR_4008');
  });

  describe('get-user-credits security', () => {
    itEnforcesUserAuth(t, { method: 'GET', path: (id) => `/functions/v1/get-user-credits?user_id=${id}` });
  });
  describe('get-user-profile security', () => {
    itEnforcesUserAuth(t, { method: 'GET', path: (id) => `/functions/v1/get-user-profile?user_id=${id}` });
  });
  describe('PATCH rest/v1/users security', () => {
    itEnforcesUserAuth(t, { method: 'PATCH', path: (id) => `/rest/v1/users?id=eq.${id}`, body: () => ({ language: 'tr' }) });
  });
});
