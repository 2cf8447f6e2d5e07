/**
 * The closed set of API error codes (docs/reference/DESIGN.md §7, extended). Codes are stable API; messages are
 * localized in i18n.ts. One table maps each code to its HTTP status.
 */
export const ERROR_CODES = {
  ERR_4001: { status: 402, meaning: 'insufficient credits' },
  ERR_4002: { status: 404, meaning: 'model not available' },
  ERR_4003: { status: 400, meaning: 'invalid prompt' },
  ERR_4004: { status: 429, meaning: 'rate limited' },
  ERR_4005: { status: 401, meaning: 'unauthenticated or expired token' },
  ERR_4006: { status: 403, meaning: 'forbidden' },
  ERR_4007: { status: 404, meaning: 'not found' },
  ERR_4008: { status: 400, meaning: 'validation failed' },
  ERR_4009: { status: 409, meaning: 'idempotent request still in progress' },
  ERR_4010: { status: 422, meaning: 'idempotency key reused with a different request' },
  ERR_4011: { status: 400, meaning: 'invalid purchase' },
  ERR_4012: { status: 409, meaning: 'transaction already used by another account' },
  ERR_4013: { status: 403, meaning: 'device check failed' },
  ERR_4014: { status: 403, meaning: 'account banned' },
  ERR_4015: { status: 413, meaning: 'request body too large' },
  ERR_4016: { status: 415, meaning: 'unsupported media type' },
  ERR_4017: { status: 405, meaning: 'method not allowed' },
  ERR_4018: { status: 400, meaning: 'idempotency key missing or malformed' },
  ERR_4019: { status: 409, meaning: 'cancelled by the user' },
  ERR_4020: { status: 403, meaning: 'sign in with Apple required (guests cannot buy credits)' },
  ERR_4021: { status: 415, meaning: 'not a supported image (JPEG, PNG, HEIC/HEIF, WebP by its bytes)' },
  ERR_4022: { status: 416, meaning: 'requested byte range not satisfiable' },
  ERR_4030: { status: 400, meaning: "prompt longer than the model's provider accepts" },
  ERR_4031: { status: 400, meaning: "setting outside what the model's provider accepts" },
  ERR_4032: { status: 406, meaning: 'one row requested (application/vnd.pgrst.object+json), zero or several found' },
  ERR_4040: { status: 400, meaning: 'unsupported Realtime request (only postgres_changes on public.video_jobs by job_id)' },
  ERR_4041: { status: 429, meaning: 'Realtime limit reached (channels per socket, messages per second, sockets per address)' },
  ERR_4025: { status: 401, meaning: 'admin sign-in failed (email, password or one-time code)' },
  ERR_4026: { status: 409, meaning: 'target account is closed (deleted or merged)' },
  ERR_4027: { status: 403, meaning: 'CSRF token missing or invalid (admin console)' },
  ERR_5001: { status: 504, meaning: 'provider timeout' },
  ERR_5002: { status: 503, meaning: 'provider or upstream service unavailable' },
  ERR_5003: { status: 422, meaning: 'provider rejected the prompt' },
  ERR_6001: { status: 503, meaning: 'database unavailable' },
  ERR_6002: { status: 503, meaning: 'storage error' },
  ERR_6003: { status: 500, meaning: 'internal error' },
} as const;

export type ErrorCode = keyof typeof ERROR_CODES;
