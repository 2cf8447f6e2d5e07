import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ApiError, invalid } from '../http/api-error.js';
import { authOptions, requireUser } from '../http/auth.js';
import type { AppEnv } from '../http/context.js';
import { limitBodyTo, requireApiKey, requireJsonBody } from '../http/middleware.js';
import { etagOf, objectResponse } from '../http/object-response.js';
import type { Services } from '../services.js';
import type { ReadableObject } from '../storage/service.js';
import { BUCKETS, INPUT_BUCKET } from '../storage/types.js';
import { ACCEPTED_IMAGE_TYPES } from '../storage/image-types.js';
import type { ObjectDetailsRow } from '../db/queries/storage.js';
import { bearerSecurity, errorResponses } from './schemas.js';

/**
 * Supabase Storage-compatible paths (docs/reference/ios-app.md §2.3): the app uploads its input image with its
 * user JWT to thumbnails/{user id}/input_{uuid}.jpg and builds the public URL itself; providers
 * fetch that URL. Results are private and served only through signed, expiring URLs.
 */

const uploadRoute = createRoute({
  method: 'post',
  path: '/storage/v1/object/{bucket}/{key}',
  operationId: 'uploadObject',
  tags: ['storage'],
  summary: 'Upload an input image (raw bytes, or multipart/form-data as supabase-js sends it) into your own folder of the public inputs bucket',
  description:
    'Only bucket "thumbnails", only keys under "{your user id}/", up to MAX_UPLOAD_BYTES (the whole body); x-upsert: true overwrites, ' +
    'as does PUT (supabase-js update()). A multipart body stores its first file part (supabase-js: field "", plus cacheControl). ' +
    'The bytes must be a JPEG, PNG, HEIC/HEIF or WebP image, recognised by their magic number (anything else, GIF included: ' +
    '415 ERR_4021); the stored and served content type is the one the bytes show, whatever Content-Type says. ' +
    'Type, size, owner and SHA-256 are kept in the database only.',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.string(), key: z.string().openapi({ example: '6f96…/input_1.jpg' }) }) },
  responses: {
    200: {
      description: 'Stored: Key is "{bucket}/{key}", Id the object\'s id (supabase-js upload() returns them as fullPath and id)',
      content: { 'application/json': { schema: z.object({ Key: z.string(), Id: z.string() }) } },
    },
    ...errorResponses(400, 401, 403, 409, 413, 415),
  },
});

const objectParams = z.object({ bucket: z.enum(BUCKETS), key: z.string().openapi({ example: '6f96…/input_1.jpg' }) });

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
  operationId: 'getPublicObject',
  security: [],
  tags: ['storage'],
  summary: 'Read an input image without auth (the URL the app builds and providers fetch); also HEAD',
  description: `Only bucket "thumbnails". ${DOWNLOAD_DESCRIPTION}`,
  request: { params: z.object({ bucket: z.string(), key: z.string() }), headers: objectHeaders },
  responses: downloadResponses,
});

const signedRoute = createRoute({
  method: 'get',
  path: '/storage/v1/object/sign/{bucket}/{key}',
  operationId: 'getSignedObject',
  security: [],
  tags: ['storage'],
  summary: 'Download through a signed, expiring URL (createSignedUrl(s) on either backend; results with STORAGE_BACKEND=local); also HEAD',
  description:
    'The URL createSignedUrl and createSignedUrls hand out (with S3, the bytes are streamed from S3), and the one get-video-status ' +
    `hands out when STORAGE_BACKEND=local (with S3 the results are presigned S3 URLs that S3 serves). ${DOWNLOAD_DESCRIPTION}`,
  request: {
    params: z.object({ bucket: z.string(), key: z.string() }),
    query: z.object({ token: z.string().openapi({ description: 'Bound to this one object; expires' }) }),
    headers: objectHeaders,
  },
  responses: { ...downloadResponses, ...errorResponses(403) },
});

const ownDownloadRoute = createRoute({
  method: 'get',
  path: '/storage/v1/object/{bucket}/{key}',
  operationId: 'getObject',
  tags: ['storage'],
  summary: 'Download one of your own objects with your token (supabase-js download(), exists() as HEAD); also /storage/v1/object/authenticated/{bucket}/{key}',
  description: `Buckets "thumbnails" (your uploads) and "videos" (your results); another user's object is 404. ${DOWNLOAD_DESCRIPTION}`,
  security: bearerSecurity,
  request: { params: objectParams, headers: objectHeaders },
  responses: { ...downloadResponses, ...errorResponses(401) },
});

