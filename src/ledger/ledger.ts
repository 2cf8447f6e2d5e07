import { withTransaction, type Queryable, type Tx } from '../db/pool.js';
import { AccountNotFound, HoldAlreadyResolved, HoldNotFound, InsufficientCredits, InvalidAmount } from './errors.js';

/**
 * The only code that moves credits (CONTRIBUTING.md). Every operation is one transaction (or joins
 * the caller's): lock the account row, write one append-only entry carrying balance_after and
 * held_after, update the totals. Uniqueness rules live in the database (partial unique indexes),
 * so a duplicate grant or purchase is detected by the insert itself, never by check-then-act.
 *
 * balance = credits owned; held = credits reserved by open holds; available = balance - held.
 */

export interface AccountState {
  balance: number;
  held: number;
  available: number;
}

type EntryKind =
  | 'grant'
  | 'purchase'
  | 'hold'
  | 'capture'
  | 'release'
  | 'refund_clawback'
  | 'refund_reversal'
  | 'admin_adjust'
  | 'merge_in'
  | 'merge_out';

interface EntryInput {
  kind: EntryKind;
  amount: number;
  heldDelta?: number;
  holdId?: string;
  jobId?: string;
  transactionId?: string;
  adminActionId?: number;
  reason?: string;
  shortfall?: number;
}

export interface EntryResult {
  /** false when a uniqueness rule said this entry already exists: nothing moved. */
  applied: boolean;
  account: AccountState;
}

const state = (balance: number, held: number): AccountState => ({ balance, held, available: balance - held });

function assertPositiveInt(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidAmount(`${what} must be a positive integer, got ${n}`);
}

async function lockAccount(tx: Tx, userId: string): Promise<AccountState> {
  const { rows } = await tx.query<{ balance: number; held: number }>(
    'SELECT balance, held FROM credit_accounts WHERE user_id = $1 FOR UPDATE',
    [userId],
  );
  const row = rows[0];
  if (!row) throw new AccountNotFound(userId);
  return state(row.balance, row.held);
}

/**
 * Writes one entry against an account already locked by the caller. The entry is inserted
 * first with ON CONFLICT DO NOTHING: if a unique index says it exists (second grant, reused
 * transaction id, second capture), nothing is updated and applied=false.
 */
async function writeEntry(tx: Tx, userId: string, current: AccountState, e: EntryInput): Promise<EntryResult> {
  const heldDelta = e.heldDelta ?? 0;
  const balance = current.balance + e.amount;
  const held = current.held + heldDelta;
  if (balance < 0 || held < 0 || held > balance) {
    // Callers check availability first; reaching this is a bug, and the CHECKs would stop it anyway.
    throw new InsufficientCredits(Math.max(-e.amount, heldDelta), current.available);
  }
  const inserted = await tx.query(
    `INSERT INTO ledger_entries
       (user_id, kind, amount, held_delta, hold_id, job_id, transaction_id, admin_action_id, reason, shortfall, balance_after, held_after)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
     ON CONFLICT DO NOTHING
     RETURNING id`,
    [
      userId,
      e.kind,
      e.amount,
      heldDelta,
      e.holdId ?? null,
      e.jobId ?? null,
      e.transactionId ?? null,
      e.adminActionId ?? null,
      e.reason ?? null,
      e.shortfall ?? 0,
      balance,
      held,
    ],
  );
  if (inserted.rowCount === 0) return { applied: false, account: current };
  await tx.query('UPDATE credit_accounts SET balance = $2, held = $3, updated_at = now() WHERE user_id = $1', [
    userId,
    balance,
    held,
  ]);
  return { applied: true, account: state(balance, held) };
}

/** Creates the (empty) account for a new user; a no-op when it exists. */
export async function openAccount(db: Queryable, userId: string): Promise<void> {
  await db.query('INSERT INTO credit_accounts (user_id) VALUES ($1) ON CONFLICT DO NOTHING', [userId]);
}

