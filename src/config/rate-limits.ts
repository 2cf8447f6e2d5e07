import { z } from 'zod';
import { bool, commaList, type ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

/** The limiter's policies (src/http/rate-limit.ts enforces them) and where it counts. */
export const rateLimitsEnv = z.object({
  /**
   * Rate limits on or off. Default: on, except in development (NODE_ENV unset or development), where
   * the README's walk-through must never be refused. Tests about something else turn them off
   * (test/support/harness.ts).
   */
  RATE_LIMITS_ENABLED: bool.optional(),
  /**
   * The most generate-video jobs one user may have running at once (0: no limit). The guard against
   * a burst of taps starting that many provider jobs together; counted in the database.
   */
  GENERATE_MAX_IN_FLIGHT: z.coerce.number().int().min(0).max(1000).default(5),
  /** Overrides of the default limits: `policy.kind=points/seconds` or `policy.kind=off`, comma-separated (docs/ARCHITECTURE.md). */
  RATE_LIMITS: z.string().default(''),
  /** Prefix of every limiter key (lets instances of different deployments share one Redis). */
  RATE_LIMIT_KEY_PREFIX: z.string().regex(/^[\w.-]{1,64}$/).default('rl'),
  /** Redis for the rate limiter's counters; without it they live in PostgreSQL (table rate_limits). */
  REDIS_URL: z.string().url().optional(),
});
type RateLimitsEnv = z.infer<typeof rateLimitsEnv>;

/**
 * ip: the client's address (IPv4; IPv6 per /64 too unless the policy has an ip6 rule); ip6: IPv6
 * clients per /64; user: the verified user; buyer: generate-video's per-user rule for accounts that
 * have bought credits (instead of user); device: the device_id a device-check names.
 */
export type LimitKind = 'ip' | 'ip6' | 'user' | 'buyer' | 'device';
const LIMIT_KINDS: readonly LimitKind[] = ['ip', 'ip6', 'user', 'buyer', 'device'];
/**
 * generate-video's per-user rules count the user's jobs in the database (src/jobs/generate-limits.ts),
 * not requests: a replay, a refused request and a failed job spend nothing. The limiter keeps its address rules.
 */
export const JOB_COUNTED_KINDS: readonly LimitKind[] = ['user', 'buyer'];
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
  /**
   * Where its counters live: `shared` in the store (every instance counts against the same
   * numbers), `instance` in this process's memory (a limit per instance: N instances let N times
   * through). Only the global backstop counts per instance: it runs on every request, and a store
   * round trip there would cost more than the cheapest requests themselves.
   */
  counted?: 'shared' | 'instance';
}
export const RATE_LIMIT_POLICIES = ['global', 'generate-video', 'device-check', 'auth-token', 'update-credits', 'merge-guest-user', 'admin-login', 'realtime-join'] as const;
export type RateLimitPolicyName = (typeof RATE_LIMIT_POLICIES)[number];

const HOUR = 3600;
/**
 * The production defaults (the per-address numbers' reasoning: docs/DEPLOY.md "Rate limits and
 * carrier NAT"); RATE_LIMITS overrides single rules. Per-address rules are a
 * backstop: an IPv4 address may be a carrier's NAT with thousands of phones behind it, so its rules
 * are generous; an IPv6 /64 is one subscriber's network, so ip6 is tighter. The guards are the
 * per-user and per-device rules, DeviceCheck's one grant per device, and a user's credits.
 */
