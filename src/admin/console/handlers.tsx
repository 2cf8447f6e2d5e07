import { randomBytes } from 'node:crypto';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { Hono, type Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { deleteCookie, getCookie, setCookie } from 'hono/cookie';
import { z } from 'zod';
import { secretsEqual } from '../../auth/tokens.js';
import { ApiError } from '../../http/api-error.js';
import { addressKey } from '../../http/client-ip.js';
import type { AppEnv } from '../../http/context.js';
import { localizedMessage } from '../../errors/i18n.js';
import { toApiError } from '../../http/on-error.js';
import type { Services } from '../../services.js';
import { clearConsoleCookie, requireConsoleSession, setConsoleCookie } from '../middleware.js';
import { CatalogueWouldBeEmpty } from '../errors.js';
import { BanBody, ChartRangeQuery, CreditChangeBody, IdempotencyKey, ModelId, ModelPatchBody, Reason, SearchQuery, SignInBody, UserId } from '../schemas.js';
import { creditsMoved, type Actor } from '../service.js';
import { AuditPage } from './pages/audit.js';
import { DashboardPage } from './pages/dashboard.js';
import { ErrorPage } from './pages/error.js';
import { FailuresPage } from './pages/failures.js';
import { JobPage } from './pages/job.js';
import { ModelsPage } from './pages/models.js';
import { SignInPage } from './pages/sign-in.js';
import { UserPage, UserSearchPage } from './pages/users.js';

/**
 * The support team's console at /admin: server-rendered pages (Hono JSX), plain HTML forms, no
 * client script. Each form posts to a handler that parses it with the admin API's schema and calls
 * the same AdminService verb the API calls, then redirects back (post/redirect/get). Session: an
 * HttpOnly, SameSite=Strict cookie; every form carries the session's CSRF token. The handlers here
 * parse, call the verb and pick the page; what a page shows is in ./pages, built from ./components
 * inside ./layout.
 */

const LOGIN_NONCE_COOKIE = 'rendio_admin_login';

const actor = (c: Context<AppEnv>): Actor => ({ adminId: c.get('admin').adminId, requestId: c.get('requestId') });

/** Form fields as strings (the schemas coerce what they need); _csrf and friends are dropped. */
async function formOf(c: Context<AppEnv>): Promise<Record<string, string>> {
  const body = await c.req.parseBody();
  return Object.fromEntries(Object.entries(body).filter((e): e is [string, string] => typeof e[1] === 'string' && !e[0].startsWith('_')));
}

/** The route's `:id`, parsed before any verb sees it (400 ERR_4008 naming `id` otherwise). */
const idParam = <T,>(c: Context<AppEnv>, schema: z.ZodType<T>): T => z.object({ id: schema }).parse({ id: c.req.param('id') }).id;

const back = (c: Context<AppEnv>, path: string, done: string) => c.redirect(`${path}?done=${encodeURIComponent(done)}`, 303);

export function registerAdminConsole(app: OpenAPIHono<AppEnv>, s: Services) {
  const ui = new Hono<AppEnv>();
  const secure = s.config.admin.secureCookies;
  // Double-submit nonce: a page of another site cannot sign the browser in to an account of its choosing.
  const newLoginNonce = (c: Context<AppEnv>) => {
    const nonce = randomBytes(24).toString('base64url');
    setCookie(c, LOGIN_NONCE_COOKIE, nonce, { httpOnly: true, sameSite: 'Strict', secure, path: '/admin', maxAge: 3600 });
    return nonce;
  };

  /**
   * Errors render as a page the support agent can read, with the same codes and messages as the
   * API. A refused sign-in (wrong password, lockout, expired form) shows the form again with the
   * error above it and the email kept: a dead-end error page made the agent go back by hand.
   */
  ui.onError(async (err, c) => {
    const e = toApiError(err, s.config.maxJsonBodyBytes);
    if (e.status >= 500) c.get('log')?.error({ err }, 'admin console request failed');
    s.errorLog.record({ requestId: c.get('requestId'), code: e.code, status: e.status, method: c.req.method, path: c.req.path, message: e.message, details: e.details });
    const message = localizedMessage(e.code, 'en', e.details);
    if (c.req.method === 'POST' && c.req.path === '/admin/login') {
      const body = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
      const email = typeof body.email === 'string' ? body.email.slice(0, 254) : '';
      return c.html(<SignInPage nonce={newLoginNonce(c)} email={email} error={{ code: e.code, message }} />, e.status as 400, e.headers);
    }
    return c.html(<ErrorPage c={c.get('admin') ? c : undefined} code={e.code} message={message} details={e.details} />, e.status as 400, e.headers);
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
  ui.get('/login', (c) => c.html(<SignInPage nonce={newLoginNonce(c)} />));

  ui.post('/login', s.rateLimits.middleware('admin-login'), async (c) => {
    const body = await c.req.parseBody();
    const nonce = getCookie(c, LOGIN_NONCE_COOKIE);
    if (!nonce || typeof body._login !== 'string' || !secretsEqual(body._login, nonce)) throw new ApiError('ERR_4027');
    const input = SignInBody.parse({ email: body.email, password: body.password, totp: typeof body.totp === 'string' && body.totp ? body.totp : undefined });
    const r = await s.adminAuth.signIn({ ...input, addressKey: addressKey(s.rateLimits.clientIp(c)) }, 'console');
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
    const range = ChartRangeQuery.parse(c.req.query('range') || undefined);
    const [dashboard, charts] = await Promise.all([s.admin.dashboard(), s.admin.charts(range)]);
    return c.html(<DashboardPage c={c} dashboard={dashboard} charts={charts} />);
  });

  // ---- users ------------------------------------------------------------------------------
  ui.get('/users', async (c) => {
    const raw = c.req.query('q');
    const q = raw ? SearchQuery.parse(raw) : undefined;
    const users = q ? await s.admin.searchUsers(q) : [];
    return c.html(<UserSearchPage c={c} q={q} users={users} />);
  });

  ui.get('/users/:id', async (c) => c.html(<UserPage c={c} detail={await s.admin.userDetail(idParam(c, UserId))} />));

  const creditForm = z.object({ kind: z.enum(['grant', 'clawback']), key: IdempotencyKey });
  ui.post('/users/:id/credits', async (c) => {
    const userId = idParam(c, UserId);
    const form = await formOf(c);
    const { kind, key } = creditForm.parse(form);
    const { amount, reason } = CreditChangeBody.parse(form);
    const req = { userId, amount, reason, idempotencyKey: key };
    const r = kind === 'grant' ? await s.admin.grantCredits(actor(c), req) : await s.admin.clawBackCredits(actor(c), req);
    const what = kind === 'grant' ? `Gave ${amount} credits` : `Clawed back ${creditsMoved(r.action)} of ${amount} credits asked`;
    return back(c, `/admin/users/${userId}`, `${what} (audit #${r.action.id}${r.replayed ? ', already done before' : ''}).`);
  });

  for (const verb of ['ban', 'unban'] as const) {
    ui.post(`/users/:id/${verb}`, async (c) => {
      const userId = idParam(c, UserId);
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
    return c.html(<JobPage c={c} timeline={t} />);
  });

  // ---- models -----------------------------------------------------------------------------
  ui.get('/models', async (c) => c.html(<ModelsPage c={c} models={await s.admin.models()} />));

  // One form per model; the console asks for a reason the API leaves optional.
  const modelReason = z.object({ reason: Reason });
  ui.post('/models/:id', async (c) => {
    const modelId = idParam(c, ModelId);
    const form = await formOf(c);
    const patch = ModelPatchBody.parse(form);
    const { reason } = modelReason.parse(form);
    try {
      const r = await s.admin.updateModel(actor(c), modelId, { ...patch, reason });
      return back(c, '/admin/models', `Updated ${r.model.id} (audit #${r.action.id}).`);
    } catch (err) {
      // Nothing changed: the page asks whether to go ahead, with the same form ready to post again.
      if (!(err instanceof CatalogueWouldBeEmpty)) throw err;
      const message = localizedMessage(err.code, 'en', err.details);
      return c.html(<ModelsPage c={c} models={await s.admin.models()} confirm={{ modelId, message, fields: form }} />, 409);
    }
  });

  // ---- failures and audit -----------------------------------------------------------------
  ui.get('/failures', async (c) => {
    const hours = z.coerce.number().min(0.1).max(720).default(24).parse(c.req.query('hours') ?? undefined);
    const f = await s.admin.failures(hours);
    return c.html(<FailuresPage c={c} hours={hours} failures={f} />);
  });

  ui.get('/audit', async (c) => {
    const before = z.coerce.number().int().positive().optional().parse(c.req.query('before') || undefined);
    const limit = 50;
    const actions = await s.admin.auditLog({ before, limit });
    // A full page may have older rows behind it; the next page starts before its last id.
    return c.html(<AuditPage c={c} actions={actions} older={actions.length === limit ? actions.at(-1)?.id : undefined} />);
  });

  app.route('/admin', ui);
}
