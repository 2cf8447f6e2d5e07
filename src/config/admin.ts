import { z } from 'zod';
import { parseCidrs, port, type ReportIssue } from './env.js';
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
  /** Client addresses/CIDRs (as TRUST_PROXY resolves them) that may reach /admin; others get 404. Unset: everyone. */
  ADMIN_ALLOWED_CIDRS: z.string().default(''),
  /** Serves /admin on this port (bound to ADMIN_HOST) instead of PORT. */
  ADMIN_PORT: port('ADMIN_PORT', 1).optional(),
  ADMIN_HOST: z.string().default('127.0.0.1'),
});
type AdminEnv = z.infer<typeof adminEnv>;

export interface AdminSection {
  /** The admin console and API (src/admin/): sign-in lockout, session lifetime, who can reach them. */
  admin: {
    loginMaxFailures: number;
    loginMaxFailuresPerEmail: number;
    loginWindowSeconds: number;
    sessionTtlHours: number;
    secureCookies: boolean;
    /** Client addresses/CIDRs that may reach /admin; empty: every address. */
    allowedCidrs: string[];
    /** A port of its own for /admin (then PORT serves none of it), on `host`; undefined: PORT serves it. */
    port: number | undefined;
    host: string;
  };
}

export function adminSection(e: AdminEnv & Pick<ServerEnv, 'NODE_ENV' | 'PORT'> & { METRICS_PORT?: number }, report: ReportIssue): AdminSection {
  const allowedCidrs = parseCidrs(e.ADMIN_ALLOWED_CIDRS);
  if (!allowedCidrs) report('ADMIN_ALLOWED_CIDRS', 'must be a comma-separated list of addresses/CIDRs');
  if (e.ADMIN_PORT !== undefined && (e.ADMIN_PORT === e.PORT || e.ADMIN_PORT === e.METRICS_PORT)) {
    report('ADMIN_PORT', 'must differ from PORT and METRICS_PORT');
  }
  return {
    admin: {
      loginMaxFailures: e.ADMIN_LOGIN_MAX_FAILURES,
      loginMaxFailuresPerEmail: e.ADMIN_LOGIN_MAX_FAILURES_PER_EMAIL,
      loginWindowSeconds: e.ADMIN_LOGIN_WINDOW_SECONDS,
      sessionTtlHours: e.ADMIN_SESSION_TTL_HOURS,
      // Secure cookies need HTTPS (browsers also accept them from http://localhost and 127.0.0.1);
      // development may be served over plain http on another host name.
      secureCookies: e.NODE_ENV !== 'development',
      allowedCidrs: allowedCidrs ?? [],
      port: e.ADMIN_PORT,
      host: e.ADMIN_HOST,
    },
  };
}
