import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createAdmin, type TestAdmin } from '../support/admin.js';
import { useTestApp, type Guest } from '../support/harness.js';

/**
 * Whatever a client sends, the answer is a documented 4xx in the envelope — never a 500 (ERR_6003).
 *
 * fast-check's default strings are printable ASCII, so the first version of this property never
 * sent what actually broke the server: U+0000 (PostgreSQL refuses it in text), lone surrogates
 * (no UTF-8 form), malformed percent-escapes (decodeURIComponent throws) and Object.prototype's
 * names used as keys (`constructor` passed a plain-object allow-list). The arbitraries below are
 * weighted towards those, every route gets each of them in each of its fields as explicit
 * examples, and the property checks that its random runs produced every kind too.
 */

const PROTO_KEYS = ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', 'isPrototypeOf', 'propertyIsEnumerable', 'toLocaleString', '__defineGetter__', '__lookupSetter__'];
const BAD_ESCAPES = ['%E0%A4%A', '%', '%zz', '%0', '%C0%80', '%ED%A0%80', '%FF%FE', '%00'];
/** One sample of each kind, for the explicit examples. */
const KINDS = { nul: 'a\u0000b', 'lone surrogate': 'x\ud800y', 'bad escape': '%E0%A4%A', 'prototype key': 'constructor' } as const;
type Kind = keyof typeof KINDS;

function kindsIn(text: string): Kind[] {
  const kinds: Kind[] = [];
  if (/\u0000|%00/.test(text)) kinds.push('nul');
  if (/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(text)) kinds.push('lone surrogate');
  if (BAD_ESCAPES.some((e) => e !== '%00' && text.includes(e))) kinds.push('bad escape');
  if (PROTO_KEYS.some((k) => text.includes(k))) kinds.push('prototype key');
  return kinds;
}

/** Every string and key in a JSON value. */
function textsOf(value: unknown): string[] {
  if (typeof value === 'string') return [value];
  if (Array.isArray(value)) return value.flatMap(textsOf);
  if (value && typeof value === 'object') return Object.entries(value).flatMap(([k, v]) => [k, ...textsOf(v)]);
  return [];
}

const decodeURIComponentLeniently = (s: string) => s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (m) => {
  try {
    return decodeURIComponent(m);
  } catch {
    return m;
  }
});

/** Any UTF-16 code unit, NUL and unpaired surrogates included. */
const codeUnits = fc.string({ unit: fc.nat(0xffff).map((n) => String.fromCharCode(n)), maxLength: 12 });
const nastyPiece = fc.oneof(
  { weight: 2, arbitrary: fc.constantFrom('\u0000', '\u0000\u0000', 'a\u0000') },
  // Weighted up: in a query string a client's encoder turns them into U+FFFD, so only bodies carry them.
  { weight: 4, arbitrary: fc.constantFrom('\ud800', '\udfff', '\udc00\ud800', '\ud83d') },
  { weight: 2, arbitrary: fc.constantFrom(...BAD_ESCAPES) },
  { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS) },
  { weight: 1, arbitrary: codeUnits },
);
/** Strings weighted towards what PostgreSQL, decodeURIComponent and plain-object lookups choke on. */
const nastyString = fc.oneof(
  { weight: 1, arbitrary: fc.string({ maxLength: 30 }) },
  { weight: 3, arbitrary: fc.tuple(fc.string({ maxLength: 8 }), nastyPiece, fc.string({ maxLength: 8 })).map((parts) => parts.join('')) },
);
const nastyKey = fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...PROTO_KEYS) }, { weight: 1, arbitrary: nastyString });

/** A query-string component: usually encoded (lone surrogates as U+FFFD, as a client would), sometimes raw bad escapes. */
const encode = (s: string) => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd'));
const queryPart = fc.oneof({ weight: 2, arbitrary: nastyString.map(encode) }, { weight: 1, arbitrary: fc.constantFrom(...BAD_ESCAPES) });

interface Endpoint {
  method: 'GET' | 'POST' | 'PATCH';
  path: string;
  auth: boolean;
  /** The body fields the route reads, each with a value that passes validation on its own. */
  fields: Record<string, unknown>;
  headers?: () => Record<string, string>;
}

