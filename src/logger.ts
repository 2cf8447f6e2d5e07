import { pino, type Logger } from 'pino';

export type { Logger };

export function createLogger(level: string, base: Record<string, unknown> = {}): Logger {
  return pino({
    level,
    base: { service: 'rendio', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Tokens and keys must never reach the logs, even when an error object carries a request.
    redact: {
      paths: ['*.authorization', '*.apikey', '*.refresh_token', '*.access_token', '*.device_token', '*.password'],
      censor: '[redacted]',
    },
  });
}