const SignBody = z.object({
  expiresIn: z.number().int().min(1).max(604_800).openapi({ description: 'Seconds the URL is valid, at most 7 days' }),
}).openapi('SignObject');

const createSignedRoute = createRoute({
  method: 'post',
  path: '/storage/v1/object/sign/{bucket}/{key}',
  operationId: 'createSignedUrl',
  tags: ['storage'],
  summary: 'A signed, expiring download URL for one of your own objects (supabase-js createSignedUrl())',
  description:
    'signedURL is relative to /storage/v1 on either backend (supabase-js prefixes its storage URL); with S3 the API streams ' +
    'the bytes from S3.',
  security: bearerSecurity,
  request: { params: objectParams, body: { content: { 'application/json': { schema: SignBody } }, required: true } },
  responses: {
    200: { description: 'The URL', content: { 'application/json': { schema: z.object({ signedURL: z.string().openapi({ example: '/object/sign/videos/6f96…/v.mp4?token=…' }) }) } } },
    ...errorResponses(400, 401, 404),
  },
});

const RemoveBody = z.object({ prefixes: z.array(z.string()).min(1).max(1000) }).openapi('RemoveObjects');
const RemovedObject = z.object({
  name: z.string(),
  bucket_id: z.string(),
  owner: z.string(),
  id: z.string(),
  created_at: z.string(),
  updated_at: z.string(),
  metadata: z.object({ eTag: z.string(), size: z.number().int(), mimetype: z.string(), lastModified: z.string() }),
});

const removeRoute = createRoute({
  method: 'delete',
  path: '/storage/v1/object/{bucket}',
  operationId: 'removeObjects',
  tags: ['storage'],
  summary: 'Remove your own uploads (supabase-js remove()): body {prefixes: [keys]}; answers the objects removed',
  description:
    'Only bucket "thumbnails" (results go with their job: delete-video-job). Keys that are not yours or do not exist are ' +
    'skipped, not errors, and are absent from the answer.',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.string() }), body: { content: { 'application/json': { schema: RemoveBody } }, required: true } },
  responses: {
    200: { description: 'The removed objects', content: { 'application/json': { schema: z.array(RemovedObject) } } },
    ...errorResponses(400, 401, 403, 415),
  },
});

const ObjectMetadata = z.object({
  eTag: z.string(),
  size: z.number().int(),
  mimetype: z.string(),
  cacheControl: z.string(),
  lastModified: z.string(),
  contentLength: z.number().int(),
  httpStatusCode: z.number().int(),
});

const ListBody = z
  .object({
    prefix: z.string().max(1024).default(''),
    limit: z.number().int().min(1).max(1000).default(100),
    offset: z.number().int().min(0).max(100_000).default(0),
    sortBy: z
      .object({ column: z.enum(['name', 'created_at', 'updated_at', 'last_accessed_at']).default('name'), order: z.enum(['asc', 'desc']).default('asc') })
      .default({ column: 'name', order: 'asc' }),
    search: z.string().max(255).default(''),
  })
  .openapi('ListObjects');

const ListedObject = z.object({
  name: z.string(),
  id: z.string().nullable(),
  created_at: z.string().nullable(),
  updated_at: z.string().nullable(),
  last_accessed_at: z.string().nullable(),
  metadata: ObjectMetadata.nullable(),
});

const listRoute = createRoute({
  operationId: 'storageListObjects',
  method: 'post',
  path: '/storage/v1/object/list/{bucket}',
  tags: ['storage'],
  summary: 'List a folder of yours (supabase-js list()): files, and folders as entries with id null',
  description:
    'prefix is a folder ("{your user id}" or below it); another user\'s folder lists nothing (row-level security), the root lists ' +
    'your own folder. search keeps names starting with it (any case); sortBy name, created_at, updated_at or last_accessed_at, ' +
    'asc or desc (folders, which have no dates, last); limit 1–1000 (default 100), offset.',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.enum(BUCKETS) }), body: { content: { 'application/json': { schema: ListBody } }, required: true } },
  responses: { 200: { description: 'The entries', content: { 'application/json': { schema: z.array(ListedObject) } } }, ...errorResponses(400, 401, 404) },
});

