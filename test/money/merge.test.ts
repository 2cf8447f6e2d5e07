import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import * as ledger from '../../src/ledger/ledger.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Money integrity regressions around Sign in with Apple merging a guest into an EXISTING Apple
 * account: the guest's idempotency keys must follow it (a retry replays, never charges twice), a
 * merge racing the guest's own generate-video requests must neither deadlock nor strand jobs or
 * holds on the tombstone, and the shipped app (legacy anon-key mode, naming the guest's id after
 * the merge) must get the same guarantees. The worker is not started: jobs stay queued with their
 * holds open.
 */

const SIM = 'simulator-text-to-video'; // 1 credit
const STARTER = 'com.rendioai.credits.starter.25';

const { fakes: appStore, txId } = useAppStoreFakes();
const apple = useFakeAppleId();

const signIn = (t: TestApp, idToken: string, guest?: Guest) =>
  t.post('/auth/v1/token?grant_type=id_token', { token: guest?.accessToken, body: { provider: 'apple', id_token: idToken } });

async function account(t: TestApp, userId: string): Promise<{ balance: number; held: number }> {
  const { rows } = await t.db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [userId]);
  return rows[0];
}

async function jobsAndHolds(t: TestApp, userId: string) {
  const jobs = (await t.db.query('SELECT job_id FROM video_jobs WHERE user_id = $1 ORDER BY job_id', [userId])).rows.map((r) => r.job_id);
  const holds = (await t.db.query("SELECT job_id FROM credit_holds WHERE user_id = $1 AND status = 'open' ORDER BY job_id", [userId])).rows.map((r) => r.job_id);
  return { jobs, holds };
}

/** The retry replays the first answer, and the account holds that one job (20 credits, 1 held). */
async function expectReplayOfOnlyJob(t: TestApp, retry: Promise<Response>, jobId: string, accountId: string): Promise<void> {
  const res = await retry;
  const body = (await res.json()) as { job_id?: string };
  expect({ status: res.status, replay: res.headers.get('x-idempotent-replay'), job_id: body.job_id }).toEqual({ status: 200, replay: 'true', job_id: jobId });
  expect(await jobsAndHolds(t, accountId)).toEqual({ jobs: [jobId], holds: [jobId] });
  expect(await account(t, accountId)).toEqual({ balance: 20, held: 1 });
}

/** An existing Apple account that owns 10 credits of its own (a guest that became it). */
async function appleAccount(t: TestApp): Promise<{ sub: string; userId: string; accessToken: string }> {
  const sub = appleSub();
  const g0 = await t.createGuest();
  const res = await t.json(signIn(t, await apple.identityToken({ sub }), g0));
  expect(res.user.id).toBe(g0.userId);
  return { sub, userId: res.user.id, accessToken: res.access_token };
}

