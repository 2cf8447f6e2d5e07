/**
 * The one small interface every video provider implements (one file per provider). Provider
 * specifics — URLs, auth, status names, error shapes — never leave their adapter.
 */

export type ProviderName = 'fal' | 'runway' | 'simulator';

export interface GenerationSettings {
  duration: number;
  resolution?: string;
  aspect_ratio?: string;
}

export interface SubmitInput {
  jobId: string;
  providerModelId: string;
  category: 'text-to-video' | 'image-to-video';
  prompt: string;
  settings: GenerationSettings;
  imageUrl?: string;
  /** Where the provider should call us back, for providers that support webhooks. */
  webhookUrl?: string;
}

export interface ProviderJobRef {
  providerJobId: string;
  /** Whatever the adapter kept at submit time (fal: its status/response/cancel URLs). */
  state: Record<string, unknown> | null;
  providerModelId: string;
}

export interface ProviderOutput {
  videoUrl: string;
  thumbnailUrl?: string;
}

export type ProviderStatus =
  | { state: 'queued' }
  | { state: 'running'; progress?: number }
  | { state: 'succeeded'; output: ProviderOutput }
  /** Finished, but the callback could not carry the result (fal's payload_error): fetch it with fetchResult. */
  | { state: 'result_ready' }
  | { state: 'failed'; code: FailureCode; message: string };

/** ERR_5003: the provider refused the content; ERR_5002: it broke; ERR_5001: it ran out of time. */
export type FailureCode = 'ERR_5001' | 'ERR_5002' | 'ERR_5003';

/** A provider call that did not work. retryable: try again later (429, 5xx, network, timeout). */
export class ProviderError extends Error {
  constructor(
    message: string,
    readonly code: FailureCode,
    readonly retryable: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }
}

/**
 * What a provider answered when asked to cancel a request: cancelled (it accepted: a queued
 * request never runs, a running one is told to stop), refused (it declined for another reason),
 * already_finished (too late: the request ran to its end, and a finished generation is billed),
 * unknown (no usable answer: timeout, 5xx, or it no longer knows the request).
 */
export type CancelAnswer = 'cancelled' | 'refused' | 'already_finished' | 'unknown';

/**
 * Whether a failed submit may have created a request anyway: the call went out and no answer came
 * back (timeout, reset). An HTTP error answer, or a call never made (open circuit), created nothing.
 */
export function answerMayBeLost(err: unknown): boolean {
  return err instanceof ProviderError && err.retryable && /timed out|network error/.test(err.message);
}

/** A verified, parsed provider callback. */
export interface WebhookEvent {
  eventId: string;
  providerJobId: string;
  status: ProviderStatus;
}

export interface ProviderAdapter {
  readonly name: ProviderName;
  /** Providers with webhooks are polled only as a fallback; the others are polled on a schedule. */
  readonly webhooks: boolean;
  /** Seconds between polls while a job runs. */
  readonly pollIntervalSeconds: number;
  submit(input: SubmitInput): Promise<{ providerJobId: string; state?: Record<string, unknown> }>;
  status(job: ProviderJobRef): Promise<ProviderStatus>;
  /** The outcome of a finished job, fetched from the provider (after a result_ready callback); never result_ready. */
  fetchResult?(job: ProviderJobRef): Promise<ProviderStatus>;
  /** Asks the provider to stop a request, and says what it answered; never throws. */
  cancel(job: ProviderJobRef): Promise<CancelAnswer>;
  /** Streams a result into the file toFile, only from this provider's own result hosts, size-limited. */
  download(url: string, maxBytes: number, toFile: string): Promise<Download>;
  /** Verifies the signature (before parsing) and freshness of a callback; throws WebhookRejected. */
  verifyWebhook?(rawBody: string, headers: Headers): Promise<WebhookEvent>;
}

/** A result file as it arrived: its size and the type the result host claimed (kept for operators, never served). */
export interface Download {
  sizeBytes: number;
  contentType: string;
}

export class WebhookRejected extends Error {}
