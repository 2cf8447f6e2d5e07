import type { Queryable } from '../../db/pool.js';
import type { ModelRow } from '../../db/queries/catalogue.js';

/** The catalogue as the support team edits it: every model, available or not. */

export async function allModels(db: Queryable): Promise<ModelRow[]> {
  const { rows } = await db.query<ModelRow>('SELECT * FROM models ORDER BY sort_order, name');
  return rows;
}

export interface ModelFields {
  is_active?: boolean;
  is_available?: boolean;
  is_featured?: boolean;
  cost_per_generation?: number;
  credits_per_second?: number;
  sort_order?: number;
}

/** Sets the fields given, keeps the others; the row as it now is. (The models trigger NOTIFYs the change, migration 0016.) */
export async function setModelFields(db: Queryable, modelId: string, f: ModelFields): Promise<ModelRow> {
  const { rows } = await db.query<ModelRow>(
    `UPDATE models SET is_active = coalesce($2, is_active), is_available = coalesce($3, is_available), is_featured = coalesce($4, is_featured),
            cost_per_generation = coalesce($5, cost_per_generation), credits_per_second = coalesce($6, credits_per_second), sort_order = coalesce($7, sort_order)
      WHERE id = $1 RETURNING *`,
    [modelId, f.is_active ?? null, f.is_available ?? null, f.is_featured ?? null, f.cost_per_generation ?? null, f.credits_per_second ?? null, f.sort_order ?? null],
  );
  return rows[0]!;
}

/** Whether the app has anything to show: the shipped app's active model, and get-models' list. */
export async function catalogueEmptiness(db: Queryable): Promise<{ active: boolean; available: boolean }> {
  const { rows } = await db.query<{ active: boolean; available: boolean }>(
    'SELECT NOT bool_or(is_active AND is_available) AS active, NOT bool_or(is_available) AS available FROM models',
  );
  return { active: rows[0]?.active ?? true, available: rows[0]?.available ?? true };
}
