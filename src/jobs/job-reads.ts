import type { Queryable } from '../db/pool.js';
import { loadAuthState, type AuthState } from '../db/queries/users.js';
import { findJobView, type JobViewRow } from '../db/queries/video-jobs.js';
import type { JobView } from './job-view.js';

/**
 * What one change of a job costs this process, however many sockets and streams watch it: the
 * watchers woken by one NOTIFY share one read of the job, one view of it (its signed URLs), and one
 * read of each caller's standing (user and session), instead of a read of each per watcher. Every
 * read starts after the wake that made this object, so no watcher sees an older state than a read
 * of its own would have given it; revocation is seen exactly as on get-video-status. Sharing has
 * limits: a read that fails is forgotten (the next watcher reads again rather than fail with it),
 * and a watcher that comes to these reads late (busy with an earlier change) reads the standing
 * anew once they are older than SHARED_STANDING_MS, so a logout is never missed for longer than that.
 */
const SHARED_STANDING_MS = 1000;

export class JobReads {
  private job: Promise<JobViewRow | undefined> | undefined;
  private viewed: Promise<JobView | undefined> | undefined;
  private readonly standings = new Map<string, Promise<AuthState | undefined>>();
  private readonly madeAt = performance.now();

  constructor(
    private readonly db: Queryable,
    private readonly viewOf: (job: JobViewRow) => Promise<JobView>,
    readonly jobId: string,
  ) {}

  read(): Promise<JobViewRow | undefined> {
    return (this.job ??= forgetIfFailed(findJobView(this.db, this.jobId), () => (this.job = undefined)));
  }

  /** The owner's view of the job (undefined if there is no job): the same for every watcher. */
  view(): Promise<JobView | undefined> {
    return (this.viewed ??= forgetIfFailed(
      this.read().then((job) => (job ? this.viewOf(job) : undefined)),
      () => (this.viewed = undefined),
    ));
  }

  /** A caller's standing now, read once for all of this change's watchers with that session. */
  standing(userId: string, sessionId: string): Promise<AuthState | undefined> {
    if (performance.now() - this.madeAt > SHARED_STANDING_MS) return loadAuthState(this.db, userId, sessionId);
    const key = `${userId}:${sessionId}`;
    let read = this.standings.get(key);
    if (!read) this.standings.set(key, (read = forgetIfFailed(loadAuthState(this.db, userId, sessionId), () => this.standings.delete(key))));
    return read;
  }
}

/** A shared read that failed is dropped from the memo: its watchers see the failure, the next one reads again. */
function forgetIfFailed<T>(read: Promise<T>, forget: () => void): Promise<T> {
  read.catch(forget);
  return read;
}
