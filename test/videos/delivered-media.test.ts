import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { inspectMp4 } from '../../src/media/inspect.js';
import { FalProvider } from '../../src/providers/fal.js';
import { FakeFal } from '../fakes/fal.js';
import { FakeRunway } from '../fakes/runway.js';
import { consoleCookie, createAdmin } from '../support/admin.js';
import { useTestApp, type TestApp } from '../support/harness.js';
import { temporaryFolder } from '../support/temp.js';

/**
 * The user pays only for a video that plays: every delivered file is checked before the capture,
 * and every completed video gets a poster (docs/ARCHITECTURE.md "Ingest").
 */

/** Each broken delivery, and the reason ingest gives for refusing it. */
const BROKEN = [
  ['empty', 'empty'],
  ['html', 'not_mp4'],
  ['truncated', 'truncated'],
  ['short', 'duration'],
  ['aspect', 'aspect_ratio'],
  ['codec', 'codec'],
] as const;

const BROKEN_MESSAGE = 'The video provider delivered a broken video. Your credits were returned.';

async function rejectedCount(t: TestApp, provider: string, reason: string): Promise<number> {
  const metric = await t.services.metrics.registry.getSingleMetric('rendio_media_rejected_total')!.get();
  return metric.values.find((v) => v.labels.provider === provider && v.labels.reason === reason)?.value ?? 0;
}

async function jobRow(t: TestApp, jobId: string) {
  return (await t.db.query('SELECT * FROM video_jobs WHERE job_id = $1', [jobId])).rows[0];
}

/** Each broken job failed with ERR_5004 and our text, kept what was delivered, stored nothing, and was counted once. */
async function expectRejected(t: TestApp, provider: string, jobs: { jobId: string; reason: string }[]) {
  for (const { jobId, reason } of jobs) {
    const row = await jobRow(t, jobId);
    expect(row, reason).toMatchObject({ status: 'failed', error_code: 'ERR_5004', error_message: BROKEN_MESSAGE, video_key: null, media_codec: null });
    expect(row.media_rejection).toMatchObject({ reason });
    expect(row.provider_error).toContain(reason);
    const stored = await t.db.query("SELECT count(*)::int AS n FROM storage_objects WHERE bucket = 'videos' AND key LIKE $1 AND deleted_at IS NULL", [`%${jobId}%`]);
    expect(stored.rows[0].n).toBe(0);
    const release = await t.db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE hold_id = $1 AND kind = 'release'", [row.hold_id]);
    expect(release.rows[0].n).toBe(1);
    expect(await rejectedCount(t, provider, reason)).toBe(1);
  }
}

/** The app's history replay (ios-app.md §2.13): its keys and types, and a poster for every completed job. */
function expectHistoryAsTheAppDecodesIt(history: { jobs: any[] }) {
  for (const job of history.jobs) {
    for (const k of ['job_id', 'prompt', 'model_name', 'status', 'created_at']) expect(typeof job[k]).toBe('string');
    expect(typeof job.credits_used).toBe('number');
    expect(['pending', 'processing', 'completed', 'failed']).toContain(job.status);
    if (job.status === 'completed') expect(typeof job.thumbnail_url, `thumbnail_url of ${job.job_id}`).toBe('string');
  }
}

/** Submits, then polls and ingests until the job ends (no webhook reaches a test's URL; no waiting for the worker's poll interval). */
async function drive(t: TestApp, jobId: string): Promise<void> {
  await t.services.jobs.submit(jobId);
  for (let i = 0; i < 200 && !['completed', 'failed'].includes((await jobRow(t, jobId)).status); i++) {
    await new Promise((r) => setTimeout(r, 50));
    await t.services.jobs.poll(jobId);
    await t.services.jobs.ingest(jobId);
  }
}

async function fetchLocal(t: TestApp, url: string): Promise<Response> {
  const u = new URL(url);
  return t.app.request(u.pathname + u.search);
}