const infoRoute = createRoute({
  operationId: 'storageObjectInfo',
  method: 'get',
  path: '/storage/v1/object/info/{bucket}/{key}',
  tags: ['storage'],
  summary: "One of your objects' details (supabase-js info())",
  security: bearerSecurity,
  request: { params: objectParams },
  responses: {
    200: {
      description: 'The object',
      content: {
        'application/json': {
          schema: z.object({
            id: z.string(), name: z.string(), bucket_id: z.string(), size: z.number().int(), content_type: z.string(), etag: z.string(),
            cache_control: z.string().nullable(), metadata: z.record(z.string(), z.unknown()), created_at: z.string(), updated_at: z.string(), last_modified: z.string(),
          }),
        },
      },
    },
    ...errorResponses(401, 404),
  },
});

const CopyBody = z
  .object({ bucketId: z.enum(BUCKETS), sourceKey: z.string().max(1024), destinationKey: z.string().max(1024), destinationBucket: z.string().nullish() })
  .openapi('CopyObject');

const copyRoute = createRoute({
  operationId: 'storageCopyObject',
  method: 'post',
  path: '/storage/v1/object/copy',
  tags: ['storage'],
  summary: 'Copy one of your objects into your own folder of thumbnails (supabase-js copy()); x-upsert: true replaces',
  description: 'The destination follows the upload rules: bucket thumbnails, your own folder, an image. An existing destination is 409 without x-upsert.',
  security: bearerSecurity,
  request: { body: { content: { 'application/json': { schema: CopyBody } }, required: true } },
  responses: { 200: { description: 'Copied', content: { 'application/json': { schema: z.object({ Key: z.string() }) } } }, ...errorResponses(400, 401, 403, 404, 409, 415) },
});

const moveRoute = createRoute({
  ...copyRoute,
  operationId: 'storageMoveObject',
  path: '/storage/v1/object/move',
  summary: 'Move one of your uploads within your own folder of thumbnails (supabase-js move())',
  responses: { 200: { description: 'Moved', content: { 'application/json': { schema: z.object({ message: z.string() }) } } }, ...errorResponses(400, 401, 403, 404, 409, 415) },
});

const SignManyBody = z.object({ expiresIn: SignBody.shape.expiresIn, paths: z.array(z.string().max(1024)).min(1).max(100) }).openapi('SignObjects');

const createSignedManyRoute = createRoute({
  operationId: 'storageCreateSignedUrls',
  method: 'post',
  path: '/storage/v1/object/sign/{bucket}',
  tags: ['storage'],
  summary: 'Signed download URLs for several of your objects (supabase-js createSignedUrls())',
  description: 'One entry per path, in order: signedURL (relative to /storage/v1), or error "Either the object does not exist or you do not have access to it".',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.enum(BUCKETS) }), body: { content: { 'application/json': { schema: SignManyBody } }, required: true } },
  responses: {
    200: { description: 'The URLs', content: { 'application/json': { schema: z.array(z.object({ path: z.string(), signedURL: z.string().nullable(), error: z.string().nullable() })) } } },
    ...errorResponses(400, 401),
  },
});

const createSignedUploadRoute = createRoute({
  operationId: 'storageCreateSignedUploadUrl',
  method: 'post',
  path: '/storage/v1/object/upload/sign/{bucket}/{key}',
  tags: ['storage'],
  summary: 'A signed upload URL for a key in your own folder of thumbnails, valid two hours (supabase-js createSignedUploadUrl()); x-upsert: true lets it replace',
  security: bearerSecurity,
  request: { params: z.object({ bucket: z.string(), key: z.string() }) },
  responses: { 200: { description: 'The URL, relative to /storage/v1', content: { 'application/json': { schema: z.object({ url: z.string() }) } } }, ...errorResponses(400, 401, 403) },
});

