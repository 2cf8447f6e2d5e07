import type { Context } from 'hono';
import { ApiError, invalid } from './api-error.js';
import type { AppEnv } from './context.js';
import { COMPARISONS, type ColumnType, type Comparison, type RestFilter, type RestQuery, type TableSpec } from '../db/rest-query.js';

export type { ColumnType, RestFilter, RestQuery, TableSpec };

/**
 * The read-only subset of PostgREST that rest/v1 serves, as the shipped app (docs/reference/ios-app.md §2.4–2.5,
 * §2.9) and supabase-js (postgrest-js) send it:
 *   select=col,col | col=[not.]op.value with op eq, neq, gt, gte, lt, lte, in.(a,"b,c"), is.null|true|false
 *   | order=col.asc|desc[.nullsfirst|.nullslast],… | limit | offset;
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
const OPERATORS = 'eq, neq, gt, gte, lt, lte, in, is (optionally after not.)';

function parseInteger(name: string, raw: string, max: number): number {
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > max) throw invalid(`${name} must be an integer between 0 and ${max}`, name);
  return Number(raw);
}

/** One value, checked against its column's type. */
function typedValue(column: string, type: ColumnType, value: string): string | boolean {
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
export const POSTGREST_CODES: Partial<Record<string, string>> = { ERR_4032: 'PGRST116' };

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
