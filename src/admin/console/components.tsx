import type { Context } from 'hono';
import type { Child, FC } from 'hono/jsx';
import type { AppEnv } from '../../http/context.js';
import { csrfTokenFor } from '../auth.js';
import type { AdminActionRow } from '../queries/admins.js';
import { creditsMoved } from '../service.js';
import type { JobView, ProviderFailures } from '../queries/reports.js';
import { changes, counts, pct, when } from './format.js';

/** The pieces the console's pages are made of. */

/** The session's CSRF token, which every console form carries (src/admin/middleware.ts checks it). */
export const Csrf: FC<{ c: Context<AppEnv> }> = ({ c }) => <input type="hidden" name="_csrf" value={csrfTokenFor(c.get('admin').token)} />;

/** One figure of a row of cards (dashboard, account). */
export const Card: FC<{ label: string; id?: string; children?: Child }> = ({ label, id, children }) => (
  <div class="card">
    <span class="muted">{label}</span>
    <b id={id}>{children}</b>
  </div>
);

/** A table's header row; columns named in num are right-aligned (numbers). */
export const Head: FC<{ cols: string[]; num?: string[] }> = ({ cols, num = [] }) => (
  <thead>
    <tr>
      {cols.map((label) => (
        <th class={num.includes(label) ? 'num' : undefined}>{label}</th>
      ))}
    </tr>
  </thead>
);

/** Audit rows, each with what it changed ("balance 9 → 14") and the request that made it. */
export const ActionsTable: FC<{ actions: AdminActionRow[]; id?: string }> = ({ actions, id }) => (
  <table id={id}>
    <Head cols={['#', 'When', 'Admin', 'Action', 'Target', 'Asked', 'Moved', 'Reason', 'Before → after', 'Request']} num={['Asked', 'Moved']} />
    <tbody>
      {actions.map((a) => (
        <tr data-action={a.action}>
          <td>{a.id}</td>
          <td>{when(a.created_at)}</td>
          <td>{a.admin_email ?? a.admin_id}</td>
          <td>{a.action}</td>
          <td>{a.target_type === 'user' ? <a href={`/admin/users/${a.target_id}`}>{a.target_id}</a> : <a href="/admin/models">{a.target_id}</a>}</td>
          <td class="num">{a.amount ?? ''}</td>
          <td class="num" data-moved>{creditsMoved(a) ?? ''}</td>
          <td>{a.reason ?? ''}</td>
          <td>{changes(a.before, a.after)}</td>
          <td>
            <code>{a.request_id}</code>
          </td>
        </tr>
      ))}
    </tbody>
  </table>
);

/** Jobs, newest first, each linking to its timeline. */
export const JobsTable: FC<{ jobs: JobView[]; id: string }> = ({ jobs, id }) => (
  <table id={id}>
    <Head cols={['Job', 'Created', 'Ended', 'Provider', 'Model', 'Status', 'Credits', 'Error']} num={['Credits']} />
    <tbody>
      {jobs.map((j) => (
        <tr>
          <td>
            <a href={`/admin/jobs/${j.job_id}`}>{j.job_id}</a>
          </td>
          <td>{when(j.created_at)}</td>
          <td>{when(j.completed_at)}</td>
          <td>{j.provider}</td>
          <td>{j.model_id}</td>
          <td>{j.status}</td>
          <td class="num">{j.credits_used}</td>
          <td>{j.error_code ? `${j.error_code}: ${j.error_message ?? ''}` : ''}</td>
        </tr>
      ))}
    </tbody>
  </table>
);

export const ProviderTable: FC<{ providers: ProviderFailures[]; id: string; empty: string }> = ({ providers, id, empty }) => (
  <table id={id}>
    <Head
      cols={['Provider', 'Completed', 'Failed', 'Failure rate', 'By error', 'Duplicate requests', 'Duplicates billed', 'Billing unknown', 'Never answered']}
      num={['Completed', 'Failed', 'Failure rate', 'Duplicate requests', 'Duplicates billed', 'Billing unknown', 'Never answered']}
    />
    <tbody>
      {providers.length === 0 && (
        <tr>
          <td colspan={9} class="muted">
            {empty}
          </td>
        </tr>
      )}
      {providers.map((p) => (
        <tr>
          <td>{p.provider}</td>
          <td class="num">{p.completed}</td>
          <td class="num">{p.failed}</td>
          <td class="num">{pct(p.failure_rate)}</td>
          <td>{counts(p.by_error)}</td>
          <td class="num">{p.duplicates.requests}</td>
          <td class="num">{p.duplicates.billed}</td>
          <td class="num">{p.duplicates.unknown}</td>
          <td class="num">{p.duplicates.unanswered}</td>
        </tr>
      ))}
    </tbody>
  </table>
);
