import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { localizedMessage } from '../../src/errors/i18n.js';
import { useFakeApns } from '../fakes/apns.js';
import { useFakeAppleId, appleSub } from '../fakes/apple-id.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Push notifications end to end: device tokens registered through the API, simulator jobs run by
 * the real worker, pushes sent by the queue to a local APNs over HTTP/2 + TLS (test/fakes/apns.ts).
 */

const apns = useFakeApns();
const apple = useFakeAppleId();
const t = useTestApp(() => ({ ...apns.env(), ...apple.env() }));

const newToken = () => randomBytes(32).toString('hex');

async function register(app: TestApp, g: Guest, token: string, extra: Record<string, unknown> = {}): Promise<void> {
  await app.json(app.post('/functions/v1/register-push-token', { token: g.accessToken, body: { token, environment: 'sandbox', ...extra } }));
}

async function tokensOf(app: TestApp, userId: string): Promise<string[]> {
  const { rows } = await app.db.query('SELECT token FROM push_tokens WHERE user_id = $1 ORDER BY token', [userId]);
  return rows.map((r) => r.token);
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The job's push task has finished for good (graphile deletes a job once it succeeded). */
async function pushTaskDone(app: TestApp, jobId: string): Promise<void> {
  await waitFor(`the push task of ${jobId} to finish`, async () => {
    const { rows } = await app.db.query('SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE key = $1', [`push:${jobId}`]);
    return rows[0].n === 0;
  });
}

async function runJob(app: TestApp, g: Guest, prompt: string): Promise<{ jobId: string; status: string }> {
  const res = await app.json(app.generate(g, { model_id: 'simulator-text-to-video', prompt }));
  const done = await app.waitForJob(g.accessToken, res.job_id, ['completed', 'failed'], 60_000);
  return { jobId: res.job_id, status: done.status };
}

/** A guest with a registered device (token) per name, and the worker running. */
async function guestWithDevices<const K extends string>(...names: K[]): Promise<{ g: Guest } & Record<K, string>> {
  await t().startWorker();
  const g = await t().createGuest();
  const tokens = Object.fromEntries(names.map((name) => [name, newToken()])) as Record<K, string>;
  for (const name of names) await register(t(), g, tokens[name]);
  return { g, ...tokens };
}

const forJob = (jobId: string) => apns.requests.filter((r) => r.payload?.job_id === jobId);

describe('register-push-token / unregister-push-token', () => {
  it('registers several devices per user; re-registering is idempotent; another user registering a token takes it over', async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    const [t1, t2] = [newToken(), newToken()];
    await register(t(), a, t1);
    await register(t(), a, t1.toUpperCase(), { locale: 'tr-TR' });
    await register(t(), a, t2, { environment: 'production' });
    expect(await tokensOf(t(), a.userId)).toEqual([t1, t2].sort());
    const { rows } = await t().db.query('SELECT environment, language FROM push_tokens WHERE token = $1', [t1]);
    expect(rows[0]).toEqual({ environment: 'sandbox', language: 'tr' });

    await register(t(), b, t1);
    expect(await tokensOf(t(), a.userId)).toEqual([t2]);
    expect(await tokensOf(t(), b.userId)).toEqual([t1]);
  });

  it('unregisters only the caller’s own token, idempotently', async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    const token = newToken();
    await register(t(), a, token);
    const other = await t().json(t().post('/functions/v1/unregister-push-token', { token: b.accessToken, body: { token } }));
    expect(other).toEqual({ success: true, removed: false });
    expect(await tokensOf(t(), a.userId)).toEqual([token]);
    expect(await t().json(t().post('/functions/v1/unregister-push-token', { token: a.accessToken, body: { token } }))).toEqual({ success: true, removed: true });
    expect(await t().json(t().post('/functions/v1/unregister-push-token', { token: a.accessToken, body: { token } }))).toEqual({ success: true, removed: false });
    expect(await tokensOf(t(), a.userId)).toEqual([]);
  });

  it('refuses bad input with ERR_4008 naming the field, a missing session with ERR_4005, another user_id with ERR_4006', async () => {
    const g = await t().createGuest();
    for (const [body, field] of [
      [{ token: 'xyz', environment: 'sandbox' }, 'token'],
      [{ token: 'ab'.repeat(16), environment: 'sandbox' }, 'token'],
      [{ token: newToken(), environment: 'staging' }, 'environment'],
      [{ environment: 'sandbox' }, 'token'],
    ] as const) {
      const res = await t().json(t().post('/functions/v1/register-push-token', { token: g.accessToken, body }), 400);
      expect(res.error, JSON.stringify(res)).toMatchObject({ code: 'ERR_4008', details: { field } });
    }
    const anon = await t().json(t().post('/functions/v1/register-push-token', { body: { token: newToken(), environment: 'sandbox' } }), 401);
    expect(anon.error.code).toBe('ERR_4005');
    const other = await t().createGuest();
    const res = await t().json(
      t().post('/functions/v1/register-push-token', { token: g.accessToken, body: { token: newToken(), environment: 'sandbox', user_id: other.userId } }),
      403,
    );
    expect(res.error.code).toBe('ERR_4006');
  });

  it('is documented in the OpenAPI document', async () => {
    const doc = await t().json(t().get('/openapi.json'));
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/functions/v1/register-push-token', '/functions/v1/unregister-push-token']));
  });
});

