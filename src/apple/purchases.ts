import type { JWSTransactionDecodedPayload } from '@apple/app-store-server-library';
import { withTransaction, type Queryable } from '../db/pool.js';
import * as iap from '../db/queries/app-store.js';
import { DomainError } from '../errors/domain-error.js';
import * as ledger from '../ledger/ledger.js';
import { applyRefundNotice, settlePurchase, type RefundNotice } from '../ledger/refunds.js';
import type { Logger } from '../logger.js';
import { AppStoreRejected, AppStoreUnavailable, type AppStore, type AppStoreEnvironment } from './app-store.js';

/**
 * Credits for App Store purchases (consumable packs) and their reversal by Apple's refund
 * notifications. Money rules: only data Apple signed is believed; the product → credits map is
 * the server's; a transaction id credits once, to one user, ever; a refund takes back at most
 * what is available (the rest is recorded as shortfall) and at most once.
 */

export class TransactionOwnedByAnother extends DomainError {
  readonly code = 'ERR_4012';
}

export interface PurchaseRequest {
  userId: string;
  transactionId: string;
  /** What the app says it bought: must match what Apple signed. */
  productId?: string;
  /** StoreKit 2's jwsRepresentation, from newer clients: verified locally, no API call. */
  signedTransaction?: string;
}

export interface PurchaseResult {
  transactionId: string;
  productId: string;
  creditsAdded: number;
  available: number;
  alreadyProcessed: boolean;
  /** Apple refunded it: recorded and credited, then clawed back (creditsAdded is 0). */
  refunded: boolean;
  environment: AppStoreEnvironment;
}

export type NotificationOutcome =
  | 'refund_clawed_back'
  | 'refund_reversed'
  | 'consumption_info_queued'
  | 'consumption_info_disabled'
  | 'unknown_transaction'
  | 'already_applied'
  | 'out_of_order'
  | 'ignored'
  | 'test';

export class PurchaseService {
  constructor(
    private readonly db: Queryable,
    private readonly appStore: AppStore | undefined,
    private readonly products: Record<string, number>,
    private readonly log: Logger,
    private readonly enqueueConsumptionInfo: (tx: Queryable, notificationUuid: string) => Promise<void>,
  ) {}

  private store(): AppStore {
    if (!this.appStore) throw new AppStoreUnavailable('the App Store is not configured on this server (APP_STORE_* settings)');
    return this.appStore;
  }

  async credit(req: PurchaseRequest): Promise<PurchaseResult> {
    const appStore = this.store();
    // The app re-sends a purchase until it can call finish(): answer a known one without asking Apple.
    const known = await iap.findIapTransaction(this.db, req.transactionId);
    if (known) return this.replay(known, req.userId);

    const { signed, tx } = req.signedTransaction
      ? { signed: req.signedTransaction, tx: await appStore.verify.transaction(req.signedTransaction) }
      : await appStore.fetchTransaction(req.transactionId);
    const { productId, credits, quantity } = this.creditsFor(tx, req);

    // What Apple just signed is also its word on a refund, as of its signedDate.
    const word: RefundNotice | undefined = tx.signedDate
      ? {
          transactionId: tx.transactionId!,
          refunded: Boolean(tx.revocationDate),
          signedAt: new Date(tx.signedDate),
          notificationUuid: null,
          revocationDate: tx.revocationDate ? new Date(tx.revocationDate) : null,
          revocationReason: tx.revocationReason ?? null,
        }
      : undefined;

    return withTransaction(this.db, async (dbTx) => {
      // The buyer's current owner (a guest merged while Apple answered buys for its new account),
      // then the transaction's refund state: the lock order of every money path.
      const owner = await ledger.lockOpenOwner(dbTx, req.userId);
      await iap.lockRefundState(dbTx, tx.transactionId!);
      const existing = await iap.findIapTransaction(dbTx, tx.transactionId!);
      if (existing) {
        // A concurrent report recorded it first: a replay (or a foreign user), with Apple's newer word applied.
        if (existing.user_id !== owner.ownerId) throw new TransactionOwnedByAnother();
        await settlePurchase(dbTx, existing, word);
        return this.replay(existing, req.userId, dbTx);
      }
      const inserted = await iap.insertIapTransaction(dbTx, {
        transactionId: tx.transactionId!,
        originalTransactionId: tx.originalTransactionId ?? tx.transactionId!,
        userId: owner.ownerId,
        productId,
        quantity,
        credits,
        environment: tx.environment,
        purchasedAt: new Date(tx.purchaseDate ?? Date.now()),
        signedTransaction: signed,
      });
      await ledger.purchase(dbTx, { userId: owner.ownerId, amount: credits, transactionId: tx.transactionId! });
      // Apple refunded it already (we heard first, or its signed transaction says so): taken back at once.
      const settled = await settlePurchase(dbTx, inserted!, word);
      const refunded = settled.outcome === 'refund_clawed_back';
      this.log.info(
        { userId: owner.ownerId, transactionId: tx.transactionId, productId, credits, environment: tx.environment, refunded },
        refunded ? 'purchase recorded, already refunded by Apple: credited and clawed back' : 'purchase credited',
      );
      return {
        transactionId: tx.transactionId!,
        productId,
        creditsAdded: refunded ? 0 : credits,
        available: (await ledger.getAccount(dbTx, owner.ownerId)).available,
        alreadyProcessed: false,
        refunded,
        environment: tx.environment,
      };
    });
  }

