import { z } from 'zod';
import { port, type ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

/** Logs and /metrics. */
export const observabilityEnv = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  /** /metrics on the public port requires `Authorization: Bearer <METRICS_TOKEN>`; without it /metrics is 404 there. */
  METRICS_TOKEN: z.string().min(16, 'METRICS_TOKEN must be at least 16 characters').optional(),
  /** Serves /metrics (without a token) on this port, bound to 127.0.0.1 only. */
  METRICS_PORT: port('METRICS_PORT', 1).optional(),
});
type ObservabilityEnv = z.infer<typeof observabilityEnv> & Pick<ServerEnv, 'PORT'>;

export interface ObservabilitySection {
  logLevel: ObservabilityEnv['LOG_LEVEL'];
  /** /metrics: a bearer token for the public port, and/or a loopback-only port of its own. */
  metrics: { token: string | undefined; port: number | undefined };
}

export function observabilitySection(e: ObservabilityEnv, report: ReportIssue): ObservabilitySection {
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT === e.PORT) {
    report('METRICS_PORT', 'must differ from PORT (it is the loopback-only metrics port)');
  }
  return { logLevel: e.LOG_LEVEL, metrics: { token: e.METRICS_TOKEN, port: e.METRICS_PORT } };
}