describe('money integrity: a guest merged into an existing Apple account', () => {
  const t = useTestApp(() => apple.env());

  it("the guest's Idempotency-Key follows it: the account's retry of the same generate-video replays the guest's job instead of charging again", async () => {
    const a = await appleAccount(t());
    const g = await t().createGuest();
    const key = randomUUID().toUpperCase();
    const body = { model_id: SIM, prompt: 'made just before signing in' };
    const first = await t().json(t().generate(g, body, key));

    const merged = await t().json(signIn(t(), await apple.identityToken({ sub: a.sub }), g));
    expect(merged.user.id).toBe(a.userId);
    expect(await account(t(), a.userId)).toEqual({ balance: 20, held: 1 });

    // The app did not see the first answer (network) and retries with the session it now has.
    await expectReplayOfOnlyJob(t(), t().post('/functions/v1/generate-video', { token: merged.access_token, body, headers: { 'idempotency-key': key } }), first.job_id, a.userId);
  });

  it('signing in to an existing Apple account while the guest fires 30 generate-video requests never deadlocks or answers 5xx, and every job and open hold ends on the account (5 rounds)', async () => {
    const a = await appleAccount(t());
    for (let round = 0; round < 5; round++) {
      const g = await t().createGuest();
      await ledger.adminAdjust(t().db, { userId: g.userId, amount: 30, reason: 'test: enough for every request' });
      const idToken = await apple.identityToken({ sub: a.sub });
      const prompt = (i: number) => `race ${round}.${i} [sim:hang]`;

      const gens: Promise<Response>[] = [];
      for (let i = 0; i < 10; i++) gens.push(t().generate(g, { model_id: SIM, prompt: prompt(i) }));
      const signedIn = signIn(t(), idToken, g);
      for (let i = 10; i < 30; i++) gens.push(t().generate(g, { model_id: SIM, prompt: prompt(i) }));
      const [signInRes, ...genRes] = await Promise.all([signedIn, ...gens]);

      const signInText = await signInRes.text();
      const failures = await Promise.all(genRes.filter((r) => r.status >= 500).map(async (r) => `HTTP ${r.status}: ${await r.text()}`));
      expect({ round, signIn: signInRes.status === 200 ? 200 : `HTTP ${signInRes.status}: ${signInText}`, generate5xx: failures }).toEqual({
        round,
        signIn: 200,
        generate5xx: [],
      });
      expect(JSON.parse(signInText).user.id).toBe(a.userId);

      // Whatever was created before or during the merge belongs to the account now.
      const created = await t().db.query(
        `SELECT j.job_id, j.user_id AS job_owner, h.user_id AS hold_owner, h.status AS hold_status
           FROM video_jobs j LEFT JOIN credit_holds h ON h.job_id = j.job_id WHERE j.prompt LIKE $1`,
        [`race ${round}.%`],
      );
      const accepted = genRes.filter((r) => r.status === 200).length;
      expect(created.rows).toHaveLength(accepted);
      for (const row of created.rows) expect(row, `round ${round}`).toMatchObject({ job_owner: a.userId, hold_owner: a.userId, hold_status: 'open' });
      expect({ round, guestTombstone: await account(t(), g.userId), guestHolds: await jobsAndHolds(t(), g.userId) }).toEqual({
        round,
        guestTombstone: { balance: 0, held: 0 },
        guestHolds: { jobs: [], holds: [] },
      });
    }
  });

  it('a guest signing in with the Apple ID of a deleted account starts a new account: its credits never land on the deleted one', async () => {
    const a = await appleAccount(t());
    await t().json(t().post('/functions/v1/delete-account', { token: a.accessToken }));
    expect(await account(t(), a.userId)).toEqual({ balance: 0, held: 0 }); // forfeited with the account

    const g = await t().createGuest();
    const res = await t().json(signIn(t(), await apple.identityToken({ sub: a.sub }), g));
    expect(res.user.id).toBe(g.userId); // the guest became the (new) account for that Apple ID
    expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });
    expect(await account(t(), a.userId)).toEqual({ balance: 0, held: 0 });
  });

  it('deleting the account while a guest merges into it: whichever commits first, nothing is left on a deleted account', async () => {
    for (let round = 0; round < 5; round++) {
      const a = await appleAccount(t());
      const g = await t().createGuest();
      await t().json(t().generate(g, { model_id: SIM, prompt: `running while merging ${round}` }));
      const idToken = await apple.identityToken({ sub: a.sub });
      const [merge, deletion] = await Promise.all([
        signIn(t(), idToken, g),
        t().post('/functions/v1/delete-account', { token: a.accessToken }),
      ]);
      expect(deletion.status, await deletion.clone().text()).toBe(200);
      expect(merge.status, await merge.clone().text()).toBeLessThan(500);
      // The deleted account holds nothing and no job of it is still running.
      expect(await account(t(), a.userId)).toEqual({ balance: 0, held: 0 });
      const running = await t().db.query("SELECT count(*)::int AS n FROM video_jobs WHERE user_id = $1 AND status NOT IN ('completed', 'failed')", [a.userId]);
      expect(running.rows[0].n).toBe(0);
      if (merge.status === 200) {
        const body = (await merge.json()) as any;
        // Merged before the deletion (credits forfeited with it), or the guest became a fresh account.
        expect([a.userId, g.userId]).toContain(body.user.id);
        if (body.user.id === g.userId) expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 1 });
      }
    }
  });
});

describe('money integrity: the shipped app (legacy anon-key mode) names the guest id after the merge', () => {
  const ANON = 'anon-key-for-the-shipped-app-0123456789';
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true', ...apple.env(), ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true' }));
  const legacy = { token: ANON, headers: { apikey: ANON } };
  const mergeLegacy = (g: Guest, sub: string) =>
    t().json(t().post('/functions/v1/merge-guest-user', { ...legacy, body: { device_id: g.deviceId, apple_sub: sub } }));

  it("a generate-video retried with the guest's user_id and the same Idempotency-Key after the merge replays the guest's job", async () => {
    const a = await appleAccount(t());
    const g = await t().createGuest();
    const key = randomUUID().toUpperCase();
    const body = { user_id: g.userId, model_id: SIM, prompt: 'made by the shipped app before signing in' };
    const send = () => t().post('/functions/v1/generate-video', { ...legacy, headers: { ...legacy.headers, 'idempotency-key': key }, body });
    const first = await t().json(send());

    expect(await mergeLegacy(g, a.sub)).toMatchObject({ success: true, merged: 'merged', user: { id: a.userId } });

    await expectReplayOfOnlyJob(t(), send(), first.job_id, a.userId);
  });

  it("a purchase in flight during the merge lands on the account, and the app's re-send with the guest's user_id answers already_processed", async () => {
    const a = await appleAccount(t());
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const gate = appStore().production.server.gate(new RegExp(`/inApps/v1/transactions/${tx.transactionId}$`));
    const send = () =>
      t().post('/functions/v1/update-credits', { ...legacy, body: { user_id: g.userId, transaction_id: tx.transactionId, product_id: STARTER } });

    const pending = send();
    let reached = false;
    await Promise.race([
      gate.reached.then(() => (reached = true)),
      pending.then((r) => {
        if (!reached) throw new Error(`update-credits answered HTTP ${r.status} before asking Apple`);
      }),
    ]);
    try {
      expect(await mergeLegacy(g, a.sub)).toMatchObject({ success: true, merged: 'merged', user: { id: a.userId } });
    } finally {
      gate.release();
    }
    expect((await pending).status).toBeLessThan(500);

    expect({ account: await account(t(), a.userId), guestTombstone: await account(t(), g.userId) }).toEqual({
      account: { balance: 45, held: 0 },
      guestTombstone: { balance: 0, held: 0 },
    });
    const retry = await t().json(send());
    expect(retry).toMatchObject({ credits_added: 25, total_credits: 45, already_processed: true });
  });
});
