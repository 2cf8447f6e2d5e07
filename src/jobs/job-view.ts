import type { JobViewRow } from '../db/queries/video-jobs.js';
import type { Services } from '../services.js';
import { RESULTS_BUCKET } from '../storage/types.js';

/** The app knows four states (docs/reference/ios-app.md §2.11, §2.13); anything else would fail its decoder. */
export const PUBLIC_STATUS = { queued: 'pending', submitted: 'pending', processing: 'processing', ingesting: 'processing', completed: 'completed', failed: 'failed' } as const;
export type PublicStatus = (typeof PUBLIC_STATUS)[keyof typeof PUBLIC_STATUS];

/** routes/videos.ts publishes it as the VideoJob schema, against which zod-openapi checks what its handlers answer. */
export type JobView = {
  job_id: string;
  status: PublicStatus;
  prompt: string;
  model_name: string;
  credits_used: number;
  video_url: string | null;
  thumbnail_url: string | null;
  error_code: string | null;
  error_message: string | null;
  created_at: string;
};

/** A job past VIDEO_RETENTION_DAYS has no files any more: listed, without URLs. */
async function fileUrls(s: Pick<Services, 'store' | 'config'>, job: JobViewRow) {
  const sign = (key: string | null) => (key && !job.expired_at ? s.store.signedUrl(RESULTS_BUCKET, key, s.config.signedUrlTtlSeconds) : null);
  return { video_url: await sign(job.video_key), thumbnail_url: await sign(job.thumbnail_key) };
}

/** A job as its owner sees it (get-video-status, get-video-jobs, video-events, Realtime records). */
export async function jobView(s: Pick<Services, 'store' | 'config'>, job: JobViewRow): Promise<JobView> {
  return {
    job_id: job.job_id,
    status: PUBLIC_STATUS[job.status],
    prompt: job.prompt,
    model_name: job.model_name,
    credits_used: job.credits_used,
    ...(await fileUrls(s, job)),
    error_code: job.error_code,
    error_message: job.error_message,
    created_at: job.created_at,
  };
}

/** What ingest found in a completed job's video (history and admin); null before completion or for jobs from before the checks. */
export type MediaView = { duration_seconds: number; width: number; height: number; codec: string; size_bytes: number } | null;

export function mediaView(job: JobViewRow): MediaView {
  if (job.media_duration_seconds === null || job.media_width === null || job.media_height === null || job.media_codec === null || job.media_size_bytes === null) return null;
  return {
    duration_seconds: job.media_duration_seconds,
    width: job.media_width,
    height: job.media_height,
    codec: job.media_codec,
    size_bytes: Number(job.media_size_bytes),
  };
}