describe('robustness of every endpoint that reads a body or query', () => {
  const t = useTestApp();
  const seen = new Map<Kind, number>();
  let guest: Guest | undefined;
  const g = async () => (guest ??= await t().createGuest());

  const endpoints = (g: Guest): Endpoint[] => {
    const image = `${t().services.config.publicUrl}/storage/v1/object/public/thumbnails/${g.userId}/input_1.jpg`;
    return [
      { method: 'POST', path: '/functions/v1/device-check', auth: false, fields: { device_id: g.deviceId, device_token: 'AAAAAAAAAAAAAAAAAAAAAAAA' } },
      { method: 'POST', path: '/auth/v1/token?grant_type=refresh_token', auth: false, fields: { refresh_token: 'not-a-real-refresh-token' } },
      { method: 'POST', path: '/auth/v1/token?grant_type=id_token', auth: false, fields: { provider: 'apple', id_token: 'a.b.c', nonce: 'n' } },
      { method: 'POST', path: '/auth/v1/logout?scope=others', auth: true, fields: {} },
      { method: 'PATCH', path: `/rest/v1/users?id=eq.${g.userId}`, auth: true, fields: { language: 'tr', theme_preference: 'dark' } },
      { method: 'GET', path: '/functions/v1/get-user-credits', auth: true, fields: {} },
      { method: 'GET', path: '/functions/v1/get-user-profile', auth: true, fields: {} },
      { method: 'GET', path: `/functions/v1/get-video-status?job_id=${randomUUID()}`, auth: true, fields: {} },
      { method: 'GET', path: '/functions/v1/get-video-jobs?limit=5', auth: true, fields: {} },
      { method: 'POST', path: '/functions/v1/delete-video-job', auth: true, fields: { job_id: randomUUID() } },
      {
        method: 'POST',
        path: '/functions/v1/generate-video',
        auth: true,
        fields: { model_id: 'simulator-image-to-video', prompt: 'a lighthouse in a storm', image_url: image, settings: { duration: 5 } },
        headers: () => ({ 'idempotency-key': randomUUID() }),
      },
      {
        method: 'POST',
        path: '/functions/v1/update-credits',
        auth: true,
        fields: { transaction_id: '2000000847061981', product_id: 'com.rendioai.credits.starter.25', receipt_data: 'MIIT', purchase_date: '2026-01-01' },
      },
      { method: 'POST', path: '/functions/v1/merge-guest-user', auth: true, fields: { device_id: g.deviceId, apple_sub: '001234.abcdefabcdef', identity_token: 'a.b.c' } },
      { method: 'POST', path: '/functions/v1/delete-account?user_id=' + randomUUID(), auth: true, fields: {} },
      { method: 'POST', path: '/functions/v1/apple-server-notifications', auth: false, fields: { signedPayload: 'a.b.c' } },
      { method: 'POST', path: '/functions/v1/apple-signin-notifications', auth: false, fields: { payload: 'a.b.c' } },
      { method: 'POST', path: '/functions/v1/provider-webhook/fal', auth: false, fields: { request_id: randomUUID(), status: 'OK', payload: {} } },
      { method: 'GET', path: '/rest/v1/themes?select=id,name', auth: false, fields: {} },
      { method: 'GET', path: '/rest/v1/models?select=id', auth: false, fields: {} },
    ];
  };

  /** The route's own fields (valid, or with nasty text put into them), plus extra keys from Object.prototype or worse. */
  const bodyFor = (ep: Endpoint) =>
    fc
      .tuple(
        fc.record(
          Object.fromEntries(
            Object.entries(ep.fields).map(([k, valid]) => [
              k,
              fc.oneof(
                { weight: 2, arbitrary: fc.constant(valid) },
                { weight: 3, arbitrary: typeof valid === 'string' ? nastyString.map((s) => valid + s) : nastyString },
                { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
              ),
            ]),
          ),
          { requiredKeys: [] },
        ),
        fc.array(fc.tuple(nastyKey, fc.oneof({ weight: 3, arbitrary: nastyString }, { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 1 }) })), { maxLength: 3 }),
      )
      // Object.fromEntries makes `__proto__` an own key (spreading would set the prototype instead).
      .map(([known, extra]) => Object.fromEntries([...Object.entries(known), ...extra]));

  const query = fc.array(fc.tuple(fc.oneof(fc.constantFrom('x', 'user_id', ...PROTO_KEYS), queryPart), queryPart), { maxLength: 2 });

  const exampleBodies = new WeakSet<object>();
  async function send(ep: Endpoint, body: Record<string, unknown>, params: [string, string][], user: Guest) {
    const qs = params.map(([k, v]) => `${encode(k)}=${v}`).join('&');
    const path = qs ? `${ep.path}${ep.path.includes('?') ? '&' : '?'}${qs}` : ep.path;
    const rawBody = ep.method === 'GET' ? undefined : JSON.stringify(body);
    if (!exampleBodies.has(body)) {
      for (const kind of kindsIn([decodeURIComponentLeniently(qs), ...(rawBody ? textsOf(body) : [])].join(' '))) seen.set(kind, (seen.get(kind) ?? 0) + 1);
    }
    const res = await t().request(ep.method, path, {
      token: ep.auth ? user.accessToken : undefined,
      rawBody,
      headers: { ...(rawBody ? { 'content-type': 'application/json' } : {}), ...ep.headers?.() },
    });
    const text = await res.text();
    const label = `${ep.method} ${path} ${rawBody ?? ''} → ${res.status} ${text.slice(0, 300)}`;
    // This app has no Apple keys: a request valid enough to reach Apple gets 503 ERR_5002, as documented.
    if (res.status >= 400) expect(JSON.parse(text).error.code, label).toMatch(/^ERR_(4\d{3}|5002)$/);
  }

  /** Every route, every field: each kind of nasty text in that field alone (the rest valid), and as extra keys. */
  const examples = (user: Guest): [Endpoint, Record<string, unknown>, [string, string][]][] =>
    endpoints(user).flatMap((ep) => [
      ...Object.entries(ep.fields).flatMap(([field, valid]) =>
        Object.values(KINDS).map((nasty): [Endpoint, Record<string, unknown>, [string, string][]] => [
          ep,
          { ...ep.fields, [field]: typeof valid === 'string' ? valid + nasty : nasty },
          [],
        ]),
      ),
      [ep, Object.fromEntries([...Object.entries(ep.fields), ...PROTO_KEYS.map((k) => [k, 'x\u0000'])]), PROTO_KEYS.map((k): [string, string] => [k, 'eq.1'])],
      [ep, ep.fields, Object.values(KINDS).map((nasty, i): [string, string] => [`q${i}`, nasty === KINDS['bad escape'] ? nasty : encode(nasty)])],
    ]);

  it('every route answers nasty bodies and query strings with a 4xx, never a 5xx', async () => {
    const user = await g();
    const eps = endpoints(user);
    const arb = fc.constantFrom(...eps).chain((ep) => fc.tuple(fc.constant(ep), bodyFor(ep), query));
    await fc.assert(
      fc.asyncProperty(arb, async ([ep, body, params]) => send(ep, body, params, user)),
      {
        numRuns: 200,
        examples: examples(user).map((e) => {
          exampleBodies.add(e[1]);
          return [e];
        }),
      },
    );
    // Beyond the examples, the random runs themselves sent each kind of input, many times.
    for (const kind of Object.keys(KINDS) as Kind[]) expect(seen.get(kind) ?? 0, `${kind}: ${JSON.stringify([...seen])}`).toBeGreaterThanOrEqual(5);
  });

  it('random bytes, odd content types and odd query strings never produce a 5xx', async () => {
    const user = await g();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...endpoints(user)),
        fc.oneof(fc.string({ maxLength: 300 }), nastyString),
        fc.constantFrom('application/json', 'text/plain', 'application/json; charset=utf-8', 'multipart/form-data', ''),
        queryPart,
        async (ep, raw, type, q) => {
          const sep = ep.path.includes('?') ? '&' : '?';
          const path = `${ep.path}${sep}x=${q}&user_id=${q}`;
          const res = await t().request(ep.method, path, {
            token: ep.auth ? user.accessToken : undefined,
            rawBody: ep.method === 'GET' ? undefined : raw,
            headers: { ...(type ? { 'content-type': type } : {}), ...ep.headers?.() },
          });
          expect(res.status, `${ep.method} ${path} ${type} ${JSON.stringify(raw)}`).toBeLessThan(500);
        },
      ),
      { numRuns: 150 },
    );
  });

  it.each(['Bearer', 'Bearer ', 'Basic dXNlcjpwYXNz', 'bearer a b', 'Token abc'])('Authorization %j → 401', async (header) => {
    const res = await t().get('/functions/v1/get-user-credits', { headers: { authorization: header } });
    expect(res.status).toBe(401);
  });

  it('the PostgREST readers survive random query strings, prototype names as columns included', async () => {
    const names = fc.oneof(
      { weight: 3, arbitrary: fc.constantFrom('select', 'order', 'limit', 'offset', 'id', 'is_featured', 'name', 'category', 'model_id', 'is_available') },
      { weight: 2, arbitrary: fc.constantFrom(...PROTO_KEYS) },
      { weight: 1, arbitrary: nastyString.map(encode) },
    );
    const values = fc.oneof(queryPart, queryPart.map((v) => `eq.${v}`), fc.constantFrom(...PROTO_KEYS).map((k) => `${k}.asc`));
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/rest/v1/models', '/rest/v1/themes'), fc.array(fc.tuple(names, values), { maxLength: 4 }), async (base, params) => {
        const path = `${base}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`;
        const res = await t().get(path);
        expect(res.status, `${path} → ${await res.clone().text()}`).toBeLessThan(500);
      }),
      { numRuns: 150, examples: PROTO_KEYS.flatMap((k) => [['/rest/v1/themes', [[k, 'eq.1']]], ['/rest/v1/models', [[k, 'eq.1']]]] as [string, [string, string][]][]) },
    );
  });


  it('rest/v1 date filters: any date, year, time and offset is a 200 or a 400, never a 5xx', async () => {
    const digits = (min: number, max: number, width: number) => fc.integer({ min, max }).map((n) => String(n).padStart(width, '0'));
    const offset = fc.oneof(
      fc.constant(''),
      fc.constant('Z'),
      fc.tuple(fc.constantFrom('+', '-'), digits(0, 19, 2), fc.constantFrom(':', ''), digits(0, 99, 2)).map((p) => p.join('')),
      fc.tuple(fc.constantFrom('+', '-'), digits(0, 19, 2)).map((p) => p.join('')),
    );
    const time = fc.oneof(
      fc.constant(''),
      fc.tuple(fc.constantFrom('T', ' '), digits(0, 29, 2), digits(0, 69, 2), fc.option(digits(0, 69, 2)), fc.option(digits(0, 999_999_999, 9)), offset).map(
        ([sep, h, m, sec, frac, off]) => `${sep}${h}:${m}${sec === null ? '' : `:${sec}${frac === null ? '' : `.${frac}`}`}${off}`,
      ),
    );
    const year = fc.oneof(digits(0, 9999, 4), fc.constantFrom('0000', '0001', '9999', '10000', '275760', '-0001'));
    const date = fc.tuple(year, digits(0, 19, 2), digits(0, 39, 2), time).map(([y, mo, d, t]) => `${y}-${mo}-${d}${t}`);
    const filter = fc.tuple(fc.constantFrom('eq', 'neq', 'gt', 'gte', 'lt', 'lte', 'not.gt', 'in'), fc.array(date, { minLength: 1, maxLength: 3 })).map(([op, dates]) =>
      op === 'in' ? `in.(${dates.join(',')})` : `${op}.${dates[0]}`,
    );
    const examples: [string, string, string][] = [
      ['/rest/v1/models', 'created_at', 'gt.0000-01-01'],
      ['/rest/v1/themes', 'updated_at', 'lt.9999-12-31T23:59-14:00'],
      ['/rest/v1/models', 'created_at', 'lt.0001-01-01T00:00+01:00'],
      ['/rest/v1/themes', 'created_at', 'in.(2020-01-01,10000-01-01)'],
    ];
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('/rest/v1/models', '/rest/v1/themes'), fc.constantFrom('created_at', 'updated_at'), filter, async (base, column, value) => {
        const path = `${base}?select=id&${column}=${encodeURIComponent(value)}`;
        const res = await t().get(path);
        expect(res.status, `${path} → ${await res.clone().text()}`).toBeLessThan(500);
      }),
      { numRuns: 200, examples },
    );
  });

  it('every admin path parameter in /openapi.json: odd ids are a 4xx, never a 5xx', async () => {
    const admin: TestAdmin = await createAdmin(t());
    const user = await g();
    const spec = await t().json<{ paths: Record<string, Record<string, unknown>> }>(t().get('/openapi.json'));
    const operations = Object.entries(spec.paths)
      .filter(([path]) => path.includes('{') && (path.startsWith('/admin/') || path.startsWith('/functions/v1/admin-')))
      .flatMap(([path, methods]) => Object.keys(methods).map((method) => ({ method: method.toUpperCase(), path })));
    expect(operations.map((o) => `${o.method} ${o.path}`)).toEqual(expect.arrayContaining(['PATCH /admin/api/models/{id}', 'POST /admin/api/users/{id}/ban', 'GET /admin/api/jobs/{id}']));
    const oddId = fc.oneof(
      { weight: 3, arbitrary: nastyString.map(encode) },
      { weight: 1, arbitrary: fc.constantFrom(...BAD_ESCAPES) },
      { weight: 1, arbitrary: fc.constantFrom('not-a-uuid', `${user.userId}x`, 'x'.repeat(300), ...PROTO_KEYS) },
    );
    const call = async (op: { method: string; path: string }, id: string) => {
      const path = op.path.replace(/\{\w+\}/g, id);
      const body = op.method === 'GET' ? undefined : { amount: 1, reason: 'odd id check', is_available: true };
      const res = await t().request(op.method, path, { token: admin.token, body, headers: { 'idempotency-key': randomUUID() } });
      const text = await res.text();
      expect(res.status, `${op.method} ${path} → ${res.status} ${text.slice(0, 300)}`).toBeLessThan(500);
    };
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...operations), oddId, async (op, id) => call(op, id)),
      { numRuns: 150, examples: operations.flatMap((op) => ['', '%00', 'a%00b', 'not-a-uuid', '%ED%A0%80'].map((id): [typeof op, string] => [op, id])) },
    );
  });
});