describe('delivered videos from the simulator, with ffmpeg', () => {
  const t = useTestApp();

  it('each broken delivery fails its job with ERR_5004, releases its credits, keeps what was delivered and is counted', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const jobs = [];
    for (const [fault, reason] of BROKEN) {
      const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: `a broken clip [sim:video-${fault}]` }));
      jobs.push({ jobId: res.job_id as string, reason });
    }
    for (const { jobId } of jobs) expect((await t().waitForJob(g.accessToken, jobId)).status).toBe('failed');
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
    await expectRejected(t(), 'simulator', jobs);
    // The operator sees what the host answered: an HTML page's own text.
    const html = await jobRow(t(), jobs[1]!.jobId);
    expect(html.media_rejection.contentType).toBe('text/html');
    expect(html.media_rejection.start).toContain('<title>502 Bad Gateway</title>');
  });

  it('a valid video completes with an ffmpeg poster; history returns both with its media; an index at the end is moved to the front', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const plain = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a red fox in snow' }));
    const moovLast = await t().json(
      t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a tall clip [sim:video-moov-last]', settings: { duration: 8, aspect_ratio: '9:16' } }),
    );
    for (const id of [plain.job_id, moovLast.job_id]) expect((await t().waitForJob(g.accessToken, id)).status).toBe('completed');

    const history = await t().json(t().get('/functions/v1/get-video-jobs?limit=20&offset=0', { token: g.accessToken }));
    expectHistoryAsTheAppDecodesIt(history);
    const byId = Object.fromEntries(history.jobs.map((j: any) => [j.job_id, j]));
    expect(byId[plain.job_id].media).toMatchObject({ duration_seconds: 4, width: 320, height: 180, codec: 'avc1' });
    expect(byId[moovLast.job_id].media).toMatchObject({ duration_seconds: 8, width: 180, height: 320, codec: 'avc1' });
    expect((await jobRow(t(), plain.job_id)).poster_source).toBe('ffmpeg');

    const poster = await fetchLocal(t(), byId[plain.job_id].thumbnail_url);
    expect(poster.headers.get('content-type')).toBe('image/jpeg');
    const jpeg = Buffer.from(await poster.arrayBuffer());
    expect(jpeg.subarray(0, 3)).toEqual(Buffer.from([0xff, 0xd8, 0xff]));
    expect(jpeg.length).toBeLessThan(100 * 1024);
    // Not the provider's thumbnail: a frame of the video.
    expect(jpeg.equals(await fs.readFile(path.resolve(import.meta.dirname, '../../assets/simulator/sample.jpg')))).toBe(false);

    const stored = await fetchLocal(t(), byId[moovLast.job_id].video_url);
    const file = path.join(temporaryFolder('media-'), 'stored.mp4');
    await fs.writeFile(file, Buffer.from(await stored.arrayBuffer()));
    const facts = await inspectMp4(file);
    expect(facts).toMatchObject({ faststart: true, durationSeconds: 8, width: 180, height: 320 });
    expect(byId[moovLast.job_id].media.size_bytes).toBe(facts.sizeBytes);

    // The admin's job page shows the same facts.
    const admin = await createAdmin(t());
    const page = await t().get(`/admin/jobs/${plain.job_id}`, { headers: { cookie: await consoleCookie(t(), admin) } });
    expect(await page.text()).toMatch(/Video: 4\.00 s · 320×180 · avc1 · \d+ bytes · poster ffmpeg/);
  });
});

describe('delivered videos from the simulator, without ffmpeg', () => {
  const t = useTestApp({ FFMPEG_PATH: '/nonexistent/ffmpeg' });

  it("ffmpeg missing: the provider's thumbnail is kept, or none; the job completes either way", async () => {
    expect(await t().services.media.posterMaker()).toBeUndefined();
    await t().startWorker();
    const g = await t().createGuest();
    const withThumb = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a fox' }));
    const without = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a fox [sim:no-thumbnail]' }));
    const a = await t().waitForJob(g.accessToken, withThumb.job_id);
    const b = await t().waitForJob(g.accessToken, without.job_id);
    expect(a).toMatchObject({ status: 'completed' });
    expect(b).toMatchObject({ status: 'completed', thumbnail_url: null });
    const thumb = Buffer.from(await (await fetchLocal(t(), a.thumbnail_url)).arrayBuffer());
    expect(thumb.equals(await fs.readFile(path.resolve(import.meta.dirname, '../../assets/simulator/sample.jpg')))).toBe(true);
    expect((await jobRow(t(), withThumb.job_id)).poster_source).toBe('provider');
    expect((await jobRow(t(), without.job_id)).poster_source).toBeNull();
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(8);
  });
});

