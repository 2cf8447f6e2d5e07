import type { RetentionConfig } from '../config/index.js';
import type { Queryable } from '../db/pool.js';
import type { Logger } from '../logger.js';
import { RESULTS_BUCKET, type ObjectStore } from '../storage/types.js';

/**
 * What the database does not keep for ever. Each verb is one scheduled worker task
 * (src/jobs/worker.ts), deletes in batches (no long lock on a busy table) and returns how many rows
 * it removed. What money depends on is never touched: ledger_entries, iap_transactions,
 * app_store_refund_states (the refund logic's memory of each transaction), device_grants.
 */

const BATCH = 5000;
const VIDEO_BATCH = 200;
const FILE_DELETES_IN_FLIGHT = 8;

export class RetentionService {
  constructor(
    private readonly db: Queryable,
    private readonly store: ObjectStore,
    private readonly config: RetentionConfig,
    private readonly log: Logger,
  ) {}

  /** error_log older than ERROR_LOG_RETENTION_DAYS, then all but the newest ERROR_LOG_MAX_ROWS; old noise counters. */
  async errorLog(): Promise<number> {
    const days = this.config.errorLogDays;
    let n = await batched(this.db, `DELETE FROM error_log WHERE id IN (SELECT id FROM error_log WHERE created_at < now() - make_interval(days => $1) LIMIT ${BATCH})`, [days]);
    // The newest row beyond the cap, found once: looking it up in every batch walked the
    // ERROR_LOG_MAX_ROWS kept rows each time.
    const { rows } = await this.db.query<{ id: string | null }>('SELECT (SELECT id FROM error_log ORDER BY id DESC OFFSET $1 LIMIT 1) AS id', [this.config.errorLogMaxRows]);
    if (rows[0]?.id != null) {
      n += await batched(this.db, `DELETE FROM error_log WHERE id IN (SELECT id FROM error_log WHERE id <= $1 LIMIT ${BATCH})`, [rows[0].id]);
    }
    n += await batched(this.db, `DELETE FROM error_log_aggregates WHERE hour < now() - make_interval(days => $1)`, [days]);
    return this.done('error_log', n);
  }

  /**
   * Sessions revoked, or whose last refresh token expired, SESSION_RETENTION_DAYS ago: their refresh
   * tokens first. Both kinds are found through an index, so a run costs what it deletes, not the
   * number of sessions: revoked ones by revoked_at; live ones by when they were last used (a
   * refresh token lives REFRESH_TOKEN_TTL_DAYS from its session's last refresh), each checked
   * against its tokens before it goes and walked once per run (keyset), so sessions whose tokens
   * outlive that estimate (a longer TTL in the past) are skipped, not read again and again.
   */
  async sessions(): Promise<number> {
    const days = this.config.sessionDays;
    // "= ANY (ARRAY(…))", not "IN (SELECT …)": a semi-join may be planned as a hash join over every
    // refresh token; an array of at most BATCH ids is always looked up through the index.
    let n = await batched(
      this.db,
      `WITH gone AS (
         SELECT id FROM auth_sessions WHERE revoked_at < now() - make_interval(days => $1) LIMIT ${BATCH}
       ), tokens AS (
         DELETE FROM refresh_tokens WHERE session_id = ANY (ARRAY(SELECT id FROM gone))
       )
       DELETE FROM auth_sessions WHERE id = ANY (ARRAY(SELECT id FROM gone))`,
      [days],
    );
    let after: { usedAt: Date | string; id: string } | undefined;
    for (;;) {
      const { rows } = await this.db.query<{ deleted: number; seen: number; used_at: Date | null; id: string | null }>(
        `WITH candidates AS (
           SELECT id, coalesce(last_refreshed_at, created_at) AS used_at FROM auth_sessions
            WHERE revoked_at IS NULL
              AND coalesce(last_refreshed_at, created_at) < now() - make_interval(days => $1::int + $2::int)
              AND ($3::timestamptz IS NULL OR (coalesce(last_refreshed_at, created_at), id) > ($3::timestamptz, $4::uuid))
            ORDER BY coalesce(last_refreshed_at, created_at), id LIMIT ${BATCH}
         ), gone AS (
           SELECT c.id FROM candidates c
            WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens r WHERE r.session_id = c.id AND r.expires_at >= now() - make_interval(days => $1))
         ), tokens AS (
           DELETE FROM refresh_tokens WHERE session_id = ANY (ARRAY(SELECT id FROM gone))
         ), deleted AS (
           DELETE FROM auth_sessions WHERE id = ANY (ARRAY(SELECT id FROM gone)) RETURNING id
         ), last AS (
           SELECT used_at, id FROM candidates ORDER BY used_at DESC, id DESC LIMIT 1
         )
         SELECT (SELECT count(*) FROM deleted)::int AS deleted, (SELECT count(*) FROM candidates)::int AS seen, last.used_at, last.id
           FROM (SELECT 1) one LEFT JOIN last ON true`,
        [days, this.config.refreshTokenTtlDays, after?.usedAt ?? null, after?.id ?? null],
      );
      const r = rows[0]!;
      n += r.deleted;
      if (r.seen < BATCH || r.used_at === null || r.id === null) break;
      after = { usedAt: r.used_at, id: r.id };
    }
    return this.done('sessions', n);
  }