  private async replay(known: iap.IapTransactionRow, userId: string, db: Queryable = this.db): Promise<PurchaseResult> {
    // Owners, not ids: the purchase may have moved with a merge, or the caller may be the merged guest.
    const caller = await ledger.currentOwner(db, userId);
    if (caller === undefined || caller !== (await ledger.currentOwner(db, known.user_id))) throw new TransactionOwnedByAnother();
    const account = await ledger.getAccount(db, caller);
    const refunded = await ledger.isClawedBack(db, known.transaction_id);
    return {
      transactionId: known.transaction_id,
      productId: known.product_id,
      creditsAdded: refunded ? 0 : known.credits,
      available: account.available,
      alreadyProcessed: true,
      refunded,
      environment: known.environment,
    };
  }

  /** What a verified transaction is worth, or why it is worth nothing. */
  private creditsFor(tx: JWSTransactionDecodedPayload, req: PurchaseRequest) {
    if (!tx.transactionId) throw new AppStoreRejected('bad_signature', 'no transactionId');
    if (tx.transactionId !== req.transactionId) {
      throw new AppStoreRejected('transaction_mismatch', `signed for ${tx.transactionId}, sent as ${req.transactionId}`);
    }
    if (tx.type !== 'Consumable') throw new AppStoreRejected('not_consumable', String(tx.type));
    const productId = tx.productId ?? '';
    const perUnit = Object.hasOwn(this.products, productId) ? this.products[productId] : undefined; // not Object.prototype's
    if (!perUnit) throw new AppStoreRejected('unknown_product', productId);
    if (req.productId !== undefined && req.productId !== productId) throw new AppStoreRejected('product_mismatch', `${req.productId} ≠ ${productId}`);
    const quantity = Math.max(1, tx.quantity ?? 1);
    return { productId, quantity, credits: perUnit * quantity };
  }

