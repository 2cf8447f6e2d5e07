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

  it('a lost submit answer: the request fal created anyway reports first and is adopted, the resubmission is cancelled, and it is counted', { timeout: 60_000 }, async () => {
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt: 'answer lost in transit', settings: { duration: 4 } }));
    fal.timing = { queuedMs: 50, runningMs: 600_000 }; // nothing finishes by itself here
    const before = new Set(fal.requests.keys());
    fal.loseResponses(1, 'reset');
    await t().services.jobs.submit(jobId);
    const [lost] = [...fal.requests.keys()].filter((id) => !before.has(id));
    expect(lost).toBeDefined();
    expect((await job(t(), jobId)).status).toBe('queued');

    // The retry (its backoff cut short here) gets through: a second request for the same job.
    await t().db.query('UPDATE video_jobs SET next_attempt_at = NULL WHERE job_id = $1', [jobId]);
    await t().services.jobs.submit(jobId);
    const second = (await job(t(), jobId)).provider_job_id as string;
    expect(second).not.toBe(lost);

    // The lost one finishes first (the other is still running) and calls back on the URL that names the job and the attempt.
    const hook = fal.webhookFor(lost!);
    const url = new URL(fal.requests.get(lost!)!.webhook!);
    expect(url.searchParams.get('job_id')).toBe(jobId);
    const res = await t().app.request(url.pathname + url.search, { method: 'POST', body: hook.body, headers: hook.headers });
    expect(await res.json()).toEqual({ received: true, outcome: 'orphan' });
    await t().startWorker();
    const done = await t().waitForJob(g.accessToken, jobId);
    expect(done).toMatchObject({ status: 'completed' });
    expect((await job(t(), jobId)).provider_job_id).toBe(lost);
    expect(fal.requests.get(second)!.cancelled).toBe(true);
    const submissions = await t().db.query('SELECT attempt, provider_job_id, outcome FROM provider_submissions WHERE job_id = $1 ORDER BY attempt', [jobId]);
    expect(submissions.rows).toEqual([
      { attempt: 1, provider_job_id: lost, outcome: 'adopted' },
      { attempt: 2, provider_job_id: second, outcome: 'cancelled' },
    ]);
    const metrics = await t().services.metrics.registry.metrics();
    expect(metrics).toMatch(/rendio_provider_submissions_total\{provider="fal",outcome="orphan_adopted"\} 1/);
    expect(metrics).toMatch(/rendio_provider_submissions_total\{provider="fal",outcome="lost"\} 1/);
    // Charged once.
    const captures = await t().db.query("SELECT count(*)::int AS n FROM ledger_entries WHERE job_id = $1 AND kind = 'capture'", [jobId]);
    expect(captures.rows[0].n).toBe(1);
    await t().stopWorker();
    fal.timing = { queuedMs: 50, runningMs: 150 };
  });
});
