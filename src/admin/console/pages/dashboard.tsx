import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import type { Dashboard } from '../../queries/reports.js';
import { Card, ProviderTable } from '../components.js';
import { when } from '../format.js';
import { Layout } from '../layout.js';

/** The columns of today's jobs, in the order a job moves through them. */
const statuses = ['queued', 'submitted', 'processing', 'ingesting', 'completed', 'failed'];

/** Today at a glance: credits, open holds, jobs by status, failures per provider. */
export const DashboardPage: FC<{ c: Context<AppEnv>; dashboard: Dashboard }> = ({ c, dashboard: d }) => (
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
  </Layout>
);
