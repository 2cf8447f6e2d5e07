import { RetryTransaction, withTransaction, type Queryable, type Tx } from '../db/pool.js';
import { AccountClosed, AccountNotFound, HoldAlreadyResolved, HoldNotFound, InsufficientCredits, InvalidAmount } from './errors.js';

/**
 * The only code that moves credits (CONTRIBUTING.md). Every operation is one transaction (or joins
 * the caller's): lock the account row, write one append-only entry carrying balance_after and
 * held_after, update the totals. Uniqueness rules live in the database (partial unique indexes),
 * so a duplicate grant or purchase is detected by the insert itself, never by check-then-act.
 *
 * balance = credits owned; held = credits reserved by open holds; available = balance - held;
 * debt = what clawbacks could not take because the credits were held (see writeEntry): while
 * anything is owed, nothing is available, and every release or credit pays the debt first.
 *
 * Credits always land on a user's current OWNER: the end of its merge chain (a guest merged into an
 * Apple account is a tombstone that must hold nothing). Lock order, everywhere (docs/ARCHITECTURE.md):
 * the owner's users row (FOR KEY SHARE; a merge or deletion takes FOR UPDATE) → its credit_accounts
 * row → only then the rows that belong to the account (holds, jobs, purchases, refund states).
 */

export interface AccountState {
  balance: number;
  held: number;
  available: number;
  debt: number;
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
  | 'merge_out'
  | 'forfeit'
  | 'admin_grant'
  | 'admin_clawback'
  | 'debt_collection'
  | 'debt_reversal'
  | 'debt_merge_out'
  | 'debt_merge_in'
  | 'import';

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
  refundRound?: number;
  /** Change to the account's debt (a clawback's shortfall; a merge moving it; a payment). */
  debtDelta?: number;
  /** The clawback entry whose debt a debt_collection / debt_reversal pays or cancels. */
  debtOf?: string;
}

export interface EntryResult {
  /** false when a uniqueness rule said this entry already exists: nothing moved. */
  applied: boolean;
  account: AccountState;
}

const state = (balance: number, held: number, debt = 0): AccountState => ({ balance, held, available: balance - held, debt });

/**
 * The account after an entry moving `amount` and `debtDelta`, and the debt collection that follows
 * it (pure: the admin audit row predicts with it what the ledger will write). A debt is paid from
 * whatever becomes available before anything else can use it.
 */
export function settle(a: AccountState, amount: number, debtDelta = 0): AccountState {
  const balance = a.balance + amount;
  const debt = a.debt + debtDelta;
  const collected = Math.max(0, Math.min(debt, balance - a.held));
  return state(balance - collected, a.held, debt - collected);
}

function assertPositiveInt(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidAmount(`${what} must be a positive integer, got ${n}`);
}

export interface LockedOwner {
  /** The end of the merge chain: whose account the credits are on. */
  ownerId: string;
  /** The owner's account was deleted: nothing new may be credited or held there. */
  closed: boolean;
  account: AccountState;
}

/**
 * Locks the account credits for userId land on: follows merges to the owner, locks the owner's
 * users row (FOR KEY SHARE: a concurrent merge or deletion of the owner waits for us, and we wait
 * for it, then see where it moved) and then its account row. A merge that committed while we
 * waited is followed to its new owner.
 */
export async function lockOwner(db: Queryable, userId: string): Promise<LockedOwner> {
  for (let hops = 0; hops < 64; hops++) {
    // One round trip, locks in the order of the FROM list: the users row, then its account.
    const { rows } = await db.query<{ id: string; merged_into: string | null; closed: boolean; balance: number; held: number; debt: number }>(
      `SELECT u.id, u.merged_into, u.deleted_at IS NOT NULL AS closed, a.balance, a.held, a.debt
         FROM users u JOIN credit_accounts a ON a.user_id = u.id
        WHERE u.id = user_current_owner($1)
          FOR KEY SHARE OF u FOR UPDATE OF a`,
      [userId],
    );
    const owner = rows[0];
    if (!owner) throw new AccountNotFound(userId);
    if (owner.merged_into) continue; // merged while we waited for its lock: follow it
    return { ownerId: owner.id, closed: owner.closed, account: state(owner.balance, owner.held, owner.debt) };
  }
  throw new Error(`merge chain of ${userId} does not end`);
}

