-- Moving a deployment over from the app's former Supabase backend (`npm run import:supabase`,
-- src/import/, docs/DEPLOY.md "Moving from Supabase"). Ids are kept, so the shipped app sees the
-- same user, balance and history after changing its URL.

-- The balance a user had there arrives as one opening entry of its own kind; a job still running
-- there is ended and its held credits come back as an `import` entry naming the job; a purchase
-- credited there is recorded as an `import` entry of 0 naming the Apple transaction (its credits are
-- in the opening balance). Each at most once: a second run of the import inserts nothing.
--
-- The checks below are the old ones widened (or about rows that cannot exist yet), so every
-- existing row satisfies them: NOT VALID spares a scan of ledger_entries and video_jobs under an
-- exclusive lock on a large database, and new rows are checked all the same. The partial indexes
-- cover no existing row; on a large ledger they can be built beforehand with CREATE UNIQUE INDEX
-- CONCURRENTLY IF NOT EXISTS under the same names and definitions (docs/DEPLOY.md, Upgrades).
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
  'grant', 'purchase', 'hold', 'capture', 'release',
  'refund_clawback', 'refund_reversal', 'admin_adjust', 'merge_in', 'merge_out', 'forfeit',
  'admin_grant', 'admin_clawback', 'debt_collection', 'debt_reversal', 'debt_merge_out', 'debt_merge_in',
  'import')) NOT VALID;
ALTER TABLE ledger_entries ADD CONSTRAINT import_entries_name_one_thing
  CHECK (kind <> 'import' OR (job_id IS NULL OR transaction_id IS NULL)) NOT VALID;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_import_opening_once ON ledger_entries (user_id)
  WHERE kind = 'import' AND job_id IS NULL AND transaction_id IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_import_job_once ON ledger_entries (job_id) WHERE kind = 'import' AND job_id IS NOT NULL;
CREATE UNIQUE INDEX IF NOT EXISTS ledger_import_purchase_once ON ledger_entries (transaction_id) WHERE kind = 'import' AND transaction_id IS NOT NULL;

-- The former backend's Supabase Auth user (auth.users.id), kept for the record and for lookups.
ALTER TABLE users ADD COLUMN supabase_auth_id uuid UNIQUE;

-- Imported history: its money was settled in the former backend (the opening balance says what is
-- left), so an imported job that ended there has no hold here. A completed job whose file could not
-- be copied keeps its row without a video (the history still lists it); nothing else may.
ALTER TABLE video_jobs ADD COLUMN imported_at timestamptz;
ALTER TABLE video_jobs ALTER COLUMN hold_id DROP NOT NULL;
ALTER TABLE video_jobs ADD CONSTRAINT jobs_hold_or_imported_history
  CHECK (hold_id IS NOT NULL OR (imported_at IS NOT NULL AND status IN ('completed', 'failed'))) NOT VALID;
ALTER TABLE video_jobs DROP CONSTRAINT completed_jobs_have_video;
ALTER TABLE video_jobs ADD CONSTRAINT completed_jobs_have_video
  CHECK (status <> 'completed' OR video_key IS NOT NULL OR imported_at IS NOT NULL) NOT VALID;
-- The former backend allowed a job of 0 credits (a model priced 0); such history is kept as it was.
ALTER TABLE video_jobs DROP CONSTRAINT video_jobs_credits_used_check;
ALTER TABLE video_jobs ADD CONSTRAINT video_jobs_credits_used_check
  CHECK (credits_used > 0 OR (imported_at IS NOT NULL AND hold_id IS NULL AND credits_used >= 0)) NOT VALID;