const uploadSignedRoute = createRoute({
  operationId: 'storageUploadToSignedUrl',
  method: 'put',
  path: '/storage/v1/object/upload/sign/{bucket}/{key}',
  tags: ['storage'],
  summary: 'Upload through a signed upload URL (supabase-js uploadToSignedUrl()): the token is the authority, no user token',
  description: 'The upload rules apply (an image, at most MAX_UPLOAD_BYTES); the token names the owner and whether it may replace.',
  security: [],
  request: { params: z.object({ bucket: z.string(), key: z.string() }), query: z.object({ token: z.string() }) },
  responses: { 200: { description: 'Stored', content: { 'application/json': { schema: z.object({ Key: z.string(), Id: z.string() }) } } }, ...errorResponses(400, 403, 409, 413, 415) },
});

const Bucket = z
  .object({
    id: z.string(), name: z.string(), owner: z.string(), public: z.boolean(), file_size_limit: z.number().int().nullable(),
    allowed_mime_types: z.array(z.string()).nullable(), created_at: z.string(), updated_at: z.string(),
  })
  .openapi('Bucket');

const listBucketsRoute = createRoute({
  operationId: 'storageListBuckets',
  method: 'get',
  path: '/storage/v1/bucket',
  tags: ['storage'],
  summary: "The app's two buckets (supabase-js listBuckets()): thumbnails (public inputs) and videos (private results)",
  security: bearerSecurity,
  responses: { 200: { description: 'The buckets', content: { 'application/json': { schema: z.array(Bucket) } } }, ...errorResponses(401) },
});

const getBucketRoute = createRoute({
  operationId: 'storageGetBucket',
  method: 'get',
  path: '/storage/v1/bucket/{id}',
  tags: ['storage'],
  summary: 'One of the app\'s buckets (supabase-js getBucket())',
  security: bearerSecurity,
  request: { params: z.object({ id: z.string() }) },
  responses: { 200: { description: 'The bucket', content: { 'application/json': { schema: Bucket } } }, ...errorResponses(401, 404) },
});

/** The buckets are the app's, made with it: one fixed date, as Supabase shows a bucket's creation. */
const BUCKETS_CREATED_AT = '2025-01-01T00:00:00.000Z';

/** Supabase Storage's metadata of an object, from its row. */
function objectMetadata(o: ObjectDetailsRow) {
  const size = Number(o.size);
  return {
    eTag: etagOf({ ...o, size }),
    size,
    mimetype: o.content_type,
    cacheControl: 'max-age=3600',
    lastModified: o.updated_at,
    contentLength: size,
    httpStatusCode: 200,
  };
}

/** The request's JSON body against a schema: malformed JSON and invalid fields are both 400 ERR_4008. */
async function jsonBody<T extends z.ZodTypeAny>(c: Context<AppEnv>, schema: T): Promise<z.output<T>> {
  let body: unknown;
  try {
    body = await c.req.json();
  } catch {
    throw invalid('the body must be JSON', 'body');
  }
  return schema.parse(body);
}

/** The bytes of an upload: the first file part of a multipart form (supabase-js), else the raw body (the app). */
async function uploadedBytes(c: Context<AppEnv>): Promise<Buffer> {
  if (!/^multipart\/form-data/i.test(c.req.header('content-type') ?? '')) return Buffer.from(await c.req.arrayBuffer());
  let form: FormData;
  try {
    form = await c.req.formData();
  } catch {
    throw invalid('the multipart body is malformed', 'body');
  }
  const file = [...form.values()].find((v) => typeof v !== 'string');
  if (file === undefined || typeof file === 'string') throw invalid('the form has no file part', 'body');
  return Buffer.from(await file.arrayBuffer());
}