export const DEFAULT_RATE_LIMITS: Record<RateLimitPolicyName, RateLimitPolicy> = {
  global: { rules: { ip: { points: 3000, seconds: 60 }, ip6: { points: 600, seconds: 60 } }, whenStoreDown: 'insurance', counted: 'instance' },
  // What costs us money at a provider. user: accounts that never bought credits (the former
  // backend's free tier, 10 an hour); buyer: accounts that have; both count jobs that did not fail.
  'generate-video': {
    rules: { user: { points: 10, seconds: HOUR }, buyer: { points: 60, seconds: HOUR }, ip: { points: 600, seconds: HOUR }, ip6: { points: 60, seconds: HOUR } },
    whenStoreDown: 'insurance',
  },
  // Hands out free credits (once per device: DeviceCheck and device_grants are the guard), and it fails closed.
  'device-check': { rules: { ip: { points: 300, seconds: HOUR }, ip6: { points: 20, seconds: HOUR }, device: { points: 10, seconds: HOUR } }, whenStoreDown: 'closed' },
  // refresh_token and id_token grants (the app refreshes at launch and on foreground).
  'auth-token': { rules: { ip: { points: 3600, seconds: HOUR }, ip6: { points: 240, seconds: HOUR } }, whenStoreDown: 'insurance' },
  'update-credits': { rules: { user: { points: 30, seconds: HOUR }, ip: { points: 1200, seconds: HOUR }, ip6: { points: 120, seconds: HOUR } }, whenStoreDown: 'insurance' },
  'merge-guest-user': { rules: { user: { points: 10, seconds: HOUR }, ip: { points: 600, seconds: HOUR }, ip6: { points: 60, seconds: HOUR } }, whenStoreDown: 'insurance' },
  // Admin sign-in (API and console): each attempt costs a password hash, known email or not; the
  // per-email lockout (ADMIN_LOGIN_MAX_FAILURES) cannot stop one address trying many emails.
  // Admins do not sit behind a carrier's NAT: this one stays tight.
  'admin-login': { rules: { ip: { points: 30, seconds: 900 } }, whenStoreDown: 'insurance' },
  // Realtime's phx_join and access_token (with a new token): each costs a session check and job
  // lookups, where a heartbeat costs nothing. The app joins one channel per job it watches and
  // rejoins after a reconnect; an address holds at most REALTIME_MAX_SOCKETS_PER_ADDRESS sockets.
  'realtime-join': { rules: { user: { points: 30, seconds: 60 }, ip: { points: 300, seconds: 60 }, ip6: { points: 60, seconds: 60 } }, whenStoreDown: 'insurance' },
};

export interface RateLimitConfig {
  enabled: boolean;
  /** Jobs one user may have running at once; 0: no limit. */
  generateMaxInFlight: number;
  policies: Record<RateLimitPolicyName, RateLimitPolicy>;
  keyPrefix: string;
  redisUrl: string | undefined;
}

const isPolicyName = (name: string): name is RateLimitPolicyName => (RATE_LIMIT_POLICIES as readonly string[]).includes(name);

/** `generate-video.user=20/3600,device-check.ip=off` → the defaults with those rules replaced; a string is the error. */
export function parseRateLimits(spec: string): Record<RateLimitPolicyName, RateLimitPolicy> | string {
  const policies = structuredClone(DEFAULT_RATE_LIMITS);
  for (const item of commaList(spec)) {
    const m = new RegExp(`^([\\w-]+)\\.(${LIMIT_KINDS.join('|')})=(?:(off)|(\\d+)\\/(\\d+))$`).exec(item);
    if (!m) return `"${item}" is not policy.kind=points/seconds or policy.kind=off`;
    const name = m[1] ?? '';
    if (!isPolicyName(name)) return `unknown policy "${name}" (known: ${RATE_LIMIT_POLICIES.join(', ')})`;
    const kind = m[2] as LimitKind;
    if (kind === 'buyer' && name !== 'generate-video') return `"${item}": only generate-video has a buyer rule`;
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

export function rateLimitsSection(e: RateLimitsEnv & Pick<ServerEnv, 'NODE_ENV'>, report: ReportIssue): RateLimitsSection {
  let policies = parseRateLimits(e.RATE_LIMITS);
  if (typeof policies === 'string') {
    report('RATE_LIMITS', policies);
    policies = DEFAULT_RATE_LIMITS;
  }
  return {
    rateLimits: {
      enabled: e.RATE_LIMITS_ENABLED ?? e.NODE_ENV !== 'development',
      generateMaxInFlight: e.GENERATE_MAX_IN_FLIGHT,
      policies,
      keyPrefix: e.RATE_LIMIT_KEY_PREFIX,
      redisUrl: e.REDIS_URL,
    },
  };
}
