import { createBreaker, downloadLimited, parseJson, providerFetch } from './http.js';
import { ProviderError, type CancelAnswer, type ProviderAdapter, type ProviderJobRef, type ProviderStatus, type SubmitInput } from './types.js';

/**
 * Runway tasks API (docs/reference/providers.md §2): POST /v1/text_to_video | /v1/image_to_video → {id},
 * then GET /v1/tasks/{id} (no webhooks; poll no more than every 5 s). FAILED carries a failureCode:
 * SAFETY.* and INPUT_PREPROCESSING.SAFETY.* are content rejections, never retried.
 */

export interface RunwayOptions {
  apiKey: string;
  baseUrl: string;
  resultHosts: string[];
  timeoutMs: number;
}

const API_VERSION = '2024-11-06';

/** Runway takes pixel ratios, not aspect names. */
const RATIOS: Record<string, Record<string, string>> = {
  '720p': { '16:9': '1280:720', '9:16': '720:1280' },
  '1080p': { '16:9': '1920:1080', '9:16': '1080:1920' },
};

export function runwayRatio(aspect = '16:9', resolution = '720p'): string {
  return RATIOS[resolution]?.[aspect] ?? RATIOS['720p']![aspect] ?? '1280:720';
}

export class RunwayProvider implements ProviderAdapter {
  readonly name = 'runway' as const;
  readonly webhooks = false;
  readonly pollIntervalSeconds = 6;
  private readonly breaker = createBreaker();

  constructor(private readonly opts: RunwayOptions) {}

  private call(path: string, init: RequestInit) {
    return providerFetch(
      'runway',
      this.breaker,
      `${this.opts.baseUrl}${path}`,
      {
        ...init,
        headers: { authorization: `Bearer ${this.opts.apiKey}`, 'x-runway-version': API_VERSION, 'content-type': 'application/json', accept: 'application/json' },
      },
      this.opts.timeoutMs,
    );
  }

  async submit(input: SubmitInput) {
    const ratio = runwayRatio(input.settings.aspect_ratio, input.settings.resolution);
    const body = input.imageUrl
      ? { model: input.providerModelId, promptImage: input.imageUrl, promptText: input.prompt, ratio, duration: input.settings.duration }
      : { model: input.providerModelId, promptText: input.prompt, ratio, duration: input.settings.duration };
    const res = await this.call(input.imageUrl ? '/v1/image_to_video' : '/v1/text_to_video', { method: 'POST', body: JSON.stringify(body) });
    const parsed = parseJson('runway', res.text);
    if (res.status >= 400) {
      throw new ProviderError(`runway refused the task (${res.status}): ${String(parsed.error ?? res.text).slice(0, 300)}`, 'ERR_5002', false);
    }
    if (typeof parsed.id !== 'string' || !parsed.id) throw new ProviderError('runway returned no task id', 'ERR_5002', false);
    return { providerJobId: parsed.id };
  }

  async status(job: ProviderJobRef): Promise<ProviderStatus> {
    const res = await this.call(`/v1/tasks/${encodeURIComponent(job.providerJobId)}`, { method: 'GET' });
    if (res.status === 404) return { state: 'failed', code: 'ERR_5002', message: 'runway: the task no longer exists' };
    if (res.status >= 400) throw new ProviderError(`runway task status answered ${res.status}`, 'ERR_5002', false);
    const task = parseJson('runway', res.text);
    switch (task.status) {
      case 'PENDING':
      case 'THROTTLED':
        return { state: 'queued' };
      case 'RUNNING':
        return { state: 'running', progress: typeof task.progress === 'number' ? task.progress : undefined };
      case 'SUCCEEDED': {
        const url = Array.isArray(task.output) ? task.output[0] : undefined;
        if (typeof url !== 'string') return { state: 'failed', code: 'ERR_5002', message: 'runway: SUCCEEDED without output' };
        return { state: 'succeeded', output: { videoUrl: url } };
      }
      case 'FAILED': {
        const code = String(task.failureCode ?? '');
        const safety = code.startsWith('SAFETY') || code.startsWith('INPUT_PREPROCESSING.SAFETY');
        return { state: 'failed', code: safety ? 'ERR_5003' : 'ERR_5002', message: `runway: ${String(task.failure ?? 'failed')}${code ? ` (${code})` : ''}` };
      }
      case 'CANCELLED':
        return { state: 'failed', code: 'ERR_5002', message: 'runway: the task was cancelled' };
      default:
        throw new ProviderError(`runway task has an unknown status: ${String(task.status)}`, 'ERR_5002', false);
    }
  }

  /**
   * DELETE /v1/tasks/{id} cancels a PENDING/THROTTLED/RUNNING task and deletes any other, with the
   * same empty answer either way (docs/reference/providers.md §2), and the task cannot be read afterwards. So the
   * task is read first: one that already ended is not deleted (it is billed whatever we do now).
   */
  async cancel(job: ProviderJobRef): Promise<CancelAnswer> {
    const path = `/v1/tasks/${encodeURIComponent(job.providerJobId)}`;
    try {
      const task = await this.call(path, { method: 'GET' });
      if (task.status === 404) return 'unknown';
      if (task.status >= 400) return 'refused';
      const state = String(parseJson('runway', task.text).status ?? '');
      if (state === 'CANCELLED') return 'cancelled';
      if (!['PENDING', 'THROTTLED', 'RUNNING'].includes(state)) return 'already_finished';
      const res = await this.call(path, { method: 'DELETE' });
      if (res.status === 404) return 'unknown';
      return res.status < 300 ? 'cancelled' : 'refused';
    } catch {
      return 'unknown'; // 5xx, timeout, network, open circuit, a malformed body
    }
  }

  download(url: string, maxBytes: number, toFile: string) {
    return downloadLimited('runway', url, this.opts.resultHosts, maxBytes, Math.max(this.opts.timeoutMs, 60_000), toFile);
  }
}