describe('pushes when a video ends', () => {
  it('a completed job sends exactly one push per device, localized per device, with job_id and the APNs headers', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    await t().db.query("UPDATE users SET language = 'es' WHERE id = $1", [g.userId]);
    const [en, tr, es] = [newToken(), newToken(), newToken()];
    await register(t(), g, en, { locale: 'en-US' });
    await register(t(), g, tr, { locale: 'tr_TR' });
    await register(t(), g, es, { locale: 'de-DE' }); // not a language we speak: the profile's (es)

    const { jobId, status } = await runJob(t(), g, 'a lighthouse at dusk');
    expect(status).toBe('completed');
    await pushTaskDone(t(), jobId);

    const pushes = forJob(jobId);
    expect(pushes.map((p) => [p.token, p.status]).sort()).toEqual([en, tr, es].map((x) => [x, 200]).sort());
    const byToken = Object.fromEntries(pushes.map((p) => [p.token, p]));
    expect(byToken[en]!.payload).toEqual({
      aps: { alert: { title: 'Your video is ready', body: 'Tap to watch it.' }, sound: 'default' },
      job_id: jobId,
      status: 'completed',
    });
    expect(byToken[tr]!.payload.aps.alert.title).toBe('Videonuz hazır');
    expect(byToken[es]!.payload.aps.alert.title).toBe('Tu vídeo está listo');
    const h = byToken[en]!.headers;
    expect(h).toMatchObject({ 'apns-topic': apns.bundleId, 'apns-push-type': 'alert', 'apns-priority': '10', 'apns-collapse-id': jobId });
    expect(Number(h['apns-expiration'])).toBeGreaterThan(Date.now() / 1000);
    expect(h.authorization).toMatch(/^bearer /);
    // One provider token for all three pushes, one connection for the environment.
    expect(new Set(pushes.map((p) => p.jwt)).size).toBe(1);
    expect(new Set(pushes.map((p) => p.connection)).size).toBe(1);
  });

  it('a failed job sends the failure text (the provider failure’s message) in the device’s language', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const token = newToken();
    await register(t(), g, token, { locale: 'tr' });
    const { jobId, status } = await runJob(t(), g, 'this one breaks [sim:fail]');
    expect(status).toBe('failed');
    await pushTaskDone(t(), jobId);
    const pushes = forJob(jobId);
    expect(pushes).toHaveLength(1);
    expect(pushes[0]!.payload).toMatchObject({
      aps: { alert: { title: 'Videonuz oluşturulamadı', body: localizedMessage('ERR_5002', 'tr') } },
      job_id: jobId,
      status: 'failed',
    });
  });

  it('429 and 5xx are retried by the queue, and the retry sends nothing twice to devices already served', async () => {
    const { g, ok, busy, down } = await guestWithDevices('ok', 'busy', 'down');
    apns.answer(busy, { status: 429, reason: 'TooManyRequests' });
    apns.answer(down, { status: 503, reason: 'ServiceUnavailable' });

    const { jobId } = await runJob(t(), g, 'three phones');
    await pushTaskDone(t(), jobId);
    const pushes = forJob(jobId);
    expect(pushes.filter((p) => p.token === ok).map((p) => p.status)).toEqual([200]);
    expect(pushes.filter((p) => p.token === busy).map((p) => p.status)).toEqual([429, 200]);
    expect(pushes.filter((p) => p.token === down).map((p) => p.status)).toEqual([503, 200]);
    const { rows } = await t().db.query('SELECT token, outcome FROM push_deliveries WHERE job_id = $1 ORDER BY token', [jobId]);
    expect(rows).toEqual([ok, busy, down].sort().map((token) => ({ token, outcome: 'sent' })));
  });

  it('a queue job run again after it sent (a crash before it was marked done) sends no duplicate', async () => {
    const { g } = await guestWithDevices('phone');
    const { jobId } = await runJob(t(), g, 'sent once');
    await pushTaskDone(t(), jobId);
    expect(forJob(jobId)).toHaveLength(1);
    // What a worker that died after sending leaves behind: the same task, to be run again.
    await t().db.query("SELECT graphile_worker.add_job('send_job_push', json_build_object('jobId', $1::text), job_key := $2)", [jobId, `push:${jobId}`]);
    await pushTaskDone(t(), jobId);
    expect(forJob(jobId)).toHaveLength(1);
  });

  it('410 Unregistered removes the token, unless the device registered it again after APNs’ timestamp', async () => {
    const { g, gone, back } = await guestWithDevices('gone', 'back');
    apns.unregistered.set(gone, Date.now() + 60_000); // APNs learned it after the registration
    apns.unregistered.set(back, Date.now() - 60_000); // the device registered again since
    const { jobId } = await runJob(t(), g, 'uninstalled');
    await pushTaskDone(t(), jobId);
    expect(forJob(jobId).map((p) => p.status)).toEqual([410, 410]);
    expect(await tokensOf(t(), g.userId)).toEqual([back]);
    apns.unregistered.clear();
  });

  it('400 BadDeviceToken and DeviceTokenNotForTopic remove the token; 413 is logged and not retried', async () => {
    const { g, bad, wrongApp, tooBig } = await guestWithDevices('bad', 'wrongApp', 'tooBig');
    apns.answer(bad, { status: 400, reason: 'BadDeviceToken' });
    apns.answer(wrongApp, { status: 400, reason: 'DeviceTokenNotForTopic' });
    apns.answer(tooBig, { status: 413, reason: 'PayloadTooLarge' });
    const { jobId } = await runJob(t(), g, 'refused');
    await pushTaskDone(t(), jobId);
    expect(forJob(jobId).map((p) => p.status).sort()).toEqual([400, 400, 413]);
    expect(await tokensOf(t(), g.userId)).toEqual([tooBig]);
    const { rows } = await t().db.query('SELECT outcome FROM push_deliveries WHERE job_id = $1 AND token = $2', [jobId, tooBig]);
    expect(rows).toEqual([{ outcome: 'PayloadTooLarge' }]);
    const metrics = await t().services.metrics.registry.getSingleMetricAsString('rendio_push_notifications_total');
    for (const reason of ['BadDeviceToken', 'DeviceTokenNotForTopic', 'PayloadTooLarge']) {
      expect(metrics).toMatch(new RegExp(`rendio_push_notifications_total\\{outcome="failed",reason="${reason}"\\} [1-9]`));
    }
    expect(metrics).toMatch(/rendio_push_notifications_total\{outcome="sent",reason="ok"\} [1-9]/);
  });

  it('403 ExpiredProviderToken: a new provider JWT and one retry, in the same attempt', async () => {
    const { g, token } = await guestWithDevices('token');
    apns.answer(token, { status: 403, reason: 'ExpiredProviderToken' });
    const { jobId } = await runJob(t(), g, 'stale key');
    await pushTaskDone(t(), jobId);
    const pushes = forJob(jobId);
    expect(pushes.map((p) => p.status)).toEqual([403, 200]);
    expect(pushes[1]!.jwt).not.toBe(pushes[0]!.jwt);
  });

  it('a cancelled (deleted) running job sends nothing', async () => {
    const g = await t().createGuest();
    const token = newToken();
    await register(t(), g, token);
    await t().stopWorker();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'never mind' }));
    await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: res.job_id } }));
    const { rows } = await t().db.query("SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE task_identifier = 'send_job_push' AND key = $1", [`push:${res.job_id}`]);
    expect(rows[0].n).toBe(0);
  });
});

