import type { Logger } from '../logger.js';
import { SpanKind, inSpan } from '../tracing.js';
import { ProviderError, answerMayBeLost, type ProviderAdapter, type ProviderName } from './types.js';

/** Told about every call to a provider's API: its operation, duration and outcome (ok, lost, or an error code). */
export type ProviderCallObserver = (provider: string, operation: string, seconds: number, outcome: string) => void;

const OBSERVED_CALLS = { submit: 'submit', status: 'status', fetchResult: 'fetch_result', cancel: 'cancel', download: 'download' } as const;

/**
 * The adapter with each API call timed (a metric and, with tracing on, a span) and its outcome told
 * to the observer: one place for every provider, so no adapter and no caller carries that code. Everything else is the adapter's own.
 */
function observed(adapter: ProviderAdapter, observe: ProviderCallObserver): ProviderAdapter {
  const wrapped = Object.create(adapter) as Record<string, unknown>;
  for (const [method, operation] of Object.entries(OBSERVED_CALLS)) {
    const call = (adapter as unknown as Record<string, ((...args: unknown[]) => Promise<unknown>) | undefined>)[method];
    if (!call) continue;
    wrapped[method] = (...args: unknown[]) =>
      inSpan(`provider ${operation}`, { 'rendio.provider': adapter.name, 'rendio.operation': operation }, async () => {
        const started = performance.now();
        const seconds = () => (performance.now() - started) / 1000;
        try {
          const result = await call.apply(adapter, args);
          observe(adapter.name, operation, seconds(), 'ok'); // cancel never throws: its answers are rendio_provider_cancels_total's
          return result;
        } catch (err) {
          observe(adapter.name, operation, seconds(), answerMayBeLost(err) ? 'lost' : err instanceof ProviderError ? err.code : 'error');
          throw err;
        }
      }, { kind: SpanKind.CLIENT });
  }
  return wrapped as unknown as ProviderAdapter;
}

/**
 * Chooses the adapter for a model's provider. A provider without credentials is served by the
 * simulator (the zero-setup demo); the choice is stored on the job, so a job always stays with
 * the provider it was submitted to.
 */
export class ProviderRegistry {
  private warned = new Set<string>();

  private readonly adapters: Partial<Record<ProviderName, ProviderAdapter>> & { simulator: ProviderAdapter };

  constructor(
    adapters: Partial<Record<ProviderName, ProviderAdapter>> & { simulator: ProviderAdapter },
    private readonly log: Logger,
    observe?: ProviderCallObserver,
  ) {
    this.adapters = observe
      ? (Object.fromEntries(Object.entries(adapters).map(([name, a]) => [name, a && observed(a, observe)])) as typeof adapters)
      : adapters;
  }

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
