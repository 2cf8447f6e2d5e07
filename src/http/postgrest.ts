import { invalid } from './api-error.js';

/**
 * The small, read-only subset of PostgREST query syntax the shipped app sends to rest/v1
 * (ios-app.md §2.4–2.5): select=col,col | col=eq.value | order=col.asc|desc[.nullsfirst|.nullslast],…
 * | limit | offset. Every column must be whitelisted by the caller; nothing reaches SQL unchecked.
 */

export type ColumnType = 'text' | 'uuid' | 'boolean';

export interface TableSpec {
  selectable: readonly string[];
  filterable: Readonly<Record<string, ColumnType>>;
  orderable: readonly string[];
}

export interface RestQuery {
  select: string[];
  filters: { column: string; value: string | boolean }[];
  order: { column: string; descending: boolean; nulls?: 'first' | 'last' }[];
  limit?: number;
  offset?: number;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const RESERVED = new Set(['select', 'order', 'limit', 'offset']);

function parseInteger(name: string, raw: string, max: number): number {
  if (!/^\d{1,6}$/.test(raw) || Number(raw) > max) throw invalid(`${name} must be an integer between 0 and ${max}`, name);
  return Number(raw);
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
      if (!raw.startsWith('eq.')) throw invalid(`only eq filters are supported (${key}=eq.value)`, key);
      const value = raw.slice(3);
      if (type === 'boolean') {
        if (value !== 'true' && value !== 'false') throw invalid(`${key} must be true or false`, key);
        q.filters.push({ column: key, value: value === 'true' });
      } else {
        if (type === 'uuid' && !UUID.test(value)) throw invalid(`${key} must be a UUID`, key);
        q.filters.push({ column: key, value });
      }
    }
  }
  return q;
}

/** Builds the WHERE / ORDER BY / LIMIT tail for a parsed query; identifiers are whitelisted above. */
export function restQuerySql(q: RestQuery, firstParam = 1): { sql: string; values: unknown[] } {
  const values: unknown[] = [];
  const where = q.filters.map((f) => {
    values.push(f.value);
    return `${f.column} = $${firstParam + values.length - 1}`;
  });
  let sql = where.length ? ` AND ${where.join(' AND ')}` : '';
  if (q.order.length) {
    sql += ' ORDER BY ' + q.order
      .map((o) => `${o.column} ${o.descending ? 'DESC' : 'ASC'}${o.nulls ? ` NULLS ${o.nulls.toUpperCase()}` : ''}`)
      .join(', ');
  }
  if (q.limit !== undefined) sql += ` LIMIT ${q.limit}`;
  if (q.offset !== undefined) sql += ` OFFSET ${q.offset}`;
  return { sql, values };
}
