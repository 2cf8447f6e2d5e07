-- verify-ledger's "a device is given the free grant at most once" reads users.onboarded_device_hash:
-- a user recorded under another device hash changes which device its grant counts for, so the
-- change must mark the user for the incremental pass (migration 0019 marks only the columns the
-- invariants read then: merges and deletions).
DROP TRIGGER users_ledger_change ON users;
CREATE TRIGGER users_ledger_change AFTER INSERT OR UPDATE OF merged_into, deleted_at, onboarded_device_hash OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=id', 'u=merged_into');
