import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { FalProvider } from '../src/providers/fal.js';
import { FakeFal } from './fakes/fal.js';
import { useTestApp, type TestApp } from './harness.js';

/**
 * Issue 14 items 2 and 4, against the fal fake: a dead submitter's job is taken over when its
 * lease runs out (not at the minute sweep), a dead worker's queue locks are released, and the
 * sweep never cuts a scheduled retry short.
 */

const VEO = 'veo-3.1-text-to-video';

async function until(fn: () => Promise<boolean>, limitMs = 30_000): Promise<boolean> {
  const deadline = Date.now() + limitMs;
  while (Date.now() < deadline) {
    if (await fn()) return true;
    await new Promise((r) => setTimeout(r, 100));
  }
  return false;
}

async function job(t: TestApp, jobId: string) {
  return (await t.db.query('SELECT * FROM video_jobs WHERE job_id = $1', [jobId])).rows[0];
}

async function queueRow(t: TestApp, jobId: string, task: string) {
  const { rows } = await t.db.query(
    `SELECT j.run_at, j.locked_by FROM graphile_worker._private_jobs j JOIN graphile_worker._private_tasks t ON t.id = j.task_id
      WHERE t.identifier = $1 AND j.payload->>'jobId' = $2 AND j.key IS NOT NULL`,
    [task, jobId],
  );
  return rows[0] as { run_at: string; locked_by: string | null } | undefined;
}

describe('dead workers and scheduled retries', () => {
  const fal = new FakeFal();
  beforeAll(() => fal.start());
  afterAll(() => fal.stop());
  beforeEach(() => fal.server.clearFaults());
  const t = useTestApp(
    () => ({ ...fal.env(), PUBLIC_URL: 'https://api.rendio.test', SUBMIT_LEASE_SECONDS: '2', JOB_QUIET_SECONDS: '1', WORKER_POLL_INTERVAL_MS: '100' }),
    () => ({ providers: { fal: new FalProvider({ ...loadConfig(fal.env()).fal!, timeoutMs: 60_000, jwksMinRefreshMs: 0 }) } }),
  );

  it('a submitter that died mid-call: another worker takes the job over once its lease runs out, without the sweep', { timeout: 60_000 }, async () => {
    const g = await t().createGuest();
    // This submit reaches fal and never comes back: its process is as good as dead.
    const gate = fal.server.gate(/^\/fal-ai\/veo3\.1/);
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt: 'orphaned by a crash', settings: { duration: 4 } }));
    const dying = t().services.jobs.submit(jobId);
    const held = await gate.reached;
    expect((await job(t(), jobId)).submit_lease_until).not.toBeNull();

    await t().startWorker();
    const takenOver = await until(async () => (await job(t(), jobId)).status !== 'queued', 20_000);
    expect(takenOver).toBe(true);
    expect((await job(t(), jobId)).provider_job_id).not.toBeNull();
    // The dead call's answer, if it ever comes, changes nothing.
    gate.release();
    await dying;
    expect(held.path).toMatch(/^\/fal-ai\/veo3\.1/);
    expect((await job(t(), jobId)).status).not.toBe('queued');
    await t().stopWorker();
  });

  it("a worker whose heartbeat stopped: its locked queue rows are released and run elsewhere at once, not after 4 hours", { timeout: 60_000 }, async () => {
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt: 'locked by the dead', settings: { duration: 4 } }));
    // What a kill -9 leaves: the submit locked by a pool that stopped beating long ago.
    await t().db.query("INSERT INTO worker_heartbeats (pool_id, host, pid, beat_at) VALUES ('pool-dead', 'gone', 1, now() - interval '1 hour')");
    await t().db.query(
      `UPDATE graphile_worker._private_jobs SET locked_by = 'pool-dead', locked_at = now(), attempts = 1
        WHERE key = $1`,
      [`submit:${jobId}`],
    );
    await t().startWorker();
    expect(await until(async () => (await job(t(), jobId)).status !== 'queued', 20_000)).toBe(true);
    const stillLocked = async () => (await t().db.query("SELECT count(*)::int AS n FROM graphile_worker._private_jobs WHERE locked_by = 'pool-dead'")).rows[0].n;
    expect(await until(async () => (await stillLocked()) === 0, 20_000)).toBe(true);
    expect((await t().db.query("SELECT count(*)::int AS n FROM worker_heartbeats WHERE pool_id = 'pool-dead'")).rows[0].n).toBe(0);
    await t().stopWorker();
  });

  it('the sweep respects a scheduled retry (Retry-After, backoff, open circuit): it does not resubmit early', { timeout: 60_000 }, async () => {
    fal.server.inject(/^\/fal-ai\/veo3\.1/, { status: 503, body: '{"detail":"overloaded"}', headers: { 'retry-after': '300' }, times: 1 });
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt: 'come back in five minutes', settings: { duration: 4 } }));
    await t().services.jobs.submit(jobId);
    const scheduled = await queueRow(t(), jobId, 'submit_video_job');
    expect(new Date(scheduled!.run_at).getTime()).toBeGreaterThan(Date.now() + 250_000);

    await new Promise((r) => setTimeout(r, 1500)); // quiet for longer than JOB_QUIET_SECONDS
    await t().services.jobs.sweep();
    const after = await queueRow(t(), jobId, 'submit_video_job');
    expect(new Date(after!.run_at).getTime()).toBeGreaterThan(Date.now() + 250_000);
    // Nor does a stray submit (a redelivered queue entry) call the provider before then.
    const calls = fal.server.calls(/^\/fal-ai\/veo3\.1/).length;
    await t().services.jobs.submit(jobId);
    expect(fal.server.calls(/^\/fal-ai\/veo3\.1/).length).toBe(calls);
    expect((await job(t(), jobId)).status).toBe('queued');
    await t().services.jobs.fail(jobId, 'ERR_4019', 'test over');
  });
});
