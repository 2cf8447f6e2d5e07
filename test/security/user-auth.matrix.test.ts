import { randomUUID } from 'node:crypto';
import { beforeAll, describe, expect, it } from 'vitest';
import { TEST_JWT_SECRET, useTestApp, type Guest, type TestApp } from '../support/harness.js';
import { signWith } from '../support/user-auth.js';

/**
 * The auth matrix over every route /openapi.json marks with bearer (user) auth, in each auth mode
 * the server has: no token, a malformed or forged one, an expired one, a session that ended, a
 * banned user, another user's id or resource, the anon key alone (and, in legacy mode, the anon
 * key naming a banned or unknown user). Requests are generated from the route's OpenAPI entry, so
 * a route added later is covered without editing this file; a route whose request cannot be
 * generated fails here until it is described below or excluded with its reason.
 *
 * Each route also gets a control: its own user's token with the same generated request passes
 * auth. Without it a refusal could come from a malformed request instead of the auth check.
 */

const ANON_KEY = 'public-anon-key-of-the-auth-matrix';
const SIM = 'simulator-text-to-video';
const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0xff, 0xd9]);

const MODES = [
  { name: 'secure mode without ANON_KEY', env: {}, legacy: false, anonKey: 'an-anon-key-this-server-does-not-know' },
  { name: 'secure mode with ANON_KEY', env: { ANON_KEY }, legacy: false, anonKey: ANON_KEY },
  { name: 'legacy anon-key mode (LEGACY_ANON_CLIENTS=true)', env: { ANON_KEY, LEGACY_ANON_CLIENTS: 'true' }, legacy: true, anonKey: ANON_KEY },
] as const;

/** Bearer routes the matrix does not run, each with why. */
const EXCLUDED: { match: (path: string) => boolean; reason: string }[] = [
  {
    match: (p) => p.startsWith('/admin/') || p.startsWith('/functions/v1/admin-'),
    reason: 'an admin API token, not a user token: test/admin/admin.security.test.ts refuses app tokens, the anon key and no token on every admin route',
  },
];

/** Operations without security: public by design. Any other must declare bearer auth. */
const PUBLIC: Record<string, string> = {
  'POST /functions/v1/device-check': 'opens a guest session (DeviceCheck proves the device)',
  'POST /auth/v1/token': 'refresh and Sign in with Apple: the credential is in the body',
  'POST /auth/v1/signup': 'anonymous sign-in creates a guest with no credits (device-check gives the free ones)',
  'POST /functions/v1/apple-server-notifications': 'Apple calls it; the signed payload is the proof',
  'POST /functions/v1/apple-signin-notifications': 'Apple calls it; the signed event is the proof',
  'GET /functions/v1/get-models': 'the catalogue',
  'POST /functions/v1/get-models': 'the catalogue, as supabase-js functions.invoke sends it',
  'GET /rest/v1/models': 'the catalogue',
  'GET /rest/v1/themes': 'the catalogue',
  'GET /storage/v1/object/sign/{bucket}/{key}': 'the signed token in the query is the proof',
  'GET /storage/v1/object/public/{bucket}/{key}': 'public inputs, fetched by providers',
  'PUT /storage/v1/object/upload/sign/{bucket}/{key}': 'the signed upload token in the query is the proof (its owner made it with their token)',
  'GET /realtime/v1/websocket': 'each join carries its own token (test/realtime/realtime.test.ts)',
  'POST /functions/v1/provider-webhook/{provider}': 'the provider signs it',
  'POST /admin/api/login': 'the admin sign-in',
  'GET /health': 'liveness',
  'GET /ready': 'readiness',
  'GET /metrics': 'METRICS_TOKEN, not a user (test/security/http-server.security.test.ts)',
  'GET /openapi.json': 'this reference',
  'GET /docs': 'this reference',
};

