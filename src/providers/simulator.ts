import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { deliveredVideo, videoFaultIn, VIDEO_FAULTS, type VideoFault } from '../media/synthetic.js';
import { ProviderError, type CancelAnswer, type ProviderAdapter, type ProviderJobRef, type ProviderStatus, type SubmitInput } from './types.js';

/**
 * The built-in provider for the zero-setup demo and for tests. It behaves like fal's queue
 * (IN_QUEUE → IN_PROGRESS → COMPLETED) and delivers a real MP4 of the duration and aspect ratio
 * asked for (made in code, src/media/synthetic.ts) and a JPEG thumbnail.
 *
 * Stateless by design: the request id encodes when it was submitted and what will happen, so a
 * job survives a kill -9 of our process exactly as it would with a real provider; the video's
 * shape travels in the request's state, which we keep with the job. Prompts can ask for an outcome:
 * "[sim:reject]" → content policy rejection, "[sim:fail]" → provider failure, "[sim:hang]" → never
 * finishes, "[sim:video-<fault>]" → a broken delivery (VIDEO_FAULTS: empty, html, truncated, short,
 * aspect, moov-last, codec), "[sim:no-thumbnail]" → a result without a thumbnail. Otherwise
 * SIMULATOR_FAILURE_RATE decides, deterministically per id.
 */

const ASSETS = fileURLToPath(new URL('../../assets/simulator/', import.meta.url));
type Outcome = 'ok' | 'reject' | 'fail' | 'hang';
const OUTCOME_CODE: Record<Outcome, string> = { ok: 'o', reject: 'r', fail: 'f', hang: 'h' };
const VIDEO_URL = /^simulator:\/\/video\.mp4\?(.*)$/;

export interface SimulatorOptions {
  delayMs: number;
  failureRate: number;
  now?: () => number;
}

/** What the request asked for, kept in its state: the video is made to it at download. */
interface SimulatedRequest {
  duration: number;
  aspect_ratio?: string;
  video_fault?: VideoFault;
  no_thumbnail?: boolean;
}

/** The result the simulator reports for a request of this shape: where its video and thumbnail are. */
export function simulatorOutput(duration: number, aspectRatio?: string, fault?: VideoFault): { videoUrl: string; thumbnailUrl: string } {
  const query = new URLSearchParams({ duration: String(duration) });
  if (aspectRatio) query.set('aspect_ratio', aspectRatio);
  if (fault) query.set('fault', fault);
  return { videoUrl: `simulator://video.mp4?${query}`, thumbnailUrl: 'simulator://sample.jpg' };
}

export class SimulatorProvider implements ProviderAdapter {
  readonly name = 'simulator' as const;
  readonly webhooks = false;
  readonly pollIntervalSeconds: number;
  private readonly now: () => number;

  constructor(private readonly opts: SimulatorOptions) {
    this.now = opts.now ?? Date.now;
    this.pollIntervalSeconds = Math.max(1, Math.min(5, Math.round(opts.delayMs / 3000)));
  }

  async submit(input: SubmitInput) {
    const nonce = randomBytes(6).toString('hex');
    let outcome: Outcome = 'ok';
    if (input.prompt.includes('[sim:reject]')) outcome = 'reject';
    else if (input.prompt.includes('[sim:fail]')) outcome = 'fail';
    else if (input.prompt.includes('[sim:hang]')) outcome = 'hang';
    else if (this.opts.failureRate > 0) {
      const roll = createHash('sha256').update(nonce).digest().readUInt32BE(0) / 0xffffffff;
      if (roll < this.opts.failureRate) outcome = 'fail';
    }
    const request: SimulatedRequest = {
      duration: input.settings.duration,
      aspect_ratio: input.settings.aspect_ratio,
      video_fault: videoFaultIn(input.prompt, 'sim'),
      no_thumbnail: input.prompt.includes('[sim:no-thumbnail]') || undefined,
    };
    return { providerJobId: `sim_${this.now().toString(36)}_${OUTCOME_CODE[outcome]}_${nonce}`, state: { ...request } };
  }

  async status(job: ProviderJobRef): Promise<ProviderStatus> {
    const m = /^sim_([0-9a-z]+)_([orfh])_[0-9a-f]+$/.exec(job.providerJobId);
    if (!m) throw new ProviderError(`unknown simulator request ${job.providerJobId}`, 'ERR_5002', false);
    const elapsed = this.now() - parseInt(m[1]!, 36);
    const outcome = m[2];
    if (outcome === 'h' || elapsed < this.opts.delayMs / 3) return { state: 'queued' };
    if (elapsed < this.opts.delayMs) return { state: 'running', progress: elapsed / this.opts.delayMs };
    if (outcome === 'r') return { state: 'failed', code: 'ERR_5003', message: 'content_policy_violation: the prompt was rejected' };
    if (outcome === 'f') return { state: 'failed', code: 'ERR_5002', message: 'simulated provider failure' };
    const request = (job.state ?? {}) as Partial<SimulatedRequest>;
    const output = simulatorOutput(request.duration ?? 4, request.aspect_ratio, request.video_fault);
    return { state: 'succeeded', output: request.no_thumbnail ? { videoUrl: output.videoUrl } : output };
  }

  /** Stateless: a request whose time has passed has finished; one still under way is dropped. */
  async cancel(job: ProviderJobRef): Promise<CancelAnswer> {
    const m = /^sim_([0-9a-z]+)_([orfh])_[0-9a-f]+$/.exec(job.providerJobId);
    if (!m) return 'unknown';
    return m[2] !== 'h' && this.now() - parseInt(m[1]!, 36) >= this.opts.delayMs ? 'already_finished' : 'cancelled';
  }

  async download(url: string, maxBytes: number, toFile: string) {
    let bytes: Buffer;
    let contentType = 'video/mp4';
    const video = VIDEO_URL.exec(url);
    if (video) {
      const q = new URLSearchParams(video[1]);
      const fault = VIDEO_FAULTS.find((f) => f === q.get('fault'));
      bytes = deliveredVideo(Number(q.get('duration') ?? 4), q.get('aspect_ratio') ?? undefined, fault);
      if (fault === 'html') contentType = 'text/html';
    } else if (url === 'simulator://sample.jpg' || url === 'simulator://sample.mp4') {
      // sample.mp4: requests made before the simulator shaped its videos name it in their state.
      bytes = await fs.readFile(ASSETS + url.slice('simulator://'.length));
      contentType = url.endsWith('.jpg') ? 'image/jpeg' : 'video/mp4';
    } else {
      throw new ProviderError(`refusing to download ${url} from the simulator`, 'ERR_5002', false);
    }
    if (bytes.length > maxBytes) throw new ProviderError('result too large', 'ERR_5002', false);
    await fs.writeFile(toFile, bytes);
    return { sizeBytes: bytes.length, contentType };
  }
}
