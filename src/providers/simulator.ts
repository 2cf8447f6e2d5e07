import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { ProviderError, type CancelAnswer, type ProviderAdapter, type ProviderJobRef, type ProviderStatus, type SubmitInput } from './types.js';

/**
 * The built-in provider for the zero-setup demo and for tests. It behaves like fal's queue
 * (IN_QUEUE → IN_PROGRESS → COMPLETED) and delivers a real small MP4 and JPEG.
 *
 * Stateless by design: the request id encodes when it was submitted and what will happen, so a
 * job survives a kill -9 of our process exactly as it would with a real provider. Prompts can ask
 * for an outcome: "[sim:reject]" → content policy rejection, "[sim:fail]" → provider failure,
 * "[sim:hang]" → never finishes. Otherwise SIMULATOR_FAILURE_RATE decides, deterministically per id.
 */

const ASSETS = fileURLToPath(new URL('../../assets/simulator/', import.meta.url));
type Outcome = 'ok' | 'reject' | 'fail' | 'hang';
const OUTCOME_CODE: Record<Outcome, string> = { ok: 'o', reject: 'r', fail: 'f', hang: 'h' };

export interface SimulatorOptions {
  delayMs: number;
  failureRate: number;
  now?: () => number;
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
    return { providerJobId: `sim_${this.now().toString(36)}_${OUTCOME_CODE[outcome]}_${nonce}` };
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
    return { state: 'succeeded', output: { videoUrl: 'simulator://sample.mp4', thumbnailUrl: 'simulator://sample.jpg' } };
  }

  /** Stateless: a request whose time has passed has finished; one still under way is dropped. */
  async cancel(job: ProviderJobRef): Promise<CancelAnswer> {
    const m = /^sim_([0-9a-z]+)_([orfh])_[0-9a-f]+$/.exec(job.providerJobId);
    if (!m) return 'unknown';
    return m[2] !== 'h' && this.now() - parseInt(m[1]!, 36) >= this.opts.delayMs ? 'already_finished' : 'cancelled';
  }

  async download(url: string, maxBytes: number) {
    const name = /^simulator:\/\/(sample\.(mp4|jpg))$/.exec(url)?.[1];
    if (!name) throw new ProviderError(`refusing to download ${url} from the simulator`, 'ERR_5002', false);
    const bytes = await fs.readFile(ASSETS + name);
    if (bytes.length > maxBytes) throw new ProviderError('result too large', 'ERR_5002', false);
    return { bytes, contentType: name.endsWith('.mp4') ? 'video/mp4' : 'image/jpeg' };
  }
}
