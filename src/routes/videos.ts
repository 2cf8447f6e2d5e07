import { createRoute, z } from '@hono/zod-openapi';
import { streamSSE } from 'hono/streaming';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { MiddlewareHandler } from 'hono';
import { OWN_JOBS_TABLE, findJobView, findJobViewWithAuth, listJobs, queryOwnJobs, type JobViewRow } from '../db/queries/video-jobs.js';
import { ApiError, invalid, notFound } from '../http/api-error.js';
import { authOptions, bearerToken, isLegacyAnonCaller, requireUser, userFromAuthState, verifiedUser, type ClaimedUserId } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import { idempotency, type IdempotentEnv } from '../http/idempotency.js';
import { rateLimitHeaders } from '../errors/rate-limited.js';
import { jobView, mediaView } from '../jobs/job-view.js';
import { streamJobStatus } from '../jobs/status-stream.js';
import type { Services } from '../services.js';
import { refuseOtherMethods, restPreferences, restQueryOf, restRowsResponse } from '../http/postgrest.js';
import { registerGetOrPost } from './get-or-post.js';
import { pickColumns, restTableRoute } from './rest-schemas.js';
import { UserIdQuery, bearerSecurity, errorResponses } from './schemas.js';

const PublicStatus = z.enum(['pending', 'processing', 'completed', 'failed']);

const GenerateBody = z
  .object({
    user_id: z.string().optional(),
    model_id: z.string().min(1).max(64).optional().openapi({ example: 'veo-3.1-text-to-video' }),
    theme_id: z.string().uuid().optional(),
    prompt: z.string().max(20_000).openapi({ description: '3–5000 characters after trimming' }),
    settings: z
      .object({
        resolution: z.string().max(20).optional().openapi({ description: '"auto" (the app\'s default) means the theme\'s value, else the model\'s default' }),
        aspect_ratio: z.string().max(20).optional().openapi({ description: '"auto" (the app\'s default) means the theme\'s value, else the model\'s default' }),
        duration: z.number().int().min(1).max(120).optional().openapi({ description: 'Seconds; one of the model\'s options, else 400 ERR_4008 "Invalid duration. Allowed values: …"' }),
        fps: z.number().optional().openapi({ description: 'Ignored (the app may send it)' }),
      })
      .optional(),
    image_url: z.string().max(2048).optional(),
  })
  .openapi('GenerateVideoRequest');

const GenerateResponse = z
  .object({ job_id: z.string().uuid(), status: z.literal('pending'), credits_used: z.number().int(), credits_remaining: z.number().int() })
  .openapi('GenerateVideoResponse');

/**
 * Built at registration: its idempotency claim is route middleware, so the handler's env carries the
 * claim. The address limits run after the claim: a stored answer is replayed whatever the limits
 * say and spends nothing; a refused request frees its key.
 */
const generateRoute = (claimKey: MiddlewareHandler<IdempotentEnv>, limitAddress: MiddlewareHandler<AppEnv>) =>
  createRoute({
    method: 'post',
    path: '/functions/v1/generate-video',
    operationId: 'generateVideo',
    middleware: [claimKey, limitAddress] as const,
    tags: ['videos'],
    summary: 'Start a video: holds its price in credits and queues it. Requires an Idempotency-Key header',
    description:
      'The price is computed on the server from the model and the validated settings; it is the number held, stored ' +
      'and returned as credits_used. Retrying with the same Idempotency-Key replays the first answer ' +
      '(X-Idempotent-Replay: true); the same key with a different body is 422, a key still in flight 409.',
    security: bearerSecurity,
    request: {
      headers: z.object({ 'idempotency-key': z.string().openapi({ example: '8E03978E-40D5-43E8-BC93-6894A57F9324' }) }),
      body: { content: { 'application/json': { schema: GenerateBody } }, required: true },
    },
    responses: {
      200: { description: 'Queued', content: { 'application/json': { schema: GenerateResponse } } },
      ...errorResponses(400, 401, 402, 403, 404, 409, 415, 422, 429),
    },
  });

const JobView = z
  .object({
    job_id: z.string().uuid(),
    status: PublicStatus,
    prompt: z.string(),
    model_name: z.string(),
    credits_used: z.number().int(),
    video_url: z.string().nullable(),
    thumbnail_url: z.string().nullable(),
    error_code: z.string().nullable(),
    error_message: z.string().nullable().openapi({ description: "Our localized text for error_code, in the owner's language; never the provider's words" }),
    created_at: z.string(),
  })
  .openapi('VideoJob');

/**
 * A history entry: the VideoJob plus what ingest found in the stored video. The app's VideoJob
 * decoder reads its keys by name and ignores others (docs/reference/ios-app.md §2.13), so the extra key is safe.
 */
