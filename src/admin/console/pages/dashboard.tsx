import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import { CHART_RANGES, type ChartRange, type Charts } from '../../queries/charts.js';
import type { Dashboard } from '../../queries/reports.js';
import { LineChart } from '../chart.js';
import { Card, ProviderTable } from '../components.js';
import { pct, when } from '../format.js';
import { Layout } from '../layout.js';

/** The columns of today's jobs, in the order a job moves through them. */
const statuses = ['queued', 'submitted', 'processing', 'ingesting', 'completed', 'failed'];

const RANGE_NAMES: Record<ChartRange, string> = { '24h': 'Last 24 hours', '7d': 'Last 7 days', '30d': 'Last 30 days' };

/** The charts of one range, with links to the others. */
const ChartsSection: FC<{ charts: Charts }> = ({ charts: ch }) => {
  // Hours for a day, date and hour for a week, dates for a month.
  const label = (iso: string) => (ch.range === '24h' ? iso.slice(11, 16) : ch.range === '7d' ? `${iso.slice(5, 10)} ${iso.slice(11, 13)}h` : iso.slice(5, 10));
  const common = { buckets: ch.buckets, label };
  return (
    <section id="charts" data-range={ch.range}>
      <h2>Charts</h2>
      <p class="ranges">
        {(Object.keys(CHART_RANGES) as ChartRange[]).map((r) => (r === ch.range ? <b>{RANGE_NAMES[r]}</b> : <a href={`/admin?range=${r}`}>{RANGE_NAMES[r]}</a>))}
        <span class="muted"> · UTC, {ch.bucketSeconds / 3600} h per point, the last one still filling</span>
      </p>
      <div class="charts">
        <LineChart id="chart-started" title="Jobs started per provider" series={ch.started} {...common} />
        <LineChart id="chart-completed" title="Jobs completed per provider" series={ch.completed} {...common} />
        <LineChart id="chart-failed" title="Jobs failed per provider" series={ch.failed} {...common} />
        <LineChart id="chart-failure-rate" title="Failure rate per provider" series={ch.failureRate} top={1} format={(v) => pct(v)} {...common} />
        <LineChart id="chart-time-to-video" title="Time to video per model, p50 and p95 (seconds)" series={ch.timeToVideo} {...common} />
        <LineChart id="chart-credits" title="Credits sold, refunded by support, clawed back" series={ch.credits} {...common} />
        <LineChart id="chart-queue" title="Queue depth (jobs waiting for a provider, end of each point)" series={ch.queueDepth} {...common} />
      </div>
    </section>
  );
};

/** Today at a glance (credits, open holds, jobs by status, failures per provider), then the charts. */
export const DashboardPage: FC<{ c: Context<AppEnv>; dashboard: Dashboard; charts: Charts }> = ({ c, dashboard: d, charts }) => (
  <Layout title="Dashboard" c={c}>
    <p class="muted">Today since {when(d.since)}</p>
    <div class="cards" id="dashboard-cards">
      <Card label="Credits sold today" id="credits-sold">{d.credits_sold}</Card>
      <Card label="Credits refunded by support" id="credits-refunded">{d.credits_refunded}</Card>
      <Card label="Credits clawed back">{d.credits_clawed_back}</Card>
      <div class="card">
        <span class="muted">Open holds (running jobs)</span>
        <b id="open-holds">
          {d.open_holds.count} <span class="muted">/ {d.open_holds.credits} credits</span>
        </b>
      </div>
    </div>
    <h2>Jobs today by status</h2>
    <table id="jobs-by-status">
      <thead>
        <tr>
          {statuses.map((st) => (
            <th class="num">{st}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        <tr>
          {statuses.map((st) => (
            <td class="num">{d.jobs_by_status[st] ?? 0}</td>
          ))}
        </tr>
      </tbody>
    </table>
    <h2>Failure rate per provider (jobs ended today)</h2>
    <ProviderTable providers={d.providers} id="provider-failures" empty="No job ended today." />
    <ChartsSection charts={charts} />
  </Layout>
);
