import type { LimitRule } from '../config/index.js';
import type { Queryable } from '../db/pool.js';
import { countGenerateUsage } from '../db/queries/video-jobs.js';
import { RateLimited, type RuleState } from '../errors/rate-limited.js';

/**
 * generate-video's per-user limits count the user's jobs, not requests: a replay is
 * answered before it gets here, a refused request created nothing, and a job that failed on its
 * own (the provider's outage, our deadline) is not counted — the former backend's rule
 * (docs/reference/ios-app.md §2.10: "failed jobs don't count"). The window slides: a slot frees an
 * hour after the job that took it. Accounts that have bought credits have their own rule (buyer);
 * their credits already bound what they spend, the limit is against abuse and cost spikes. The
 * in-flight limit is the guard against bursts: a burst of taps is refused clearly, not run at once.
 */
export interface GenerateLimits {
  /** Accounts that never bought credits (generate-video.user). */
  user?: LimitRule;
  /** Accounts that have (generate-video.buyer). */
  buyer?: LimitRule;
  /** Jobs running at once; 0: no limit. */
  maxInFlight: number;
}

/**
 * How long a refusal for too many running jobs asks the app to wait: a running job usually ends
 * within a minute or two (the simulator's in seconds), and a retry too early is refused again, cheaply.
 */
const IN_FLIGHT_RETRY_SECONDS = 30;

/**
 * Where the user stands, counting the job this request is making if `includesNew` (it is already
 * inserted, in the caller's transaction); throws RateLimited when over a rule. Exact only under the
 * owner's account lock (generate-video holds it), which serialises a user's generates; without it,
 * a cheap early refusal. Returns the windowed rule's state for the RateLimit headers.
 */
export async function checkGenerateLimits(db: Queryable, userId: string, limits: GenerateLimits, includesNew: boolean): Promise<RuleState | undefined> {
  if (!limits.user && !limits.buyer && limits.maxInFlight === 0) return undefined;
  const usage = await countGenerateUsage(db, userId, { user: limits.user?.seconds ?? 0, buyer: limits.buyer?.seconds ?? 0 });
  const [kind, rule] = usage.bought ? (['buyer', limits.buyer] as const) : (['user', limits.user] as const);
  const allowed = (limit: number, used: number) => (includesNew ? used <= limit : used < limit);

  let state: RuleState | undefined;
  if (rule) {
    // The slot a new job needs frees when the oldest counted job leaves the window.
    const resetSeconds = usage.oldestCountedAgeSeconds === null ? rule.seconds : Math.max(0, rule.seconds - usage.oldestCountedAgeSeconds);
    state = { rule: `generate-video.${kind}`, scope: kind, limit: rule.points, windowSeconds: rule.seconds, remaining: rule.points - usage.counted, resetSeconds };
    if (!allowed(rule.points, usage.counted)) throw new RateLimited({ ...state, remaining: 0 });
  }
  if (limits.maxInFlight > 0 && !allowed(limits.maxInFlight, usage.inFlight)) {
    const inFlight: RuleState = {
      rule: 'generate-video.in_flight',
      scope: 'in_flight',
      limit: limits.maxInFlight,
      remaining: 0,
      resetSeconds: IN_FLIGHT_RETRY_SECONDS,
    };
    throw new RateLimited(inFlight, state ? [state] : []);
  }
  return state;
}
