-- Admin console and API (issue 11): admins separate from app users, their sessions and API tokens,
-- login attempts (lockout), the append-only audit log, the ledger kinds of admin grants and
-- clawbacks, and the device ids a user onboarded with (a banned user's device cannot onboard again).

-- ---------------------------------------------------------------------------------------------
-- Admins: their own identities, never rows of users (an app token can never become an admin one).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE admins (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  email         text NOT NULL CHECK (email = lower(email) AND length(email) BETWEEN 3 AND 254),
  -- scrypt$N$r$p$salt$hash (src/admin/passwords.ts): parameters travel with the hash.
  password_hash text NOT NULL,
  -- Base32 TOTP secret; NULL = no second factor.
  totp_secret   text,
  -- The last 30-second TOTP step accepted: a code works once (a seen code cannot be replayed).
  totp_last_step bigint,
  disabled_at   timestamptz,
  created_at    timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  UNIQUE (email)
);
CREATE TRIGGER admins_updated_at BEFORE UPDATE ON admins FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- A console session (cookie) or an API token (bearer) of an admin; stored as SHA-256 only.
CREATE TABLE admin_sessions (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  admin_id    uuid NOT NULL REFERENCES admins (id),
  kind        text NOT NULL CHECK (kind IN ('console', 'api')),
  token_hash  bytea NOT NULL UNIQUE,
  created_at  timestamptz NOT NULL DEFAULT now(),
  expires_at  timestamptz NOT NULL,
  revoked_at  timestamptz
);
CREATE INDEX admin_sessions_admin ON admin_sessions (admin_id) WHERE revoked_at IS NULL;

-- Every sign-in attempt, inserted before the password is checked: the lockout counts rows, so
-- concurrent guesses cannot slip past it.
CREATE TABLE admin_login_attempts (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  email      text NOT NULL,
  ip         text NOT NULL,
  succeeded  boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX admin_login_attempts_key ON admin_login_attempts (email, ip, created_at);
-- Attempts older than the window are pruned by the next sign-in (the table stays bounded).
CREATE INDEX admin_login_attempts_created ON admin_login_attempts (created_at);

-- ---------------------------------------------------------------------------------------------
-- The audit log: one row per admin action, append-only like ledger_entries. A ledger entry made
-- by an admin names its row (ledger_entries.admin_action_id).
-- ---------------------------------------------------------------------------------------------
CREATE TABLE admin_actions (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  admin_id        uuid NOT NULL REFERENCES admins (id),
  action          text NOT NULL,
  target_type     text NOT NULL CHECK (target_type IN ('user', 'model')),
  target_id       text NOT NULL,
  amount          integer,
  reason          text,
  request_id      text NOT NULL,
  -- The client's request key: a retried grant or clawback returns the first one's row.
  idempotency_key text CHECK (length(idempotency_key) BETWEEN 1 AND 255),
  -- What the request asked, to tell a retry from a different request reusing its key.
  fingerprint     text,
  before          jsonb,
  after           jsonb,
  created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX admin_actions_idempotency ON admin_actions (admin_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX admin_actions_target ON admin_actions (target_type, target_id, id);
CREATE TRIGGER admin_actions_append_only BEFORE UPDATE OR DELETE ON admin_actions
  FOR EACH ROW EXECUTE FUNCTION forbid_mutation();

ALTER TABLE admins ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_sessions ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_login_attempts ENABLE ROW LEVEL SECURITY;
ALTER TABLE admin_actions ENABLE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- Ledger: admin grants and clawbacks. Each belongs to exactly one audit row, and an audit row moves
-- money at most once.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
  'grant', 'purchase', 'hold', 'capture', 'release',
  'refund_clawback', 'refund_reversal', 'admin_adjust', 'merge_in', 'merge_out', 'forfeit',
  'admin_grant', 'admin_clawback'));
ALTER TABLE ledger_entries ADD CONSTRAINT admin_entries_name_their_action
  CHECK (kind NOT IN ('admin_grant', 'admin_clawback') OR admin_action_id IS NOT NULL);
CREATE UNIQUE INDEX ledger_admin_action_once ON ledger_entries (admin_action_id) WHERE admin_action_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- The device id a user was onboarded with (as device_grants keeps it: SHA-256), kept after the
-- device id itself is released by Sign in with Apple, a merge or deletion: a banned user's device
-- must not onboard a fresh guest.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE users ADD COLUMN onboarded_device_hash text;
UPDATE users SET onboarded_device_hash = encode(sha256(convert_to(device_id, 'UTF8')), 'hex') WHERE device_id IS NOT NULL;
UPDATE users u SET onboarded_device_hash = g.device_hash
  FROM device_grants g WHERE g.first_user_id = u.id AND u.onboarded_device_hash IS NULL;
CREATE INDEX users_onboarded_device ON users (onboarded_device_hash) WHERE onboarded_device_hash IS NOT NULL;
