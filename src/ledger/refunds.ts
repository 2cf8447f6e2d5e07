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
 * and each real transition moves money exactly once. Crediting a purchase goes through the same
 * state under the same lock (settlePurchase): a purchase Apple refunded is recorded, credited and
 * clawed back in one transaction.
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
    return reconcile(tx, known);
  });
}

/**
 * The credit path's half of the state machine, under the buyer's account lock and the refund-state
 * lock (iap.lockRefundState). Apple's signed transaction is its word too, as of its signedDate:
 * revoked or not, newer than what we hold, it wins (a REFUND_REVERSED we never received; a REFUND
 * not yet delivered); older (the app re-sending a JWS from before a refund), the stored state stands.
 * Then the ledger follows the state: a purchase recorded while refunded is credited and clawed back
 * at once, so its evidence is kept and a later reversal restores it — nothing minted, nothing lost.
 */
export async function settlePurchase(tx: Queryable, known: iap.IapTransactionRow, word: RefundNotice | undefined): Promise<RefundResult> {
  if (word) await iap.updateRefundState(tx, word);
  return reconcile(tx, known);
}

/** Brings the ledger in line with Apple's latest word on the transaction (locks held by the caller). */
async function reconcile(tx: Queryable, known: iap.IapTransactionRow): Promise<RefundResult> {
  const state = await iap.refundStateOf(tx, known.transaction_id);
  const refunded = state?.refunded ?? false;
  const clawedBack = await ledger.isClawedBack(tx, known.transaction_id);
  if (refunded && !clawedBack) {
    const r = await ledger.clawback(tx, { userId: known.user_id, transactionId: known.transaction_id, amount: known.credits, reason: 'App Store refund' });
    const revokedAt = new Date(state?.revocation_date ?? state?.signed_at ?? Date.now());
    await iap.setRevoked(tx, known.transaction_id, revokedAt, state?.revocation_reason ?? null);
    return { outcome: 'refund_clawed_back', userId: known.user_id, shortfall: r.shortfall };
  }
  if (!refunded && clawedBack) {
    await ledger.reverseClawback(tx, { userId: known.user_id, transactionId: known.transaction_id, reason: 'App Store refund reversed' });
    await iap.setRevoked(tx, known.transaction_id, null, null);
    return { outcome: 'refund_reversed', userId: known.user_id };
  }
  return { outcome: 'already_applied', userId: known.user_id };
}
