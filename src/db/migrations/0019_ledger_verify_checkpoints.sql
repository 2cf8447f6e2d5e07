-- Incremental verify-ledger (src/ledger/verify.ts, docs/ARCHITECTURE.md "The ledger"): each
-- change to a table the money invariants read marks what it concerns — the users a row names, and
-- the hold, job or Apple transaction it is or names — under the id of the transaction that made it;
-- a verification checks what was marked since its last checkpoint.
--
-- Why transaction ids and not row ids or timestamps: a row id or a timestamp is taken before its
-- transaction commits, so a checkpoint "everything up to id N / time T" skips a row that commits
-- later with a smaller one. A pass instead records the xmin of its snapshot: every transaction with
-- a lower id had ended before the snapshot, so its changes were visible to the pass and checked;
-- every change the pass could not see carries an id at least that high (a transaction gets its id
-- at its first write), so the next pass, reading the marks from that id on, sees it.

-- kind: u = a user (users.id), h = a hold (credit_holds.id), j = a job (video_jobs.job_id),
-- t = an Apple transaction id. One row per writing transaction and thing.
CREATE TABLE ledger_changes (
  xid  xid8 NOT NULL DEFAULT pg_current_xact_id(),
  kind "char" NOT NULL CHECK (kind IN ('u', 'h', 'j', 't')),
  id   text NOT NULL,
  PRIMARY KEY (xid, kind, id)
);
ALTER TABLE ledger_changes ENABLE ROW LEVEL SECURITY;

-- Passes that found every invariant holding. verified_below: every change by a transaction with a
-- lower id was checked (by this pass or an earlier one).
CREATE TABLE ledger_verify_checkpoints (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  mode             text NOT NULL CHECK (mode IN ('full', 'incremental')),
  verified_below   xid8 NOT NULL,
  accounts_checked bigint NOT NULL,
  started_at       timestamptz NOT NULL,
  finished_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_verify_checkpoints_below ON ledger_verify_checkpoints (verified_below);
ALTER TABLE ledger_verify_checkpoints ENABLE ROW LEVEL SECURITY;

-- Marks what a row names, before and after the change (a row moved from one user to another
-- concerns both). Trigger arguments are "kind=column" (e.g. 'u=user_id', 'h=hold_id'); an audit
-- row marks the user it targets.
CREATE FUNCTION mark_ledger_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  versions jsonb[] := '{}';
  r jsonb;
  arg text;
  marks text[] := '{}';
BEGIN
  IF TG_OP <> 'DELETE' THEN versions := versions || to_jsonb(NEW); END IF;
  IF TG_OP <> 'INSERT' THEN versions := versions || to_jsonb(OLD); END IF;
  FOREACH r IN ARRAY versions LOOP
    IF TG_TABLE_NAME = 'admin_actions' THEN
      IF r ->> 'target_type' = 'user' THEN marks := marks || ('u=' || (r ->> 'target_id')); END IF;
    ELSE
      FOREACH arg IN ARRAY TG_ARGV LOOP
        IF r ->> split_part(arg, '=', 2) IS NOT NULL THEN
          marks := marks || (split_part(arg, '=', 1) || '=' || (r ->> split_part(arg, '=', 2)));
        END IF;
      END LOOP;
    END IF;
  END LOOP;
  INSERT INTO ledger_changes (kind, id)
  SELECT DISTINCT split_part(m, '=', 1)::"char", substr(m, 3) FROM unnest(marks) AS m
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;

-- Only the columns an invariant reads: a job's progress through submitted/processing changes its
-- status (the hold must stay open), a profile's language changes nothing the ledger cares about.
CREATE TRIGGER users_ledger_change AFTER INSERT OR UPDATE OF merged_into, deleted_at OR DELETE ON users
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=id', 'u=merged_into');
CREATE TRIGGER credit_accounts_ledger_change AFTER INSERT OR UPDATE OR DELETE ON credit_accounts
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=user_id');
CREATE TRIGGER credit_holds_ledger_change AFTER INSERT OR UPDATE OR DELETE ON credit_holds
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=user_id', 'h=id', 'j=job_id');
CREATE TRIGGER ledger_entries_ledger_change AFTER INSERT ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=user_id', 'h=hold_id', 't=transaction_id');
CREATE TRIGGER video_jobs_ledger_change AFTER INSERT OR UPDATE OF user_id, status, hold_id, credits_used OR DELETE ON video_jobs
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=user_id', 'j=job_id', 'h=hold_id');
CREATE TRIGGER iap_transactions_ledger_change AFTER INSERT OR UPDATE OR DELETE ON iap_transactions
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=user_id', 't=transaction_id');
CREATE TRIGGER app_store_refund_states_ledger_change AFTER INSERT OR UPDATE OR DELETE ON app_store_refund_states
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('t=transaction_id');
-- Expired keys are deleted hourly; a deletion cannot break "an answer names a job of its user".
CREATE TRIGGER idempotency_keys_ledger_change AFTER INSERT OR UPDATE OF user_id, response_status, response_body ON idempotency_keys
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change('u=user_id');
CREATE TRIGGER admin_actions_ledger_change AFTER INSERT ON admin_actions
  FOR EACH ROW EXECUTE FUNCTION mark_ledger_change();

-- The global merge check (merges create and lose no credits) reads only merge entries.
CREATE INDEX ledger_entries_merges ON ledger_entries (id) INCLUDE (amount, held_delta) WHERE kind IN ('merge_in', 'merge_out');
-- The holds of a user on a merge chain, including resolved ones (credit_holds_open has the open ones only).
CREATE INDEX credit_holds_user ON credit_holds (user_id);
