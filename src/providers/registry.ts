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

  /** The models (of those given) whose provider has no credentials here: the simulator serves them. */
  simulated<M extends { id: string; provider: string }>(models: M[]): M[] {
    return models.filter((m) => m.provider !== 'simulator' && !this.adapters[m.provider as ProviderName]);
  }

  /**
   * Said once at start (main.ts), so a demo's sample clips are never mistaken for a real provider's
   * output; route() then stays quiet about the providers named here.
   */
  announceSimulated(models: { id: string; provider: string }[]): void {
    const simulated = this.simulated(models);
    if (!simulated.length) return;
    const providers = [...new Set(simulated.map((m) => m.provider))];
    for (const p of providers) this.warned.add(p);
    this.log.warn(
      { models: simulated.map((m) => m.id), providers },
      `SIMULATED: ${simulated.length} model(s) of provider(s) ${providers.join(', ')} have no credentials (FAL_KEY / RUNWAY_API_KEY) ` +
        'and are served by the simulator: their videos are sample clips, not real output',
    );
  }

  /** The configured providers that call us back (webhooks): a request of theirs whose answer we lost can still report. */
  callingBack(): string[] {
    return Object.values(this.adapters).filter((a) => a?.webhooks).map((a) => a!.name);
  }

  for(name: string): ProviderAdapter {
    const adapter = this.adapters[name as ProviderName];
    if (!adapter) throw new Error(`provider ${name} is not configured in this process`);
    return adapter;
  }
}