describe('tokens follow the account', () => {
  it('logout removes the tokens of the sessions it ends: local this device’s, global all', async () => {
    const first = await t().createGuest();
    const second = await t().createGuest(first.deviceId); // the same guest, a second session
    expect(second.userId).toBe(first.userId);
    const [x, y] = [newToken(), newToken()];
    await register(t(), first, x);
    await register(t(), second, y);
    expect((await t().post('/auth/v1/logout?scope=local', { token: first.accessToken })).status).toBe(204);
    expect(await tokensOf(t(), first.userId)).toEqual([y]);
    await register(t(), second, x); // the first device signed in again, in the second session
    expect((await t().post('/auth/v1/logout', { token: second.accessToken })).status).toBe(204);
    expect(await tokensOf(t(), first.userId)).toEqual([]);
  });

  it('account deletion removes every token of the account', async () => {
    const g = await t().createGuest();
    await register(t(), g, newToken());
    await register(t(), g, newToken());
    await t().json(t().post('/functions/v1/delete-account', { token: g.accessToken }));
    expect(await tokensOf(t(), g.userId)).toEqual([]);
  });

  it('a registration racing the account’s deletion lands nowhere (the insert waits on the user row, then finds it ended)', async () => {
    const g = await t().createGuest();
    const token = newToken();
    // What delete-account holds while it ends the account: the user's row, then deleted_at set.
    const deletion = await t().holdLocks('UPDATE users SET deleted_at = now() WHERE id = $1', [g.userId]);
    const request = t().post('/functions/v1/register-push-token', { token: g.accessToken, body: { token, environment: 'sandbox' } });
    await waitFor('the registration to wait on the user row', async () => {
      const { rows } = await t().db.query(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
      );
      return rows[0].n >= 1;
    });
    await deletion.release();
    const res = await t().json(request, 404);
    expect(res.error.code).toBe('ERR_4007');
    const { rows } = await t().db.query('SELECT count(*)::int AS n FROM push_tokens WHERE token = $1', [token]);
    expect(rows[0].n).toBe(0);
    // The rest of the deletion (the balance forfeit), so the ledger invariants hold afterwards.
    await t().services.accountDeletion.delete(g.userId, 'test');
  });

  it('a guest merged into an existing Apple account brings its devices along', async () => {
    const sub = appleSub();
    const account = await t().json(t().post('/auth/v1/token?grant_type=id_token', { body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }));
    const accountToken = newToken();
    await t().json(t().post('/functions/v1/register-push-token', { token: account.access_token, body: { token: accountToken, environment: 'production' } }));
    const g = await t().createGuest();
    const guestToken = newToken();
    await register(t(), g, guestToken);

    const merged = await t().json(
      t().post('/auth/v1/token?grant_type=id_token', { token: g.accessToken, body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }),
    );
    expect(merged.user.id).toBe(account.user.id);
    expect(await tokensOf(t(), account.user.id)).toEqual([accountToken, guestToken].sort());
    expect(await tokensOf(t(), g.userId)).toEqual([]);
  });
});
