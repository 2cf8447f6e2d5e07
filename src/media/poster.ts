import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

/**
 * Posters (the history grid's tiles) are made with ffmpeg when the machine has it: one frame about
 * a second in, scaled to at most 480 px wide, as a JPEG of a few tens of KB. ffmpeg is found once
 * at start (`findFfmpeg`); without it, ingest keeps the provider's thumbnail when there is one.
 */

const run = promisify(execFile);

export interface Ffmpeg {
  path: string;
  /** The first line of `ffmpeg -version`, for the start-up log. */
  version: string;
}

/** The ffmpeg at path, or undefined when it is missing or does not run. */
export async function findFfmpeg(path: string): Promise<Ffmpeg | undefined> {
  try {
    const { stdout } = await run(path, ['-hide_banner', '-version'], { timeout: 10_000 });
    return { path, version: stdout.split('\n')[0]?.trim() ?? 'ffmpeg' };
  } catch {
    return undefined;
  }
}

/** Writes a JPEG poster of the video to target: the frame at ~1 s (the middle of a shorter clip). */
export async function makePoster(ffmpeg: Ffmpeg, video: string, durationSeconds: number, target: string): Promise<void> {
  const at = Math.min(1, durationSeconds / 2).toFixed(3);
  await run(
    ffmpeg.path,
    ['-hide_banner', '-loglevel', 'error', '-nostdin', '-y', '-ss', at, '-i', video, '-frames:v', '1', '-vf', "scale='min(480,iw)':-2", '-q:v', '5', '-f', 'image2', '-c:v', 'mjpeg', target],
    { timeout: 60_000 },
  );
}
