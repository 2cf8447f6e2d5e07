import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { ApplePki } from '../fakes/apple-pki.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/** App Store Server Notifications V2: refunds take credits back once, never below zero. */

const { fakes: appStore, txId } = useAppStoreFakes();

const notify = (t: TestApp, body: unknown) => t.post('/functions/v1/apple-server-notifications', { body });

async function account(t: TestApp, userId: string) {
  const { rows } = await t.db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [userId]);
  return rows[0] as { balance: number; held: number };
}

/** A guest who bought the 25-credit pack (35 credits with the free 10). */
async function buyer(t: TestApp): Promise<{ g: Guest; tx: { transactionId: string; productId: string } }> {
  const g = await t.createGuest();
  const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
  await t.json(t.post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId } }));
  return { g, tx };
}

/** Spends credits the way users do: generate videos (simulator) and wait until they are delivered. */
async function spend(t: TestApp, g: Guest, jobs: number): Promise<void> {
  await t.startWorker();
  const ids: string[] = [];
  for (let i = 0; i < jobs; i++) {
    const res = await t.json(t.generate(g, { model_id: 'veo-3.1-text-to-video', prompt: `paid clip ${i}`, settings: { duration: 8 } }));
    ids.push(res.job_id);
  }
  for (const id of ids) expect((await t.waitForJob(g.accessToken, id)).status).toBe('completed');
}

