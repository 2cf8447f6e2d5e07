import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { useTestApp } from '../support/harness.js';
import { ANON_KEY, supabaseClient, TINY_JPEG } from '../support/supabase-js.js';

/**
 * docs/ARCHITECTURE.md's "Supabase surface" table against the real supabase-js and the server: the
 * table names every public method of the client objects (found by reflection on the installed
 * supabase-js, so a new release's methods fail here until they are listed), and each row's request
 * is sent: a served row must answer 2xx/3xx, a refused one 4xx.
 */

interface Row {
  object: string;
  methods: string[];
  request: string;
  answer: string;
}

function surfaceTable(): Row[] {
  const doc = readFileSync(new URL('../../docs/ARCHITECTURE.md', import.meta.url), 'utf8');
  const table = /<!-- supabase-surface:start -->\n([\s\S]*?)<!-- supabase-surface:end -->/.exec(doc)?.[1];
  if (!table) throw new Error('docs/ARCHITECTURE.md has no supabase-surface table');
  return table
    .split('\n')
    .filter((line) => line.startsWith('| ') && !line.startsWith('| object') && !line.startsWith('|---'))
    .map((line) => {
      const [object = '', methods = '', request = '', answer = ''] = line.slice(2, -2).split(' | ');
      return { object, methods: methods.split(',').map((m) => m.trim()), request: request.replace(/^`|`$/g, ''), answer };
    });
}

/** The public methods of an object: its prototype chain's functions, without _private ones. */
function methodsOf(o: object): string[] {
  const names = new Set<string>();
  for (let p = Object.getPrototypeOf(o); p && p !== Object.prototype; p = Object.getPrototypeOf(p)) {
    for (const n of Object.getOwnPropertyNames(p)) if (n !== 'constructor' && !n.startsWith('_') && typeof (o as Record<string, unknown>)[n] === 'function') names.add(n);
  }
  return [...names];
}

describe('the Supabase surface table', () => {
  const apple = useFakeAppleId();
  const t = useTestApp(() => ({ ANON_KEY, ...apple.env() }));
  const rows = surfaceTable();

  it('lists every public supabase-js method once', () => {
    const sb = supabaseClient('http://127.0.0.1:9');
    const query = sb.from('models');
    const objects: Record<string, string[]> = {
      auth: methodsOf(sb.auth),
      'auth.mfa': Object.keys(sb.auth.mfa),
      'auth.admin': methodsOf(sb.auth.admin),
      storage: methodsOf(sb.storage),
      'storage.from()': methodsOf(sb.storage.from('thumbnails')),
      'from()': methodsOf(query),
      filters: methodsOf(query.select()),
      client: methodsOf(sb).filter((m) => !['auth', 'storage', 'functions'].includes(m)),
      channel: methodsOf(sb.channel('x')),
      functions: methodsOf(sb.functions),
    };
    const listed = rows.flatMap((r) => r.methods.map((m) => `${r.object}.${m}`));
    expect(listed.filter((m, i) => listed.indexOf(m) !== i), 'listed twice').toEqual([]);
    const existing = Object.entries(objects).flatMap(([object, methods]) => methods.map((m) => `${object}.${m}`));
    expect(existing.filter((m) => !listed.includes(m)), 'supabase-js methods missing from the table').toEqual([]);
    expect(listed.filter((m) => !existing.includes(m)), 'rows naming no supabase-js method').toEqual([]);
    for (const r of rows) expect(r.answer, r.methods.join()).toMatch(/^(served|refused|client only)/);
  });

  describe('each row answers as the table says', () => {
    /** The request as the harness sends it, with a body of bytes (the harness's rawBody is text). */
    const send = (method: string, path: string, token: string, headers: Record<string, string>, body?: string | Buffer) =>
      t().app.request(
        path,
        { method, headers: { apikey: ANON_KEY, authorization: `Bearer ${token}`, ...headers }, body },
        { incoming: { socket: { remoteAddress: '127.0.0.1', remotePort: 40000, remoteFamily: 'IPv4' } } },
      );

    const probed = rows.filter((r) => /^(GET|HEAD|POST|PUT|PATCH|DELETE) /.test(r.request));
    it.each(probed.map((r) => [`${r.object}: ${r.methods.slice(0, 3).join(', ')}${r.methods.length > 3 ? ', …' : ''}`, r] as const))('%s', async (_, row) => {
      const g = await t().createGuest();
      const up = await send('POST', `/storage/v1/object/thumbnails/${g.userId}/a.jpg`, g.accessToken, { 'content-type': 'image/jpeg' }, TINY_JPEG);
      expect(up.status).toBe(200);
      const needs = (p: string) => row.request.includes(p);
      const link = needs('{upload_token}')
        ? new URL((await t().json(t().post(`/storage/v1/object/upload/sign/thumbnails/${g.userId}/later.jpg`, { token: g.accessToken, body: {} }))).url, 'http://x').searchParams.get('token')!
        : '';
      const fill = (text: string) =>
        text
          .replaceAll('{uid}', g.userId)
          .replaceAll('{refresh}', g.refreshToken)
          .replaceAll('{upload_token}', link);
      let request = row.request;
      if (needs('{apple}')) request = request.replace('{apple}', await apple.identityToken({ sub: appleSub() }));
      const headers: Record<string, string> = {};
      const headerPart = /\s\[(.+)\]$/.exec(request);
      if (headerPart) {
        request = request.slice(0, headerPart.index);
        for (const h of headerPart[1]!.split(/;\s(?=[A-Za-z-]+:)/)) {
          const colon = h.indexOf(':');
          headers[h.slice(0, colon).trim().toLowerCase()] = h.slice(colon + 1).trim();
        }
      }
      const [method = '', target = '', ...bodyParts] = request.split(' ');
      const body = bodyParts.join(' ');
      const res = await send(
        method,
        fill(target),
        g.accessToken,
        { ...headers, ...(body ? { 'content-type': body === '<jpeg>' ? 'image/jpeg' : 'application/json' } : {}) },
        body === '<jpeg>' ? TINY_JPEG : body ? fill(body) : undefined,
      );
      const text = await res.text();
      if (row.answer.startsWith('served')) expect(res.status, `${method} ${target}: ${text.slice(0, 300)}`).toBeLessThan(400);
      else expect([res.status >= 400 && res.status < 500, text.slice(0, 300)]).toEqual([true, text.slice(0, 300)]);
    });
  });
});
