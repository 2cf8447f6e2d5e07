import { describe, expect, it } from 'vitest';
import { CHART_SQL, chartWindow, type Charts, type Series } from '../../src/admin/queries/charts.js';
import { createAdmin } from '../support/admin.js';
import { useTestApp } from '../support/harness.js';
import { planOf } from './plan.js';

/**
 * The dashboard's charts count what happened: jobs started, completed and failed per provider, the
 * failure rate, time to video per model, credits refunded and the queue's depth, over 24 h, 7 and
 * 30 days; and each chart's query reads an index, never the whole jobs table or ledger.
 */

const t = useTestApp();

const total = (series: Series[], name: string) => (series.find((s) => s.name === name)?.values ?? []).reduce<number>((n, v) => n + (v ?? 0), 0);

/** PostgreSQL's percentile_cont: linear between the two nearest ranks. */
function percentile(sorted: number[], p: number): number {
  const at = p * (sorted.length - 1);
  const lo = Math.floor(at);
  return sorted[lo]! + (sorted[Math.ceil(at)]! - sorted[lo]!) * (at - lo);
}

describe('dashboard charts', () => {
  it('count the jobs, failures, time to video, credits and queue depth that happened, in each range', async () => {
    const admin = await createAdmin(t());
    const g = await t().createGuest();
    await t().startWorker();
    for (const prompt of ['a heron at dawn', 'a tram in the rain', 'a fox in snow [sim:fail]']) {
      const job = await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt }));
      await t().waitForJob(g.accessToken, job.job_id);
    }
    await t().stopWorker();
    await t().json(t().generate(g, { model_id: 'simulator-text-to-video', prompt: 'waits in the queue' }));
    await t().json(t().post(`/admin/api/users/${g.userId}/credits/grant`, { token: admin.token, body: { amount: 4, reason: 'chart check' }, headers: { 'idempotency-key': 'chart-check' } }));

    for (const range of ['24h', '7d', '30d'] as const) {
      const c = (await t().json(t().get(`/admin/api/charts?range=${range}`, { token: admin.token }))) as Charts;
      expect(c.buckets).toHaveLength(chartWindow(range).buckets);
      expect(total(c.started, 'simulator'), range).toBe(4);
      expect(total(c.completed, 'simulator'), range).toBe(2);
      expect(total(c.failed, 'simulator'), range).toBe(1);
      const ok = c.completed.find((s) => s.name === 'simulator')!.values;
      const bad = c.failed.find((s) => s.name === 'simulator')!.values;
      c.failureRate
        .find((s) => s.name === 'simulator')!
        .values.forEach((rate, i) => expect(rate).toBe(ok[i]! + bad[i]! > 0 ? bad[i]! / (ok[i]! + bad[i]!) : null));
      expect(total(c.credits, 'refunded by support')).toBe(4);
      expect(c.credits.map((s) => s.name)).not.toContain('sold');
      expect(c.queueDepth[0]!.values.at(-1)).toBe(1);
      expect(c.queueDepth[0]!.values[0]).toBe(0);

      // Time to video: the delivered jobs' seconds from request to video, per bucket.
      const { rows } = await t().db.query<{ completed_at: string; secs: number }>(
        "SELECT completed_at, extract(epoch FROM completed_at - created_at)::float8 AS secs FROM video_jobs WHERE status = 'completed'",
      );
      const start = Date.parse(c.buckets[0]!);
      const perBucket = new Map<number, number[]>();
      for (const r of rows) {
        const b = Math.floor((Date.parse(r.completed_at) - start) / 1000 / c.bucketSeconds);
        perBucket.set(b, [...(perBucket.get(b) ?? []), r.secs].sort((x, y) => x - y));
      }
      const p50 = c.timeToVideo.find((s) => s.name === 'simulator-text-to-video p50')!.values;
      const p95 = c.timeToVideo.find((s) => s.name === 'simulator-text-to-video p95')!.values;
      p50.forEach((v, i) => {
        const secs = perBucket.get(i);
        expect(v).toBe(secs ? Math.round(percentile(secs, 0.5) * 10) / 10 : null);
        expect(p95[i]).toBe(secs ? Math.round(percentile(secs, 0.95) * 10) / 10 : null);
      });
    }
    expect((await t().get('/admin/api/charts?range=1y', { token: admin.token })).status).toBe(400);
  });

  it("each chart's query reads an index: no sequential scan of video_jobs or ledger_entries", async () => {
    const { start, seconds } = chartWindow('30d');
    const expected: Record<keyof typeof CHART_SQL, string> = {
      started: 'video_jobs_created_by_provider',
      ended: 'video_jobs_ended',
      timeToVideo: 'video_jobs_ended',
      credits: 'ledger_entries_credits_by_time',
      leftQueue: 'video_jobs_left_queue',
      queuedNow: 'video_jobs_unfinished',
    };
    for (const [name, sql] of Object.entries(CHART_SQL) as [keyof typeof CHART_SQL, string][]) {
      const plan = await planOf(t().db, sql, sql.includes('$1') ? [start.toISOString(), seconds] : []);
      expect(plan.scanned, name).toEqual([]);
      expect([...plan.indexes], name).toEqual([expected[name]]);
    }
  });
});
