-- The starting catalogue. ON CONFLICT DO NOTHING: admin edits made later are never overwritten.
-- Pricing: 1 credit per second of video for the app's active model, which is what the shipped
-- app shows before it generates (ios-app.md §3: generationCost = duration).
-- Without provider keys, every model is served by the built-in simulator (routing happens at run
-- time); the provider columns say where the model really lives.

INSERT INTO models (id, name, category, description, provider, provider_model_id, pricing_type,
                    cost_per_generation, credits_per_second, required_fields, has_audio,
                    is_active, is_featured, is_available, unavailable_reason, deadline_seconds, sort_order)
VALUES
  ('veo-3.1-text-to-video', 'Veo 3.1', 'text-to-video',
   'Google Veo 3.1: cinematic text-to-video with native audio.',
   'fal', 'fal-ai/veo3.1', 'per_second', NULL, 1,
   '{"requires_prompt":true,"requires_image":false,"requires_settings":true,"settings":{"resolution":{"required":false,"default":"720p","options":["720p","1080p"]},"aspect_ratio":{"required":false,"default":"16:9","options":["16:9","9:16"]},"duration":{"required":false,"default":8,"options":[4,6,8]}}}',
   true, true, true, true, NULL, 900, 10),
  ('veo-3.1-image-to-video', 'Veo 3.1 Image-to-Video', 'image-to-video',
   'Google Veo 3.1: animate a still image into a video with audio.',
   'fal', 'fal-ai/veo3.1/image-to-video', 'per_second', NULL, 1,
   '{"requires_prompt":true,"requires_image":true,"requires_settings":true,"settings":{"resolution":{"required":false,"default":"720p","options":["720p","1080p"]},"aspect_ratio":{"required":false,"default":"auto","options":["auto","16:9","9:16"]},"duration":{"required":false,"default":8,"options":[4,6,8]}}}',
   true, false, true, true, NULL, 900, 20),
  ('kling-2.6-pro-text-to-video', 'Kling 2.6 Pro', 'text-to-video',
   'Kling 2.6 Pro: fluid motion and strong prompt adherence.',
   'fal', 'fal-ai/kling-video/v2.6/pro/text-to-video', 'per_second', NULL, 1,
   '{"requires_prompt":true,"requires_image":false,"requires_settings":true,"settings":{"aspect_ratio":{"required":false,"default":"16:9","options":["16:9","9:16","1:1"]},"duration":{"required":false,"default":5,"options":[5,10]}}}',
   true, false, false, true, NULL, 1200, 30),
  ('kling-2.6-pro-image-to-video', 'Kling 2.6 Pro Image-to-Video', 'image-to-video',
   'Kling 2.6 Pro: bring a photo to life.',
   'fal', 'fal-ai/kling-video/v2.6/pro/image-to-video', 'per_second', NULL, 1,
   '{"requires_prompt":true,"requires_image":true,"requires_settings":true,"settings":{"duration":{"required":false,"default":5,"options":[5,10]}}}',
   true, false, false, true, NULL, 1200, 40),
  ('pika-2.2-text-to-video', 'Pika 2.2', 'text-to-video',
   'Pika 2.2: fast, stylised clips.',
   'fal', 'fal-ai/pika/v2.2/text-to-video', 'per_video', 5, NULL,
   '{"requires_prompt":true,"requires_image":false,"requires_settings":true,"settings":{"resolution":{"required":false,"default":"720p","options":["720p","1080p"]},"aspect_ratio":{"required":false,"default":"16:9","options":["16:9","9:16","1:1","4:5","5:4","3:2","2:3"]},"duration":{"required":false,"default":5,"options":[5,10]}}}',
   false, false, false, true, NULL, 900, 50),
  ('runway-gen4.5', 'Runway Gen-4.5', 'text-to-video',
   'Runway Gen-4.5: high-fidelity text-to-video.',
   'runway', 'gen4.5', 'per_second', NULL, 2,
   '{"requires_prompt":true,"requires_image":false,"requires_settings":true,"settings":{"aspect_ratio":{"required":false,"default":"16:9","options":["16:9","9:16"]},"duration":{"required":false,"default":5,"options":[5,10]}}}',
   false, false, false, true, NULL, 1200, 60),
  -- OpenAI retired Sora 2 on 2026-09-24 (contracts/providers.md §4); kept so old jobs keep their model name.
  ('sora-2-image-to-video', 'Sora 2 Image-to-Video', 'image-to-video',
   'OpenAI Sora 2 model for generating videos from images and prompts',
   'fal', 'fal-ai/sora-2/image-to-video', 'per_second', NULL, 1,
   '{"requires_prompt":true,"requires_image":true,"requires_settings":true,"settings":{"resolution":{"required":false,"default":"auto","options":["auto","720p"]},"aspect_ratio":{"required":false,"default":"auto","options":["auto","9:16","16:9"]},"duration":{"required":false,"default":4,"options":[4,8,12]}}}',
   true, false, false, false, 'Retired upstream on 2026-09-24', 900, 90),
  ('simulator-text-to-video', 'Simulator', 'text-to-video',
   'Built-in simulator: returns a sample clip without calling any provider. For demos and tests.',
   'simulator', 'simulator/text-to-video', 'per_video', 1, NULL,
   '{"requires_prompt":true,"requires_image":false,"requires_settings":true,"settings":{"resolution":{"required":false,"default":"720p","options":["720p"]},"aspect_ratio":{"required":false,"default":"16:9","options":["16:9","9:16"]},"duration":{"required":false,"default":4,"options":[4,8]}}}',
   false, false, false, true, NULL, 300, 100),
  ('simulator-image-to-video', 'Simulator Image-to-Video', 'image-to-video',
   'Built-in simulator for image-to-video flows.',
   'simulator', 'simulator/image-to-video', 'per_video', 1, NULL,
   '{"requires_prompt":true,"requires_image":true,"requires_settings":true,"settings":{"aspect_ratio":{"required":false,"default":"auto","options":["auto","16:9","9:16"]},"duration":{"required":false,"default":4,"options":[4,8]}}}',
   false, false, false, true, NULL, 300, 110)
