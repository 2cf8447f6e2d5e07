import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import S3rver from 's3rver';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';
import { serveOverHttp, signedInClient } from '../support/supabase-js.js';

/**
 * The S3 backend against s3rver, a local S3-compatible server over real HTTP: uploads, public reads
 * of inputs, results copied in by the worker, presigned downloads, deletion. s3rver does not check
 * SigV4 signatures, so what the signature itself is worth rests on the AWS SDK's presigner.
 */

const BUCKET = 'rendio-test';
let s3: S3rver;
let endpoint = '';
const dir = mkdtempSync(path.join(tmpdir(), 'rendio-s3rver-'));

beforeAll(async () => {
  s3 = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory: dir, configureBuckets: [{ name: BUCKET, configs: [] }] });
  const info = (await s3.run()) as AddressInfo;
  endpoint = `http://127.0.0.1:${info.port}`;
});

afterAll(async () => {
  await s3.close();
  rmSync(dir, { recursive: true, force: true });
});

const s3Env = () => ({
  STORAGE_BACKEND: 's3',
  S3_BUCKET: BUCKET,
  S3_ENDPOINT: endpoint,
  S3_REGION: 'us-east-1',
  // s3rver's default credentials.
  S3_ACCESS_KEY_ID: 'S3RVER',
  S3_SECRET_ACCESS_KEY: 'S3RVER',
  S3_FORCE_PATH_STYLE: 'true',
});

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);

describe('S3-compatible storage (s3rver)', () => {
  const t = useTestApp(s3Env);

  it('stores the uploaded input in the bucket and serves it at the public URL the app builds', async () => {
    const g = await t().createGuest();
    const upload = await uploadJpeg(t(), g);
    expect(await upload.json()).toEqual({ Key: `thumbnails/${g.userId}/input_1.jpg`, Id: expect.stringMatching(/^\d+$/) });

    // The object really is in S3 under {bucket}/{key}, not on local disk.
    const direct = await fetch(`${endpoint}/${BUCKET}/thumbnails/${g.userId}/input_1.jpg`);
    expect(direct.status).toBe(200);
    expect(Buffer.from(await direct.arrayBuffer())).toEqual(JPEG);

    const pub = await t().app.request(`/storage/v1/object/public/thumbnails/${g.userId}/input_1.jpg`);
    expect(pub.status).toBe(200);
    expect(pub.headers.get('content-type')).toBe('image/jpeg');
    expect(pub.headers.get('x-content-type-options')).toBe('nosniff');
    expect(pub.headers.get('content-security-policy')).toBe("default-src 'none'; sandbox");
    expect(Buffer.from(await pub.arrayBuffer())).toEqual(JPEG);

    // Served by the API from S3, one range at a time (the bytes asked of S3 are that range only).
    const ranged = await t().app.request(`/storage/v1/object/public/thumbnails/${g.userId}/input_1.jpg`, { headers: { range: 'bytes=2-5' } });
    expect(ranged.status, await ranged.clone().text()).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(`bytes 2-5/${JPEG.length}`);
    expect(Buffer.from(await ranged.arrayBuffer())).toEqual(JPEG.subarray(2, 6));
    const suffix = await t().app.request(`/storage/v1/object/public/thumbnails/${g.userId}/input_1.jpg`, { headers: { range: 'bytes=-2' } });
    expect(Buffer.from(await suffix.arrayBuffer())).toEqual(JPEG.subarray(-2));
  });

  const url = serveOverHttp(t);

  it('createSignedUrl() through supabase-js gives a URL it can use: relative to the storage URL, the bytes streamed from S3', async () => {
    const g = await t().createGuest();
    await uploadJpeg(t(), g);
    const sb = await signedInClient(url(), g);
    const signed = await sb.storage.from('thumbnails').createSignedUrl(`${g.userId}/input_1.jpg`, 60);
    expect(signed.error).toBeNull();
    expect(signed.data!.signedUrl).toMatch(new RegExp(`^${url()}/storage/v1/object/sign/thumbnails/${g.userId}/input_1\\.jpg\\?token=`));
    const res = await fetch(signed.data!.signedUrl);
    expect(res.status).toBe(200);
    expect(Buffer.from(await res.arrayBuffer())).toEqual(JPEG);
    // Bound to its object: the token does not open another one.
    const other = signed.data!.signedUrl.replace('input_1.jpg', 'input_2.jpg');
    expect((await fetch(other)).status).toBe(403);
  });

  it('delivers results through presigned S3 URLs, and deleting the job removes the objects', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'waves on a pebble beach' }));
    const done = await t().waitForJob(g.accessToken, res.job_id);
    expect(done.status).toBe('completed');

    // Presigned: it points at the S3 endpoint with a SigV4 query signature and an expiry.
    const videoUrl = new URL(done.video_url);
    expect(videoUrl.origin).toBe(endpoint);
    expect(videoUrl.searchParams.get('X-Amz-Signature')).toMatch(/^[0-9a-f]{64}$/);
    expect(videoUrl.searchParams.get('X-Amz-Expires')).toBe(String(t().services.config.signedUrlTtlSeconds));

    const video = await fetch(done.video_url);
    expect(video.status).toBe(200);
    expect(Buffer.from(await video.arrayBuffer()).subarray(4, 8).toString()).toBe('ftyp');
    // Ranges on a presigned URL are S3's job; the object was stored with our type, not the provider's.
    const head = await fetch(done.video_url, { headers: { range: 'bytes=0-7' } });
    expect(head.status).toBe(206);
    expect(head.headers.get('content-type')).toBe('video/mp4');
    expect(Buffer.from(await head.arrayBuffer()).subarray(4, 8).toString()).toBe('ftyp');
    const thumb = await fetch(done.thumbnail_url);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');

    expect(await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: res.job_id } }))).toEqual({ success: true });
    expect((await fetch(done.video_url)).status).toBe(404);
    expect((await fetch(done.thumbnail_url)).status).toBe(404);
  });
});

describe('S3 unreachable', () => {
  // Nothing listens on port 9 of loopback: every request is refused at once.
  const t = useTestApp({ ...s3Env(), S3_ENDPOINT: 'http://127.0.0.1:9', S3_TIMEOUT_MS: '500' });

  it('an upload answers ERR_6002 (503) and records nothing', async () => {
    const g = await t().createGuest();
    const res = await uploadJpeg(t(), g);
    expect(res.status).toBe(503);
    expect(((await res.json()) as any).error.code).toBe('ERR_6002');
    const { rows } = await t().db.query('SELECT count(*)::int AS n FROM storage_objects');
    expect(rows[0].n).toBe(0);
  });
});

/** The app's upload: raw JPEG bytes into the user's own folder of the inputs bucket. */
function uploadJpeg(t: TestApp, g: Guest) {
  return t.app.request(`/storage/v1/object/thumbnails/${g.userId}/input_1.jpg`, {
    method: 'POST',
    headers: { authorization: `Bearer ${g.accessToken}`, 'content-type': 'image/jpeg' },
    body: JPEG,
  });
}
