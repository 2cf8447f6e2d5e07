import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createAdmin } from '../support/admin.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * A clawback that finds the credits held by running jobs takes what is available and leaves the
 * rest as the account's debt, which every later release and credit pays first. Without it, a user
 * who holds everything in running jobs when Apple refunds (or support claws back) cancels the jobs
 * and keeps credits that were paid back.
 */

const { fakes: appStore, txId } = useAppStoreFakes();
const STARTER = 'com.rendioai.credits.starter.25';

const notify = (t: TestApp, body: unknown) => t.post('/functions/v1/apple-server-notifications', { body });

async function credits(t: TestApp, g: Guest): Promise<{ credits_remaining: number; balance: number; held: number; debt: number }> {
  return t.json(t.get('/functions/v1/get-user-credits', { token: g.accessToken }));
}

/** Jobs that never finish on their own (the simulator hangs), holding `each` credits apiece. */
async function holdInJobs(t: TestApp, g: Guest, sizes: number[]): Promise<string[]> {
  const ids: string[] = [];
  for (const size of sizes) {
    const body =
      size === 1
        ? { model_id: 'simulator-text-to-video', prompt: 'held [sim:hang]' }
        : { model_id: 'veo-3.1-text-to-video', prompt: 'held [sim:hang]', settings: { duration: size } };
    ids.push((await t.json(t.generate(g, body))).job_id);
  }
  return ids;
}

const cancel = (t: TestApp, g: Guest, jobId: string) => t.json(t.post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: jobId } }));

describe('money integrity: a clawback shortfall is a debt, collected before anything becomes available', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));

  async function buyerHoldingEverything(): Promise<{ g: Guest; tx: { transactionId: string; productId: string }; jobs: string[] }> {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    await t().json(t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId } }));
    const jobs = await holdInJobs(t(), g, [8, 8, 8, 8, 1, 1, 1]); // all 35 (10 free + 25 bought)
    expect(await credits(t(), g)).toMatchObject({ credits_remaining: 0, balance: 35, held: 35 });
    return { g, tx, jobs };
  }

  it('an Apple REFUND while every credit is held: cancelling the jobs pays the 25 back first, and the user keeps the 10 free credits', async () => {
    const { g, tx, jobs } = await buyerHoldingEverything();
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now(), revocationReason: 1 });
    expect(await t().json(notify(t(), refund))).toEqual({ received: true, outcome: 'refund_clawed_back' });
    expect(await credits(t(), g)).toEqual({ credits_remaining: 0, balance: 35, held: 35, debt: 25 });

    await cancel(t(), g, jobs[0]!); // 8 released: all of it pays the debt
    expect(await credits(t(), g)).toEqual({ credits_remaining: 0, balance: 27, held: 27, debt: 17 });
    for (const id of jobs.slice(1)) await cancel(t(), g, id);
    expect(await credits(t(), g)).toEqual({ credits_remaining: 10, balance: 10, held: 0, debt: 0 });
    // A redelivered REFUND takes nothing more.
    expect(await t().json(notify(t(), refund))).toMatchObject({ received: true });
    expect(await credits(t(), g)).toEqual({ credits_remaining: 10, balance: 10, held: 0, debt: 0 });
  });

  it('a REFUND_REVERSED cancels what is still owed of that refund and gives back what was already collected for it', async () => {
    const { g, tx, jobs } = await buyerHoldingEverything();
    await t().json(notify(t(), await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now() })));
    await cancel(t(), g, jobs[0]!);
    await cancel(t(), g, jobs[4]!); // 9 released: 9 collected, 16 still owed
    expect(await credits(t(), g)).toEqual({ credits_remaining: 0, balance: 26, held: 26, debt: 16 });

    expect(await t().json(notify(t(), await appStore().production.notification('REFUND_REVERSED', tx)))).toEqual({ received: true, outcome: 'refund_reversed' });
    expect(await credits(t(), g)).toEqual({ credits_remaining: 9, balance: 35, held: 26, debt: 0 });
    for (const id of [...jobs.slice(1, 4), ...jobs.slice(5)]) await cancel(t(), g, id);
    expect(await credits(t(), g)).toEqual({ credits_remaining: 35, balance: 35, held: 0, debt: 0 });
  });

  it('a job completed while in debt spends its held credits; a purchase made while in debt pays the debt first', async () => {
    const { g, tx, jobs } = await buyerHoldingEverything();
    await t().json(notify(t(), await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now() })));
    // The delivered video is spent credits: the debt is unchanged.
    expect(await t().completeJobNow(jobs[0]!)).toBe('completed');
    await t().services.jobs.fail(jobs[1]!, 'ERR_5002', 'provider failed'); // 8 released: collected
    expect(await credits(t(), g)).toEqual({ credits_remaining: 0, balance: 19, held: 19, debt: 17 });
    const second = appStore().production.add({ transactionId: txId(), productId: STARTER });
    await t().json(t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: second.transactionId } }));
    expect(await credits(t(), g)).toEqual({ credits_remaining: 8, balance: 27, held: 19, debt: 0 });
  });

  it('an admin clawback of credits held by running jobs is collected from their release; an admin grant pays the debt first', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    const jobs = await holdInJobs(t(), g, [8, 1, 1]);
    const clawback = (amount: number) =>
      t().json(t().post(`/admin/api/users/${g.userId}/credits/clawback`, { token: admin.token, body: { amount, reason: 'chargeback' }, headers: { 'idempotency-key': randomUUID() } }));
    const grant = (amount: number) =>
      t().json(t().post(`/admin/api/users/${g.userId}/credits/grant`, { token: admin.token, body: { amount, reason: 'goodwill' }, headers: { 'idempotency-key': randomUUID() } }));

    const r = await clawback(6);
    expect(r.action.after).toMatchObject({ balance: 10, held: 10, available: 0, shortfall: 6, debt: 6 });
    expect(await credits(t(), g)).toEqual({ credits_remaining: 0, balance: 10, held: 10, debt: 6 });
    await grant(2);
    expect(await credits(t(), g)).toEqual({ credits_remaining: 0, balance: 10, held: 10, debt: 4 });
    await cancel(t(), g, jobs[0]!);
    expect(await credits(t(), g)).toEqual({ credits_remaining: 4, balance: 6, held: 2, debt: 0 });
    for (const id of jobs.slice(1)) await cancel(t(), g, id);
    expect(await credits(t(), g)).toEqual({ credits_remaining: 6, balance: 6, held: 0, debt: 0 });

    // The console's user page shows the debt too.
    const detail = await t().json(t().get(`/admin/api/users/${g.userId}`, { token: admin.token }));
    expect(detail.user).toMatchObject({ balance: 6, held: 0, available: 6, debt: 0 });
  });
});
