-- Costs that stay flat as data grows: every admin read, the dashboard and the retention tasks find
-- their rows through an index, so their cost follows what they read or delete, not the table sizes
-- (measured by `npm run bench:scale`, docs/PERFORMANCE.md "Costs at scale").
--
-- IF NOT EXISTS throughout: on a large existing database an operator can build these beforehand
-- with CREATE INDEX CONCURRENTLY under the same names (docs/DEPLOY.md), and this migration then only
-- records them instead of blocking writes while it builds them.

-- ---------------------------------------------------------------------------------------------
-- Admin search: lower(email) had no index, so the OR of the lookups became a seq scan of users.
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS users_email_lower ON users (lower(email));

-- ---------------------------------------------------------------------------------------------
-- Admin user page. A user's jobs newest first including deleted ones (the history index leaves
-- them out), and their count by status from the index alone.
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS video_jobs_user_created ON video_jobs (user_id, created_at DESC) INCLUDE (status, job_id);

-- A user's ledger, covering what is summed per user (the page's credit totals, verify-ledger's
-- balance, held and running-total checks): read from the index alone instead of one heap page per
-- entry (a 20k-job user has 40k entries spread over the whole table). It replaces (user_id, id).
CREATE INDEX IF NOT EXISTS ledger_entries_user_covering ON ledger_entries (user_id, id)
  INCLUDE (kind, amount, held_delta, balance_after, held_after);
DROP INDEX IF EXISTS ledger_entries_user;

-- A job's timeline reads the provider callbacks of the job.
CREATE INDEX IF NOT EXISTS webhook_events_job ON webhook_events (job_id) WHERE job_id IS NOT NULL;

-- ---------------------------------------------------------------------------------------------
-- Dashboard ("today") and failures per provider, from the indexes alone.
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS video_jobs_created ON video_jobs (created_at) INCLUDE (status);
CREATE INDEX IF NOT EXISTS video_jobs_completed ON video_jobs (completed_at) INCLUDE (provider, status, error_code)
  WHERE completed_at IS NOT NULL;
-- Only the kinds the dashboard sums (purchases, support's grants, clawbacks): a small index.
CREATE INDEX IF NOT EXISTS ledger_entries_credits_by_time ON ledger_entries (created_at) INCLUDE (kind, amount)
  WHERE kind IN ('purchase', 'admin_grant', 'refund_clawback', 'admin_clawback');

-- ---------------------------------------------------------------------------------------------
-- Session retention. Deleting a refresh token checks refresh_tokens.parent_id (a foreign key to
-- itself) and push_tokens.session_id (ON DELETE SET NULL) for rows that name it: without these
-- indexes each deleted row scanned both tables (17 minutes for 25k sessions at 3M jobs).
-- ---------------------------------------------------------------------------------------------
CREATE INDEX IF NOT EXISTS refresh_tokens_parent ON refresh_tokens (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS push_tokens_session ON push_tokens (session_id) WHERE session_id IS NOT NULL;
-- Live sessions by when they were last used: the ones idle long enough for every refresh token to
-- have expired are found without reading the sessions still in use.
CREATE INDEX IF NOT EXISTS auth_sessions_idle ON auth_sessions ((coalesce(last_refreshed_at, created_at)), id)
  WHERE revoked_at IS NULL;
