import { randomUUID } from 'node:crypto';
import type { Context } from 'hono';
import type { FC } from 'hono/jsx';
import type { AppEnv } from '../../../http/context.js';
import type { AdminService } from '../../service.js';
import type { AdminUserSearchHit } from '../../queries/reports.js';
import { ActionsTable, Card, Csrf, Head, JobsTable } from '../components.js';
import { counts, pct, when } from '../format.js';
import { Layout } from '../layout.js';

/** Finding a user (q: what was searched, if anything). */
export const UserSearchPage: FC<{ c: Context<AppEnv>; q: string | undefined; users: AdminUserSearchHit[] }> = ({ c, q, users }) => (
  <Layout title="Find a user" c={c}>
    <form method="get" action="/admin/users" class="inline panel" id="search-form">
      <input name="q" value={q ?? ''} placeholder="user or job id (or its start), device id, email, Apple sub, App Store transaction id" class="grow" autofocus />
      <button type="submit">Search</button>
    </form>
    {q && (
      <table id="search-results">
        <Head cols={['User', 'Matched', 'Kind', 'Email', 'Device', 'Available', 'Created', 'Standing']} num={['Available']} />
        <tbody>
          {users.length === 0 && (
            <tr>
              <td colspan={8} class="muted">
                No user matches.
              </td>
            </tr>
          )}
          {users.map((u) => (
            <tr>
              <td>
                <a href={`/admin/users/${u.id}`}>{u.id}</a>
              </td>
              <td>{u.matched}</td>
              <td>{u.is_guest ? 'guest' : 'Apple'}</td>
              <td>{u.email ?? ''}</td>
              <td>
                <code>{u.device_id ?? ''}</code>
              </td>
              <td class="num">{u.available}</td>
              <td>{when(u.created_at)}</td>
              <td>{u.banned_at ? <span class="banned">banned</span> : u.merged_into ? `merged into ${u.merged_into}` : u.deleted_at ? 'deleted' : 'active'}</td>
            </tr>
          ))}
        </tbody>
      </table>
    )}
  </Layout>
);

/**
 * One user: account, standing, the credit and ban forms, stats, ledger, jobs and the admin actions
 * on them. The credit form's key is fresh per render, so a double submit or a reload grants once.
 */
export const UserPage: FC<{ c: Context<AppEnv>; detail: Awaited<ReturnType<AdminService['userDetail']>> }> = ({ c, detail: { user, stats, entries, jobs, actions } }) => (
  <Layout title={`User ${user.id}`} c={c}>
    <div class="cards" id="account">
      <Card label="Available" id="available">{user.available}</Card>
      <Card label="Balance" id="balance">{user.balance}</Card>
      <Card label="Held by running jobs" id="held">{user.held}</Card>
      <Card label="Owed (paid first from releases and credits)" id="debt">{user.debt}</Card>
      <div class="card">
        <span class="muted">Standing</span>
        <b id="standing" class={user.banned_at ? 'banned' : ''}>
          {user.banned_at ? 'banned' : user.merged_into ? 'merged' : user.deleted_at ? 'deleted' : 'active'}
        </b>
      </div>
    </div>
    <p class="muted">
      {user.is_guest ? 'Guest' : 'Apple account'} · email {user.email ?? '—'} · device <code>{user.device_id ?? '—'}</code> · Apple sub <code>{user.apple_sub ?? '—'}</code> · created {when(user.created_at)}
      {user.merged_into && (
        <>
          {' '}
          · merged into <a href={`/admin/users/${user.merged_into}`}>{user.merged_into}</a>
        </>
      )}
    </p>
    <div class="panel">
      <form method="post" action={`/admin/users/${user.id}/credits`} class="inline" id="credits-form">
        <Csrf c={c} />
        <input type="hidden" name="key" value={randomUUID()} />
        <select name="kind">
          <option value="grant">Give credits (refund)</option>
          <option value="clawback">Claw back credits</option>
        </select>
        <input name="amount" type="number" min="1" max="100000" required placeholder="credits" style="width:100px" />
        <input name="reason" required minlength={3} maxlength={500} placeholder="reason (required, e.g. ticket number)" class="grow" />
        <button type="submit">Apply</button>
      </form>
    </div>
    <div class="panel">
      <form method="post" action={`/admin/users/${user.id}/${user.banned_at ? 'unban' : 'ban'}`} class="inline" id="ban-form">
        <Csrf c={c} />
        <input name="reason" required minlength={3} maxlength={500} placeholder="reason (required)" class="grow" />
        <button type="submit" class={user.banned_at ? 'plain' : 'danger'}>
          {user.banned_at ? 'Lift the ban' : 'Ban this user'}
        </button>
      </form>
      <span class="muted"> A ban ends their sessions at once; every request answers ERR_4014; their device cannot onboard a new guest.</span>
    </div>
    <h2>Stats</h2>
    <table id="stats">
      <Head cols={['Jobs by status', 'Success rate', 'Bought', 'Spent', 'Refunded', 'Clawed back', 'Returned (failed jobs)']} num={['Success rate', 'Bought', 'Spent', 'Refunded', 'Clawed back', 'Returned (failed jobs)']} />
      <tbody>
        <tr>
          <td>{counts(stats.jobs_by_status)}</td>
          <td class="num">{pct(stats.success_rate)}</td>
          <td class="num">{stats.credits_bought}</td>
          <td class="num">{stats.credits_spent}</td>
          <td class="num">{stats.credits_refunded}</td>
          <td class="num">{stats.credits_clawed_back}</td>
          <td class="num">{stats.credits_released}</td>
        </tr>
      </tbody>
    </table>
    <h2>Ledger (latest 50)</h2>
    <table id="ledger">
      <Head
        cols={['#', 'When', 'Kind', 'Amount', 'Held Δ', 'Balance after', 'Held after', 'Owed after', 'Reason', 'Ref']}
        num={['Amount', 'Held Δ', 'Balance after', 'Held after', 'Owed after']}
      />
      <tbody>
        {entries.map((e) => (
          <tr data-kind={e.kind}>
            <td>{e.id}</td>
            <td>{when(e.created_at)}</td>
            <td>{e.kind}</td>
            <td class="num">{e.amount}</td>
            <td class="num">{e.held_delta}</td>
            <td class="num">{e.balance_after}</td>
            <td class="num">{e.held_after}</td>
            <td class="num">{e.debt_after}</td>
            <td>
              {e.reason ?? ''}
              {e.shortfall > 0 ? ` (shortfall ${e.shortfall})` : ''}
            </td>
            <td>
              {e.job_id ? (
                <a href={`/admin/jobs/${e.job_id}`}>job</a>
              ) : e.transaction_id ? (
                <code>{e.transaction_id}</code>
              ) : e.admin_action_id ? (
                `audit #${e.admin_action_id}`
              ) : e.debt_of ? (
                `debt of #${e.debt_of}`
              ) : (
                ''
              )}
            </td>
          </tr>
        ))}
      </tbody>
    </table>
    <h2>Jobs (latest 50)</h2>
    <JobsTable jobs={jobs} id="jobs" />
    <h2>Admin actions on this user</h2>
    <ActionsTable actions={actions} id="user-actions" />
  </Layout>
);
