-- verify-ledger's "merges move debts without creating or losing any" sums every debt merge entry in
-- both its full and its incremental pass (the two sides of a merge are one pair only in sum): read
-- from this partial index, as the credit merges are read from ledger_entries_merges.
CREATE INDEX ledger_entries_debt_merges ON ledger_entries (id) INCLUDE (debt_delta) WHERE kind IN ('debt_merge_in', 'debt_merge_out');
