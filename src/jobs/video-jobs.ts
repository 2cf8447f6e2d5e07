import { randomUUID } from 'node:crypto';
import { RetryTransaction, withTransaction, type Queryable } from '../db/pool.js';
import * as jobsDb from '../db/queries/video-jobs.js';
import { markObjectDeleted } from '../db/queries/storage.js';
import { ERROR_CODES, type ErrorCode } from '../errors/codes.js';
import { LANGUAGES, localizedMessage, type Language } from '../errors/i18n.js';
import * as ledger from '../ledger/ledger.js';
import type { EndedJob, SubmissionOutcome } from '../metrics.js';
import type { Logger } from '../logger.js';
import type { ProviderRegistry } from '../providers/registry.js';
import {
  ProviderError,
  answerMayBeLost,
  type CancelAnswer,
  type FailureCode,
  type ProviderJobRef,
  type ProviderOutput,
  type ProviderStatus,
  type WebhookEvent,
} from '../providers/types.js';
import { DeliveryRejected, type MediaIngest, type StoredVideo } from '../media/ingest.js';
import type { MediaProblemReason } from '../media/inspect.js';
import { RESULTS_BUCKET, type ObjectStore } from '../storage/types.js';
import { SILENT_FAILURE_CODES } from '../push/notifications.js';
import { backoffMs, enqueue } from './queue.js';

/**
 * The video job state machine (docs/reference/DESIGN.md §5): queued → submitted → processing → ingesting →
 * completed | failed. Every path ends a job in a transaction that also ends its hold — captured
 * with the video, released with the failure — and re-checks the job's state under a row lock, so
 * a racing webhook, poll, sweep or delete can finish a job at most once.
 */

/** Tries at storing a provider's answer before giving up on it (0.5 s, 1 s, 2 s apart). */
const STORE_ANSWER_ATTEMPTS = 4;

export type CrashPoint = 'generate:after-commit' | 'submit:after-provider' | 'ingest:after-store' | 'complete:before-commit';

/** Test-only fault injection (FAULT_CRASH_AT): die like kill -9 at a named step. */
export function crashIf(configured: CrashPoint | undefined, point: CrashPoint): void {
  if (configured === point) process.kill(process.pid, 'SIGKILL');
}

/** A job as generate-video asks for it; the id, hold and credits_used are filled in by create(). */
export interface NewJob extends Omit<jobsDb.JobInsert, 'jobId' | 'creditsUsed' | 'holdId'> {
  price: number;
}

export class VideoJobService {
  constructor(
    private readonly db: Queryable,
    private readonly providers: ProviderRegistry,
    private readonly store: ObjectStore,
    private readonly log: Logger,
    private readonly opts: {
      webhookBaseUrl: string;
      maxResultBytes: number;
      retryBaseMs: number;
      submitLeaseSeconds: number;
      /** How long a lost submit answer's request gets to call back before the job is submitted again (providers with webhooks). */
      lostAnswerWaitSeconds: number;
      /** Jobs quiet this long get a nudge from the sweeper (a lost queue entry can never strand a job). */
      quietSeconds: number;
      crashAt?: CrashPoint;
      /** Enqueue a push (send_job_push) with every job's end: only when APNs is configured. */
      pushOnEnd?: boolean;
      /** Counts each provider submission's fate (metrics). */
      onSubmission?: (provider: string, outcome: SubmissionOutcome) => void;
      /** Counts what a provider answered to each cancel (metrics). */
      onCancel?: (provider: string, answer: CancelAnswer) => void;
      /** Counts each request the provider ran to its end though its job did not use it (metrics). */
      onDuplicateBilled?: (provider: string) => void;
      /** Told once per job, after the transaction that ended it committed (metrics). */
      onJobEnd?: (job: EndedJob, outcome: 'completed' | 'failed', code?: string) => void;
      /** Checks, stores and gives a poster to each delivered video. */
      media: MediaIngest;
      /** Counts each delivered video that failed the checks, by provider and reason (metrics). */
      onMediaRejected?: (provider: string, reason: MediaProblemReason) => void;
    },
  ) {}

