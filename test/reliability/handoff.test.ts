import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { FalProvider } from '../../src/providers/fal.js';
import { FakeFal } from '../fakes/fal.js';
import { FakeRunway } from '../fakes/runway.js';
import { useTestApp, type TestApp } from '../support/harness.js';

/**
 * A job's state and its next queued task commit together: when queueing the next step fails
 * (here a trigger on graphile-worker's jobs table refuses the insert once, as a dropped connection
 * would refuse it), the job still moves on through the queue's own retry, not the minute sweep.
 * The sweep is out of the picture: JOB_QUIET_SECONDS is an hour, and each job must end within a
 * bound far below the fallback poll's 60 s.
 */

const BOUND_MS = 25_000;

/** The next insert of `task` for this job into graphile-worker's queue raises (once: a sequence is not rolled back). */
async function refuseNextEnqueue(t: TestApp, task: string, jobId: string): Promise<() => Promise<number>> {
  const tag = `${task}_${jobId.replace(/-/g, '')}`;
  await t.db.query(`CREATE SEQUENCE IF NOT EXISTS fault_${tag}`);
  await t.db.query(
    `CREATE OR REPLACE FUNCTION fault_${tag}() RETURNS trigger LANGUAGE plpgsql AS $$
     BEGIN
       IF NEW.payload->>'jobId' = '${jobId}'
          AND (SELECT identifier FROM graphile_worker._private_tasks WHERE id = NEW.task_id) = '${task}'
          AND nextval('fault_${tag}') = 1 THEN
         RAISE EXCEPTION 'injected: the enqueue of ${task} failed';
       END IF;
       RETURN NEW;
     END $$`,
  );
  await t.db.query(`CREATE TRIGGER fault_${tag} BEFORE INSERT ON graphile_worker._private_jobs FOR EACH ROW EXECUTE FUNCTION fault_${tag}()`);
  // How many inserts the trigger has seen fire for this job and task (1 = the refused one only).
  return async () => Number((await t.db.query(`SELECT last_value, is_called FROM fault_${tag}`)).rows.map((r) => (r.is_called ? r.last_value : 0))[0]);
}

describe('the next step is queued with the state change (polled provider: Runway)', () => {
  const runway = new FakeRunway();
  beforeAll(() => runway.start());
  afterAll(() => runway.stop());
  const t = useTestApp(() => ({ ...runway.env(), JOB_QUIET_SECONDS: '3600', WORKER_POLL_INTERVAL_MS: '100' }));

  it('submit → poll: the poll that could not be queued does not leave a submitted job to the sweep', { timeout: 60_000 }, async () => {
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: 'runway-gen4.5', prompt: 'a kite over dunes', settings: { duration: 5, aspect_ratio: '9:16' } }));
    const fired = await refuseNextEnqueue(t(), 'poll_video_job', jobId);
    const started = Date.now();
    await t().startWorker();
    const done = await t().waitForJob(g.accessToken, jobId, ['completed', 'failed'], BOUND_MS);
    expect(done, JSON.stringify(done)).toMatchObject({ status: 'completed' });
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect(await fired()).toBeGreaterThanOrEqual(1); // the fault did fire
    // One task at Runway: the answer in hand was stored again, not thrown away and asked for twice.
    expect([...runway.tasks.values()].filter((x) => x.body.promptText === 'a kite over dunes')).toHaveLength(1);
    await t().stopWorker();
  });
});

describe('the next step is queued with the state change (webhook provider: fal)', () => {
  const fal = new FakeFal();
  beforeAll(() => fal.start());
  afterAll(() => fal.stop());
  const t = useTestApp(
    () => ({ ...fal.env(), PUBLIC_URL: 'https://api.rendio.test', JOB_QUIET_SECONDS: '3600', WORKER_POLL_INTERVAL_MS: '100' }),
    () => ({ providers: { fal: new FalProvider({ ...loadConfig(fal.env()).fal!, timeoutMs: 10_000, jwksMinRefreshMs: 0 }) } }),
  );

  it('webhook → ingest: the ingest that could not be queued does not leave the job to the fallback poll or the sweep', { timeout: 60_000 }, async () => {
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: 'veo-3.1-text-to-video', prompt: 'rain on a tin roof', settings: { duration: 4 } }));
    await t().services.jobs.submit(jobId);
    const requestId = (await t().db.query('SELECT provider_job_id FROM video_jobs WHERE job_id = $1', [jobId])).rows[0].provider_job_id as string;
    const fired = await refuseNextEnqueue(t(), 'ingest_video_job', jobId);
    // fal finishes and calls back; the worker applies the callback.
    await new Promise((r) => setTimeout(r, fal.timing.queuedMs + fal.timing.runningMs + 50));
    const { path, init } = fal.callback(requestId);
    expect(await (await t().app.request(path, init)).json()).toEqual({ received: true, outcome: 'accepted' });
    const started = Date.now();
    await t().startWorker();
    const done = await t().waitForJob(g.accessToken, jobId, ['completed', 'failed'], BOUND_MS);
    expect(done, JSON.stringify(done)).toMatchObject({ status: 'completed' });
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    expect(await fired()).toBeGreaterThanOrEqual(1);
    await t().stopWorker();
  });
});
