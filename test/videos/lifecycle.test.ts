import { describe, expect, it } from 'vitest';
import { SimulatorProvider } from '../../src/providers/simulator.js';
import { useTestApp } from '../support/harness.js';

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

describe('video generation with the simulator and the real worker', () => {
  const t = useTestApp();

  it('generate → queued → completed: hold captured, history shows it, the signed URL downloads the MP4', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: '  a red fox running through snow  ' }));
    // docs/reference/ios-app.md §2.10: job_id, status, credits_used are required.
    expect(res).toMatchObject({ status: 'pending', credits_used: 1, credits_remaining: 9 });
    const done = await t().waitForJob(g.accessToken, res.job_id);
    expect(done).toMatchObject({ job_id: res.job_id, status: 'completed', prompt: 'a red fox running through snow', model_name: 'Simulator', credits_used: 1, error_code: null });
    expect(done.created_at).toMatch(ISO);

    const credits = await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }));
    expect(credits).toEqual({ credits_remaining: 9, balance: 9, held: 0, debt: 0 });

    const video = await fetchLocal(t(), done.video_url);
    expect(video.status).toBe(200);
    expect(video.headers.get('content-type')).toBe('video/mp4');
    const bytes = Buffer.from(await video.arrayBuffer());
    expect(bytes.subarray(4, 8).toString()).toBe('ftyp'); // an MP4
    const thumb = await fetchLocal(t(), done.thumbnail_url);
    expect(thumb.headers.get('content-type')).toBe('image/jpeg');

    const history = await t().json(t().get('/functions/v1/get-video-jobs?limit=20&offset=0', { token: g.accessToken }));
    expect(history.jobs).toHaveLength(1);
    // §2.13: the app's strict decoder needs exactly these keys with these types.
    const [row] = history.jobs;
    for (const k of ['job_id', 'prompt', 'model_name', 'status', 'created_at']) expect(typeof row[k]).toBe('string');
    expect(typeof row.credits_used).toBe('number');
    expect(['pending', 'processing', 'completed', 'failed']).toContain(row.status);
  });

  it('a theme picks the model and its default settings; the price is what the app pre-checks (duration)', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const themes = await t().json<any[]>(t().get('/rest/v1/themes?select=id,name'));
    const res = await t().json(t().generate(g, { theme_id: themes[0].id, prompt: 'festive lights', settings: { resolution: '720p', aspect_ratio: '16:9', duration: 8 } }));
    expect(res.credits_used).toBe(8);
    expect(res.credits_remaining).toBe(2);
    const job = await t().db.query('SELECT model_id, settings, provider, credits_used FROM video_jobs WHERE job_id = $1', [res.job_id]);
    expect(job.rows[0]).toMatchObject({ model_id: 'veo-3.1-text-to-video', provider: 'simulator', credits_used: 8, settings: { duration: 8, resolution: '720p', aspect_ratio: '16:9' } });
    const done = await t().waitForJob(g.accessToken, res.job_id);
    expect(done.status).toBe('completed');
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(2);
  });

  it('a rejected prompt fails with ERR_5003 and every credit comes back', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'something [sim:reject]' }));
    const done = await t().waitForJob(g.accessToken, res.job_id);
    expect(done).toMatchObject({ status: 'failed', error_code: 'ERR_5003', video_url: null });
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
  });

  it('history pages with limit/offset and with next_cursor, newest first', async () => {
    const g = await t().createGuest();
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: `clip number ${i}` }))).job_id);
    const newestFirst = [...ids].reverse();
    const p1 = await t().json(t().get('/functions/v1/get-video-jobs?limit=2', { token: g.accessToken }));
    expect(p1.jobs.map((j: any) => j.job_id)).toEqual(newestFirst.slice(0, 2));
    const p2 = await t().json(t().get(`/functions/v1/get-video-jobs?limit=2&cursor=${p1.next_cursor}`, { token: g.accessToken }));
    expect(p2.jobs.map((j: any) => j.job_id)).toEqual(newestFirst.slice(2, 4));
    const p3 = await t().json(t().get('/functions/v1/get-video-jobs?limit=2&offset=4', { token: g.accessToken }));
    expect(p3.jobs.map((j: any) => j.job_id)).toEqual(newestFirst.slice(4));
    expect(p3.next_cursor).toBeNull();
    await t().json(t().get('/functions/v1/get-video-jobs?limit=101', { token: g.accessToken }), 400);
    await t().json(t().get('/functions/v1/get-video-jobs?cursor=garbage', { token: g.accessToken }), 400);
  });

  it('deleting a running job cancels it, returns its credits and hides it', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'never ends [sim:hang]' }));
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(9);
    expect(await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: res.job_id } }))).toEqual({ success: true });
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
    await t().json(t().get(`/functions/v1/get-video-status?job_id=${res.job_id}`, { token: g.accessToken }), 404);
    await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: res.job_id } }), 404);
  });

  it("another user's job is not found, for status and for delete", async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    const res = await t().json(t().generate(a, { model_id: 'simulator-text-to-video', prompt: 'private clip' }));
    await t().json(t().get(`/functions/v1/get-video-status?job_id=${res.job_id}`, { token: b.accessToken }), 404);
    await t().json(t().post('/functions/v1/delete-video-job', { token: b.accessToken, body: { job_id: res.job_id } }), 404);
  });
});

