import { describe, expect, it } from 'vitest';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { useTestApp, type TestApp } from '../support/harness.js';

/**
 * A purchase reported twice at once (the app's retry) while Apple refunds it and reverses the
 * refund: the refund state, revoked_at and the balance must agree, and no notification is lost.
 * Real HTTP, real PostgreSQL, the App Store fakes.
 */

const STARTER = 'com.rendioai.credits.starter.25';

const { fakes: appStore, txId } = useAppStoreFakes();


async function account(t: TestApp, userId: string): Promise<{ balance: number; held: number }> {
  const { rows } = await t.db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [userId]);
  return rows[0];
}

describe('refunds vs a purchase reported twice at once', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));
  const notify = (body: unknown) => t().post('/functions/v1/apple-server-notifications', { body });

  it("a duplicate first report of a purchase that records Apple's newer 'not refunded' word also gives back the clawback (or records nothing): the state, revoked_at and the balance agree, and the late REFUND_REVERSED is not lost", async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const t0 = Date.now() - 600_000;
    const jws = await appStore().production.signTransaction(tx, undefined, t0);

    // The app reports the purchase twice (a retry): one asks Apple (held back), one sends StoreKit's JWS.
    const gate = appStore().production.server.gate(new RegExp(`/inApps/v1/transactions/${tx.transactionId}$`));
    const slow = t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId } });
    await gate.reached;
    let slowRes: Response;
    try {
      await t().json(t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId, signed_transaction: jws } }));
      expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
      // Apple refunds it (t0 + 60 s) ...
      const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: t0 + 60_000, revocationReason: 0 }, { signedDate: t0 + 60_000 });
      expect(await t().json(notify(refund))).toEqual({ received: true, outcome: 'refund_clawed_back' });
      expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });
      // ... and reverses the refund (t0 + 120 s): Apple's record is no longer revoked.
    } finally {
      gate.release(); // Apple now answers the held request: signed now, not revoked
    }
    slowRes = await slow;
    expect(slowRes.status, await slowRes.text()).toBe(200);
    const reversal = await appStore().production.notification('REFUND_REVERSED', tx, { signedDate: t0 + 120_000 });
    await t().json(notify(reversal));
    // Apple's final word: bought, refunded, refund reversed: the 25 credits are the user's again.
    const { rows } = await t().db.query(
      `SELECT s.refunded, t.revoked_at IS NOT NULL AS revoked FROM app_store_refund_states s JOIN iap_transactions t USING (transaction_id) WHERE transaction_id = $1`,
      [tx.transactionId],
    );
    expect({ account: await account(t(), g.userId), state: rows[0] }).toEqual({
      account: { balance: 35, held: 0 },
      state: { refunded: false, revoked: false },
    });
  });
});
