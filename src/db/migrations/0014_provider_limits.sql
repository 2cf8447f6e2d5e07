-- Provider limits, checked before any money moves (issue 15). Each model carries what its
-- provider accepts (contracts/providers.md), so generate-video refuses with a 400 what the
-- provider would refuse after the hold (a failed job for something that was a bad request):
--   prompt_max_length  the prompt's length in UTF-16 code units (what JavaScript's length counts)
--   durations          the seconds the provider takes
--   aspect_ratios      the aspect names we may send (the adapter maps them, e.g. Runway's 1280:720)
--   resolutions        the resolution names we may send
--   image              "required" or "unsupported"
-- A key that is absent means no limit beyond the model's own options.
ALTER TABLE models ADD COLUMN provider_limits jsonb NOT NULL DEFAULT '{}'::jsonb
  CHECK (jsonb_typeof(provider_limits) = 'object');

UPDATE models SET provider_limits = v.limits::jsonb
FROM (VALUES
  ('veo-3.1-text-to-video',
   '{"durations":[4,6,8],"aspect_ratios":["16:9","9:16"],"resolutions":["720p","1080p","4k"],"image":"unsupported"}'),
  ('veo-3.1-image-to-video',
   '{"durations":[4,6,8],"aspect_ratios":["auto","16:9","9:16"],"resolutions":["720p","1080p","4k"],"image":"required"}'),
  ('kling-2.6-pro-text-to-video',
   '{"durations":[5,10],"aspect_ratios":["16:9","9:16","1:1"],"image":"unsupported"}'),
  ('kling-2.6-pro-image-to-video',
   '{"durations":[5,10],"image":"required"}'),
  ('pika-2.2-text-to-video',
   '{"durations":[5,10],"aspect_ratios":["16:9","9:16","1:1","4:5","5:4","3:2","2:3"],"resolutions":["720p","1080p"],"image":"unsupported"}'),
  -- Runway's SDK: promptText at most 1000 UTF-16 code units; gen4.5 takes duration 2-10 and
  -- ratio 1280:720 | 720:1280 only (no resolution setting).
  ('runway-gen4.5',
   '{"prompt_max_length":1000,"durations":[2,3,4,5,6,7,8,9,10],"aspect_ratios":["16:9","9:16"],"image":"unsupported"}'),
  ('sora-2-image-to-video',
   '{"durations":[4,8,12],"aspect_ratios":["auto","9:16","16:9"],"resolutions":["auto","720p"],"image":"required"}')
) AS v (id, limits)
WHERE models.id = v.id;

-- The provider's own words on a failure, for operators only. error_message is what users see:
-- our localized text for the failure's code (content policy, timeout, provider unavailable).
ALTER TABLE video_jobs ADD COLUMN provider_error text;
