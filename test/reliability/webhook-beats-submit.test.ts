import { isDeepStrictEqual } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { FalProvider } from '../../src/providers/fal.js';
import { FakeFal } from '../fakes/fal.js';
import { callBack, jobRow, submitLosingAnswer, until } from '../support/fal-submissions.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * A provider callback that beats the submit's answer, and two requests for one
 * job. The request that reports a result first is the one kept; a request is cancelled only when
 * another one of the job is kept and it is still alive and unfinished; a report (callback or poll)
 * of a request the job has replaced meanwhile changes nothing. Every order here is made
 * by the fal fake (held answers, lost answers, requests finished or crashed on cue) and by
 * applying each stored callback when the scenario says, as the worker would.
 */

const VEO = 'veo-3.1-text-to-video';
const QUICK = { queuedMs: 50, runningMs: 150 };

const fal = new FakeFal();
beforeAll(() => fal.start());
afterAll(() => fal.stop());

/** Submits with fal's answer held: the request exists at fal (it runs, it can call back) while our submit waits for the answer. */
async function submitSlowly(t: TestApp, jobId: string): Promise<{ requestId: string; answer: () => Promise<void> }> {
  const held = fal.holdNextAnswer();
  const submitting = t.services.jobs.submit(jobId);
  const requestId = await held.created;
  return { requestId, answer: () => (held.release(), submitting) };
}

/** fal ends this request (with its video, or a runner crash) and calls back; returns our answer to the callback. */
async function reports(t: TestApp, requestId: string, end: 'video' | 'crash' = 'video'): Promise<unknown> {
  if (end === 'crash') fal.crash(requestId);
  fal.finish(requestId);
  return callBack(t, fal, requestId);
}

/** Applies the stored callback of this request now (what the worker's apply_webhook_event does). */
async function applyCallback(t: TestApp, requestId: string): Promise<void> {
  const { rows } = await t.db.query('SELECT id FROM webhook_events WHERE event_id = $1', [requestId]);
  await t.services.jobs.applyWebhookEvent(rows[0].id as number);
}

/** Cancels of this request waiting in the queue (one is queued in the transaction that makes it redundant). */
async function cancelsQueued(t: TestApp, requestId: string): Promise<number> {
  const { rows } = await t.db.query(
    `SELECT count(*)::int AS n FROM graphile_worker._private_jobs j JOIN graphile_worker._private_tasks k ON k.id = j.task_id
      WHERE k.identifier = 'cancel_provider_request' AND j.payload->>'providerJobId' = $1`,
    [requestId],
  );
  return rows[0].n as number;
}

/** The duplicates-billed counter for fal (the app, so its metrics, is shared by the tests of a describe). */
async function duplicatesBilled(t: TestApp): Promise<number> {
  const metrics = await t.services.metrics.registry.metrics();
  return Number(/rendio_provider_duplicates_billed_total\{provider="fal"\} (\d+)/.exec(metrics)?.[1] ?? 0);
}

const cancelsSent = (...requestIds: string[]) => fal.server.calls(/\/cancel$/).filter((c) => requestIds.some((id) => c.path.includes(`/requests/${id}/`)));

async function submissions(t: TestApp, jobId: string) {
  const { rows } = await t.db.query('SELECT attempt, provider_job_id, outcome, cancel_answer, billed FROM provider_submissions WHERE job_id = $1 ORDER BY attempt', [jobId]);
  return rows;
}

async function ledgerOf(t: TestApp, jobId: string) {
  const { rows } = await t.db.query('SELECT kind, count(*)::int AS n FROM ledger_entries WHERE job_id = $1 GROUP BY kind ORDER BY kind', [jobId]);
  return Object.fromEntries(rows.map((r) => [r.kind, r.n]));
}