const HistoryJob = JobView.extend({
  media: z
    .object({
      duration_seconds: z.number(),
      width: z.number().int(),
      height: z.number().int(),
      codec: z.string().openapi({ description: 'The sample entry: avc1/avc3 (H.264) or hvc1 (HEVC)' }),
      size_bytes: z.number().int(),
    })
    .nullable()
    .openapi({ description: 'The delivered video as checked before the credits were captured; null until completed' }),
}).openapi('VideoJobWithMedia');

/**
 * What legacy mode answers about a job known only by its id: the fields ResultView decodes
 * (docs/reference/ios-app.md §2.11) minus the ones it does not need — no prompt (the user's words), no
 * error_message/error_code (decoded but never shown).
 */
const LegacyJobStatus = z
  .object({
    job_id: z.string().uuid(),
    status: PublicStatus,
    model_name: z.string(),
    credits_used: z.number().int(),
    video_url: z.string().nullable(),
    thumbnail_url: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi('LegacyVideoJobStatus');

const statusRoute = createRoute({
  method: 'get',
  path: '/functions/v1/get-video-status',
  operationId: 'getVideoStatus',
  tags: ['videos'],
  summary: 'One job of the caller (video_url and thumbnail_url are signed, expiring URLs)',
  description:
    'With a user token: one of that user\'s own jobs (VideoJob). In legacy mode (LEGACY_ANON_CLIENTS=true) the shipped app ' +
    'polls with the anon key and no user_id (docs/reference/ios-app.md §2.11): the job id, an unguessable UUID only its creator was ' +
    'given, acts as the capability, as in the old backend, and the answer is LegacyVideoJobStatus (no prompt, no error ' +
    'text). A deleted job is 404 either way.',
  security: bearerSecurity,
  request: { query: UserIdQuery.extend({ job_id: z.string().uuid() }) },
  responses: {
    200: { description: 'The job', content: { 'application/json': { schema: z.union([JobView, LegacyJobStatus]) } } },
    ...errorResponses(400, 401, 403, 404),
  },
});

const historyRoute = createRoute({
  method: 'get',
  path: '/functions/v1/get-video-jobs',
  operationId: 'getVideoJobs',
  tags: ['videos'],
  summary: "The caller's jobs, newest first. limit 1–100 (default 20) with offset, or with next_cursor from the previous page",
  security: bearerSecurity,
  request: {
    query: UserIdQuery.extend({
      limit: z.coerce.number().int().min(1).max(100).default(20),
      offset: z.coerce.number().int().min(0).max(100_000).optional(),
      cursor: z.string().max(100).optional(),
    }),
  },
  responses: {
    200: {
      description: 'A page of jobs',
      content: { 'application/json': { schema: z.object({ jobs: z.array(HistoryJob), next_cursor: z.string().nullable() }) } },
    },
    ...errorResponses(400, 401, 403),
  },
});

const restJobsRoute = restTableRoute({
  path: '/rest/v1/video_jobs',
  operationId: 'listOwnVideoJobs',
  table: OWN_JOBS_TABLE,
  what: "The caller's own jobs (row-level security: only yours), with get-video-jobs' columns, newest first by default",
  tags: ['videos'],
  security: bearerSecurity,
  note: 'status is the public one (pending, processing, completed, failed); video_url and thumbnail_url are signed, expiring URLs. In legacy mode the anon key names its user with user_id=eq.{id}.',
});

/** Legacy mode names the user as PostgREST would filter: user_id=eq.{id}; with a token it must be the token's. */
const userIdFromRestFilter: ClaimedUserId = async (c) => {
  const raw = c.req.query('user_id');
  return raw?.startsWith('eq.') ? raw.slice(3) : undefined;
};

const deleteRoute = createRoute({
  method: 'post',
  path: '/functions/v1/delete-video-job',
  operationId: 'deleteVideoJob',
  tags: ['videos'],
  summary: 'Delete one of the caller’s jobs: a running job is cancelled and its credits returned; stored files are removed',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: z.object({ job_id: z.string().uuid(), user_id: z.string().optional() }) } }, required: true } },
  responses: { 200: { description: 'Deleted', content: { 'application/json': { schema: z.object({ success: z.literal(true) }) } } }, ...errorResponses(400, 401, 403, 404) },
});

const eventsRoute = createRoute({
  method: 'get',
  path: '/functions/v1/video-events',
  operationId: 'streamVideoEvents',
  tags: ['videos'],
  summary: 'Server-sent events for one job: an "status" event with the job (as get-video-status) on every state change, until it ends',
  description:
    'Works across processes (PostgreSQL LISTEN/NOTIFY). A ": ping" comment every 15 s keeps proxies from closing the stream. ' +
    'Before each later event the token is checked again: after a logout, ban or account deletion the stream sends an "error" event ({code}) and ends.',
  security: bearerSecurity,
  request: { query: UserIdQuery.extend({ job_id: z.string().uuid() }) },
  responses: { 200: { description: 'text/event-stream', content: { 'text/event-stream': { schema: z.string() } } }, ...errorResponses(400, 401, 403, 404) },
});

