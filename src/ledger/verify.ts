import type pg from 'pg';
import type { Queryable } from '../db/pool.js';

/**
 * docs/reference/DESIGN.md §4 money invariants as SQL, read-only, runnable on any database
 * (`npm run verify-ledger`, the nightly `verify_ledger` task, and after every integration test).
 * Each check returns offending rows.
 *
 * Two modes. A full pass checks every row. An incremental pass checks only what changed since the
 * last checkpoint: migration 0019's triggers mark, per writing transaction, the users, holds, jobs
 * and Apple transactions a change to a table these checks read concerns; the pass widens the
 * marked users to their merge chains (owners and merged guests both ways) — and for users on a
 * chain, to all their holds, jobs and purchases — and runs every check restricted to that scope
 * (the global merge check always runs whole: it reads only merge entries). Each check's
 * restriction is on the rows the check itself reports, so a broken row is found exactly as a full
 * pass finds it.
 */

export interface Violation {
  check: string;
  rows: Record<string, unknown>[];
}

/** What a check is restricted to in an incremental pass (one array parameter, $1). */
type ScopeKind = 'users' | 'holds' | 'transactions' | 'jobs' | 'global';

interface Check {
  name: string;
  scope: ScopeKind;
  /** The check's SQL; `inScope(column)` is true in a full pass and "column in the scope" in an incremental one. */
  sql: (inScope: (column: string) => string) => string;
}

