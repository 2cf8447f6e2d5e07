/**
 * The SQL side of rest/v1's PostgREST subset: a query parsed and whitelisted by http/postgrest.ts,
 * turned into WHERE conditions and an ORDER BY / LIMIT / OFFSET tail with every value a parameter.
 * Identifiers come only from a table's spec (never from the request); values only as $n.
 */

export type ColumnType = 'text' | 'uuid' | 'boolean' | 'timestamp' | 'integer';

export interface TableSpec {
  selectable: readonly string[];
  filterable: Readonly<Record<string, ColumnType>>;
  orderable: readonly string[];
  /**
   * The SQL a column name stands for, where it is not the bare column: a joined table's column
   * (`j.created_at`) or a value computed as the API shows it (a model's displayed cost).
   */
  sql?: Readonly<Record<string, string>>;
}

export const COMPARISONS = { eq: '=', neq: '<>', gt: '>', gte: '>=', lt: '<', lte: '<=' } as const;
export type Comparison = keyof typeof COMPARISONS;
export const PATTERNS = { like: 'LIKE', ilike: 'ILIKE' } as const;
export type Pattern = keyof typeof PATTERNS;

export type RestFilter =
  | { column: string; type: ColumnType; negated: boolean; op: Comparison; value: string | boolean | number }
  | { column: string; type: ColumnType; negated: boolean; op: Pattern; value: string }
  | { column: string; type: ColumnType; negated: boolean; op: 'in'; value: (string | boolean | number)[] }
  | { column: string; type: ColumnType; negated: boolean; op: 'is'; value: 'NULL' | 'TRUE' | 'FALSE' | 'UNKNOWN' }
  /** or=(…) / and=(…), nested as PostgREST's logic trees. */
  | { negated: boolean; op: 'or' | 'and'; children: RestFilter[] };

export interface RestQuery {
  select: string[];
  filters: RestFilter[];
  order: { column: string; descending: boolean; nulls?: 'first' | 'last' }[];
  limit?: number;
  offset?: number;
}

const ARRAY_TYPES: Record<ColumnType, string> = { text: 'text[]', uuid: 'uuid[]', boolean: 'boolean[]', timestamp: 'timestamptz[]', integer: 'bigint[]' };

/**
 * The WHERE conditions (each prefixed with AND, to follow the caller's own) and the ORDER BY /
 * LIMIT / OFFSET tail of a parsed query; identifiers are whitelisted above, values are parameters.
 * A count uses `where` alone: it ignores order and paging, as PostgREST's does.
 */
export function restQuerySql(q: RestQuery, spec: Pick<TableSpec, 'sql'> = {}, firstParam = 1): { where: string; tail: string; values: unknown[] } {
  const values: unknown[] = [];
  const param = (v: unknown) => {
    values.push(v);
    return `$${firstParam + values.length - 1}`;
  };
  const column = (name: string) => (spec.sql && Object.hasOwn(spec.sql, name) ? spec.sql[name] : name);
  const condition = (f: RestFilter): string => {
    const sql = (() => {
      switch (f.op) {
        case 'or':
        case 'and':
          return `(${f.children.map(condition).join(f.op === 'or' ? ' OR ' : ' AND ')})`;
        case 'in':
          return `${column(f.column)} = ANY(${param(f.value)}::${ARRAY_TYPES[f.type]})`;
        case 'is':
          return `${column(f.column)} IS ${f.value}`;
        case 'like':
        case 'ilike':
          return `${column(f.column)} ${PATTERNS[f.op]} ${param(f.value)}`;
        default:
          return `${column(f.column)} ${COMPARISONS[f.op]} ${param(f.value)}`;
      }
    })();
    return f.negated ? `NOT (${sql})` : sql;
  };
  const where = q.filters.map((f) => ` AND ${condition(f)}`).join('');
  let tail = '';
  if (q.order.length) {
    tail += ' ORDER BY ' + q.order
      .map((o) => `${column(o.column)} ${o.descending ? 'DESC' : 'ASC'}${o.nulls ? ` NULLS ${o.nulls.toUpperCase()}` : ''}`)
      .join(', ');
  }
  if (q.limit !== undefined) tail += ` LIMIT ${q.limit}`;
  if (q.offset !== undefined) tail += ` OFFSET ${q.offset}`;
  return { where, tail, values };
}
