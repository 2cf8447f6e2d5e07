import type { Queryable } from '../db/pool.js';

/**
 * DESIGN §4 money invariants as SQL, read-only, runnable on any database
 * (`npm run verify-ledger`, and after every integration test). Each check returns offending rows.
 */

export interface Violation {
  check: string;
  rows: Record<string, unknown>[];
}

const CHECKS: { name: string; sql: string }[] = [
  {
    name: 'balance and held equal the sums of the ledger',
    sql: `SELECT a.user_id, a.balance, a.held, coalesce(s.amount, 0) AS ledger_balance, coalesce(s.held, 0) AS ledger_held
            FROM credit_accounts a
            LEFT JOIN (SELECT user_id, sum(amount) AS amount, sum(held_delta) AS held FROM ledger_entries GROUP BY user_id) s
              ON s.user_id = a.user_id
           WHERE a.balance <> coalesce(s.amount, 0) OR a.held <> coalesce(s.held, 0)`,
  },
  {
    name: 'held equals the sum of open holds',
    sql: `SELECT a.user_id, a.held, coalesce(h.open, 0) AS open_holds
            FROM credit_accounts a
            LEFT JOIN (SELECT user_id, sum(amount) AS open FROM credit_holds WHERE status = 'open' GROUP BY user_id) h
              ON h.user_id = a.user_id
           WHERE a.held <> coalesce(h.open, 0)`,
  },
  {
    name: 'no negative balance and 0 <= held <= balance',
    sql: `SELECT user_id, balance, held FROM credit_accounts WHERE balance < 0 OR held < 0 OR held > balance`,
  },
  {
    name: 'every entry carries the running totals (balance_after, held_after)',
    sql: `SELECT user_id, id, balance_after, running_balance, held_after, running_held FROM (
            SELECT user_id, id, balance_after, held_after,
                   sum(amount) OVER w AS running_balance, sum(held_delta) OVER w AS running_held
              FROM ledger_entries
            WINDOW w AS (PARTITION BY user_id ORDER BY id)
          ) e WHERE balance_after <> running_balance OR held_after <> running_held`,
  },
  {
    name: 'every hold was placed exactly once, for its amount',
    sql: `SELECT h.id, h.amount, count(e.id) AS hold_entries, sum(e.held_delta) AS placed
            FROM credit_holds h LEFT JOIN ledger_entries e ON e.hold_id = h.id AND e.kind = 'hold'
           GROUP BY h.id, h.amount
          HAVING count(e.id) <> 1 OR sum(e.held_delta) <> h.amount`,
  },
  {
    name: 'every hold is captured or released exactly once, and open holds not at all',
    sql: `SELECT h.id, h.status, h.amount, h.captured_amount,
                 coalesce(sum(-e.amount) FILTER (WHERE e.kind = 'capture'), 0) AS captured,
                 coalesce(sum(-e.held_delta) FILTER (WHERE e.kind IN ('capture', 'release')), 0) AS unheld
            FROM credit_holds h LEFT JOIN ledger_entries e ON e.hold_id = h.id
           GROUP BY h.id
          HAVING (h.status = 'open' AND coalesce(sum(-e.held_delta) FILTER (WHERE e.kind IN ('capture', 'release')), 0) <> 0)
              OR (h.status <> 'open' AND coalesce(sum(-e.held_delta) FILTER (WHERE e.kind IN ('capture', 'release')), 0) <> h.amount)
              OR (h.status = 'captured' AND coalesce(sum(-e.amount) FILTER (WHERE e.kind = 'capture'), 0) <> h.captured_amount)
              OR (h.status = 'released' AND coalesce(sum(-e.amount) FILTER (WHERE e.kind = 'capture'), 0) <> 0)`,
  },
  {
    name: 'hold entries move only held credits, captures only what they unhold',
    sql: `SELECT id, kind, amount, held_delta FROM ledger_entries
           WHERE (kind = 'hold' AND (amount <> 0 OR held_delta <= 0))
              OR (kind = 'release' AND (amount <> 0 OR held_delta >= 0))
              OR (kind = 'capture' AND (amount >= 0 OR amount <> held_delta))
              OR (kind = 'merge_out' AND held_delta > 0)
              OR (kind = 'merge_in' AND held_delta < 0)
              OR (kind NOT IN ('hold', 'release', 'capture', 'merge_in', 'merge_out') AND held_delta <> 0)`,
  },
  {
    name: 'merges move credits and holds between accounts without creating or losing any',
    sql: `SELECT sum(amount) AS amount, sum(held_delta) AS held FROM ledger_entries WHERE kind IN ('merge_in', 'merge_out')
          HAVING sum(amount) <> 0 OR sum(held_delta) <> 0`,
  },
  {
    name: 'a refund reversal restores at most what its clawback took, on the same (current) user',
    sql: `SELECT r.transaction_id, r.refund_round, r.amount AS restored, -c.amount AS clawed_back, c.user_id AS clawback_user, r.user_id AS reversal_user
            FROM ledger_entries r
            LEFT JOIN ledger_entries c ON c.transaction_id = r.transaction_id AND c.kind = 'refund_clawback' AND c.refund_round = r.refund_round
           WHERE r.kind = 'refund_reversal'
             AND (c.id IS NULL OR r.amount > -c.amount OR user_current_owner(c.user_id) IS DISTINCT FROM user_current_owner(r.user_id))`,
  },
  {
    name: 'refund rounds alternate: each clawback after the first follows a reversal',
    sql: `SELECT c.transaction_id, c.refund_round FROM ledger_entries c
           WHERE c.kind = 'refund_clawback' AND c.refund_round > 1
             AND NOT EXISTS (SELECT 1 FROM ledger_entries r
                              WHERE r.kind = 'refund_reversal' AND r.transaction_id = c.transaction_id AND r.refund_round = c.refund_round - 1)`,
  },
  {
    name: "a purchase's revoked_at agrees with its clawbacks and with Apple's latest refund state",
    sql: `SELECT t.transaction_id, t.revoked_at, coalesce(r.clawbacks, 0) AS clawbacks, coalesce(r.reversals, 0) AS reversals, s.refunded
            FROM iap_transactions t
            LEFT JOIN (SELECT transaction_id,
                              count(*) FILTER (WHERE kind = 'refund_clawback') AS clawbacks,
                              count(*) FILTER (WHERE kind = 'refund_reversal') AS reversals
                         FROM ledger_entries WHERE kind IN ('refund_clawback', 'refund_reversal') GROUP BY transaction_id) r
              ON r.transaction_id = t.transaction_id
            LEFT JOIN app_store_refund_states s ON s.transaction_id = t.transaction_id
           WHERE (t.revoked_at IS NOT NULL) <> (coalesce(r.clawbacks, 0) > coalesce(r.reversals, 0))
              OR (t.revoked_at IS NOT NULL) <> coalesce(s.refunded, false)`,
  },
  {
    name: 'a refund of a recorded purchase is clawed back from its owner, for at most what Apple sold',
    sql: `SELECT c.id, c.transaction_id, c.refund_round, c.user_id, t.user_id AS purchase_owner, -c.amount AS clawed_back, c.shortfall, t.credits
            FROM ledger_entries c JOIN iap_transactions t ON t.transaction_id = c.transaction_id
           WHERE c.kind = 'refund_clawback'
             AND (user_current_owner(c.user_id) IS DISTINCT FROM user_current_owner(t.user_id) OR -c.amount + c.shortfall <> t.credits)`,
  },
  {
    name: 'a recorded purchase is credited exactly what Apple sold',
    sql: `SELECT e.id, e.transaction_id, e.amount, t.credits
            FROM ledger_entries e JOIN iap_transactions t ON t.transaction_id = e.transaction_id
           WHERE e.kind = 'purchase' AND e.amount <> t.credits`,
  },
  {
    name: "a purchase belongs to a live account or the end of a merge chain, and its credit to that account's chain",
    sql: `SELECT t.transaction_id, t.user_id, u.merged_into, e.user_id AS credited_user
            FROM iap_transactions t
            JOIN users u ON u.id = t.user_id
            LEFT JOIN ledger_entries e ON e.transaction_id = t.transaction_id AND e.kind = 'purchase'
           WHERE u.merged_into IS NOT NULL OR e.id IS NULL OR user_current_owner(e.user_id) <> t.user_id`,
  },
  {
    name: 'a merged or deleted account holds nothing: balance 0, held 0, no open hold',
    sql: `SELECT u.id, u.merged_into, u.deleted_at, a.balance, a.held
            FROM users u JOIN credit_accounts a ON a.user_id = u.id
           WHERE (u.merged_into IS NOT NULL OR u.deleted_at IS NOT NULL)
             AND (a.balance <> 0 OR a.held <> 0 OR EXISTS (SELECT 1 FROM credit_holds h WHERE h.user_id = u.id AND h.status = 'open'))`,
  },
  {
    name: "a job belongs to its hold's (current) owner, never to a merged guest",
    sql: `SELECT j.job_id, j.user_id, h.user_id AS hold_user, h.status AS hold_status
            FROM video_jobs j JOIN credit_holds h ON h.id = j.hold_id JOIN users u ON u.id = j.user_id
           WHERE u.merged_into IS NOT NULL
              OR (h.status = 'open' AND h.user_id <> j.user_id)
              OR user_current_owner(h.user_id) <> j.user_id`,
  },
  {
    name: 'an idempotent answer names a job of the same (current) user',
    sql: `SELECT k.id, k.user_id, k.response_body ->> 'job_id' AS job_id, j.user_id AS job_user
            FROM idempotency_keys k
            JOIN users u ON u.id = k.user_id
            LEFT JOIN video_jobs j ON j.job_id::text = k.response_body ->> 'job_id'
           WHERE (k.response_status IS NOT NULL AND k.response_body ? 'job_id' AND (j.job_id IS NULL OR j.user_id <> k.user_id))
              OR (u.merged_into IS NOT NULL)`,
  },
  {
    name: 'credits come in only as positive grants, purchases and reversals, and leave only by clawbacks, merges and forfeits',
    sql: `SELECT id, kind, amount FROM ledger_entries
           WHERE (kind IN ('grant', 'purchase', 'merge_in', 'admin_grant') AND amount <= 0)
              OR (kind = 'refund_reversal' AND amount < 0)
              OR (kind IN ('refund_clawback', 'merge_out', 'admin_clawback') AND amount > 0)
              OR (kind = 'forfeit' AND amount >= 0)`,
  },
  {
    name: 'an Apple transaction credits one user at most once',
    sql: `SELECT transaction_id, count(*) AS credits FROM ledger_entries WHERE kind = 'purchase'
           GROUP BY transaction_id HAVING count(*) > 1`,
  },
  {
    name: 'every job holds exactly its price, and its hold ends with it (captured if completed, released if failed)',
    sql: `SELECT j.job_id, j.status, j.credits_used, h.amount, h.status AS hold_status
            FROM video_jobs j JOIN credit_holds h ON h.id = j.hold_id
           WHERE h.amount <> j.credits_used
              OR (j.status = 'completed' AND h.status <> 'captured')
              OR (j.status = 'failed' AND h.status <> 'released')
              OR (j.status NOT IN ('completed', 'failed') AND h.status <> 'open')`,
  },
  {
    name: "an admin grant or clawback matches its audit row: same user's chain, amount, clamp at zero",
    sql: `SELECT e.id, e.kind, e.amount, e.shortfall, e.user_id, a.id AS action_id, a.action, a.amount AS action_amount, a.target_id
            FROM ledger_entries e LEFT JOIN admin_actions a ON a.id = e.admin_action_id
           WHERE e.kind IN ('admin_grant', 'admin_clawback')
             AND (a.id IS NULL
                  OR a.target_type <> 'user'
                  OR user_current_owner(a.target_id::uuid) IS DISTINCT FROM user_current_owner(e.user_id)
                  OR (e.kind = 'admin_grant' AND (a.action <> 'grant_credits' OR e.amount <> a.amount OR e.shortfall <> 0))
                  OR (e.kind = 'admin_clawback' AND (a.action <> 'clawback_credits' OR -e.amount + e.shortfall <> a.amount)))`,
  },
  {
    name: 'the initial grant happens at most once per user',
    sql: `SELECT user_id, count(*) AS grants FROM ledger_entries WHERE kind = 'grant' GROUP BY user_id HAVING count(*) > 1`,
  },
  // Debt: what a clawback could not take because the credits were held (ledger.ts, writeEntry).
  {
    name: 'debt equals the sum of the ledger, and is owed only while nothing is available',
    sql: `SELECT a.user_id, a.balance, a.held, a.debt, coalesce(s.debt, 0) AS ledger_debt
            FROM credit_accounts a
            LEFT JOIN (SELECT user_id, sum(debt_delta) AS debt FROM ledger_entries GROUP BY user_id) s ON s.user_id = a.user_id
           WHERE a.debt <> coalesce(s.debt, 0) OR (a.debt > 0 AND a.balance > a.held)`,
  },
  {
    name: 'every entry carries the running debt (debt_after)',
    sql: `SELECT user_id, id, debt_after, running_debt FROM (
            SELECT user_id, id, debt_after, sum(debt_delta) OVER (PARTITION BY user_id ORDER BY id) AS running_debt FROM ledger_entries
          ) e WHERE debt_after <> running_debt`,
  },
  {
    name: "a debt comes only from a clawback's shortfall, moves only with merges, and is paid from credits or cancelled",
    sql: `SELECT id, user_id, kind, amount, debt_delta, shortfall FROM ledger_entries
           WHERE (debt_delta <> 0 AND kind NOT IN ('refund_clawback', 'admin_clawback', 'debt_merge_in', 'debt_merge_out', 'debt_collection', 'debt_reversal'))
              OR (kind IN ('refund_clawback', 'admin_clawback') AND debt_delta NOT IN (0, shortfall))
              OR (kind IN ('debt_merge_in', 'debt_merge_out') AND (amount <> 0 OR (kind = 'debt_merge_in') <> (debt_delta > 0)))
              OR (kind = 'debt_collection' AND (amount >= 0 OR amount <> debt_delta))
              OR (kind = 'debt_reversal' AND (amount < 0 OR debt_delta > 0 OR (amount = 0 AND debt_delta = 0)))`,
  },
  {
    name: 'merges move debts between accounts without creating or losing any',
    sql: `SELECT sum(debt_delta) AS debt FROM ledger_entries WHERE kind IN ('debt_merge_in', 'debt_merge_out') HAVING sum(debt_delta) <> 0`,
  },
  {
    name: "a debt is paid or cancelled only for the clawback that recorded it, on its owner, never beyond it; a refund's reversal cancels what is left and gives back at most what was collected (and not given back yet)",
    sql: `SELECT p.id, p.kind, p.user_id, p.amount, p.debt_delta, c.id AS clawback, c.kind AS clawback_kind, c.user_id AS clawback_user, c.debt_delta AS owed,
                 coalesce(b.paid, 0) AS paid_before, coalesce(b.collected, 0) AS collected_before
            FROM ledger_entries p
            LEFT JOIN ledger_entries c ON c.id = p.debt_of
            LEFT JOIN LATERAL (SELECT -sum(q.debt_delta) AS paid, -sum(q.amount) AS collected
                                 FROM ledger_entries q WHERE q.debt_of = p.debt_of AND q.id < p.id) b ON true
           WHERE p.debt_of IS NOT NULL
             AND (c.id IS NULL OR c.kind NOT IN ('refund_clawback', 'admin_clawback') OR c.debt_delta <= 0
                  OR user_current_owner(c.user_id) IS DISTINCT FROM user_current_owner(p.user_id)
                  OR coalesce(b.paid, 0) - p.debt_delta > c.debt_delta
                  OR (p.kind = 'debt_reversal' AND (c.kind <> 'refund_clawback'
                                                    OR -p.debt_delta <> c.debt_delta - coalesce(b.paid, 0)
                                                    OR p.amount > coalesce(b.collected, 0))))`,
  },
];

export async function verifyLedger(db: Queryable): Promise<Violation[]> {
  const violations: Violation[] = [];
  for (const check of CHECKS) {
    const { rows } = await db.query(check.sql);
    if (rows.length > 0) violations.push({ check: check.name, rows: rows.slice(0, 20) });
  }
  return violations;
}

export const INVARIANT_CHECK_NAMES = CHECKS.map((c) => c.name);
