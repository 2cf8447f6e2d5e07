-- verify-ledger's three debt checks read every entry of each changed user (the running debt, its
-- sum, which kinds may carry one), and the covering index of a user's ledger (0018) predates the
-- debt columns (0022): at 10M jobs those three checks were half an incremental pass, one heap page
-- per entry. The same index, with the debt columns and the shortfall, replaces it.
--
-- Building it reads the whole ledger once and holds back ledger writes meanwhile (about a minute at
-- 22M entries). A large deployment can build it beforehand without blocking, under this name:
--   CREATE INDEX CONCURRENTLY ledger_entries_user_ledger ON ledger_entries (user_id, id)
--     INCLUDE (kind, amount, held_delta, balance_after, held_after, debt_delta, debt_after, shortfall);
-- and this migration then finds it and only drops the old one.
CREATE INDEX IF NOT EXISTS ledger_entries_user_ledger ON ledger_entries (user_id, id)
  INCLUDE (kind, amount, held_delta, balance_after, held_after, debt_delta, debt_after, shortfall);
DROP INDEX IF EXISTS ledger_entries_user_covering;
