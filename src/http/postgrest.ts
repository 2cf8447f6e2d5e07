import type { OpenAPIHono } from '@hono/zod-openapi';
import type { Context } from 'hono';
import { ApiError, invalid } from './api-error.js';
import type { AppEnv } from './context.js';
import { COMPARISONS, PATTERNS, type ColumnType, type Comparison, type RestFilter, type RestQuery, type TableSpec } from '../db/rest-query.js';

export type { ColumnType, RestFilter, RestQuery, TableSpec };

/**
 * The read-only subset of PostgREST that rest/v1 serves, as the shipped app (docs/reference/ios-app.md §2.4–2.5,
 * §2.9) and supabase-js (postgrest-js) send it:
 *   select=col,col | col=[not.]op.value with op eq, neq, gt, gte, lt, lte, like, ilike (* or % as the
 *   wildcard), in.(a,"b,c"), is.null|true|false | [not.]or=(…) / [not.]and=(…) over the same filters,
 *   nested | order=col.asc|desc[.nullsfirst|.nullslast],… | limit | offset | Range: a-b (Range-Unit: items);
 *   Accept: application/vnd.pgrst.object+json (one object, else 406 PGRST116);
 *   Prefer: count=exact|planned|estimated (all exact: the tables are small) → Content-Range;
 *   Prefer: return=minimal|representation on writes. HEAD is GET without the body.
 * Every column must be whitelisted by the caller; nothing reaches SQL unchecked.
 */

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const ISO_DATE = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-](\d{2})(?::?(\d{2}))?)?)?$/i;
/**
 * The instants a filter may name: those toISOString writes as PostgreSQL reads them. Year 0 does
 * not exist for PostgreSQL, and past 9999 JavaScript writes +010000-…, which it refuses: both were
 * 500s (`created_at=gt.0000-01-01`, `updated_at=lt.9999-12-31T23:59-14:00`, a year 10000 in UTC).
 */
const FIRST_INSTANT = Date.parse('0001-01-01T00:00:00Z');
const LAST_INSTANT = Date.parse('9999-12-31T23:59:59.999Z');
/** UTC offsets in use run from -12:00 to +14:00; JavaScript would take any up to ±23:59. */
const MAX_OFFSET_MINUTES = 14 * 60;
// apikey: the gateway's key may come as a query parameter (src/http/middleware.ts), it filters nothing.
const RESERVED = new Set(['select', 'order', 'limit', 'offset', 'apikey']);
const OPERATORS = 'eq, neq, gt, gte, lt, lte, like, ilike, in, is (optionally after not.), or=(…), and=(…)';
/** A logic tree's size: enough for any real screen, small enough that a query stays cheap to plan. */
const MAX_TREE_FILTERS = 50;
const MAX_TREE_DEPTH = 4;

function parseInteger(name: string, raw: string, max: number): number {
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > max) throw invalid(`${name} must be an integer between 0 and ${max}`, name);
  return Number(raw);
}

/** One value, checked against its column's type. */
function typedValue(column: string, type: ColumnType, value: string): string | boolean | number {
  if (type === 'integer') {
    if (!/^-?\d{1,15}$/.test(value)) throw invalid(`${column} must be an integer`, column);
    return Number(value);
  }
  if (type === 'boolean') {
    if (value !== 'true' && value !== 'false') throw invalid(`${column} must be true or false`, column);
    return value === 'true';
  }
  if (type === 'uuid' && !UUID.test(value)) throw invalid(`${column} must be a UUID`, column);
  if (type === 'timestamp') {
    // Normalised here: PostgreSQL would refuse some dates JavaScript accepts (2020-02-31), a 500.
    const m = ISO_DATE.exec(value);
    const ms = m ? Date.parse(value) : NaN;
    const offsetMinutes = Number(m?.[1] ?? 0) * 60 + Number(m?.[2] ?? 0);
    if (!Number.isFinite(ms) || ms < FIRST_INSTANT || ms > LAST_INSTANT || offsetMinutes > MAX_OFFSET_MINUTES) {
      throw invalid(`${column} must be an ISO 8601 date from 0001-01-01 to 9999-12-31 UTC, with an offset within ±14:00`, column);
    }
    return new Date(ms).toISOString();
  }
  return value;
}