describe('delivered videos from the simulator, with an ffmpeg that makes no poster', () => {
  // /bin/true answers -version and then writes nothing: a poster that fails on a video that passed its checks.
  const t = useTestApp({ FFMPEG_PATH: '/bin/true' });

  it("the job completes with the provider's thumbnail instead", async () => {
    expect(await t().services.media.posterMaker()).toMatchObject({ path: '/bin/true' });
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a fox' }));
    await drive(t(), res.job_id);
    expect(await jobRow(t(), res.job_id)).toMatchObject({ status: 'completed', poster_source: 'provider', media_codec: 'avc1' });
    expect((await t().json(t().get('/functions/v1/get-video-jobs', { token: g.accessToken }))).jobs[0].thumbnail_url).toEqual(expect.any(String));
  });
});

describe('delivered videos from the fal fake', () => {
  const fal = new FakeFal();
  beforeAll(() => fal.start());
  afterAll(() => fal.stop());
  const t = useTestApp(
    () => ({ ...fal.env(), PROVIDER_RETRY_BASE_MS: '20', PUBLIC_URL: 'https://api.rendio.test' }),
    () => ({ providers: { fal: new FalProvider({ ...loadConfig(fal.env()).fal!, timeoutMs: 2000, jwksMinRefreshMs: 0 }) } }),
  );

  async function run(prompt: string): Promise<{ jobId: string; token: string }> {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'veo-3.1-text-to-video', prompt, settings: { duration: 4 } }));
    await drive(t(), res.job_id);
    return { jobId: res.job_id, token: g.accessToken };
  }

  it('each broken file fails its job and releases its credits; a valid one completes with a poster in history', async () => {
    const broken = await Promise.all(BROKEN.map(async ([fault, reason]) => ({ ...(await run(`a clip [fal:video-${fault}]`)), reason })));
    await expectRejected(t(), 'fal', broken);
    for (const { token } of broken) expect((await t().json(t().get('/functions/v1/get-user-credits', { token }))).credits_remaining).toBe(10);

    const ok = await run('a lighthouse [fal:video-moov-last]');
    expect((await jobRow(t(), ok.jobId)).status).toBe('completed');
    const history = await t().json(t().get('/functions/v1/get-video-jobs', { token: ok.token }));
    expectHistoryAsTheAppDecodesIt(history);
    expect(history.jobs[0]).toMatchObject({ status: 'completed', media: { duration_seconds: 4, width: 320, height: 180 } });
  });
});

describe('delivered videos from the Runway fake', () => {
  const runway = new FakeRunway();
  beforeAll(() => runway.start());
  afterAll(() => runway.stop());
  const t = useTestApp(() => runway.env());

  it('each broken file fails its job and releases its credits; a valid one completes with a poster in history', async () => {
    const started = await Promise.all(
      [...BROKEN.map(([fault, reason]) => ({ prompt: `a clip [runway:video-${fault}]`, reason })), { prompt: 'a harbour at dawn', reason: '' }].map(async ({ prompt, reason }) => {
        const g = await t().createGuest();
        const res = await t().json(t().generate(g, { model_id: 'runway-gen4.5', prompt, settings: { duration: 5, aspect_ratio: '9:16' } }));
        await drive(t(), res.job_id);
        return { jobId: res.job_id as string, token: g.accessToken, reason };
      }),
    );
    const broken = started.filter((s) => s.reason);
    await expectRejected(t(), 'runway', broken);
    for (const { token } of broken) expect((await t().json(t().get('/functions/v1/get-user-credits', { token }))).credits_remaining).toBe(10);

    const ok = started.at(-1)!;
    const history = await t().json(t().get('/functions/v1/get-video-jobs', { token: ok.token }));
    expectHistoryAsTheAppDecodesIt(history);
    expect(history.jobs[0]).toMatchObject({ status: 'completed', media: { duration_seconds: 5, width: 180, height: 320, codec: 'avc1' } });
  });
});
