import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { LogFormat } from './config/observability.js';

export type { Logger };

/**
 * pino-pretty is a development dependency: an image pruned with `npm prune --omit=dev` lacks it,
 * and then even LOG_FORMAT=pretty writes JSON rather than failing to start.
 */
function prettyStream(): DestinationStream | undefined {
  try {
    const pretty = createRequire(import.meta.url)('pino-pretty') as (opts: Record<string, unknown>) => DestinationStream;
    // In-thread and synchronous: a transport's worker thread could lose the last lines of a process.exit.
    return pretty({ sync: true, colorize: true, singleLine: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,service' });
  } catch {
    return undefined;
  }
}

export function createLogger(level: string, base: Record<string, unknown> = {}, opts: { format?: LogFormat; destination?: DestinationStream } = {}): Logger {
  const options = {
    level,
    base: { service: 'rendio', ...base },
    timestamp: pino.stdTimeFunctions.isoTime,
    // Tokens and keys must never reach the logs, even when an error object carries a request.
    redact: {
      paths: ['*.authorization', '*.apikey', '*.refresh_token', '*.access_token', '*.device_token', '*.password'],
      censor: '[redacted]',
    },
  };
  const destination = opts.destination ?? (opts.format === 'pretty' ? prettyStream() : undefined);
  return destination ? pino(options, destination) : pino(options);
}
