-- Video generation: jobs, webhook dedupe, storage objects.

CREATE TABLE video_jobs (
  job_id           uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id          uuid NOT NULL REFERENCES users (id),
  model_id         text NOT NULL REFERENCES models (id),
  theme_id         uuid REFERENCES themes (id),
  prompt           text NOT NULL,
  settings         jsonb NOT NULL,
  image_url        text,
  -- Internal states (DESIGN §5); the app sees pending | processing | completed | failed.
  status           text NOT NULL DEFAULT 'queued'
                   CHECK (status IN ('queued', 'submitted', 'processing', 'ingesting', 'completed', 'failed')),
  provider         text NOT NULL,
  provider_job_id  text,
  -- What the provider told us to use for this request (fal: status/response/cancel URLs).
  provider_state   jsonb,
  credits_used     integer NOT NULL CHECK (credits_used > 0),
  hold_id          uuid NOT NULL UNIQUE REFERENCES credit_holds (id),
  video_key        text,
  thumbnail_key    text,
  error_code       text,
  error_message    text,
  attempts         integer NOT NULL DEFAULT 0,
  -- A submit in progress holds this lease, so two workers never submit one job at once.
  submit_lease_until timestamptz,
  deadline_at      timestamptz NOT NULL,
  last_polled_at   timestamptz,
  created_at       timestamptz NOT NULL DEFAULT now(),
  submitted_at     timestamptz,
  completed_at     timestamptz,
  deleted_at       timestamptz,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT terminal_jobs_are_finished CHECK ((status IN ('completed', 'failed')) = (completed_at IS NOT NULL)),
  CONSTRAINT completed_jobs_have_video CHECK (status <> 'completed' OR video_key IS NOT NULL),
  CONSTRAINT failed_jobs_say_why CHECK (status <> 'failed' OR error_code IS NOT NULL)
);
CREATE TRIGGER video_jobs_updated_at BEFORE UPDATE ON video_jobs FOR EACH ROW EXECUTE FUNCTION set_updated_at();
-- History pages: newest first, keyset on (created_at, job_id).
CREATE INDEX video_jobs_history ON video_jobs (user_id, created_at DESC, job_id DESC) WHERE deleted_at IS NULL;
-- The sweeper's view: everything not yet finished, by deadline.
CREATE INDEX video_jobs_unfinished ON video_jobs (deadline_at) WHERE status NOT IN ('completed', 'failed');
CREATE UNIQUE INDEX video_jobs_provider_job ON video_jobs (provider, provider_job_id) WHERE provider_job_id IS NOT NULL;


-- Every provider callback we accepted, once per (provider, event id): a replay changes nothing.
CREATE TABLE webhook_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  provider    text NOT NULL,
  event_id    text NOT NULL,
  job_id      uuid,
  received_at timestamptz NOT NULL DEFAULT now(),
  payload     jsonb NOT NULL,
  outcome     text,
  UNIQUE (provider, event_id)
);

-- Files we keep: the app's input images and the delivered videos and thumbnails.
CREATE TABLE storage_objects (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  bucket       text NOT NULL,
  key          text NOT NULL,
  owner_id     uuid REFERENCES users (id),
  size         bigint NOT NULL CHECK (size >= 0),
  content_type text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  deleted_at   timestamptz,
  UNIQUE (bucket, key)
);
CREATE INDEX storage_objects_owner ON storage_objects (owner_id) WHERE deleted_at IS NULL;

ALTER TABLE video_jobs ENABLE ROW LEVEL SECURITY;
CREATE POLICY video_jobs_read_own ON video_jobs FOR SELECT USING (user_id = auth.uid());
ALTER TABLE storage_objects ENABLE ROW LEVEL SECURITY;
CREATE POLICY storage_objects_read_own ON storage_objects FOR SELECT USING (owner_id = auth.uid());
ALTER TABLE webhook_events ENABLE ROW LEVEL SECURITY;

DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'authenticated') THEN
    GRANT SELECT ON video_jobs, storage_objects TO authenticated;
  END IF;
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'API grants skipped: %', SQLERRM;
END $$;