describe('App Store Server Notifications', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));

  it('a REFUND after part of the credits were spent clamps at zero, records the shortfall, and a redelivery changes nothing', async () => {
    const { g, tx } = await buyer(t());
    await spend(t(), g, 3); // 3 × 8 = 24 of 35 spent: 11 left, the refund asks for 25
    expect(await account(t(), g.userId)).toEqual({ balance: 11, held: 0 });

    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now(), revocationReason: 1 });
    expect(await t().json(notify(t(), refund))).toEqual({ received: true, outcome: 'refund_clawed_back' });
    expect(await account(t(), g.userId)).toEqual({ balance: 0, held: 0 });
    const entry = (await t().db.query("SELECT amount, shortfall FROM ledger_entries WHERE user_id = $1 AND kind = 'refund_clawback'", [g.userId])).rows;
    expect(entry).toEqual([{ amount: -11, shortfall: 14 }]);
    const iap = (await t().db.query('SELECT revoked_at, revocation_reason FROM iap_transactions WHERE transaction_id = $1', [tx.transactionId])).rows[0];
    expect(iap.revoked_at).not.toBeNull();
    expect(iap.revocation_reason).toBe(1);

    // Apple retries: the same notification again, and a second REFUND for the same purchase.
    expect(await t().json(notify(t(), refund))).toEqual({ received: true, outcome: 'duplicate' });
    const again = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now() });
    expect(await t().json(notify(t(), again))).toEqual({ received: true, outcome: 'already_applied' });
    expect(await account(t(), g.userId)).toEqual({ balance: 0, held: 0 });
  });

  it('a refund never takes credits held by a running job', async () => {
    const { g, tx } = await buyer(t());
    // A job that never finishes holds 8 of the 35.
    await t().json(t().generate(g, { model_id: 'veo-3.1-text-to-video', prompt: 'held while refunded [sim:hang]', settings: { duration: 8 } }));
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now() });
    await t().json(notify(t(), refund));
    expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 8 }); // 27 available − 25 = 2 available, 8 held
  });

  it('REFUND_REVERSED restores exactly what the refund took, once', async () => {
    const { g, tx } = await buyer(t());
    await t().json(notify(t(), await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now() })));
    expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });
    const reversal = await appStore().production.notification('REFUND_REVERSED', tx);
    expect(await t().json(notify(t(), reversal))).toEqual({ received: true, outcome: 'refund_reversed' });
    expect(await t().json(notify(t(), await appStore().production.notification('REFUND_REVERSED', tx)))).toEqual({ received: true, outcome: 'already_applied' });
    expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
    const iap = (await t().db.query('SELECT revoked_at FROM iap_transactions WHERE transaction_id = $1', [tx.transactionId])).rows[0];
    expect(iap.revoked_at).toBeNull();
  });

  it('TEST, unrelated types and unknown transactions are stored and answered 200', async () => {
    expect(await t().json(notify(t(), await appStore().production.notification('TEST', undefined)))).toEqual({ received: true, outcome: 'test' });
    const stranger = { transactionId: txId(), productId: 'com.rendioai.credits.starter.25' };
    expect(await t().json(notify(t(), await appStore().production.notification('REFUND', stranger)))).toEqual({ received: true, outcome: 'unknown_transaction' });
    expect(await t().json(notify(t(), await appStore().production.notification('REFUND_DECLINED', stranger)))).toEqual({ received: true, outcome: 'ignored' });
    const stored = (await t().db.query('SELECT notification_type, outcome FROM app_store_notifications ORDER BY received_at')).rows;
    expect(stored).toEqual(expect.arrayContaining([{ notification_type: 'TEST', outcome: 'test' }, { notification_type: 'REFUND_DECLINED', outcome: 'ignored' }]));
  });

  it('forged, foreign and malformed notifications are refused and change nothing', async () => {
    const { g, tx } = await buyer(t());
    const mallory = await ApplePki.create('Mallory');
    const forged = await appStore().production.notification('REFUND', tx, { pki: mallory });
    expect((await t().json(notify(t(), forged), 400)).error).toMatchObject({ code: 'ERR_4011', details: { reason: 'bad_signature' } });
    const foreign = await appStore().production.notification('REFUND', tx, { bundleId: 'com.someone.else' });
    expect((await t().json(notify(t(), foreign), 400)).error).toMatchObject({ code: 'ERR_4011', details: { reason: 'wrong_bundle' } });
    for (const body of [{}, { signedPayload: 'not-a-jws' }, { signedPayload: 42 }]) {
      expect((await notify(t(), body)).status).toBe(400);
    }
    expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
    const stored = (await t().db.query('SELECT count(*)::int AS n FROM app_store_notifications WHERE transaction_id = $1', [tx.transactionId])).rows[0];
    expect(stored.n).toBe(0);
  });

  it('needs no apikey or user token (Apple calls it), and refuses huge bodies', async () => {
    const res = await t().app.request('/functions/v1/apple-server-notifications', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ signedPayload: 'x'.repeat(600 * 1024) }),
    });
    expect(res.status).toBe(413);
  });
});

describe('CONSUMPTION_REQUEST with consumption information enabled', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true', APP_STORE_SEND_CONSUMPTION_INFO: 'true' }));

  it('the worker tells Apple how much of the purchase was used', async () => {
    const { g, tx } = await buyer(t());
    await spend(t(), g, 1); // 8 of the pack's 25
    const uuid = randomUUID();
    const res = await t().json(notify(t(), await appStore().production.notification('CONSUMPTION_REQUEST', tx, { uuid })));
    expect(res).toEqual({ received: true, outcome: 'consumption_info_queued' });
    const deadline = Date.now() + 10_000;
    while (appStore().production.consumptionRequests.every((r) => r.transactionId !== tx.transactionId) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
    }
    const sent = appStore().production.consumptionRequests.find((r) => r.transactionId === tx.transactionId);
    expect(sent?.body).toEqual({
      customerConsented: true,
      deliveryStatus: 'DELIVERED',
      sampleContentProvided: true,
      consumptionPercentage: 32_000, // 8 / 25
      refundPreference: 'GRANT_PRORATED',
    });
    await expect.poll(async () => (await t().db.query('SELECT outcome FROM app_store_notifications WHERE notification_uuid = $1', [uuid])).rows[0].outcome).toBe(
      'consumption_info_sent',
    );
  });
});
