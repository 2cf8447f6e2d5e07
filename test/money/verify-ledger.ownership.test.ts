import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as iap from '../../src/db/queries/app-store.js';
import * as ledger from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * verify-ledger sees money on the wrong user or of the wrong size: a clawback from a bystander,
 * larger than its purchase, or a purchase credited beyond what Apple sold. Each state is built
 * directly through the ledger, as no request can build it.
 */

const STARTER = 'com.rendioai.credits.starter.25';


describe('verify-ledger misses money on the wrong user or of the wrong size', () => {
  // Its own app, without the after-each invariant check: these tests break the ledger on purpose.
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp();
  });
  afterAll(async () => {
    await t?.close();
  });

  /** A guest (10 free credits) who bought a 25-credit pack recorded as worth `recorded` credits. */
  async function bought(credited = 25): Promise<{ userId: string; transactionId: string }> {
    const g = await t.createGuest();
    const transactionId = `review-${randomUUID()}`;
    await iap.insertIapTransaction(t.db, {
      transactionId,
      originalTransactionId: transactionId,
      userId: g.userId,
      productId: STARTER,
      quantity: 1,
      credits: 25,
      environment: 'Production',
      purchasedAt: new Date(),
      signedTransaction: 'test',
    });
    await ledger.purchase(t.db, { userId: g.userId, amount: credited, transactionId });
    return { userId: g.userId, transactionId };
  }

  /** Apple refunded it: the refund state and revoked_at say so, and a clawback of `amount` from `from`. */
  async function refunded(transactionId: string, from: string, amount = 25): Promise<void> {
    await iap.lockRefundState(t.db, transactionId);
    await iap.updateRefundState(t.db, { transactionId, refunded: true, signedAt: new Date(), notificationUuid: null, revocationDate: new Date(), revocationReason: 0 });
    await ledger.clawback(t.db, { userId: from, transactionId, amount });
    await iap.setRevoked(t.db, transactionId, new Date(), 0);
  }

  /** The checks whose offending rows name the transaction (or the users involved). */
  const flagged = async (...ids: string[]) =>
    (await verifyLedger(t.db)).filter((v) => ids.some((id) => JSON.stringify(v.rows).includes(id))).map((v) => v.check);

  it('a refund clawed back from a bystander (not the buyer or the account it merged into) is reported', async () => {
    const buyer = await bought();
    const bystander = await t.createGuest();
    await refunded(buyer.transactionId, bystander.userId);
    expect(await flagged(buyer.transactionId, bystander.userId)).not.toEqual([]);
  });

  it('a clawback larger than the purchase it refunds is reported', async () => {
    const buyer = await bought();
    await refunded(buyer.transactionId, buyer.userId, 35); // the pack was 25; the free 10 went too
    expect(await flagged(buyer.transactionId)).not.toEqual([]);
  });

  it('a purchase credited with more than Apple sold (iap_transactions.credits) is reported', async () => {
    const buyer = await bought(2500);
    expect(await flagged(buyer.transactionId)).not.toEqual([]);
  });
});
