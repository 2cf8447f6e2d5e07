import { z } from 'zod';
import { commaList, withoutTrailingSlash } from './env.js';

/** The video providers; a model whose provider has no key is served by the simulator. */
export const providersEnv = z.object({
  PROVIDER_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
  /** Base of the full-jitter exponential backoff for provider retries. */
  PROVIDER_RETRY_BASE_MS: z.coerce.number().int().min(1).max(60_000).default(2000),
  FAL_KEY: z.string().min(1).optional(),
  FAL_QUEUE_URL: z.string().url().default('https://queue.fal.run'),
  FAL_JWKS_URL: z.string().url().default('https://rest.alpha.fal.ai/.well-known/jwks.json'),
  /** Hosts fal results may be downloaded from (exact, or *.suffix). */
  FAL_RESULT_HOSTS: z.string().default('fal.media,*.fal.media,*.fal.run,storage.googleapis.com'),
  /** Our fal account's user id: webhooks whose X-Fal-Webhook-User-Id differs are refused (401). */
  FAL_WEBHOOK_USER_ID: z.string().min(1).optional(),
  RUNWAY_API_KEY: z.string().min(1).optional(),
  RUNWAY_BASE_URL: z.string().url().default('https://api.dev.runwayml.com'),
  RUNWAY_RESULT_HOSTS: z.string().default('*.cloudfront.net,*.runwayml.com'),
  SIMULATOR_DELAY_MS: z.coerce.number().int().min(0).max(600_000).default(6000),
  SIMULATOR_FAILURE_RATE: z.coerce.number().min(0).max(1).default(0),
});
type ProvidersEnv = z.infer<typeof providersEnv>;

export interface ProvidersSection {
  providerTimeoutMs: number;
  providerRetryBaseMs: number;
  fal: { apiKey: string; queueUrl: string; jwksUrl: string; resultHosts: string[]; webhookUserId: string | undefined } | undefined;
  runway: { apiKey: string; baseUrl: string; resultHosts: string[] } | undefined;
  simulator: { delayMs: number; failureRate: number };
}

export function providersSection(e: ProvidersEnv): ProvidersSection {
  return {
    providerTimeoutMs: e.PROVIDER_TIMEOUT_MS,
    providerRetryBaseMs: e.PROVIDER_RETRY_BASE_MS,
    fal: e.FAL_KEY
      ? {
          apiKey: e.FAL_KEY,
          queueUrl: withoutTrailingSlash(e.FAL_QUEUE_URL),
          jwksUrl: e.FAL_JWKS_URL,
          resultHosts: commaList(e.FAL_RESULT_HOSTS),
          webhookUserId: e.FAL_WEBHOOK_USER_ID,
        }
      : undefined,
    runway: e.RUNWAY_API_KEY
      ? { apiKey: e.RUNWAY_API_KEY, baseUrl: withoutTrailingSlash(e.RUNWAY_BASE_URL), resultHosts: commaList(e.RUNWAY_RESULT_HOSTS) }
      : undefined,
    simulator: { delayMs: e.SIMULATOR_DELAY_MS, failureRate: e.SIMULATOR_FAILURE_RATE },
  };
}
