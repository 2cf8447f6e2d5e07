import { randomBytes, randomUUID } from 'node:crypto';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import type { Child, FC } from 'hono/jsx';
import { z } from 'zod';
import { secretsEqual } from '../auth/tokens.js';
import { ApiError } from '../http/api-error.js';
import { clearConsoleCookie, requireConsoleSession, setConsoleCookie } from './middleware.js';
import type { AppEnv } from '../http/context.js';
import { localizedMessage } from '../http/i18n.js';
import { toApiError } from '../http/on-error.js';
import type { Services } from '../services.js';
import { csrfTokenFor } from './auth.js';
import { BanBody, CreditChangeBody, IdempotencyKey, ModelPatchBody, SearchQuery, SignInBody } from './schemas.js';
import type { Actor } from './service.js';
import type { JobView, ProviderFailures } from './queries/reports.js';

/**
 * The support team's console at /admin: server-rendered pages (Hono JSX), plain HTML forms, no
 * client script. Each form posts to a handler that parses it with the admin API's schema and calls
 * the same AdminService verb the API calls, then redirects back (post/redirect/get). Session: an
 * HttpOnly, SameSite=Strict cookie; every form carries the session's CSRF token.
 */

const LOGIN_NONCE_COOKIE = 'rendio_admin_login';

const STYLE = `
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d232b;background:#f5f6f8}
header{background:#1f2933;color:#fff;padding:10px 24px;display:flex;gap:20px;align-items:center}
header a{color:#e4e7eb;text-decoration:none}header a:hover{color:#fff}header strong{margin-right:12px}
header form{margin-left:auto}main{padding:20px 24px;max-width:1200px}
h1{font-size:22px;margin:4px 0 16px}h2{font-size:17px;margin:24px 0 8px}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:12px}th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600;font-size:13px}td.num,th.num{text-align:right}code{font-size:12px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;padding:12px 16px;border-radius:6px;min-width:160px;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:22px}.muted{color:#616e7c;font-size:13px}
form.inline{display:inline-flex;gap:6px;align-items:center;margin:0}input,select,button{font:inherit;padding:5px 8px}
button{background:#2563eb;color:#fff;border:0;border-radius:4px;cursor:pointer}button.danger{background:#b91c1c}button.plain{background:#52606d}
.panel{background:#fff;padding:14px 16px;border-radius:6px;margin-bottom:14px;box-shadow:0 1px 2px #0001}
.flash{background:#e3f9e5;border:1px solid #57ae5b;padding:8px 12px;border-radius:4px;margin-bottom:12px}
.error{background:#ffe3e3;border:1px solid #e12d39;padding:8px 12px;border-radius:4px;margin-bottom:12px}
.banned{color:#b91c1c;font-weight:600}`;

