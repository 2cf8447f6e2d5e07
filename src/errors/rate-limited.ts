import { DomainError } from './domain-error.js';

/**
 * Where one rate-limit rule stands for a caller. Both the request limiter (src/http/rate-limit.ts)
 * and generate-video's job-counting rules (src/jobs/generate-limits.ts) report in this shape, so
 * every 429 names its rule and when it resets the same way.
 */
export interface RuleState {
  /** `policy.kind`, e.g. generate-video.user: the item name in the RateLimit headers. */
  rule: string;
  /** The kind alone (ip, ip6, user, buyer, device, in_flight), as details.scope. */
  scope: string;
  limit: number;
  /** The window; none for a limit on what runs at once (in_flight). */
  windowSeconds?: number;
  remaining: number;
  /** Seconds until a request would be allowed again (a window's reset, or an estimate). */
  resetSeconds: number;
}

/**
 * IETF draft-ietf-httpapi-ratelimit-headers: each windowed rule's quota (q per w seconds), and what
 * remains (r) and in how many seconds its window resets (t).
 */
export function rateLimitHeaders(states: RuleState[]): Record<string, string> {
  const windowed = states.filter((s) => s.windowSeconds !== undefined);
  if (windowed.length === 0) return {};
  return {
    'RateLimit-Policy': windowed.map((s) => `"${s.rule}";q=${s.limit};w=${s.windowSeconds}`).join(', '),
    RateLimit: windowed.map((s) => `"${s.rule}";r=${Math.max(0, s.remaining)};t=${Math.max(0, Math.ceil(s.resetSeconds))}`).join(', '),
  };
}

/** 429 ERR_4004: which rule refused, its numbers and when to try again (Retry-After, and in the localized message). */
export class RateLimited extends DomainError {
  readonly code = 'ERR_4004';

  /** others: the rules already counted for this request, for the RateLimit headers. */
  constructor(
    readonly refused: RuleState,
    private readonly others: RuleState[] = [],
  ) {
    super(`rate limited by ${refused.rule}`);
  }

  get retryAfter(): number {
    return Math.max(1, Math.ceil(this.refused.resetSeconds));
  }

  override get details() {
    const { rule, scope, limit, windowSeconds } = this.refused;
    return { retry_after: this.retryAfter, rule, scope, limit, ...(windowSeconds !== undefined ? { window_seconds: windowSeconds } : {}) };
  }

  override get headers() {
    return { 'Retry-After': String(this.retryAfter), ...rateLimitHeaders([...this.others, this.refused]) };
  }
}
