import type { Logger } from '../logger.js';
import type { ProviderAdapter, ProviderName } from './types.js';

/**
 * Chooses the adapter for a model's provider. A provider without credentials is served by the
 * simulator (the zero-setup demo); the choice is stored on the job, so a job always stays with
 * the provider it was submitted to.
 */
export class ProviderRegistry {
  private warned = new Set<string>();

  constructor(
    private readonly adapters: Partial<Record<ProviderName, ProviderAdapter>> & { simulator: ProviderAdapter },
    private readonly log: Logger,
  ) {}

  /** The provider a new job for this model will use. */
  route(modelProvider: string): ProviderName {
    if (modelProvider in this.adapters && this.adapters[modelProvider as ProviderName]) return modelProvider as ProviderName;
    if (!this.warned.has(modelProvider)) {
      this.warned.add(modelProvider);
      this.log.warn({ provider: modelProvider }, 'provider not configured: its models are served by the simulator');
    }
    return 'simulator';
  }

  for(name: string): ProviderAdapter {
    const adapter = this.adapters[name as ProviderName];
    if (!adapter) throw new Error(`provider ${name} is not configured in this process`);
    return adapter;
  }
}
