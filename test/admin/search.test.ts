import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { USER_SEARCH_SQL, userSearchParams } from '../../src/admin/queries/reports.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { createAdmin } from '../support/admin.js';
import { useTestApp } from '../support/harness.js';
import { planOf } from './plan.js';

/**
 * The support team's search: every way a support ticket names a user finds them — the start of a
 * user or job id, a device id or email in any case and whole or its start, an Apple sub, an App
 * Store transaction id — and each is read from an index, never a scan of users or jobs.
 */

const { fakes: appStore, txId } = useAppStoreFakes();
const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));

interface Hit {
  id: string;
  matched: string;
  exact: boolean;
}

async function search(token: string, q: string): Promise<Hit[]> {
  return (await t().json(t().get(`/admin/api/users?q=${encodeURIComponent(q)}`, { token }))).users as Hit[];
}

describe('admin search', () => {
  it('finds a user by id prefix, device id (any case, its start), email (any case), Apple sub, job id (or its start) and App Store transaction id', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const apple = await t().createGuest();
    const sub = `001234.${randomUUID().replace(/-/g, '')}.0042`;
    const job = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a kite over a beach' }));
    // A purchase through the app's own endpoint (the App Store fake signs it), before the Apple sign-in.
    const { transactionId } = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
    await t().json(t().post('/functions/v1/update-credits', { token: apple.accessToken, body: { transaction_id: transactionId } }));
    await t().db.query("UPDATE users SET apple_sub = $2, email = 'Kite.Flyer@Example.com' WHERE id = $1", [apple.userId, sub]);
    const cases: [string, string, string][] = [
      [g.deviceId.toLowerCase().slice(0, 10), g.userId, 'device id'],
      [g.deviceId.toLowerCase(), g.userId, 'device id'],
      [g.userId.slice(0, 8), g.userId, 'user id'],
      [g.userId.toUpperCase(), g.userId, 'user id'],
      ['KITE.FLYER@example.COM', apple.userId, 'email'],
      ['kite.fl', apple.userId, 'email'],
      [sub, apple.userId, 'Apple sub'],
      [job.job_id, g.userId, `job ${job.job_id}`],
      [job.job_id.slice(0, 13), g.userId, `job ${job.job_id}`],
      [transactionId, apple.userId, `App Store transaction ${transactionId}`],
    ];
    for (const [q, userId, how] of cases) {
      const hits = await search(admin.token, q);
      const hit = hits.find((h) => h.id === userId);
      expect(hit?.matched, `search for ${q}`).toContain(how);
    }
    // A whole match lists only the users it names, not those whose ids merely start the same way.
    const other = await t().createGuest(`${g.deviceId.slice(0, 30)}${randomUUID().slice(0, 6).toUpperCase()}`);
    expect((await search(admin.token, g.deviceId.toLowerCase())).map((h) => [h.id, h.exact])).toEqual([[g.userId, true]]);
    expect((await search(admin.token, g.deviceId.slice(0, 30))).map((h) => h.id).sort()).toEqual([g.userId, other.userId].sort());
    // LIKE's wildcards in a term match only themselves.
    expect(await search(admin.token, '%')).toEqual([]);
    expect(await search(admin.token, '_')).toEqual([]);
  });

  it('every way of searching reads an index: the plan has no sequential scan of users, jobs or App Store transactions', async () => {
    const plan = await planOf(t().db, USER_SEARCH_SQL, userSearchParams('Abcd1234'));
    expect(plan.scanned).toEqual([]);
    // The prefix branches take their 50 in the index's order: a sort would read every match first.
    expect(plan.sortKeys.filter((k) => k.includes('lower('))).toEqual([]);
    expect(plan.indexes).toEqual(
      new Set(['users_pkey', 'users_device_id_prefix', 'users_onboarded_device', 'users_apple_sub_key', 'users_email_prefix', 'video_jobs_pkey', 'iap_transactions_pkey', 'credit_accounts_pkey']),
    );
  });
});
