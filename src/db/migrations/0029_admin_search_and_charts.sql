-- The support console's search and charts, each read from an index that stays small per answer at
-- 1M users and 10M jobs (docs/PERFORMANCE.md; test/admin/search.test.ts and charts.test.ts check the plans).
--
-- Search by the start of a device id or email, in any case: a range of lower(...) in byte order
-- (~>=~ and ~<~, whatever the database's collation), which only a text_pattern_ops index serves. The email
-- index replaces the exact lower(email) one of 0018: the same index answers equality too. User ids
-- and job ids are searched by a range of their primary keys, Apple subs and App Store transaction
-- ids by their unique keys: no index needed for those.
--
-- Each index reads its table once and holds back writes to it meanwhile. A large deployment can
-- build them beforehand without blocking, under these names (CREATE INDEX CONCURRENTLY ... with
-- the same definitions); IF NOT EXISTS then finds them.
CREATE INDEX IF NOT EXISTS users_device_id_prefix ON users (lower(device_id) text_pattern_ops);
CREATE INDEX IF NOT EXISTS users_email_prefix ON users (lower(email) text_pattern_ops);
DROP INDEX IF EXISTS users_email_lower;

-- The dashboard's charts (last 24 h, 7 or 30 days), each from an index alone:
--  - jobs started per provider, by created_at: the "today" index of 0018 plus the provider;
--  - jobs ended per provider, failure rate, time to video per model, by completed_at: the
--    failures index of 0018 plus the model and the start time;
--  - queue depth, walked back from now by when jobs left the queue (submitted, or ended unsent);
--  - credits sold and refunded: ledger_entries_credits_by_time (0018) already serves them.
-- Each new index replaces the narrower one it extends.
CREATE INDEX IF NOT EXISTS video_jobs_created_by_provider ON video_jobs (created_at) INCLUDE (status, provider);
DROP INDEX IF EXISTS video_jobs_created;
CREATE INDEX IF NOT EXISTS video_jobs_ended ON video_jobs (completed_at) INCLUDE (provider, status, error_code, model_id, created_at)
  WHERE completed_at IS NOT NULL;
DROP INDEX IF EXISTS video_jobs_completed;
CREATE INDEX IF NOT EXISTS video_jobs_left_queue ON video_jobs ((coalesce(submitted_at, completed_at)))
  WHERE coalesce(submitted_at, completed_at) IS NOT NULL;