/** Routes whose request body the OpenAPI entry does not describe (raw bytes). */
const RAW_BODIES: Record<string, { body: Buffer; contentType: string }> = {
  'POST /storage/v1/object/{bucket}/{key}': { body: JPEG, contentType: 'image/jpeg' },
  'PUT /storage/v1/object/{bucket}/{key}': { body: JPEG, contentType: 'image/jpeg' },
};

/**
 * Legacy mode's capability: the anon key alone reads a job's status by its unguessable id (the
 * shipped app polls that way; ARCHITECTURE.md § Security model, "a job id").
 */
const LEGACY_ANON_CAPABILITIES: Record<string, string> = {
  'GET /functions/v1/get-video-status': 'the shipped app polls a job by its id alone',
  'POST /functions/v1/get-video-status': 'the shipped app polls a job by its id alone',
};

/** What another user's resource (named without naming the user) answers, where it is not 404. */
const OTHERS_RESOURCE: Record<string, (res: Answer, t: TestApp, victim: Subject) => Promise<string | undefined>> = {
  'POST /storage/v1/object/{bucket}/{key}': async (res) => (res.status === 403 && res.code === 'ERR_4006' ? undefined : 'expected 403 ERR_4006'),
  'PUT /storage/v1/object/{bucket}/{key}': async (res) => (res.status === 403 && res.code === 'ERR_4006' ? undefined : 'expected 403 ERR_4006'),
  // A signed upload link into another user's folder is refused as the upload itself is.
  'POST /storage/v1/object/upload/sign/{bucket}/{key}': async (res) => (res.status === 403 && res.code === 'ERR_4006' ? undefined : 'expected 403 ERR_4006'),
  // Removing others' keys is skipped, as supabase-js expects: the answer lists nothing, the object stays.
  'DELETE /storage/v1/object/{bucket}': async (res, t, victim) => {
    const { rows } = await t.db.query('SELECT 1 FROM storage_objects WHERE key = $1', [victim.key]);
    return res.status === 200 && res.text === '[]' && rows.length === 1 ? undefined : 'expected 200 [] and the object kept';
  },
};