// The ownership checks compare merge-chain ends (user_current_owner, plpgsql). Where both sides name
// the same user the answer is known without a call (CASE evaluates in order): a full pass used to
// make one call per job.
const CHECKS: Check[] = [
  {
    name: 'balance and held equal the sums of the ledger',
    scope: 'users',
    sql: (inScope) => `SELECT a.user_id, a.balance, a.held, coalesce(s.amount, 0) AS ledger_balance, coalesce(s.held, 0) AS ledger_held
            FROM credit_accounts a
            LEFT JOIN (SELECT user_id, sum(amount) AS amount, sum(held_delta) AS held FROM ledger_entries WHERE ${inScope('user_id')} GROUP BY user_id) s
              ON s.user_id = a.user_id
           WHERE ${inScope('a.user_id')} AND (a.balance <> coalesce(s.amount, 0) OR a.held <> coalesce(s.held, 0))`,
  },
  {
    name: 'held equals the sum of open holds',
    scope: 'users',
    sql: (inScope) => `SELECT a.user_id, a.held, coalesce(h.open, 0) AS open_holds
            FROM credit_accounts a
            LEFT JOIN (SELECT user_id, sum(amount) AS open FROM credit_holds WHERE status = 'open' AND ${inScope('user_id')} GROUP BY user_id) h
              ON h.user_id = a.user_id
           WHERE ${inScope('a.user_id')} AND a.held <> coalesce(h.open, 0)`,
  },
  {
    name: 'no negative balance and 0 <= held <= balance',
    scope: 'users',
    sql: (inScope) => `SELECT user_id, balance, held FROM credit_accounts WHERE ${inScope('user_id')} AND (balance < 0 OR held < 0 OR held > balance)`,
  },
  {
    name: 'every entry carries the running totals (balance_after, held_after)',
    scope: 'users',
    sql: (inScope) => `SELECT user_id, id, balance_after, running_balance, held_after, running_held FROM (
            SELECT user_id, id, balance_after, held_after,
                   sum(amount) OVER w AS running_balance, sum(held_delta) OVER w AS running_held
              FROM ledger_entries
             WHERE ${inScope('user_id')}
            WINDOW w AS (PARTITION BY user_id ORDER BY id)
          ) e WHERE balance_after <> running_balance OR held_after <> running_held`,
  },
  {
    name: 'every hold was placed exactly once, for its amount',
    scope: 'holds',
    sql: (inScope) => `SELECT h.id, h.amount, count(e.id) AS hold_entries, sum(e.held_delta) AS placed
            FROM credit_holds h LEFT JOIN ledger_entries e ON e.hold_id = h.id AND e.kind = 'hold'
           WHERE ${inScope('h.id')}
           GROUP BY h.id, h.amount
          HAVING count(e.id) <> 1 OR sum(e.held_delta) <> h.amount`,
  },
  {
    name: 'every hold is captured or released exactly once, and open holds not at all',
    scope: 'holds',
    sql: (inScope) => `SELECT h.id, h.status, h.amount, h.captured_amount,
                 coalesce(sum(-e.amount) FILTER (WHERE e.kind = 'capture'), 0) AS captured,
                 coalesce(sum(-e.held_delta) FILTER (WHERE e.kind IN ('capture', 'release')), 0) AS unheld
            FROM credit_holds h LEFT JOIN ledger_entries e ON e.hold_id = h.id
           WHERE ${inScope('h.id')}
           GROUP BY h.id
          HAVING (h.status = 'open' AND coalesce(sum(-e.held_delta) FILTER (WHERE e.kind IN ('capture', 'release')), 0) <> 0)
              OR (h.status <> 'open' AND coalesce(sum(-e.held_delta) FILTER (WHERE e.kind IN ('capture', 'release')), 0) <> h.amount)
              OR (h.status = 'captured' AND coalesce(sum(-e.amount) FILTER (WHERE e.kind = 'capture'), 0) <> h.captured_amount)
              OR (h.status = 'released' AND coalesce(sum(-e.amount) FILTER (WHERE e.kind = 'capture'), 0) <> 0)`,
  },
  {
    name: 'hold entries move only held credits, captures only what they unhold',
    scope: 'users',
    sql: (inScope) => `SELECT id, kind, amount, held_delta FROM ledger_entries
           WHERE ${inScope('user_id')}
             AND ((kind = 'hold' AND (amount <> 0 OR held_delta <= 0))
              OR (kind = 'release' AND (amount <> 0 OR held_delta >= 0))
              OR (kind = 'capture' AND (amount >= 0 OR amount <> held_delta))
              OR (kind = 'merge_out' AND held_delta > 0)
              OR (kind = 'merge_in' AND held_delta < 0)
              OR (kind NOT IN ('hold', 'release', 'capture', 'merge_in', 'merge_out') AND held_delta <> 0))`,
  },
  {
    // Whole in both modes: the two sides of a merge are one pair only in sum. It reads the merge
    // entries alone (ledger_entries_merges, migration 0019).
    name: 'merges move credits and holds between accounts without creating or losing any',
    scope: 'global',
    sql: () => `SELECT sum(amount) AS amount, sum(held_delta) AS held FROM ledger_entries WHERE kind IN ('merge_in', 'merge_out')
          HAVING sum(amount) <> 0 OR sum(held_delta) <> 0`,
  },
  {
    name: 'a refund reversal restores at most what its clawback took, on the same (current) user',
    scope: 'transactions',
    sql: (inScope) => `SELECT r.transaction_id, r.refund_round, r.amount AS restored, -c.amount AS clawed_back, c.user_id AS clawback_user, r.user_id AS reversal_user
            FROM ledger_entries r
            LEFT JOIN ledger_entries c ON c.transaction_id = r.transaction_id AND c.kind = 'refund_clawback' AND c.refund_round = r.refund_round
           WHERE r.kind = 'refund_reversal' AND ${inScope('r.transaction_id')}
             AND (c.id IS NULL OR r.amount > -c.amount
                  OR CASE WHEN c.user_id = r.user_id THEN false
                          ELSE user_current_owner(c.user_id) IS DISTINCT FROM user_current_owner(r.user_id) END)`,
  },
  {
    name: 'refund rounds alternate: each clawback after the first follows a reversal',
    scope: 'transactions',
    sql: (inScope) => `SELECT c.transaction_id, c.refund_round FROM ledger_entries c
           WHERE c.kind = 'refund_clawback' AND c.refund_round > 1 AND ${inScope('c.transaction_id')}
             AND NOT EXISTS (SELECT 1 FROM ledger_entries r
                              WHERE r.kind = 'refund_reversal' AND r.transaction_id = c.transaction_id AND r.refund_round = c.refund_round - 1)`,
  },
  {
    name: "a purchase's revoked_at agrees with its clawbacks and with Apple's latest refund state",
    scope: 'transactions',
    sql: (inScope) => `SELECT t.transaction_id, t.revoked_at, coalesce(r.clawbacks, 0) AS clawbacks, coalesce(r.reversals, 0) AS reversals, s.refunded
            FROM iap_transactions t
            LEFT JOIN (SELECT transaction_id,
                              count(*) FILTER (WHERE kind = 'refund_clawback') AS clawbacks,
                              count(*) FILTER (WHERE kind = 'refund_reversal') AS reversals
                         FROM ledger_entries WHERE kind IN ('refund_clawback', 'refund_reversal') AND ${inScope('transaction_id')} GROUP BY transaction_id) r
              ON r.transaction_id = t.transaction_id
            LEFT JOIN app_store_refund_states s ON s.transaction_id = t.transaction_id
           WHERE ${inScope('t.transaction_id')}
             AND ((t.revoked_at IS NOT NULL) <> (coalesce(r.clawbacks, 0) > coalesce(r.reversals, 0))
              OR (t.revoked_at IS NOT NULL) <> coalesce(s.refunded, false))`,
  },
  {
    name: 'a refund of a recorded purchase is clawed back from its owner, for at most what Apple sold',
    scope: 'transactions',
    sql: (inScope) => `SELECT c.id, c.transaction_id, c.refund_round, c.user_id, t.user_id AS purchase_owner, -c.amount AS clawed_back, c.shortfall, t.credits
            FROM ledger_entries c JOIN iap_transactions t ON t.transaction_id = c.transaction_id
           WHERE c.kind = 'refund_clawback' AND ${inScope('c.transaction_id')}
             AND (CASE WHEN c.user_id = t.user_id THEN false
                       ELSE user_current_owner(c.user_id) IS DISTINCT FROM user_current_owner(t.user_id) END
                  OR -c.amount + c.shortfall <> t.credits)`,
  },
  {
    name: 'a recorded purchase is credited exactly what Apple sold',
    scope: 'transactions',
    sql: (inScope) => `SELECT e.id, e.transaction_id, e.amount, t.credits
            FROM ledger_entries e JOIN iap_transactions t ON t.transaction_id = e.transaction_id
           WHERE e.kind = 'purchase' AND ${inScope('e.transaction_id')} AND e.amount <> t.credits`,
  },
  {
    name: "a purchase belongs to a live account or the end of a merge chain, and its credit to that account's chain",
    scope: 'transactions',
    sql: (inScope) => `SELECT t.transaction_id, t.user_id, u.merged_into, e.user_id AS credited_user
            FROM iap_transactions t
            JOIN users u ON u.id = t.user_id
            -- A purchase credited by the former backend (src/import/) is marked by its import entry.
            LEFT JOIN ledger_entries e ON e.transaction_id = t.transaction_id AND e.kind IN ('purchase', 'import')
           WHERE ${inScope('t.transaction_id')}
             AND (u.merged_into IS NOT NULL OR e.id IS NULL
                  OR CASE WHEN e.user_id = t.user_id THEN false ELSE user_current_owner(e.user_id) <> t.user_id END)`,
  },
  {
    name: 'a merged or deleted account holds nothing: balance 0, held 0, no open hold',
    scope: 'users',
    sql: (inScope) => `SELECT u.id, u.merged_into, u.deleted_at, a.balance, a.held
            FROM users u JOIN credit_accounts a ON a.user_id = u.id
           WHERE ${inScope('u.id')}
             AND (u.merged_into IS NOT NULL OR u.deleted_at IS NOT NULL)
             AND (a.balance <> 0 OR a.held <> 0 OR EXISTS (SELECT 1 FROM credit_holds h WHERE h.user_id = u.id AND h.status = 'open'))`,
  },
  {
    name: "a job belongs to its hold's (current) owner, never to a merged guest",
    scope: 'jobs',
    sql: (inScope) => `SELECT j.job_id, j.user_id, h.user_id AS hold_user, h.status AS hold_status
            FROM video_jobs j JOIN credit_holds h ON h.id = j.hold_id JOIN users u ON u.id = j.user_id
           WHERE ${inScope('j.job_id')}
             AND (u.merged_into IS NOT NULL
              OR (h.status = 'open' AND h.user_id <> j.user_id)
              OR CASE WHEN h.user_id = j.user_id THEN false ELSE user_current_owner(h.user_id) <> j.user_id END)`,
  },
  {
    name: 'an idempotent answer names a job of the same (current) user',
    scope: 'users',
    sql: (inScope) => `SELECT k.id, k.user_id, k.response_body ->> 'job_id' AS job_id, j.user_id AS job_user
            FROM idempotency_keys k
            JOIN users u ON u.id = k.user_id
            -- The uuid equality lets the job's primary key serve the join; the text equality keeps
            -- the comparison what it always was (a job id in any other spelling names no job).
            LEFT JOIN video_jobs j ON j.job_id = CASE WHEN k.response_body ->> 'job_id' ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                                                      THEN (k.response_body ->> 'job_id')::uuid END
                                  AND j.job_id::text = k.response_body ->> 'job_id'
           WHERE ${inScope('k.user_id')}
             AND ((k.response_status IS NOT NULL AND k.response_body ? 'job_id' AND (j.job_id IS NULL OR j.user_id <> k.user_id))
              OR (u.merged_into IS NOT NULL))`,
  },
  {
    name: 'credits come in only as positive grants, purchases and reversals, and leave only by clawbacks, merges and forfeits',
    scope: 'users',
    sql: (inScope) => `SELECT id, kind, amount FROM ledger_entries
           WHERE ${inScope('user_id')}
             AND ((kind IN ('grant', 'purchase', 'merge_in', 'admin_grant') AND amount <= 0)
              -- import: an opening balance (>= 0), a running job's refund (> 0), a purchase's mark (0)
              OR (kind = 'import' AND (amount < 0 OR (job_id IS NOT NULL AND amount = 0) OR (transaction_id IS NOT NULL AND amount <> 0)))
              OR (kind = 'refund_reversal' AND amount < 0)
              OR (kind IN ('refund_clawback', 'merge_out', 'admin_clawback') AND amount > 0)
              OR (kind = 'forfeit' AND amount >= 0))`,
  },
  {
    name: 'an Apple transaction credits one user at most once',
    scope: 'transactions',
    sql: (inScope) => `SELECT transaction_id, count(*) AS credits FROM ledger_entries WHERE kind IN ('purchase', 'import') AND transaction_id IS NOT NULL AND ${inScope('transaction_id')}
           GROUP BY transaction_id HAVING count(*) > 1`,
  },
  {
    name: 'every job holds exactly its price, and its hold ends with it (captured if completed, released if failed)',
    scope: 'jobs',
    sql: (inScope) => `SELECT j.job_id, j.status, j.credits_used, h.amount, h.status AS hold_status
            FROM video_jobs j JOIN credit_holds h ON h.id = j.hold_id
           WHERE ${inScope('j.job_id')}
             AND (h.amount <> j.credits_used
              OR (j.status = 'completed' AND h.status <> 'captured')
              OR (j.status = 'failed' AND h.status <> 'released')
              OR (j.status NOT IN ('completed', 'failed') AND h.status <> 'open'))`,
  },
  {
    // src/import/: a job still running in the former backend is imported ended (failed, no hold)
    // and the credits taken for it there come back once, on its owner's chain.
    name: "an import entry naming a job gives back exactly that imported job's price, on its owner, once",
    scope: 'users',
    sql: (inScope) => `SELECT e.id, e.user_id, e.job_id, e.amount, j.user_id AS job_user, j.status, j.hold_id, j.imported_at, j.credits_used
            FROM ledger_entries e LEFT JOIN video_jobs j ON j.job_id = e.job_id
           WHERE e.kind = 'import' AND e.job_id IS NOT NULL AND ${inScope('e.user_id')}
             AND (j.job_id IS NULL OR j.imported_at IS NULL OR j.hold_id IS NOT NULL OR j.status <> 'failed' OR j.credits_used <> e.amount
                  OR CASE WHEN j.user_id = e.user_id THEN false ELSE user_current_owner(e.user_id) IS DISTINCT FROM user_current_owner(j.user_id) END)`,
  },
  {
    name: "an admin grant or clawback matches its audit row: same user's chain, amount, clamp at zero",
    scope: 'users',
    sql: (inScope) => `SELECT e.id, e.kind, e.amount, e.shortfall, e.user_id, a.id AS action_id, a.action, a.amount AS action_amount, a.target_id
            FROM ledger_entries e LEFT JOIN admin_actions a ON a.id = e.admin_action_id
           WHERE e.kind IN ('admin_grant', 'admin_clawback') AND ${inScope('e.user_id')}
             AND (a.id IS NULL
                  OR a.target_type <> 'user'
                  OR CASE WHEN a.target_id = e.user_id::text THEN false
                          ELSE user_current_owner(a.target_id::uuid) IS DISTINCT FROM user_current_owner(e.user_id) END
                  OR (e.kind = 'admin_grant' AND (a.action <> 'grant_credits' OR e.amount <> a.amount OR e.shortfall <> 0))
                  OR (e.kind = 'admin_clawback' AND (a.action <> 'clawback_credits' OR -e.amount + e.shortfall <> a.amount)))`,
  },
  {
    name: 'the initial grant happens at most once per user',
    scope: 'users',
    sql: (inScope) => `SELECT user_id, count(*) AS grants FROM ledger_entries WHERE kind = 'grant' AND ${inScope('user_id')} GROUP BY user_id HAVING count(*) > 1`,
  },
  {
    // The free grant is the device's (device_grants, one row per device hash): it lands on the guest
    // onboarded from the device, and stays on it when the guest becomes or merges into an Apple
    // account. A device's later guests get none. An account onboarded from no device (an Apple ID
    // signed in first) has no grant of its own, so one found there counts for every device whose
    // guest merged into it; an account onboarded from another device is that device's.
    // In an incremental pass a changed user stands for its device: its guests are all checked
    // (users_onboarded_device), and the merge chain widening brings the guests of a changed account.
    name: 'a device is given the free grant at most once, across its guests and the accounts they merged into',
    scope: 'users',
    sql: (inScope) => `WITH devices AS (
            SELECT DISTINCT onboarded_device_hash AS device_hash FROM users WHERE ${inScope('id')} AND onboarded_device_hash IS NOT NULL
          ), guests AS (
            SELECT d.device_hash, g.id, g.merged_into FROM devices d JOIN users g ON g.onboarded_device_hash = d.device_hash
          ), grantees AS (
            SELECT device_hash, id AS user_id FROM guests
            UNION SELECT g.device_hash, x.id FROM guests g JOIN users x ON x.id = g.merged_into WHERE x.onboarded_device_hash IS NULL
          )
          SELECT device_hash, id, user_id, amount, grants FROM (
            SELECT r.device_hash, e.id, e.user_id, e.amount, count(*) OVER (PARTITION BY r.device_hash)::int AS grants
              FROM grantees r JOIN ledger_entries e ON e.user_id = r.user_id AND e.kind = 'grant'
          ) g WHERE grants > 1`,
  },
  // Debt: what a clawback could not take because the credits were held (ledger.ts, writeEntry).
  {
    // clawbackTake: a clawback takes min(asked, available), so only one that took everything
    // available falls short. A shortfall beside credits still available is a debt the account could
    // have paid (or, on a deleted account, credits kept that were refunded).
    name: 'a clawback records a shortfall only when it takes everything available',
    scope: 'users',
    sql: (inScope) => `SELECT id, user_id, kind, amount, shortfall, balance_after, held_after, debt_after FROM ledger_entries
           WHERE ${inScope('user_id')} AND kind IN ('refund_clawback', 'admin_clawback') AND shortfall > 0 AND balance_after <> held_after`,
  },
  {
    name: 'debt equals the sum of the ledger, and is owed only while nothing is available',
    scope: 'users',
    sql: (inScope) => `SELECT a.user_id, a.balance, a.held, a.debt, coalesce(s.debt, 0) AS ledger_debt
            FROM credit_accounts a
            LEFT JOIN (SELECT user_id, sum(debt_delta) AS debt FROM ledger_entries WHERE ${inScope('user_id')} GROUP BY user_id) s ON s.user_id = a.user_id
           WHERE ${inScope('a.user_id')} AND (a.debt <> coalesce(s.debt, 0) OR (a.debt > 0 AND a.balance > a.held))`,
  },
  {
    name: 'every entry carries the running debt (debt_after)',
    scope: 'users',
    sql: (inScope) => `SELECT user_id, id, debt_after, running_debt FROM (
            SELECT user_id, id, debt_after, sum(debt_delta) OVER (PARTITION BY user_id ORDER BY id) AS running_debt FROM ledger_entries
             WHERE ${inScope('user_id')}
          ) e WHERE debt_after <> running_debt`,
  },
  {
    name: "a debt comes only from a clawback's shortfall, moves only with merges, and is paid from credits or cancelled",
    scope: 'users',
    sql: (inScope) => `SELECT id, user_id, kind, amount, debt_delta, shortfall FROM ledger_entries
           WHERE ${inScope('user_id')} AND ((debt_delta <> 0 AND kind NOT IN ('refund_clawback', 'admin_clawback', 'debt_merge_in', 'debt_merge_out', 'debt_collection', 'debt_reversal'))
              OR (kind IN ('refund_clawback', 'admin_clawback') AND debt_delta NOT IN (0, shortfall))
              OR (kind IN ('debt_merge_in', 'debt_merge_out') AND (amount <> 0 OR (kind = 'debt_merge_in') <> (debt_delta > 0)))
              OR (kind = 'debt_collection' AND (amount >= 0 OR amount <> debt_delta))
              OR (kind = 'debt_reversal' AND (amount < 0 OR debt_delta > 0 OR (amount = 0 AND debt_delta = 0))))`,
  },
  {
    // Whole in both modes, like the credit merges (partial index ledger_entries_debt_merges, migration 0023).
    name: 'merges move debts between accounts without creating or losing any',
    scope: 'global',
    sql: () => `SELECT sum(debt_delta) AS debt FROM ledger_entries WHERE kind IN ('debt_merge_in', 'debt_merge_out') HAVING sum(debt_delta) <> 0`,
  },
  {
    name: "a debt is paid or cancelled only for the clawback that recorded it, on its owner, never beyond it; a refund's reversal cancels what is left and gives back at most what was collected (and not given back yet)",
    scope: 'users',
    sql: (inScope) => `SELECT p.id, p.kind, p.user_id, p.amount, p.debt_delta, c.id AS clawback, c.kind AS clawback_kind, c.user_id AS clawback_user, c.debt_delta AS owed,
                 coalesce(b.paid, 0) AS paid_before, coalesce(b.collected, 0) AS collected_before
            FROM ledger_entries p
            LEFT JOIN ledger_entries c ON c.id = p.debt_of
            LEFT JOIN LATERAL (SELECT -sum(q.debt_delta) AS paid, -sum(q.amount) AS collected
                                 FROM ledger_entries q WHERE q.debt_of = p.debt_of AND q.id < p.id) b ON true
           WHERE p.debt_of IS NOT NULL AND ${inScope('p.user_id')}
             AND (c.id IS NULL OR c.kind NOT IN ('refund_clawback', 'admin_clawback') OR c.debt_delta <= 0
                  OR user_current_owner(c.user_id) IS DISTINCT FROM user_current_owner(p.user_id)
                  OR coalesce(b.paid, 0) - p.debt_delta > c.debt_delta
                  OR (p.kind = 'debt_reversal' AND (c.kind <> 'refund_clawback'
                                                    OR -p.debt_delta <> c.debt_delta - coalesce(b.paid, 0)
                                                    OR p.amount > coalesce(b.collected, 0))))`,
  },
];

