import type { ErrorCode } from '../errors/codes.js';
import { DomainError } from '../errors/domain-error.js';

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
    // The old backend's words (docs/reference/ios-app.md §2.10): the shipped app only logs them, but support reads them.
    super(`Invalid ${field}. Allowed values: ${allowed.join(', ')}`);
  }
}

/** The app sends "auto" for a setting it has no value for (docs/reference/ios-app.md §3): it means "the model's default". */
export const AUTO = 'auto';

const given = <T>(value: T | undefined): T | undefined => (value === AUTO ? undefined : value);

/**
 * Fills defaults (request, then theme, then model) and checks every value against the model's
 * options. "auto" from the request or a theme counts as not given, for every model and setting:
 * it becomes the model's default (which may itself be "auto" where the model lists it). A setting
 * the model does not declare is dropped, whatever was sent. The result is what is priced, stored
 * on the job and the only input the provider adapters derive their values from.
 */
export function resolveSettings(model: PricedModel, requested: RequestedSettings, themeDefaults: RequestedSettings = {}): ResolvedSettings {
  const cfg = model.required_fields.settings ?? {};
  const pick = <T extends string | number>(field: 'duration' | 'resolution' | 'aspect_ratio', c: FieldConfig<T> | undefined): T | undefined => {
    // A setting the model does not declare is ignored, never passed on: the app always sends a
    // resolution, and Runway refuses a ratio derived from one the model cannot do.
    if (c === undefined) return undefined;
    const asked = given(requested[field]) as T | undefined;
    const value = (asked ?? given(themeDefaults[field]) ?? c?.default) as T | undefined;
    if (value === undefined) return undefined;
    if (c?.options?.length && !c.options.includes(value)) {
      // A theme default the model cannot do falls back to the model default rather than failing the user.
      if (asked === undefined && c.default !== undefined) return c.default;
      throw new SettingNotAllowed(field, c.options);
    }
    return value;
  };
  const duration = pick<number>('duration', cfg.duration) ?? defaultDuration(model);
  const resolution = pick<string>('resolution', cfg.resolution);
  const aspectRatio = pick<string>('aspect_ratio', cfg.aspect_ratio);
  return {
    duration,
    ...(resolution !== undefined ? { resolution } : {}),
    ...(aspectRatio !== undefined ? { aspect_ratio: aspectRatio } : {}),
  };
}

/** What the model's provider accepts (migration 0014); an absent key is no limit beyond the options. */
export interface ProviderLimits {
  /** In UTF-16 code units, what JavaScript's String length counts and Runway's SDK checks. */
  prompt_max_length?: number;
  durations?: number[];
  aspect_ratios?: string[];
  resolutions?: string[];
  image?: 'required' | 'unsupported';
}

/** The request breaks a provider limit: a 400 before any hold, never a failed job after one. */
export class ProviderLimitExceeded extends DomainError {
  constructor(
    readonly field: 'prompt' | 'duration' | 'aspect_ratio' | 'resolution' | 'image_url',
    readonly limit: number | readonly (string | number)[] | string,
  ) {
    super(`${field} is outside the provider's limits`);
  }
  get code(): ErrorCode {
    if (this.field === 'prompt') return 'ERR_4030';
    if (this.field === 'image_url') return 'ERR_4008';
    return 'ERR_4031';
  }
  override get details() {
    if (this.field === 'prompt') return { field: 'prompt', max_length: this.limit };
    if (this.field === 'image_url') return { reason: `this model's provider: an image is ${String(this.limit)}`, field: 'image_url' };
    return { field: `settings.${this.field}`, allowed: (this.limit as (string | number)[]).join(', ') };
  }
}

/** Checks the resolved request against the provider's limits; throws the first one broken. */
export function checkProviderLimits(limits: ProviderLimits, req: { prompt: string; settings: ResolvedSettings; hasImage: boolean }): void {
  if (limits.prompt_max_length !== undefined && req.prompt.length > limits.prompt_max_length) {
    throw new ProviderLimitExceeded('prompt', limits.prompt_max_length);
  }
  if (limits.durations && !limits.durations.includes(req.settings.duration)) throw new ProviderLimitExceeded('duration', limits.durations);
  const { aspect_ratio, resolution } = req.settings;
  if (limits.aspect_ratios && aspect_ratio !== undefined && !limits.aspect_ratios.includes(aspect_ratio)) {
    throw new ProviderLimitExceeded('aspect_ratio', limits.aspect_ratios);
  }
  if (limits.resolutions && resolution !== undefined && !limits.resolutions.includes(resolution)) {
    throw new ProviderLimitExceeded('resolution', limits.resolutions);
  }
  if (limits.image === 'required' && !req.hasImage) throw new ProviderLimitExceeded('image_url', 'required');
  if (limits.image === 'unsupported' && req.hasImage) throw new ProviderLimitExceeded('image_url', 'unsupported');
}
