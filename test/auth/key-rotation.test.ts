import { SignJWT, decodeJwt, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { startHttpServer, withRealtime } from '../../src/server.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { createTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Rotating JWT_SECRET and ANON_KEY as docs/DEPLOY.md tells it: restart with the new values as
 * JWT_SECRET / ANON_KEY and the old ones as JWT_SECRET_PREVIOUS / ANON_KEY_PREVIOUS; later, restart
 * without the previous ones. Each "restart" is a new server instance on the same database, built
 * from its own environment as main.ts builds it.
 */
const OLD_SECRET = 'the-secret-before-the-rotation-0123456789abcdef';
const NEW_SECRET = 'the-secret-after-the-rotation-0123456789abcdefg';
const UNKNOWN_SECRET = 'a-secret-this-server-never-had-0123456789abcdef';
const OLD_ANON = 'anon-key-before-the-rotation';
const NEW_ANON = 'anon-key-after-the-rotation';

const before = { JWT_SECRET: OLD_SECRET, ANON_KEY: OLD_ANON };
const during = { JWT_SECRET: NEW_SECRET, JWT_SECRET_PREVIOUS: OLD_SECRET, ANON_KEY: NEW_ANON, ANON_KEY_PREVIOUS: OLD_ANON };
const after = { JWT_SECRET: NEW_SECRET, ANON_KEY: NEW_ANON };

const credits = (t: TestApp, token: string, apikey: string) => t.get('/functions/v1/get-user-credits', { token, headers: { apikey } });
const refresh = (t: TestApp, refreshToken: string, apikey: string) =>
  t.post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: refreshToken }, headers: { apikey } });
/** The HTTP status a Realtime upgrade with this apikey gets: 101 when the socket opens. */
const upgradeStatus = (url: string) =>
  new Promise<number>((resolve) => {
    const ws = new WebSocket(url);
    ws.once('open', () => {
      ws.close();
      resolve(101);
    });
    ws.once('unexpected-response', (req, res) => {
      resolve(res.statusCode ?? 0);
      req.destroy();
    });
    ws.once('error', () => undefined);
  });
const signedWith = async (token: string, secret: string) =>
  jwtVerify(token, new TextEncoder().encode(secret)).then(
    () => true,
    () => false,
  );

