import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { useFakeApns } from '../fakes/apns.js';
import { useTestApp } from '../support/harness.js';

/** Push registration in the legacy anon-key mode, and a server without APNs keys. */

const ANON = 'anon-key-for-the-shipped-app-0123456789';
const newToken = () => randomBytes(32).toString('hex');

describe('legacy anon-key mode: the route names its user by user_id, like every user route', () => {
  const apns = useFakeApns();
  const t = useTestApp(() => ({ ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true', ...apns.env() }));
  const legacy = { token: ANON, headers: { apikey: ANON } };

  it('registers and unregisters for the user_id in the body; without one it is 401; the token is pushed to', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const token = newToken();
    await t().json(t().post('/functions/v1/register-push-token', { ...legacy, body: { token, environment: 'sandbox', user_id: g.userId } }));
    const { rows } = await t().db.query('SELECT user_id, session_id FROM push_tokens WHERE token = $1', [token]);
    expect(rows).toEqual([{ user_id: g.userId, session_id: null }]);

    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'from the shipped app' }));
    await t().waitForJob(g.accessToken, res.job_id, ['completed'], 60_000);
    const deadline = Date.now() + 60_000;
    while (apns.delivered(token).length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(apns.delivered(token).map((p) => p.payload.job_id)).toEqual([res.job_id]);

    const missing = await t().json(t().post('/functions/v1/register-push-token', { ...legacy, body: { token, environment: 'sandbox' } }), 401);
    expect(missing.error.code).toBe('ERR_4005');
    expect(await t().json(t().post('/functions/v1/unregister-push-token', { ...legacy, body: { token, user_id: g.userId } }))).toEqual({ success: true, removed: true });
  });

  it('a user token works too, and still may not name another user', async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    await t().json(t().post('/functions/v1/register-push-token', { token: a.accessToken, body: { token: newToken(), environment: 'production' } }));
    const res = await t().json(
      t().post('/functions/v1/register-push-token', { token: a.accessToken, body: { token: newToken(), environment: 'production', user_id: b.userId } }),
      403,
    );
    expect(res.error.code).toBe('ERR_4006');
  });
});

describe('without APNs keys', () => {
  const t = useTestApp();

  it('tokens are still registered, and a job’s end enqueues no push', async () => {
    expect(t().services.config.apns).toBeUndefined();
    expect(t().services.push.enabled).toBe(false);
    const g = await t().createGuest();
    await t().json(t().post('/functions/v1/register-push-token', { token: g.accessToken, body: { token: newToken(), environment: 'sandbox' } }));
    // The worker is not running: whatever the job's end enqueues stays in the queue to be seen.
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'nobody is told' }));
    expect(await t().services.jobs.fail(res.job_id, 'ERR_5002', 'simulated provider failure')).toBe(true);
    const { rows } = await t().db.query("SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE task_identifier = 'send_job_push'");
    expect(rows[0].n).toBe(0);
  });

  it('the keys come together or not at all; the key must be a P-256 PEM (\\n escapes undone); the bundle id defaults to the app’s', () => {
    const pem = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const escaped = pem.replace(/\n/g, '\\n');
    expect(() => loadConfig({ APNS_KEY_ID: 'K' })).toThrow(/APNS_KEY_ID, APNS_PRIVATE_KEY and APNS_TEAM_ID/);
    expect(() => loadConfig({ APNS_KEY_ID: 'K', APNS_PRIVATE_KEY: escaped })).toThrow(/APNS_TEAM_ID/);
    expect(() => loadConfig({ APNS_TEAM_ID: 'T', APNS_KEY_ID: 'K', APNS_PRIVATE_KEY: 'not a key' })).toThrow(/EC P-256 private key/);
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    expect(() => loadConfig({ APNS_TEAM_ID: 'T', APNS_KEY_ID: 'K', APNS_PRIVATE_KEY: rsa })).toThrow(/EC P-256 private key/);
    const c = loadConfig({ APNS_TEAM_ID: 'TEAM', APNS_KEY_ID: 'K', APNS_PRIVATE_KEY: escaped }).apns!;
    expect(c).toMatchObject({ teamId: 'TEAM', keyId: 'K', bundleId: 'com.rendioai.app', host: undefined, port: 443, privateKeyPem: pem });
    expect(loadConfig({ APPLE_BUNDLE_ID: 'com.example.app', APNS_TEAM_ID: 'T', APNS_KEY_ID: 'K', APNS_PRIVATE_KEY: pem }).apns!.bundleId).toBe('com.example.app');
  });
});

describe('with APNs keys, the same end of a job enqueues its push (the control for the case above)', () => {
  const apns = useFakeApns();
  const t = useTestApp(() => apns.env());

  it('enqueues one send_job_push in the transaction that failed the job', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'someone is told' }));
    expect(await t().services.jobs.fail(res.job_id, 'ERR_5002', 'simulated provider failure')).toBe(true);
    const { rows } = await t().db.query("SELECT key FROM graphile_worker.jobs WHERE task_identifier = 'send_job_push'");
    expect(rows).toEqual([{ key: `push:${res.job_id}` }]);
  });
});
