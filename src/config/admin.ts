import { z } from 'zod';
import type { ServerEnv } from './server.js';

/** The admin console and API (src/admin/). */
export const adminEnv = z.object({
  /** Admin sign-in: failed attempts per email and client address (IPv6: per /64) within the window before it is locked (429). */
  ADMIN_LOGIN_MAX_FAILURES: z.coerce.number().int().min(1).max(1000).default(5),
  /** ... and per email from any address: guesses spread over many addresses stop here. */
  ADMIN_LOGIN_MAX_FAILURES_PER_EMAIL: z.coerce.number().int().min(1).max(10_000).default(20),
  ADMIN_LOGIN_WINDOW_SECONDS: z.coerce.number().int().min(10).max(86_400).default(900),
  /** How long an admin console session or admin API token lives. */
  ADMIN_SESSION_TTL_HOURS: z.coerce.number().int().min(1).max(720).default(12),
});
type AdminEnv = z.infer<typeof adminEnv>;

export interface AdminSection {
  /** The admin console and API (src/admin/): sign-in lockout and session lifetime. */
  admin: { loginMaxFailures: number; loginMaxFailuresPerEmail: number; loginWindowSeconds: number; sessionTtlHours: number; secureCookies: boolean };
}

export function adminSection(e: AdminEnv & Pick<ServerEnv, 'NODE_ENV'>): AdminSection {
  return {
    admin: {
      loginMaxFailures: e.ADMIN_LOGIN_MAX_FAILURES,
      loginMaxFailuresPerEmail: e.ADMIN_LOGIN_MAX_FAILURES_PER_EMAIL,
      loginWindowSeconds: e.ADMIN_LOGIN_WINDOW_SECONDS,
      sessionTtlHours: e.ADMIN_SESSION_TTL_HOURS,
      // Secure cookies need HTTPS (browsers also accept them from http://localhost and 127.0.0.1);
      // development may be served over plain http on another host name.
      secureCookies: e.NODE_ENV !== 'development',
    },
  };
}