  /**
   * A verified App Store Server Notification V2. Stored once by notificationUUID; refunds and
   * their reversals move credits in the same transaction as the store (stored ⇔ applied), so a
   * second delivery changes nothing. Returns undefined for a duplicate.
   */
  async receiveNotification(signedPayload: string): Promise<NotificationOutcome | undefined> {
    const appStore = this.store();
    const n = await appStore.verify.notification(signedPayload);
    const data = n.data;
    const tx = data?.signedTransactionInfo ? await appStore.verify.transaction(data.signedTransactionInfo) : undefined;
    const type = String(n.notificationType ?? 'UNKNOWN');
    const uuid = n.notificationUUID;
    if (!uuid) throw new AppStoreRejected('bad_signature', 'notification without notificationUUID');

    return withTransaction(this.db, async (dbTx) => {
      const stored = await iap.recordNotification(dbTx, {
        uuid,
        type,
        subtype: n.subtype ? String(n.subtype) : null,
        environment: data?.environment ? String(data.environment) : null,
        transactionId: tx?.transactionId ?? null,
        signedDate: n.signedDate ? new Date(n.signedDate) : null,
        signedPayload,
        outcome: 'received',
      });
      if (!stored) return undefined;
      const outcome = await this.apply(dbTx, type, uuid, n.signedDate, tx);
      await iap.setNotificationOutcome(dbTx, uuid, outcome);
      this.log.info({ notificationUuid: uuid, type, transactionId: tx?.transactionId, outcome }, 'App Store notification');
      return outcome;
    });
  }

  private async apply(
    dbTx: Queryable,
    type: string,
    uuid: string,
    signedDate: number | undefined,
    tx: JWSTransactionDecodedPayload | undefined,
  ): Promise<NotificationOutcome> {
    if (type === 'TEST') return 'test';
    if (!['REFUND', 'REFUND_REVERSED', 'CONSUMPTION_REQUEST'].includes(type)) return 'ignored';
    if (!tx?.transactionId) return 'unknown_transaction';

    if (type === 'REFUND' || type === 'REFUND_REVERSED') {
      const r = await applyRefundNotice(dbTx, {
        transactionId: tx.transactionId,
        refunded: type === 'REFUND',
        signedAt: new Date(signedDate ?? Date.now()),
        notificationUuid: uuid,
        revocationDate: type === 'REFUND' && tx.revocationDate ? new Date(tx.revocationDate) : null,
        revocationReason: type === 'REFUND' ? (tx.revocationReason ?? null) : null,
      });
      if (r.shortfall) {
        this.log.warn({ userId: r.userId, transactionId: tx.transactionId, shortfall: r.shortfall }, 'refund exceeded the available credits; shortfall recorded');
      }
      return r.outcome;
    }
    if (!(await iap.findIapTransaction(dbTx, tx.transactionId))) return 'unknown_transaction';
    if (!this.appStore?.cfg.sendConsumptionInfo) return 'consumption_info_disabled';
    await this.enqueueConsumptionInfo(dbTx, uuid);
    return 'consumption_info_queued';
  }

  /**
   * Answers Apple's CONSUMPTION_REQUEST from the user's real usage since the purchase (queued task;
   * Apple's answer window is hours, and a failure is retried by the queue). Only sent when the
   * operator enabled it, which asserts the customer consented (Apple requires customerConsented).
   */
  async sendConsumptionInfo(notificationUuid: string): Promise<void> {
    const appStore = this.store();
    const n = await iap.findNotification(this.db, notificationUuid);
    const known = n?.transaction_id ? await iap.findIapTransaction(this.db, n.transaction_id) : undefined;
    if (!n || !known) return;
    const usage = await iap.usageSince(this.db, known.user_id, new Date(known.purchased_at));
    const consumed = Math.min(1, usage.credits_spent / known.credits);
    await appStore.sendConsumptionInformation(known.environment, known.transaction_id, {
      customerConsented: true,
      // Credits land in the account the moment Apple's transaction verifies: always delivered.
      deliveryStatus: 'DELIVERED',
      // The free credits every guest gets are the sample.
      sampleContentProvided: true,
      consumptionPercentage: Math.round(consumed * 100_000),
      refundPreference: consumed === 0 ? 'GRANT_FULL' : consumed >= 1 ? 'DECLINE' : 'GRANT_PRORATED',
    });
    await iap.setNotificationOutcome(this.db, notificationUuid, 'consumption_info_sent');
    this.log.info({ notificationUuid, transactionId: known.transaction_id, consumed }, 'consumption information sent to Apple');
  }
}
