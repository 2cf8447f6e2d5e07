-- Debt: what a clawback (Apple refund or admin) could not take because the credits were held by
-- running jobs. It is a ledger fact: entries carry debt_delta (and debt_after, like balance_after),
-- credit_accounts.debt is their running sum, kept in the same transaction. An account owes only
-- while nothing is available: every later release and credit pays the debt first
-- (debt_collection entries, each naming the clawback whose debt it pays in debt_of), and a
-- REFUND_REVERSED cancels its own refund's debt and gives back what was collected for it
-- (debt_reversal). A guest's debt follows it into the account it merges into (debt_merge_out /
-- debt_merge_in, next to merge_out / merge_in, which move credits only). Shortfalls recorded
-- before this migration stay recorded, not owed.
ALTER TABLE ledger_entries ADD COLUMN debt_delta integer NOT NULL DEFAULT 0;
ALTER TABLE ledger_entries ADD COLUMN debt_after integer NOT NULL DEFAULT 0 CHECK (debt_after >= 0);
ALTER TABLE ledger_entries ADD COLUMN debt_of bigint REFERENCES ledger_entries (id);

ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
  'grant', 'purchase', 'hold', 'capture', 'release',
  'refund_clawback', 'refund_reversal', 'admin_adjust', 'merge_in', 'merge_out', 'forfeit',
  'admin_grant', 'admin_clawback', 'debt_collection', 'debt_reversal', 'debt_merge_out', 'debt_merge_in'));
ALTER TABLE ledger_entries ADD CONSTRAINT debt_entries_name_their_debt
  CHECK ((kind IN ('debt_collection', 'debt_reversal')) = (debt_of IS NOT NULL));

-- The debts an account may owe: clawbacks that recorded one, and what paid or cancelled each.
CREATE INDEX ledger_entries_debts ON ledger_entries (user_id, id) WHERE kind IN ('refund_clawback', 'admin_clawback') AND debt_delta > 0;
CREATE INDEX ledger_entries_debt_of ON ledger_entries (debt_of) WHERE debt_of IS NOT NULL;

ALTER TABLE credit_accounts ADD COLUMN debt integer NOT NULL DEFAULT 0 CHECK (debt >= 0);
-- Nothing is spendable while anything is owed: the ledger collects before it commits.
ALTER TABLE credit_accounts ADD CONSTRAINT debt_only_when_nothing_available CHECK (debt = 0 OR balance = held);
