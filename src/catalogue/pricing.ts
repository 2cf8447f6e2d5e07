/**
 * The one place a generation's price is computed. The number it returns is what is held, stored
 * on the job and reported as credits_used (the old backend charged, reported and refunded three
 * different numbers).
 */

export interface PricedModel {
  pricing_type: 'per_video' | 'per_second';
  cost_per_generation: number | null;
  credits_per_second: number | null;
  required_fields: RequiredFields;
}

export interface FieldConfig<T> {
  required?: boolean;
  default?: T;
  options?: T[];
}

export interface RequiredFields {
  requires_prompt?: boolean;
  requires_image?: boolean;
  requires_settings?: boolean;
  settings?: {
    resolution?: FieldConfig<string>;
    aspect_ratio?: FieldConfig<string>;
    duration?: FieldConfig<number>;
  };
}

export function defaultDuration(model: PricedModel): number {
  return model.required_fields.settings?.duration?.default ?? 4;
}

export function priceFor(model: PricedModel, durationSeconds: number): number {
  if (model.pricing_type === 'per_video') return model.cost_per_generation!;
  return model.credits_per_second! * durationSeconds;
}

/** What the app shows as cost_per_generation: the price at the model's default settings. */
export function displayedCost(model: PricedModel): number {
  return priceFor(model, defaultDuration(model));
}