/** PostgREST's list: (a,b,"c,d","e\"f"): double quotes keep commas and parentheses, backslash escapes. */
function parseList(column: string, raw: string): string[] {
  if (!raw.startsWith('(') || !raw.endsWith(')')) throw invalid(`${column}=in. takes a list: in.(a,b)`, column);
  const body = raw.slice(1, -1);
  const values: string[] = [];
  let i = 0;
  while (i <= body.length && body.length > 0) {
    let value = '';
    if (body[i] === '"') {
      i++;
      while (i < body.length && body[i] !== '"') {
        if (body[i] === '\\' && i + 1 < body.length) i++;
        value += body[i++];
      }
      if (body[i] !== '"') throw invalid(`${column}: unterminated quote in the list`, column);
      i++;
      if (i < body.length && body[i] !== ',') throw invalid(`${column}: expected a comma after a quoted value`, column);
    } else {
      const end = body.indexOf(',', i);
      value = body.slice(i, end === -1 ? body.length : end);
      i = end === -1 ? body.length : end;
    }
    values.push(value);
    i++; // the comma
  }
  if (values.length > 100) throw invalid(`${column}: at most 100 values in a list`, column);
  return values;
}

function parseFilter(column: string, type: ColumnType, raw: string): RestFilter {
  const negated = raw.startsWith('not.');
  const rest = negated ? raw.slice(4) : raw;
  const dot = rest.indexOf('.');
  const op = dot === -1 ? '' : rest.slice(0, dot);
  const operand = rest.slice(dot + 1);
  if (Object.hasOwn(COMPARISONS, op)) return { column, type, negated, op: op as Comparison, value: typedValue(column, type, operand) };
  if (Object.hasOwn(PATTERNS, op)) {
    if (type !== 'text') throw invalid(`${column}=${op}. works on text columns only`, column);
    // PostgREST's * is %, the URL-friendly wildcard supabase-js documents; the pattern is a parameter.
    return { column, type, negated, op: op as keyof typeof PATTERNS, value: operand.replaceAll('*', '%') };
  }
  if (op === 'in') return { column, type, negated, op, value: parseList(column, operand).map((v) => typedValue(column, type, v)) };
  if (op === 'is') {
    const value = operand.toUpperCase();
    // IS TRUE|FALSE|UNKNOWN exist for booleans only (on text, PostgreSQL errors: a 500).
    const allowed = type === 'boolean' ? ['NULL', 'TRUE', 'FALSE', 'UNKNOWN'] : ['NULL'];
    if (!allowed.includes(value)) throw invalid(`${column}=is. takes ${allowed.join(', ').toLowerCase()}`, column);
    return { column, type, negated, op, value: value as 'NULL' | 'TRUE' | 'FALSE' | 'UNKNOWN' };
  }
  throw invalid(`unsupported filter on "${column}": use one of ${OPERATORS}`, column);
}

/** Splits a logic tree's body at its top-level commas: parentheses nest, double quotes (with \\ escapes) keep commas. */
function splitTopLevel(body: string, field: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let quoted = false;
  let start = 0;
  for (let i = 0; i < body.length; i++) {
    const ch = body[i];
    if (quoted) {
      if (ch === '\\') i++;
      else if (ch === '"') quoted = false;
    } else if (ch === '"') quoted = true;
    else if (ch === '(') depth++;
    else if (ch === ')') depth--;
    else if (ch === ',' && depth === 0) {
      parts.push(body.slice(start, i));
      start = i + 1;
    }
    if (depth < 0) throw invalid('unbalanced parentheses', field);
  }
  if (quoted || depth !== 0) throw invalid('unbalanced parentheses or quotes', field);
  parts.push(body.slice(start));
  return parts;
}

/** A quoted operand of a logic tree ("a,b") without its quotes and escapes; a bare one as it is. */
const unquoted = (raw: string) => (raw.length >= 2 && raw.startsWith('"') && raw.endsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw);

/**
 * or=(a.eq.1,b.ilike.*x*,and(c.gt.2,d.is.null)) and its and=/not. forms: every leaf a filter on a
 * whitelisted column exactly as at the top level, the tree bounded in size and depth.
 */
function parseLogicTree(op: 'or' | 'and', negated: boolean, raw: string, spec: TableSpec, budget: { left: number }, depth = 1): RestFilter {
  const field = op;
  if (depth > MAX_TREE_DEPTH) throw invalid(`${op}=: at most ${MAX_TREE_DEPTH} nested levels`, field);
  if (!raw.startsWith('(') || !raw.endsWith(')') || raw.length < 3) throw invalid(`${op}= takes a list: ${op}=(col.op.value,…)`, field);
  const children = splitTopLevel(raw.slice(1, -1), field).map((item): RestFilter => {
    if (--budget.left < 0) throw invalid(`at most ${MAX_TREE_FILTERS} filters in or=/and=`, field);
    const nested = /^(not\.)?(or|and)(\(.*\))$/s.exec(item);
    if (nested) return parseLogicTree(nested[2] as 'or' | 'and', nested[1] !== undefined, nested[3]!, spec, budget, depth + 1);
    const dot = item.indexOf('.');
    const column = dot === -1 ? item : item.slice(0, dot);
    const type = Object.hasOwn(spec.filterable, column) ? spec.filterable[column] : undefined;
    if (!type) throw invalid(`cannot filter on "${column}"`, field);
    const filter = item.slice(dot + 1);
    // in.(…) keeps its own list syntax (quotes included); any other operand may be quoted as a whole.
    const opEnd = filter.replace(/^not\./, '').indexOf('.');
    const prefixLength = (filter.startsWith('not.') ? 4 : 0) + opEnd + 1;
    const isList = /^(not\.)?in\./.test(filter);
    return parseFilter(column, type, isList || opEnd === -1 ? filter : filter.slice(0, prefixLength) + unquoted(filter.slice(prefixLength)));
  });
  return { op, negated, children };
}

