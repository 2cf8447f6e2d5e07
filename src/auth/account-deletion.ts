import { withTransaction, type Queryable } from '../db/pool.js';
import { deleteAllPushTokens, deleteDeliveriesOf } from '../db/queries/push.js';
import * as sessionsDb from '../db/queries/sessions.js';
import { markObjectDeleted } from '../db/queries/storage.js';
import * as users from '../db/queries/users.js';
import { enqueue } from '../jobs/queue.js';
import * as ledger from '../ledger/ledger.js';
import type { VideoJobService } from '../jobs/video-jobs.js';
import type { Logger } from '../logger.js';
import { BUCKETS, type Bucket, type ObjectStore } from '../storage/types.js';

/**
 * Deletes an account (functions/v1/delete-account, and Apple's account-delete / consent-revoked
 * server notifications): running jobs are cancelled and refunded, every file the user owns is
 * removed, sessions end, personal data is scrubbed. The ledger and purchase records stay, under
 * an id that no longer names anyone, because money history must add up forever (docs/reference/DESIGN.md §4).
 */
export class AccountDeletionService {
  constructor(
    private readonly db: Queryable,
    private readonly jobs: VideoJobService,
    private readonly store: ObjectStore,
    private readonly log: Logger,
  ) {}

  /**
   * Ends the account at once, in one transaction: no request or session works after it commits,
   * running jobs are failed with their holds released, what is left of the balance is forfeit (a
   * deleted account holds nothing), and the purge is queued, so a crash cannot leave personal data
   * behind. The user's row is locked FOR UPDATE first: a hold or purchase already under way on
   * this account finishes before, and one arriving later finds the account closed.
   */
  async delete(userId: string, reason: string): Promise<void> {
    const ended = await withTransaction(this.db, async (tx) => {
      if (!(await users.lockUser(tx, userId))) return [];
      await users.markDeleted(tx, userId);
      // Before the running jobs fail below: a deleted account's devices hear nothing more.
      await deleteAllPushTokens(tx, userId);
      await sessionsDb.revokeAllSessions(tx, userId, `account_deleted:${reason}`);
      const jobs = await this.jobs.failAllRunning(tx, userId, 'ERR_4019', 'cancelled: the account was deleted');
      await ledger.forfeit(tx, { userId, reason: `account deleted (${reason})` });
      await enqueue(tx, 'purge_deleted_account', { userId }, { jobKey: `purge:${userId}` });
      return jobs;
    });
    // The ended jobs' requests are cancelled by the queue (queued with the failures, above): no paying for videos nobody will see.
    this.log.info({ userId, reason, jobsCancelled: ended.length }, 'account deleted; purging its data');
    await this.purge(userId).catch((err) => this.log.warn({ err, userId }, 'inline purge failed; the queue retries it'));
  }

  /** Idempotent: cancels and refunds running jobs, removes every file, scrubs personal data. */
  async purge(userId: string): Promise<void> {
    // Each job through the same path as delete-video-job: cancel at the provider, release the hold, remove results.
    for (const jobId of await users.jobIdsOf(this.db, userId)) await this.jobs.delete(userId, jobId);
    // Normally done by delete(); a purge queued before it did so finishes the job here (idempotent).
    await ledger.forfeit(this.db, { userId, reason: 'account deleted' });
    for (const o of await users.liveObjectsOwnedBy(this.db, userId)) {
      if (!(BUCKETS as readonly string[]).includes(o.bucket)) continue;
      await this.store.delete(o.bucket as Bucket, o.key);
      await markObjectDeleted(this.db, o.bucket, o.key);
    }
    await deleteAllPushTokens(this.db, userId);
    await deleteDeliveriesOf(this.db, userId);
    await users.scrubDeletedUser(this.db, userId);
    // No Apple refresh token is stored (the app never sends its authorization code), so there is
    // nothing to revoke at Apple; see docs/ARCHITECTURE.md.
  }
}
