import { randomUUID } from 'node:crypto';
import { deliveredVideo, videoFaultIn } from '../../src/media/synthetic.js';
import { FakeHttpServer, type FakeRequest, type FakeResponse } from './http.js';

/**
 * A faithful local fake of Runway's tasks API (docs/reference/providers.md §2): Bearer key_… and
 * X-Runway-Version required, per-model ratio/duration checks with 400 {error}, PENDING → RUNNING
 * (progress) → SUCCEEDED (output[] on its own host) | FAILED (failure, failureCode), DELETE
 * cancels an unfinished task (not billed) or deletes a finished one (billed), then 404s. The prompt decides: [runway:safety], [runway:fail], [runway:hang].
 * The output is an MP4 of the task's duration and ratio; [runway:video-<fault>] (VIDEO_FAULTS in
 * src/media/synthetic.ts) serves it broken.
 */

/** Runway's pixel ratio ("1280:720") as the aspect name it stands for ("16:9"). */
function aspectOf(ratio: unknown): string | undefined {
  const m = /^(\d+):(\d+)$/.exec(String(ratio ?? ''));
  if (!m) return undefined;
  const gcd = (a: number, b: number): number => (b === 0 ? a : gcd(b, a % b));
  const [w, h] = [Number(m[1]), Number(m[2])];
  return `${w / gcd(w, h)}:${h / gcd(w, h)}`;
}
const GEN45_RATIOS = ['1280:720', '720:1280'];

interface Task {
  id: string;
  body: Record<string, unknown>;
  createdAt: number;
  deleted: boolean;
  /** DELETE came while it was still PENDING/RUNNING: cancelled, never finishes, not billed. */
  cancelled: boolean;
}

export class FakeRunway {
  readonly apiKey = `key_${'a'.repeat(128)}`;
  readonly server: FakeHttpServer;
  readonly tasks = new Map<string, Task>();
  timing = { pendingMs: 50, runningMs: 150 };

  constructor() {
    this.server = new FakeHttpServer((req) => this.handle(req));
  }

  async start() {
    await this.server.start();
    return this;
  }

  stop() {
    return this.server.stop();
  }

  env(): Record<string, string> {
    return { RUNWAY_API_KEY: this.apiKey, RUNWAY_BASE_URL: this.server.url, RUNWAY_RESULT_HOSTS: new URL(this.server.url).host, PROVIDER_TIMEOUT_MS: '2000' };
  }

  private finished(task: Task): boolean {
    return !String(task.body.promptText ?? '').includes('[runway:hang]') && Date.now() - task.createdAt >= this.timing.pendingMs + this.timing.runningMs;
  }

  /** Tasks Runway would bill: those that ran to SUCCEEDED before any DELETE (a deleted finished task stays billed). */
  billedTasks(): Task[] {
    return [...this.tasks.values()].filter((t) => !t.cancelled && this.finished(t) && !/\[runway:(safety|fail)\]/.test(String(t.body.promptText ?? '')));
  }

  private json(status: number, body: unknown): FakeResponse {
    return { status, body: JSON.stringify(body), headers: { 'content-type': 'application/json' } };
  }

  private handle(req: FakeRequest): FakeResponse {
    const url = new URL(req.path, this.server.url);
    const file = /^\/files\/([\w-]+)\.mp4$/.exec(url.pathname);
    if (file) {
      const task = this.tasks.get(file[1]!);
      if (!task) return { status: 404, body: 'not found', headers: { 'content-type': 'text/plain' } };
      const video = deliveredVideo(Number(task.body.duration ?? 5), aspectOf(task.body.ratio), videoFaultIn(String(task.body.promptText ?? ''), 'runway'));
      return { status: 200, body: video as unknown as string, headers: { 'content-type': 'video/mp4' } };
    }
    if (req.headers.authorization !== `Bearer ${this.apiKey}`) return this.json(401, { error: 'Unauthorized' });
    if (req.headers['x-runway-version'] !== '2024-11-06') return this.json(400, { error: 'X-Runway-Version header is required' });

    if (req.method === 'POST' && (url.pathname === '/v1/text_to_video' || url.pathname === '/v1/image_to_video')) {
      let body: Record<string, unknown>;
      try {
        body = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        return this.json(400, { error: 'Invalid JSON' });
      }
      if (body.model === 'gen4.5') {
        if (!GEN45_RATIOS.includes(String(body.ratio))) return this.json(400, { error: `ratio must be one of ${GEN45_RATIOS.join(', ')}` });
        if (!Number.isInteger(body.duration) || (body.duration as number) < 2 || (body.duration as number) > 10) return this.json(400, { error: 'duration must be an integer from 2 to 10' });
      }
      if (url.pathname === '/v1/image_to_video' && typeof body.promptImage !== 'string') return this.json(400, { error: 'promptImage is required' });
      const id = randomUUID();
      this.tasks.set(id, { id, body, createdAt: Date.now(), deleted: false, cancelled: false });
      return this.json(200, { id });
    }

    const m = /^\/v1\/tasks\/([\w-]+)$/.exec(url.pathname);
    if (m) {
      const task = this.tasks.get(m[1]!);
      if (!task || task.deleted) return this.json(404, { error: 'Task not found' });
      if (req.method === 'DELETE') {
        // docs/reference/providers.md §2: cancels a PENDING/THROTTLED/RUNNING task, deletes any other; the same empty answer either way.
        task.cancelled = !this.finished(task);
        task.deleted = true;
        return { status: 204 };
      }
      const prompt = String(task.body.promptText ?? '');
      const age = Date.now() - task.createdAt;
      const base = { id: task.id, createdAt: new Date(task.createdAt).toISOString() };
      if (prompt.includes('[runway:hang]') || age < this.timing.pendingMs) return this.json(200, { ...base, status: 'PENDING' });
      if (age < this.timing.pendingMs + this.timing.runningMs) return this.json(200, { ...base, status: 'RUNNING', progress: age / (this.timing.pendingMs + this.timing.runningMs) });
      if (prompt.includes('[runway:safety]')) return this.json(200, { ...base, status: 'FAILED', failure: 'The prompt was flagged by moderation', failureCode: 'SAFETY.INPUT.TEXT' });
      if (prompt.includes('[runway:fail]')) return this.json(200, { ...base, status: 'FAILED', failure: 'An internal error occurred', failureCode: 'INTERNAL.BAD_OUTPUT.CODE01' });
      return this.json(200, { ...base, status: 'SUCCEEDED', output: [`${this.server.url}/files/${task.id}.mp4`] });
    }
    return this.json(404, { error: 'Not found' });
  }
}
