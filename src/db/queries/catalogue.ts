import { displayedCost, type PricedModel, type ProviderLimits, type RequiredFields } from '../../catalogue/pricing.js';
import { restQuerySql, type RestQuery, type TableSpec } from '../../http/postgrest.js';
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

export const MODELS_TABLE: TableSpec = {
  selectable: Object.keys(publicModel({ required_fields: {} } as ModelRow)),
  filterable: { id: 'text', category: 'text', is_featured: 'boolean', is_active: 'boolean', is_available: 'boolean' },
  orderable: ['name', 'is_featured', 'created_at', 'category', 'sort_order'],
};

export const THEMES_TABLE: TableSpec = {
  selectable: ['id', 'name', 'description', 'thumbnail_url', 'prompt', 'is_featured', 'is_available', 'default_settings', 'model_id', 'created_at', 'updated_at'],
  filterable: { id: 'uuid', is_featured: 'boolean', is_available: 'boolean', model_id: 'text' },
  orderable: ['name', 'is_featured', 'created_at'],
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

export async function queryModels(db: Queryable, q: RestQuery): Promise<ModelRow[]> {
  const tail = restQuerySql(withDefaultOrder(q, 'sort_order'));
  const { rows } = await db.query<ModelRow>(`SELECT * FROM models WHERE is_available${tail.sql}`, tail.values);
  return rows;
}

export async function queryThemes(db: Queryable, q: RestQuery): Promise<Record<string, unknown>[]> {
  const tail = restQuerySql(withDefaultOrder(q, 'name'));
  const { rows } = await db.query(`SELECT ${q.select.join(', ')} FROM themes WHERE is_available${tail.sql}`, tail.values);
  return rows;
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
