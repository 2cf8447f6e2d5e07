-- App Store purchases and App Store Server Notifications (issue: Apple).
-- A transaction id credits at most once, to one user, ever (DESIGN §4.3): the primary key here and
-- ledger_purchase_once on ledger_entries both say so; the row records what Apple signed.

CREATE TABLE iap_transactions (
  transaction_id          text PRIMARY KEY,
  original_transaction_id text NOT NULL,
  user_id                 uuid NOT NULL REFERENCES users (id),
  product_id              text NOT NULL,
  quantity                integer NOT NULL CHECK (quantity > 0),
  credits                 integer NOT NULL CHECK (credits > 0),
  environment             text NOT NULL CHECK (environment IN ('Production', 'Sandbox')),
  purchased_at            timestamptz NOT NULL,
  revoked_at              timestamptz,
  revocation_reason       integer,
  -- The JWS exactly as Apple signed it: the evidence for this credit.
  signed_transaction      text NOT NULL,
  created_at              timestamptz NOT NULL DEFAULT now(),
  updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX iap_transactions_user ON iap_transactions (user_id, created_at);
CREATE TRIGGER iap_transactions_updated_at BEFORE UPDATE ON iap_transactions FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A refund reversal restores a clawback at most once per transaction, like the clawback itself.
CREATE UNIQUE INDEX ledger_reversal_once ON ledger_entries (transaction_id) WHERE kind = 'refund_reversal';

-- Verified App Store Server Notifications V2, stored once per notificationUUID (Apple retries and
-- may deliver twice: the second delivery changes nothing).
CREATE TABLE app_store_notifications (
  notification_uuid text PRIMARY KEY,
  notification_type text NOT NULL,
  subtype           text,
  environment       text,
  transaction_id    text,
  signed_payload    text NOT NULL,
  outcome           text NOT NULL,
  received_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX app_store_notifications_transaction ON app_store_notifications (transaction_id);

ALTER TABLE iap_transactions ENABLE ROW LEVEL SECURITY;
CREATE POLICY iap_transactions_read_own ON iap_transactions FOR SELECT USING (user_id = auth.uid());
ALTER TABLE app_store_notifications ENABLE ROW LEVEL SECURITY;