/** The simulator, but its result download waits until the test opens the gate. */
class GatedDownloadSimulator extends SimulatorProvider {
  readonly downloadStarted: Promise<void>;
  private started!: () => void;
  private gate!: () => void;
  private readonly opened = new Promise<void>((resolve) => (this.gate = resolve));
  constructor() {
    super({ delayMs: 0, failureRate: 0 });
    this.downloadStarted = new Promise((resolve) => (this.started = resolve));
  }
  open() {
    this.gate();
  }
  override async download(url: string, maxBytes: number, toFile: string) {
    this.started();
    await this.opened;
    return super.download(url, maxBytes, toFile);
  }
}

describe('a job deleted while its result is being copied', () => {
  const sim = new GatedDownloadSimulator();
  const t = useTestApp({}, { providers: { simulator: sim } });

  it('is refunded, never completed, and the copied files do not stay behind', async () => {
    await t().startWorker();
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'a slow download' }));
    await sim.downloadStarted;
    expect(await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: res.job_id } }))).toEqual({ success: true });
    sim.open();
    // The ingest finishes its copy, finds the job ended and removes what it stored.
    const deadline = Date.now() + 10_000;
    let objects: { key: string; deleted: boolean }[] = [];
    while (Date.now() < deadline) {
      objects = (await t().db.query("SELECT key, deleted_at IS NOT NULL AS deleted FROM storage_objects WHERE bucket = 'videos' AND owner_id = $1", [g.userId])).rows;
      if (objects.length > 0 && objects.every((o) => o.deleted)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.every((o) => o.deleted)).toBe(true);
    for (const o of objects) expect(await t().services.store.get('videos', o.key)).toBeUndefined();
    const job = (await t().db.query('SELECT status, error_code FROM video_jobs WHERE job_id = $1', [res.job_id])).rows[0];
    expect(job).toEqual({ status: 'failed', error_code: 'ERR_4019' });
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
  });
});

describe('two ingests of one job (a poll finds it ingesting while its ingest task runs)', () => {
  const t = useTestApp();

  it('the one that finds the job completed by the other leaves the files alone: they are that job\'s video', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'copied twice at once' }));
    await t().services.jobs.submit(res.job_id);
    await new Promise((r) => setTimeout(r, t().services.config.simulator.delayMs + 100));
    await t().services.jobs.poll(res.job_id);
    expect((await t().db.query('SELECT status FROM video_jobs WHERE job_id = $1', [res.job_id])).rows[0].status).toBe('ingesting');
    await Promise.all([t().services.jobs.ingest(res.job_id), t().services.jobs.poll(res.job_id)]);
    const done = await t().json(t().get(`/functions/v1/get-video-status?job_id=${res.job_id}`, { token: g.accessToken }));
    expect(done).toMatchObject({ status: 'completed' });
    const objects = (await t().db.query("SELECT key, deleted_at FROM storage_objects WHERE bucket = 'videos' AND owner_id = $1", [g.userId])).rows;
    expect(objects.length).toBeGreaterThan(0);
    expect(objects.every((o) => o.deleted_at === null), JSON.stringify(objects)).toBe(true);
    expect((await fetchLocal(t(), done.video_url)).status).toBe(200);
  });
});

/** Signed URLs point at PUBLIC_URL; in-process tests call the app with the same path. */
function fetchLocal(t: ReturnType<ReturnType<typeof useTestApp>>, url: string) {
  const u = new URL(url);
  return t.app.request(u.pathname + u.search);
}
