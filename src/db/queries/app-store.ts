import type { Queryable } from '../pool.js';

export interface IapTransactionRow {
  transaction_id: string;
  original_transaction_id: string;
  user_id: string;
  product_id: string;
  quantity: number;
  credits: number;
  environment: 'Production' | 'Sandbox';
  purchased_at: string;
  revoked_at: string | null;
}

const COLUMNS = 'transaction_id, original_transaction_id, user_id, product_id, quantity, credits, environment, purchased_at, revoked_at';

export async function findIapTransaction(db: Queryable, transactionId: string, opts: { lock?: boolean } = {}): Promise<IapTransactionRow | undefined> {
  const { rows } = await db.query<IapTransactionRow>(
    `SELECT ${COLUMNS} FROM iap_transactions WHERE transaction_id = $1${opts.lock ? ' FOR UPDATE' : ''}`,
    [transactionId],
  );
  return rows[0];
}

/** Records a verified purchase; undefined when the transaction id is already recorded (by anyone). */
export async function insertIapTransaction(
  db: Queryable,
  t: {
    transactionId: string;
    originalTransactionId: string;
    userId: string;
    productId: string;
    quantity: number;
    credits: number;
    environment: string;
    purchasedAt: Date;
    signedTransaction: string;
  },
): Promise<IapTransactionRow | undefined> {
  const { rows } = await db.query<IapTransactionRow>(
    `INSERT INTO iap_transactions
       (transaction_id, original_transaction_id, user_id, product_id, quantity, credits, environment, purchased_at, signed_transaction)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
     ON CONFLICT (transaction_id) DO NOTHING
     RETURNING ${COLUMNS}`,
    [t.transactionId, t.originalTransactionId, t.userId, t.productId, t.quantity, t.credits, t.environment, t.purchasedAt, t.signedTransaction],
  );
  return rows[0];
}

export async function setRevoked(db: Queryable, transactionId: string, revokedAt: Date | null, reason: number | null): Promise<void> {
  await db.query('UPDATE iap_transactions SET revoked_at = $2, revocation_reason = $3 WHERE transaction_id = $1', [transactionId, revokedAt, reason]);
}


/**
 * Locks Apple's refund state of a transaction (created as "not refunded" the first time): a
 * purchase being credited and a refund notification for the same transaction serialise here.
 */
export async function lockRefundState(db: Queryable, transactionId: string): Promise<{ refunded: boolean }> {
  await db.query('INSERT INTO app_store_refund_states (transaction_id) VALUES ($1) ON CONFLICT DO NOTHING', [transactionId]);
  const { rows } = await db.query<{ refunded: boolean }>(
    'SELECT refunded FROM app_store_refund_states WHERE transaction_id = $1 FOR UPDATE',
    [transactionId],
  );
  return rows[0]!;
}

/**
 * Records Apple's newer word on a refund. Returns false (nothing changed) when the stored state
 * came from a notification Apple signed at the same time or later: out-of-order delivery.
 */
export async function updateRefundState(
  db: Queryable,
  s: { transactionId: string; refunded: boolean; signedAt: Date; notificationUuid: string | null; revocationDate: Date | null; revocationReason: number | null },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `UPDATE app_store_refund_states
        SET refunded = $2, signed_at = $3, notification_uuid = $4, revocation_date = $5, revocation_reason = $6, updated_at = now()
      WHERE transaction_id = $1 AND (signed_at IS NULL OR signed_at < $3)`,
    [s.transactionId, s.refunded, s.signedAt, s.notificationUuid, s.revocationDate, s.revocationReason],
  );
  return rowCount === 1;
}

export interface RefundStateRow {
  refunded: boolean;
  signed_at: string | null;
  revocation_date: string | null;
  revocation_reason: number | null;
}

export async function refundStateOf(db: Queryable, transactionId: string): Promise<RefundStateRow | undefined> {
  const { rows } = await db.query<RefundStateRow>(
    'SELECT refunded, signed_at, revocation_date, revocation_reason FROM app_store_refund_states WHERE transaction_id = $1',
    [transactionId],
  );
  return rows[0];
}

/** Stores a verified notification once; false when this notificationUUID was already stored. */
export async function recordNotification(
  db: Queryable,
  n: {
    uuid: string;
    type: string;
    subtype: string | null;
    environment: string | null;
    transactionId: string | null;
    signedDate: Date | null;
    signedPayload: string;
    outcome: string;
  },
): Promise<boolean> {
  const { rowCount } = await db.query(
    `INSERT INTO app_store_notifications (notification_uuid, notification_type, subtype, environment, transaction_id, signed_date, signed_payload, outcome)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (notification_uuid) DO NOTHING`,
    [n.uuid, n.type, n.subtype, n.environment, n.transactionId, n.signedDate, n.signedPayload, n.outcome],
  );
  return rowCount === 1;
}

export async function findNotification(db: Queryable, uuid: string): Promise<{ transaction_id: string | null; environment: string | null } | undefined> {
  const { rows } = await db.query<{ transaction_id: string | null; environment: string | null }>(
    'SELECT transaction_id, environment FROM app_store_notifications WHERE notification_uuid = $1',
    [uuid],
  );
  return rows[0];
}

export async function setNotificationOutcome(db: Queryable, uuid: string, outcome: string): Promise<void> {
  await db.query('UPDATE app_store_notifications SET outcome = $2 WHERE notification_uuid = $1', [uuid, outcome]);
}

/** What the user did with their credits, for Send Consumption Information. */
export async function usageSince(db: Queryable, userId: string, since: Date): Promise<{ jobs_completed: number; credits_spent: number }> {
  const { rows } = await db.query<{ jobs_completed: number; credits_spent: number }>(
    `SELECT count(*) FILTER (WHERE status = 'completed')::int AS jobs_completed,
            coalesce(sum(credits_used) FILTER (WHERE status = 'completed'), 0)::int AS credits_spent
       FROM video_jobs WHERE user_id = $1 AND created_at >= $2`,
    [userId, since],
  );
  return rows[0]!;
}

