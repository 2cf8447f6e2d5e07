/**
 * The SQL side of rest/v1's PostgREST subset: a query parsed and whitelisted by http/postgrest.ts,
 * turned into WHERE conditions and an ORDER BY / LIMIT / OFFSET tail with every value a parameter.
 */

export type ColumnType = 'text' | 'uuid' | 'boolean' | 'timestamp';

export interface TableSpec {
  selectable: readonly string[];
  filterable: Readonly<Record<string, ColumnType>>;
  orderable: readonly string[];
}

export const COMPARISONS = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;
export type Comparison = keyof typeof COMPARISONS;

export type RestFilter =
  | { column: string; type: ColumnType; negated: boolean; op: Comparison; value: string | boolean }
  | { column: string; type: ColumnType; negated: boolean; op: 'in'; value: (string | boolean)[] }
  | { column: string; type: ColumnType; negated: boolean; op: 'is'; value: 'NULL' | 'TRUE' | 'FALSE' | 'UNKNOWN' };

export interface RestQuery {
  select: string[];
  filters: RestFilter[];
  order: { column: string; descending: boolean; nulls?: 'first' | 'last' }[];
  limit?: number;
  offset?: number;
}

const ARRAY_TYPES: Record<ColumnType, string> = { text: 'text[]', uuid: 'uuid[]', boolean: 'boolean[]', timestamp: 'timestamptz[]' };

/**
 * The WHERE conditions (each prefixed with AND, to follow the caller's own) and the ORDER BY /
 * LIMIT / OFFSET tail of a parsed query; identifiers are whitelisted above, values are parameters.
 * A count uses `where` alone: it ignores order and paging, as PostgREST's does.
 */
export function restQuerySql(q: RestQuery, firstParam = 1): { where: string; tail: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (v: unknown) => {
    values.push(v);
    return `$${firstParam + values.length - 1}`;
  };
  const conditions = q.filters.map((f) => {
    let condition: string;
    if (f.op === 'in') condition = `${f.column} = ANY(${param(f.value)}::${ARRAY_TYPES[f.type]})`;
    else if (f.op === 'is') condition = `${f.column} IS ${f.value}`;
    else condition = `${f.column} ${COMPARISONS[f.op]} ${param(f.value)}`;
    return f.negated ? `NOT (${condition})` : condition;
  });
  const where = conditions.map((c) => ` AND ${c}`).join('');
  let tail = '';
  if (q.order.length) {
    tail += ' ORDER BY ' + q.order
      .map((o) => `${o.column} ${o.descending ? 'DESC' : 'ASC'}${o.nulls ? ` NULLS ${o.nulls.toUpperCase()}` : ''}`)
      .join(', ');
  }
  if (q.limit !== undefined) tail += ` LIMIT ${q.limit}`;
  if (q.offset !== undefined) tail += ` OFFSET ${q.offset}`;
  return { where, tail, values };
}
