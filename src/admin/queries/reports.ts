import type { Queryable } from '../../db/pool.js';

/** Read-only views for the support team: user lookup and stats, job timelines, failures, dashboard. */

export interface AdminUserView {
  id: string;
  device_id: string | null;
  apple_sub: string | null;
  email: string | null;
  is_guest: boolean;
  tier: string;
  banned_at: string | null;
  deleted_at: string | null;
  merged_into: string | null;
  created_at: string;
  balance: number;
  held: number;
  available: number;
  /** Owed after a clawback found the credits held; paid first from every release and credit. */
  debt: number;
}

const USER_VIEW = `SELECT u.id, u.device_id, u.apple_sub, u.email, u.is_guest, u.tier, u.banned_at, u.deleted_at, u.merged_into, u.created_at,
       coalesce(a.balance, 0) AS balance, coalesce(a.held, 0) AS held, coalesce(a.balance - a.held, 0) AS available, coalesce(a.debt, 0) AS debt
  FROM users u LEFT JOIN credit_accounts a ON a.user_id = u.id`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A search result: the user, what the term matched, and whether it matched whole (listed first). */
export interface AdminUserSearchHit extends AdminUserView {
  matched: string;
  exact: boolean;
}

/**
 * The bounds of the uuids starting with a term of 4 or more hex digits (dashes anywhere): a range
 * of the primary key's btree, which a text LIKE on id::text could not use.
 */
