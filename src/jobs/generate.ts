import { checkProviderLimits, resolveSettings, priceFor, type RequestedSettings } from '../catalogue/pricing.js';
import { withTransaction, type Queryable } from '../db/pool.js';
import { DomainError } from '../errors/domain-error.js';
import { InsufficientCredits } from '../ledger/errors.js';
import * as ledger from '../ledger/ledger.js';
import { findModel, findTheme } from '../db/queries/catalogue.js';
import { findObject } from '../db/queries/storage.js';
import type { ProviderRegistry } from '../providers/registry.js';
import { INPUT_BUCKET, objectKeyFromPath } from '../storage/types.js';
import type { RuleState } from '../errors/rate-limited.js';
import { checkGenerateLimits, type GenerateLimits } from './generate-limits.js';
import { crashIf, type CrashPoint, type VideoJobService } from './video-jobs.js';

/**
 * generate-video's business rules: everything is validated before any money moves, the price
 * comes from the server's catalogue (never the client), and hold + job + queue entry + the
 * idempotent response commit in one transaction.
 */

export class InvalidPrompt extends DomainError {
  readonly code = 'ERR_4003';
  override get details() {
    return { field: 'prompt' };
  }
}
export class ModelUnavailable extends DomainError {
  readonly code = 'ERR_4002';
  constructor(readonly reason?: string) {
    super('model not available');
  }
  override get details() {
    return this.reason ? { reason: this.reason } : undefined;
  }
}
export class InvalidGenerationInput extends DomainError {
  readonly code = 'ERR_4008';
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(reason);
  }
  override get details() {
    return { reason: this.reason, field: this.field };
  }
}

export interface GenerateRequest {
  userId: string;
  modelId?: string;
  themeId?: string;
  prompt: string;
  settings?: RequestedSettings;
  imageUrl?: string;
}

export interface GenerateResponse {
  job_id: string;
  status: 'pending';
  credits_used: number;
  credits_remaining: number;
}

const PROMPT_MIN = 3;
const PROMPT_MAX = 5000;

export class GenerationService {
  constructor(
    private readonly db: Queryable,
    private readonly jobs: VideoJobService,
    private readonly providers: ProviderRegistry,
    private readonly publicUrl: string,
    private readonly crashAt?: CrashPoint,
    /** Per-user limits (src/jobs/generate-limits.ts); none when rate limits are off. */
    private readonly limits?: GenerateLimits,
    /** Told of each job once its transaction committed (metrics). */
    private readonly onStarted?: (provider: string, model: string) => void,
  ) {}

  /** Accepts only images the user uploaded to our own public inputs bucket (no SSRF, no hotlinking). */
  private async validateImage(userId: string, imageUrl: string): Promise<string> {
    let url: URL;
    try {
      url = new URL(imageUrl);
    } catch {
      throw new InvalidGenerationInput('image_url', 'image_url is not a URL');
    }
    const ours = new URL(this.publicUrl);
    const prefix = `/storage/v1/object/public/${INPUT_BUCKET}/`;
    if (url.origin !== ours.origin || !url.pathname.startsWith(prefix)) {
      throw new InvalidGenerationInput('image_url', `image_url must be an image uploaded to ${ours.origin}${prefix}`);
    }
    const key = objectKeyFromPath(url.pathname.slice(prefix.length));
    if (key === undefined) throw new InvalidGenerationInput('image_url', 'image_url does not name an object we store');
    if (!key.startsWith(`${userId}/`)) throw new InvalidGenerationInput('image_url', 'image_url must be one of your own uploads');
    const object = await findObject(this.db, INPUT_BUCKET, key);
    if (!object || object.owner_id !== userId) throw new InvalidGenerationInput('image_url', 'image_url does not exist');
    return `${ours.origin}${prefix}${key}`;
  }

  /** The answer, and where the user's windowed limit stands after it (for the RateLimit headers). */
  async generate(
    req: GenerateRequest,
    complete: (tx: Queryable, status: number, body: GenerateResponse, ownerId: string) => Promise<void>,
  ): Promise<{ response: GenerateResponse; limit?: RuleState }> {
    const prompt = req.prompt.trim();
    if (prompt.length < PROMPT_MIN || prompt.length > PROMPT_MAX) throw new InvalidPrompt();

    let themeDefaults: RequestedSettings = {};
    let modelId = req.modelId;
    if (req.themeId) {
      const theme = await findTheme(this.db, req.themeId);
      if (!theme || !theme.is_available) throw new InvalidGenerationInput('theme_id', 'theme not found or not available');
      modelId ??= theme.model_id;
      themeDefaults = (theme.default_settings ?? {}) as RequestedSettings;
    }
    if (!modelId) throw new InvalidGenerationInput('model_id', 'send model_id or theme_id');
    const model = await findModel(this.db, modelId);
    if (!model || !model.is_available) throw new ModelUnavailable(model?.unavailable_reason ?? undefined);

    let settings;
    try {
      settings = resolveSettings(model, req.settings ?? {}, themeDefaults);
    } catch (err) {
      const e = err as { field?: string; message: string };
      throw new InvalidGenerationInput(`settings.${e.field ?? 'unknown'}`, e.message);
    }
    let imageUrl: string | null = null;
    if (model.required_fields.requires_image) {
      if (!req.imageUrl) throw new InvalidGenerationInput('image_url', 'this model needs an image: upload one and send image_url');
      imageUrl = await this.validateImage(req.userId, req.imageUrl);
    } else if (req.imageUrl) {
      throw new InvalidGenerationInput('image_url', 'this model does not take an image');
    }

    // What the provider would refuse after the hold is a 400 now (prompt length, durations, ratios).
    checkProviderLimits(model.provider_limits ?? {}, { prompt, settings, hasImage: imageUrl !== null });

    const price = priceFor(model, settings.duration);
    // Refuse an unaffordable request without queueing on the account lock (a burst from an empty
    // account must not hold the pool's connections); the hold re-checks under the lock.
    const available = await ledger.availableNow(this.db, req.userId);
    if (available !== undefined && available < price) throw new InsufficientCredits(price, available);
    // The same for the limits (a user retrying past them in a loop); re-checked under the lock.
    if (this.limits) await checkGenerateLimits(this.db, req.userId, this.limits, false);
    let limit: RuleState | undefined;
    const provider = this.providers.route(model.provider);
    const response = await withTransaction(this.db, async (tx) => {
      const { jobId, userId, available } = await this.jobs.create(tx, {
        userId: req.userId,
        modelId: model.id,
        themeId: req.themeId ?? null,
        prompt,
        settings: { ...settings },
        imageUrl,
        provider,
        price,
        deadlineSeconds: model.deadline_seconds,
      });
      // Under the owner's account lock (the hold took it), with the new job counted: a user's
      // concurrent generates take turns here, so no burst gets past a limit.
      if (this.limits) limit = await checkGenerateLimits(tx, userId, this.limits, true);
      const body: GenerateResponse = { job_id: jobId, status: 'pending', credits_used: price, credits_remaining: available };
      await complete(tx, 200, body, userId);
      return body;
    });
    this.onStarted?.(provider, model.id);
    crashIf(this.crashAt, 'generate:after-commit');
    return { response, limit };
  }
}
