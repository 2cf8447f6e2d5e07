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

export interface RequestedSettings {
  duration?: number;
  resolution?: string;
  aspect_ratio?: string;
}

export interface ResolvedSettings {
  duration: number;
  resolution?: string;
  aspect_ratio?: string;
}

export class SettingNotAllowed extends Error {
  constructor(
    readonly field: string,
    readonly allowed: readonly (string | number)[],
  ) {
    super(`${field} must be one of: ${allowed.join(', ')}`);
  }
}

/**
 * Fills defaults (request, then theme, then model) and checks every value against the model's
 * options. The result is what is priced, stored on the job and sent to the provider.
 */
export function resolveSettings(model: PricedModel, requested: RequestedSettings, themeDefaults: RequestedSettings = {}): ResolvedSettings {
  const cfg = model.required_fields.settings ?? {};
  const pick = <T extends string | number>(field: 'duration' | 'resolution' | 'aspect_ratio', c: FieldConfig<T> | undefined): T | undefined => {
    const value = (requested[field] ?? themeDefaults[field] ?? c?.default) as T | undefined;
    if (value === undefined) return undefined;
    if (c?.options?.length && !c.options.includes(value)) {
      // A theme default the model cannot do falls back to the model default rather than failing the user.
      if (requested[field] === undefined && c.default !== undefined) return c.default;
      throw new SettingNotAllowed(field, c.options);
    }
    return value;
  };
  const duration = pick<number>('duration', cfg.duration) ?? defaultDuration(model);
  return {
    duration,
    ...(cfg.resolution || requested.resolution ? { resolution: pick<string>('resolution', cfg.resolution) } : {}),
    ...(cfg.aspect_ratio || requested.aspect_ratio ? { aspect_ratio: pick<string>('aspect_ratio', cfg.aspect_ratio) } : {}),
  };
}
