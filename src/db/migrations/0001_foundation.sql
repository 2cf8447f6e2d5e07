-- Foundation schema: users, the credit ledger, sessions, catalogue, error log, idempotency keys.
-- Runs unchanged on plain PostgreSQL 15+ and on Supabase (which already has the auth schema,
-- auth.uid() and the anon/authenticated roles: everything here is create-if-missing).

-- ---------------------------------------------------------------------------------------------
-- Supabase compatibility: auth.uid() and the API roles, for the RLS policies below.
-- ---------------------------------------------------------------------------------------------
CREATE SCHEMA IF NOT EXISTS auth;

DO $$
BEGIN
  IF NOT EXISTS (
    SELECT 1 FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'auth' AND p.proname = 'uid'
  ) THEN
    -- Same lookup order as Supabase's: the single-claim setting, then the claims JSON.
    CREATE FUNCTION auth.uid() RETURNS uuid LANGUAGE sql STABLE AS $fn$
      SELECT coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub'
      )::uuid
    $fn$;
  END IF;
END $$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN CREATE ROLE anon NOLOGIN; END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN CREATE ROLE authenticated NOLOGIN; END IF;
EXCEPTION WHEN duplicate_object OR insufficient_privilege THEN
  -- Managed databases without CREATEROLE: RLS still protects the tables; only the grants below are skipped.
  RAISE NOTICE 'API roles not created: %', SQLERRM;
END $$;

CREATE FUNCTION set_updated_at() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;

CREATE FUNCTION forbid_mutation() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION '% is append-only', TG_TABLE_NAME USING ERRCODE = 'restrict_violation';
END $$;

-- ---------------------------------------------------------------------------------------------
-- Users. The balance is NOT here: it lives in credit_accounts and moves only through the ledger.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE users (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  device_id            text UNIQUE CHECK (length(device_id) BETWEEN 1 AND 200),
  apple_sub            text UNIQUE,
  email                text,
  is_guest             boolean NOT NULL DEFAULT true,
  tier                 text NOT NULL DEFAULT 'free' CHECK (tier IN ('free', 'premium')),
  language             text NOT NULL DEFAULT 'en' CHECK (language IN ('en', 'tr', 'es')),
  theme_preference     text NOT NULL DEFAULT 'system' CHECK (theme_preference IN ('system', 'light', 'dark')),
  is_admin             boolean NOT NULL DEFAULT false,
  banned_at            timestamptz,
  -- When Apple's DeviceCheck bit0 was set for this user's device after the initial grant;
  -- NULL with a grant means the mark is still owed and is retried on the next onboarding call.
  device_bit_marked_at timestamptz,
  deleted_at           timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER users_updated_at BEFORE UPDATE ON users FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Ledger (DESIGN §4). credit_accounts holds the running totals; ledger_entries is the append-only
-- history every total is derived from; credit_holds are two-phase reservations for jobs.
-- available to spend (credits_remaining) = balance - held.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE credit_accounts (
  user_id    uuid PRIMARY KEY REFERENCES users (id),
  balance    integer NOT NULL DEFAULT 0 CHECK (balance >= 0),
  held       integer NOT NULL DEFAULT 0 CHECK (held >= 0),
  updated_at timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT held_within_balance CHECK (held <= balance)
);

CREATE TABLE credit_holds (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id         uuid NOT NULL REFERENCES credit_accounts (user_id),
  job_id          uuid UNIQUE,
  amount          integer NOT NULL CHECK (amount > 0),
  status          text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'captured', 'released')),
  captured_amount integer CHECK (captured_amount >= 0 AND captured_amount <= amount),
  created_at      timestamptz NOT NULL DEFAULT now(),
  resolved_at     timestamptz,
  -- A hold is resolved exactly once: open, or resolved with a timestamp (and an amount if captured).
  CONSTRAINT hold_resolution CHECK (
    (status = 'open' AND resolved_at IS NULL AND captured_amount IS NULL) OR
    (status = 'captured' AND resolved_at IS NOT NULL AND captured_amount IS NOT NULL) OR
    (status = 'released' AND resolved_at IS NOT NULL AND captured_amount IS NULL)
  )
);
CREATE INDEX credit_holds_open ON credit_holds (user_id) WHERE status = 'open';

