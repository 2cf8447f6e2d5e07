import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as ledger from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { ADMIN_PASSWORD, createAdmin, totpCode, type TestAdmin } from '../support/admin.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/** Every admin API action, through HTTP, with its audit row and its effect on the app's API. */

const t = useTestApp();

const grant = (admin: TestAdmin, userId: string, body: unknown, key: string | undefined = randomUUID(), path = `/admin/api/users/${userId}/credits/grant`) =>
  t().post(path, { token: admin.token, body, headers: key ? { 'idempotency-key': key } : {} });
const clawback = (admin: TestAdmin, userId: string, body: unknown, key = randomUUID()) =>
  t().post(`/admin/api/users/${userId}/credits/clawback`, { token: admin.token, body, headers: { 'idempotency-key': key } });
const credits = async (g: Guest) => (await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining as number;
const auditRows = async (userId: string) =>
  (await t().db.query('SELECT * FROM admin_actions WHERE target_id = $1 ORDER BY id', [userId])).rows;
const errorCode = async (res: Response) => ((await res.json()) as any).error.code;

async function getModels(t: TestApp) {
  const res = await t.get('/functions/v1/get-models');
  expect(res.status).toBe(200);
  return { etag: res.headers.get('etag')!, models: ((await res.json()) as any).models as any[] };
}

describe('admin sign-in', () => {
  it('gives an API token for the right password, 401 ERR_4025 for a wrong one or an unknown email', async () => {
    const admin = await createAdmin(t());
    expect(admin.token).toMatch(/^rdadm_/);
    const wrong = await t().post('/admin/api/login', { body: { email: admin.email, password: 'not the password' } });
    expect(wrong.status).toBe(401);
    expect(await errorCode(wrong)).toBe('ERR_4025');
    const nobody = await t().post('/admin/api/login', { body: { email: 'nobody@example.com', password: ADMIN_PASSWORD } });
    expect(await errorCode(nobody)).toBe('ERR_4025');
  });

  it('locks an email after too many failures from one address (429 ERR_4004 with Retry-After), even with the right password', async () => {
    const admin = await createAdmin(t(), { signIn: false });
    for (let i = 0; i < 5; i++) {
      const res = await t().post('/admin/api/login', { body: { email: admin.email, password: `guess ${i}` } });
      expect(res.status, `attempt ${i}`).toBe(401);
    }
    const locked = await t().post('/admin/api/login', { body: { email: admin.email, password: ADMIN_PASSWORD } });
    expect(locked.status, await locked.clone().text()).toBe(429);
    expect(await errorCode(locked)).toBe('ERR_4004');
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('failures older than the window no longer count, and are pruned by the next sign-in', async () => {
    const admin = await createAdmin(t(), { signIn: false });
    await t().db.query(
      "INSERT INTO admin_login_attempts (email, ip, created_at) SELECT $1, 'unknown', now() - interval '2 hours' FROM generate_series(1, 10)",
      [admin.email],
    );
    const res = await t().post('/admin/api/login', { body: { email: admin.email, password: ADMIN_PASSWORD } });
    expect(res.status, await res.clone().text()).toBe(200);
    const { rows } = await t().db.query("SELECT count(*)::int AS n FROM admin_login_attempts WHERE created_at < now() - interval '1 hour'");
    expect(rows[0].n).toBe(0);
  });

  it('asks for the one-time code when the admin has TOTP, and a code works once', async () => {
    const admin = await createAdmin(t(), { totp: true }); // signed in with the current code
    expect(admin.token).toMatch(/^rdadm_/);
    const without = await t().post('/admin/api/login', { body: { email: admin.email, password: ADMIN_PASSWORD } });
    expect(await errorCode(without)).toBe('ERR_4025');
    const wrong = await t().post('/admin/api/login', { body: { email: admin.email, password: ADMIN_PASSWORD, totp: '000000' === totpCode(admin.totpSecret!) ? '111111' : '000000' } });
    expect(await errorCode(wrong)).toBe('ERR_4025');
    // The code it signed in with, not the current one: the test may outlast a 30 s step (three password hashes).
    const replayed = await t().post('/admin/api/login', { body: { email: admin.email, password: ADMIN_PASSWORD, totp: admin.signedInWith } });
    expect(replayed.status, 'the code of a step already used').toBe(401);
  });

  it('logout revokes the token', async () => {
    const admin = await createAdmin(t());
    expect((await t().post('/admin/api/logout', { token: admin.token })).status).toBe(204);
    const after = await t().get('/admin/api/dashboard', { token: admin.token });
    expect(after.status).toBe(401);
  });

  it.each([
    ['an empty body and no Content-Type', { rawBody: '' }],
    ['a text/plain body', { rawBody: 'bye', headers: { 'content-type': 'text/plain' } }],
  ])('logout takes no body: with %s it still revokes the token', async (_what, opts) => {
    const admin = await createAdmin(t());
    const res = await t().post('/admin/api/logout', { token: admin.token, ...opts });
    expect(res.status, await res.text()).toBe(204);
    expect((await t().get('/admin/api/dashboard', { token: admin.token })).status).toBe(401);
  });
});

describe('grant and claw back credits', () => {
  it('grants through the ledger with an audit row; the same key again moves nothing and answers the first result', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const key = randomUUID();
    const first = await t().json(grant(admin, g.userId, { amount: 5, reason: 'video failed twice (ticket 12)' }, key));
    expect(first.replayed).toBe(false);
    expect(first.action).toMatchObject({ action: 'grant_credits', target_id: g.userId, amount: 5, reason: 'video failed twice (ticket 12)', admin_id: admin.id });
    expect(first.action.before).toMatchObject({ balance: 10, available: 10 });
    expect(first.action.after).toMatchObject({ balance: 15, available: 15 });
    expect(await credits(g)).toBe(15);

    const again = await t().json(grant(admin, g.userId, { amount: 5, reason: 'video failed twice (ticket 12)' }, key));
    expect(again).toEqual({ ...first, replayed: true });
    expect(await credits(g)).toBe(15);

    const { rows } = await t().db.query("SELECT * FROM ledger_entries WHERE user_id = $1 AND kind = 'admin_grant'", [g.userId]);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ amount: 5, admin_action_id: first.action.id, reason: 'video failed twice (ticket 12)' });
    expect(await auditRows(g.userId)).toHaveLength(1);
  });

  it('concurrent retries of one key grant once', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const key = randomUUID();
    const results = await Promise.all(Array.from({ length: 5 }, () => t().json(grant(admin, g.userId, { amount: 3, reason: 'goodwill' }, key))));
    expect(results.filter((r) => !r.replayed)).toHaveLength(1);
    expect(await credits(g)).toBe(13);
  });

  it('refuses a reused key with a different request (422 ERR_4010), a missing key (400 ERR_4018), a missing reason (400 ERR_4008)', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const key = randomUUID();
    await t().json(grant(admin, g.userId, { amount: 2, reason: 'first' }, key));
    const reused = await grant(admin, g.userId, { amount: 9, reason: 'first' }, key);
    expect(reused.status).toBe(422);
    expect(await errorCode(reused)).toBe('ERR_4010');
    const noKey = await grant(admin, g.userId, { amount: 2, reason: 'first' }, '');
    expect(noKey.status).toBe(400);
    expect(await errorCode(noKey)).toBe('ERR_4018');
    for (const body of [{ amount: 2 }, { amount: 2, reason: '  ' }, { amount: 0, reason: 'zero' }, { amount: -4, reason: 'negative' }, { amount: 2.5, reason: 'half' }]) {
      const res = await grant(admin, g.userId, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(await errorCode(res)).toBe('ERR_4008');
    }
    expect(await credits(g)).toBe(12);
    expect(await auditRows(g.userId)).toHaveLength(1);
  });

  it('404 for an unknown user, 409 ERR_4026 for a deleted account', async () => {
    const admin = await createAdmin(t());
    const unknown = await grant(admin, randomUUID(), { amount: 1, reason: 'nobody' });
    expect(unknown.status).toBe(404);
    const g = await t().createGuest();
    expect((await t().post('/functions/v1/delete-account', { token: g.accessToken })).status).toBe(200);
    const closed = await grant(admin, g.userId, { amount: 1, reason: 'too late' });
    expect(closed.status).toBe(409);
    expect(await errorCode(closed)).toBe('ERR_4026');
  });

  it('claws back at most what is available: never below zero, never credits held by running jobs', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    await ledger.hold(t().db, { userId: g.userId, amount: 4, jobId: randomUUID() });
    expect(await credits(g)).toBe(6);
    const r = await t().json(clawback(admin, g.userId, { amount: 8, reason: 'chargeback' }));
    expect(r.action).toMatchObject({ action: 'clawback_credits', amount: 8, moved: 6 });
    expect(r.action.after).toMatchObject({ balance: 4, held: 4, available: 0, shortfall: 2, debt: 2 });
    const account = await ledger.getAccount(t().db, g.userId);
    expect(account).toEqual({ balance: 4, held: 4, available: 0, debt: 2 });
    const { rows } = await t().db.query("SELECT amount, shortfall FROM ledger_entries WHERE user_id = $1 AND kind = 'admin_clawback'", [g.userId]);
    expect(rows).toEqual([{ amount: -6, shortfall: 2 }]);
    // Nothing left to take: recorded, moves nothing.
    const empty = await t().json(clawback(admin, g.userId, { amount: 1, reason: 'again' }));
    expect(empty.action.after).toMatchObject({ balance: 4, shortfall: 1, debt: 3 });
    expect(empty.action).toMatchObject({ amount: 1, moved: 0 });
  });

  it('verify-ledger sees an admin entry that disagrees with its audit row', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const client = await t().db.connect();
    try {
      await client.query('BEGIN');
      const { rows } = await client.query(
        `INSERT INTO admin_actions (admin_id, action, target_type, target_id, amount, reason, request_id)
         VALUES ($1, 'grant_credits', 'user', $2, 5, 'audit says 5', 'test') RETURNING id`,
        [admin.id, g.userId],
      );
      // The ledger says 7: totals kept consistent, so only the audit check can notice.
      await client.query(
        `INSERT INTO ledger_entries (user_id, kind, amount, admin_action_id, reason, balance_after, held_after)
         VALUES ($1, 'admin_grant', 7, $2, 'ledger says 7', 17, 0)`,
        [g.userId, rows[0].id],
      );
      await client.query('UPDATE credit_accounts SET balance = 17 WHERE user_id = $1', [g.userId]);
      const violations = await verifyLedger(client);
      expect(violations.map((v) => v.check)).toEqual(["an admin grant or clawback matches its audit row: same user's chain, amount, clamp at zero"]);
      expect(violations[0]!.rows[0]).toMatchObject({ user_id: g.userId, amount: 7, action_amount: 5 });
    } finally {
      await client.query('ROLLBACK');
      client.release();
    }
  });

  it('the audit log is append-only', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    await t().json(grant(admin, g.userId, { amount: 1, reason: 'test' }));
    await expect(t().db.query("UPDATE admin_actions SET reason = 'edited' WHERE target_id = $1", [g.userId])).rejects.toThrow(/append-only/);
    await expect(t().db.query('DELETE FROM admin_actions WHERE target_id = $1', [g.userId])).rejects.toThrow(/append-only/);
  });
});

