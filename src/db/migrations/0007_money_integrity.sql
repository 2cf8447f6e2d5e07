-- Money integrity across merges, refunds in any order, slow requests and account deletion (issue 7).

-- ---------------------------------------------------------------------------------------------
-- A user's current owner: the end of its merge chain. Credits, holds, purchases and idempotency
-- records always land on the owner, never on a merged guest's tombstone.
-- ---------------------------------------------------------------------------------------------
-- plpgsql, not a recursive SQL CTE: its statement is planned once per session, and it is on every
-- money path (generate-video calls it a few times per request).
CREATE FUNCTION user_current_owner(uid uuid) RETURNS uuid LANGUAGE plpgsql STABLE AS $$
DECLARE
  cur  uuid := uid;
  parent uuid;
BEGIN
  FOR hops IN 1..64 LOOP
    SELECT merged_into INTO parent FROM users WHERE id = cur;
    IF NOT FOUND THEN RETURN NULL; END IF;
    IF parent IS NULL THEN RETURN cur; END IF;
    cur := parent;
  END LOOP;
  RETURN NULL; -- a chain this long is a bug; verify-ledger reports what it strands
END $$;

-- ---------------------------------------------------------------------------------------------
-- Ledger: account deletion forfeits what is left (a deleted account holds nothing), and a
-- transaction can be refunded, reversed and refunded again: each clawback / reversal belongs to a
-- numbered refund round, and each round moves money at most once in each direction.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
  'grant', 'purchase', 'hold', 'capture', 'release',
  'refund_clawback', 'refund_reversal', 'admin_adjust', 'merge_in', 'merge_out', 'forfeit'));

ALTER TABLE ledger_entries ADD COLUMN refund_round integer CHECK (refund_round > 0);
-- Entries before rounds existed were each transaction's first (and only) round. The ledger is
-- append-only; this one-time backfill of a new column is the single exception.
ALTER TABLE ledger_entries DISABLE TRIGGER ledger_entries_append_only;
UPDATE ledger_entries SET refund_round = 1 WHERE kind IN ('refund_clawback', 'refund_reversal');
ALTER TABLE ledger_entries ENABLE TRIGGER ledger_entries_append_only;
ALTER TABLE ledger_entries ADD CONSTRAINT refund_entries_name_their_round
  CHECK ((kind IN ('refund_clawback', 'refund_reversal')) = (refund_round IS NOT NULL));

DROP INDEX ledger_clawback_once;
DROP INDEX ledger_reversal_once;
CREATE UNIQUE INDEX ledger_clawback_once_per_round ON ledger_entries (transaction_id, refund_round) WHERE kind = 'refund_clawback';
CREATE UNIQUE INDEX ledger_reversal_once_per_round ON ledger_entries (transaction_id, refund_round) WHERE kind = 'refund_reversal';
CREATE INDEX ledger_entries_transaction ON ledger_entries (transaction_id) WHERE transaction_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Apple's refund state per transaction id, whatever order its notifications arrive in and whether
-- or not the purchase was credited yet: the notification with the newest signedDate decides.
-- Crediting a purchase locks this row too, so a credit and a refund of one transaction serialise.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE app_store_refund_states (
  transaction_id    text PRIMARY KEY,
  refunded          boolean NOT NULL DEFAULT false,
  -- signedDate of the notification that set this state (NULL: no notification yet).
  signed_at         timestamptz,
  notification_uuid text,
  revocation_date   timestamptz,
  revocation_reason integer,
  updated_at        timestamptz NOT NULL DEFAULT now()
);
INSERT INTO app_store_refund_states (transaction_id, refunded, signed_at, revocation_date, revocation_reason)
SELECT transaction_id, true, revoked_at, revoked_at, revocation_reason FROM iap_transactions WHERE revoked_at IS NOT NULL;
ALTER TABLE app_store_refund_states ENABLE ROW LEVEL SECURITY;

ALTER TABLE app_store_notifications ADD COLUMN signed_date timestamptz;

-- ---------------------------------------------------------------------------------------------
-- Free grants per device id, independent of users: a merge or deletion releases users.device_id,
-- but the device id keeps its history (its one grant, and a DeviceCheck mark still owed).
-- Stored as SHA-256 so a deleted account's device id is not kept in the clear.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE device_grants (
  device_hash   text PRIMARY KEY,
  first_user_id uuid NOT NULL REFERENCES users (id),
  granted       boolean NOT NULL,
  -- When DeviceCheck bit0 was set after the grant; NULL with granted = the mark is still owed.
  bit_marked_at timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO device_grants (device_hash, first_user_id, granted, bit_marked_at)
SELECT encode(sha256(convert_to(u.device_id, 'UTF8')), 'hex'), u.id,
       EXISTS (SELECT 1 FROM ledger_entries e WHERE e.user_id = u.id AND e.kind = 'grant'), u.device_bit_marked_at
  FROM users u WHERE u.device_id IS NOT NULL;
ALTER TABLE device_grants ENABLE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- Idempotency: the claimant's token. Only the request holding the current token may store the
-- answer, so a key taken over from a holder that was merely slow cannot produce two answers.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE idempotency_keys ADD COLUMN claim_token uuid;

-- Accounts deleted before deletion forfeited the balance: forfeit it now (those with jobs still
-- running are forfeited by their queued purge, once the jobs have ended).
INSERT INTO ledger_entries (user_id, kind, amount, held_delta, reason, balance_after, held_after)
SELECT a.user_id, 'forfeit', -a.balance, 0, 'account deleted (forfeited by migration 0007)', 0, 0
  FROM credit_accounts a JOIN users u ON u.id = a.user_id
 WHERE u.deleted_at IS NOT NULL AND u.merged_into IS NULL AND a.balance > 0 AND a.held = 0;
UPDATE credit_accounts a SET balance = 0, updated_at = now()
  FROM users u WHERE u.id = a.user_id AND u.deleted_at IS NOT NULL AND u.merged_into IS NULL AND a.balance > 0 AND a.held = 0;

-- Apple accounts that were guests give up the device id (device_grants above kept its grant):
-- device-check must never open an Apple account with a device id alone.
UPDATE users SET device_id = NULL WHERE NOT is_guest AND device_id IS NOT NULL;