  /**
   * Inside the caller's transaction: hold the price, insert the job, enqueue its submission.
   * Throws InsufficientCredits (nothing written) when the user cannot afford it.
   */
  async create(tx: Queryable, j: NewJob): Promise<{ jobId: string; userId: string; available: number }> {
    const jobId = randomUUID();
    // The hold lands on the caller's current owner (a guest merged mid-request): so does the job.
    const { holdId, userId, account } = await ledger.hold(tx, { userId: j.userId, amount: j.price, jobId });
    await jobsDb.insertJob(tx, { ...j, userId, jobId, creditsUsed: j.price, holdId });
    await enqueue(tx, 'submit_video_job', { jobId }, { jobKey: `submit:${jobId}` });
    return { jobId, userId, available: account.available };
  }

  /** Sends a queued job to its provider. Safe to run twice: the lease and the status guard it. */
  async submit(jobId: string): Promise<void> {
    const job = await this.claimSubmit(jobId);
    if (!job) return; // already submitted or finished; or not due yet, and coming back when it is
    if (job.deleted_at) return void (await this.fail(jobId, 'ERR_5002', 'cancelled before submission'));
    if (new Date(job.deadline_at).getTime() <= Date.now()) {
      return void (await this.fail(jobId, 'ERR_5001', 'the provider could not be reached before the deadline'));
    }
    const provider = this.providers.for(job.provider);
    // Each attempt is on record before the call, and the provider calls back naming it: a request
    // it created though its answer never reached us is recognised when it reports (adoptOrphan).
    const attempt = job.attempts;
    await jobsDb.recordSubmission(this.db, jobId, attempt, provider.name);
    let submitted: { providerJobId: string; state?: Record<string, unknown> };
    try {
      submitted = await provider.submit({
        jobId,
        providerModelId: job.provider_model_id,
        category: job.category,
        prompt: job.prompt,
        settings: job.settings,
        imageUrl: job.image_url ?? undefined,
        webhookUrl: provider.webhooks
          ? `${this.opts.webhookBaseUrl}/functions/v1/provider-webhook/${provider.name}?job_id=${jobId}&attempt=${attempt}`
          : undefined,
      });
    } catch (err) {
      // No answer at all: the provider may have created the request anyway (the attempt stays 'sent').
      if (answerMayBeLost(err)) this.opts.onSubmission?.(provider.name, 'lost');
      else if (err instanceof ProviderError) await jobsDb.setSubmissionNotCreated(this.db, jobId, attempt);
      return this.onProviderError(job, err, 'submit_video_job', `submit:${jobId}`);
    }
    crashIf(this.opts.crashAt, 'submit:after-provider');
    // The job's state and its first poll commit together: a poll queued after the commit could be
    // lost with a dropped connection, and then nothing but the sweep would look at the job again.
    const saved = await this.storeAnswer(jobId, () =>
      withTransaction(this.db, async (tx) => {
        if (!(await jobsDb.markSubmitted(tx, jobId, submitted.providerJobId, submitted.state ?? null))) {
          // A retry after a COMMIT whose answer was lost: stored already, so this request is the job's own, not a redundant one to cancel.
          return (await jobsDb.findJob(tx, jobId))?.provider_job_id === submitted.providerJobId;
        }
        await jobsDb.setSubmissionOutcome(tx, jobId, attempt, submitted.providerJobId, 'accepted');
        await this.schedulePoll(tx, jobId, provider.webhooks ? 60 : provider.pollIntervalSeconds);
        return true;
      }),
    );
    if (!saved) {
      // Cancelled, timed out, or an earlier lost request of this job reported first and was
      // adopted while we were submitting: don't leave the provider working for nothing.
      await withTransaction(this.db, async (tx) => {
        await jobsDb.setSubmissionOutcome(tx, jobId, attempt, submitted.providerJobId, 'redundant');
        await this.queueCancel(tx, provider.name, { providerJobId: submitted.providerJobId, state: submitted.state ?? null, providerModelId: job.provider_model_id });
      });
      this.opts.onSubmission?.(provider.name, 'redundant');
      return;
    }
    this.opts.onSubmission?.(provider.name, 'accepted');
    this.log.info({ jobId, provider: provider.name, providerJobId: submitted.providerJobId }, 'video job submitted');
  }