ON CONFLICT (id) DO NOTHING;

-- The app's five home-screen themes (ios-app.md §3), on the active model's settings.
INSERT INTO themes (id, name, description, prompt, default_settings, model_id, is_featured, is_available)
VALUES
  ('0b0f3c8e-5a1d-4c52-9b1e-1c7e6a2d0001', 'Christmas Magic',
   'Snowy streets, warm lights and a cosy festive glow.',
   'A cosy snow-covered village street at dusk on Christmas Eve, warm golden light spilling from shop windows, garlands and twinkling fairy lights, gentle snowfall, a slow cinematic dolly shot past a decorated tree, soft bokeh, magical festive atmosphere.',
   '{"duration":8,"aspect_ratio":"16:9","resolution":"720p"}', 'veo-3.1-text-to-video', true, true),
  ('0b0f3c8e-5a1d-4c52-9b1e-1c7e6a2d0002', 'Thanksgiving Feast',
   'A golden table, family warmth and autumn colours.',
   'A long rustic wooden table set for a Thanksgiving feast, a roasted turkey at the centre, candles, pumpkins and autumn leaves, steam rising from dishes, warm late-afternoon sunlight through a window, slow overhead camera glide, inviting and joyful.',
   '{"duration":8,"aspect_ratio":"16:9","resolution":"720p"}', 'veo-3.1-text-to-video', true, true),
  ('0b0f3c8e-5a1d-4c52-9b1e-1c7e6a2d0003', 'Halloween Spooky',
   'Fog, jack-o''-lanterns and a haunted night.',
   'A foggy moonlit graveyard on Halloween night, glowing carved jack-o''-lanterns along a crooked path, bare twisted trees, bats crossing a full moon, an old haunted house in the distance, slow creeping camera push-in, eerie and playful mood.',
   '{"duration":8,"aspect_ratio":"16:9","resolution":"720p"}', 'veo-3.1-text-to-video', true, true),
  ('0b0f3c8e-5a1d-4c52-9b1e-1c7e6a2d0004', 'Summer Beach',
   'Turquoise water, palm trees and golden sun.',
   'A tropical beach in summer, turquoise waves rolling onto white sand, palm trees swaying in a light breeze, sunlight sparkling on the water, seagulls overhead, a smooth low tracking shot along the shoreline at golden hour, relaxed and vibrant.',
   '{"duration":8,"aspect_ratio":"16:9","resolution":"720p"}', 'veo-3.1-text-to-video', true, true),
  ('0b0f3c8e-5a1d-4c52-9b1e-1c7e6a2d0005', 'City Nightlife',
   'Neon streets and the pulse of the city after dark.',
   'A bustling city street at night after rain, neon signs reflecting on wet asphalt, people with umbrellas, light trails from passing cars, steam rising from a grate, a smooth handheld tracking shot through the crowd, vibrant cinematic colours.',
   '{"duration":8,"aspect_ratio":"16:9","resolution":"720p"}', 'veo-3.1-text-to-video', true, true)
ON CONFLICT (id) DO NOTHING;