export async function getAccount(db: Queryable, userId: string): Promise<AccountState> {
  const { rows } = await db.query<{ balance: number; held: number }>(
    'SELECT balance, held FROM credit_accounts WHERE user_id = $1',
    [userId],
  );
  if (!rows[0]) throw new AccountNotFound(userId);
  return state(rows[0].balance, rows[0].held);
}

/** The initial free credits. At most once per user (unique index); applied=false the second time. */
export async function grant(db: Queryable, input: { userId: string; amount: number; reason?: string }): Promise<EntryResult> {
  assertPositiveInt(input.amount, 'grant amount');
  return withTransaction(db, async (tx) => {
    const acct = await lockAccount(tx, input.userId);
    return writeEntry(tx, input.userId, acct, { kind: 'grant', amount: input.amount, reason: input.reason });
  });
}

/**
 * Credits a verified App Store purchase. A transaction id credits at most once, ever, to one user:
 * applied=false when it already did (creditedTo says to whom, so the caller can tell replay from theft).
 */
export async function purchase(
  db: Queryable,
  input: { userId: string; amount: number; transactionId: string },
): Promise<EntryResult & { creditedTo: string }> {
  assertPositiveInt(input.amount, 'purchase amount');
  return withTransaction(db, async (tx) => {
    const acct = await lockAccount(tx, input.userId);
    const result = await writeEntry(tx, input.userId, acct, {
      kind: 'purchase',
      amount: input.amount,
      transactionId: input.transactionId,
    });
    if (result.applied) return { ...result, creditedTo: input.userId };
    const { rows } = await tx.query<{ user_id: string }>(
      "SELECT user_id FROM ledger_entries WHERE transaction_id = $1 AND kind = 'purchase'",
      [input.transactionId],
    );
    return { ...result, creditedTo: rows[0]!.user_id };
  });
}

export interface HoldResult {
  holdId: string;
  created: boolean;
  account: AccountState;
}

/**
 * Reserves credits for a job. Throws InsufficientCredits when available < amount. One hold per
 * job: calling it again for the same job returns the existing hold (created=false).
 */
export async function hold(db: Queryable, input: { userId: string; amount: number; jobId: string }): Promise<HoldResult> {
  assertPositiveInt(input.amount, 'hold amount');
  return withTransaction(db, async (tx) => {
    const acct = await lockAccount(tx, input.userId);
    const existing = await tx.query<{ id: string }>('SELECT id FROM credit_holds WHERE job_id = $1', [input.jobId]);
    if (existing.rows[0]) return { holdId: existing.rows[0].id, created: false, account: acct };
    if (acct.available < input.amount) throw new InsufficientCredits(input.amount, acct.available);
    const { rows } = await tx.query<{ id: string }>(
      'INSERT INTO credit_holds (user_id, job_id, amount) VALUES ($1, $2, $3) RETURNING id',
      [input.userId, input.jobId, input.amount],
    );
    const holdId = rows[0]!.id;
    const { account } = await writeEntry(tx, input.userId, acct, {
      kind: 'hold',
      amount: 0,
      heldDelta: input.amount,
      holdId,
      jobId: input.jobId,
    });
    return { holdId, created: true, account };
  });
}

async function lockHoldForResolution(tx: Tx, holdId: string) {
  for (;;) {
    const found = await tx.query<{ user_id: string }>('SELECT user_id FROM credit_holds WHERE id = $1', [holdId]);
    if (!found.rows[0]) throw new HoldNotFound(holdId);
    const userId = found.rows[0].user_id;
    // Lock order everywhere: account, then hold — so captures and new holds never deadlock.
    const acct = await lockAccount(tx, userId);
    const { rows } = await tx.query<{ user_id: string; amount: number; status: string; job_id: string | null }>(
      'SELECT user_id, amount, status, job_id FROM credit_holds WHERE id = $1 FOR UPDATE',
      [holdId],
    );
    const h = rows[0]!;
    // An account merge moved the hold while we waited for the old owner's lock: lock the new owner.
    if (h.user_id !== userId) continue;
    if (h.status !== 'open') throw new HoldAlreadyResolved(holdId, h.status);
    return { userId, acct, amount: h.amount, jobId: h.job_id ?? undefined };
  }
}

