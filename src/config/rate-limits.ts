import { z } from 'zod';
import { bool, commaList, type ReportIssue } from './env.js';

/** The limiter's policies (src/http/rate-limit.ts enforces them) and where it counts. */
export const rateLimitsEnv = z.object({
  /** Rate limits on (default). Off only for tests that are about something else (test/support/harness.ts). */
  RATE_LIMITS_ENABLED: bool.default(true),
  /** Overrides of the default limits: `policy.kind=points/seconds` or `policy.kind=off`, comma-separated (docs/ARCHITECTURE.md). */
  RATE_LIMITS: z.string().default(''),
  /** Prefix of every limiter key (lets instances of different deployments share one Redis). */
  RATE_LIMIT_KEY_PREFIX: z.string().regex(/^[\w.-]{1,64}$/).default('rl'),
  /** Redis for the rate limiter's counters; without it they live in PostgreSQL (table rate_limits). */
  REDIS_URL: z.string().url().optional(),
});
type RateLimitsEnv = z.infer<typeof rateLimitsEnv>;

export type LimitKind = 'ip' | 'user' | 'device';
export interface LimitRule {
  points: number;
  seconds: number;
}
/**
 * What a limited endpoint does when the counters' store (PostgreSQL or Redis) cannot answer:
 * `insurance` counts in this instance's memory (the limit then holds per instance) and serves;
 * `closed` refuses with 503 ERR_5002 (service rate_limiter).
 */
export type StoreDownPolicy = 'insurance' | 'closed';
export interface RateLimitPolicy {
  rules: Partial<Record<LimitKind, LimitRule>>;
  whenStoreDown: StoreDownPolicy;
}
export const RATE_LIMIT_POLICIES = ['global', 'generate-video', 'device-check', 'auth-token', 'update-credits', 'merge-guest-user', 'admin-login'] as const;
export type RateLimitPolicyName = (typeof RATE_LIMIT_POLICIES)[number];

const HOUR = 3600;
/** The production defaults (issue 9); RATE_LIMITS overrides single rules. */
export const DEFAULT_RATE_LIMITS: Record<RateLimitPolicyName, RateLimitPolicy> = {
  // Every request from one address (per /64 for IPv6). Generous: carrier NAT puts many phones behind one address.
  global: { rules: { ip: { points: 600, seconds: 60 } }, whenStoreDown: 'insurance' },
  // What costs us money at a provider: 10 an hour per user, and per address (many guests from one address).
  'generate-video': { rules: { user: { points: 10, seconds: HOUR }, ip: { points: 10, seconds: HOUR } }, whenStoreDown: 'insurance' },
  // Hands out free credits: a few new guests per hour per address, and it fails closed.
  'device-check': { rules: { ip: { points: 5, seconds: HOUR }, device: { points: 10, seconds: HOUR } }, whenStoreDown: 'closed' },
  // refresh_token and id_token grants (the app refreshes at launch and on foreground).
  'auth-token': { rules: { ip: { points: 120, seconds: HOUR } }, whenStoreDown: 'insurance' },
  'update-credits': { rules: { user: { points: 30, seconds: HOUR }, ip: { points: 60, seconds: HOUR } }, whenStoreDown: 'insurance' },
  'merge-guest-user': { rules: { user: { points: 10, seconds: HOUR }, ip: { points: 20, seconds: HOUR } }, whenStoreDown: 'insurance' },
  // Admin sign-in (API and console): each attempt costs a password hash, known email or not; the
  // per-email lockout (ADMIN_LOGIN_MAX_FAILURES) cannot stop one address trying many emails.
  'admin-login': { rules: { ip: { points: 30, seconds: 900 } }, whenStoreDown: 'insurance' },
};

export interface RateLimitConfig {
  enabled: boolean;
  policies: Record<RateLimitPolicyName, RateLimitPolicy>;
  keyPrefix: string;
  redisUrl: string | undefined;
}

const isPolicyName = (name: string): name is RateLimitPolicyName => (RATE_LIMIT_POLICIES as readonly string[]).includes(name);

/** `generate-video.user=20/3600,device-check.ip=off` → the defaults with those rules replaced; a string is the error. */
export function parseRateLimits(spec: string): Record<RateLimitPolicyName, RateLimitPolicy> | string {
  const policies = structuredClone(DEFAULT_RATE_LIMITS);
  for (const item of commaList(spec)) {
    const m = /^([\w-]+)\.(ip|user|device)=(?:(off)|(\d+)\/(\d+))$/.exec(item);
    if (!m) return `"${item}" is not policy.kind=points/seconds or policy.kind=off`;
    const name = m[1] ?? '';
    if (!isPolicyName(name)) return `unknown policy "${name}" (known: ${RATE_LIMIT_POLICIES.join(', ')})`;
    const kind = m[2] as LimitKind;
    if (m[3]) delete policies[name].rules[kind];
    else {
      const points = Number(m[4]);
      const seconds = Number(m[5]);
      if (points < 1 || seconds < 1) return `"${item}": points and seconds must be at least 1`;
      policies[name].rules[kind] = { points, seconds };
    }
  }
  return policies;
}

export interface RateLimitsSection {
  rateLimits: RateLimitConfig;
}

export function rateLimitsSection(e: RateLimitsEnv, report: ReportIssue): RateLimitsSection {
  let policies = parseRateLimits(e.RATE_LIMITS);
  if (typeof policies === 'string') {
    report('RATE_LIMITS', policies);
    policies = DEFAULT_RATE_LIMITS;
  }
  return { rateLimits: { enabled: e.RATE_LIMITS_ENABLED, policies, keyPrefix: e.RATE_LIMIT_KEY_PREFIX, redisUrl: e.REDIS_URL } };
}
