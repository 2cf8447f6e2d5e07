import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { enqueue } from '../../src/jobs/queue.js';
import { RetentionService } from '../../src/jobs/retention.js';
import { createLogger } from '../../src/logger.js';
import { RESULTS_BUCKET } from '../../src/storage/types.js';
import { useTestApp, type TestApp } from '../support/harness.js';

/** Each retention task deletes what it should and nothing else (src/jobs/retention.ts). */

const SIM = 'simulator-text-to-video';

describe('retention', () => {
  const t = useTestApp({ ERROR_LOG_MAX_ROWS: '1000', VIDEO_RETENTION_DAYS: '30' });
  const retention = () => t().services.worker.retention;
  const count = async (sql: string, values: unknown[] = []) => (await t().db.query(sql, values)).rows[0].n as number;

  it('error_log: rows past ERROR_LOG_RETENTION_DAYS go, then all but the newest ERROR_LOG_MAX_ROWS; old noise counters go', async () => {
    const tag = randomUUID();
    const insert = (n: number, age: string) =>
      t().db.query(
        `INSERT INTO error_log (request_id, code, status, message, created_at)
         SELECT $1 || ':' || i, 'ERR_4008', 400, 'x', now() - $2::interval FROM generate_series(1, $3) i`,
        [tag, age, n],
      );
    await insert(3, '31 days');
    await insert(1005, '1 day');
    await t().db.query(
      `INSERT INTO error_log_aggregates (hour, code, status, method, route, count) VALUES
       (date_trunc('hour', now() - interval '40 days'), 'ERR_4005', 401, 'GET', '/old', 7),
       (date_trunc('hour', now()), 'ERR_4005', 401, 'GET', '/recent', 7)`,
    );
    const newest = await count("SELECT max(id)::int AS n FROM error_log WHERE request_id LIKE $1 || ':%'", [tag]);

    expect(await retention().errorLog()).toBeGreaterThanOrEqual(8);
    expect(await count('SELECT count(*)::int AS n FROM error_log')).toBe(1000);
    expect(await count("SELECT count(*)::int AS n FROM error_log WHERE created_at < now() - interval '30 days'")).toBe(0);
    // The newest rows are the ones kept.
    expect(await count('SELECT count(*)::int AS n FROM error_log WHERE id > $1 - 1000', [newest])).toBe(1000);
    expect((await t().db.query('SELECT route FROM error_log_aggregates')).rows.map((r) => r.route)).toEqual(['/recent']);
  });

  it('sessions: revoked or expired SESSION_RETENTION_DAYS ago go with their refresh tokens; live and recently ended ones stay', async () => {
    const guests = await Promise.all(Array.from({ length: 4 }, () => t().createGuest()));
    const sessionOf = async (userId: string) => (await t().db.query('SELECT id FROM auth_sessions WHERE user_id = $1', [userId])).rows[0].id as string;
    const [revokedLongAgo, expiredLongAgo, live, revokedRecently] = await Promise.all(guests.map((g) => sessionOf(g.userId)));
    await t().db.query("UPDATE auth_sessions SET created_at = now() - interval '90 days' WHERE id = ANY($1::uuid[])", [[revokedLongAgo, expiredLongAgo, revokedRecently]]);
    await t().db.query("UPDATE auth_sessions SET revoked_at = now() - interval '31 days' WHERE id = $1", [revokedLongAgo]);
    await t().db.query("UPDATE auth_sessions SET revoked_at = now() - interval '2 days' WHERE id = $1", [revokedRecently]);
    await t().db.query("UPDATE refresh_tokens SET expires_at = now() - interval '31 days' WHERE session_id = $1", [expiredLongAgo]);
    // A device registered for pushes in a session that is now old keeps its token (no session named).
    const token = 'ab'.repeat(32);
    await t().db.query("INSERT INTO push_tokens (token, user_id, session_id, environment) VALUES ($1, $2, $3, 'production')", [token, guests[0]!.userId, revokedLongAgo]);

    expect(await retention().sessions()).toBe(2);
    expect((await t().db.query('SELECT user_id, session_id FROM push_tokens WHERE token = $1', [token])).rows).toEqual([{ user_id: guests[0]!.userId, session_id: null }]);
    const left = (await t().db.query('SELECT id FROM auth_sessions WHERE id = ANY($1::uuid[])', [[revokedLongAgo, expiredLongAgo, live, revokedRecently]])).rows.map((r) => r.id);
    expect(left.sort()).toEqual([live, revokedRecently].sort());
    expect(await count('SELECT count(*)::int AS n FROM refresh_tokens WHERE session_id = ANY($1::uuid[])', [[revokedLongAgo, expiredLongAgo]])).toBe(0);
    // The live session still refreshes.
    const refreshed = await t().post('/auth/v1/token?grant_type=refresh_token', { body: { refresh_token: guests[2]!.refreshToken } });
    expect(refreshed.status, await refreshed.clone().text()).toBe(200);
  });

  it('webhook events: applied ones past WEBHOOK_EVENT_RETENTION_DAYS go unless their job is still running', async () => {
    const g = await t().createGuest();
    const running = await t().json(t().generate(g, { model_id: SIM, prompt: 'still queued' })); // no worker: stays queued
    const insert = (jobId: string | null, age: string) =>
      t().db.query(
        `INSERT INTO webhook_events (provider, event_id, job_id, payload, outcome, received_at) VALUES ('fal', $1, $2, '{}', 'accepted', now() - $3::interval) RETURNING id`,
        [randomUUID(), jobId, age],
      );
    const old = (await insert(null, '31 days')).rows[0].id;
    const ofRunning = (await insert(running.job_id, '31 days')).rows[0].id;
    const recent = (await insert(null, '1 day')).rows[0].id;

    expect(await retention().webhookEvents()).toBe(1);
    const left = (await t().db.query('SELECT id FROM webhook_events WHERE id = ANY($1::bigint[]) ORDER BY id', [[old, ofRunning, recent]])).rows.map((r) => r.id);
    expect(left).toEqual([ofRunning, recent]);
  });

  it('App Store notifications: applied ones past APP_STORE_NOTIFICATION_RETENTION_DAYS go; unapplied ones and refund states stay', async () => {
    const tx = `tx-${randomUUID()}`;
    const insert = (outcome: string, age: string) =>
      t().db.query(
        `INSERT INTO app_store_notifications (notification_uuid, notification_type, transaction_id, signed_payload, outcome, received_at)
         VALUES ($1, 'REFUND', $2, 'payload', $3, now() - $4::interval) RETURNING notification_uuid`,
        [randomUUID(), tx, outcome, age],
      );
    const old = (await insert('refund_clawed_back', '181 days')).rows[0].notification_uuid;
    const unapplied = (await insert('received', '181 days')).rows[0].notification_uuid;
    const recent = (await insert('refund_clawed_back', '10 days')).rows[0].notification_uuid;
    await t().db.query("INSERT INTO app_store_refund_states (transaction_id, refunded, signed_at) VALUES ($1, true, now() - interval '181 days')", [tx]);

    expect(await retention().appStoreNotifications()).toBe(1);
    const left = (await t().db.query('SELECT notification_uuid FROM app_store_notifications WHERE transaction_id = $1', [tx])).rows.map((r) => r.notification_uuid);
    expect(left.sort()).toEqual([unapplied, recent].sort());
    expect(left).not.toContain(old);
    expect(await count('SELECT count(*)::int AS n FROM app_store_refund_states WHERE transaction_id = $1', [tx])).toBe(1);
  });

  it('limiter rows: only those whose window has ended', async () => {
    const now = Date.now();
    await t().db.query('INSERT INTO rate_limits (key, points, expire) VALUES ($1, 1, $2), ($3, 1, $4), ($5, 1, NULL)', [
      'test:ended',
      now - 1000,
      'test:running',
      now + 3_600_000,
      'test:forever',
    ]);
    expect(await retention().rateLimits()).toBe(1);
    expect((await t().db.query("SELECT key FROM rate_limits WHERE key LIKE 'test:%' ORDER BY key")).rows.map((r) => r.key)).toEqual(['test:forever', 'test:running']);
  });

  it('videos past VIDEO_RETENTION_DAYS lose their stored files and are marked expired; history still lists them; newer ones keep theirs', async () => {
    const g = await t().createGuest();
    await t().startWorker();
    const done = async (prompt: string) => {
      const { job_id } = await t().json(t().generate(g, { model_id: SIM, prompt }));
      await t().waitForJob(g.accessToken, job_id, ['completed']);
      return (await t().db.query('SELECT job_id, video_key, thumbnail_key FROM video_jobs WHERE job_id = $1', [job_id])).rows[0];
    };
    const old = await done('an old clip');
    const recent = await done('a recent clip');
    await t().stopWorker();
    await t().db.query("UPDATE video_jobs SET completed_at = now() - interval '31 days' WHERE job_id = $1", [old.job_id]);
    const store = t().services.store;
    expect(await store.get(RESULTS_BUCKET, old.video_key)).toBeDefined();

    // Off (0) deletes nothing.
    const off = new RetentionService(t().db, store, { ...t().services.config.retention, videoDays: 0 }, createLogger('silent'));
    expect(await off.videos()).toBe(0);
    expect(await store.get(RESULTS_BUCKET, old.video_key)).toBeDefined();

    expect(await retention().videos()).toBe(1);
    expect(await store.get(RESULTS_BUCKET, old.video_key)).toBeUndefined();
    if (old.thumbnail_key) expect(await store.get(RESULTS_BUCKET, old.thumbnail_key)).toBeUndefined();
    expect(await store.get(RESULTS_BUCKET, recent.video_key)).toBeDefined();
    const marks = await t().db.query('SELECT job_id, expired_at IS NOT NULL AS expired FROM video_jobs WHERE job_id = ANY($1::uuid[])', [[old.job_id, recent.job_id]]);
    expect(Object.fromEntries(marks.rows.map((r) => [r.job_id, r.expired]))).toEqual({ [old.job_id]: true, [recent.job_id]: false });
    expect(await count('SELECT count(*)::int AS n FROM storage_objects WHERE key = $1 AND deleted_at IS NULL', [old.video_key])).toBe(0);

    const history = await t().json(t().get('/functions/v1/get-video-jobs', { token: g.accessToken }));
    const listed = (history.jobs ?? history) as Array<{ job_id: string; status: string; video_url: string | null }>;
    expect(listed.find((j) => j.job_id === old.job_id)).toMatchObject({ status: 'completed', video_url: null, thumbnail_url: null });
    expect(listed.find((j) => j.job_id === recent.job_id)?.video_url).toEqual(expect.any(String));
    // A second pass finds nothing left to do.
    expect(await retention().videos()).toBe(0);
  });

  it('the retention tasks are scheduled worker tasks that run through the queue', async () => {
    await t().db.query('INSERT INTO rate_limits (key, points, expire) VALUES ($1, 1, $2)', ['test:queued-ended', Date.now() - 1000]);
    await t().startWorker();
    try {
      for (const task of ['retention_error_log', 'retention_sessions', 'retention_webhook_events', 'retention_app_store_notifications', 'retention_rate_limits', 'retention_videos'] as const) {
        await enqueue(t().db, task, {});
      }
      await waitFor(t(), async () => (await count("SELECT count(*)::int AS n FROM graphile_worker.jobs WHERE task_identifier LIKE 'retention_%'")) === 0);
      expect(await count("SELECT count(*)::int AS n FROM rate_limits WHERE key = 'test:queued-ended'")).toBe(0);
    } finally {
      await t().stopWorker();
    }
  });
});

async function waitFor(_t: TestApp, condition: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}
