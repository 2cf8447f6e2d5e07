import type { ErrorCode } from './codes.js';

/**
 * An expected failure of a service, carrying the API code it answers with. The HTTP layer turns
 * every one into its answer in a single branch, so an error nobody mapped cannot slip out as a
 * silent 500: a subclass without a code does not compile. The code's HTTP status stays in codes.ts.
 *
 * details and headers are getters, so they are derived from the error's own fields and read only
 * when the error is answered.
 */
export abstract class DomainError extends Error {
  abstract readonly code: ErrorCode;

  /** The envelope's `details` (also the {placeholders} of the localized message). */
  get details(): Record<string, unknown> | undefined {
    return undefined;
  }

  /** Response headers the answer needs: Retry-After when waiting helps. */
  get headers(): Record<string, string> | undefined {
    return undefined;
  }
}

/** A service we depend on (an Apple API) could not answer: 503 naming it; retrying soon may work. */
export abstract class UpstreamUnavailable extends DomainError {
  readonly code = 'ERR_5002';
  /** Which dependency failed, as details.service. */
  protected abstract readonly service: string;

  override get details() {
    return { service: this.service };
  }

  override get headers() {
    return { 'Retry-After': '5' };
  }
}

/**
 * A request a service's rules refuse, answered with the code and details given: for rule sets
 * (storage's bucket, key and ownership checks) whose every case would otherwise need a class.
 */
export class RequestRefused extends DomainError {
  constructor(
    readonly code: ErrorCode,
    private readonly facts?: Record<string, unknown>,
  ) {
    super(typeof facts?.reason === 'string' ? `${code}: ${facts.reason}` : code);
  }

  override get details() {
    return this.facts;
  }
}

/** The common refusals, as services name them (their HTTP twins live in http/api-error.ts). */
export const refuse = {
  notFound: (resource: string) => new RequestRefused('ERR_4007', { resource }),
  invalid: (reason: string, field?: string) => new RequestRefused('ERR_4008', field ? { reason, field } : { reason }),
  forbidden: (reason: string) => new RequestRefused('ERR_4006', { reason }),
};