  /**
   * The provider's answer is in hand and only storing it failed (a dropped connection, a refused
   * queue insert): store it again here. Throwing would let the queue's retry find the job still
   * queued and submit it a second time — a second request the provider bills.
   */
  private async storeAnswer<T>(jobId: string, store: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await store();
      } catch (err) {
        if (attempt >= STORE_ANSWER_ATTEMPTS) throw err;
        this.log.warn({ err, jobId, attempt }, "storing the provider's answer failed; trying again");
        await new Promise((r) => setTimeout(r, 250 * 2 ** attempt));
      }
    }
  }

  /**
   * The lease decides when a dead submitter's job is taken over, not the minute sweep: with the
   * lease, the same transaction queues this job's next submit for the moment the lease runs out
   * (same job key, so a retry or a success replaces or ignores it). A job that cannot be claimed
   * yet (a live lease, a scheduled retry, a lost answer's request that may still call back) is
   * queued again for when it can. Waiting for that callback (lostAnswerWaitSeconds) is what keeps
   * a dead or timed-out submitter's request from being paid for twice: if it reports, it is
   * adopted and the job is no longer queued when the resubmission comes due.
   */
  private claimSubmit(jobId: string): Promise<jobsDb.VideoJobRow | undefined> {
    return withTransaction(this.db, async (tx) => {
      const wait = { seconds: this.opts.lostAnswerWaitSeconds, providers: this.providers.callingBack() };
      const job = await jobsDb.claimSubmit(tx, jobId, this.opts.submitLeaseSeconds, wait);
      const due = job ? new Date(Date.now() + this.opts.submitLeaseSeconds * 1000) : await jobsDb.submitDueAt(tx, jobId, wait);
      if (due) await enqueue(tx, 'submit_video_job', { jobId }, { jobKey: `submit:${jobId}`, runAt: new Date(due.getTime() + 1000) });
      return job;
    });
  }

  /** Asks the provider how the job is doing (providers without webhooks, and as a webhook fallback). */
  async poll(jobId: string): Promise<void> {
    const job = await jobsDb.findJob(this.db, jobId);
    if (!job || !['submitted', 'processing'].includes(job.status) || !job.provider_job_id) {
      if (job?.status === 'ingesting') await this.ingest(jobId);
      return;
    }
    if (new Date(job.deadline_at).getTime() <= Date.now()) return this.timeOut(job);
    const provider = this.providers.for(job.provider);
    let status: ProviderStatus;
    try {
      status = await provider.status({ providerJobId: job.provider_job_id, state: job.provider_state, providerModelId: job.provider_model_id });
    } catch (err) {
      return this.onProviderError(job, err, 'poll_video_job', `poll:${jobId}`);
    }
    await jobsDb.touchPolled(this.db, jobId);
    await this.applyStatus(job, status);
  }

  /**
   * One place turns a provider status into our state, for polls and webhooks alike. `job` is the
   * job as it was when its request (job.provider_job_id) was asked or reported: each change below
   * is made only while that request is still the job's, so a report of a request the job has since
   * replaced (a lost request taken over in between) changes nothing.
   */
  async applyStatus(job: jobsDb.VideoJobRow, status: ProviderStatus): Promise<void> {
    const provider = this.providers.for(job.provider);
    const request = job.provider_job_id;
    // Each state change commits with the task that takes the job on from there (see submit).
    switch (status.state) {
      case 'queued':
        await this.schedulePoll(this.db, job.job_id, provider.webhooks ? 60 : provider.pollIntervalSeconds);
        return;
      case 'running':
        await withTransaction(this.db, async (tx) => {
          if (!request || !(await jobsDb.markProcessing(tx, job.job_id, request))) return;
          await this.schedulePoll(tx, job.job_id, provider.webhooks ? 60 : provider.pollIntervalSeconds);
        });
        return;
      case 'failed':
        await this.fail(job.job_id, status.code, status.message, this.db, { request });
        return;
      case 'succeeded':
        if (request) await withTransaction(this.db, (tx) => this.startIngest(tx, job.job_id, request, status.output));
        return;
      case 'result_ready': {
        // The callback said "done" without the result: fetch it now rather than wait for the fallback poll.
        if (!request) return;
        const ref = { providerJobId: request, state: job.provider_state, providerModelId: job.provider_model_id };
        let fetched: ProviderStatus;
        try {
          fetched = provider.fetchResult ? await provider.fetchResult(ref) : await provider.status(ref);
        } catch (err) {
          return this.onProviderError(job, err, 'poll_video_job', `poll:${job.job_id}`);
        }
        if (fetched.state === 'result_ready') return this.schedulePoll(this.db, job.job_id, provider.pollIntervalSeconds);
        return this.applyStatus(job, fetched);
      }
    }
  }

  /**
   * A verified provider callback: stored once (a replay changes nothing), answered at once, and
   * applied by the worker. Returns what happened, for the webhook's log row.
   */
  async receiveWebhook(
    provider: string,
    event: WebhookEvent,
    origin?: { jobId: string; attempt: number },
  ): Promise<'accepted' | 'orphan' | 'duplicate' | 'unknown_job'> {
    const job = await jobsDb.findJobByProviderId(this.db, provider, event.providerJobId);
    // Not the job's request, but one of its submit attempts whose answer we lost: an orphan.
    const orphan = !job && origin ? await jobsDb.findLostSubmission(this.db, provider, origin.jobId, origin.attempt) : undefined;
    return withTransaction(this.db, async (tx) => {
      const id = await jobsDb.recordWebhookEvent(tx, {
        provider,
        eventId: event.eventId,
        jobId: job?.job_id ?? orphan?.job_id ?? null,
        payload: event.status,
        // The reporting request is kept with the event: by the time it is applied the job may have replaced it.
        outcome: job ? `accepted:${event.providerJobId}` : orphan ? `orphan:${orphan.attempt}:${event.providerJobId}` : 'unknown_job',
      });
      if (id === undefined) return 'duplicate';
      if (orphan) {
        await enqueue(tx, 'apply_webhook_event', { eventId: id });
        return 'orphan';
      }
      if (!job) {
        this.log.warn({ provider, providerJobId: event.providerJobId }, 'webhook for a job we do not know; stored and ignored');
        return 'unknown_job';
      }
      await enqueue(tx, 'apply_webhook_event', { eventId: id });
      return 'accepted';
    });
  }

  async applyWebhookEvent(eventId: number): Promise<void> {
    const event = await jobsDb.findWebhookEvent(this.db, eventId);
    if (!event?.job_id) return;
    const orphan = /^orphan:(\d+):(.+)$/.exec(event.outcome ?? '');
    if (orphan) return this.adoptOrphan(event.provider, event.job_id, Number(orphan[1]), orphan[2]!, event.payload as ProviderStatus, eventId);
    const job = await jobsDb.findJob(this.db, event.job_id);
    if (!job || !['submitted', 'processing'].includes(job.status)) return;
    // Events stored before the reporting request was recorded with them ('accepted') are the job's current request's.
    const reporter = /^accepted:(.+)$/.exec(event.outcome ?? '')?.[1] ?? job.provider_job_id;
    if (reporter !== job.provider_job_id) {
      this.log.info({ jobId: job.job_id, providerJobId: reporter, current: job.provider_job_id }, 'a report of a request its job has replaced; not applied');
      return;
    }
    await this.applyStatus(job, event.payload as ProviderStatus);
  }

  /**
   * A request whose submit answer was lost reported: it becomes the job's request (a queued job
   * counts as submitted; a submitted one swaps, and the request it had is cancelled at the
   * provider), so the provider's work is used, not paid twice — unless it is not the one to keep.
   * The job keeps the request that reported a result first (this callback was received after
   * another request of the job reported its result: that one is kept, and is never cancelled), and
   * a failure is no result: while the job has a request that may still deliver one (stored, being
   * submitted right now, or another lost one not heard from), a failed lost request is not adopted. One passed over, or reporting
   * after the job ended, is only recorded and counted. Locks the job row alone (no ledger rows), so
   * the lock order holds.
   */
  private async adoptOrphan(provider: string, jobId: string, attempt: number, providerJobId: string, status: ProviderStatus, eventId: number): Promise<void> {
    const adopted = await withTransaction(this.db, async (tx) => {
      const job = await jobsDb.lockJob(tx, jobId);
      if (!job) return undefined;
      // The callback overtook the submit's answer (a fast provider): that answer is stored by now,
      // and this is the job's own request reporting, not an orphan.
      if (job.provider_job_id === providerJobId) return { job, adopted: false, own: true };
      const running = ['queued', 'submitted', 'processing'].includes(job.status);
      const passedOver =
        running &&
        (status.state === 'failed'
          ? // The submit in flight is the job's latest attempt; if that is this very request, its failure is the job's.
            job.provider_job_id !== null ||
            (await jobsDb.otherSubmissionUnanswered(tx, jobId, attempt)) ||
            (attempt !== job.attempts && (await jobsDb.isSubmitting(tx, jobId)))
          : await jobsDb.resultReportedBefore(tx, jobId, eventId));
      if (!running || passedOver) {
        // Of no use to the job; the provider bills it unless it failed (it reported, so it has ended).
        const claimed = await jobsDb.claimLostSubmission(tx, jobId, attempt, providerJobId, 'redundant', status.state !== 'failed');
        return claimed ? { job, adopted: false, passedOver } : undefined;
      }
      if (!(await jobsDb.claimLostSubmission(tx, jobId, attempt, providerJobId, 'adopted'))) return undefined;
      await jobsDb.adoptRequest(tx, jobId, providerJobId);
      if (job.provider_job_id && job.provider_job_id !== providerJobId) {
        // The request the job had is now the redundant one: its cancel is queued with the swap, so it is sent (and its answer kept) whatever happens next.
        await jobsDb.markRedundant(tx, provider, job.provider_job_id);
        await this.queueCancel(tx, provider, { providerJobId: job.provider_job_id, state: job.provider_state, providerModelId: job.provider_model_id });
      }
      // The adoption commits with the job's next step (its result ingested, else a poll at once),
      // so a crash after this commit (the task's retry finds the submission claimed) strands nothing.
      if (status.state === 'succeeded') await this.startIngest(tx, jobId, providerJobId, status.output);
      else await this.schedulePoll(tx, jobId, 0);
      return { job, adopted: true };
    });
    if (!adopted) return;
    const { job } = adopted;
    if ('own' in adopted) {
      if (['submitted', 'processing'].includes(job.status)) await this.applyStatus(job, status);
      return;
    }
    if (!adopted.adopted) {
      const why = adopted.passedOver ? 'another request of its job reported a result first, or may still deliver one' : 'its job had ended';
      this.log.info({ jobId, providerJobId, state: status.state }, `a lost submission reported, not used: ${why}`);
      this.opts.onSubmission?.(provider, 'orphan_late');
      if (status.state !== 'failed') this.opts.onDuplicateBilled?.(provider);
      return;
    }
    this.log.warn({ jobId, providerJobId, replaced: job.provider_job_id }, 'adopted a submission whose answer was lost');
    this.opts.onSubmission?.(provider, 'orphan_adopted');
    if (job.provider_job_id && job.provider_job_id !== providerJobId) this.opts.onSubmission?.(provider, 'redundant');
    if (status.state === 'succeeded') return;
    // Fast path for the rest (a failure ends the job now, a result_ready is fetched now); the poll queued above covers a crash.
    const current = await jobsDb.findJob(this.db, jobId);
    if (current && ['submitted', 'processing'].includes(current.status)) await this.applyStatus(current, status);
  }

  /** Copies the result into our storage, then completes the job and captures its hold in one transaction. */
  async ingest(jobId: string): Promise<void> {
    const job = await jobsDb.findJob(this.db, jobId);
    if (!job || job.status !== 'ingesting') return;
    const output = (job.provider_state?.output ?? {}) as { videoUrl?: string; thumbnailUrl?: string };
    if (!output.videoUrl) return void (await this.fail(jobId, 'ERR_5002', 'the provider reported success without a video'));
    const provider = this.providers.for(job.provider);
    const month = new Date().toISOString().slice(0, 7);
    const videoKey = `${job.user_id}/${month}/${jobId}.mp4`;
    let stored: StoredVideo;
    try {
      // Checked before the capture: the user pays only for a video that plays (src/media/ingest.ts).
      stored = await this.opts.media.ingest(this.db, {
        jobId,
        ownerId: job.user_id,
        provider,
        output: { videoUrl: output.videoUrl, thumbnailUrl: output.thumbnailUrl },
        paid: { durationSeconds: job.settings.duration, aspectRatio: job.settings.aspect_ratio },
        videoKey,
        thumbnailKey: `${job.user_id}/${month}/${jobId}.jpg`,
      });
      crashIf(this.opts.crashAt, 'ingest:after-store');
    } catch (err) {
      if (err instanceof DeliveryRejected) return void (await this.rejectDelivery(job, err));
      if (err instanceof ProviderError && !err.retryable) return void (await this.fail(jobId, err.code, err.message));
      if (new Date(job.deadline_at).getTime() <= Date.now()) return void (await this.fail(jobId, 'ERR_5001', 'could not copy the result before the deadline'));
      throw err; // the queue retries the ingest with backoff
    }
    const thumbnailKey = stored.thumbnailKey;
    const media = { ...stored.facts, posterSource: stored.posterSource };
    const finished = await withTransaction(this.db, async (tx) => {
      const locked = await this.lockJobToEnd(tx, jobId);
      // Another ingest of this job (a poll that found it ingesting while the ingest task ran)
      // completed it first, with these very keys: the files are its video, not leftovers.
      if (locked?.status === 'completed' && locked.video_key === videoKey) return 'by-another';
      if (!locked || locked.status !== 'ingesting') return false;
      await ledger.capture(tx, { holdId: holdOf(locked) });
      await jobsDb.setCompleted(tx, jobId, videoKey, thumbnailKey, media);
      await this.enqueuePush(tx, jobId, null);
      crashIf(this.opts.crashAt, 'complete:before-commit');
      return true;
    });
    if (finished === 'by-another') return;
    if (finished) {
      this.opts.onJobEnd?.(job, 'completed');
      this.log.info({ jobId, credits: job.credits_used }, 'video job completed');
    } else {
      // It ended while we copied (deleted, cancelled or timed out): the files we stored belong to nobody.
      await this.removeResults([videoKey, thumbnailKey]);
    }
  }

  /** A delivered file that is not the video paid for: kept for operators, counted, and the job failed with its credits released. */
  private async rejectDelivery(job: jobsDb.VideoJobRow, rejected: DeliveryRejected): Promise<void> {
    const { problem, delivery } = rejected;
    await jobsDb.setMediaRejection(this.db, job.job_id, { reason: problem.reason, detail: problem.message, ...delivery });
    if (await this.fail(job.job_id, 'ERR_5004', `delivered video rejected: ${rejected.message}`)) {
      this.opts.onMediaRejected?.(job.provider, problem.reason);
      this.log.warn({ jobId: job.job_id, provider: job.provider, reason: problem.reason, detail: problem.message }, 'delivered video rejected');
    }
  }

  /**
   * In the transaction that ends the job, so the push is never lost nor sent for an end that rolled
   * back; it is sent later by the queue, never while this transaction holds the money rows.
   */
  private async enqueuePush(tx: Queryable, jobId: string, failureCode: string | null): Promise<void> {
    if (!this.opts.pushOnEnd || (failureCode && SILENT_FAILURE_CODES.includes(failureCode))) return;
    await enqueue(tx, 'send_job_push', { jobId }, { jobKey: `push:${jobId}`, maxAttempts: 10 });
  }

  private async removeResults(keys: (string | null)[]): Promise<void> {
    for (const key of keys) {
      if (!key) continue;
      await this.store.delete(RESULTS_BUCKET, key);
      await markObjectDeleted(this.db, RESULTS_BUCKET, key);
    }
  }

  /**
   * Locks a job that is about to end, after its owner's account (the global lock order: a merge
   * locks accounts and then moves jobs, so locking the job first could deadlock with it).
   */
  private async lockJobToEnd(tx: Queryable, jobId: string): Promise<jobsDb.VideoJobRow | undefined> {
    const userId = await jobsDb.findJobUserId(tx, jobId);
    if (!userId) return undefined;
    const { ownerId } = await ledger.lockOwner(tx, userId);
    const job = await jobsDb.lockJob(tx, jobId);
    // Merged away between the two reads: start over and lock the new owner first.
    if (job && job.user_id !== ownerId && job.status !== 'completed' && job.status !== 'failed') throw new RetryTransaction();
    return job;
  }

  /**
   * Fails a job and releases its hold, atomically and at most once. Returns false if it had already
   * ended. cancelRequest: we end it, not the provider (deadline, user, account deletion, a refusal
   * of ours), so its running request is of no use: its cancel is queued in the same transaction, so
   * it is sent (and its answer kept) even if this process dies right after the commit. request:
   * the failure is about this request of the job (null: about a submit that has none yet).
   */
  async fail(
    jobId: string,
    code: FailureCode | string,
    message: string,
    db: Queryable = this.db,
    opts: { cancelRequest?: boolean; request?: string | null } = {},
  ): Promise<boolean> {
    const failed = await withTransaction(db, async (tx) => {
      const job = await this.lockJobToEnd(tx, jobId);
      if (!job || job.status === 'completed' || job.status === 'failed') return undefined;
      // The failure of one request (its report, or our calls about it) ends the job only while that request is still the job's.
      if (opts.request !== undefined && job.provider_job_id !== opts.request) return undefined;
      await ledger.release(tx, { holdId: holdOf(job), reason: `${code}: ${message}`.slice(0, 500) });
      await jobsDb.setFailed(tx, jobId, code, (language) => failureMessage(code, language), message);
      await this.enqueuePush(tx, jobId, code);
      // An ingesting job's request has finished already: nothing to stop.
      if (opts.cancelRequest && job.provider_job_id && ['submitted', 'processing'].includes(job.status)) {
        await this.queueCancel(tx, job.provider, { providerJobId: job.provider_job_id, state: job.provider_state, providerModelId: job.provider_model_id });
      }
      return job;
    });
    if (!failed) return false;
    // In a caller's transaction (account deletion) the end commits with it; a rollback there is rare enough to count anyway.
    this.opts.onJobEnd?.(failed, 'failed', code);
    this.log.info({ jobId, code, message }, 'video job failed; credits released');
    return true;
  }

  private async timeOut(job: jobsDb.VideoJobRow): Promise<void> {
    await this.fail(job.job_id, 'ERR_5001', 'the provider did not deliver before the deadline', this.db, { cancelRequest: true });
  }

  /**
   * Ends every running job of a user inside the caller's transaction (account deletion): holds
   * released with the jobs, their requests' cancels queued with them. Returns the jobs it ended.
   */
  async failAllRunning(tx: Queryable, userId: string, code: string, message: string): Promise<jobsDb.VideoJobRow[]> {
    const ended: jobsDb.VideoJobRow[] = [];
    for (const job of await jobsDb.findRunningJobsOf(tx, userId)) {
      if (await this.fail(job.job_id, code, message, tx, { cancelRequest: true })) ended.push(job);
    }
    return ended;
  }

  /** A request no job uses any more is cancelled by the queue (cancel_provider_request), in the caller's transaction. */
  private async queueCancel(tx: Queryable, provider: string, ref: ProviderJobRef): Promise<void> {
    await enqueue(tx, 'cancel_provider_request', { provider, ...ref }, { jobKey: `cancel:${provider}:${ref.providerJobId}`, maxAttempts: 5 });
  }

  /**
   * Asks the provider to cancel a request and keeps its answer on the request's submission row:
   * a redundant request the provider had already finished is a billed duplicate, and counted.
   */
  async cancelRequest(provider: string, ref: ProviderJobRef): Promise<CancelAnswer> {
    const answer = await this.providers.for(provider).cancel(ref);
    const recorded = await jobsDb.recordCancelAnswer(this.db, provider, ref.providerJobId, answer);
    this.opts.onCancel?.(provider, answer);
    if (recorded?.outcome === 'redundant' && recorded.billed) {
      this.opts.onDuplicateBilled?.(provider);
      this.log.warn({ provider, providerJobId: ref.providerJobId, jobId: recorded.job_id }, 'a redundant request had already finished: the provider bills it');
    }
    return answer;
  }

  private async schedulePoll(db: Queryable, jobId: string, seconds: number): Promise<void> {
    await enqueue(db, 'poll_video_job', { jobId }, { jobKey: `poll:${jobId}`, runAt: new Date(Date.now() + seconds * 1000) });
  }

  /** submitted | processing → ingesting, with the ingest task, in the caller's transaction; false if the job moved on or no longer uses this request. */
  private async startIngest(tx: Queryable, jobId: string, request: string, output: ProviderOutput): Promise<boolean> {
    if (!(await jobsDb.markIngesting(tx, jobId, request, { ...output }))) return false;
    await enqueue(tx, 'ingest_video_job', { jobId }, { jobKey: `ingest:${jobId}` });
    return true;
  }

  /** Retryable provider trouble: back off with full jitter and try again; anything else fails the job. */
  private async onProviderError(job: jobsDb.VideoJobRow, err: unknown, task: 'submit_video_job' | 'poll_video_job', jobKey: string) {
    if (!(err instanceof ProviderError)) throw err;
    const request = job.provider_job_id;
    if (!err.retryable) {
      await this.fail(job.job_id, err.code, err.message, this.db, { cancelRequest: true, request });
      return;
    }
    const delay = backoffMs(job.attempts, { baseMs: this.opts.retryBaseMs, retryAfterMs: err.retryAfterMs });
    if (Date.now() + delay >= new Date(job.deadline_at).getTime()) {
      await this.fail(job.job_id, err.code === 'ERR_5003' ? 'ERR_5002' : 'ERR_5001', `gave up before the deadline: ${err.message}`, this.db, { cancelRequest: true, request });
      return;
    }
    this.log.warn({ jobId: job.job_id, task, delayMs: delay, err: err.message }, 'provider call failed; will retry');
    const retryAt = new Date(Date.now() + delay);
    await withTransaction(this.db, async (tx) => {
      if (task === 'submit_video_job') await jobsDb.releaseSubmitLease(tx, job.job_id, retryAt);
      else await jobsDb.deferPoll(tx, job.job_id, retryAt);
      await enqueue(tx, task, { jobId: job.job_id }, { jobKey, runAt: retryAt });
    });
  }

  /** Every minute: fail what is past its deadline, and nudge whatever went quiet. */
  async sweep(): Promise<{ timedOut: number; nudged: number }> {
    let timedOut = 0;
    let nudged = 0;
    for (const stale of await jobsDb.findStaleJobs(this.db, this.opts.quietSeconds)) {
      const job = await jobsDb.findJob(this.db, stale.job_id);
      if (!job) continue;
      if (stale.overdue && job.status !== 'ingesting') {
        await this.timeOut(job);
        timedOut++;
        continue;
      }
      const task = job.status === 'queued' ? 'submit_video_job' : job.status === 'ingesting' ? 'ingest_video_job' : 'poll_video_job';
      const prefix = task === 'submit_video_job' ? 'submit' : task === 'ingest_video_job' ? 'ingest' : 'poll';
      await withTransaction(this.db, async (tx) => {
        await enqueue(tx, task, { jobId: job.job_id }, { jobKey: `${prefix}:${job.job_id}` });
        await jobsDb.touchJob(tx, job.job_id);
      });
      nudged++;
    }
    if (timedOut || nudged) this.log.info({ timedOut, nudged }, 'video job sweep');
    return { timedOut, nudged };
  }

  /** The owner deletes a job: a running one is cancelled and refunded first; stored files are removed. */
  async delete(userId: string, jobId: string): Promise<boolean> {
    const job = await jobsDb.findJob(this.db, jobId);
    if (!job || job.user_id !== userId || job.deleted_at) return false;
    if (job.status !== 'completed' && job.status !== 'failed') {
      await this.fail(jobId, 'ERR_4019', 'cancelled by the user', this.db, { cancelRequest: true });
    }
    await jobsDb.setDeleted(this.db, jobId);
    await this.removeResults([job.video_key, job.thumbnail_key]);
    return true;
  }
}

/** The user's words for a failure: our localized text for its code, never the provider's. */
function failureMessage(code: string, language: string): string {
  const known = Object.hasOwn(ERROR_CODES, code) ? (code as ErrorCode) : 'ERR_5002';
  const lang = (LANGUAGES as readonly string[]).includes(language) ? (language as Language) : 'en';
  return localizedMessage(known, lang);
}

/** A running job's hold. Only imported history has none, and it arrives ended (migration 0027). */
function holdOf(job: { job_id: string; hold_id: string | null }): string {
  if (!job.hold_id) throw new Error(`job ${job.job_id} has no hold, yet is running`);
  return job.hold_id;
}
