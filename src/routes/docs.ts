import { createRoute, z } from '@hono/zod-openapi';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { html, raw } from 'hono/html';
import { ERROR_CODES } from '../errors/codes.js';
import type { AppEnv } from '../http/context.js';
import { errorResponses } from './schemas.js';

const DOC_INFO = {
  openapi: '3.1.0',
  // Relative: the paths are served by whichever host (or proxy) served this document.
  servers: [{ url: '/', description: 'This server' }],
  info: {
    title: 'Rendio backend API',
    version: '0.1.0',
    description:
      'Drop-in backend for the Rendio iOS app (Supabase-compatible paths). Errors use the envelope ' +
      '{"error":{"code","message","details","request_id"}}; messages follow Accept-Language (en, tr, es).',
  },
};

type Operation = {
  summary?: string;
  description?: string;
  security?: Record<string, unknown>[];
  parameters?: { name: string; in: string; required?: boolean; description?: string; schema?: unknown }[];
  requestBody?: { content?: Record<string, { schema?: unknown }> };
  responses?: Record<string, { description?: string; content?: Record<string, { schema?: unknown }> }>;
};

/** A path item's operations are the entries with responses (its other keys: summary, parameters, servers). */
const isOperation = (value: unknown): value is Operation => typeof value === 'object' && value !== null && 'responses' in value;

/** A schema as indented JSON, with each $ref turned into a link to its entry under "Schemas". */
function schemaHtml(schema: unknown) {
  const json = JSON.stringify(schema, null, 2)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"#\/components\/schemas\/([\w.-]+)"/g, (_, name: string) => `"<a href="#schema-${name}">${name}</a>"`);
  return raw(`<pre>${json}</pre>`);
}

function operationHtml(o: Operation & { path: string; method: string }) {
  const locked = Boolean(o.security?.length);
  const scheme = locked ? Object.keys(o.security?.[0] ?? {})[0] : undefined;
  const params = o.parameters ?? [];
  const body = Object.entries(o.requestBody?.content ?? {});
  return html`<details><summary><span class="m">${o.method}</span> <code>${o.path}</code>${
    locked ? html` <span class="lock" title="needs a bearer token">${lockIcon}${scheme === 'metricsToken' ? ' operator token' : ' user token'}</span>` : ''
  } ${o.summary ?? ''}</summary>
${o.description ? html`<p>${o.description}</p>` : ''}
${params.length ? html`<h4>Parameters</h4><table><tr><th>name</th><th>in</th><th>required</th><th>description</th></tr>${params.map(
    (p) => html`<tr><td><code>${p.name}</code></td><td>${p.in}</td><td>${p.required ? 'yes' : 'no'}</td><td>${p.description ?? ''}</td></tr>`,
  )}</table>` : ''}
${body.map(([type, c]) => html`<h4>Request body (${type})</h4>${schemaHtml(c.schema)}`)}
<h4>Responses</h4>${Object.entries(o.responses ?? {}).map(
    ([status, r]) =>
      html`<p><b>${status}</b> ${r.description ?? ''}</p>${Object.entries(r.content ?? {}).map(([type, c]) =>
        c.schema ? html`<small>${type}</small>${schemaHtml(c.schema)}` : '',
      )}`,
  )}</details>`;
}

// Drawn, not a character: renders the same without emoji fonts.
const lockIcon = raw(
  '<svg width="11" height="13" viewBox="0 0 11 13" aria-hidden="true"><rect x="0.5" y="5.5" width="10" height="7" rx="1.5" fill="currentColor"/>' +
    '<path d="M2.75 5.5V3.75a2.75 2.75 0 0 1 5.5 0V5.5" fill="none" stroke="currentColor" stroke-width="1.5"/></svg>',
);

const docsRoute = createRoute({
  method: 'get',
  path: '/docs',
  operationId: 'getDocs',
  security: [],
  tags: ['operations'],
  summary: 'This reference as a web page (no external assets)',
  responses: { 200: { description: 'HTML', content: { 'text/html': { schema: z.string() } } }, ...errorResponses(429) },
});

const openApiRoute = createRoute({
  method: 'get',
  path: '/openapi.json',
  operationId: 'getOpenApiDocument',
  security: [],
  tags: ['operations'],
  summary: 'This reference as OpenAPI 3.1',
  responses: { 200: { description: 'OpenAPI document', content: { 'application/json': { schema: z.record(z.string(), z.unknown()) } } }, ...errorResponses(429) },
});

/** /openapi.json from the zod schemas, and /docs: a self-contained page (no CDN) rendered from it. */
export function registerDocs(app: OpenAPIHono<AppEnv>) {
  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' });
  app.openAPIRegistry.registerPath(openApiRoute);
  app.openAPIRegistry.registerPath(docsRoute);
  const document = () => app.getOpenAPI31Document(DOC_INFO);

  app.get('/openapi.json', (c) => c.json(document()));

  app.get('/docs', (c) => {
    const doc = document();
    const ops = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
      Object.entries(item ?? {})
        .filter((entry): entry is [string, Operation] => isOperation(entry[1]))
        .map(([method, op]) => ({ path, method: method.toUpperCase(), ...op })),
    );
    const schemas = Object.entries(doc.components?.schemas ?? {});
    const codes = Object.entries(ERROR_CODES);
    return c.html(html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Rendio API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:980px;margin:2rem auto;padding:0 1rem;color:#1d1d1f}
code{background:#f2f2f5;padding:.1em .35em;border-radius:4px}.m{display:inline-block;min-width:4.5em;font-weight:600}
details{margin:.35em 0;border-bottom:1px solid #eee;padding-bottom:.35em}summary{cursor:pointer}
pre{background:#f7f7f9;padding:.6em;overflow:auto;font-size:13px}h4{margin:.6em 0 .2em}
.lock{display:inline-block;font-size:12px;padding:0 .4em;border:1px solid #b36b00;color:#b36b00;border-radius:4px}
table{border-collapse:collapse}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left}</style></head>
<body><h1>${DOC_INFO.info.title}</h1><p>${DOC_INFO.info.description}</p>
<p>Machine-readable: <a href="/openapi.json">/openapi.json</a> (OpenAPI 3.1).</p>
<p>Endpoints marked <span class="lock">${lockIcon} user token</span> need <code>Authorization: Bearer &lt;access_token&gt;</code>
(from device-check or auth/v1/token); <span class="lock">${lockIcon} operator token</span> means an operator secret (METRICS_TOKEN).
Unmarked endpoints need no user token (API routes still take the <code>apikey</code> header). Open an endpoint for its parameters,
request body and responses.</p>
<h2>Endpoints</h2>${ops.map(operationHtml)}
<h2>Schemas</h2>${schemas.map(([name, schema]) => html`<h3 id="schema-${name}">${name}</h3>${schemaHtml(schema)}`)}
<h2>Error codes</h2><table><tr><th>code</th><th>HTTP</th><th>meaning</th></tr>${codes.map(
      ([code, v]) => html`<tr><td><code>${code}</code></td><td>${v.status}</td><td>${v.meaning}</td></tr>`,
    )}</table></body></html>`);
  });
}