/** The worker takes the job on: it completes with the kept request's video, charged once, with these submissions on record (a queued cancel's answer included). */
async function completesWith(t: TestApp, g: Guest, jobId: string, kept: string, recorded: Record<string, unknown>[]): Promise<void> {
  await t.startWorker();
  expect(await t.waitForJob(g.accessToken, jobId)).toMatchObject({ status: 'completed' });
  expect((await jobRow(t, jobId)).provider_job_id).toBe(kept);
  await until(async () => isDeepStrictEqual(await submissions(t, jobId), recorded), 20_000);
  expect(await submissions(t, jobId)).toEqual(recorded);
  expect(await ledgerOf(t, jobId)).toEqual({ capture: 1, hold: 1 });
  await t.stopWorker();
}

describe('a callback that arrives before the submit answer', () => {
  const t = useTestApp(
    () => ({ ...fal.env(), PUBLIC_URL: 'https://api.rendio.test', JOB_QUIET_SECONDS: '3600', WORKER_POLL_INTERVAL_MS: '100' }),
    () => ({ providers: { fal: new FalProvider({ ...loadConfig(fal.env()).fal!, timeoutMs: 60_000, jwksMinRefreshMs: 0 }) } }),
  );

  for (const order of ['adopted before', 'applied after'] as const) {
    it(`with the video, ${order} the answer is stored: the job completes with that video, charged once, and that request is never cancelled`, { timeout: 60_000 }, async () => {
      const g = await t().createGuest();
      const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt: `slow answer, quick video (${order})`, settings: { duration: 4 } }));
      const { requestId, answer } = await submitSlowly(t(), jobId);
      // The callback comes while our submit still waits for fal's answer: the attempt has no request id yet.
      expect(await reports(t(), requestId)).toEqual({ received: true, outcome: 'orphan' });
      if (order === 'adopted before') {
        await applyCallback(t(), requestId);
        expect((await jobRow(t(), jobId)).status).toBe('ingesting');
      }
      await answer();
      if (order === 'applied after') await applyCallback(t(), requestId);
      expect(await cancelsQueued(t(), requestId)).toBe(0);

      const outcome = order === 'adopted before' ? 'adopted' : 'accepted';
      await completesWith(t(), g, jobId, requestId, [{ attempt: 1, provider_job_id: requestId, outcome, cancel_answer: null, billed: null }]);
      expect(cancelsSent(requestId)).toHaveLength(0);
    });
  }

  it('with a failure, before the answer is stored: the job fails at once and is refunded, and nothing is cancelled', { timeout: 60_000 }, async () => {
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt: 'slow answer, quick crash', settings: { duration: 4 } }));
    const { requestId, answer } = await submitSlowly(t(), jobId);
    expect(await reports(t(), requestId, 'crash')).toEqual({ received: true, outcome: 'orphan' });
    // The submit in flight is this very request: its failure is the job's, not something to wait past.
    await applyCallback(t(), requestId);
    expect((await jobRow(t(), jobId)).status).toBe('failed');
    await answer();
    expect(await cancelsQueued(t(), requestId)).toBe(0);
    expect(await t().waitForJob(g.accessToken, jobId, ['failed'], 1000)).toMatchObject({ error_code: 'ERR_5002' });
    expect(await ledgerOf(t(), jobId)).toEqual({ hold: 1, release: 1 });
  });
});

