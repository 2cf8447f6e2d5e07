import type { Context } from 'hono';
import type { Child, FC } from 'hono/jsx';
import type { AppEnv } from '../../http/context.js';
import { Csrf } from './components.js';

/** Every console page: the header with the admin's links and sign-out, the flash of the last change, the title. */

const STYLE = `
*{box-sizing:border-box}body{font:15px/1.45 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;color:#1d232b;background:#f5f6f8}
header{background:#1f2933;color:#fff;padding:10px 24px;display:flex;flex-wrap:wrap;gap:8px 20px;align-items:center}
header a{color:#e4e7eb;text-decoration:none}header a:hover{color:#fff}header strong{margin-right:12px}
header form{margin-left:auto}main{padding:20px 24px;max-width:1200px}
h1{font-size:22px;margin:4px 0 16px;overflow-wrap:anywhere}h2{font-size:17px;margin:24px 0 8px}p,td{overflow-wrap:anywhere}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:12px}th,td{padding:6px 10px;border-bottom:1px solid #e4e7eb;text-align:left;vertical-align:top}
th{background:#eef0f3;font-weight:600;font-size:13px}td.num,th.num{text-align:right}code{font-size:12px}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#fff;padding:12px 16px;border-radius:6px;min-width:160px;box-shadow:0 1px 2px #0001}
.card b{display:block;font-size:22px}.muted{color:#616e7c;font-size:13px}
form.inline{display:inline-flex;flex-wrap:wrap;gap:6px;align-items:center;margin:0;max-width:100%}input,select,button{font:inherit;padding:5px 8px;max-width:100%}
button{background:#2563eb;color:#fff;border:0;border-radius:4px;cursor:pointer}button.danger{background:#b91c1c}button.plain{background:#52606d}
.panel{background:#fff;padding:14px 16px;border-radius:6px;margin-bottom:14px;box-shadow:0 1px 2px #0001}
.flash{background:#e3f9e5;border:1px solid #57ae5b;padding:8px 12px;border-radius:4px;margin-bottom:12px}
.error{background:#ffe3e3;border:1px solid #e12d39;padding:8px 12px;border-radius:4px;margin-bottom:12px}
.banned{color:#b91c1c;font-weight:600}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(min(100%,420px),1fr));gap:12px}
figure.chart{margin:0;background:#fff;padding:10px 12px;border-radius:6px;box-shadow:0 1px 2px #0001}figure.chart svg{width:100%;height:auto;display:block}
figcaption{font-weight:600;font-size:14px;margin-bottom:4px}.legend{list-style:none;padding:0;margin:4px 0 0;display:flex;flex-wrap:wrap;gap:2px 12px;font-size:12px}
.legend span{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}.ranges{display:flex;flex-wrap:wrap;gap:4px 14px}
form.fields{display:flex;flex-wrap:wrap;gap:8px 14px;align-items:center;margin:8px 0 0}form.fields label{white-space:nowrap}.grow{flex:1 1 200px;min-width:0}
@media (max-width:700px){
  header{padding:8px 12px;gap:4px 14px}header strong{flex-basis:100%}main{padding:12px}
  .card{min-width:0;flex:1 1 140px;padding:10px 12px}
  /* A table scrolls inside itself; the page never runs off the screen. */
  table{display:block;overflow-x:auto}td{overflow-wrap:normal}
}`;

export const Layout: FC<{ title: string; c?: Context<AppEnv>; children?: Child }> = ({ title, c, children }) => {
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
          {admin && c && (
            <>
              <a href="/admin">Dashboard</a>
              <a href="/admin/users">Users</a>
              <a href="/admin/models">Models</a>
              <a href="/admin/failures">Failures</a>
              <a href="/admin/audit">Audit log</a>
              <form method="post" action="/admin/logout" class="inline">
                <Csrf c={c} />
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
