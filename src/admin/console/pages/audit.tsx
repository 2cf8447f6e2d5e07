import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import type { AdminActionRow } from '../../queries/admins.js';
import { ActionsTable } from '../components.js';
import { Layout } from '../layout.js';

/** A page of the audit log, newest first; older: the id the next page starts before, when there may be one. */
export const AuditPage: FC<{ c: Context<AppEnv>; actions: AdminActionRow[]; older: number | undefined }> = ({ c, actions, older }) => (
  <Layout title="Audit log" c={c}>
    <ActionsTable actions={actions} id="audit" />
    {older !== undefined && <a href={`/admin/audit?before=${older}`}>Older →</a>}
  </Layout>
);
