import { ERROR_CODES, type ErrorCode } from '../errors/codes.js';

/** The one error type the HTTP layer answers with. Services throw DomainErrors, which carry their code; onError turns each into one of these. */
export class ApiError extends Error {
  readonly status: number;
  constructor(
    readonly code: ErrorCode,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(`${code}: ${ERROR_CODES[code].meaning}`);
    this.status = ERROR_CODES[code].status;
  }
}

export const notFound = (resource: string) => new ApiError('ERR_4007', { resource });
export const invalid = (reason: string, field?: string) =>
  new ApiError('ERR_4008', field ? { reason, field } : { reason });
export const unauthenticated = (reason: string) => new ApiError('ERR_4005', { reason });
export const forbidden = (reason: string) => new ApiError('ERR_4006', { reason });