interface Operation {
  security?: Record<string, unknown>[];
  parameters?: { name: string; in: string; required?: boolean; schema?: Schema }[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
}
type Schema = Record<string, any>;
interface Route {
  key: string;
  method: string;
  path: string;
  op: Operation;
}
interface Subject {
  guest: Guest;
  jobId: string;
  key: string;
}
interface Answer {
  status: number;
  code: string | undefined;
  text: string;
}

/** A minimal value the schema accepts: required properties only, examples where given. */
function sample(schema: Schema | undefined, components: Record<string, Schema>): unknown {
  if (!schema) return undefined;
  if (schema.$ref) return sample(components[String(schema.$ref).split('/').pop()!], components);
  if (schema.example !== undefined) return schema.example;
  if (schema.enum) return schema.enum[0];
  for (const k of ['anyOf', 'oneOf', 'allOf'] as const) if (schema[k]) return sample(schema[k].find((s: Schema) => s.type !== 'null') ?? schema[k][0], components);
  const type = Array.isArray(schema.type) ? schema.type.find((x: string) => x !== 'null') : schema.type;
  switch (type) {
    case 'object':
      return Object.fromEntries((schema.required ?? []).map((p: string) => [p, sample(schema.properties?.[p], components)]));
    case 'array':
      return schema.minItems ? [sample(schema.items, components)] : [];
    case 'integer':
    case 'number':
      return schema.minimum ?? 1;
    case 'boolean':
      return false;
    case 'string':
      if (schema.format === 'uuid') return randomUUID();
      return 'x'.repeat(Math.max(schema.minLength ?? 1, 10));
    default:
      return undefined;
  }
}

/** Where the generated request names its user, and which of its fields name a job or an object. */
function shape(route: Route, components: Record<string, Schema>) {
  const query = (route.op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name);
  let bodySchema = route.op.requestBody?.content?.['application/json']?.schema;
  if (bodySchema?.$ref) bodySchema = components[String(bodySchema.$ref).split('/').pop()!];
  const body = Object.keys(bodySchema?.properties ?? {});
  const fields = [...query, ...body];
  return {
    bodySchema,
    namesUser: fields.includes('user_id') || query.includes('id') || body.includes('device_id'),
    namesResource: fields.includes('job_id') || route.path.includes('{key}') || body.includes('prefixes'),
  };
}

/**
 * The request for a route on behalf of `subject`. nameUser=false leaves out every field that names
 * a user (user_id, the rest filter id, a device id), keeping the resource ids.
 */
function request(route: Route, components: Record<string, Schema>, subject: Subject, nameUser: boolean) {
  const { bodySchema } = shape(route, components);
  const id = subject.guest.userId;
  const named = (k: string): unknown => {
    switch (k) {
      case 'user_id':
        return nameUser ? id : undefined;
      case 'device_id':
        return nameUser ? subject.guest.deviceId : randomUUID().toUpperCase();
      case 'job_id':
        return subject.jobId;
      case 'prefixes':
        return [subject.key];
      case 'model_id':
        return SIM;
      case 'prompt':
        return 'an auth matrix request';
      default:
        return undefined;
    }
  };
  const path = route.path.replace('{bucket}', 'thumbnails').replace('{key}', subject.key.split('/').map(encodeURIComponent).join('/'));
  const search = new URLSearchParams();
  const headers: Record<string, string> = {};
  for (const p of route.op.parameters ?? []) {
    if (p.in === 'query') {
      const v = p.name === 'id' ? (nameUser ? `eq.${id}` : undefined) : (named(p.name) ?? (p.required ? sample(p.schema, components) : undefined));
      if (v !== undefined) search.set(p.name, String(v));
    } else if (p.in === 'header' && p.required) {
      headers[p.name] = p.name === 'idempotency-key' ? randomUUID().toUpperCase() : String(sample(p.schema, components));
    }
  }
  let body: Buffer | string | undefined;
  const raw = RAW_BODIES[route.key];
  if (raw) {
    body = raw.body;
    headers['content-type'] = raw.contentType;
  } else if (bodySchema) {
    const json = { ...(sample(bodySchema, components) as Record<string, unknown>) };
    for (const k of Object.keys(bodySchema.properties ?? {})) {
      if (['user_id', 'device_id', 'job_id', 'prefixes', 'model_id', 'prompt'].includes(k)) {
        const v = named(k);
        if (v === undefined) delete json[k];
        else if (k in json || k === 'user_id') json[k] = v;
      }
    }
    body = JSON.stringify(json);
    headers['content-type'] = 'application/json';
  }
  const qs = search.toString();
  return { path: qs ? `${path}?${qs}` : path, headers, body };
}

describe.each(MODES)('user auth on every bearer route: $name', (mode) => {
  const t = useTestApp({ ...mode.env });
  let routes: Route[] = [];
  let components: Record<string, Schema> = {};
  let owner: Subject, attacker: Subject, banned: Subject, revoked: Subject;

  /** A guest with a job (queued: no worker runs here) and an uploaded input. */
  async function subject(): Promise<Subject> {
    const guest = await t().createGuest();
    const job = await t().json(t().generate(guest, { model_id: SIM, prompt: 'a job the auth matrix names' }));
    const key = `${guest.userId}/matrix.jpg`;
    const up = await t().app.request(`/storage/v1/object/thumbnails/${key}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${guest.accessToken}`, 'content-type': 'image/jpeg', ...(t().services.config.anonKey ? { apikey: ANON_KEY } : {}) },
      body: JPEG,
    });
    expect(up.status, await up.text()).toBe(200);
    return { guest, jobId: job.job_id, key };
  }