  /** Provider webhook events older than WEBHOOK_EVENT_RETENTION_DAYS whose job has finished (or that named none). */
  async webhookEvents(): Promise<number> {
    const n = await batched(
      this.db,
      `DELETE FROM webhook_events WHERE id IN (
         SELECT e.id FROM webhook_events e LEFT JOIN video_jobs j ON j.job_id = e.job_id
          WHERE e.received_at < now() - make_interval(days => $1) AND (j.job_id IS NULL OR j.completed_at IS NOT NULL)
          LIMIT ${BATCH})`,
      [this.config.webhookEventDays],
    );
    return this.done('webhook_events', n);
  }

  /**
   * Stored App Store notifications older than APP_STORE_NOTIFICATION_RETENTION_DAYS that were
   * applied. The refund logic (src/ledger/refunds.ts, apple/purchases.ts) decides from
   * app_store_refund_states, which keeps each transaction's latest state for ever; a notification
   * row only dedupes Apple's retries (days) and feeds a consumption answer (hours).
   */
  async appStoreNotifications(): Promise<number> {
    const n = await batched(
      this.db,
      `DELETE FROM app_store_notifications WHERE notification_uuid IN (
         SELECT notification_uuid FROM app_store_notifications
          WHERE received_at < now() - make_interval(days => $1) AND outcome <> 'received' LIMIT ${BATCH})`,
      [this.config.appStoreNotificationDays],
    );
    return this.done('app_store_notifications', n);
  }

  /** Rate limiter rows whose window has ended (the library's `expire` is epoch milliseconds). */
  async rateLimits(): Promise<number> {
    const n = await batched(this.db, `DELETE FROM rate_limits WHERE key IN (SELECT key FROM rate_limits WHERE expire < $1 LIMIT ${BATCH})`, [Date.now()]);
    return this.done('rate_limits', n);
  }

  /**
   * VIDEO_RETENTION_DAYS (0 = off): the stored video and thumbnail of jobs finished that long ago
   * are deleted, then the job is marked expired (history lists it, without URLs). Files first: a
   * crash in between leaves a job whose files the next run deletes again (deleting is idempotent),
   * never files no job points to.
   */
  async videos(): Promise<number> {
    if (this.config.videoDays === 0) return 0;
    let total = 0;
    for (;;) {
      const { rows } = await this.db.query<{ job_id: string; video_key: string | null; thumbnail_key: string | null }>(
        `SELECT job_id, video_key, thumbnail_key FROM video_jobs
          WHERE completed_at < now() - make_interval(days => $1) AND expired_at IS NULL
          ORDER BY completed_at LIMIT ${VIDEO_BATCH}`,
        [this.config.videoDays],
      );
      const keys = rows.flatMap((job) => [job.video_key, job.thumbnail_key].filter((k): k is string => k !== null));
      // A few deletions in flight at once (a store round trip each), then the batch's rows in one
      // statement: a round trip per job was most of the cost.
      for (let i = 0; i < keys.length; i += FILE_DELETES_IN_FLIGHT) {
        await Promise.all(keys.slice(i, i + FILE_DELETES_IN_FLIGHT).map((key) => this.store.delete(RESULTS_BUCKET, key)));
      }
      if (rows.length > 0) {
        await this.db.query(
          `WITH files AS (UPDATE storage_objects SET deleted_at = now() WHERE bucket = $2 AND key = ANY($3::text[]) AND deleted_at IS NULL)
           UPDATE video_jobs SET expired_at = now() WHERE job_id = ANY($1::uuid[])`,
          [rows.map((r) => r.job_id), RESULTS_BUCKET, keys],
        );
      }
      total += rows.length;
      if (rows.length < VIDEO_BATCH) break;
    }
    return this.done('videos', total);
  }

  private done(what: string, n: number): number {
    if (n > 0) this.log.info({ retention: what, deleted: n }, 'retention');
    return n;
  }
}

async function batched(db: Queryable, sql: string, values: unknown[]): Promise<number> {
  let total = 0;
  for (;;) {
    const { rowCount } = await db.query(sql, values);
    total += rowCount ?? 0;
    if ((rowCount ?? 0) < BATCH) return total;
  }
}
