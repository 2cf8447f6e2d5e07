-- Retention deletes old sessions (src/jobs/retention.ts); a device token registered in one of them
-- outlives it (the device still belongs to the user), it just no longer names a session.
ALTER TABLE push_tokens DROP CONSTRAINT push_tokens_session_id_fkey;
ALTER TABLE push_tokens ADD CONSTRAINT push_tokens_session_id_fkey
  FOREIGN KEY (session_id) REFERENCES auth_sessions (id) ON DELETE SET NULL;
