import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import { findObject, recordObject } from '../db/queries/storage.js';
import { ApiError, forbidden, invalid, notFound } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import { requireApiKey } from '../http/middleware.js';
import type { Services } from '../services.js';
import { LocalObjectStore } from '../storage/local.js';
import { INPUT_BUCKET, RESULTS_BUCKET, isSafeKey, type Bucket } from '../storage/types.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/**
 * Supabase Storage-compatible paths (ios-app.md §2.3): the app uploads its input image with its
 * user JWT to thumbnails/{user id}/input_{uuid}.jpg and builds the public URL itself; providers
 * fetch that URL. Results are private and served only through signed, expiring URLs.
 */

const IMAGE_TYPES = new Set(['image/jpeg', 'image/jpg', 'image/png', 'image/webp', 'image/gif']);

const uploadRoute = createRoute({
  method: 'post',
  path: '/storage/v1/object/{bucket}/{key}',
  tags: ['storage'],
  summary: 'Upload an input image (raw bytes) into your own folder of the public inputs bucket',
  description: 'Only bucket "thumbnails", only keys under "{your user id}/", image/jpeg|png|webp|gif, up to MAX_UPLOAD_BYTES. x-upsert: true overwrites.',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.string(), key: z.string().openapi({ example: '6f96…/input_1.jpg' }) }) },
  responses: {
    200: { description: 'Stored', content: { 'application/json': { schema: z.object({ Key: z.string() }) } } },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

export function registerStorage(app: OpenAPIHono<AppEnv>, s: Services) {
  const maxBytes = s.config.limits.maxUploadBytes;
  // Hono's {key} matches one segment; keys have folders, so the real routes use a regex param.
  // c.req.param() is already percent-decoded (a malformed escape stays as sent, and then fails
  // isSafeKey): decoding it again threw URIError on `%E0%A4%A`, a 500.
  const uploadPath = '/storage/v1/object/:bucket{[a-z0-9_-]+}/:key{.+}';

  app.openAPIRegistry.registerPath(uploadRoute);
  app.post(
    uploadPath,
    requireApiKey(s.config.anonKey),
    bodyLimit({
      maxSize: maxBytes,
      onError: () => {
        throw new ApiError('ERR_4015', { limit_bytes: maxBytes });
      },
    }),
    requireUser(authOptions(s), async () => undefined),
    async (c) => {
      const bucket = c.req.param('bucket');
      const key = c.req.param('key');
      if (bucket !== INPUT_BUCKET) throw forbidden(`uploads go to the ${INPUT_BUCKET} bucket`);
      if (!isSafeKey(key)) throw invalid('the object path has unsupported characters', 'key');
      const user = c.get('user');
      if (!key.startsWith(`${user.id}/`)) throw forbidden('upload into your own folder: {user id}/…');
      const contentType = (c.req.header('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      if (!IMAGE_TYPES.has(contentType)) throw new ApiError('ERR_4016', { allowed: [...IMAGE_TYPES] });
      const bytes = Buffer.from(await c.req.arrayBuffer());
      if (bytes.length === 0) throw invalid('the body is empty', 'body');
      const existing = await findObject(s.db, bucket, key);
      if (existing && c.req.header('x-upsert') !== 'true') throw new ApiError('ERR_4012', { reason: 'the object already exists; send x-upsert: true' });
      await s.store.put(bucket, key, { bytes, contentType });
      await recordObject(s.db, { bucket, key, ownerId: user.id, size: bytes.length, contentType });
      return c.json({ Key: `${bucket}/${key}` }, 200);
    },
  );

  const serve = async (bucket: Bucket, key: string) => {
    if (!isSafeKey(key)) throw notFound('object');
    const meta = await findObject(s.db, bucket, key);
    const file = meta ? await s.store.get(bucket, key) : undefined;
    if (!file) throw notFound('object');
    return new Response(new Uint8Array(file.bytes), {
      headers: { 'Content-Type': file.contentType, 'Content-Length': String(file.bytes.length), 'Cache-Control': 'private, max-age=300' },
    });
  };

  // Public read, for the inputs bucket only: providers fetch the app's image from here.
  app.get('/storage/v1/object/public/:bucket{[a-z0-9_-]+}/:key{.+}', async (c) => {
    if (c.req.param('bucket') !== INPUT_BUCKET) throw notFound('object');
    return serve(INPUT_BUCKET, c.req.param('key'));
  });

  // Signed read (local backend; the S3 backend hands out presigned S3 URLs instead).
  app.get('/storage/v1/object/sign/:bucket{[a-z0-9_-]+}/:key{.+}', async (c) => {
    const bucket = c.req.param('bucket');
    const key = c.req.param('key');
    const token = c.req.query('token') ?? '';
    if ((bucket !== RESULTS_BUCKET && bucket !== INPUT_BUCKET) || !(s.store instanceof LocalObjectStore)) throw notFound('object');
    if (!(await s.store.verifySignedToken(bucket, key, token))) throw forbidden('the link is invalid or has expired');
    return serve(bucket, key);
  });
}