export function parseRestQuery(params: URLSearchParams, spec: TableSpec): RestQuery {
  const q: RestQuery = { select: [...spec.selectable], filters: [], order: [] };
  for (const [key, raw] of params) {
    if (key === 'select') {
      const cols = raw.split(',').map((s) => s.trim()).filter(Boolean);
      if (cols.length === 0) throw invalid('select must name at least one column', 'select');
      if (!(cols.length === 1 && cols[0] === '*')) {
        for (const col of cols) if (!spec.selectable.includes(col)) throw invalid(`unknown column "${col}"`, 'select');
        q.select = cols;
      }
    } else if (key === 'order') {
      for (const term of raw.split(',')) {
        const [column = '', ...mods] = term.trim().split('.');
        if (!spec.orderable.includes(column)) throw invalid(`cannot order by "${column}"`, 'order');
        let descending = false;
        let nulls: 'first' | 'last' | undefined;
        for (const m of mods) {
          if (m === 'asc') descending = false;
          else if (m === 'desc') descending = true;
          else if (m === 'nullsfirst') nulls = 'first';
          else if (m === 'nullslast') nulls = 'last';
          else throw invalid(`unknown order modifier "${m}"`, 'order');
        }
        q.order.push({ column, descending, nulls });
      }
    } else if (key === 'limit') {
      q.limit = parseInteger('limit', raw, 1000);
    } else if (key === 'offset') {
      q.offset = parseInteger('offset', raw, 100_000);
    } else if (/^(not\.)?(or|and)$/.test(key)) {
      q.filters.push(parseLogicTree(key.endsWith('or') ? 'or' : 'and', key.startsWith('not.'), raw, spec, { left: MAX_TREE_FILTERS }));
    } else if (!RESERVED.has(key)) {
      // Own keys only: `constructor`, `__proto__` or `toString` would find Object.prototype's
      // members, pass as a "column", and reach SQL as an unknown column (a 500).
      const type = Object.hasOwn(spec.filterable, key) ? spec.filterable[key] : undefined;
      if (!type) throw invalid(`cannot filter on "${key}"`, key);
      q.filters.push(parseFilter(key, type, raw));
    }
  }
  return q;
}

/**
 * PostgREST's Range request header (`Range: 0-9`, `Range-Unit: items`, what postgrest-js sent before
 * it used limit/offset): rows first…last, intersected with limit/offset when both are given, as
 * PostgREST does. Another unit is ignored, as PostgREST ignores it.
 */
export function applyRangeHeader(q: RestQuery, range: string | undefined, unit: string | undefined): RestQuery {
  if (range === undefined || (unit !== undefined && unit.trim().toLowerCase() !== 'items')) return q;
  const m = /^\s*(\d{1,9})-(\d{1,9})?\s*$/.exec(range);
  if (!m) throw invalid('Range must be first-last or first- (Range-Unit: items)', 'range');
  const first = Number(m[1]);
  const last = m[2] === undefined ? Infinity : Number(m[2]);
  if (last < first) throw invalid('Range: last must not be before first', 'range');
  const queryFirst = q.offset ?? 0;
  const queryLast = q.limit === undefined ? Infinity : queryFirst + q.limit - 1;
  const start = Math.max(first, queryFirst);
  const end = Math.min(last, queryLast);
  return { ...q, offset: start, limit: end === Infinity ? q.limit : Math.max(0, end - start + 1) };
}

/** What rest/v1 answers in: JSON, or one object (.single()); anything else would be JSON mislabelled. */
const SERVED_ACCEPT = /^\s*(\*\/\*|application\/\*|application\/json|application\/vnd\.pgrst\.object(\+json)?)\s*(;\s*(q|charset)=[^,;]*)*\s*$/i;

/**
 * PostgREST features a client may ask for by header that this subset does not have: another media
 * type (csv(), geojson(), explain(), stripNulls()), another schema (schema()), a rolled-back
 * transaction (rollback()). Refused (400 ERR_4008 naming the header) rather than ignored: ignoring
 * rollback() would commit a write the client meant to throw away.
 */