export function uuidPrefixRange(term: string): [string, string] | null {
  const hex = term.replace(/-/g, '').toLowerCase();
  if (!/^[0-9a-f-]+$/i.test(term) || !/^[0-9a-f]{4,32}$/.test(hex)) return null;
  const asUuid = (h: string) => `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  return [asUuid(hex.padEnd(32, '0')), asUuid(hex.padEnd(32, 'f'))];
}

/**
 * The text starting with a term, as a byte-order range (text_pattern_ops' ~>=~ and ~<~): from the
 * term to the term followed by the last Unicode code point, which no text starting with the term
 * passes. A range, not LIKE 'term%': a LIKE pattern given as a parameter reads no index in a
 * generic plan (a pooler's or a statement cache's prepared statement).
 */
const startingWith = (term: string): [string, string] => [term, `${term}\u{10FFFF}`];

/**
 * One query per way of naming a user, each a range or equality on an index of its own (migration
 * 0029), each capped, united: an OR across columns would be one sequential scan of users.
 *   $1 the term · $2, $3 the uuid range of a user or job id's start · $4, $5 the lower-case term's text range
 * A device id also finds the users that onboarded with it and released it since (signed in with
 * Apple, merged, deleted), by its hash (as typed, or upper or lower case: iOS's ids are upper).
 * When something matches whole, only whole matches are listed; otherwise everything that starts so.
 * A prefix branch is ordered in the index's own order (USING ~<~): ordered by the collation instead,
 * it read every row starting so to sort them for its 50 ("USER1" at 1M users: 90 ms; in index order, 3 ms).
 */
export const USER_SEARCH_SQL = `WITH hits AS (
  (SELECT id, 'user id' AS how, $2::uuid = $3::uuid AS exact FROM users WHERE id BETWEEN $2::uuid AND $3::uuid ORDER BY id LIMIT 50)
  UNION ALL (SELECT id, 'device id', lower(device_id) = $4::text FROM users
              WHERE lower(device_id) ~>=~ $4::text AND lower(device_id) ~<~ $5::text ORDER BY lower(device_id) USING ~<~ LIMIT 50)
  UNION ALL (SELECT id, 'device id (released)', true FROM users
              WHERE onboarded_device_hash IN (encode(sha256(convert_to($1::text, 'UTF8')), 'hex'), encode(sha256(convert_to(upper($1::text), 'UTF8')), 'hex'),
                                              encode(sha256(convert_to($4::text, 'UTF8')), 'hex')) LIMIT 50)
  UNION ALL (SELECT id, 'Apple sub', true FROM users WHERE apple_sub = $1::text)
  UNION ALL (SELECT id, 'email', lower(email) = $4::text FROM users
              WHERE lower(email) ~>=~ $4::text AND lower(email) ~<~ $5::text ORDER BY lower(email) USING ~<~ LIMIT 50)
  UNION ALL (SELECT user_id, 'job ' || job_id, $2::uuid = $3::uuid FROM video_jobs WHERE job_id BETWEEN $2::uuid AND $3::uuid ORDER BY job_id LIMIT 50)
  UNION ALL (SELECT user_id, 'App Store transaction ' || transaction_id, true FROM iap_transactions WHERE transaction_id = $1::text)
), matched AS (SELECT id, string_agg(DISTINCT how, ', ') AS matched, bool_or(exact) AS exact FROM hits GROUP BY id)
SELECT v.*, m.matched, m.exact FROM matched m CROSS JOIN LATERAL (${USER_VIEW} WHERE u.id = m.id) v
 WHERE m.exact OR NOT EXISTS (SELECT 1 FROM matched WHERE exact)
 ORDER BY v.created_at DESC LIMIT 50`;

export function userSearchParams(q: string): unknown[] {
  const term = q.trim();
  const range = uuidPrefixRange(term);
  return [term, range?.[0] ?? null, range?.[1] ?? null, ...startingWith(term.toLowerCase())];
}

/**
 * Users a support agent's search names: by user id or job id (whole or the first 4+ hex digits),
 * device id or email (case-insensitive, whole or its start), Apple sub or App Store transaction id
 * (whole). Whole matches only, when there are any.
 */
export async function searchUsers(db: Queryable, q: string): Promise<AdminUserSearchHit[]> {
  const { rows } = await db.query<AdminUserSearchHit>(USER_SEARCH_SQL, userSearchParams(q));
  return rows;
}

export async function findUserView(db: Queryable, id: string): Promise<AdminUserView | undefined> {
  if (!UUID.test(id)) return undefined;
  const { rows } = await db.query<AdminUserView>(`${USER_VIEW} WHERE u.id = $1`, [id]);
  return rows[0];
}

export interface LedgerEntryView {
  id: number;
  kind: string;
  amount: number;
  held_delta: number;
  balance_after: number;
  held_after: number;
  job_id: string | null;
  transaction_id: string | null;
  admin_action_id: number | null;
  reason: string | null;
  shortfall: number;
  debt_after: number;
  /** The clawback entry whose debt this entry pays or cancels. */
  debt_of: string | null;
  created_at: string;
}

// A user's newest rows are picked from the per-user index alone (the inner LIMIT), then read.
// Asked in one step ("WHERE user_id = $1 ORDER BY id DESC LIMIT 50"), the planner may walk the
// whole table's id or time index newest first, expecting a user's rows to be spread evenly: for a
// user whose history is old (20k jobs a year ago) that read the entire ledger for 50 rows.
export async function ledgerEntriesOf(db: Queryable, userId: string, limit: number): Promise<LedgerEntryView[]> {
  const { rows } = await db.query<LedgerEntryView>(
    `SELECT id, kind, amount, held_delta, balance_after, held_after, job_id, transaction_id, admin_action_id, reason, shortfall, debt_after, debt_of, created_at
       FROM ledger_entries WHERE id IN (SELECT id FROM ledger_entries WHERE user_id = $1 ORDER BY id DESC LIMIT $2) ORDER BY id DESC`,
    [userId, limit],
  );
  return rows;
}

export interface JobView {
  job_id: string;
  model_id: string;
  status: string;
  provider: string;
  provider_job_id: string | null;
  credits_used: number;
  error_code: string | null;
  error_message: string | null;
  attempts: number;
  created_at: string;
  submitted_at: string | null;
  completed_at: string | null;
  deleted_at: string | null;
}

const JOB_VIEW = `SELECT job_id, user_id, model_id, status, provider, provider_job_id, credits_used, error_code, error_message, attempts,
       created_at, submitted_at, completed_at, deleted_at FROM video_jobs`;

export async function jobsOf(db: Queryable, userId: string, limit: number): Promise<JobView[]> {
  const { rows } = await db.query<JobView>(
    `${JOB_VIEW} WHERE job_id IN (SELECT job_id FROM video_jobs WHERE user_id = $1 ORDER BY created_at DESC LIMIT $2) ORDER BY created_at DESC`,
    [userId, limit],
  );
  return rows;
}

export interface UserStats {
  jobs_by_status: Record<string, number>;
  jobs_total: number;
  success_rate: number | null;
  credits_bought: number;
  credits_spent: number;
  credits_refunded: number;
  credits_clawed_back: number;
  credits_released: number;
}

/**
 * Jobs by status and the credits story of one account. refunded = credits support gave back
 * (admin grants); clawed back = taken by Apple refunds or support; released = held for videos
 * that failed and returned.
 */
export async function userStats(db: Queryable, userId: string): Promise<UserStats> {
  const jobs = await db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM video_jobs WHERE user_id = $1 GROUP BY status', [userId]);
  const byStatus = Object.fromEntries(jobs.rows.map((r) => [r.status, r.n]));
  const ended = (byStatus.completed ?? 0) + (byStatus.failed ?? 0);
  const { rows } = await db.query<Omit<UserStats, 'jobs_by_status' | 'jobs_total' | 'success_rate'>>(
    `SELECT coalesce(sum(amount) FILTER (WHERE kind = 'purchase'), 0)::int AS credits_bought,
            coalesce(sum(-amount) FILTER (WHERE kind = 'capture'), 0)::int AS credits_spent,
            coalesce(sum(amount) FILTER (WHERE kind = 'admin_grant'), 0)::int AS credits_refunded,
            coalesce(sum(-amount) FILTER (WHERE kind IN ('refund_clawback', 'admin_clawback')), 0)::int AS credits_clawed_back,
            coalesce(sum(-held_delta) FILTER (WHERE kind = 'release'), 0)::int AS credits_released
       FROM ledger_entries WHERE user_id = $1`,
    [userId],
  );
  return {
    jobs_by_status: byStatus,
    jobs_total: jobs.rows.reduce((n, r) => n + r.n, 0),
    success_rate: ended > 0 ? (byStatus.completed ?? 0) / ended : null,
    ...rows[0]!,
  };
}

export interface TimelineEvent {
  at: string;
  kind: 'state' | 'ledger' | 'webhook' | 'error' | 'admin';
  what: string;
  detail: Record<string, unknown>;
}

/**
 * A job's story from what the database kept: its state timestamps, provider ids, the ledger steps
 * of its hold, the provider callbacks received for it, its error, and admin actions on its user
 * after it was created.
 */
/** What ingest found in the video (migration 0026), and what a provider delivered that failed its checks. */
export interface JobMedia {
  media_duration_seconds: number | null;
  media_width: number | null;
  media_height: number | null;
  media_codec: string | null;
  media_size_bytes: string | null;
  poster_source: string | null;
  provider_error: string | null;
  media_rejection: Record<string, unknown> | null;
}

export async function jobTimeline(db: Queryable, jobId: string): Promise<{ job: JobView & JobMedia & { user_id: string; prompt: string; settings: unknown }; events: TimelineEvent[] } | undefined> {
  const { rows } = await db.query<JobView & JobMedia & { user_id: string; prompt: string; settings: unknown; updated_at: string }>(
    `SELECT job_id, user_id, model_id, status, provider, provider_job_id, credits_used, error_code, error_message, attempts,
            created_at, submitted_at, completed_at, deleted_at, prompt, settings, updated_at, provider_error,
            media_duration_seconds, media_width, media_height, media_codec, media_size_bytes, poster_source, media_rejection
       FROM video_jobs WHERE job_id = $1`,
    [jobId],
  );
  const job = rows[0];
  if (!job) return undefined;
  const events: TimelineEvent[] = [{ at: job.created_at, kind: 'state', what: 'queued', detail: { model_id: job.model_id, credits: job.credits_used } }];
  if (job.submitted_at) events.push({ at: job.submitted_at, kind: 'state', what: 'submitted', detail: { provider: job.provider, provider_job_id: job.provider_job_id, attempts: job.attempts } });
  if (job.completed_at) events.push({ at: job.completed_at, kind: 'state', what: job.status, detail: {} });
  else events.push({ at: job.updated_at, kind: 'state', what: job.status, detail: { current: true } });
  if (job.error_code) events.push({ at: job.completed_at ?? job.updated_at, kind: 'error', what: job.error_code, detail: { message: job.error_message } });
  const ledger = await db.query<{ created_at: string; kind: string; amount: number; held_delta: number; reason: string | null }>(
    // By its hold (indexed): every entry naming a job is a step of the job's hold.
    'SELECT created_at, kind, amount, held_delta, reason FROM ledger_entries WHERE hold_id = (SELECT hold_id FROM video_jobs WHERE job_id = $1) ORDER BY id',
    [jobId],
  );
  for (const e of ledger.rows) events.push({ at: e.created_at, kind: 'ledger', what: e.kind, detail: { amount: e.amount, held_delta: e.held_delta, reason: e.reason } });
  const hooks = await db.query<{ received_at: string; provider: string; event_id: string; outcome: string | null; payload: unknown }>(
    'SELECT received_at, provider, event_id, outcome, payload FROM webhook_events WHERE job_id = $1 ORDER BY id',
    [jobId],
  );
  for (const h of hooks.rows) events.push({ at: h.received_at, kind: 'webhook', what: `${h.provider} ${h.outcome ?? ''}`.trim(), detail: { event_id: h.event_id, payload: h.payload } });
  events.sort((a, b) => a.at.localeCompare(b.at));
  return { job, events };
}

export interface ProviderFailures {
  provider: string;
  completed: number;
  failed: number;
  failure_rate: number | null;
  by_error: Record<string, number>;
  /**
   * Requests made in the window that no job used (a lost answer's resubmission, a request its job
   * ended before we stored): how many, how many the provider finished and so bills, and how many
   * it gave no clear answer about (a refused or unanswered cancel). unanswered: submit attempts of
   * ended jobs whose answer never came and whose request never called back — it may exist and be
   * billed, and the provider offers no way to find out (fal has no "list my requests").
   */
  duplicates: { requests: number; billed: number; unknown: number; unanswered: number };
}

/** Jobs that ended within the last `hours`, per provider: failure rate and the error codes. */
export async function failuresByProvider(db: Queryable, hours: number): Promise<{ providers: ProviderFailures[]; recent: JobView[] }> {
  const { rows } = await db.query<{ provider: string; status: string; error_code: string | null; n: number }>(
    `SELECT provider, status, error_code, count(*)::int AS n FROM video_jobs
      WHERE completed_at > now() - make_interval(secs => $1::float8 * 3600) GROUP BY provider, status, error_code`,
    [hours],
  );
  const per = new Map<string, ProviderFailures>();
  const entry = (provider: string): ProviderFailures =>
    per.get(provider) ?? { provider, completed: 0, failed: 0, failure_rate: null, by_error: {}, duplicates: { requests: 0, billed: 0, unknown: 0, unanswered: 0 } };
  for (const r of rows) {
    const p = entry(r.provider);
    if (r.status === 'completed') p.completed += r.n;
    else {
      p.failed += r.n;
      p.by_error[r.error_code ?? 'unknown'] = (p.by_error[r.error_code ?? 'unknown'] ?? 0) + r.n;
    }
    per.set(r.provider, p);
  }
  const duplicates = await db.query<{ provider: string; requests: number; billed: number; unknown: number; unanswered: number }>(
    `SELECT s.provider, count(*) FILTER (WHERE s.outcome = 'redundant')::int AS requests,
            count(*) FILTER (WHERE s.outcome = 'redundant' AND s.billed)::int AS billed,
            count(*) FILTER (WHERE s.outcome = 'redundant' AND s.billed IS NULL)::int AS unknown,
            count(*) FILTER (WHERE s.outcome = 'sent' AND j.status IN ('completed', 'failed'))::int AS unanswered
       FROM provider_submissions s JOIN video_jobs j ON j.job_id = s.job_id
      WHERE s.outcome IN ('redundant', 'sent') AND s.created_at > now() - make_interval(secs => $1::float8 * 3600)
      GROUP BY s.provider`,
    [hours],
  );
  for (const { provider, ...d } of duplicates.rows) per.set(provider, { ...entry(provider), duplicates: d });
  for (const p of per.values()) p.failure_rate = p.completed + p.failed > 0 ? p.failed / (p.completed + p.failed) : null;
  const recent = await db.query<JobView>(
    `${JOB_VIEW} WHERE status = 'failed' AND completed_at > now() - make_interval(secs => $1::float8 * 3600) ORDER BY completed_at DESC LIMIT 50`,
    [hours],
  );
  return { providers: [...per.values()].sort((a, b) => a.provider.localeCompare(b.provider)), recent: recent.rows };
}

export interface Dashboard {
  since: string;
  jobs_by_status: Record<string, number>;
  providers: ProviderFailures[];
  credits_sold: number;
  credits_refunded: number;
  credits_clawed_back: number;
  open_holds: { count: number; credits: number };
}

/** Today (since midnight UTC): jobs by status, failure rate per provider, credits sold and refunded; open holds now. */
export async function dashboard(db: Queryable): Promise<Dashboard> {
  const since = await db.query<{ since: string; hours: number }>(
    "SELECT date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS since, extract(epoch FROM now() - date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') / 3600 AS hours",
  );
  const { since: start, hours } = since.rows[0]!;
  const jobs = await db.query<{ status: string; n: number }>('SELECT status, count(*)::int AS n FROM video_jobs WHERE created_at >= $1 GROUP BY status', [start]);
  const credits = await db.query<{ sold: number; refunded: number; clawed_back: number }>(
    `SELECT coalesce(sum(amount) FILTER (WHERE kind = 'purchase'), 0)::int AS sold,
            coalesce(sum(amount) FILTER (WHERE kind = 'admin_grant'), 0)::int AS refunded,
            coalesce(sum(-amount) FILTER (WHERE kind IN ('refund_clawback', 'admin_clawback')), 0)::int AS clawed_back
       FROM ledger_entries WHERE created_at >= $1 AND kind IN ('purchase', 'admin_grant', 'refund_clawback', 'admin_clawback')`,
    [start],
  );
  const holds = await db.query<{ count: number; credits: number }>("SELECT count(*)::int AS count, coalesce(sum(amount), 0)::int AS credits FROM credit_holds WHERE status = 'open'");
  const { providers } = await failuresByProvider(db, Math.max(hours, 1 / 60));
  return {
    since: start,
    jobs_by_status: Object.fromEntries(jobs.rows.map((r) => [r.status, r.n])),
    providers,
    credits_sold: credits.rows[0]!.sold,
    credits_refunded: credits.rows[0]!.refunded,
    credits_clawed_back: credits.rows[0]!.clawed_back,
    open_holds: holds.rows[0]!,
  };
}
