import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FakeRunway } from '../fakes/runway.js';
import { useTestApp } from '../support/harness.js';

describe('runway provider against the local Runway fake (polling, no webhooks)', () => {
  const runway = new FakeRunway();
  beforeAll(() => runway.start());
  afterAll(() => runway.stop());
  const t = useTestApp(() => runway.env());

  const generate = async (prompt: string, settings: Record<string, unknown> = { duration: 5, aspect_ratio: '9:16' }) => {
    const g = await t().createGuest();
    const res = await t().json(t().generate(g, { model_id: 'runway-gen4.5', prompt, settings }));
    return { g, jobId: res.job_id as string, res };
  };

  /** Drives the job the way the worker would: submit, then poll until it leaves the provider. */
  async function drive(jobId: string) {
    await t().services.jobs.submit(jobId);
    for (let i = 0; i < 40; i++) {
      const { rows } = await t().db.query('SELECT status FROM video_jobs WHERE job_id = $1', [jobId]);
      if (['completed', 'failed'].includes(rows[0].status)) return rows[0].status;
      if (rows[0].status === 'ingesting') await t().services.jobs.ingest(jobId);
      else await t().services.jobs.poll(jobId);
      await new Promise((r) => setTimeout(r, 30));
    }
    throw new Error('job did not finish');
  }

  it('submits text_to_video with a pixel ratio, polls to SUCCEEDED and stores the output', async () => {
    const { g, jobId, res } = await generate('a paper boat on a river');
    expect(res.credits_used).toBe(10); // 2 credits/s × 5 s
    expect(await drive(jobId)).toBe('completed');
    const [task] = [...runway.tasks.values()].filter((x) => x.body.promptText === 'a paper boat on a river');
    expect(task!.body).toEqual({ model: 'gen4.5', promptText: 'a paper boat on a river', ratio: '720:1280', duration: 5 });
    const status = await t().json(t().get(`/functions/v1/get-video-status?job_id=${jobId}`, { token: g.accessToken }));
    expect(status.video_url).toMatch(/\/storage\/v1\/object\/sign\/videos\//);
  });

  it('a SAFETY failure is ERR_5003 and refunds; an internal failure is ERR_5002 and refunds', async () => {
    const safety = await generate('forbidden [runway:safety]');
    expect(await drive(safety.jobId)).toBe('failed');
    const internal = await generate('unlucky [runway:fail]');
    expect(await drive(internal.jobId)).toBe('failed');
    const { rows } = await t().db.query('SELECT job_id, error_code FROM video_jobs WHERE job_id = ANY($1)', [[safety.jobId, internal.jobId]]);
    expect(Object.fromEntries(rows.map((r) => [r.job_id, r.error_code]))).toEqual({ [safety.jobId]: 'ERR_5003', [internal.jobId]: 'ERR_5002' });
    for (const { g } of [safety, internal]) {
      expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
    }
  });

  it("users read our localized failure text; Runway's own words and failure code stay in provider_error for operators", async () => {
    const { g, jobId } = await generate('forbidden [runway:safety]');
    await t().db.query("UPDATE users SET language = 'es' WHERE id = $1", [g.userId]);
    expect(await drive(jobId)).toBe('failed');
    const { rows } = await t().db.query('SELECT error_message, provider_error FROM video_jobs WHERE job_id = $1', [jobId]);
    expect(rows[0].error_message).toBe('El proveedor de vídeo rechazó esta descripción. Tus créditos fueron devueltos.');
    expect(rows[0].provider_error).toMatch(/^runway: .*\(SAFETY\.INPUT\.TEXT\)$/);
    const status = await t().json(t().get(`/functions/v1/get-video-status?job_id=${jobId}`, { token: g.accessToken }));
    expect(status).toMatchObject({ status: 'failed', error_code: 'ERR_5003', error_message: rows[0].error_message });
    expect(JSON.stringify(status)).not.toMatch(/SAFETY|moderation/);
  });

  it('an undeclared resolution is ignored, not mapped: the app\'s "1080p" on Gen-4.5 still sends 1280:720', async () => {
    const { jobId } = await generate('a lighthouse at dawn', { resolution: '1080p', aspect_ratio: 'auto', duration: 5 });
    expect(await drive(jobId)).toBe('completed');
    const { rows } = await t().db.query('SELECT settings FROM video_jobs WHERE job_id = $1', [jobId]);
    expect(rows[0].settings).toEqual({ duration: 5, aspect_ratio: '16:9' });
    const [task] = [...runway.tasks.values()].filter((x) => x.body.promptText === 'a lighthouse at dawn');
    expect(task!.body.ratio).toBe('1280:720');
  });

  it('a prompt over 1000 UTF-16 code units is a localized 400 before any hold; 1000 is accepted', async () => {
    const g = await t().createGuest();
    // "🎬" is two UTF-16 code units: 500 of them are 1000 units, 1 more is over.
    const over = await t().json(t().generate(g, { model_id: 'runway-gen4.5', prompt: `${'🎬'.repeat(500)}a`, settings: { duration: 5 } }), 400);
    expect(over.error).toMatchObject({ code: 'ERR_4030', details: { field: 'prompt', max_length: 1000 } });
    expect(over.error.message).toBe('The prompt is too long for this model: at most 1000 characters.');
    const tr = await t().json(
      t().post('/functions/v1/generate-video', {
        token: g.accessToken,
        body: { model_id: 'runway-gen4.5', prompt: 'x'.repeat(1001), settings: { duration: 5 } },
        headers: { 'idempotency-key': 'k-tr', 'accept-language': 'tr' },
      }),
      400,
    );
    expect(tr.error.message).toBe('İstem bu model için çok uzun: en fazla 1000 karakter.');
    const { rows } = await t().db.query('SELECT count(*)::int AS n FROM video_jobs WHERE user_id = $1', [g.userId]);
    expect(rows[0].n).toBe(0);
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
    await t().json(t().generate(g, { model_id: 'runway-gen4.5', prompt: '🎬'.repeat(500), settings: { duration: 5 } }));
  });

  it('a duration the catalogue offers but the provider cannot do is refused before the hold (ERR_4031)', async () => {
    const g = await t().createGuest();
    await t().db.query(`UPDATE models SET required_fields = jsonb_set(required_fields, '{settings,duration,options}', '[5,10,12]') WHERE id = 'runway-gen4.5'`);
    const res = await t().json(t().generate(g, { model_id: 'runway-gen4.5', prompt: 'a long take', settings: { duration: 12 } }), 400);
    expect(res.error).toMatchObject({ code: 'ERR_4031', details: { field: 'settings.duration', allowed: '2, 3, 4, 5, 6, 7, 8, 9, 10' } });
  });

  it('deleting a running task cancels it at Runway (DELETE) and refunds', async () => {
    const { g, jobId } = await generate('slow one [runway:hang]');
    await t().services.jobs.submit(jobId);
    const { rows } = await t().db.query('SELECT provider_job_id FROM video_jobs WHERE job_id = $1', [jobId]);
    await t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: jobId } }));
    expect((await t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }))).credits_remaining).toBe(10);
    // The cancel was queued with the failure; the worker sends it.
    await t().startWorker();
    const sub = async () => (await t().db.query('SELECT cancel_answer, billed FROM provider_submissions WHERE provider_job_id = $1', [rows[0].provider_job_id])).rows;
    for (let i = 0; i < 200 && (await sub())[0]?.cancel_answer == null; i++) await new Promise((r) => setTimeout(r, 100));
    await t().stopWorker();
    expect(await sub()).toEqual([{ cancel_answer: 'cancelled', billed: false }]);
    expect(runway.tasks.get(rows[0].provider_job_id)!.deleted).toBe(true);
    expect(runway.tasks.get(rows[0].provider_job_id)!.cancelled).toBe(true);
  });

  it("a cancel says what Runway did: a finished task is read, not deleted, and answered already_finished (billed); an unknown one is 'unknown'", async () => {
    const { jobId } = await generate('done before the cancel');
    await t().services.jobs.submit(jobId);
    const { rows } = await t().db.query('SELECT provider_job_id, provider_model_id FROM video_jobs j JOIN models m ON m.id = j.model_id WHERE job_id = $1', [jobId]);
    const ref = { providerJobId: rows[0].provider_job_id as string, state: null, providerModelId: rows[0].provider_model_id as string };
    await new Promise((r) => setTimeout(r, runway.timing.pendingMs + runway.timing.runningMs + 50));
    expect(await t().services.jobs.cancelRequest('runway', ref)).toBe('already_finished');
    expect(runway.tasks.get(ref.providerJobId)!.deleted).toBe(false);
    expect(runway.billedTasks().map((x) => x.id)).toContain(ref.providerJobId);
    const sub = await t().db.query('SELECT cancel_answer, billed FROM provider_submissions WHERE provider_job_id = $1', [ref.providerJobId]);
    expect(sub.rows).toEqual([{ cancel_answer: 'already_finished', billed: true }]);
    expect(await t().services.jobs.cancelRequest('runway', { ...ref, providerJobId: '00000000-0000-4000-8000-000000000000' })).toBe('unknown');
    expect(await drive(jobId)).toBe('completed');
  });

  it('Runway refusing the request (400) fails the job without retrying and refunds', async () => {
    runway.server.inject(/text_to_video/, { status: 400, body: '{"error":"promptText is too long"}', times: 1 });
    const { jobId } = await generate('rejected at submit');
    await t().services.jobs.submit(jobId);
    const { rows } = await t().db.query('SELECT status, error_code, attempts FROM video_jobs WHERE job_id = $1', [jobId]);
    expect(rows[0]).toEqual({ status: 'failed', error_code: 'ERR_5002', attempts: 1 });
  });
});