export function registerStorage(app: OpenAPIHono<AppEnv>, s: Services) {
  const maxBytes = s.config.limits.maxUploadBytes;
  // Hono's {key} matches one segment; keys have folders, so the real routes use a regex param.
  // c.req.param() is already percent-decoded (a malformed escape stays as sent, and then fails
  // isSafeKey): decoding it again threw URIError on `%E0%A4%A`, a 500.
  const uploadPath = '/storage/v1/object/:bucket{[a-z0-9_-]+}/:key{.+}';

  const withUser = requireUser(authOptions(s), async () => undefined);
  const apiKey = requireApiKey(s.config.acceptedAnonKeys);
  const smallJson = [
    apiKey,
    requireJsonBody(),
    limitBodyTo(s.config.maxJsonBodyBytes),
    withUser,
  ] as const;
  const uploadLimit = limitBodyTo(maxBytes);

  // Storage's other verbs. Registered before the upload, whose path would otherwise take "list",
  // "sign" or "upload" for a bucket.
  app.openAPIRegistry.registerPath(listRoute);
  app.post('/storage/v1/object/list/:bucket{[a-z0-9_-]+}', ...smallJson, async (c) => {
    const entries = await s.storage.list(c.req.param('bucket'), c.get('user').id, await jsonBody(c, ListBody));
    return c.json(
      entries.map(({ name, object: o }) => ({
        name,
        id: o?.id ?? null,
        created_at: o?.created_at ?? null,
        updated_at: o?.updated_at ?? null,
        last_accessed_at: o?.updated_at ?? null,
        metadata: o ? objectMetadata(o) : null,
      })),
      200,
    );
  });

  app.openAPIRegistry.registerPath(copyRoute);
  app.openAPIRegistry.registerPath(moveRoute);
  for (const move of [false, true]) {
    app.post(move ? moveRoute.path : copyRoute.path, ...smallJson, async (c) => {
      const body = await jsonBody(c, CopyBody);
      const key = await s.storage.copy({
        bucket: body.bucketId,
        from: body.sourceKey,
        to: body.destinationKey,
        toBucket: body.destinationBucket ?? undefined,
        ownerId: c.get('user').id,
        upsert: c.req.header('x-upsert') === 'true',
        move,
      });
      return move ? c.json({ message: 'Successfully moved' }, 200) : c.json({ Key: key }, 200);
    });
  }

  app.openAPIRegistry.registerPath(createSignedManyRoute);
  app.post('/storage/v1/object/sign/:bucket{[a-z0-9_-]+}', ...smallJson, async (c) => {
    const { expiresIn, paths } = await jsonBody(c, SignManyBody);
    return c.json(await s.storage.signedUrls(c.req.param('bucket'), paths, c.get('user').id, expiresIn), 200);
  });

  app.openAPIRegistry.registerPath(createSignedUploadRoute);
  app.post('/storage/v1/object/upload/sign/:bucket{[a-z0-9_-]+}/:key{.+}', ...smallJson, async (c) => {
    const url = await s.storage.signedUploadUrl(c.req.param('bucket'), c.req.param('key'), c.get('user').id, c.req.header('x-upsert') === 'true');
    return c.json({ url }, 200);
  });
  app.openAPIRegistry.registerPath(uploadSignedRoute);
  app.put('/storage/v1/object/upload/sign/:bucket{[a-z0-9_-]+}/:key{.+}', apiKey, uploadLimit, async (c) => {
    const bucket = c.req.param('bucket');
    const key = c.req.param('key');
    const id = await s.storage.uploadWithLink(bucket, key, c.req.query('token') ?? '', () => uploadedBytes(c));
    return c.json({ Key: `${bucket}/${key}`, Id: id }, 200);
  });

  app.openAPIRegistry.registerPath(infoRoute);
  app.get('/storage/v1/object/info/:bucket{[a-z0-9_-]+}/:key{.+}', apiKey, withUser, async (c) => {
    const o = await s.storage.info(c.req.param('bucket'), c.req.param('key'), c.get('user').id);
    const etag = objectMetadata(o).eTag;
    return c.json(
      { id: o.id, name: o.key, bucket_id: c.req.param('bucket'), size: Number(o.size), content_type: o.content_type, etag, cache_control: null, metadata: {}, created_at: o.created_at, updated_at: o.updated_at, last_modified: o.updated_at },
      200,
    );
  });

  const buckets = BUCKETS.map((id) => ({
    id,
    name: id,
    owner: '',
    public: id === INPUT_BUCKET,
    file_size_limit: id === INPUT_BUCKET ? maxBytes : null,
    allowed_mime_types: id === INPUT_BUCKET ? [...ACCEPTED_IMAGE_TYPES] : null,
    created_at: BUCKETS_CREATED_AT,
    updated_at: BUCKETS_CREATED_AT,
  }));
  app.openAPIRegistry.registerPath(listBucketsRoute);
  app.get(listBucketsRoute.path, apiKey, withUser, (c) => c.json(buckets, 200));
  app.openAPIRegistry.registerPath(getBucketRoute);
  app.get('/storage/v1/bucket/:id', apiKey, withUser, (c) => {
    const bucket = buckets.find((b) => b.id === c.req.param('id'));
    if (!bucket) throw new ApiError('ERR_4007', { resource: 'bucket' });
    return c.json(bucket, 200);
  });

  // Registered before the upload, whose path would otherwise take "sign" for a bucket.
  app.openAPIRegistry.registerPath(createSignedRoute);
  app.post('/storage/v1/object/sign/:bucket{[a-z0-9_-]+}/:key{.+}', ...smallJson, async (c) => {
    const { expiresIn } = await jsonBody(c, SignBody);
    return c.json({ signedURL: await s.storage.signedUrl(c.req.param('bucket'), c.req.param('key'), c.get('user').id, expiresIn) }, 200);
  });

  const upload = (upsert: 'header' | 'always') => async (c: Context<AppEnv>) => {
    const bucket = c.req.param('bucket') ?? '';
    const key = c.req.param('key') ?? '';
    const overwrite = upsert === 'always' || c.req.header('x-upsert') === 'true';
    const id = await s.storage.upload({ bucket, key, ownerId: c.get('user').id, overwrite, read: () => uploadedBytes(c) });
    return c.json({ Key: `${bucket}/${key}`, Id: id }, 200);
  };
  app.openAPIRegistry.registerPath(uploadRoute);
  app.openAPIRegistry.registerPath({ ...uploadRoute, method: 'put', operationId: 'replaceObject', summary: 'Upload or replace an input image (supabase-js update()): as POST, always overwriting' });
  app.post(uploadPath, apiKey, uploadLimit, withUser, upload('header'));
  app.put(uploadPath, apiKey, uploadLimit, withUser, upload('always'));

  app.openAPIRegistry.registerPath(removeRoute);
  app.delete('/storage/v1/object/:bucket{[a-z0-9_-]+}', ...smallJson, async (c) => {
    const user = c.get('user');
    const removed = await s.storage.remove(c.req.param('bucket'), user.id, async () => (await jsonBody(c, RemoveBody)).prefixes);
    return c.json(
      removed.map((r) => ({
        name: r.key,
        bucket_id: INPUT_BUCKET,
        owner: user.id,
        id: r.id,
        created_at: r.created_at,
        updated_at: r.updated_at,
        metadata: { eTag: etagOf({ ...r, owner_id: user.id }), size: Number(r.size), mimetype: r.content_type, lastModified: r.updated_at },
      })),
      200,
    );
  });

  const serve = (c: Context<AppEnv>, o: ReadableObject) => objectResponse(c.req.raw, s.store, o.bucket, o.key, o.row);

  // Public read, for the inputs bucket only: providers fetch the app's image from here.
  app.openAPIRegistry.registerPath(publicRoute);
  app.get('/storage/v1/object/public/:bucket{[a-z0-9_-]+}/:key{.+}', async (c) => serve(c, await s.storage.publicObject(c.req.param('bucket'), c.req.param('key'))));

  // Signed read: the links createSignedUrl(s) hand out on either backend, and the local backend's result URLs.
  app.openAPIRegistry.registerPath(signedRoute);
  app.get('/storage/v1/object/sign/:bucket{[a-z0-9_-]+}/:key{.+}', async (c) =>
    serve(c, await s.storage.signedObject(c.req.param('bucket'), c.req.param('key'), c.req.query('token') ?? '')),
  );

  // Authenticated read of the caller's own objects. Its bucket pattern names the buckets, so the
  // public/ and sign/ paths above never reach it.
  app.openAPIRegistry.registerPath(ownDownloadRoute);
  app.openAPIRegistry.registerPath({ ...ownDownloadRoute, path: '/storage/v1/object/authenticated/{bucket}/{key}', operationId: 'getAuthenticatedObject', summary: 'The same download under supabase-js\'s authenticated/ path' });
  for (const path of ['/storage/v1/object/authenticated/:bucket{[a-z0-9_-]+}/:key{.+}', '/storage/v1/object/:bucket{thumbnails|videos}/:key{.+}']) {
    app.get(path, apiKey, withUser, async (c) => serve(c, await s.storage.ownObject(c.req.param('bucket') ?? '', c.req.param('key') ?? '', c.get('user').id)));
  }
}
