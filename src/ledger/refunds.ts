import { RetryTransaction, withTransaction, type Queryable } from '../db/pool.js';
import * as iap from '../db/queries/app-store.js';
import * as ledger from './ledger.js';

/**
 * Apple's refunds as a small state machine per transaction id. Apple may deliver REFUND and
 * REFUND_REVERSED in any order, more than once, and before the app ever reported the purchase;
 * each notice carries the time Apple signed it. The newest signed notice decides whether the
 * transaction is refunded (app_store_refund_states), and the ledger is then brought in line with
 * that state: a refunded, credited transaction is clawed back once per refund round, a reversed one
 * gets back exactly what its last clawback took. So any delivery order ends in Apple's final state,
 * and each real transition moves money exactly once. A purchase is credited only if Apple's latest
 * word says it is not refunded (creditAllowed, under the same lock).
 */

export interface RefundNotice {
  transactionId: string;
  refunded: boolean;
  /** The notification's signedDate: Apple's clock, which orders the notices. */
  signedAt: Date;
  /** The notification that said so; null when Apple's word came as a signed transaction. */
  notificationUuid: string | null;
  revocationDate: Date | null;
  revocationReason: number | null;
}

export type RefundOutcome =
  | 'refund_clawed_back'
  | 'refund_reversed'
  | 'already_applied'
  | 'out_of_order'
  | 'unknown_transaction';

export interface RefundResult {
  outcome: RefundOutcome;
  userId?: string;
  shortfall?: number;
}

export async function applyRefundNotice(db: Queryable, n: RefundNotice): Promise<RefundResult> {
  return withTransaction(db, async (tx) => {
    // Lock order: the buyer's account, then the refund state, then the purchase row.
    const seen = await iap.findIapTransaction(tx, n.transactionId);
    const owner = seen ? await ledger.lockOwner(tx, seen.user_id) : undefined;
    await iap.lockRefundState(tx, n.transactionId);
    const known = await iap.findIapTransaction(tx, n.transactionId, { lock: true });
    // Credited (or merged into another account) since the first read: lock the right account first.
    if (known && known.user_id !== owner?.ownerId) throw new RetryTransaction();

    const changed = await iap.updateRefundState(tx, n);
    if (!changed) return { outcome: 'out_of_order' };
    if (!known) return { outcome: 'unknown_transaction' };
    return reconcile(tx, known, n);
  });
}

async function reconcile(tx: Queryable, known: iap.IapTransactionRow, n: RefundNotice): Promise<RefundResult> {
  const clawedBack = await ledger.isClawedBack(tx, known.transaction_id);
  if (n.refunded && !clawedBack) {
    const r = await ledger.clawback(tx, { userId: known.user_id, transactionId: known.transaction_id, amount: known.credits, reason: 'App Store refund' });
    await iap.setRevoked(tx, known.transaction_id, n.revocationDate ?? n.signedAt, n.revocationReason);
    return { outcome: 'refund_clawed_back', userId: known.user_id, shortfall: r.shortfall };
  }
  if (!n.refunded && clawedBack) {
    await ledger.reverseClawback(tx, { userId: known.user_id, transactionId: known.transaction_id, reason: 'App Store refund reversed' });
    await iap.setRevoked(tx, known.transaction_id, null, null);
    return { outcome: 'refund_reversed', userId: known.user_id };
  }
  return { outcome: 'already_applied', userId: known.user_id };
}

/**
 * Called under the buyer's account lock before a purchase is credited. A signed transaction
 * without revocationDate is Apple's word that it was not refunded as of its signedDate: newer than
 * the stored state, it wins (a REFUND_REVERSED we never received); older (the app re-sending a
 * JWS from before the refund), the stored refund stands and the purchase must not be credited.
 */
export async function creditAllowed(tx: Queryable, transactionId: string, transactionSignedAt: Date | undefined): Promise<boolean> {
  const state = await iap.lockRefundState(tx, transactionId);
  const newer =
    transactionSignedAt !== undefined &&
    (await iap.updateRefundState(tx, {
      transactionId,
      refunded: false,
      signedAt: transactionSignedAt,
      notificationUuid: null,
      revocationDate: null,
      revocationReason: null,
    }));
  return !state.refunded || newer;
}