const Layout: FC<{ title: string; c?: Context<AppEnv>; children?: Child }> = ({ title, c, children }) => {
  const admin = c?.get('admin');
  const flash = c?.req.query('done');
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${title} · Rendio admin`}</title>
        <style>{STYLE}</style>
      </head>
      <body>
        <header>
          <strong>Rendio admin</strong>
          {admin && (
            <>
              <a href="/admin">Dashboard</a>
              <a href="/admin/users">Users</a>
              <a href="/admin/models">Models</a>
              <a href="/admin/failures">Failures</a>
              <a href="/admin/audit">Audit log</a>
              <form method="post" action="/admin/logout" class="inline">
                <Csrf c={c!} />
                <span class="muted" style="color:#cbd2d9">{admin.email}</span>
                <button class="plain" type="submit">Sign out</button>
              </form>
            </>
          )}
        </header>
        <main>
          {flash && <div class="flash" id="flash">{flash}</div>}
          <h1>{title}</h1>
          {children}
        </main>
      </body>
    </html>
  );
};

const Csrf: FC<{ c: Context<AppEnv> }> = ({ c }) => <input type="hidden" name="_csrf" value={csrfTokenFor(c.get('admin').token)} />;

const when = (iso: string | null | undefined) => (iso ? iso.replace('T', ' ').replace(/\.\d+Z$/, 'Z') : '—');
const pct = (r: number | null) => (r === null ? '—' : `${(r * 100).toFixed(1)}%`);
const counts = (byKey: Record<string, number>) =>
  Object.entries(byKey)
    .map(([k, n]) => `${k} ${n}`)
    .join(' · ') || '—';
const json = (v: unknown) => (v === null || v === undefined ? '' : JSON.stringify(v));

/** An audit row's before/after as a support agent reads it: only what changed, "balance 9 → 14". */
function changes(before: Record<string, unknown> | null, after: Record<string, unknown> | null): string {
  const keys = [...new Set([...Object.keys(before ?? {}), ...Object.keys(after ?? {})])].filter((k) => k !== 'owner_id');
  const shown = (v: unknown) => (v === null || v === undefined ? '—' : typeof v === 'string' && /^\d{4}-\d\d-\d\dT/.test(v) ? when(v) : String(v));
  return keys
    .filter((k) => json(before?.[k]) !== json(after?.[k]))
    .map((k) => (before && k in before ? `${k} ${shown(before[k])} → ${shown(after?.[k])}` : `${k} ${shown(after?.[k])}`))
    .join(', ');
}

const actor = (c: Context<AppEnv>): Actor => ({ adminId: c.get('admin').adminId, requestId: c.get('requestId') });

/** Form fields as strings (the schemas coerce what they need); _csrf and friends are dropped. */
async function formOf(c: Context<AppEnv>): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  return Object.fromEntries(Object.entries(body).filter((e): e is [string, string] => typeof e[1] === 'string' && !e[0].startsWith('_')));
}

const back = (c: Context<AppEnv>, path: string, done: string) => c.redirect(`${path}?done=${encodeURIComponent(done)}`, 303);

/** One figure of a row of cards (dashboard, account). */
const Card: FC<{ label: string; id?: string; children?: Child }> = ({ label, id, children }) => (
  <div class="card">
    <span class="muted">{label}</span>
    <b id={id}>{children}</b>
  </div>
);

/** A table's header row; columns named in num are right-aligned (numbers). */
const Head: FC<{ cols: string[]; num?: string[] }> = ({ cols, num = [] }) => (
  <thead>
    <tr>
      {cols.map((label) => (
        <th class={num.includes(label) ? 'num' : undefined}>{label}</th>
      ))}
    </tr>
  </thead>
);

const ActionsTable: FC<{ actions: Awaited<ReturnType<Services['admin']['auditLog']>>; id?: string }> = ({ actions, id }) => (
  <table id={id}>
    <Head cols={['#', 'When', 'Admin', 'Action', 'Target', 'Amount', 'Reason', 'Before → after', 'Request']} num={['Amount']} />
    <tbody>
      {actions.map((a) => (
        <tr data-action={a.action}>
          <td>{a.id}</td>
          <td>{when(a.created_at)}</td>
          <td>{a.admin_email ?? a.admin_id}</td>
          <td>{a.action}</td>
          <td>{a.target_type === 'user' ? <a href={`/admin/users/${a.target_id}`}>{a.target_id}</a> : <a href="/admin/models">{a.target_id}</a>}</td>
          <td class="num">{a.amount ?? ''}</td>
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
/** A button that flips one of a model's flags (the form sends the new value). */
const FlagForm: FC<{ c: Context<AppEnv>; modelId: string; field: 'is_available' | 'is_featured'; on: boolean; labels: [string, string] }> = ({ c, modelId, field, on, labels }) => (
  <form method="post" action={`/admin/models/${modelId}`} class="inline">
    <Csrf c={c} />
    <input type="hidden" name={field} value={String(!on)} />
    {on ? 'yes ' : 'no '}
    <button type="submit" class={field === 'is_available' && on ? 'danger' : 'plain'}>
      {on ? labels[1] : labels[0]}
    </button>
  </form>
);

const JobsTable: FC<{ jobs: JobView[]; id: string }> = ({ jobs, id }) => (
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

const ProviderTable: FC<{ providers: ProviderFailures[]; id: string; empty: string }> = ({ providers, id, empty }) => (
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

export function registerAdminConsole(app: OpenAPIHono<AppEnv>, s: Services) {
  const ui = new Hono<AppEnv>();
  const secure = s.config.admin.secureCookies;

  // Errors render as a page the support agent can read, with the same codes and messages as the API.
  ui.onError((err, c) => {
    const e = toApiError(err, s.config.maxJsonBodyBytes);
    if (e.status >= 500) c.get('log')?.error({ err, requestId: c.get('requestId') }, 'admin console request failed');
    s.errorLog.record({ requestId: c.get('requestId'), code: e.code, status: e.status, method: c.req.method, path: c.req.path, message: e.message, details: e.details });
    const message = localizedMessage(e.code, 'en', e.details);
    return c.html(
      <Layout title="Something needs attention" c={c.get('admin') ? c : undefined}>
        <div class="error" id="error">
          <b>{e.code}</b>: {message}
          {e.details?.reason && typeof e.details.reason === 'string' && e.details.reason !== message ? <div class="muted">{e.details.reason}</div> : null}
        </div>
        <p>
          <a href="/admin">Dashboard</a> · <a href="/admin/users">Find a user</a>
        </p>
      </Layout>,
      e.status as 400,
      e.headers,
    );
  });

  ui.use('*', bodyLimit({ maxSize: s.config.maxJsonBodyBytes, onError: () => { throw new ApiError('ERR_4015', { limit_bytes: s.config.maxJsonBodyBytes }); } }));
  ui.use('*', async (c, next) => {
    await next();
    c.header('Cache-Control', 'no-store');
    c.header('X-Frame-Options', 'DENY');
    c.header('Content-Security-Policy', "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    c.header('Referrer-Policy', 'same-origin');
  });
  ui.use('*', requireConsoleSession(s.adminAuth));

  // ---- sign in / out ----------------------------------------------------------------------
  ui.get('/login', (c) => {
    // Double-submit nonce: a page of another site cannot sign the browser in to an account of its choosing.
    const nonce = randomBytes(24).toString('base64url');
    setCookie(c, LOGIN_NONCE_COOKIE, nonce, { httpOnly: true, sameSite: 'Strict', secure, path: '/admin', maxAge: 3600 });
    return c.html(
      <Layout title="Sign in">
        <form method="post" action="/admin/login" class="panel" id="login-form" style="max-width:380px;display:grid;gap:10px">
          <input type="hidden" name="_login" value={nonce} />
          <label>
            Email
            <br />
            <input name="email" type="email" autocomplete="username" required style="width:100%" />
          </label>
          <label>
            Password
            <br />
            <input name="password" type="password" autocomplete="current-password" required style="width:100%" />
          </label>
          <label>
            One-time code (if enabled)
            <br />
            <input name="totp" inputmode="numeric" autocomplete="one-time-code" style="width:100%" />
          </label>
          <button type="submit">Sign in</button>
        </form>
      </Layout>,
    );
  });

  ui.post('/login', s.rateLimits.middleware('admin-login'), async (c) => {
    const body = await c.req.parseBody();
    const nonce = getCookie(c, LOGIN_NONCE_COOKIE);
    if (!nonce || typeof body._login !== 'string' || !secretsEqual(body._login, nonce)) throw new ApiError('ERR_4027');
    const input = SignInBody.parse({ email: body.email, password: body.password, totp: typeof body.totp === 'string' && body.totp ? body.totp : undefined });
    const r = await s.adminAuth.signIn({ ...input, ip: s.rateLimits.clientIp(c) }, 'console');
    deleteCookie(c, LOGIN_NONCE_COOKIE, { path: '/admin' });
    setConsoleCookie(c, r.token, r.expiresAt, secure);
    return c.redirect('/admin', 303);
  });

  ui.post('/logout', async (c) => {
    await s.adminAuth.signOut(c.get('admin').sessionId);
    clearConsoleCookie(c, secure);
    return c.redirect('/admin/login', 303);
  });

  // ---- dashboard --------------------------------------------------------------------------
  ui.get('/', async (c) => {
    const d = await s.admin.dashboard();
    const statuses = ['queued', 'submitted', 'processing', 'ingesting', 'completed', 'failed'];
    return c.html(
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
      </Layout>,
    );
  });

  // ---- users ------------------------------------------------------------------------------
  ui.get('/users', async (c) => {
    const raw = c.req.query('q');
    const q = raw ? SearchQuery.parse(raw) : undefined;
    const users = q ? await s.admin.searchUsers(q) : [];
    return c.html(
      <Layout title="Find a user" c={c}>
        <form method="get" action="/admin/users" class="inline panel" id="search-form">
          <input name="q" value={q ?? ''} placeholder="user id, device id, Apple sub or email" size={60} autofocus />
          <button type="submit">Search</button>
        </form>
        {q && (
          <table id="search-results">
            <Head cols={['User', 'Kind', 'Email', 'Device', 'Available', 'Created', 'Standing']} num={['Available']} />
            <tbody>
              {users.length === 0 && (
                <tr>
                  <td colspan={7} class="muted">
                    No user matches.
                  </td>
                </tr>
              )}
              {users.map((u) => (
                <tr>
                  <td>
                    <a href={`/admin/users/${u.id}`}>{u.id}</a>
                  </td>
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
      </Layout>,
    );
  });

  ui.get('/users/:id', async (c) => {
    const { user, stats, entries, jobs, actions } = await s.admin.userDetail(c.req.param('id'));
    return c.html(
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
            <input name="reason" required minlength={3} maxlength={500} placeholder="reason (required, e.g. ticket number)" size={40} />
            <button type="submit">Apply</button>
          </form>
        </div>
        <div class="panel">
          <form method="post" action={`/admin/users/${user.id}/${user.banned_at ? 'unban' : 'ban'}`} class="inline" id="ban-form">
            <Csrf c={c} />
            <input name="reason" required minlength={3} maxlength={500} placeholder="reason (required)" size={40} />
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
      </Layout>,
    );
  });

  const creditForm = z.object({ kind: z.enum(['grant', 'clawback']), key: IdempotencyKey });
  ui.post('/users/:id/credits', async (c) => {
    const userId = c.req.param('id');
    const form = await formOf(c);
    const { kind, key } = creditForm.parse(form);
    const { amount, reason } = CreditChangeBody.parse(form);
    const req = { userId, amount, reason, idempotencyKey: key };
    const r = kind === 'grant' ? await s.admin.grantCredits(actor(c), req) : await s.admin.clawBackCredits(actor(c), req);
    const shortfall = Number((r.action.after as { shortfall?: number } | null)?.shortfall ?? 0);
    const what = kind === 'grant' ? `Gave ${amount} credits` : `Clawed back ${amount - shortfall} of ${amount} credits`;
    return back(c, `/admin/users/${userId}`, `${what} (audit #${r.action.id}${r.replayed ? ', already done before' : ''}).`);
  });

  for (const verb of ['ban', 'unban'] as const) {
    ui.post(`/users/:id/${verb}`, async (c) => {
      const userId = c.req.param('id');
      const { reason } = BanBody.parse(await formOf(c));
      const a = await s.admin[verb](actor(c), userId, reason);
      return back(c, `/admin/users/${userId}`, `${verb === 'ban' ? 'Banned' : 'Ban lifted'} (audit #${a.id}).`);
    });
  }

  // ---- jobs -------------------------------------------------------------------------------
  ui.get('/jobs/:id', async (c) => {
    const id = c.req.param('id');
    const t = z.uuid().safeParse(id).success ? await s.admin.jobTimeline(id) : undefined;
    if (!t) throw new ApiError('ERR_4007', { resource: 'job' });
    const { job, events } = t;
    return c.html(
      <Layout title={`Job ${job.job_id}`} c={c}>
        <p>
          User <a href={`/admin/users/${job.user_id}`}>{job.user_id}</a> · model {job.model_id} · provider {job.provider} <code>{job.provider_job_id ?? ''}</code> · status <b>{job.status}</b> · {job.credits_used} credits · attempts {job.attempts}
        </p>
        {job.error_code && (
          <div class="error">
            {job.error_code}: {job.error_message}
          </div>
        )}
        <table id="timeline">
          <Head cols={['When', 'Kind', 'What', 'Detail']} />
          <tbody>
            {events.map((e) => (
              <tr>
                <td>{when(e.at)}</td>
                <td>{e.kind}</td>
                <td>{e.what}</td>
                <td>
                  <code>{json(e.detail)}</code>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      </Layout>,
    );
  });

  // ---- models -----------------------------------------------------------------------------
  ui.get('/models', async (c) => {
    const models = await s.admin.models();
    return c.html(
      <Layout title="Models" c={c}>
        <table id="models">
          <Head cols={['Model', 'Provider', 'Available', 'Featured', 'Price']} />
          <tbody>
            {models.map((m) => {
              const priceField = m.pricing_type === 'per_video' ? 'cost_per_generation' : 'credits_per_second';
              return (
                <tr id={`model-${m.id}`}>
                  <td>
                    <b>{m.name}</b>
                    <div class="muted">{m.id}</div>
                  </td>
                  <td>
                    {m.provider} <span class="muted">{m.provider_model_id}</span>
                  </td>
                  <td>
                    <FlagForm c={c} modelId={m.id} field="is_available" on={m.is_available} labels={['Enable', 'Disable']} />
                  </td>
                  <td>
                    <FlagForm c={c} modelId={m.id} field="is_featured" on={m.is_featured} labels={['Feature', 'Unfeature']} />
                  </td>
                  <td>
                    <form method="post" action={`/admin/models/${m.id}`} class="inline">
                      <Csrf c={c} />
                      <input name={priceField} type="number" min="1" max="10000" value={String(m[priceField] ?? '')} style="width:80px" />
                      <span class="muted">{m.pricing_type === 'per_video' ? 'credits / video' : 'credits / second'}</span>
                      <button type="submit" class="plain">
                        Save
                      </button>
                    </form>
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </Layout>,
    );
  });

  ui.post('/models/:id', async (c) => {
    const patch = ModelPatchBody.parse(await formOf(c));
    const r = await s.admin.updateModel(actor(c), c.req.param('id'), patch);
    return back(c, '/admin/models', `Updated ${r.model.id} (audit #${r.action.id}).`);
  });

  // ---- failures and audit -----------------------------------------------------------------
  ui.get('/failures', async (c) => {
    const hours = z.coerce.number().min(0.1).max(720).default(24).parse(c.req.query('hours') ?? undefined);
    const f = await s.admin.failures(hours);
    return c.html(
      <Layout title={`Failures in the last ${hours} h`} c={c}>
        <ProviderTable providers={f.providers} id="failures-by-provider" empty="No job ended in this window." />
        <h2>Latest failed jobs</h2>
        <JobsTable jobs={f.recent} id="failed-jobs" />
      </Layout>,
    );
  });

  ui.get('/audit', async (c) => {
    const before = z.coerce.number().int().positive().optional().parse(c.req.query('before') || undefined);
    const limit = 50;
    const actions = await s.admin.auditLog({ before, limit });
    return c.html(
      <Layout title="Audit log" c={c}>
        <ActionsTable actions={actions} id="audit" />
        {actions.length === limit && <a href={`/admin/audit?before=${actions[actions.length - 1]!.id}`}>Older →</a>}
      </Layout>,
    );
  });

  app.route('/admin', ui);
}