CREATE TABLE ledger_entries (
  id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id         uuid NOT NULL REFERENCES credit_accounts (user_id),
  kind            text NOT NULL CHECK (kind IN (
                    'grant', 'purchase', 'hold', 'capture', 'release',
                    'refund_clawback', 'refund_reversal', 'admin_adjust', 'merge_in', 'merge_out')),
  amount          integer NOT NULL,            -- change to balance
  held_delta      integer NOT NULL DEFAULT 0,  -- change to held
  hold_id         uuid REFERENCES credit_holds (id),
  job_id          uuid,
  transaction_id  text,
  admin_action_id bigint,
  reason          text,
  -- A clawback clamped at zero records what it could not take back (DESIGN §4.3).
  shortfall       integer NOT NULL DEFAULT 0 CHECK (shortfall >= 0),
  balance_after   integer NOT NULL CHECK (balance_after >= 0),
  held_after      integer NOT NULL CHECK (held_after >= 0),
  created_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT hold_entries_name_their_hold CHECK (kind NOT IN ('hold', 'capture', 'release') OR hold_id IS NOT NULL),
  CONSTRAINT purchase_names_transaction CHECK (kind NOT IN ('purchase', 'refund_clawback', 'refund_reversal') OR transaction_id IS NOT NULL)
);
CREATE INDEX ledger_entries_user ON ledger_entries (user_id, id);
-- Invariant 4: the initial grant happens at most once per user.
CREATE UNIQUE INDEX ledger_one_grant_per_user ON ledger_entries (user_id) WHERE kind = 'grant';
-- Invariant 3: an Apple transaction credits at most once, ever, to one user; a refund reverses it at most once.
CREATE UNIQUE INDEX ledger_purchase_once ON ledger_entries (transaction_id) WHERE kind = 'purchase';
CREATE UNIQUE INDEX ledger_clawback_once ON ledger_entries (transaction_id) WHERE kind = 'refund_clawback';
-- Invariant 2: a hold is placed once and ends once (a partial capture releases its remainder).
CREATE UNIQUE INDEX ledger_hold_steps_once ON ledger_entries (hold_id, kind) WHERE hold_id IS NOT NULL;
CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
  FOR EACH ROW EXECUTE FUNCTION forbid_mutation();

-- ---------------------------------------------------------------------------------------------
-- Sessions: one auth_session per sign-in = one refresh-token family. Refresh tokens are opaque,
-- stored as SHA-256, rotated on every use; presenting a rotated token revokes the whole session.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE auth_sessions (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id           uuid NOT NULL REFERENCES users (id),
  created_at        timestamptz NOT NULL DEFAULT now(),
  last_refreshed_at timestamptz,
  revoked_at        timestamptz,
  revoked_reason    text
);
CREATE INDEX auth_sessions_user ON auth_sessions (user_id) WHERE revoked_at IS NULL;

