-- Issue 14 (reliability).

-- When a job may next be tried after a retryable provider failure (backoff, Retry-After, an open
-- circuit). The sweep and a lease takeover never run a job before it.
ALTER TABLE video_jobs ADD COLUMN next_attempt_at timestamptz;

-- Every submission of a job to its provider, one row per submit attempt, written BEFORE the call.
-- The provider is told (webhook URL) the job and attempt, so a request whose answer we never got
-- (timeout after the provider accepted it) can be recognised when its callback arrives: adopted
-- if it reports first, cancelled otherwise, instead of billing us twice for nothing.
CREATE TABLE provider_submissions (
  job_id          uuid NOT NULL REFERENCES video_jobs (job_id) ON DELETE CASCADE,
  attempt         integer NOT NULL,
  provider        text NOT NULL,
  provider_job_id text,
  -- sent: awaiting the answer (or lost it); accepted: the job's request; adopted: an orphan that
  -- became the job's request; cancelled: a redundant request we cancelled at the provider.
  outcome         text NOT NULL DEFAULT 'sent' CHECK (outcome IN ('sent', 'accepted', 'adopted', 'cancelled')),
  created_at      timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (job_id, attempt)
);
CREATE UNIQUE INDEX provider_submissions_request ON provider_submissions (provider, provider_job_id) WHERE provider_job_id IS NOT NULL;
ALTER TABLE provider_submissions ENABLE ROW LEVEL SECURITY;

-- Live worker processes (graphile-worker pool ids). A pool whose beat stopped is dead: another
-- worker force-unlocks its queue rows at once instead of after graphile-worker's 4 hours.
CREATE TABLE worker_heartbeats (
  pool_id    text PRIMARY KEY,
  host       text NOT NULL,
  pid        integer NOT NULL,
  started_at timestamptz NOT NULL DEFAULT now(),
  beat_at    timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE worker_heartbeats ENABLE ROW LEVEL SECURITY;