describe('two requests for one job (the submit retried after a lost answer)', () => {
  const t = useTestApp(
    // Resubmits at once after a lost answer, so that two requests run side by side.
    () => ({ ...fal.env(), PUBLIC_URL: 'https://api.rendio.test', JOB_QUIET_SECONDS: '3600', WORKER_POLL_INTERVAL_MS: '100', SUBMIT_LOST_ANSWER_WAIT_SECONDS: '0' }),
    () => ({ providers: { fal: new FalProvider({ ...loadConfig(fal.env()).fal!, timeoutMs: 60_000, jwksMinRefreshMs: 0 }) } }),
  );
  afterEach(() => void (fal.timing = QUICK));

  /** A job whose first answer was lost (request `lost`, running), ready to be submitted again. */
  async function twoRequests(prompt: string) {
    fal.timing = { queuedMs: 50, runningMs: 600_000 }; // nothing finishes unless the test says so
    const g = await t().createGuest();
    const { job_id: jobId } = await t().json(t().generate(g, { model_id: VEO, prompt, settings: { duration: 4 } }));
    const lost = await submitLosingAnswer(t(), fal, jobId);
    await t().db.query('UPDATE video_jobs SET next_attempt_at = NULL WHERE job_id = $1', [jobId]); // its backoff cut short
    return { g, jobId, lost };
  }

  it('the lost request reports its video while the retry waits for its answer: it is kept, and the retry (alive, unfinished) is cancelled', { timeout: 60_000 }, async () => {
    const { g, jobId, lost } = await twoRequests('the first one wins');
    const { requestId: retry, answer } = await submitSlowly(t(), jobId);
    expect(await reports(t(), lost)).toEqual({ received: true, outcome: 'orphan' });
    await applyCallback(t(), lost);
    await answer();
    await completesWith(t(), g, jobId, lost, [
      { attempt: 1, provider_job_id: lost, outcome: 'adopted', cancel_answer: null, billed: null },
      { attempt: 2, provider_job_id: retry, outcome: 'redundant', cancel_answer: 'cancelled', billed: false },
    ]);
    expect(cancelsSent(lost)).toHaveLength(0);
    expect(fal.billedRequests().filter((r) => r.id === lost || r.id === retry).map((r) => r.id)).toEqual([lost]);
  });

  for (const retryIs of ['running', 'still waiting for its answer'] as const) {
    it(`the lost request reports a failure while the retry is ${retryIs}: the retry is kept, not cancelled, and brings the video`, { timeout: 60_000 }, async () => {
      const { g, jobId, lost } = await twoRequests(`a runner crash beside a healthy retry (${retryIs})`);
      let retry: string;
      if (retryIs === 'running') {
        await t().services.jobs.submit(jobId);
        retry = (await jobRow(t(), jobId)).provider_job_id as string;
        expect(retry).not.toBe(lost);
        expect(await reports(t(), lost, 'crash')).toEqual({ received: true, outcome: 'orphan' });
        await applyCallback(t(), lost);
      } else {
        const sending = await submitSlowly(t(), jobId);
        retry = sending.requestId;
        expect(await reports(t(), lost, 'crash')).toEqual({ received: true, outcome: 'orphan' });
        await applyCallback(t(), lost);
        expect((await jobRow(t(), jobId)).status).toBe('queued');
        await sending.answer();
      }
      // A failure is no result: the job keeps the request that may still deliver one.
      expect(await jobRow(t(), jobId)).toMatchObject({ status: 'submitted', provider_job_id: retry });
      expect(await cancelsQueued(t(), retry)).toBe(0);

      expect(await reports(t(), retry)).toEqual({ received: true, outcome: 'accepted' });
      await completesWith(t(), g, jobId, retry, [
        { attempt: 1, provider_job_id: lost, outcome: 'redundant', cancel_answer: null, billed: false },
        { attempt: 2, provider_job_id: retry, outcome: 'accepted', cancel_answer: null, billed: null },
      ]);
      expect(cancelsSent(lost, retry)).toHaveLength(0);
    });
  }

  it("the retry's failure, received before the lost request took the job over and applied after, is of a replaced request: the job keeps the lost one's video", { timeout: 60_000 }, async () => {
    // [fal:payload-error]: fal's callbacks say "done" without the result, so taking the lost request over leaves the job submitted until its result is fetched.
    const { g, jobId, lost } = await twoRequests('[fal:payload-error] a stale failure after a swap');
    await t().services.jobs.submit(jobId);
    const retry = (await jobRow(t(), jobId)).provider_job_id as string;
    expect(await reports(t(), retry, 'crash')).toEqual({ received: true, outcome: 'accepted' });
    // The lost request is done; fal's result endpoint fails once, so the job waits, submitted, on the lost request.
    fal.server.inject(new RegExp(`/requests/${lost}(\\?|$)`), { status: 503 });
    expect(await reports(t(), lost)).toEqual({ received: true, outcome: 'orphan' });
    await applyCallback(t(), lost);
    expect(await jobRow(t(), jobId)).toMatchObject({ status: 'submitted', provider_job_id: lost });
    // Two workers picked the two callbacks up; the retry's (stored first) is applied last.
    await applyCallback(t(), retry);
    expect(await jobRow(t(), jobId)).toMatchObject({ status: 'submitted', provider_job_id: lost });

    await completesWith(t(), g, jobId, lost, [
      { attempt: 1, provider_job_id: lost, outcome: 'adopted', cancel_answer: null, billed: null },
      { attempt: 2, provider_job_id: retry, outcome: 'redundant', cancel_answer: 'already_finished', billed: true },
    ]);
  });

  it("a poll of the retry that answers after the lost request took the job over is of a replaced request: its failure does not end the job", { timeout: 60_000 }, async () => {
    const { g, jobId, lost } = await twoRequests('a stale poll after a swap');
    await t().services.jobs.submit(jobId);
    const retry = (await jobRow(t(), jobId)).provider_job_id as string;
    fal.crash(retry);
    fal.finish(retry);
    // The poll asks fal about the retry and waits for the answer; meanwhile the lost request reports its video and is taken.
    const asked = fal.server.gate(new RegExp(`/requests/${retry}/status`));
    const polling = t().services.jobs.poll(jobId);
    await asked.reached;
    expect(await reports(t(), lost)).toEqual({ received: true, outcome: 'orphan' });
    await applyCallback(t(), lost);
    expect(await jobRow(t(), jobId)).toMatchObject({ status: 'ingesting', provider_job_id: lost });
    asked.release();
    await polling;
    expect(await jobRow(t(), jobId)).toMatchObject({ status: 'ingesting', provider_job_id: lost });

    await completesWith(t(), g, jobId, lost, [
      { attempt: 1, provider_job_id: lost, outcome: 'adopted', cancel_answer: null, billed: null },
      { attempt: 2, provider_job_id: retry, outcome: 'redundant', cancel_answer: 'already_finished', billed: true },
    ]);
  });

  it('a second lost request reports a failure while the first may still deliver: the job waits, and the first brings the video', { timeout: 60_000 }, async () => {
    const { g, jobId, lost } = await twoRequests('two lost answers, the second crashes');
    const second = await submitLosingAnswer(t(), fal, jobId);
    expect(await reports(t(), second, 'crash')).toEqual({ received: true, outcome: 'orphan' });
    await applyCallback(t(), second);
    // A failure is no result, and the first lost request has not reported yet.
    expect(await jobRow(t(), jobId)).toMatchObject({ status: 'queued', provider_job_id: null });
    expect(await reports(t(), lost)).toEqual({ received: true, outcome: 'orphan' });
    await applyCallback(t(), lost);

    await completesWith(t(), g, jobId, lost, [
      { attempt: 1, provider_job_id: lost, outcome: 'adopted', cancel_answer: null, billed: null },
      { attempt: 2, provider_job_id: second, outcome: 'redundant', cancel_answer: null, billed: false },
    ]);
  });

  it("both report a video, the retry's callback first: the retry is kept, the lost one is a billed duplicate, and no cancel is sent for either", { timeout: 60_000 }, async () => {
    const { g, jobId, lost } = await twoRequests('two videos, the second request first');
    const billedBefore = await duplicatesBilled(t());
    await t().services.jobs.submit(jobId);
    const retry = (await jobRow(t(), jobId)).provider_job_id as string;
    expect(await reports(t(), retry)).toEqual({ received: true, outcome: 'accepted' });
    expect(await reports(t(), lost)).toEqual({ received: true, outcome: 'orphan' });
    // Two workers pick the two callbacks up together, and the later one happens to run first.
    await applyCallback(t(), lost);
    expect(await cancelsQueued(t(), retry)).toBe(0);
    expect(await jobRow(t(), jobId)).toMatchObject({ provider_job_id: retry });
    await applyCallback(t(), retry);

    await completesWith(t(), g, jobId, retry, [
      { attempt: 1, provider_job_id: lost, outcome: 'redundant', cancel_answer: null, billed: true },
      { attempt: 2, provider_job_id: retry, outcome: 'accepted', cancel_answer: null, billed: null },
    ]);
    expect(cancelsSent(lost, retry)).toHaveLength(0);
    expect(await duplicatesBilled(t())).toBe(billedBefore + 1);
  });
});