describe('models', () => {
  it('disabling a model removes it from get-models and changes the ETag; enabling brings it back; audited', async () => {
    const admin = await createAdmin(t());
    const before = await getModels(t());
    expect(before.models.map((m) => m.id)).toContain('pika-2.2-text-to-video');
    const r = await t().json(t().patch('/admin/api/models/pika-2.2-text-to-video', { token: admin.token, body: { is_available: false, reason: 'provider outage' } }));
    expect(r.model.is_available).toBe(false);
    expect(r.action).toMatchObject({ action: 'update_model', target_type: 'model', target_id: 'pika-2.2-text-to-video', reason: 'provider outage' });
    expect(r.action.before).toMatchObject({ is_available: true });
    expect(r.action.after).toMatchObject({ is_available: false });
    const after = await getModels(t());
    expect(after.models.map((m) => m.id)).not.toContain('pika-2.2-text-to-video');
    expect(after.etag).not.toBe(before.etag);
    expect((await t().get('/functions/v1/get-models', { headers: { 'if-none-match': before.etag } })).status).toBe(200);
    await t().json(t().patch('/admin/api/models/pika-2.2-text-to-video', { token: admin.token, body: { is_available: true } }));
    expect((await getModels(t())).models.map((m) => m.id)).toContain('pika-2.2-text-to-video');
  });

  it('edits the price and the featured flag (get-models shows them), and refuses the price field of the other pricing type', async () => {
    const admin = await createAdmin(t());
    const before = await getModels(t());
    const sim = before.models.find((m) => m.id === 'simulator-text-to-video')!;
    const field = sim.pricing_type === 'per_video' ? 'cost_per_generation' : 'credits_per_second';
    const other = field === 'cost_per_generation' ? 'credits_per_second' : 'cost_per_generation';
    await t().json(t().patch('/admin/api/models/simulator-text-to-video', { token: admin.token, body: { [field]: 3, is_featured: !sim.is_featured } }));
    const after = await getModels(t());
    const changed = after.models.find((m) => m.id === 'simulator-text-to-video')!;
    expect(changed.is_featured).toBe(!sim.is_featured);
    expect(changed[field] ?? changed.cost_per_generation).toBe(3);
    expect(after.etag).not.toBe(before.etag);
    const wrong = await t().patch('/admin/api/models/simulator-text-to-video', { token: admin.token, body: { [other]: 2 } });
    expect(wrong.status).toBe(400);
    const empty = await t().patch('/admin/api/models/simulator-text-to-video', { token: admin.token, body: {} });
    expect(empty.status).toBe(400);
    expect((await t().patch('/admin/api/models/no-such-model', { token: admin.token, body: { is_featured: true } })).status).toBe(404);
    await t().json(t().patch('/admin/api/models/simulator-text-to-video', { token: admin.token, body: { [field]: sim[field] ?? sim.cost_per_generation, is_featured: sim.is_featured } }));
  });

  it("makes another model the app's active one (the previous one stops, audited too), moves it in the catalogue, and refuses to leave the app with no model unless confirmed", async () => {
    const admin = await createAdmin(t());
    const activeModel = async () => (await t().json(t().get('/rest/v1/models?is_active=eq.true&is_available=eq.true&select=id'))) as { id: string }[];
    const patch = (id: string, body: Record<string, unknown>) => t().patch(`/admin/api/models/${id}`, { token: admin.token, body });
    const [previous] = await activeModel();
    expect(previous).toBeDefined();

    const made = await t().json(patch('simulator-text-to-video', { is_active: true, sort_order: 1, reason: 'provider outage: simulator for the demo' }));
    expect(made.model).toMatchObject({ is_active: true, sort_order: 1 });
    expect(await activeModel()).toEqual([{ id: 'simulator-text-to-video' }]);
    expect((await getModels(t())).models.filter((m) => !m.is_featured)[0]!.id).toBe('simulator-text-to-video');
    const { rows: audit } = await t().db.query<{ target_id: string; reason: string; before: { is_active: boolean }; after: { is_active: boolean } }>(
      "SELECT target_id, reason, before, after FROM admin_actions WHERE action = 'update_model' AND request_id = $1 ORDER BY id",
      [made.action.request_id],
    );
    expect(audit.map((a) => [a.target_id, a.before.is_active, a.after.is_active, a.reason])).toEqual([
      [previous!.id, true, false, 'provider outage: simulator for the demo'],
      ['simulator-text-to-video', false, true, 'provider outage: simulator for the demo'],
    ]);

    // Disabling the app's only active model would empty its catalogue: refused, nothing changed.
    const refused = await patch('simulator-text-to-video', { is_available: false, reason: 'oops' });
    expect(refused.status).toBe(409);
    expect(await errorCode(refused)).toBe('ERR_4028');
    expect(await activeModel()).toEqual([{ id: 'simulator-text-to-video' }]);
    const confirmed = await patch('simulator-text-to-video', { is_available: false, reason: 'really', confirm_empty_catalogue: true });
    expect(confirmed.status).toBe(200);
    expect(await activeModel()).toEqual([]);
    // Back as it was.
    await t().json(patch(previous!.id, { is_active: true, reason: 'restore' }));
    await t().json(patch('simulator-text-to-video', { is_available: true, sort_order: 100, reason: 'restore' }));
    expect(await activeModel()).toEqual([previous]);
  });

  it('the seed alias admin-toggle-model flips availability', async () => {
    const admin = await createAdmin(t());
    const off = await t().json(t().post('/functions/v1/admin-toggle-model', { token: admin.token, body: { model_id: 'runway-gen4.5' } }));
    expect(off.model.is_available).toBe(false);
    const on = await t().json(t().post('/functions/v1/admin-toggle-model', { token: admin.token, body: { model_id: 'runway-gen4.5' } }));
    expect(on.model.is_available).toBe(true);
  });
});

