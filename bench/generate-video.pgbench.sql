-- generate-video's own SQL (src/http/idempotency.ts, src/jobs/generate.ts, src/ledger/ledger.ts,
-- src/jobs/video-jobs.ts), statement for statement, as a pgbench custom script: the database-side
-- floor of one generate request. The bench runs it on its own copy of the schema.
\set n random(0, :users - 1)
SELECT user_id AS uid FROM credit_accounts ORDER BY user_id OFFSET :n LIMIT 1 \gset
SELECT u.id, u.is_guest, u.is_admin, u.banned_at IS NOT NULL AS banned, u.deleted_at IS NOT NULL AS deleted, u.merged_into
  FROM users u LEFT JOIN auth_sessions s ON s.id = NULL WHERE u.id = :uid;
SELECT gen_random_uuid() AS job, gen_random_uuid() AS ikey, gen_random_uuid() AS claim \gset
INSERT INTO idempotency_keys (user_id, key, request_method, request_path, request_fingerprint, locked_at, expires_at, claim_token)
  VALUES (coalesce(user_current_owner(:uid::uuid), :uid::uuid), :ikey, 'POST', '/functions/v1/generate-video', 'fingerprint', now(), now() + make_interval(hours => 24), :claim)
  ON CONFLICT (user_id, key) DO NOTHING RETURNING id AS kid \gset
SELECT user_current_owner(user_id) = user_id AS ok FROM idempotency_keys WHERE id = :kid;
SELECT * FROM models WHERE id = 'simulator-text-to-video';
SELECT balance - held AS available FROM credit_accounts WHERE user_id = user_current_owner(:uid);
BEGIN;
SELECT u.id, u.merged_into, u.deleted_at IS NOT NULL AS closed, a.balance AS bal, a.held AS held
  FROM users u JOIN credit_accounts a ON a.user_id = u.id WHERE u.id = user_current_owner(:uid) FOR KEY SHARE OF u FOR UPDATE OF a \gset
SELECT id, user_id FROM credit_holds WHERE job_id = :job;
INSERT INTO credit_holds (user_id, job_id, amount) VALUES (:uid, :job, 4) RETURNING id AS hold \gset
INSERT INTO ledger_entries (user_id, kind, amount, held_delta, hold_id, job_id, balance_after, held_after)
  VALUES (:uid, 'hold', 0, 4, :hold, :job, :bal, :held + 4) ON CONFLICT DO NOTHING RETURNING id;
UPDATE credit_accounts SET balance = :bal, held = :held + 4, updated_at = now() WHERE user_id = :uid;
INSERT INTO video_jobs (job_id, user_id, model_id, theme_id, prompt, settings, image_url, provider, credits_used, hold_id, deadline_at)
  VALUES (:job, :uid, 'simulator-text-to-video', NULL, 'a lighthouse in a storm, cinematic', '{"duration": 4}', NULL, 'simulator', 4, :hold, now() + make_interval(secs => 900))
  RETURNING created_at;
SELECT graphile_worker.add_job('submit_video_job', json_build_object('jobId', :job::text), run_at := NULL, job_key := 'submit:' || :job::text, max_attempts := 25);
UPDATE idempotency_keys SET response_status = 200, response_body = '{"status": "pending"}', locked_at = NULL, user_id = coalesce(:uid::uuid, user_id)
  WHERE id = :kid AND claim_token = :claim AND response_status IS NULL;
COMMIT;
