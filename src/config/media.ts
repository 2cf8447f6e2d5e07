import os from 'node:os';
import { z } from 'zod';

/** Checking delivered videos and making their posters (docs/ARCHITECTURE.md "Ingest"). */
export const mediaEnv = z.object({
  /** The ffmpeg that makes posters: a path, or a name looked up on PATH; "off" makes none (the provider's thumbnail is kept). */
  FFMPEG_PATH: z.string().default('ffmpeg'),
  /** Where a delivered video is downloaded, checked and rewritten before it is stored (needs room for two copies of the largest result). */
  MEDIA_TEMP_DIR: z.string().optional(),
});
type MediaEnv = z.infer<typeof mediaEnv>;

export interface MediaConfig {
  /** undefined: posters off. */
  ffmpegPath: string | undefined;
  tempDir: string;
}

export interface MediaSection {
  media: MediaConfig;
}

export function mediaSection(e: MediaEnv): MediaSection {
  return { media: { ffmpegPath: e.FFMPEG_PATH === 'off' ? undefined : e.FFMPEG_PATH, tempDir: e.MEDIA_TEMP_DIR ?? os.tmpdir() } };
}
