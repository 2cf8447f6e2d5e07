-- APNs device tokens (issue 10). One row per device token: a token belongs to one user at a time
-- (re-registering moves it), a user may have many. session_id names the sign-in session that
-- registered it, so a local logout removes that device's token only; NULL when unknown (legacy
-- anon-key mode, or moved by a merge).
CREATE TABLE push_tokens (
  token         text PRIMARY KEY CHECK (token ~ '^[0-9a-f]{64,200}$'),
  user_id       uuid NOT NULL REFERENCES users (id),
  session_id    uuid REFERENCES auth_sessions (id),
  environment   text NOT NULL CHECK (environment IN ('sandbox', 'production')),
  -- The device's language at registration; NULL falls back to users.language.
  language      text CHECK (language IN ('en', 'tr', 'es')),
  -- Compared with the timestamp of APNs' 410 Unregistered: a token re-registered after it survives.
  registered_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX push_tokens_user ON push_tokens (user_id);
ALTER TABLE push_tokens ENABLE ROW LEVEL SECURITY;

-- What a push task already settled per (job, token): a retried task (another device's 5xx) sends
-- nothing twice. outcome 'sent', or APNs' final reason (Unregistered, PayloadTooLarge, …).
CREATE TABLE push_deliveries (
  job_id   uuid NOT NULL REFERENCES video_jobs (job_id),
  token    text NOT NULL,
  outcome  text NOT NULL,
  apns_id  text,
  settled_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, token)
);
ALTER TABLE push_deliveries ENABLE ROW LEVEL SECURITY;
