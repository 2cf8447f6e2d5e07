import { createHash, generateKeyPairSync, randomUUID, sign, type KeyObject } from 'node:crypto';
import { deliveredVideo, videoFaultIn } from '../../src/media/synthetic.js';
import { FakeHttpServer, type FakeRequest, type FakeResponse } from './http.js';

/**
 * A faithful local fake of fal.ai's queue API (docs/reference/providers.md §1): submit at any depth of
 * endpoint id, status/result/cancel under /{owner}/{alias}/requests/{id}, COMPLETED for success
 * and failure alike, 422 {detail:[{type:"content_policy_violation"}]}, infrastructure errors with
 * X-Fal-Error-Type, result files on its own host, Ed25519-signed webhooks and a JWKS with rotation.
 * The result is an MP4 of the duration and aspect ratio asked for; [fal:video-<fault>] (VIDEO_FAULTS in
 * src/media/synthetic.ts: empty, html, truncated, short, aspect, moov-last, codec) serves it broken.
 * The prompt decides the outcome: [fal:reject], [fal:error], [fal:hang], [fal:garbage-result], and
 * [fal:payload-error] (succeeds, but the webhook says status OK with payload null and a
 * payload_error, as fal does when the result cannot be serialised into it; the queue API still
 * serves the result). loseResponses(): the next submits create their request and then lose the
 * answer (a timeout after fal accepted it); holdNextAnswer(): the next submit creates its request
 * and answers only when the test says (fal slow to answer while the request runs, and may call back
 * first); finish(id): that request is done now; crash(id): it ends in a runner failure whatever its
 * prompt. Cancel answers 202 CANCELLATION_REQUESTED before the request completed (it then stops
 * where it was) and 400 ALREADY_COMPLETED after; billedRequests() is what fal would charge for.
 */


interface FakeRequestState {
  id: string;
  endpoint: string;
  ownerAlias: string;
  input: Record<string, unknown>;
  webhook: string | null;
  createdAt: number;
  cancelled: boolean;
  /** Ends in a runner failure (crash()), whatever the prompt says. */
  crashed?: boolean;
  /** When a cancel was accepted: the request stops where it was (queued: never runs; running: told to stop, and this fake's model does). */
  cancelledAt?: number;
}

export class FakeFal {
  readonly apiKey = 'fal-test-key';
  readonly userId = 'fal-user-123';
  readonly server: FakeHttpServer;
  readonly requests = new Map<string, FakeRequestState>();
  /** ms in queue, then ms in progress */
  timing = { queuedMs: 50, runningMs: 150 };
  private signingKeys: { privateKey: KeyObject; x: string }[] = [];
  /** Submits whose request is created but whose answer is lost: how many more, and how. */
  private lostSubmits = { times: 0, mode: 'reset' as 'hang' | 'reset' };

  /** The next submit's answer, held until released (holdNextAnswer). */
  private heldAnswer: { created: (id: string) => void; released: Promise<void> } | undefined;

