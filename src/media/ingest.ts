import fs from 'node:fs/promises';
import path from 'node:path';
import type { Queryable } from '../db/pool.js';
import type { Logger } from '../logger.js';
import type { Download, ProviderAdapter, ProviderOutput } from '../providers/types.js';
import { sniffImageType } from '../storage/image-types.js';
import { saveFile } from '../storage/objects.js';
import { RESULTS_BUCKET, type ObjectStore } from '../storage/types.js';
import { rewriteFaststart } from './faststart.js';
import { checkPaidFor, inspectMp4, MediaProblem, type Mp4Facts, type PaidFor } from './inspect.js';
import { findFfmpeg, makePoster, type Ffmpeg } from './poster.js';

/**
 * The ingest of one delivered result (docs/ARCHITECTURE.md "Ingest"): the video is streamed into
 * a private temporary directory, checked (inspect.ts), moved to faststart if its index is at the
 * end, stored, and given a poster — ffmpeg's frame at ~1 s, else the provider's thumbnail, else
 * none. A file that is not the video paid for throws a MediaProblem carrying what was delivered;
 * the job service fails the job with it. Nothing is ever held whole in memory.
 */

/** What the job records about the stored video. */
export interface StoredVideo {
  facts: Omit<Mp4Facts, 'boxes'>;
  thumbnailKey: string | null;
  posterSource: 'ffmpeg' | 'provider' | null;
}

/** What the provider handed back, kept for operators beside a rejection. */
export interface Delivery extends Partial<Download> {
  url: string;
  /** Its first 256 bytes, printable. */
  start?: string;
}

export class DeliveryRejected extends Error {
  constructor(
    readonly problem: MediaProblem,
    readonly delivery: Delivery,
  ) {
    super(`${problem.reason}: ${problem.message}`);
  }
}

const THUMBNAIL_MAX_BYTES = 10 * 1024 * 1024;

export class MediaIngest {
  private readonly ffmpeg: Promise<Ffmpeg | undefined>;

  constructor(
    private readonly store: ObjectStore,
    private readonly log: Logger,
    private readonly opts: { ffmpegPath: string | undefined; tempDir: string; maxResultBytes: number },
  ) {
    // Looked for once, at start; the start-up line reports what was found (posterMaker()).
    this.ffmpeg = opts.ffmpegPath ? findFfmpeg(opts.ffmpegPath) : Promise.resolve(undefined);
  }

  /** The ffmpeg that makes posters, or undefined (then the provider's thumbnail is kept). */
  posterMaker(): Promise<Ffmpeg | undefined> {
    return this.ffmpeg;
  }

  /** Checks, stores and gives a poster to a delivered video; throws DeliveryRejected for a bad file. */
  async ingest(
    db: Queryable,
    job: { jobId: string; ownerId: string; provider: ProviderAdapter; output: ProviderOutput; paid: PaidFor; videoKey: string; thumbnailKey: string },
  ): Promise<StoredVideo> {
    await fs.mkdir(this.opts.tempDir, { recursive: true });
    const dir = await fs.mkdtemp(path.join(this.opts.tempDir, 'rendio-ingest-'));
    try {
      const delivered = path.join(dir, 'delivered.mp4');
      const delivery: Delivery = { url: job.output.videoUrl };
      Object.assign(delivery, await job.provider.download(job.output.videoUrl, this.opts.maxResultBytes, delivered));
      let facts: Mp4Facts;
      try {
        facts = await inspectMp4(delivered);
        checkPaidFor(facts, job.paid);
      } catch (err) {
        if (err instanceof MediaProblem) throw new DeliveryRejected(err, { ...delivery, start: printable(await startOf(delivered)) });
        throw err;
      }
      let video = delivered;
      if (!facts.faststart) {
        const rewritten = path.join(dir, 'faststart.mp4');
        if (await rewriteFaststart(delivered, rewritten, facts)) {
          video = rewritten;
          facts = { ...facts, faststart: true };
        } else {
          this.log.warn({ jobId: job.jobId }, 'delivered video has its index at the end and could not be rewritten; stored as delivered');
        }
      }
      const { size } = await fs.stat(video);
      await saveFile(this.store, db, { bucket: RESULTS_BUCKET, key: job.videoKey, ownerId: job.ownerId, path: video, size, contentType: 'video/mp4' });
      const poster = await this.poster(db, job, video, facts, dir);
      const { boxes: _boxes, ...recorded } = facts;
      return { facts: recorded, ...poster };
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /** ffmpeg's frame, else the provider's thumbnail, else none: a poster never fails the job. */
  private async poster(
    db: Queryable,
    job: { jobId: string; ownerId: string; provider: ProviderAdapter; output: ProviderOutput; thumbnailKey: string },
    video: string,
    facts: Mp4Facts,
    dir: string,
  ): Promise<Pick<StoredVideo, 'thumbnailKey' | 'posterSource'>> {
    const target = path.join(dir, 'poster.jpg');
    const ffmpeg = await this.ffmpeg;
    if (ffmpeg) {
      try {
        await makePoster(ffmpeg, video, facts.durationSeconds, target);
        const { size } = await fs.stat(target);
        await saveFile(this.store, db, { bucket: RESULTS_BUCKET, key: job.thumbnailKey, ownerId: job.ownerId, path: target, size, contentType: 'image/jpeg' });
        return { thumbnailKey: job.thumbnailKey, posterSource: 'ffmpeg' };
      } catch (err) {
        this.log.warn({ err, jobId: job.jobId }, 'ffmpeg could not make a poster; keeping the provider thumbnail if there is one');
      }
    }
    if (!job.output.thumbnailUrl) return { thumbnailKey: null, posterSource: null };
    try {
      const { sizeBytes } = await job.provider.download(job.output.thumbnailUrl, THUMBNAIL_MAX_BYTES, target);
      // The type is the bytes', never the result host's header.
      const contentType = sniffImageType(await startOf(target)) ?? 'image/jpeg';
      await saveFile(this.store, db, { bucket: RESULTS_BUCKET, key: job.thumbnailKey, ownerId: job.ownerId, path: target, size: sizeBytes, contentType });
      return { thumbnailKey: job.thumbnailKey, posterSource: 'provider' };
    } catch (err) {
      this.log.warn({ err, jobId: job.jobId }, 'thumbnail download failed; completing without one');
      return { thumbnailKey: null, posterSource: null };
    }
  }
}

/** The first bytes of a file. */
async function startOf(file: string): Promise<Buffer> {
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(256);
    const { bytesRead } = await handle.read(head, 0, head.length, 0);
    return head.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}

/** Bytes as an operator can read them (an HTML error page shows as its text). */
function printable(bytes: Buffer): string {
  return bytes.toString('latin1').replace(/[^\x20-\x7e\n]/g, '.');
}
