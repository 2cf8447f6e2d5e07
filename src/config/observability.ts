import { z } from 'zod';
import { port, type ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;

/** Logs and /metrics. */
export const observabilityEnv = z.object({
  LOG_LEVEL: z.enum(LEVELS).default('info'),
  /** auto: human-readable when stdout is a terminal outside production, JSON lines otherwise. */
  LOG_FORMAT: z.enum(['auto', 'json', 'pretty']).default('auto'),
  /** The level of the one line per request (off: none); LOG_LEVEL above it silences it too. */
  ACCESS_LOG: z.enum(['info', 'debug', 'off']).default('info'),
  /** /metrics on the public port requires `Authorization: Bearer <METRICS_TOKEN>`; without it /metrics is 404 there. */
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  /** Serves /metrics (without a token) on this port, bound to 127.0.0.1 only. */
  METRICS_PORT: port('METRICS_PORT', 1).optional(),
  /** OpenTelemetry traces go to this OTLP/HTTP collector (…/v1/traces); unset: no tracing. */
  OTEL_EXPORTER_OTLP_ENDPOINT: z.url({ protocol: /^https?$/, error: 'OTEL_EXPORTER_OTLP_ENDPOINT must be an http(s) URL' }).optional(),
  OTEL_SERVICE_NAME: z.string().min(1).default('rendio'),
});
type ObservabilityEnv = z.infer<typeof observabilityEnv> & Pick<ServerEnv, 'PORT' | 'NODE_ENV'>;

export type LogFormat = 'json' | 'pretty';
export type AccessLogLevel = ObservabilityEnv['ACCESS_LOG'];

export interface ObservabilitySection {
  logLevel: ObservabilityEnv['LOG_LEVEL'];
  logFormat: LogFormat;
  accessLog: AccessLogLevel;
  /** /metrics: a bearer token for the public port, and/or a loopback-only port of its own. */
  metrics: { token: string | undefined; port: number | undefined };
  /** OpenTelemetry traces: off (undefined) unless OTEL_EXPORTER_OTLP_ENDPOINT is set. */
  tracing: TracingConfig | undefined;
}

export interface TracingConfig {
  /** The collector's base URL; spans are posted to <endpoint>/v1/traces. */
  endpoint: string;
  serviceName: string;
}

/**
 * Pretty output is for a person at a terminal: a log shipper reads JSON, and production always gets
 * it unless the operator asks otherwise in so many words.
 */
export function resolveLogFormat(setting: ObservabilityEnv['LOG_FORMAT'], nodeEnv: string, stdoutIsTerminal: boolean): LogFormat {
  if (setting !== 'auto') return setting;
  return stdoutIsTerminal && nodeEnv !== 'production' ? 'pretty' : 'json';
}

export function observabilitySection(e: ObservabilityEnv, report: ReportIssue): ObservabilitySection {
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT === e.PORT) {
    report('METRICS_PORT', 'must differ from PORT (it is the loopback-only metrics port)');
  }
  return {
    logLevel: e.LOG_LEVEL,
    logFormat: resolveLogFormat(e.LOG_FORMAT, e.NODE_ENV, process.stdout.isTTY === true),
    accessLog: e.ACCESS_LOG,
    metrics: { token: e.METRICS_TOKEN, port: e.METRICS_PORT },
    tracing: e.OTEL_EXPORTER_OTLP_ENDPOINT ? { endpoint: e.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, ''), serviceName: e.OTEL_SERVICE_NAME } : undefined,
  };
}