/** lockOwner, refusing a deleted account (AccountClosed): nothing new lands there. */
export async function lockOpenOwner(db: Queryable, userId: string): Promise<LockedOwner> {
  const owner = await lockOwner(db, userId);
  if (owner.closed) throw new AccountClosed(owner.ownerId);
  return owner;
}

/** What the user's current owner can spend now (no lock: a fast, advisory pre-check). */
export async function availableNow(db: Queryable, userId: string): Promise<number | undefined> {
  const { rows } = await db.query<{ available: number }>(
    'SELECT balance - held AS available FROM credit_accounts WHERE user_id = user_current_owner($1)',
    [userId],
  );
  return rows[0]?.available;
}

/** Whose account a user's credits are on now (no lock: for reads and comparisons). */
export async function currentOwner(db: Queryable, userId: string): Promise<string | undefined> {
  const { rows } = await db.query<{ id: string | null }>('SELECT user_current_owner($1) AS id', [userId]);
  return rows[0]?.id ?? undefined;
}

async function lockAccount(tx: Queryable, userId: string): Promise<AccountState> {
  const { rows } = await tx.query<{ balance: number; held: number; debt: number }>(
    'SELECT balance, held, debt FROM credit_accounts WHERE user_id = $1 FOR UPDATE',
    [userId],
  );
  const row = rows[0];
  if (!row) throw new AccountNotFound(userId);
  return state(row.balance, row.held, row.debt);
}

/**
 * Writes one entry against an account already locked by the caller. The entry is inserted
 * first with ON CONFLICT DO NOTHING: if a unique index says it exists (second grant, reused
 * transaction id, second capture), nothing is updated and applied=false. When the entry leaves
 * credits available while the account owes a debt, the debt is collected from them at once
 * (collectDebt), before the totals are stored: an account never has both.
 * alsoOwing: a guest being merged in, whose debts this account takes on with this entry.
 */
async function writeEntry(tx: Queryable, userId: string, current: AccountState, e: EntryInput, alsoOwing?: string): Promise<EntryResult> {
  const written = await insertEntry(tx, userId, current, e);
  if (!written) return { applied: false, account: current };
  const account = written.debt > 0 && written.available > 0 ? await collectDebt(tx, userId, written, alsoOwing) : written;
  await tx.query('UPDATE credit_accounts SET balance = $2, held = $3, debt = $4, updated_at = now() WHERE user_id = $1', [
    userId,
    account.balance,
    account.held,
    account.debt,
  ]);
  return { applied: true, account };
}

