import type { Queryable } from '../../db/pool.js';

/**
 * The dashboard's charts over the last 24 hours, 7 or 30 days, in equal buckets ending with the
 * current one. Each query reads one index alone (migration 0029; test/admin/charts.test.ts checks
 * the plans): jobs started per provider, jobs ended per provider (completed, failed, failure rate),
 * time to video per model (p50, p95), credits sold, refunded by support and clawed back, and the
 * queue's depth at the end of each bucket.
 */

export const CHART_RANGES = {
  '24h': { buckets: 24, seconds: 3600 },
  '7d': { buckets: 28, seconds: 6 * 3600 },
  '30d': { buckets: 30, seconds: 24 * 3600 },
} as const;
export type ChartRange = keyof typeof CHART_RANGES;

export interface Series {
  name: string;
  /** One value per bucket, oldest first; null where there is nothing to measure (a rate of no jobs). */
  values: (number | null)[];
}

export interface Charts {
  range: ChartRange;
  /** Each bucket's start (ISO), oldest first; the last bucket is the current, partial one. */
  buckets: string[];
  bucketSeconds: number;
  started: Series[];
  completed: Series[];
  failed: Series[];
  failureRate: Series[];
  /** Seconds from request to delivered video, per model: "<model> p50" and "<model> p95". */
  timeToVideo: Series[];
  credits: Series[];
  queueDepth: Series[];
}

/** Which bucket a timestamp column falls in: whole buckets since the range's start. */
const bucketOf = (column: string) => `floor(extract(epoch FROM ${column} - $1::timestamptz) / $2)::int`;

export const CHART_SQL = {
  started: `SELECT provider AS key, ${bucketOf('created_at')} AS b, count(*)::int AS n
              FROM video_jobs WHERE created_at >= $1::timestamptz GROUP BY 1, 2`,
  ended: `SELECT provider AS key, status, ${bucketOf('completed_at')} AS b, count(*)::int AS n
            FROM video_jobs WHERE completed_at >= $1::timestamptz AND status IN ('completed', 'failed') GROUP BY 1, 2, 3`,
  timeToVideo: `SELECT model_id AS key, ${bucketOf('completed_at')} AS b,
                       percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY extract(epoch FROM completed_at - created_at)) AS p
                  FROM video_jobs WHERE completed_at >= $1::timestamptz AND status = 'completed' GROUP BY 1, 2`,
  credits: `SELECT CASE kind WHEN 'purchase' THEN 'sold' WHEN 'admin_grant' THEN 'refunded by support' ELSE 'clawed back' END AS key,
                   ${bucketOf('created_at')} AS b, sum(abs(amount))::int AS n
              FROM ledger_entries WHERE created_at >= $1::timestamptz AND kind IN ('purchase', 'admin_grant', 'refund_clawback', 'admin_clawback') GROUP BY 1, 2`,
  leftQueue: `SELECT 'left' AS key, ${bucketOf('coalesce(submitted_at, completed_at)')} AS b, count(*)::int AS n
                FROM video_jobs WHERE coalesce(submitted_at, completed_at) >= $1::timestamptz GROUP BY 1, 2`,
  // The unfinished-jobs index (0003) holds every queued job and nothing finished.
  queuedNow: `SELECT count(*)::int AS n FROM video_jobs WHERE status = 'queued'`,
} as const;

/** The range's start: whole buckets back from the end of the current one (UTC-aligned). */
export function chartWindow(range: ChartRange, now: Date = new Date()): { start: Date; seconds: number; buckets: number } {
  const { buckets, seconds } = CHART_RANGES[range];
  const end = Math.ceil(now.getTime() / 1000 / seconds) * seconds;
  return { start: new Date((end - buckets * seconds) * 1000), seconds, buckets };
}

type Row = { key: string; b: number; n: number };

/** Rows of (key, bucket, n) as one series per key, in key order, zero where a bucket has no row. */
function seriesOf(rows: Row[], buckets: number): Series[] {
  const byKey = new Map<string, number[]>();
  for (const r of rows) {
    if (r.b < 0 || r.b >= buckets) continue;
    const values = byKey.get(r.key) ?? new Array<number>(buckets).fill(0);
    values[r.b] = (values[r.b] ?? 0) + r.n;
    byKey.set(r.key, values);
  }
  return [...byKey.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([name, values]) => ({ name, values }));
}

export async function charts(db: Queryable, range: ChartRange): Promise<Charts> {
  const { start, seconds, buckets } = chartWindow(range);
  const args = [start.toISOString(), seconds];
  const [started, ended, times, credits, left, queued] = await Promise.all([
    db.query<Row>(CHART_SQL.started, args),
    db.query<Row & { status: string }>(CHART_SQL.ended, args),
    db.query<{ key: string; b: number; p: number[] }>(CHART_SQL.timeToVideo, args),
    db.query<Row>(CHART_SQL.credits, args),
    db.query<Row>(CHART_SQL.leftQueue, args),
    db.query<{ n: number }>(CHART_SQL.queuedNow),
  ]);
  const completed = seriesOf(ended.rows.filter((r) => r.status === 'completed'), buckets);
  const failed = seriesOf(ended.rows.filter((r) => r.status === 'failed'), buckets);
  const providers = [...new Set([...completed, ...failed].map((s) => s.name))].sort();
  const failureRate = providers.map((name) => {
    const ok = completed.find((s) => s.name === name)?.values ?? [];
    const bad = failed.find((s) => s.name === name)?.values ?? [];
    return {
      name,
      values: Array.from({ length: buckets }, (_, i) => {
        const total = (ok[i] ?? 0) + (bad[i] ?? 0);
        return total > 0 ? (bad[i] ?? 0) / total : null;
      }),
    };
  });
  const timeToVideo: Series[] = [];
  for (const model of [...new Set(times.rows.map((r) => r.key))].sort()) {
    for (const [which, label] of ['p50', 'p95'].entries()) {
      const values = new Array<number | null>(buckets).fill(null);
      for (const r of times.rows) if (r.key === model && r.b >= 0 && r.b < buckets) values[r.b] = Math.round(r.p[which]! * 10) / 10;
      timeToVideo.push({ name: `${model} ${label}`, values });
    }
  }
  // Walked back from now: before a bucket, the queue held what it holds at its end, less the jobs
  // that arrived in it, plus those that left it.
  const arrived = seriesOf(started.rows.map((r) => ({ ...r, key: 'arrived' })), buckets)[0]?.values ?? [];
  const departed = seriesOf(left.rows, buckets)[0]?.values ?? [];
  const depth = new Array<number>(buckets).fill(0);
  let atEnd = queued.rows[0]!.n;
  for (let i = buckets - 1; i >= 0; i--) {
    depth[i] = atEnd;
    atEnd = Math.max(0, atEnd - (arrived[i] ?? 0) + (departed[i] ?? 0));
  }
  return {
    range,
    buckets: Array.from({ length: buckets }, (_, i) => new Date(start.getTime() + i * seconds * 1000).toISOString()),
    bucketSeconds: seconds,
    started: seriesOf(started.rows, buckets),
    completed,
    failed,
    failureRate,
    timeToVideo,
    credits: seriesOf(credits.rows, buckets),
    queueDepth: [{ name: 'queued', values: depth }],
  };
}
