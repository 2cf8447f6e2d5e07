import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { recordObject } from '../../src/db/queries/storage.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * The local storage backend as an attacker and as AVPlayer see it: what may be uploaded (real
 * images only, typed by their bytes), how every stored object is served (nosniff, a sandboxing CSP,
 * metadata from the database row only), and byte ranges with their validators, streamed from disk.
 */

// Minimal headers of each accepted type: what the magic-number check reads, nothing more.
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);
const PNG = Buffer.concat([
  Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
  Buffer.from([0, 0, 0, 13]),
  Buffer.from('IHDR'),
  Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0, 0x90, 0x77, 0x53, 0xde]),
]);
const WEBP = Buffer.concat([Buffer.from('RIFF'), Buffer.from([22, 0, 0, 0]), Buffer.from('WEBPVP8 '), Buffer.from([10, 0, 0, 0]), Buffer.alloc(10)]);
const HEIC = isoFile('heic', ['mif1', 'heic']);
const HEIF = isoFile('mif1', ['mif1']);
const HTML = Buffer.from('<!doctype html><script>fetch("/functions/v1/get-user-profile")</script>');

/** An ISO base media file: its ftyp box (major brand, minor version, compatible brands), then an empty meta box. */
function isoFile(major: string, compatible: string[]): Buffer {
  const ftyp = Buffer.concat([Buffer.alloc(4), Buffer.from('ftyp'), Buffer.from(major), Buffer.alloc(4), ...compatible.map((b) => Buffer.from(b))]);
  ftyp.writeUInt32BE(ftyp.length, 0);
  return Buffer.concat([ftyp, Buffer.from([0, 0, 0, 8]), Buffer.from('meta')]);
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function upload(t: TestApp, g: Guest, name: string, body: Buffer | string, contentType = 'image/jpeg', headers: Record<string, string> = {}) {
  return t.app.request(`/storage/v1/object/thumbnails/${g.userId}/${name}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': contentType, ...headers },
    body,
  });
}

const publicPath = (g: Guest, name: string) => `/storage/v1/object/public/thumbnails/${g.userId}/${name}`;

/** The headers every stored object is served with, whatever its type. */
function expectSafeHeaders(res: Response, filename: string) {
  expect(res.headers.get('x-content-type-options')).toBe('nosniff');
  expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
  expect(res.headers.get('content-disposition')).toBe(`inline; filename="${filename}"`);
}

async function errorCode(res: Response): Promise<string> {
  const text = await res.text();
  try {
    return JSON.parse(text).error.code;
  } catch {
    return `HTTP ${res.status}: ${text}`;
  }
}

describe('storage: what may be uploaded and how it is served', () => {
  const t = useTestApp();
  const storageDir = () => path.join(path.resolve(t().services.config.dataDir), 'storage');

  it('HTML uploaded as p.jpg with text/html in a p.jpg.type "sidecar" is impossible: both refused; .type is just another key that must be an image', async () => {
    const g = await t().createGuest();
    const html = await upload(t(), g, 'p.jpg', HTML, 'image/jpeg');
    expect(html.status, await html.clone().text()).toBe(415);
    expect(await errorCode(html)).toBe('ERR_4021');
    const sidecar = await upload(t(), g, 'p.jpg.type', 'text/html', 'image/jpeg');
    expect(sidecar.status, await sidecar.clone().text()).toBe(415);
    expect(await errorCode(sidecar)).toBe('ERR_4021');

    // A real image at p.jpg and another at p.jpg.type: two objects, neither typing the other.
    expect((await upload(t(), g, 'p.jpg', JPEG)).status).toBe(200);
    expect((await upload(t(), g, 'p.jpg.type', PNG, 'image/png')).status).toBe(200);
    const p = await t().app.request(publicPath(g, 'p.jpg'));
    expect(p.status, await p.clone().text()).toBe(200);
    expect(p.headers.get('content-type')).toBe('image/jpeg');
    expectSafeHeaders(p, 'p.jpg');
    expect(Buffer.from(await p.arrayBuffer())).toEqual(JPEG);
    const type = await t().app.request(publicPath(g, 'p.jpg.type'));
    expect(type.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await type.arrayBuffer())).toEqual(PNG);

    // No sidecar files: the folder holds exactly the two objects; their metadata is the row's.
    expect((await fs.readdir(path.join(storageDir(), 'thumbnails', g.userId))).sort()).toEqual(['p.jpg', 'p.jpg.type']);
    const { rows } = await t().db.query('SELECT key, owner_id, size::int, content_type, sha256 FROM storage_objects WHERE owner_id = $1 ORDER BY key', [g.userId]);
    expect(rows).toEqual([
      { key: `${g.userId}/p.jpg`, owner_id: g.userId, size: JPEG.length, content_type: 'image/jpeg', sha256: sha256(JPEG) },
      { key: `${g.userId}/p.jpg.type`, owner_id: g.userId, size: PNG.length, content_type: 'image/png', sha256: sha256(PNG) },
    ]);
  });

  it.each([
    ['JPEG', 'image/jpeg', JPEG, 'input.jpg'],
    ['PNG', 'image/png', PNG, 'input.jpg.png'],
    ['WebP', 'image/webp', WEBP, 'input.jpg.webp'],
    ['HEIC', 'image/heic', HEIC, 'input.jpg.heic'],
    ['HEIF', 'image/heif', HEIF, 'input.jpg.heif'],
  ])('%s is recognised by its magic number and served as %s, named for what it is', async (_name, type, bytes, savedAs) => {
    const g = await t().createGuest();
    // The header lies on purpose (the app always says image/jpeg): the bytes decide.
    const res = await upload(t(), g, 'input.jpg', bytes, 'image/jpeg');
    expect(res.status, await res.clone().text()).toBe(200);
    const served = await t().app.request(publicPath(g, 'input.jpg'));
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toBe(type);
    expectSafeHeaders(served, savedAs);
    expect(Buffer.from(await served.arrayBuffer())).toEqual(bytes);
  });

  it('a real image under an .html or .svg key is offered as an image file, never under a name a browser would run', async () => {
    const g = await t().createGuest();
    for (const key of ['p.html', 'q.svg']) {
      expect((await upload(t(), g, key, JPEG)).status).toBe(200);
      const res = await t().app.request(publicPath(g, key));
      expect(res.headers.get('content-type')).toBe('image/jpeg');
      expectSafeHeaders(res, `${key}.jpg`);
    }
  });

  it.each([
    ['HTML', HTML, 'image/jpeg'],
    ['GIF (not one of the four types)', Buffer.from('GIF89a\x01\x00\x01\x00\x00\x00\x00;', 'latin1'), 'image/gif'],
    ['plain text', Buffer.from('hello'), 'text/plain'],
    ['an MP4 (ISO file, not an image brand)', isoFile('isom', ['isom', 'mp41']), 'image/heic'],
    ['an AVIF (HEIF container, AV1 image)', isoFile('avif', ['mif1', 'avif']), 'image/heif'],
    ['a truncated JPEG marker', Buffer.from([0xff, 0xd8]), 'image/jpeg'],
  ])('refuses %s with ERR_4021 (415) in the caller’s language, storing nothing', async (_name, bytes, declared) => {
    const g = await t().createGuest();
    const res = await upload(t(), g, 'x.jpg', bytes, declared, { 'accept-language': 'tr' });
    expect(res.status, await res.clone().text()).toBe(415);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe('ERR_4021');
    expect(body.error.message).toMatch(/JPEG, PNG, HEIC/);
    expect(res.headers.get('content-language')).toBe('tr');
    const { rows } = await t().db.query('SELECT count(*)::int AS n FROM storage_objects WHERE owner_id = $1', [g.userId]);
    expect(rows[0].n).toBe(0);
    expect((await t().app.request(publicPath(g, 'x.jpg'))).status).toBe(404);
  });

  it('a CR/LF in a stored content type (a row from before 0008, or a sidecar of the old code) cannot 500 a download', async () => {
    const g = await t().createGuest();
    const key = `${g.userId}/legacy.jpg`;
    const bad = 'text/html\r\nX-Injected: 1';
    await t().services.store.put('thumbnails', key, { bytes: JPEG, contentType: bad });
    await t().db.query('ALTER TABLE storage_objects DROP CONSTRAINT IF EXISTS storage_objects_content_type_safe');
    try {
      await t().db.query('INSERT INTO storage_objects (bucket, key, owner_id, size, content_type) VALUES ($1, $2, $3, $4, $5)', ['thumbnails', key, g.userId, JPEG.length, bad]);
    } finally {
      await t().db.query(
        `ALTER TABLE storage_objects ADD CONSTRAINT storage_objects_content_type_safe CHECK (content_type ~ '^[a-z]+/[a-z0-9.+-]+$') NOT VALID`,
      );
    }
    const res = await t().app.request(publicPath(g, 'legacy.jpg'));
    expect(res.status, await res.clone().text()).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/octet-stream');
    expect(res.headers.get('x-injected')).toBeNull();
    expectSafeHeaders(res, 'legacy.jpg.bin');
    expect(Buffer.from(await res.arrayBuffer())).toEqual(JPEG);

    // New rows cannot carry it (0008's check).
    const other = { bucket: 'thumbnails', key: `${g.userId}/new.jpg`, ownerId: g.userId, size: JPEG.length, contentType: bad, sha256: sha256(JPEG) };
    await expect(recordObject(t().db, other)).rejects.toThrow(/storage_objects_content_type_safe/);
  });
});

describe('storage: byte ranges, validators and streaming of results (signed URLs)', () => {
  const t = useTestApp();

  /** A completed simulator job's signed video and thumbnail URLs (path + query, for app.request). */
  async function completedJob() {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a lighthouse at dusk' }));
    const done = await t().waitForJob(g.accessToken, res.job_id);
    expect(done.status).toBe('completed');
    const local = (u: string) => {
      const url = new URL(u);
      return url.pathname + url.search;
    };
    return { g, jobId: res.job_id as string, video: local(done.video_url), thumbnail: local(done.thumbnail_url) };
  }

  const get = (url: string, headers: Record<string, string> = {}, method = 'GET') => t().app.request(url, { method, headers });

  it('serves the whole video with Accept-Ranges, validators and the safe headers; the thumbnail as image/jpeg', async () => {
    const { jobId, video, thumbnail } = await completedJob();
    const full = await get(video);
    expect(full.status, await full.clone().text()).toBe(200);
    expect(full.headers.get('content-type')).toBe('video/mp4');
    expect(full.headers.get('accept-ranges')).toBe('bytes');
    expect(full.headers.get('etag')).toMatch(/^"[0-9a-f]{64}"$/);
    expect(new Date(full.headers.get('last-modified')!).getTime()).toBeGreaterThan(0);
    expectSafeHeaders(full, `${jobId}.mp4`);
    const bytes = Buffer.from(await full.arrayBuffer());
    expect(full.headers.get('content-length')).toBe(String(bytes.length));
    expect(bytes.subarray(4, 8).toString()).toBe('ftyp');
    expect(full.headers.get('etag')).toBe(`"${sha256(bytes)}"`);

    const thumb = await get(thumbnail);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');
    expectSafeHeaders(thumb, `${jobId}.jpg`);
  });

  it('answers single ranges with 206 and the exact bytes; unsatisfiable with 416 */size; several ranges with the whole file', async () => {
    const { video } = await completedJob();
    const whole = Buffer.from(await (await get(video)).arrayBuffer());
    const size = whole.length;

    const first = await get(video, { range: 'bytes=0-7' });
    expect(first.status, await first.clone().text()).toBe(206);
    expect(first.headers.get('content-range')).toBe(`bytes 0-7/${size}`);
    expect(first.headers.get('content-length')).toBe('8');
    expect(first.headers.get('accept-ranges')).toBe('bytes');
    expect(first.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await first.arrayBuffer())).toEqual(whole.subarray(0, 8));

    const suffix = await get(video, { range: 'bytes=-4' });
    expect(suffix.status).toBe(206);
    expect(suffix.headers.get('content-range')).toBe(`bytes ${size - 4}-${size - 1}/${size}`);
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(whole.subarray(size - 4));

    const open = await get(video, { range: 'bytes=10-' });
    expect(open.status).toBe(206);
    expect(open.headers.get('content-range')).toBe(`bytes 10-${size - 1}/${size}`);
    expect(Buffer.from(await open.arrayBuffer())).toEqual(whole.subarray(10));

    // An end past the file is clamped (RFC 9110 §14.1.2), as AVPlayer's probes expect.
    const past = await get(video, { range: `bytes=${size - 2}-${size + 1000}` });
    expect(past.status).toBe(206);
    expect(Buffer.from(await past.arrayBuffer())).toEqual(whole.subarray(size - 2));

    for (const range of [`bytes=${size}-`, `bytes=${size + 5}-${size + 9}`, 'bytes=-0']) {
      const unsatisfiable = await get(video, { range });
      expect(unsatisfiable.status, range).toBe(416);
      expect(unsatisfiable.headers.get('content-range'), range).toBe(`bytes */${size}`);
      expect(await errorCode(unsatisfiable)).toBe('ERR_4022');
    }

    const several = await get(video, { range: 'bytes=0-1,4-5' });
    expect(several.status).toBe(200);
    expect(Buffer.from(await several.arrayBuffer())).toEqual(whole);
    // Not a byte range we understand: ignored, as RFC 9110 allows.
    const garbage = await get(video, { range: 'pages=1-2' });
    expect(garbage.status).toBe(200);
    expect(Buffer.from(await garbage.arrayBuffer())).toEqual(whole);
  });

  it('honours If-Range (mismatch → 200 whole, match → 206), If-None-Match (304, no body) and HEAD (length, no body)', async () => {
    const { video } = await completedJob();
    const full = await get(video);
    const etag = full.headers.get('etag')!;
    const lastModified = full.headers.get('last-modified')!;
    const whole = Buffer.from(await full.arrayBuffer());

    const stale = await get(video, { range: 'bytes=0-7', 'if-range': '"0000"' });
    expect(stale.status).toBe(200);
    expect(Buffer.from(await stale.arrayBuffer())).toEqual(whole);
    const fresh = await get(video, { range: 'bytes=0-7', 'if-range': etag });
    expect(fresh.status).toBe(206);
    expect(Buffer.from(await fresh.arrayBuffer())).toEqual(whole.subarray(0, 8));
    const byDate = await get(video, { range: 'bytes=0-7', 'if-range': lastModified });
    expect(byDate.status).toBe(206);
    const oldDate = await get(video, { range: 'bytes=0-7', 'if-range': new Date(Date.parse(lastModified) - 60_000).toUTCString() });
    expect(oldDate.status).toBe(200);
    await oldDate.arrayBuffer();

    const notModified = await get(video, { 'if-none-match': `"other", ${etag}` });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get('etag')).toBe(etag);
    expect(await notModified.text()).toBe('');
    const modified = await get(video, { 'if-none-match': '"other"' });
    expect(modified.status).toBe(200);
    await modified.arrayBuffer();

    const head = await get(video, {}, 'HEAD');
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(whole.length));
    expect(head.headers.get('accept-ranges')).toBe('bytes');
    expect(head.headers.get('etag')).toBe(etag);
    expect(head.headers.get('content-type')).toBe('video/mp4');
    expect(await head.text()).toBe('');
  });

  it('streams a result too large to read into memory (3 GiB, sparse): a range returns just its bytes, the whole file starts at once', async () => {
    const g = await t().createGuest();
    const key = `${g.userId}/2030-01/big.mp4`;
    const size = 3 * 1024 ** 3; // over Node's 2 GiB readFile limit: a whole-file read cannot even start
    const file = path.join(path.resolve(t().services.config.dataDir), 'storage', 'videos', key);
    await fs.mkdir(path.dirname(file), { recursive: true });
    const handle = await fs.open(file, 'w');
    try {
      await handle.write(Buffer.from('0123456789'), 0, 10, size - 10);
    } finally {
      await handle.close();
    }
    try {
      await recordObject(t().db, { bucket: 'videos', key, ownerId: g.userId, size, contentType: 'video/mp4', sha256: 'a'.repeat(64) });
      const url = new URL(await t().services.store.signedUrl('videos', key, 60));
      const signed = url.pathname + url.search;

      const tail = await get(signed, { range: 'bytes=-10' });
      expect(tail.status, await tail.clone().text()).toBe(206);
      expect(tail.headers.get('content-range')).toBe(`bytes ${size - 10}-${size - 1}/${size}`);
      expect(await tail.text()).toBe('0123456789');
      const middle = await get(signed, { range: 'bytes=1000000-1000007' });
      expect(middle.status).toBe(206);
      expect(Buffer.from(await middle.arrayBuffer())).toEqual(Buffer.alloc(8));

      const whole = await get(signed);
      expect(whole.status).toBe(200);
      expect(whole.headers.get('content-length')).toBe(String(size));
      const reader = whole.body!.getReader();
      const chunk = await reader.read();
      expect(chunk.done).toBe(false);
      expect(chunk.value!.length).toBeGreaterThan(0);
      expect(chunk.value!.length).toBeLessThan(16 * 1024 * 1024);
      await reader.cancel();
    } finally {
      await fs.rm(file, { force: true });
    }
  });
});