  async function send(route: Route, token: string | null, who: Subject, nameUser = true): Promise<Answer> {
    const r = request(route, components, who, nameUser);
    const headers: Record<string, string> = { ...r.headers };
    if (token) headers.authorization = `Bearer ${token}`;
    if (t().services.config.anonKey) headers.apikey = ANON_KEY;
    const res = await t().app.request(r.path, { method: route.method, headers, body: r.body }, { incoming: { socket: { remoteAddress: '127.0.0.1', remotePort: 40000, remoteFamily: 'IPv4' } } });
    // A stream (video-events) that passed would never end: its status is the answer.
    if (res.headers.get('content-type')?.startsWith('text/event-stream')) {
      await res.body?.cancel();
      return { status: res.status, code: undefined, text: '(event stream)' };
    }
    const text = await res.text();
    let code: string | undefined;
    try {
      code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
    } catch {
      code = undefined;
    }
    return { status: res.status, code, text };
  }

  /** Runs a check on every route and fails once, listing each route that answered otherwise. */
  async function onEveryRoute(check: (route: Route) => Promise<string | undefined>): Promise<void> {
    const failures: string[] = [];
    for (const route of routes) {
      const failure = await check(route);
      if (failure) failures.push(`${route.key}: ${failure}`);
    }
    expect(failures).toEqual([]);
  }
  const expectAnswer = (res: Answer, status: number, code?: string) =>
    res.status === status && (code === undefined || res.code === code) ? undefined : `expected ${status}${code ? ` ${code}` : ''}, got ${res.status} ${res.text.slice(0, 200)}`;