/** Inserts one entry carrying the running totals; undefined when a unique index says it exists. */
async function insertEntry(tx: Queryable, userId: string, current: AccountState, e: EntryInput): Promise<AccountState | undefined> {
  const heldDelta = e.heldDelta ?? 0;
  const debtDelta = e.debtDelta ?? 0;
  const balance = current.balance + e.amount;
  const held = current.held + heldDelta;
  const debt = current.debt + debtDelta;
  if (balance < 0 || held < 0 || held > balance || debt < 0) {
    // Callers check availability first; reaching this is a bug, and the CHECKs would stop it anyway.
    throw new InsufficientCredits(Math.max(-e.amount, heldDelta), current.available);
  }
  const inserted = await tx.query(
    `INSERT INTO ledger_entries
       (user_id, kind, amount, held_delta, hold_id, job_id, transaction_id, admin_action_id, reason, shortfall, refund_round,
        balance_after, held_after, debt_delta, debt_after, debt_of)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
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
      e.refundRound ?? null,
      balance,
      held,
      debtDelta,
      debt,
      e.debtOf ?? null,
    ],
  );
  return inserted.rowCount === 0 ? undefined : state(balance, held, debt);
}

interface Debt {
  /** The clawback entry that recorded it. */
  id: string;
  outstanding: number;
  /** Paid from the account's credits and not given back (by a reversal of its refund). */
  collected: number;
}

/**
 * The debts recorded by clawbacks on this account or on guests merged into it (a merge moves the
 * debt with the credits), with what is still owed and what was collected for each; oldest first.
 */
async function debtsOf(tx: Queryable, userId: string, alsoOwing?: string): Promise<Debt[]> {
  const { rows } = await tx.query<Debt>(
    `WITH RECURSIVE chain (id) AS (
       SELECT $1::uuid UNION SELECT $2::uuid WHERE $2::uuid IS NOT NULL
       UNION SELECT u.id FROM users u JOIN chain c ON u.merged_into = c.id)
     SELECT c.id::text AS id,
            c.debt_delta + coalesce(sum(p.debt_delta), 0)::int AS outstanding,
            coalesce(sum(-p.amount), 0)::int AS collected
       FROM ledger_entries c LEFT JOIN ledger_entries p ON p.debt_of = c.id
      WHERE c.user_id IN (SELECT id FROM chain) AND c.kind IN ('refund_clawback', 'admin_clawback') AND c.debt_delta > 0
      GROUP BY c.id ORDER BY c.id`,
    [userId, alsoOwing ?? null],
  );
  return rows;
}

/** Pays the account's debts, oldest first, from what is available: one debt_collection entry per debt. */
async function collectDebt(tx: Queryable, userId: string, account: AccountState, alsoOwing?: string): Promise<AccountState> {
  let left = Math.min(account.debt, account.available);
  for (const d of await debtsOf(tx, userId, alsoOwing)) {
    const take = Math.min(left, d.outstanding);
    if (take <= 0) continue;
    account = (await insertEntry(tx, userId, account, { kind: 'debt_collection', amount: -take, debtDelta: -take, debtOf: d.id }))!;
    left -= take;
  }
  // The debt total and the clawbacks that recorded it disagree: a bug that verify-ledger names.
  if (left > 0) throw new Error(`account ${userId}: debt ${account.debt} is not owed to any clawback`);
  return account;
}

/** Creates the (empty) account for a new user; a no-op when it exists. */
export async function openAccount(db: Queryable, userId: string): Promise<void> {
  await db.query('INSERT INTO credit_accounts (user_id) VALUES ($1) ON CONFLICT DO NOTHING', [userId]);
}

export async function getAccount(db: Queryable, userId: string): Promise<AccountState> {
  const { rows } = await db.query<{ balance: number; held: number; debt: number }>(
    'SELECT balance, held, debt FROM credit_accounts WHERE user_id = $1',
    [userId],
  );
  if (!rows[0]) throw new AccountNotFound(userId);
  return state(rows[0].balance, rows[0].held, rows[0].debt);
}

/**
 * The initial free credits of a device, given to the guest onboarded from it: at most once per
 * guest (unique index; applied=false the second time), and each guest belongs to one device, so
 * once per device. A guest that merged into an account before its (pending) grant completed gets
 * it on its own account and hands it on at once, as its merge would have: a merge_out / merge_in
 * pair to its current owner. So an account holding its own grant still receives the grant of every
 * device whose guest merged into it, and the one-grant-per-user index keeps saying "never twice".
 */
export async function grant(db: Queryable, input: { userId: string; amount: number; reason?: string }): Promise<EntryResult> {
  assertPositiveInt(input.amount, 'grant amount');
  return withTransaction(db, async (tx) => {
    const { ownerId, account } = await lockOpenOwner(tx, input.userId);
    const entry = { kind: 'grant' as const, amount: input.amount, reason: input.reason };
    if (ownerId === input.userId) return writeEntry(tx, ownerId, account, entry);
    // Lock order: the owner's users row and account (above), then the tombstone's account, which
    // nothing else locks any more (its merge is over; everything else lands on the owner).
    const guest = await lockAccount(tx, input.userId);
    const granted = await writeEntry(tx, input.userId, guest, entry);
    if (!granted.applied) return { applied: false, account };
    const reason = `merge ${input.userId} → ${ownerId} (its free grant, completed after the merge)`;
    await writeEntry(tx, input.userId, granted.account, { kind: 'merge_out', amount: -input.amount, reason });
    return writeEntry(tx, ownerId, account, { kind: 'merge_in', amount: input.amount, reason });
  });
}

/**
 * Credits a verified App Store purchase to the buyer's current owner. A transaction id credits at
 * most once, ever, to one user: applied=false when it already did (creditedTo says to whom, so the
 * caller can tell replay from theft). Refused (AccountClosed) for a deleted account.
 */
export async function purchase(
  db: Queryable,
  input: { userId: string; amount: number; transactionId: string },
): Promise<EntryResult & { creditedTo: string }> {
  assertPositiveInt(input.amount, 'purchase amount');
  return withTransaction(db, async (tx) => {
    const { ownerId, account } = await lockOpenOwner(tx, input.userId);
    const result = await writeEntry(tx, ownerId, account, {
      kind: 'purchase',
      amount: input.amount,
      transactionId: input.transactionId,
    });
    if (result.applied) return { ...result, creditedTo: ownerId };
    const { rows } = await tx.query<{ user_id: string }>(
      "SELECT user_id FROM ledger_entries WHERE transaction_id = $1 AND kind = 'purchase'",
      [input.transactionId],
    );
    return { ...result, creditedTo: rows[0]!.user_id };
  });
}

export interface HoldResult {
  holdId: string;
  /** Whose account holds it: the caller's current owner (a guest merged mid-request holds on its new account). */
  userId: string;
  created: boolean;
  account: AccountState;
}

/**
 * Reserves credits for a job on the user's current owner. Throws InsufficientCredits when
 * available < amount, AccountClosed for a deleted account. One hold per job: calling it again for
 * the same job returns the existing hold (created=false).
 */
export async function hold(db: Queryable, input: { userId: string; amount: number; jobId: string }): Promise<HoldResult> {
  assertPositiveInt(input.amount, 'hold amount');
  return withTransaction(db, async (tx) => {
    const { ownerId, account: acct } = await lockOpenOwner(tx, input.userId);
    const existing = await tx.query<{ id: string; user_id: string }>('SELECT id, user_id FROM credit_holds WHERE job_id = $1', [input.jobId]);
    if (existing.rows[0]) return { holdId: existing.rows[0].id, userId: existing.rows[0].user_id, created: false, account: acct };
    if (acct.available < input.amount) throw new InsufficientCredits(input.amount, acct.available);
    const { rows } = await tx.query<{ id: string }>(
      'INSERT INTO credit_holds (user_id, job_id, amount) VALUES ($1, $2, $3) RETURNING id',
      [ownerId, input.jobId, input.amount],
    );
    const holdId = rows[0]!.id;
    const { account } = await writeEntry(tx, ownerId, acct, {
      kind: 'hold',
      amount: 0,
      heldDelta: input.amount,
      holdId,
      jobId: input.jobId,
    });
    return { holdId, userId: ownerId, created: true, account };
  });
}

async function lockHoldForResolution(tx: Tx, holdId: string) {
  const found = await tx.query<{ user_id: string }>('SELECT user_id FROM credit_holds WHERE id = $1', [holdId]);
  if (!found.rows[0]) throw new HoldNotFound(holdId);
  // Lock order everywhere: owner, account, then hold — so captures, new holds and merges never deadlock.
  const { ownerId, account } = await lockOwner(tx, found.rows[0].user_id);
  const { rows } = await tx.query<{ user_id: string; amount: number; status: string; job_id: string | null }>(
    'SELECT user_id, amount, status, job_id FROM credit_holds WHERE id = $1 FOR UPDATE',
    [holdId],
  );
  const h = rows[0]!;
  if (h.status !== 'open') throw new HoldAlreadyResolved(holdId, h.status);
  // A merge moved the hold between the two reads: start over, locking the new owner first
  // (withTransaction retries a bounded number of times).
  if (h.user_id !== ownerId) throw new RetryTransaction();
  return { userId: ownerId, acct: account, amount: h.amount, jobId: h.job_id ?? undefined };
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

/** Where a transaction's refunds stand: rounds clawed back and rounds reversed (each at most once). */
async function refundRounds(
  tx: Queryable,
  transactionId: string,
): Promise<{ clawbacks: number; reversals: number; lastClawedBack: number; lastClawback: string | null }> {
  const { rows } = await tx.query<{ clawbacks: number; reversals: number; last_clawed_back: number | null; last_clawback: string | null }>(
    `SELECT count(*) FILTER (WHERE kind = 'refund_clawback')::int AS clawbacks,
            count(*) FILTER (WHERE kind = 'refund_reversal')::int AS reversals,
            (SELECT -amount FROM ledger_entries
              WHERE transaction_id = $1 AND kind = 'refund_clawback' ORDER BY refund_round DESC LIMIT 1) AS last_clawed_back,
            (SELECT id::text FROM ledger_entries
              WHERE transaction_id = $1 AND kind = 'refund_clawback' ORDER BY refund_round DESC LIMIT 1) AS last_clawback
       FROM ledger_entries WHERE transaction_id = $1 AND kind IN ('refund_clawback', 'refund_reversal')`,
    [transactionId],
  );
  const r = rows[0]!;
  return { clawbacks: r.clawbacks, reversals: r.reversals, lastClawedBack: r.last_clawed_back ?? 0, lastClawback: r.last_clawback };
}

/** Whether the transaction's credits are currently taken back (a clawback not yet reversed). */
export async function isClawedBack(db: Queryable, transactionId: string): Promise<boolean> {
  const r = await refundRounds(db, transactionId);
  return r.clawbacks > r.reversals;
}

/**
 * Takes back a refunded purchase from the buyer's current owner. Never below zero and never into
 * credits held by running jobs: what cannot be taken is recorded as shortfall, and owed as the
 * account's debt (paid from the next releases and credits; a deleted account owes nothing new).
 * applied=false while the transaction is already clawed back (a refund after a reversal opens a
 * new round).
 */
export async function clawback(
  db: Queryable,
  input: { userId: string; transactionId: string; amount: number; reason?: string },
): Promise<ClawbackResult> {
  assertPositiveInt(input.amount, 'clawback amount');
  return withTransaction(db, async (tx) => {
    const { ownerId, closed, account } = await lockOwner(tx, input.userId);
    const rounds = await refundRounds(tx, input.transactionId);
    if (rounds.clawbacks > rounds.reversals) return { applied: false, account, clawedBack: 0, shortfall: 0 };
    const { taken: clawedBack, shortfall } = clawbackTake(account, input.amount);
    const result = await writeEntry(tx, ownerId, account, {
      kind: 'refund_clawback',
      amount: -clawedBack,
      transactionId: input.transactionId,
      reason: input.reason,
      shortfall,
      debtDelta: closed ? 0 : shortfall,
      refundRound: rounds.clawbacks + 1,
    });
    return result.applied ? { ...result, clawedBack, shortfall } : { ...result, clawedBack: 0, shortfall: 0 };
  });
}

/**
 * Apple reversed a refund: first what the last clawback left owed is cancelled and what was
 * collected for it since is given back (a debt_reversal entry), then exactly what the clawback took
 * is given back. So the account ends as if the refund never happened (nothing to a deleted account,
 * whose credits are forfeit). applied=false when the transaction is not clawed back.
 */
export async function reverseClawback(
  db: Queryable,
  input: { userId: string; transactionId: string; reason?: string },
): Promise<EntryResult & { restored: number }> {
  return withTransaction(db, async (tx) => {
    const { ownerId, closed, account } = await lockOwner(tx, input.userId);
    const rounds = await refundRounds(tx, input.transactionId);
    if (rounds.clawbacks === rounds.reversals) return { applied: false, account, restored: 0 };
    let current = account;
    const debt = (await debtsOf(tx, ownerId)).find((d) => d.id === rounds.lastClawback);
    const giveBack = closed ? 0 : (debt?.collected ?? 0);
    if (debt && (debt.outstanding > 0 || giveBack > 0)) {
      ({ account: current } = await writeEntry(tx, ownerId, current, {
        kind: 'debt_reversal',
        amount: giveBack,
        debtDelta: -debt.outstanding,
        debtOf: debt.id,
        reason: 'refund reversed: its debt is cancelled and what was collected for it given back',
      }));
    }
    const restored = closed ? 0 : rounds.lastClawedBack;
    const result = await writeEntry(tx, ownerId, current, {
      kind: 'refund_reversal',
      amount: restored,
      transactionId: input.transactionId,
      reason: closed ? `${input.reason ?? 'refund reversed'} (account deleted: nothing restored)` : input.reason,
      refundRound: rounds.clawbacks,
    });
    // The rounds were read under the account lock: a second reversal of this round cannot exist.
    if (!result.applied) throw new RetryTransaction();
    return { ...result, restored };
  });
}

/**
 * Moves everything a guest's account holds into another account (Sign in with Apple merge):
 * its balance as a merge_out / merge_in pair, and its open holds (with their running jobs), so a
 * job that finishes later captures or releases on the new owner. The caller has locked both users
 * rows FOR UPDATE (users before accounts); the accounts are locked in id order. Returns what moved.
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
    if (from.balance === 0 && from.debt === 0) return { moved: 0, held: 0 };
    await tx.query("UPDATE credit_holds SET user_id = $2 WHERE user_id = $1 AND status = 'open'", [input.fromUserId, input.toUserId]);
    const reason = `merge ${input.fromUserId} → ${input.toUserId}`;
    // The guest's debt moves too (the guest had nothing available): the account pays it from what it has.
    let guest = from;
    let into = locked.get(input.toUserId)!;
    if (from.debt > 0) {
      ({ account: guest } = await writeEntry(tx, input.fromUserId, guest, { kind: 'debt_merge_out', amount: 0, debtDelta: -from.debt, reason }));
      ({ account: into } = await writeEntry(tx, input.toUserId, into, { kind: 'debt_merge_in', amount: 0, debtDelta: from.debt, reason }, input.fromUserId));
    }
    if (from.balance > 0) {
      await writeEntry(tx, input.fromUserId, guest, { kind: 'merge_out', amount: -from.balance, heldDelta: -from.held, reason });
      await writeEntry(tx, input.toUserId, into, { kind: 'merge_in', amount: from.balance, heldDelta: from.held, reason }, input.fromUserId);
    }
    return { moved: from.balance, held: from.held };
  });
}

/**
 * Account deletion: what is left on the account is forfeit, so a deleted account holds nothing.
 * The caller has ended the account's jobs first (their holds released): an open hold is a bug.
 */
export async function forfeit(db: Queryable, input: { userId: string; reason: string }): Promise<{ forfeited: number }> {
  return withTransaction(db, async (tx) => {
    const account = await lockAccount(tx, input.userId);
    if (account.held > 0) throw new InvalidAmount(`account ${input.userId} still holds ${account.held} credits for running jobs`);
    if (account.balance === 0) return { forfeited: 0 };
    await writeEntry(tx, input.userId, account, { kind: 'forfeit', amount: -account.balance, reason: input.reason });
    return { forfeited: account.balance };
  });
}

/** An audited manual correction by an admin; negative amounts cannot exceed what is available. */
export async function adminAdjust(
  db: Queryable,
  input: { userId: string; amount: number; adminActionId?: number; reason: string },
): Promise<EntryResult> {
  if (!Number.isSafeInteger(input.amount) || input.amount === 0) throw new InvalidAmount('adjustment must be a non-zero integer');
  return withTransaction(db, async (tx) => {
    const { ownerId, account: acct } = await lockOpenOwner(tx, input.userId);
    if (input.amount < 0 && acct.available < -input.amount) throw new InsufficientCredits(-input.amount, acct.available);
    return writeEntry(tx, ownerId, acct, {
      kind: 'admin_adjust',
      amount: input.amount,
      adminActionId: input.adminActionId,
      reason: input.reason,
    });
  });
}

/**
 * What a clawback of `requested` credits takes from an account: never below zero and never into
 * credits held by running jobs (as Apple refunds, docs/reference/DESIGN.md §4.3); the rest is the shortfall.
 */
export function clawbackTake(account: AccountState, requested: number): { taken: number; shortfall: number } {
  const taken = Math.max(0, Math.min(requested, account.available));
  return { taken, shortfall: requested - taken };
}

/**
 * Credits given by an admin (support goodwill, a refund for a bad video). Exactly one entry per
 * audit row (adminActionId, unique in the ledger): applied=false when that row already moved money.
 * Lands on the user's current owner; refused (AccountClosed) for a deleted account.
 */
export async function adminGrant(
  db: Queryable,
  input: { userId: string; amount: number; adminActionId: number; reason: string },
): Promise<EntryResult & { ownerId: string }> {
  assertPositiveInt(input.amount, 'grant amount');
  return withTransaction(db, async (tx) => {
    const { ownerId, account } = await lockOpenOwner(tx, input.userId);
    const r = await writeEntry(tx, ownerId, account, { kind: 'admin_grant', amount: input.amount, adminActionId: input.adminActionId, reason: input.reason });
    return { ...r, ownerId };
  });
}

/**
 * Credits taken back by an admin, clamped like an Apple refund (clawbackTake): what could not be
 * taken is recorded as the entry's shortfall and owed as debt. One entry per audit row, like adminGrant.
 */
export async function adminClawback(
  db: Queryable,
  input: { userId: string; amount: number; adminActionId: number; reason: string },
): Promise<ClawbackResult & { ownerId: string }> {
  assertPositiveInt(input.amount, 'clawback amount');
  return withTransaction(db, async (tx) => {
    const { ownerId, closed, account } = await lockOwner(tx, input.userId);
    const { taken, shortfall } = clawbackTake(account, input.amount);
    const r = await writeEntry(tx, ownerId, account, {
      kind: 'admin_clawback',
      amount: -taken,
      adminActionId: input.adminActionId,
      reason: input.reason,
      shortfall,
      debtDelta: closed ? 0 : shortfall,
    });
    return r.applied ? { ...r, ownerId, clawedBack: taken, shortfall } : { ...r, ownerId, clawedBack: 0, shortfall: 0 };
  });
}

/** Credits granted, bought or added over the account's life (the profile's credits_total). */
export async function totalCredited(db: Queryable, userId: string): Promise<number> {
  const { rows } = await db.query<{ total: number }>(
    `SELECT coalesce(sum(amount), 0) AS total FROM ledger_entries
      WHERE user_id = $1 AND amount > 0 AND kind IN ('grant', 'purchase', 'admin_adjust', 'admin_grant', 'refund_reversal', 'merge_in')`,
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

/**
 * The moving-in of a deployment from the app's former backend (src/import/): each imported user's
 * balance there becomes its account's opening `import` entry, naming the source row. Only for
 * accounts that do not exist yet, in bulk (a batch of users is inserted in the same transaction);
 * the ids of the accounts opened now are returned, so a second run opens nothing.
 */
export async function openImportedAccounts(tx: Tx, rows: { userId: string; amount: number; reason: string }[]): Promise<Set<string>> {
  for (const r of rows) if (!Number.isSafeInteger(r.amount) || r.amount < 0) throw new InvalidAmount(`opening balance must be >= 0, got ${r.amount}`);
  if (rows.length === 0) return new Set();
  // The entry's foreign key to its account is checked at the end of the statement, after the
  // account's insert in the same statement.
  const { rows: opened } = await tx.query<{ user_id: string }>(
    `WITH src AS (SELECT * FROM unnest($1::uuid[], $2::int[], $3::text[]) AS s (user_id, amount, reason)),
          opened AS (INSERT INTO credit_accounts (user_id, balance) SELECT user_id, amount FROM src
                     ON CONFLICT DO NOTHING RETURNING user_id, balance)
     INSERT INTO ledger_entries (user_id, kind, amount, reason, balance_after, held_after, debt_after)
     SELECT o.user_id, 'import', o.balance, s.reason, o.balance, 0, 0 FROM opened o JOIN src s USING (user_id)
     RETURNING user_id::text`,
    [rows.map((r) => r.userId), rows.map((r) => r.amount), rows.map((r) => r.reason)],
  );
  return new Set(opened.map((r) => r.user_id));
}

/**
 * A job that was still running in the former backend is ended by the import, and the credits that
 * backend had taken for it come back: an `import` entry naming the job, once per job.
 */
export async function refundImportedJob(db: Queryable, input: { userId: string; jobId: string; amount: number; reason: string }): Promise<EntryResult> {
  assertPositiveInt(input.amount, 'refund of an imported job');
  return withTransaction(db, async (tx) => {
    const { ownerId, account } = await lockOwner(tx, input.userId);
    return writeEntry(tx, ownerId, account, { kind: 'import', amount: input.amount, jobId: input.jobId, reason: input.reason });
  });
}

/**
 * Apple purchases the former backend credited: their credits are in the opening balance, so each is
 * recorded with an `import` entry of 0 naming the transaction — the mark that it was credited, once
 * (a unique index). A REFUND for one then claws back as for any purchase (src/ledger/refunds.ts).
 * In bulk, for a page of purchases: the owners' users rows and accounts are locked in id order (the
 * ledger's lock order), and an entry of 0 carries the account's totals as they are. Returns the
 * transaction ids marked now.
 */
export async function recordImportedPurchases(tx: Tx, rows: { ownerId: string; transactionId: string; reason: string }[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const { rows: marked } = await tx.query<{ transaction_id: string }>(
    `WITH src AS (SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[]) AS s (owner_id, transaction_id, reason)),
          locked AS (SELECT a.user_id, a.balance, a.held, a.debt FROM users u JOIN credit_accounts a ON a.user_id = u.id
                      WHERE u.id IN (SELECT owner_id FROM src) ORDER BY u.id FOR KEY SHARE OF u FOR UPDATE OF a)
     INSERT INTO ledger_entries (user_id, kind, amount, transaction_id, reason, balance_after, held_after, debt_after)
     SELECT s.owner_id, 'import', 0, s.transaction_id, s.reason, l.balance, l.held, l.debt FROM src s JOIN locked l ON l.user_id = s.owner_id
     ON CONFLICT DO NOTHING
     RETURNING transaction_id`,
    [rows.map((r) => r.ownerId), rows.map((r) => r.transactionId), rows.map((r) => r.reason)],
  );
  return new Set(marked.map((r) => r.transaction_id));
}
