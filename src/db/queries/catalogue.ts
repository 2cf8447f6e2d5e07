import { displayedCost, type PricedModel, type ProviderLimits, type RequiredFields } from '../../catalogue/pricing.js';
import { restQuerySql, type RestQuery, type TableSpec } from '../rest-query.js';
import type { Queryable } from '../pool.js';

export interface ModelRow extends PricedModel {
  id: string;
  name: string;
  category: string;
  description: string | null;
  provider: string;
  provider_model_id: string;
  required_fields: RequiredFields;
  provider_limits: ProviderLimits;
  has_audio: boolean;
  is_active: boolean;
  is_featured: boolean;
  is_available: boolean;
  unavailable_reason: string | null;
  thumbnail_url: string | null;
  deadline_seconds: number;
  sort_order: number;
  created_at: string;
  updated_at: string;
}

/** The public face of a model: provider routing stays private; cost_per_generation is always a number. */
export function publicModel(m: ModelRow) {
  return {
    id: m.id,
    name: m.name,
    category: m.category,
    description: m.description,
    thumbnail_url: m.thumbnail_url,
    is_featured: m.is_featured,
    is_active: m.is_active,
    is_available: m.is_available,
    pricing_type: m.pricing_type,
    cost_per_generation: displayedCost(m),
    credits_per_second: m.credits_per_second,
    has_audio: m.has_audio,
    required_fields: m.required_fields,
    created_at: m.created_at,
    updated_at: m.updated_at,
  };
}
export type PublicModel = ReturnType<typeof publicModel>;

/**
 * cost_per_generation as the API shows it (pricing.ts displayedCost: per_video's flat cost, or
 * per_second's rate times the default duration, 4 s without one), so rest/v1 can filter and order by
 * the number the client sees. test/http/supabase-surface.test.ts checks it against displayedCost
 * for every model.
 */
const DISPLAYED_COST_SQL = `(CASE WHEN pricing_type = 'per_video' THEN cost_per_generation::numeric
  ELSE credits_per_second * CASE WHEN jsonb_typeof(required_fields #> '{settings,duration,default}') = 'number'
    THEN (required_fields #>> '{settings,duration,default}')::numeric ELSE 4 END END)`;

const MODEL_FILTERS = {
  id: 'text',
  name: 'text',
  category: 'text',
  description: 'text',
  thumbnail_url: 'text',
  pricing_type: 'text',
  cost_per_generation: 'integer',
  credits_per_second: 'integer',
  is_featured: 'boolean',
  is_active: 'boolean',
  is_available: 'boolean',
  has_audio: 'boolean',
  created_at: 'timestamp',
  updated_at: 'timestamp',
} as const;

/** The catalogue tables are small (an admin adds a model a month): filters and orders run over all their rows, no index needed. */
export const MODELS_TABLE: TableSpec = {
  selectable: Object.keys(publicModel({ required_fields: {} } as ModelRow)),
  filterable: MODEL_FILTERS,
  orderable: [...Object.keys(MODEL_FILTERS), 'sort_order'],
  sql: { cost_per_generation: DISPLAYED_COST_SQL },
};

const THEME_FILTERS = {
  id: 'uuid',
  name: 'text',
  description: 'text',
  thumbnail_url: 'text',
  prompt: 'text',
  is_featured: 'boolean',
  is_available: 'boolean',
  model_id: 'text',
  created_at: 'timestamp',
  updated_at: 'timestamp',
} as const;

export const THEMES_TABLE: TableSpec = {
  selectable: ['id', 'name', 'description', 'thumbnail_url', 'prompt', 'is_featured', 'is_available', 'default_settings', 'model_id', 'created_at', 'updated_at'],
  filterable: THEME_FILTERS,
  orderable: Object.keys(THEME_FILTERS),
};

/** Available models in catalogue order (unavailable ones are never listed to clients). */
export async function listAvailableModels(db: Queryable): Promise<ModelRow[]> {
  const { rows } = await db.query<ModelRow>(
    'SELECT * FROM models WHERE is_available ORDER BY is_featured DESC, sort_order, name',
  );
  return rows;
}

// PostgREST leaves unordered results in storage order; we give a stable catalogue order instead.
const withDefaultOrder = (q: RestQuery, column: string): RestQuery =>
  q.order.length ? q : { ...q, order: [{ column, descending: false }] };

/** The rows a rest/v1 query asks for, and with count their total (filters only, as PostgREST counts). */
export interface RestResult<T> {
  rows: T[];
  total?: number;
}

async function restQuery<T>(db: Queryable, from: string, spec: TableSpec, columns: string, q: RestQuery, count: boolean): Promise<RestResult<T>> {
  const { where, tail, values } = restQuerySql(q, spec);
  const [{ rows }, total] = await Promise.all([
    db.query<T & Record<string, unknown>>(`SELECT ${columns} FROM ${from} WHERE is_available${where}${tail}`, values),
    count
      ? db.query<{ n: number }>(`SELECT count(*)::int AS n FROM ${from} WHERE is_available${where}`, values).then((r) => r.rows[0]!.n)
      : undefined,
  ]);
  return { rows, total };
}

export function queryModels(db: Queryable, q: RestQuery, count = false): Promise<RestResult<ModelRow>> {
  return restQuery<ModelRow>(db, 'models', MODELS_TABLE, '*', withDefaultOrder(q, 'sort_order'), count);
}

export function queryThemes(db: Queryable, q: RestQuery, count = false): Promise<RestResult<Record<string, unknown>>> {
  return restQuery(db, 'themes', THEMES_TABLE, q.select.join(', '), withDefaultOrder(q, 'name'), count);
}

export async function findModel(db: Queryable, id: string): Promise<ModelRow | undefined> {
  const { rows } = await db.query<ModelRow>('SELECT * FROM models WHERE id = $1', [id]);
  return rows[0];
}

export async function findTheme(db: Queryable, id: string) {
  const { rows } = await db.query<{ id: string; model_id: string; default_settings: Record<string, unknown> | null; is_available: boolean }>(
    'SELECT id, model_id, default_settings, is_available FROM themes WHERE id = $1',
    [id],
  );
  return rows[0];
}