const encodeCursor = (jobId: string) => Buffer.from(jobId).toString('base64url');
function decodeCursor(cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(id)) throw invalid('cursor is not one this server issued', 'cursor');
  return id;
}

export function registerVideos(app: OpenAPIHono<AppEnv>, s: Services) {
  const view = (job: JobViewRow) => jobView(s, job);
  // get-video-jobs and rest/v1/video_jobs answer the same row: the job plus its checked video.
  const historyView = async (job: JobViewRow) => ({ ...(await view(job)), media: mediaView(job) });

  const auth = requireUser(authOptions(s));
  const generate = generateRoute(
    idempotency(s.db, { ttlHours: s.config.idempotencyKeyTtlHours, lockSeconds: s.config.idempotencyLockSeconds }),
    s.rateLimits.middleware('generate-video'),
  );
  app.use(generate.path, auth);
  app.openapi(generate, async (c) => {
    const body = c.req.valid('json');
    const { response, limit } = await s.generation.generate(
      {
        userId: c.get('user').id,
        modelId: body.model_id,
        themeId: body.theme_id,
        prompt: body.prompt,
        settings: body.settings,
        imageUrl: body.image_url,
      },
      c.get('idempotency').complete,
    );
    return c.json(response, 200, limit ? rateLimitHeaders([limit]) : {});
  });

  // Legacy mode: the anon key polls by job id alone (see statusRoute); everything else is a user.
  const authInOneRead = requireUser(authOptions(s), undefined, 'route');
  app.use(statusRoute.path, async (c, next) => (isLegacyAnonCaller(c, authOptions(s)) ? next() : authInOneRead(c, next)));
  registerGetOrPost(app, statusRoute, async (c, q) => {
    const token = c.get('unsettledToken');
    let job: JobViewRow | undefined;
    if (token) {
      const read = await findJobViewWithAuth(s.db, q.job_id, token.sub, token.sessionId);
      c.set('user', userFromAuthState(token, read.auth));
      job = read.job;
    } else {
      job = await findJobView(s.db, q.job_id);
    }
    if (!job || job.deleted_at) throw notFound('job');
    if (!c.get('user')) {
      const { prompt: _prompt, error_code: _code, error_message: _message, ...status } = await view(job);
      return c.json(status, 200);
    }
    // Someone else's job is "not found": no way to probe which ids exist.
    if (job.user_id !== c.get('user').id) throw notFound('job');
    return c.json(await view(job), 200);
  });

  app.use(historyRoute.path, auth);
  registerGetOrPost(app, historyRoute, async (c, q) => {
    const rows = await listJobs(s.db, c.get('user').id, {
      limit: q.limit,
      offset: q.offset,
      afterJobId: q.cursor ? decodeCursor(q.cursor) : undefined,
    });
    const last = rows.at(-1);
    const jobs = await Promise.all(rows.map(historyView));
    return c.json({ jobs, next_cursor: rows.length === q.limit && last ? encodeCursor(last.job_id) : null }, 200);
  });

  app.use(eventsRoute.path, auth);
  app.openapi(eventsRoute, async (c) => {
    const jobId = c.req.valid('query').job_id;
    const userId = c.get('user').id;
    const owned = await findJobView(s.db, jobId);
    if (!owned || owned.user_id !== userId || owned.deleted_at) throw notFound('job');
    // Re-checked before every later event, as Realtime does: a logout, ban or deletion while the
    // stream is open ends it instead of sending more (signed URLs above all).
    const token = c.get('user').via === 'token' ? bearerToken(c) : undefined;
    const stillAllowed = async (): Promise<ApiError | undefined> => {
      if (!token) return undefined;
      try {
        await verifiedUser(authOptions(s), token);
        return undefined;
      } catch (err) {
        if (err instanceof ApiError) return err;
        throw err;
      }
    };
    return streamSSE(c, (stream) => streamJobStatus(stream, { events: s.events, rereadMs: s.config.eventsRereadMs }, jobId, stillAllowed));
  });

  // GET (and so HEAD) only: another method is 405 whoever asks.
  app.on('GET', restJobsRoute.path, requireUser(authOptions(s), userIdFromRestFilter));
  app.openapi(restJobsRoute, async (c) => {
    const q = restQueryOf(c, OWN_JOBS_TABLE);
    const { rows, total } = await queryOwnJobs(s.db, c.get('user').id, q, restPreferences(c).count);
    const views = await Promise.all(rows.map(historyView));
    return restRowsResponse(c, views.map((v) => pickColumns(v, q.select)), { offset: q.offset, total });
  });
  refuseOtherMethods(app, restJobsRoute.path, ['GET', 'HEAD']);

  app.use(deleteRoute.path, auth);
  app.openapi(deleteRoute, async (c) => {
    const deleted = await s.jobs.delete(c.get('user').id, c.req.valid('json').job_id);
    if (!deleted) throw notFound('job');
    return c.json({ success: true as const }, 200);
  });
}
