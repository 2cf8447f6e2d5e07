import { z } from 'zod';
import type { AuthEnv } from './auth.js';

/** How long the sweeper keeps what piles up. */
export const retentionEnv = z.object({
  /** error_log: rows older than this many days are deleted, and only the newest ERROR_LOG_MAX_ROWS are kept. */
  ERROR_LOG_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  ERROR_LOG_MAX_ROWS: z.coerce.number().int().min(1000).max(1_000_000_000).default(1_000_000),
  /** Sessions revoked, or whose last refresh token expired, this many days ago are deleted. */
  SESSION_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  /** Provider webhook events already applied are kept this many days (replays within it are recognised). */
  WEBHOOK_EVENT_RETENTION_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  /** Stored App Store notifications (signed payloads) are kept this many days; refund states are kept for ever. */
  APP_STORE_NOTIFICATION_RETENTION_DAYS: z.coerce.number().int().min(7).max(3650).default(180),
  /** Delete the stored files of videos finished this many days ago (0 = keep for ever); history still lists them. */
  VIDEO_RETENTION_DAYS: z.coerce.number().int().min(0).max(3650).default(0),
});
type RetentionEnv = z.infer<typeof retentionEnv> & Pick<AuthEnv, 'REFRESH_TOKEN_TTL_DAYS'>;

export interface RetentionConfig {
  errorLogDays: number;
  errorLogMaxRows: number;
  sessionDays: number;
  /** How long a refresh token lives (REFRESH_TOKEN_TTL_DAYS): when an unused session's tokens have all expired. */
  refreshTokenTtlDays: number;
  webhookEventDays: number;
  appStoreNotificationDays: number;
  /** 0 = off. */
  videoDays: number;
}

export interface RetentionSection {
  retention: RetentionConfig;
}

export function retentionSection(e: RetentionEnv): RetentionSection {
  return {
    retention: {
      errorLogDays: e.ERROR_LOG_RETENTION_DAYS,
      errorLogMaxRows: e.ERROR_LOG_MAX_ROWS,
      sessionDays: e.SESSION_RETENTION_DAYS,
      refreshTokenTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
      webhookEventDays: e.WEBHOOK_EVENT_RETENTION_DAYS,
      appStoreNotificationDays: e.APP_STORE_NOTIFICATION_RETENTION_DAYS,
      videoDays: e.VIDEO_RETENTION_DAYS,
    },
  };
}