export const INVARIANT_CHECK_NAMES = CHECKS.map((c) => c.name);

const ARRAY_TYPE: Record<Exclude<ScopeKind, 'global'>, string> = { users: 'uuid[]', holds: 'uuid[]', transactions: 'text[]', jobs: 'uuid[]' };

/** The rows an incremental pass checks: the users marked since `since`, and what hangs off them. */
interface Scope {
  users: string[];
  holds: string[];
  transactions: string[];
  jobs: string[];
}

async function changedScope(db: Queryable, since: string): Promise<Scope> {
  // Marked users, then their merge chains: the owners they merged into and the guests merged into
  // them (a chain's end decides the ownership checks of every user on it). "Chained": those of
  // them on a chain of more than one user.
  const { rows } = await db.query<{ users: string[] }>(
    `WITH RECURSIVE marked AS (
       SELECT DISTINCT id::uuid AS id FROM ledger_changes
        WHERE xid >= $1::xid8 AND kind = 'u' AND id ~ '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
     ), up (id, depth) AS (
       SELECT id, 0 FROM marked
       UNION ALL SELECT u.merged_into, up.depth + 1 FROM up JOIN users u ON u.id = up.id WHERE u.merged_into IS NOT NULL AND up.depth < 64
     ), down (id, depth) AS (
       SELECT id, 0 FROM up
       UNION ALL SELECT u.id, down.depth + 1 FROM down JOIN users u ON u.merged_into = down.id WHERE down.depth < 64
     )
     SELECT coalesce(array_agg(DISTINCT id), '{}') AS users FROM down`,
    [since],
  );
  const users = rows[0]!.users;
  const chain = await db.query<{ chained: string[] }>(
    `SELECT coalesce(array_agg(u.id), '{}') AS chained FROM users u
      WHERE u.id = ANY($1::uuid[]) AND (u.merged_into IS NOT NULL OR EXISTS (SELECT 1 FROM users g WHERE g.merged_into = u.id))`,
    [users],
  );
  const chained = chain.rows[0]!.chained;
  // A hold's checks read the hold and its entries; a job's read the job, its hold and, through
  // merge chains, its users; a purchase's read the purchase, its entries and its refund state.
  // Each of those rows marks itself, so the marked ones are the changed ones — plus, for users on
  // a chain, all of theirs (a merge or deletion changes what their chain ends at).
  const related = await db.query<{ holds: string[]; transactions: string[]; jobs: string[] }>(
    `WITH marks AS (SELECT kind, id FROM ledger_changes WHERE xid >= $1::xid8),
     holds AS (
       SELECT id::uuid AS id FROM marks WHERE kind = 'h'
       UNION SELECT hold_id FROM video_jobs WHERE job_id IN (SELECT id::uuid FROM marks WHERE kind = 'j')
       UNION SELECT id FROM credit_holds WHERE user_id = ANY($2::uuid[])
       UNION SELECT hold_id FROM ledger_entries WHERE user_id = ANY($2::uuid[]) AND hold_id IS NOT NULL
     ), jobs AS (
       SELECT id::uuid AS id FROM marks WHERE kind = 'j'
       UNION SELECT job_id FROM video_jobs WHERE hold_id IN (SELECT id FROM holds)
       UNION SELECT job_id FROM video_jobs WHERE user_id = ANY($2::uuid[])
     ), transactions AS (
       SELECT id FROM marks WHERE kind = 't'
       UNION SELECT transaction_id FROM iap_transactions WHERE user_id = ANY($2::uuid[])
       UNION SELECT transaction_id FROM ledger_entries WHERE user_id = ANY($2::uuid[]) AND transaction_id IS NOT NULL
     )
     SELECT coalesce((SELECT array_agg(id) FROM holds WHERE id IS NOT NULL), '{}') AS holds,
            coalesce((SELECT array_agg(id) FROM transactions), '{}') AS transactions,
            coalesce((SELECT array_agg(id) FROM jobs), '{}') AS jobs`,
    [since, chained],
  );
  return { users, ...related.rows[0]! };
}