function refuseUnservedHeaders(c: Context<AppEnv>) {
  const accept = c.req.header('accept');
  if (accept && !accept.split(',').every((part) => SERVED_ACCEPT.test(part))) {
    throw invalid('Accept: rest/v1 answers application/json or application/vnd.pgrst.object+json only', 'accept');
  }
  for (const header of ['accept-profile', 'content-profile']) {
    const profile = c.req.header(header);
    if (profile !== undefined && profile !== 'public') throw invalid(`${header}: there is one schema, public`, header);
  }
  if (/(^|,)\s*tx\s*=\s*rollback/i.test(c.req.header('prefer') ?? '')) throw invalid('Prefer: tx=rollback is not served', 'prefer');
}

/** The request's query (and Range header) parsed against a table's whitelist. */
export function restQueryOf(c: Context<AppEnv>, spec: TableSpec): RestQuery {
  refuseUnservedHeaders(c);
  return applyRangeHeader(parseRestQuery(new URL(c.req.url).searchParams, spec), c.req.header('range'), c.req.header('range-unit'));
}

/**
 * A served rest/v1 path answers any other method 405 with PostgREST's error fields (code PGRST117,
 * its "unsupported HTTP method") and Allow, instead of the 404 of an unknown path: the table is
 * there, the verb is not. Registered after the path's own routes, so those answer first.
 */
export function refuseOtherMethods(app: OpenAPIHono<AppEnv>, path: string, allowed: readonly string[]) {
  app.all(path, (c) => {
    throw new ApiError('ERR_4017', { reason: `${c.req.method} is not served on ${path}: ${allowed.join(', ')} only` }, { Allow: allowed.join(', ') });
  });
}

export interface RestPreferences {
  /** count=exact, planned or estimated: all answered exactly (our tables are small). */
  count: boolean;
  /** Writes: PostgREST's default is minimal (204, no body). */
  return: 'minimal' | 'representation' | 'headers-only';
}

/** Prefer (RFC 7240), as postgrest-js sends it: several headers or comma-separated tokens. */
export function restPreferences(c: Context<AppEnv>): RestPreferences {
  const tokens = (c.req.header('prefer') ?? '').split(',').map((t) => t.trim().toLowerCase());
  const ret = tokens.find((t) => t.startsWith('return='))?.slice(7);
  return {
    count: tokens.some((t) => /^count=(exact|planned|estimated)$/.test(t)),
    return: ret === 'representation' || ret === 'headers-only' ? ret : 'minimal',
  };
}

const SINGULAR = 'application/vnd.pgrst.object+json';

/** .single(): Accept: application/vnd.pgrst.object+json (postgrest-js may add ;nulls=stripped). */
export const wantsSingleObject = (c: Context<AppEnv>) => (c.req.header('accept') ?? '').toLowerCase().includes(SINGULAR);

/** PostgREST's codes for ours, where a client branches on them (supabase-js checks PGRST116). */
export const POSTGREST_CODES: Partial<Record<string, string>> = { ERR_4032: 'PGRST116', ERR_4017: 'PGRST117' };

/** The PostgREST error fields {code, message, details, hint} for one of our errors. */
export function postgrestErrorFields(apiError: ApiError, message: string) {
  const d = apiError.details;
  const details =
    apiError.code === 'ERR_4032' ? `The result contains ${String(d?.rows)} rows` : typeof d?.reason === 'string' ? d.reason : d ? JSON.stringify(d) : null;
  return { code: POSTGREST_CODES[apiError.code] ?? apiError.code, message, details, hint: null };
}

/**
 * The response to a read or a write with a representation: an array, or with .single() exactly
 * one object (zero or several rows: 406 PGRST116, nothing else sent); Content-Range always, its
 * total when a count was asked for (206 when the rows are only part of it, as PostgREST answers).
 */
export function restRowsResponse<Row extends Record<string, unknown>>(c: Context<AppEnv>, rows: Row[], opts: { offset?: number; total?: number } = {}) {
  const single = wantsSingleObject(c);
  const [first] = rows;
  if (single && rows.length !== 1) throw new ApiError('ERR_4032', { rows: rows.length });
  const offset = opts.offset ?? 0;
  const range = rows.length ? `${offset}-${offset + rows.length - 1}` : '*';
  const headers: Record<string, string> = {
    'Content-Type': `${single ? SINGULAR : 'application/json'}; charset=utf-8`,
    'Content-Range': `${range}/${opts.total ?? '*'}`,
  };
  if (opts.total !== undefined) headers['Preference-Applied'] = 'count=exact';
  const partial = opts.total !== undefined && rows.length < opts.total;
  // c.json serialises as JSON.stringify does and keeps our Content-Type; typed, so routes' declared rows are checked.
  return c.json(single && first ? first : rows, partial ? 206 : 200, headers);
}
