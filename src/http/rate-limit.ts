import { createHash } from 'node:crypto';
import type { Context, MiddlewareHandler } from 'hono';
import { Redis } from 'ioredis';
import type pg from 'pg';
import { RateLimiterMemory, RateLimiterPostgres, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import { JOB_COUNTED_KINDS, type LimitKind, type LimitRule, type RateLimitConfig, type RateLimitPolicyName } from '../config/index.js';
import { isDatabaseUnavailable } from '../db/pool.js';
import { RateLimited, rateLimitHeaders, type RuleState } from '../errors/rate-limited.js';
import type { Logger } from '../logger.js';
import { ApiError } from './api-error.js';
import { addressKey, type ClientIpResolver } from './client-ip.js';
import type { AppEnv } from './context.js';

/**
 * Rate limits: per endpoint policy, one counter per key kind (address, user, device),
 * kept in PostgreSQL (table rate_limits, on the app's pool) or in Redis when REDIS_URL is set, so
 * every instance counts against the same numbers — except the global per-address backstop, which
 * counts in each instance's memory (`counted: 'instance'`, src/config/rate-limits.ts). When the store cannot answer, a policy either
 * counts in this instance's memory (`insurance`) or refuses (`closed`): see DEFAULT_RATE_LIMITS.
 *
 * A limited endpoint runs its limiter after authentication (the user is known, in secure and in
 * legacy anon-key mode alike). generate-video runs it after its Idempotency-Key claim, so a replay
 * of a stored answer is answered before anything is counted; a refused request frees the key it
 * claimed (src/http/idempotency.ts), having moved no money and created nothing.
 */

const STORE_TABLE = 'rate_limits';

interface Limiter {
  kind: LimitKind;
  rule: LimitRule;
  /** The policy item name in RateLimit-Policy / RateLimit (RFC 8941 string). */
  item: string;
  limiter: RateLimiterAbstract;
}

/** What one check decided, in the shape every 429 and RateLimit header is written from. */
const stateOf = ({ item, kind, rule }: Limiter, res: RateLimiterRes): RuleState => ({
  rule: item,
  scope: kind,
  limit: rule.points,
  windowSeconds: rule.seconds,
  remaining: res.remainingPoints,
  resetSeconds: res.msBeforeNext / 1000,
});

export class RateLimitUnavailable extends Error {}

export class RateLimits {
  private readonly limiters = new Map<RateLimitPolicyName, Limiter[]>();
  private readonly redis: Redis | undefined;

  constructor(
    private readonly config: RateLimitConfig,
    db: pg.Pool,
    readonly clientIp: ClientIpResolver,
    private readonly log: Logger,
  ) {
    this.redis = config.enabled && config.redisUrl ? connectRedis(config.redisUrl, log) : undefined;
    if (!config.enabled) return;
    for (const [name, policy] of Object.entries(config.policies) as [RateLimitPolicyName, (typeof config.policies)[RateLimitPolicyName]][]) {
      const list: Limiter[] = [];
      for (const [kind, rule] of Object.entries(policy.rules) as [LimitKind, LimitRule][]) {
        if (name === 'generate-video' && JOB_COUNTED_KINDS.includes(kind)) continue;
        const common = {
          keyPrefix: `${config.keyPrefix}:${name}:${kind}`,
          points: rule.points,
          duration: rule.seconds,
          // Once the shared store says a key is over its limit, this instance refuses it from
          // memory until the window ends, without asking the store again.
          inMemoryBlockOnConsumed: rule.points + 1,
          insuranceLimiter: policy.whenStoreDown === 'insurance' ? new RateLimiterMemory({ points: rule.points, duration: rule.seconds }) : undefined,
        };
        const limiter = policy.counted === 'instance'
          ? new RateLimiterMemory({ keyPrefix: common.keyPrefix, points: rule.points, duration: rule.seconds })
          : this.redis
          ? new RateLimiterRedis({ ...common, storeClient: this.redis, rejectIfRedisNotReady: true })
          : new RateLimiterPostgres({
              ...common,
              storeClient: db,
              storeType: 'pool',
              tableName: STORE_TABLE,
              // Migration 0010 made the table; the retention job deletes expired rows.
              tableCreated: true,
              clearExpiredByTimeout: false,
            });
        list.push({ kind, rule, item: `${name}.${kind}`, limiter });
      }
      this.limiters.set(name, list);
    }
  }

  /**
   * Counts one request against every rule of the policy that has a key; 429 ERR_4004 (RateLimited)
   * with Retry-After when one is exhausted. Returns the rules' states for the RateLimit headers.
   */
  async consume(policy: RateLimitPolicyName, keys: Partial<Record<LimitKind, string>>): Promise<RuleState[]> {
    const outcomes: RuleState[] = [];
    for (const limiter of this.limiters.get(policy) ?? []) {
      const key = keys[limiter.kind];
      if (key === undefined) continue;
      try {
        outcomes.push(stateOf(limiter, await limiter.limiter.consume(storeKey(key))));
      } catch (err) {
        if (!(err instanceof RateLimiterRes)) {
          // Only a `closed` policy gets here (an insured one answered from memory). With the
          // PostgreSQL store the database itself is down: that answer (ERR_6001) is the true one.
          if (isDatabaseUnavailable(err)) throw err;
          this.log.warn({ err, policy }, 'rate limit store unavailable; refusing (policy fails closed)');
          throw new ApiError('ERR_5002', { service: 'rate_limiter' }, { 'Retry-After': '5' });
        }
        throw new RateLimited(stateOf(limiter, err), outcomes);
      }
    }
    return outcomes;
  }

  /** The middleware of a limited endpoint: the caller's address, user (if authenticated) and device. */
  middleware(policy: RateLimitPolicyName, device?: (c: Context<AppEnv>) => Promise<string | undefined>): MiddlewareHandler<AppEnv> {
    return async (c, next) => {
      if (!this.config.enabled) return next();
      // Built whole in one literal: spreading addressKeys() into it made every request's keys an
      // object of a new shape, and the global ceiling cost a get-models 304 a sixth of its throughput.
      const address = addressKey(this.clientIp(c));
      const ipv6 = this.countsAsIpv6(policy, address);
      const outcomes = await this.consume(policy, {
        ip: ipv6 ? undefined : address,
        ip6: ipv6 ? address : undefined,
        user: c.get('user')?.id,
        device: device ? await device(c) : undefined,
      });
      await next();
      // The global ceiling only speaks when the endpoint said nothing; an endpoint's rules join
      // what its handler reported (generate-video's per-user rules).
      const said = { policy: c.res.headers.get('RateLimit-Policy'), state: c.res.headers.get('RateLimit') };
      if (policy === 'global' && said.state) return;
      const ours = rateLimitHeaders(outcomes);
      if (ours.RateLimit === undefined) return;
      c.res.headers.set('RateLimit-Policy', [said.policy, ours['RateLimit-Policy']].filter(Boolean).join(', '));
      c.res.headers.set('RateLimit', [said.state, ours.RateLimit].filter(Boolean).join(', '));
    };
  }

  /**
   * An IPv6 /64 counts against the policy's ip6 rule when it has one, else against ip like an IPv4
   * address. Public for what is limited outside a request's middleware (Realtime's joins).
   */
  addressKeys(policy: RateLimitPolicyName, address: string): Partial<Record<LimitKind, string>> {
    return this.countsAsIpv6(policy, address) ? { ip6: address } : { ip: address };
  }

  private countsAsIpv6(policy: RateLimitPolicyName, address: string): boolean {
    return address.includes(':') && this.config.policies[policy].rules.ip6 !== undefined;
  }

  /** Resolves once the Redis store is connected (at once for PostgreSQL): until then, policies answer from their fallback. */
  async ready(): Promise<void> {
    const redis = this.redis;
    if (!redis || redis.status === 'ready') return;
    await new Promise<void>((resolve) => redis.once('ready', () => resolve()));
  }

  async close(): Promise<void> {
    this.redis?.disconnect();
  }
}

// Long keys (a device_id is up to 200 characters, the column 255) are hashed; the rest stay readable.
const storeKey = (key: string) => (key.length <= 64 ? key : createHash('sha256').update(key).digest('hex'));

function connectRedis(url: string, log: Logger): Redis {
  const redis = new Redis(url, {
    // Commands fail at once while disconnected (the policy's fallback answers), never queue.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    lazyConnect: false,
  });
  let warned = false;
  redis.on('error', (err) => {
    if (!warned) log.warn({ err }, 'rate limit store (Redis) unavailable');
    warned = true;
  });
  redis.on('ready', () => {
    warned = false;
  });
  return redis;
}

/** The device a device-check request names (its device_id), for the per-device rule. */
export const deviceIdFromBody = async (c: Context<AppEnv>): Promise<string | undefined> => {
  const body = (await c.req.json().catch(() => undefined)) as { device_id?: unknown } | undefined;
  return typeof body?.device_id === 'string' ? body.device_id : undefined;
};