/**
 * Spends held credits (the video was delivered). amount defaults to the whole hold; a smaller
 * amount captures that much and releases the rest. Throws HoldAlreadyResolved the second time.
 */
export async function capture(db: Queryable, input: { holdId: string; amount?: number }): Promise<AccountState> {
  return withTransaction(db, async (tx) => {
    const h = await lockHoldForResolution(tx, input.holdId);
    const amount = input.amount ?? h.amount;
    if (!Number.isSafeInteger(amount) || amount < 0 || amount > h.amount) {
      throw new InvalidAmount(`capture amount must be between 0 and ${h.amount}, got ${amount}`);
    }
    await tx.query(
      "UPDATE credit_holds SET status = 'captured', captured_amount = $2, resolved_at = now() WHERE id = $1",
      [input.holdId, amount],
    );
    let account = h.acct;
    if (amount > 0) {
      ({ account } = await writeEntry(tx, h.userId, account, {
        kind: 'capture',
        amount: -amount,
        heldDelta: -amount,
        holdId: input.holdId,
        jobId: h.jobId,
      }));
    }
    if (amount < h.amount) {
      ({ account } = await writeEntry(tx, h.userId, account, {
        kind: 'release',
        amount: 0,
        heldDelta: -(h.amount - amount),
        holdId: input.holdId,
        jobId: h.jobId,
        reason: 'partial capture remainder',
      }));
    }
    return account;
  });
}

/** Gives held credits back (the job failed, timed out or was cancelled). Exactly once per hold. */
export async function release(db: Queryable, input: { holdId: string; reason?: string }): Promise<AccountState> {
  return withTransaction(db, async (tx) => {
    const h = await lockHoldForResolution(tx, input.holdId);
    await tx.query("UPDATE credit_holds SET status = 'released', resolved_at = now() WHERE id = $1", [input.holdId]);
    const { account } = await writeEntry(tx, h.userId, h.acct, {
      kind: 'release',
      amount: 0,
      heldDelta: -h.amount,
      holdId: input.holdId,
      jobId: h.jobId,
      reason: input.reason,
    });
    return account;
  });
}

export interface ClawbackResult extends EntryResult {
  clawedBack: number;
  shortfall: number;
}

/**
 * Takes back a refunded purchase. Never below zero and never into credits held by running jobs:
 * what cannot be taken is recorded as shortfall. At most once per transaction id.
 */
export async function clawback(
  db: Queryable,
  input: { userId: string; transactionId: string; amount: number; reason?: string },
): Promise<ClawbackResult> {
  assertPositiveInt(input.amount, 'clawback amount');
  return withTransaction(db, async (tx) => {
    const acct = await lockAccount(tx, input.userId);
    const clawedBack = Math.min(input.amount, acct.available);
    const shortfall = input.amount - clawedBack;
    const result = await writeEntry(tx, input.userId, acct, {
      kind: 'refund_clawback',
      amount: -clawedBack,
      transactionId: input.transactionId,
      reason: input.reason,
      shortfall,
    });
    return result.applied ? { ...result, clawedBack, shortfall } : { ...result, clawedBack: 0, shortfall: 0 };
  });
}

/**
 * Apple reversed a refund: gives back exactly what the clawback took (not the shortfall it could
 * not take). At most once per transaction id; applied=false when there is nothing to restore.
 */
