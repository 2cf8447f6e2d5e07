-- What ingest found in the delivered video (src/media/inspect.ts), recorded with the completed
-- job: the history and the admin job page show it. poster_source says where the thumbnail came
-- from: ffmpeg (a frame of the video) or the provider's own thumbnail. media_rejection keeps, for
-- operators, what a provider delivered that failed the checks (reason, detail, URL, size, the type
-- its host claimed, the first bytes), beside the job's provider_error.
ALTER TABLE video_jobs
  ADD COLUMN media_duration_seconds double precision CHECK (media_duration_seconds > 0),
  ADD COLUMN media_width integer CHECK (media_width >= 0),
  ADD COLUMN media_height integer CHECK (media_height >= 0),
  ADD COLUMN media_codec text CHECK (length(media_codec) <= 64),
  ADD COLUMN media_size_bytes bigint CHECK (media_size_bytes >= 0),
  ADD COLUMN poster_source text CHECK (poster_source IN ('ffmpeg', 'provider')),
  ADD COLUMN media_rejection jsonb;
