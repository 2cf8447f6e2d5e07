import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { bodyLimit } from 'hono/body-limit';
import type { Context } from 'hono';
import { findObject } from '../db/queries/storage.js';
import { ApiError, forbidden, invalid, notFound } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import { requireApiKey } from '../http/middleware.js';
import { objectResponse } from '../http/object-response.js';
import type { Services } from '../services.js';
import { ACCEPTED_IMAGE_TYPES, sniffImageType } from '../storage/image-types.js';
import { LocalObjectStore } from '../storage/local.js';
import { saveObject } from '../storage/objects.js';
import { INPUT_BUCKET, RESULTS_BUCKET, isSafeKey, type Bucket } from '../storage/types.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/**
 * Supabase Storage-compatible paths (ios-app.md §2.3): the app uploads its input image with its
 * user JWT to thumbnails/{user id}/input_{uuid}.jpg and builds the public URL itself; providers
 * fetch that URL. Results are private and served only through signed, expiring URLs.
 */

const uploadRoute = createRoute({
  method: 'post',
  path: '/storage/v1/object/{bucket}/{key}',
  tags: ['storage'],
  summary: 'Upload an input image (raw bytes) into your own folder of the public inputs bucket',
  description:
    'Only bucket "thumbnails", only keys under "{your user id}/", up to MAX_UPLOAD_BYTES; x-upsert: true overwrites. ' +
    'The bytes must be a JPEG, PNG, HEIC/HEIF or WebP image, recognised by their magic number (anything else, GIF included: ' +
    '415 ERR_4021); the stored and served content type is the one the bytes show, whatever Content-Type says. ' +
    'Type, size, owner and SHA-256 are kept in the database only.',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.string(), key: z.string().openapi({ example: '6f96…/input_1.jpg' }) }) },
  responses: {
    200: { description: 'Stored', content: { 'application/json': { schema: z.object({ Key: z.string() }) } } },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const DOWNLOAD_DESCRIPTION =
  'Served with the content type, size, SHA-256 (ETag) and write time (Last-Modified) recorded at upload, and always with ' +
  "X-Content-Type-Options: nosniff, Content-Security-Policy: default-src 'none'; sandbox and Content-Disposition: inline. " +
  'Byte ranges (Accept-Ranges: bytes): one range (bytes=a-b, a-, -n) answers 206 with Content-Range; a range starting past ' +
  'the end 416 ERR_4022 with Content-Range: bytes */size; several ranges the whole object. If-Range (ETag or date), ' +
  'If-None-Match / If-Modified-Since (304) and HEAD are honoured. The bytes are streamed.';

const objectHeaders = z.object({
  range: z.string().optional().openapi({ example: 'bytes=0-1023' }),
  'if-range': z.string().optional(),
  'if-none-match': z.string().optional(),
  'if-modified-since': z.string().optional(),
});

const downloadResponses = {
  200: { description: 'The whole object', content: { '*/*': { schema: z.string().openapi({ format: 'binary' }) } } },
  206: { description: 'One byte range of it (Content-Range)', content: { '*/*': { schema: z.string().openapi({ format: 'binary' }) } } },
  304: { description: 'Not modified (If-None-Match / If-Modified-Since)' },
  ...errorResponses(404, 416, 503),
};

const publicRoute = createRoute({
  method: 'get',
  path: '/storage/v1/object/public/{bucket}/{key}',
  tags: ['storage'],
  summary: 'Read an input image without auth (the URL the app builds and providers fetch); also HEAD',
  description: `Only bucket "thumbnails". ${DOWNLOAD_DESCRIPTION}`,
  request: { params: z.object({ bucket: z.string(), key: z.string() }), headers: objectHeaders },
  responses: downloadResponses,
});

const signedRoute = createRoute({
  method: 'get',
  path: '/storage/v1/object/sign/{bucket}/{key}',
  tags: ['storage'],
  summary: 'Download a result through a signed, expiring URL (local storage backend); also HEAD',
  description:
    'The URL get-video-status hands out when STORAGE_BACKEND=local; with S3 the results are presigned S3 URLs and S3 ' +
    `serves them (ranges included). ${DOWNLOAD_DESCRIPTION}`,
  request: {
    params: z.object({ bucket: z.string(), key: z.string() }),
    query: z.object({ token: z.string().openapi({ description: 'Bound to this one object; expires' }) }),
    headers: objectHeaders,
  },
  responses: { ...downloadResponses, ...errorResponses(403) },
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
      const bytes = Buffer.from(await c.req.arrayBuffer());
      if (bytes.length === 0) throw invalid('the body is empty', 'body');
      // The bytes decide, not the Content-Type header (the app always says image/jpeg).
      const contentType = sniffImageType(bytes);
      if (!contentType) throw new ApiError('ERR_4021', { allowed: [...ACCEPTED_IMAGE_TYPES] });
      const existing = await findObject(s.db, bucket, key);
      if (existing && c.req.header('x-upsert') !== 'true') throw new ApiError('ERR_4012', { reason: 'the object already exists; send x-upsert: true' });
      await saveObject(s.store, s.db, { bucket, key, ownerId: user.id, bytes, contentType });
      return c.json({ Key: `${bucket}/${key}` }, 200);
    },
  );

  const serve = async (c: Context<AppEnv>, bucket: Bucket, key: string) => {
    if (!isSafeKey(key)) throw notFound('object');
    const row = await findObject(s.db, bucket, key);
    if (!row) throw notFound('object');
    return objectResponse(c.req.raw, s.store, bucket, key, row);
  };

  // Public read, for the inputs bucket only: providers fetch the app's image from here.
  app.openAPIRegistry.registerPath(publicRoute);
  app.get('/storage/v1/object/public/:bucket{[a-z0-9_-]+}/:key{.+}', async (c) => {
    if (c.req.param('bucket') !== INPUT_BUCKET) throw notFound('object');
    return serve(c, INPUT_BUCKET, c.req.param('key'));
  });

  // Signed read (local backend; the S3 backend hands out presigned S3 URLs instead).
  app.openAPIRegistry.registerPath(signedRoute);
  app.get('/storage/v1/object/sign/:bucket{[a-z0-9_-]+}/:key{.+}', async (c) => {
    const bucket = c.req.param('bucket');
    const key = c.req.param('key');
    const token = c.req.query('token') ?? '';
    if ((bucket !== RESULTS_BUCKET && bucket !== INPUT_BUCKET) || !(s.store instanceof LocalObjectStore)) throw notFound('object');
    if (!(await s.store.verifySignedToken(bucket, key, token))) throw forbidden('the link is invalid or has expired');
    return serve(c, bucket, key);
  });
}