export interface LedgerCheck {
  violations: Violation[];
  /** Accounts in the incremental scope; undefined for a full pass. */
  accountsChecked?: number;
}

/**
 * Runs every check: all rows, or with `changedSince` (a transaction id, as text) only the rows of
 * users marked by transactions with that id or higher, and what hangs off them. Read-only; run it
 * in one REPEATABLE READ snapshot for a consistent answer on a busy database.
 */
export async function checkLedger(db: Queryable, opts: { changedSince?: string } = {}): Promise<LedgerCheck> {
  const scope = opts.changedSince === undefined ? undefined : await changedScope(db, opts.changedSince);
  const violations: Violation[] = [];
  for (const check of CHECKS) {
    let rows: Record<string, unknown>[];
    if (scope === undefined || check.scope === 'global') {
      ({ rows } = await db.query(check.sql(() => 'true')));
    } else {
      const kind = check.scope;
      if (scope[kind].length === 0) continue;
      ({ rows } = await db.query(check.sql((column) => `${column} = ANY($1::${ARRAY_TYPE[kind]})`), [scope[kind]]));
    }
    if (rows.length > 0) violations.push({ check: check.name, rows: rows.slice(0, 20) });
  }
  return { violations, accountsChecked: scope?.users.length };
}

/** Every check over every row (see checkLedger). */
export async function verifyLedger(db: Queryable, opts: { changedSince?: string } = {}): Promise<Violation[]> {
  return (await checkLedger(db, opts)).violations;
}

