import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import type { AdminService } from '../../service.js';
import { JobsTable, ProviderTable } from '../components.js';
import { Layout } from '../layout.js';

/** Failures per provider over the last `hours`, and the latest failed jobs. */
export const FailuresPage: FC<{ c: Context<AppEnv>; hours: number; failures: Awaited<ReturnType<AdminService['failures']>> }> = ({ c, hours, failures: f }) => (
  <Layout title={`Failures in the last ${hours} h`} c={c}>
    <ProviderTable providers={f.providers} id="failures-by-provider" empty="No job ended in this window." />
    <h2>Latest failed jobs</h2>
    <JobsTable jobs={f.recent} id="failed-jobs" />
  </Layout>
);
