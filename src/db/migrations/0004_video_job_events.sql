-- Every job state change is announced on channel video_job_events (delivered on commit only), so
-- an SSE stream in any API process hears what a worker in any other process did.
CREATE FUNCTION notify_video_job_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('video_job_events', json_build_object('job_id', NEW.job_id, 'status', NEW.status)::text);
  RETURN NEW;
END $$;

CREATE TRIGGER video_jobs_notify AFTER UPDATE OF status, deleted_at ON video_jobs
  FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.deleted_at IS DISTINCT FROM NEW.deleted_at)
  EXECUTE FUNCTION notify_video_job_event();