/** The oldest transaction still running, as the current snapshot sees it: changes from here on are "since now". */
export async function changesFrom(db: Queryable): Promise<string> {
  const { rows } = await db.query<{ xmin: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS xmin');
  return rows[0]!.xmin;
}

export interface LedgerVerification {
  mode: 'full' | 'incremental';
  violations: Violation[];
  /** Accounts an incremental pass checked (its scope); every account for a full one. */
  accountsChecked: number;
  /** The checkpoint this pass started from (incremental), as a transaction id. */
  since?: string;
  /** The checkpoint this pass recorded when everything held. */
  verifiedBelow: string;
}

/**
 * One verification with its checkpoint: incremental from the newest checkpoint (full when there is
 * none, or when asked), in one REPEATABLE READ snapshot. When every invariant holds it records the
 * snapshot's xmin as the new checkpoint and drops the change marks below it; when one does not,
 * nothing moves, so the next pass checks the same changes again (and reports them again until they
 * are fixed).
 */
export async function runLedgerVerification(pool: pg.Pool, opts: { full?: boolean } = {}): Promise<LedgerVerification> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    let result: LedgerVerification;
    let startedAt: string;
    try {
      // A checkpoint above every transaction id this cluster has given out was recorded by another
      // cluster (the database was restored from a logical dump): from it, every new change would
      // look older than the checkpoint. Then the pass is a full one (and drops such checkpoints).
      const { rows } = await client.query<{ below: string; since: string | null; foreign: boolean; started_at: string }>(
        `SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS below, now() AS started_at, c.verified_below::text AS since,
                coalesce(c.verified_below >= pg_snapshot_xmax(pg_current_snapshot()), false) AS foreign
           FROM (SELECT 1) one
           LEFT JOIN (SELECT verified_below FROM ledger_verify_checkpoints ORDER BY verified_below DESC LIMIT 1) c ON true`,
      );
      const { below, foreign } = rows[0]!;
      const since = foreign ? undefined : (rows[0]!.since ?? undefined);
      startedAt = rows[0]!.started_at;
      if (opts.full || since === undefined) {
        const { violations } = await checkLedger(client);
        const accounts = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM credit_accounts');
        result = { mode: 'full', violations, accountsChecked: accounts.rows[0]!.n, verifiedBelow: below };
      } else {
        const { violations, accountsChecked } = await checkLedger(client, { changedSince: since });
        result = { mode: 'incremental', violations, accountsChecked: accountsChecked ?? 0, since, verifiedBelow: below };
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    }
    if (result.violations.length === 0) {
      await client.query(
        'INSERT INTO ledger_verify_checkpoints (mode, verified_below, accounts_checked, started_at) VALUES ($1, $2::xid8, $3, $4)',
        [result.mode, result.verifiedBelow, result.accountsChecked, startedAt],
      );
      // Marks below the checkpoint are covered. Marks this statement sees with an id at or above its
      // own snapshot's xmax cannot be this cluster's (such a transaction would be invisible to it):
      // they came with a logical restore, and this pass read them (they are above its checkpoint).
      await client.query('DELETE FROM ledger_changes WHERE xid < $1::xid8 OR xid >= pg_snapshot_xmax(pg_current_snapshot())', [result.verifiedBelow]);
      await client.query('DELETE FROM ledger_verify_checkpoints WHERE verified_below >= pg_snapshot_xmax(pg_current_snapshot())');
    }
    return result;
  } finally {
    client.release();
  }
}