describe('look-ups, stats, timelines, failures, dashboard, audit log', () => {
  it('finds a user by id, device id, Apple sub and email', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    await t().db.query("UPDATE users SET apple_sub = $2, email = 'Someone@Example.com' WHERE id = $1", [g.userId, `sub.${g.userId}`]);
    for (const q of [g.userId, g.deviceId, `sub.${g.userId}`, 'someone@example.com']) {
      const r = await t().json(t().get(`/admin/api/users?q=${encodeURIComponent(q)}`, { token: admin.token }));
      expect(r.users.map((u: any) => u.id), q).toEqual([g.userId]);
      expect(r.users[0]).toMatchObject({ balance: 10, available: 10 });
    }
    expect((await t().json(t().get('/admin/api/users?q=nothing-like-this', { token: admin.token }))).users).toEqual([]);
  });

  it("a user's stats, ledger and jobs; a job's timeline; failures by provider; the dashboard", async () => {
    const admin = await createAdmin(t());
    await t().startWorker();
    const g = await t().createGuest();
    const ok = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a calm lake at dawn' }));
    await t().waitForJob(g.accessToken, ok.job_id);
    const failing = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a stormy sea [sim:fail]' }));
    expect((await t().waitForJob(g.accessToken, failing.job_id)).status).toBe('failed');

    const stats = await t().json(t().get(`/admin/api/users/${g.userId}/stats`, { token: admin.token }));
    expect(stats.stats).toMatchObject({ jobs_total: 2, jobs_by_status: { completed: 1, failed: 1 }, success_rate: 0.5, credits_spent: 1, credits_released: 1 });
    const alias = await t().json(t().get(`/functions/v1/admin-user-stats?user_id=${g.userId}`, { token: admin.token }));
    expect(alias).toEqual(stats);

    const detail = await t().json(t().get(`/admin/api/users/${g.userId}`, { token: admin.token }));
    expect(detail.jobs.map((j: any) => j.job_id).sort()).toEqual([ok.job_id, failing.job_id].sort());
    expect(detail.entries.map((e: any) => e.kind)).toEqual(expect.arrayContaining(['grant', 'hold', 'capture']));

    const timeline = await t().json(t().get(`/admin/api/jobs/${ok.job_id}`, { token: admin.token }));
    expect(timeline.job).toMatchObject({ job_id: ok.job_id, status: 'completed', provider: 'simulator' });
    const whats = timeline.events.map((e: any) => `${e.kind}:${e.what}`);
    expect(whats).toEqual(expect.arrayContaining(['state:queued', 'state:submitted', 'state:completed', 'ledger:hold', 'ledger:capture']));
    expect((await t().get(`/admin/api/jobs/${randomUUID()}`, { token: admin.token })).status).toBe(404);

    const failures = await t().json(t().get('/admin/api/failures?hours=1', { token: admin.token }));
    const sim = failures.providers.find((p: any) => p.provider === 'simulator');
    expect(sim).toMatchObject({ completed: 1, failed: 1, failure_rate: 0.5, by_error: { ERR_5002: 1 } });
    expect(failures.recent.map((j: any) => j.job_id)).toEqual([failing.job_id]);
    const failedTimeline = await t().json(t().get(`/admin/api/jobs/${failing.job_id}`, { token: admin.token }));
    expect(failedTimeline.events.map((e: any) => `${e.kind}:${e.what}`)).toEqual(expect.arrayContaining(['state:failed', 'error:ERR_5002', 'ledger:release']));

    const dash = await t().json(t().get('/admin/api/dashboard', { token: admin.token }));
    expect(dash.jobs_by_status.completed).toBeGreaterThanOrEqual(1);
    expect(dash.providers.map((p: any) => p.provider)).toContain('simulator');
    expect(dash.open_holds).toMatchObject({ count: expect.any(Number), credits: expect.any(Number) });
  });

  it('the audit log pages newest first', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    for (let i = 1; i <= 5; i++) await t().json(grant(admin, g.userId, { amount: i, reason: `step ${i}` }));
    const page1 = await t().json(t().get('/admin/api/audit?limit=3', { token: admin.token }));
    expect(page1.actions).toHaveLength(3);
    expect(page1.actions.map((a: any) => a.amount)).toEqual([5, 4, 3]);
    expect(page1.actions[0]).toMatchObject({ admin_email: admin.email, request_id: expect.any(String) });
    expect(page1.actions[0]).not.toHaveProperty('idempotency_key');
    const page2 = await t().json(t().get(`/admin/api/audit?limit=3&before=${page1.next_before}`, { token: admin.token }));
    expect(page2.actions.slice(0, 2).map((a: any) => a.amount)).toEqual([2, 1]);
  });

  it('the seed alias admin-refund-credits grants, idempotently', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const key = randomUUID();
    const body = { user_id: g.userId, amount: 4, reason: 'refund via alias' };
    const r1 = await t().json(t().post('/functions/v1/admin-refund-credits', { token: admin.token, body, headers: { 'idempotency-key': key } }));
    const r2 = await t().json(t().post('/functions/v1/admin-refund-credits', { token: admin.token, body, headers: { 'idempotency-key': key } }));
    expect(r1.replayed).toBe(false);
    expect(r2.replayed).toBe(true);
    expect(await credits(g)).toBe(14);
  });
});