  beforeAll(async () => {
    const res = await t().get('/openapi.json');
    const doc = (await res.json()) as { paths: Record<string, Record<string, Operation>>; components: { schemas: Record<string, Schema> } };
    components = doc.components.schemas;
    const unsecured: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const key = `${method.toUpperCase()} ${path}`;
        if (!op.security?.length) {
          if (!PUBLIC[key]) unsecured.push(key);
          continue;
        }
        if (!op.security.some((s) => 'bearerAuth' in s)) continue;
        if (EXCLUDED.some((e) => e.match(path))) continue;
        routes.push({ key, method: method.toUpperCase(), path, op });
      }
    }
    expect(unsecured, 'operations without security that are not listed as public').toEqual([]);
    [owner, attacker, banned, revoked] = [await subject(), await subject(), await subject(), await subject()];
    await t().db.query('UPDATE users SET banned_at = now() WHERE id = $1', [banned.guest.userId]);
    await t().db.query("UPDATE auth_sessions SET revoked_at = now(), revoked_reason = 'auth matrix' WHERE user_id = $1", [revoked.guest.userId]);
  });

  it('finds the bearer routes in /openapi.json', () => {
    // The shipped app's routes, at least: an empty or shrunken list would make every case vacuous.
    expect(routes.map((r) => r.key)).toEqual(
      expect.arrayContaining([
        'GET /auth/v1/user',
        'POST /functions/v1/generate-video',
        'GET /functions/v1/get-video-status',
        'PATCH /rest/v1/users',
        'POST /functions/v1/update-credits',
        'POST /functions/v1/delete-account',
        'POST /storage/v1/object/{bucket}/{key}',
      ]),
    );
    expect(routes.length).toBeGreaterThanOrEqual(25);
  });

  it("the route's own user passes auth with the generated request (the control)", async () => {
    await onEveryRoute(async (route) => {
      const me = await subject(); // its own: some routes end the session, the job or the account
      const res = await send(route, me.guest.accessToken, me);
      const refused = res.status === 401 || (res.status === 403 && ['ERR_4005', 'ERR_4006', 'ERR_4014'].includes(res.code ?? ''));
      return refused ? `refused its own user: ${res.status} ${res.text.slice(0, 200)}` : undefined;
    });
  });

  it('no token: 401 ERR_4005', async () => {
    await onEveryRoute(async (route) => expectAnswer(await send(route, null, owner), 401, 'ERR_4005'));
  });

  it('a malformed or forged token: 401', async () => {
    const forged = await signWith('another-secret-'.repeat(4), { sub: owner.guest.userId, session_id: randomUUID() }, 600);
    const tokens = { garbage: 'garbage', 'a changed signature': owner.guest.accessToken.slice(0, -4) + 'AAAA', 'signed with another secret': forged };
    await onEveryRoute(async (route) => {
      for (const [how, token] of Object.entries(tokens)) {
        const failure = expectAnswer(await send(route, token, owner), 401);
        if (failure) return `${how}: ${failure}`;
      }
      return undefined;
    });
  });

  it('an expired token: 401', async () => {
    const { rows } = await t().db.query('SELECT id FROM auth_sessions WHERE user_id = $1', [owner.guest.userId]);
    const expired = await signWith(TEST_JWT_SECRET, { sub: owner.guest.userId, session_id: rows[0].id }, -60);
    await onEveryRoute(async (route) => expectAnswer(await send(route, expired, owner), 401));
  });

  it('a token whose session ended: 401', async () => {
    await onEveryRoute(async (route) => expectAnswer(await send(route, revoked.guest.accessToken, revoked), 401));
  });

  it('a banned user: 403 ERR_4014', async () => {
    await onEveryRoute(async (route) => expectAnswer(await send(route, banned.guest.accessToken, banned), 403, 'ERR_4014'));
  });

  it("another user's id: 403 ERR_4006; another user's job or object: not theirs to read or change", async () => {
    await onEveryRoute(async (route) => {
      const { namesUser, namesResource } = shape(route, components);
      if (namesUser) {
        const failure = expectAnswer(await send(route, attacker.guest.accessToken, owner), 403, 'ERR_4006');
        if (failure) return `naming the other user: ${failure}`;
      }
      if (namesResource) {
        const res = await send(route, attacker.guest.accessToken, owner, false);
        const special = OTHERS_RESOURCE[route.key];
        const failure = special ? await special(res, t(), owner) : expectAnswer(res, 404);
        if (failure) return `naming the other user's job or object: ${failure}${special ? `, got ${res.status} ${res.text.slice(0, 200)}` : ''}`;
      }
      // Neither: the route acts only on its caller (the token is the only name it reads).
      return undefined;
    });
  });

  it(mode.legacy ? 'the anon key naming no user: 401 ERR_4005 (except the job-status capability)' : 'the anon key, with or without a user id: 401', async () => {
    await onEveryRoute(async (route) => {
      if (mode.legacy && LEGACY_ANON_CAPABILITIES[route.key]) {
        return expectAnswer(await send(route, mode.anonKey, owner, false), 200);
      }
      const alone = await send(route, mode.anonKey, owner, false);
      // rest/v1 names its user by a required filter (id=eq.): left out, the request is malformed.
      const filterRequired = route.op.parameters?.some((p) => p.in === 'query' && p.name === 'id' && p.required);
      const failure = filterRequired && mode.legacy ? expectAnswer(alone, 400, 'ERR_4008') : expectAnswer(alone, 401, 'ERR_4005');
      if (failure || mode.legacy) return failure;
      return expectAnswer(await send(route, mode.anonKey, owner, true), 401, 'ERR_4005');
    });
  });

  // Only legacy mode lets the anon key name a user, so only there is this a case at all.
  if (mode.legacy) it('the anon key naming a banned user: 403 ERR_4014; naming nobody known: 404', async () => {
    const unknown: Subject = { guest: { ...owner.guest, userId: randomUUID(), deviceId: randomUUID().toUpperCase() }, jobId: owner.jobId, key: owner.key };
    await onEveryRoute(async (route) => {
      if (!shape(route, components).namesUser) return undefined; // the anon key names nobody here: the case above
      if (LEGACY_ANON_CAPABILITIES[route.key]) return undefined; // it reads by job id, whoever is named
      const failure = expectAnswer(await send(route, mode.anonKey, banned), 403, 'ERR_4014');
      if (failure) return `banned: ${failure}`;
      // merge-guest-user names its guest by device id: an unknown one names nobody (401, above).
      if (route.key === 'POST /functions/v1/merge-guest-user') return undefined;
      const unknownFailure = expectAnswer(await send(route, mode.anonKey, unknown), 404);
      return unknownFailure && `unknown user: ${unknownFailure}`;
    });
  });
});
