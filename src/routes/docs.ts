import type { OpenAPIHono } from '@hono/zod-openapi';
import { html, raw } from 'hono/html';
import { ERROR_CODES } from '../http/error-codes.js';
import type { AppEnv } from '../http/context.js';

const DOC_INFO = {
  openapi: '3.1.0',
  info: {
    title: 'Rendio backend API',
    version: '0.1.0',
    description:
      'Drop-in backend for the Rendio iOS app (Supabase-compatible paths). Errors use the envelope ' +
      '{"error":{"code","message","details","request_id"}}; messages follow Accept-Language (en, tr, es).',
  },
};

/** /openapi.json from the zod schemas, and /docs: a self-contained page (no CDN) rendered from it. */
export function registerDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  const document = () => app.getOpenAPI31Document(DOC_INFO);

  app.get('/openapi.json', (c) => c.json(document()));

  app.get('/docs', (c) => {
    const doc = document();
    const ops = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
      Object.entries(item as Record<string, { summary?: string; description?: string; tags?: string[]; security?: unknown[] }>).map(
        ([method, op]) => ({ path, method: method.toUpperCase(), ...op }),
      ),
    );
    const codes = Object.entries(ERROR_CODES);
    return c.html(html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rendio API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1d1d1f}
code{background:#f2f2f5;padding:.1em .35em;border-radius:4px}.m{display:inline-block;min-width:4.5em;font-weight:600}
li{margin:.4em 0}table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}</style></head>
<body><h1>${DOC_INFO.info.title}</h1><p>${DOC_INFO.info.description}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<h2>Endpoints</h2><ul>${ops.map(
      (o) => html`<li><span class="m">${o.method}</span> <code>${o.path}</code>${o.security?.length ? ' 🔒' : ''} — ${o.summary ?? ''}${
        o.description ? html`<br><small>${o.description}</small>` : ''
      }</li>`,
    )}</ul>
<h2>Error codes</h2><table><tr><th>code</th><th>HTTP</th><th>meaning</th></tr>${codes.map(
      ([code, v]) => html`<tr><td><code>${code}</code></td><td>${v.status}</td><td>${v.meaning}</td></tr>`,
    )}</table>${raw('')}</body></html>`);
  });
}