CREATE TABLE refresh_tokens (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  session_id uuid NOT NULL REFERENCES auth_sessions (id),
  token_hash bytea NOT NULL UNIQUE,
  parent_id  bigint REFERENCES refresh_tokens (id),
  created_at timestamptz NOT NULL DEFAULT now(),
  expires_at timestamptz NOT NULL,
  rotated_at timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- ---------------------------------------------------------------------------------------------
-- Catalogue.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE models (
  id                  text PRIMARY KEY CHECK (id ~ '^[a-z0-9][a-z0-9.-]{1,63}$'),
  name                text NOT NULL,
  category            text NOT NULL CHECK (category IN ('text-to-video', 'image-to-video')),
  description         text,
  provider            text NOT NULL CHECK (provider IN ('fal', 'runway', 'simulator')),
  provider_model_id   text NOT NULL,
  pricing_type        text NOT NULL CHECK (pricing_type IN ('per_video', 'per_second')),
  cost_per_generation integer CHECK (cost_per_generation > 0),
  credits_per_second  integer CHECK (credits_per_second > 0),
  required_fields     jsonb NOT NULL,
  has_audio           boolean NOT NULL DEFAULT false,
  is_active           boolean NOT NULL DEFAULT false,
  is_featured         boolean NOT NULL DEFAULT false,
  is_available        boolean NOT NULL DEFAULT true,
  unavailable_reason  text,
  thumbnail_url       text,
  deadline_seconds    integer NOT NULL DEFAULT 900 CHECK (deadline_seconds BETWEEN 60 AND 86400),
  sort_order          integer NOT NULL DEFAULT 100,
  created_at          timestamptz NOT NULL DEFAULT now(),
  updated_at          timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT pricing_complete CHECK (
    (pricing_type = 'per_video' AND cost_per_generation IS NOT NULL) OR
    (pricing_type = 'per_second' AND credits_per_second IS NOT NULL)
  )
);
-- The shipped app asks for "the active model" and takes the first row: there is at most one.
CREATE UNIQUE INDEX models_single_active ON models ((true)) WHERE is_active;
CREATE TRIGGER models_updated_at BEFORE UPDATE ON models FOR EACH ROW EXECUTE FUNCTION set_updated_at();

CREATE TABLE themes (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name             text NOT NULL,
  description      text,
  thumbnail_url    text,
  prompt           text NOT NULL,
  default_settings jsonb,
  model_id         text NOT NULL REFERENCES models (id),
  is_featured      boolean NOT NULL DEFAULT false,
  is_available     boolean NOT NULL DEFAULT true,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE TRIGGER themes_updated_at BEFORE UPDATE ON themes FOR EACH ROW EXECUTE FUNCTION set_updated_at();

-- ---------------------------------------------------------------------------------------------
-- Operations.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE error_log (
  id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  request_id text NOT NULL,
  code       text NOT NULL,
  status     integer NOT NULL,
  method     text,
  path       text,
  user_id    uuid,
  message    text,
  details    jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX error_log_created ON error_log (created_at);
CREATE INDEX error_log_request ON error_log (request_id);

-- Stripe-style idempotency keys, scoped per user (used by generate-video).
CREATE TABLE idempotency_keys (
  id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  user_id             uuid NOT NULL REFERENCES users (id),
  key                 text NOT NULL CHECK (length(key) BETWEEN 1 AND 255),
  request_method      text NOT NULL,
  request_path        text NOT NULL,
  request_fingerprint text NOT NULL,
  locked_at           timestamptz,
  response_status     integer,
  response_body       jsonb,
  created_at          timestamptz NOT NULL DEFAULT now(),
  expires_at          timestamptz NOT NULL DEFAULT now() + interval '24 hours',
  UNIQUE (user_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- ---------------------------------------------------------------------------------------------
-- Row-level security, Supabase style: defence in depth for anyone exposing these tables through
-- PostgREST. The server connects as the table owner and is not subject to these policies.
-- Policies have no TO clause so they exist even where the API roles could not be created.
-- ---------------------------------------------------------------------------------------------
ALTER TABLE users ENABLE ROW LEVEL SECURITY;
CREATE POLICY users_read_own ON users FOR SELECT USING (id = auth.uid());
CREATE POLICY users_update_own ON users FOR UPDATE USING (id = auth.uid()) WITH CHECK (id = auth.uid());

ALTER TABLE credit_accounts ENABLE ROW LEVEL SECURITY;
CREATE POLICY credit_accounts_read_own ON credit_accounts FOR SELECT USING (user_id = auth.uid());
ALTER TABLE credit_holds ENABLE ROW LEVEL SECURITY;
CREATE POLICY credit_holds_read_own ON credit_holds FOR SELECT USING (user_id = auth.uid());
ALTER TABLE ledger_entries ENABLE ROW LEVEL SECURITY;
CREATE POLICY ledger_entries_read_own ON ledger_entries FOR SELECT USING (user_id = auth.uid());
ALTER TABLE auth_sessions ENABLE ROW LEVEL SECURITY;
CREATE POLICY auth_sessions_read_own ON auth_sessions FOR SELECT USING (user_id = auth.uid());
-- No policies at all: nobody but the owner reads these.
ALTER TABLE refresh_tokens ENABLE ROW LEVEL SECURITY;
ALTER TABLE idempotency_keys ENABLE ROW LEVEL SECURITY;
ALTER TABLE error_log ENABLE ROW LEVEL SECURITY;

ALTER TABLE models ENABLE ROW LEVEL SECURITY;
CREATE POLICY models_read_available ON models FOR SELECT USING (is_available);
ALTER TABLE themes ENABLE ROW LEVEL SECURITY;
CREATE POLICY themes_read_available ON themes FOR SELECT USING (is_available);

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') AND EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'anon') THEN
    GRANT USAGE ON SCHEMA auth TO anon, authenticated;
    GRANT EXECUTE ON FUNCTION auth.uid() TO anon, authenticated;
    GRANT SELECT ON models, themes TO anon, authenticated;
    GRANT SELECT ON users, credit_accounts, credit_holds, ledger_entries, auth_sessions TO authenticated;
    GRANT UPDATE (language, theme_preference) ON users TO authenticated;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'API grants skipped: %', SQLERRM;
END $$;