export async function reverseClawback(
  db: Queryable,
  input: { userId: string; transactionId: string; reason?: string },
): Promise<EntryResult & { restored: number }> {
  return withTransaction(db, async (tx) => {
    const acct = await lockAccount(tx, input.userId);
    const { rows } = await tx.query<{ amount: number }>(
      "SELECT amount FROM ledger_entries WHERE transaction_id = $1 AND kind = 'refund_clawback' AND user_id = $2",
      [input.transactionId, input.userId],
    );
    const restored = -(rows[0]?.amount ?? 0);
    if (restored <= 0) return { applied: false, account: acct, restored: 0 };
    const result = await writeEntry(tx, input.userId, acct, {
      kind: 'refund_reversal',
      amount: restored,
      transactionId: input.transactionId,
      reason: input.reason,
    });
    return { ...result, restored: result.applied ? restored : 0 };
  });
}

/**
 * Moves everything a guest's account holds into another account (Sign in with Apple merge):
 * its balance as a merge_out / merge_in pair, and its open holds (with their running jobs), so a
 * job that finishes later captures or releases on the new owner. Both accounts are locked in id
 * order, so two merges can never deadlock. Returns what moved (zero for an empty account).
 */
export async function mergeAccounts(db: Queryable, input: { fromUserId: string; toUserId: string }): Promise<{ moved: number; held: number }> {
  if (input.fromUserId === input.toUserId) throw new InvalidAmount('cannot merge an account into itself');
  return withTransaction(db, async (tx) => {
    const [first, second] = [input.fromUserId, input.toUserId].sort();
    const locked = new Map([
      [first!, await lockAccount(tx, first!)],
      [second!, await lockAccount(tx, second!)],
    ]);
    const from = locked.get(input.fromUserId)!;
    if (from.balance === 0) return { moved: 0, held: 0 };
    await tx.query("UPDATE credit_holds SET user_id = $2 WHERE user_id = $1 AND status = 'open'", [input.fromUserId, input.toUserId]);
    const reason = `merge ${input.fromUserId} → ${input.toUserId}`;
    await writeEntry(tx, input.fromUserId, from, { kind: 'merge_out', amount: -from.balance, heldDelta: -from.held, reason });
    await writeEntry(tx, input.toUserId, locked.get(input.toUserId)!, { kind: 'merge_in', amount: from.balance, heldDelta: from.held, reason });
    return { moved: from.balance, held: from.held };
  });
}

/** An audited manual correction by an admin; negative amounts cannot exceed what is available. */
export async function adminAdjust(
  db: Queryable,
  input: { userId: string; amount: number; adminActionId?: number; reason: string },
): Promise<EntryResult> {
  if (!Number.isSafeInteger(input.amount) || input.amount === 0) throw new InvalidAmount('adjustment must be a non-zero integer');
  return withTransaction(db, async (tx) => {
    const acct = await lockAccount(tx, input.userId);
    if (input.amount < 0 && acct.available < -input.amount) throw new InsufficientCredits(-input.amount, acct.available);
    return writeEntry(tx, input.userId, acct, {
      kind: 'admin_adjust',
      amount: input.amount,
      adminActionId: input.adminActionId,
      reason: input.reason,
    });
  });
}

/** Credits granted, bought or added over the account's life (the profile's credits_total). */
export async function totalCredited(db: Queryable, userId: string): Promise<number> {
  const { rows } = await db.query<{ total: number }>(
    `SELECT coalesce(sum(amount), 0) AS total FROM ledger_entries
      WHERE user_id = $1 AND amount > 0 AND kind IN ('grant', 'purchase', 'admin_adjust', 'refund_reversal', 'merge_in')`,
    [userId],
  );
  return rows[0]!.total;
}

/** Whether the user ever received the initial grant (the profile's initial_grant_claimed). */
export async function hasGrant(db: Queryable, userId: string): Promise<boolean> {
  // A guest merged into this account brought its grant along (the entry stays on the guest's tombstone).
  const { rows } = await db.query(
    `SELECT 1 FROM ledger_entries
      WHERE kind = 'grant' AND (user_id = $1 OR user_id IN (SELECT id FROM users WHERE merged_into = $1))
      LIMIT 1`,
    [userId],
  );
  return rows.length > 0;
}
