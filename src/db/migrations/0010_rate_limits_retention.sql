-- Rate limits that hold across instances, the DeviceCheck grant race, and retention (issue 9).

-- ---------------------------------------------------------------------------------------------
-- rate-limiter-flexible's PostgreSQL store (RateLimiterPostgres), created here rather than by the
-- library at start-up (it is told tableCreated: true): the schema is ours, versioned like the
-- rest. The column names, types and order are the library's (its upsert inserts positionally).
-- UNLOGGED: counters are written on every limited request and losing them in a crash only
-- forgives the current windows; WAL for them would be pure cost.
-- `expire` is epoch milliseconds (NULL: never), as the library writes it.
-- ---------------------------------------------------------------------------------------------
CREATE UNLOGGED TABLE rate_limits (
  key    varchar(255) PRIMARY KEY,
  points integer NOT NULL DEFAULT 0,
  expire bigint
);
CREATE INDEX rate_limits_expire ON rate_limits (expire);
ALTER TABLE rate_limits ENABLE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- The free grant is given only after DeviceCheck bit0 is set. A pending grant is recorded before
-- asking Apple to set the bit, so a crash between the two is completed by the device's next call
-- (once: the row moves pending → granted in one UPDATE guarded by grant_pending).
-- ---------------------------------------------------------------------------------------------
ALTER TABLE device_grants ADD COLUMN grant_pending boolean NOT NULL DEFAULT false;
ALTER TABLE device_grants ADD CONSTRAINT device_grants_pending_is_not_granted CHECK (NOT (grant_pending AND granted));

-- ---------------------------------------------------------------------------------------------
-- Anonymous 401/404 noise (scanners, bad keys) is counted per hour, code and route instead of one
-- error_log row per request.
-- ---------------------------------------------------------------------------------------------
CREATE TABLE error_log_aggregates (
  hour     timestamptz NOT NULL,
  code     text NOT NULL,
  status   integer NOT NULL,
  method   text NOT NULL,
  route    text NOT NULL,
  count    bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (hour, code, method, route)
);
ALTER TABLE error_log_aggregates ENABLE ROW LEVEL SECURITY;

-- ---------------------------------------------------------------------------------------------
-- Retention. A video past VIDEO_RETENTION_DAYS loses its stored files; the job stays in history
-- with expired_at set (and no URLs).
-- ---------------------------------------------------------------------------------------------
ALTER TABLE video_jobs ADD COLUMN expired_at timestamptz;
CREATE INDEX video_jobs_retention ON video_jobs (completed_at) WHERE expired_at IS NULL AND completed_at IS NOT NULL;
CREATE INDEX auth_sessions_revoked ON auth_sessions (revoked_at) WHERE revoked_at IS NOT NULL;
CREATE INDEX webhook_events_received ON webhook_events (received_at);
CREATE INDEX app_store_notifications_received ON app_store_notifications (received_at);