describe('rotating JWT_SECRET and ANON_KEY without logging anyone out', () => {
  const instances: TestApp[] = [];
  const start = async (env: Record<string, string>) => {
    const t = await createTestApp(env, instances[0] ? { sharing: instances[0] } : {});
    instances.push(t);
    return t;
  };
  let guest: Guest;
  let rotating: TestApp;

  beforeAll(async () => {
    const original = await start(before);
    guest = await original.createGuest();
    rotating = await start(during);
  });
  afterAll(async () => {
    // The instance that owns the database closes last: it drops it.
    for (const t of instances.reverse()) await t.close();
  });

  it('a session made before the rotation still works after the restart, with either anon key', async () => {
    for (const apikey of [OLD_ANON, NEW_ANON]) {
      const body = await rotating.json(credits(rotating, guest.accessToken, apikey));
      expect(body.credits_remaining, apikey).toBe(guest.credits);
    }
  });

  it('its refresh answers a token signed with the new secret only', async () => {
    const g = await instances[0]!.createGuest();
    const renewed = await rotating.json(refresh(rotating, g.refreshToken, OLD_ANON));
    expect(await signedWith(renewed.access_token, NEW_SECRET)).toBe(true);
    expect(await signedWith(renewed.access_token, OLD_SECRET)).toBe(false);
    await rotating.json(credits(rotating, renewed.access_token, NEW_ANON));
  });

  it('refuses a token signed with a key it does not know, and an anon key that is neither', async () => {
    // The guest's own, valid claims and live session: only the key is wrong.
    const claims = decodeJwt(guest.accessToken);
    const forged = await new SignJWT(claims).setProtectedHeader({ alg: 'HS256', typ: 'JWT' }).sign(new TextEncoder().encode(UNKNOWN_SECRET));
    const refused = await rotating.json(credits(rotating, forged, NEW_ANON), 401);
    expect(refused.error.code).toBe('ERR_4005');
    const badKey = await rotating.json(credits(rotating, guest.accessToken, 'anon-key-of-another-project'), 401);
    expect(badKey.error.code).toBe('ERR_4043'); // the gateway's "Invalid API key"
    expect(badKey.message).toBe('Invalid API key');
  });

  it('Realtime takes either anon key during the rotation, and no other', async () => {
    const server = withRealtime(await startHttpServer(rotating.app.fetch, { port: 0, hostname: '127.0.0.1', limits: rotating.services.config.http }), rotating.services);
    try {
      const socketWith = (apikey: string) => upgradeStatus(`ws://127.0.0.1:${server.port}/realtime/v1/websocket?apikey=${apikey}&vsn=1.0.0`);
      expect(await socketWith(OLD_ANON)).toBe(101);
      expect(await socketWith(NEW_ANON)).toBe(101);
      expect(await socketWith('anon-key-of-another-project')).toBe(401);
    } finally {
      await server.close();
    }
  });

  it('a rolling restart: an instance taught the new secret first (JWT_SECRET=old, JWT_SECRET_PREVIOUS=new) accepts what a switched one signs', async () => {
    const g = await instances[0]!.createGuest();
    const renewed = await rotating.json(refresh(rotating, g.refreshToken, OLD_ANON));
    const notYetSwitched = await start({ JWT_SECRET: OLD_SECRET, JWT_SECRET_PREVIOUS: NEW_SECRET, ANON_KEY: OLD_ANON });
    await notYetSwitched.json(credits(notYetSwitched, renewed.access_token, OLD_ANON));
    // It still signs with the old secret, which the switched instances accept as the previous one.
    const fromIt = await notYetSwitched.json(refresh(notYetSwitched, renewed.refresh_token, OLD_ANON));
    expect(await signedWith(fromIt.access_token, OLD_SECRET)).toBe(true);
    await rotating.json(credits(rotating, fromIt.access_token, NEW_ANON));
  });

  it('once the previous values are removed, what they signed is refused and the new ones keep working', async () => {
    const g = await instances[0]!.createGuest();
    const renewed = await rotating.json(refresh(rotating, g.refreshToken, NEW_ANON));
    const finished = await start(after);
    await finished.json(credits(finished, g.accessToken, NEW_ANON), 401);
    await finished.json(credits(finished, renewed.access_token, OLD_ANON), 401);
    await finished.json(credits(finished, renewed.access_token, NEW_ANON));
  });

  it('legacy mode takes either anon key as the bearer during the rotation', async () => {
    const legacy = await start({ ...during, LEGACY_ANON_CLIENTS: 'true' });
    for (const key of [OLD_ANON, NEW_ANON]) {
      const body = await legacy.json(legacy.get(`/functions/v1/get-user-credits?user_id=${guest.userId}`, { token: key, headers: { apikey: key } }));
      expect(body.credits_remaining, key).toBe(guest.credits);
    }
  });
});

describe('rotation settings', () => {
  it('refuses a previous value without a current one to replace it, or equal to it', () => {
    const issues = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return '';
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        return err.message;
      }
    };
    expect(issues({ JWT_SECRET_PREVIOUS: OLD_SECRET })).toMatch(/JWT_SECRET_PREVIOUS: set JWT_SECRET/);
    expect(issues({ JWT_SECRET: OLD_SECRET, JWT_SECRET_PREVIOUS: OLD_SECRET })).toMatch(/JWT_SECRET_PREVIOUS: is the same as JWT_SECRET/);
    expect(issues({ JWT_SECRET: NEW_SECRET, JWT_SECRET_PREVIOUS: 'short' })).toMatch(/JWT_SECRET_PREVIOUS must be at least 32 characters/);
    expect(issues({ ANON_KEY_PREVIOUS: OLD_ANON })).toMatch(/ANON_KEY_PREVIOUS: set ANON_KEY/);
    expect(issues({ ANON_KEY: OLD_ANON, ANON_KEY_PREVIOUS: OLD_ANON })).toMatch(/ANON_KEY_PREVIOUS: is the same as ANON_KEY/);
    expect(loadConfig(during)).toMatchObject({ anonKey: NEW_ANON, acceptedAnonKeys: [NEW_ANON, OLD_ANON], jwt: { secret: NEW_SECRET, previousSecret: OLD_SECRET } });
  });
});