  /**
   * The next submit creates its request at once (it runs, finishes and can be called back for)
   * but its answer is sent only on release(): `created` resolves with the request's id.
   */
  holdNextAnswer(): { created: Promise<string>; release: () => void } {
    let created!: (id: string) => void;
    let release!: () => void;
    const createdP = new Promise<string>((resolve) => (created = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.heldAnswer = { created, released };
    return { created: createdP, release };
  }

  /** This request's model is done now, whatever `timing` says (one quick generation beside slow ones). */
  finish(requestId: string): void {
    this.requests.get(requestId)!.createdAt = Date.now() - this.timing.queuedMs - this.timing.runningMs;
  }

  /** This request's runner fails (fal's COMPLETED with an error, an ERROR webhook): a transient failure, not the prompt's. */
  crash(requestId: string): void {
    this.requests.get(requestId)!.crashed = true;
  }

  /** The next `times` submits create their request, then never answer ('hang') or reset the connection. */
  loseResponses(times: number, mode: 'hang' | 'reset' = 'reset'): void {
    this.lostSubmits = { times, mode };
  }

  constructor() {
    this.server = new FakeHttpServer((req) => this.handle(req));
    this.rotateKey();
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  stop() {
    return this.server.stop();
  }

  get url() {
    return this.server.url;
  }

  /** Server env pointing the fal adapter here. */
  env(): Record<string, string> {
    return {
      FAL_KEY: this.apiKey,
      FAL_QUEUE_URL: this.url,
      FAL_JWKS_URL: `${this.url}/.well-known/jwks.json`,
      FAL_RESULT_HOSTS: new URL(this.url).host,
      FAL_WEBHOOK_USER_ID: this.userId,
      PROVIDER_TIMEOUT_MS: '2000',
    };
  }

  /** Adds a new signing key (fal rotating); old keys stay in the JWKS unless dropOld. */
  rotateKey(dropOld = false): void {
    const { privateKey, publicKey } = generateKeyPairSync('ed25519');
    const x = (publicKey.export({ format: 'jwk' }) as { x: string }).x;
    this.signingKeys = dropOld ? [{ privateKey, x }] : [...this.signingKeys, { privateKey, x }];
  }

  private outcome(r: FakeRequestState): 'ok' | 'payload-error' | 'reject' | 'error' | 'hang' | 'garbage' {
    if (r.crashed) return 'error';
    const p = String(r.input.prompt ?? '');
    if (p.includes('[fal:payload-error]')) return 'payload-error';
    if (p.includes('[fal:reject]')) return 'reject';
    if (p.includes('[fal:error]')) return 'error';
    if (p.includes('[fal:hang]')) return 'hang';
    if (p.includes('[fal:garbage-result]')) return 'garbage';
    return 'ok';
  }

  private phase(r: FakeRequestState): 'IN_QUEUE' | 'IN_PROGRESS' | 'COMPLETED' {
    const age = (r.cancelledAt ?? Date.now()) - r.createdAt;
    if (this.outcome(r) === 'hang' || age < this.timing.queuedMs) return 'IN_QUEUE';
    if (age < this.timing.queuedMs + this.timing.runningMs) return 'IN_PROGRESS';
    return 'COMPLETED';
  }

  /**
   * Requests fal would bill: those that ran to a result (not the cancelled ones, nor the failed).
   * The ground truth our provider_submissions.billed is checked against.
   */
  billedRequests(): FakeRequestState[] {
    return [...this.requests.values()].filter((r) => !r.cancelledAt && this.phase(r) === 'COMPLETED' && ['ok', 'payload-error', 'garbage'].includes(this.outcome(r)));
  }

  /** The body and headers fal would POST to the webhook URL for this request (optionally tampered). */
  webhookFor(
    requestId: string,
    opts: { timestamp?: number; key?: KeyObject; body?: string; userId?: string } = {},
  ): { body: string; headers: Record<string, string> } {
    const r = this.requests.get(requestId);
    const outcome = r ? this.outcome(r) : 'ok';
    const body =
      opts.body ??
      JSON.stringify(
        outcome === 'ok'
          ? { request_id: requestId, gateway_request_id: requestId, status: 'OK', payload: this.resultBody(requestId) }
          : r?.crashed
          ? { request_id: requestId, gateway_request_id: requestId, status: 'ERROR', error: 'Invalid status code: 500', payload: { detail: 'Runner crashed' } }
          : outcome === 'payload-error'
          ? { request_id: requestId, gateway_request_id: requestId, status: 'OK', payload: null, payload_error: 'Failed to serialize the payload: response is not JSON serializable' }
          : {
              request_id: requestId,
              gateway_request_id: requestId,
              status: 'ERROR',
              error: 'Invalid status code: 422',
              payload: { detail: [{ loc: ['body', 'prompt'], msg: 'Prompt flagged by content checker', type: 'content_policy_violation' }] },
            },
      );
    const timestamp = String(opts.timestamp ?? Math.floor(Date.now() / 1000));
    const userId = opts.userId ?? this.userId;
    const message = `${requestId}\n${userId}\n${timestamp}\n${createHash('sha256').update(body).digest('hex')}`;
    const key = opts.key ?? this.signingKeys.at(-1)!.privateKey;
    return {
      body,
      headers: {
        'content-type': 'application/json',
        'x-fal-webhook-request-id': requestId,
        'x-fal-webhook-user-id': userId,
        'x-fal-webhook-timestamp': timestamp,
        'x-fal-webhook-signature': sign(null, Buffer.from(message), key).toString('hex'),
      },
    };
  }

  /** The callback fal would send for this request, as a path (with query) on the webhook URL's host and its RequestInit. */
  callback(requestId: string): { path: string; init: RequestInit } {
    const hook = this.webhookFor(requestId);
    const url = new URL(this.requests.get(requestId)!.webhook!);
    return { path: url.pathname + url.search, init: { method: 'POST', body: hook.body, headers: hook.headers } };
  }

  private resultBody(id: string) {
    return { video: { url: `${this.url}/files/${id}.mp4`, content_type: 'video/mp4', file_name: `${id}.mp4`, file_size: this.video(id).length } };
  }

  /** The request's video: as long and as shaped as it asked (fal takes "8s" or "5"), broken if its prompt says so. */
  private video(id: string): Buffer {
    const input = this.requests.get(id)?.input ?? {};
    const aspect = typeof input.aspect_ratio === 'string' ? input.aspect_ratio : undefined;
    return deliveredVideo(parseInt(String(input.duration ?? '5'), 10) || 5, aspect, videoFaultIn(String(input.prompt ?? ''), 'fal'));
  }

  private json(status: number, body: unknown, headers: Record<string, string> = {}): FakeResponse {
    return { status, body: JSON.stringify(body), headers: { 'content-type': 'application/json', ...headers } };
  }

  private async handle(req: FakeRequest): Promise<FakeResponse> {
    const url = new URL(req.path, this.url);
    if (url.pathname === '/.well-known/jwks.json') {
      return this.json(200, { keys: this.signingKeys.map((k) => ({ kty: 'OKP', crv: 'Ed25519', x: k.x, kid: k.x.slice(0, 8) })) });
    }
    const file = /^\/files\/([\w-]+)\.mp4$/.exec(url.pathname);
    if (file) return { status: 200, body: this.video(file[1]!) as unknown as string, headers: { 'content-type': 'video/mp4' } };
    if (req.headers.authorization !== `Key ${this.apiKey}`) return this.json(401, { detail: 'Unauthorized' });

    const m = /^\/([^/]+)\/([^/]+)\/requests\/([\w-]+)(\/status|\/cancel)?$/.exec(url.pathname);
    if (m) {
      const r = this.requests.get(m[3]!);
      if (!r || r.ownerAlias !== `${m[1]}/${m[2]}`) return this.json(404, { detail: 'Request not found' });
      const phase = this.phase(r);
      if (m[4] === '/status' && req.method === 'GET') {
        const base = { request_id: r.id, response_url: `${this.url}/${r.ownerAlias}/requests/${r.id}`, status_url: `${this.url}/${r.ownerAlias}/requests/${r.id}/status`, cancel_url: `${this.url}/${r.ownerAlias}/requests/${r.id}/cancel`, logs: [] };
        if (phase === 'IN_QUEUE') return this.json(200, { ...base, status: 'IN_QUEUE', queue_position: 1 });
        if (phase === 'IN_PROGRESS') return this.json(200, { ...base, status: 'IN_PROGRESS' });
        // What a cancelled request shows is unconfirmed (docs/reference/providers.md §1); this fake says COMPLETED with an error.
        if (r.cancelledAt) return this.json(200, { ...base, status: 'COMPLETED', metrics: {}, error: 'Request was cancelled', error_type: 'request_cancelled' });
        const outcome = this.outcome(r);
        if (outcome === 'error') return this.json(200, { ...base, status: 'COMPLETED', metrics: {}, error: 'Runner crashed', error_type: 'runner_scheduling_failure' });
        return this.json(200, { ...base, status: 'COMPLETED', metrics: { inference_time: 1.2 } });
      }
      if (m[4] === '/cancel' && req.method === 'PUT') {
        // docs/reference/providers.md §1: 202 CANCELLATION_REQUESTED while queued or running, 400 ALREADY_COMPLETED once processed.
        if (phase === 'COMPLETED') return this.json(400, { status: 'ALREADY_COMPLETED' });
        r.cancelled = true;
        r.cancelledAt ??= Date.now();
        return this.json(202, { status: 'CANCELLATION_REQUESTED' });
      }
      if (!m[4] && req.method === 'GET') {
        if (phase !== 'COMPLETED') return this.json(400, { detail: 'Request is still in progress' });
        if (r.cancelledAt) return this.json(400, { detail: 'Request was cancelled' });
        const outcome = this.outcome(r);
        if (outcome === 'reject') return this.json(422, { detail: [{ loc: ['body', 'prompt'], msg: 'Prompt flagged by content checker', type: 'content_policy_violation' }] });
        if (outcome === 'error') return this.json(500, { detail: 'Runner crashed', error_type: 'runner_scheduling_failure' }, { 'x-fal-error-type': 'runner_scheduling_failure' });
        if (outcome === 'garbage') return { status: 200, body: '<html>gateway hiccup</html>', headers: { 'content-type': 'text/html' } };
        return this.json(200, this.resultBody(r.id), { 'x-fal-request-id': r.id });
      }
      return this.json(405, { detail: 'Method not allowed' });
    }

    if (req.method === 'POST') {
      const endpoint = url.pathname.slice(1);
      const [owner, alias] = endpoint.split('/');
      if (!owner || !alias) return this.json(404, { detail: 'Application not found' });
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(req.body) as Record<string, unknown>;
      } catch {
        return this.json(422, { detail: [{ loc: ['body'], msg: 'Input should be a valid dictionary', type: 'dict_type' }] });
      }
      if (typeof input.prompt !== 'string') return this.json(422, { detail: [{ loc: ['body', 'prompt'], msg: 'Field required', type: 'missing' }] });
      const id = randomUUID();
      const ownerAlias = `${owner}/${alias}`;
      this.requests.set(id, { id, endpoint, ownerAlias, input, webhook: url.searchParams.get('fal_webhook'), createdAt: Date.now(), cancelled: false });
      const base = `${this.url}/${ownerAlias}/requests/${id}`;
      if (this.lostSubmits.times > 0) {
        this.lostSubmits.times--;
        return { status: 200, lost: this.lostSubmits.mode };
      }
      const held = this.heldAnswer;
      if (held) {
        this.heldAnswer = undefined;
        held.created(id);
        await held.released;
      }
      return this.json(200, { request_id: id, gateway_request_id: id, status: 'IN_QUEUE', queue_position: 0, status_url: `${base}/status`, response_url: base, cancel_url: `${base}/cancel` });
    }
    return this.json(404, { detail: 'Not found' });
  }
}
