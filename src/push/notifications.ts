import type { Counter } from 'prom-client';
import type { Queryable } from '../db/pool.js';
import * as pushDb from '../db/queries/push.js';
import type { ErrorCode } from '../errors/codes.js';
import { localizedMessage, pushText, supportedLanguage, type Language } from '../errors/i18n.js';
import type { Metrics } from '../metrics.js';
import type { Logger } from '../logger.js';
import { ApnsTransportError, type ApnsResult, type PushSender } from './apns.js';

/**
 * "Your video is ready / could not be created" on every device of the job's owner, from the queue
 * (task send_job_push, enqueued in the transaction that ends the job). At least once per task run,
 * at most once per (job, device): what each device's push came to is recorded in push_deliveries,
 * and a retry (another device's 429/5xx) skips the settled ones.
 */

/** A cancelled job (the user's delete, account deletion) ended by the user's own hand: no push. */
export const SILENT_FAILURE_CODES: readonly string[] = ['ERR_4019'];

const PROVIDER_FAILURES: readonly string[] = ['ERR_5001', 'ERR_5002', 'ERR_5003'];

/** APNs keeps trying an offline device this long; a day-old "ready" is still worth seeing. */
const EXPIRATION_SECONDS = 24 * 3600;

/** The queue should try again later (429, 5xx, connection trouble). */
export class PushRetryLater extends Error {}

export class PushService {
  private readonly outcomes: Counter<'outcome' | 'reason'>;

  constructor(
    private readonly db: Queryable,
    private readonly sender: PushSender | undefined,
    private readonly log: Logger,
    metrics: Metrics,
    private readonly now: () => number = Date.now,
  ) {
    this.outcomes = metrics.counter('rendio_push_notifications_total', 'APNs pushes by outcome (sent, failed) and reason', ['outcome', 'reason']);
  }

  /** Whether job ends enqueue pushes at all (no APNs key: they are skipped). */
  get enabled(): boolean {
    return this.sender !== undefined;
  }

  async sendForJob(jobId: string): Promise<void> {
    if (!this.sender) return;
    const job = await pushDb.findEndedJob(this.db, jobId);
    if (!job || job.deleted_at || (job.status !== 'completed' && job.status !== 'failed')) return;
    if (job.status === 'failed' && SILENT_FAILURE_CODES.includes(job.error_code ?? '')) return;
    let retry: string | undefined;
    for (const target of await pushDb.pendingPushTargets(this.db, jobId, job.user_id)) {
      const lang = supportedLanguage(target.language) ?? 'en';
      let result: ApnsResult;
      try {
        result = await this.sender.send({
          token: target.token,
          environment: target.environment,
          payload: payload(job, lang),
          collapseId: jobId,
          expiration: Math.floor(this.now() / 1000) + EXPIRATION_SECONDS,
          priority: 10,
        });
      } catch (err) {
        if (!(err instanceof ApnsTransportError)) throw err;
        this.count('failed', 'connection');
        retry = err.message;
        continue;
      }
      retry = (await this.settle(jobId, target.token, result)) ?? retry;
    }
    if (retry) throw new PushRetryLater(`push for job ${jobId} will be retried: ${retry}`);
  }

  /** Records what APNs' answer means for this device; returns a reason when the queue should retry. */
  private async settle(jobId: string, token: string, r: ApnsResult): Promise<string | undefined> {
    if (r.ok) {
      this.count('sent', 'ok');
      await pushDb.recordDelivery(this.db, jobId, token, 'sent', r.apnsId || null);
      return undefined;
    }
    this.count('failed', r.reason);
    if (r.status === 429 || r.status >= 500 || (r.status === 403 && r.reason === 'ExpiredProviderToken')) return `${r.status} ${r.reason}`;
    if (r.status === 410) {
      const removed = await pushDb.deleteUnregisteredToken(this.db, token, r.timestamp);
      this.log.info({ jobId, removed, timestamp: r.timestamp }, 'APNs: device token unregistered');
    } else if (r.status === 400 && (r.reason === 'BadDeviceToken' || r.reason === 'DeviceTokenNotForTopic')) {
      await pushDb.deleteInvalidToken(this.db, token);
      this.log.info({ jobId, reason: r.reason }, 'APNs: invalid device token removed');
    } else {
      // 413, a bad header, an invalid provider key: retrying cannot change the answer.
      this.log.error({ jobId, status: r.status, reason: r.reason }, 'APNs refused a push; not retried');
    }
    await pushDb.recordDelivery(this.db, jobId, token, r.reason, r.apnsId ?? null);
    return undefined;
  }

  private count(outcome: 'sent' | 'failed', reason: string): void {
    this.outcomes.inc({ outcome, reason: reason.slice(0, 64) });
  }

  async close(): Promise<void> {
    await this.sender?.close();
  }
}

/** The alert and job_id (the app opens that video); never the prompt, which a lock screen would show. */
function payload(job: pushDb.EndedJob, lang: Language): Record<string, unknown> {
  const ready = job.status === 'completed';
  // The provider failures' messages say what happened and that the credits came back.
  const code = PROVIDER_FAILURES.includes(job.error_code ?? '') ? (job.error_code as ErrorCode) : undefined;
  return {
    aps: {
      alert: {
        title: pushText(ready ? 'video_ready_title' : 'video_failed_title', lang),
        body: ready ? pushText('video_ready_body', lang) : code ? localizedMessage(code, lang) : pushText('video_failed_body', lang),
      },
      sound: 'default',
    },
    job_id: job.job_id,
    status: job.status,
  };
}
