import type pg from 'pg';
import type { DeviceCheckClient } from './apple/device-check.js';
import type { OnboardingService } from './auth/onboarding.js';
import type { SessionService } from './auth/sessions.js';
import type { AccessTokens } from './auth/tokens.js';
import type { Config } from './config.js';
import type { ErrorLogWriter } from './http/error-log.js';
import type { Metrics } from './http/metrics.js';
import type { Logger } from './logger.js';

/** Everything a route may use, built once at start-up (main.ts) or per test (test/harness.ts). */
export interface Services {
  config: Config;
  db: pg.Pool;
  log: Logger;
  metrics: Metrics;
  errorLog: ErrorLogWriter;
  tokens: AccessTokens;
  sessions: SessionService;
  onboarding: OnboardingService;
  deviceCheck: DeviceCheckClient | undefined;
}

import { AppleDeviceCheck } from './apple/device-check.js';
import { OnboardingService as Onboarding } from './auth/onboarding.js';
import { SessionService as Sessions } from './auth/sessions.js';
import { AccessTokens as Tokens } from './auth/tokens.js';
import { ErrorLogWriter as ErrorLog } from './http/error-log.js';
import { Metrics as MetricsRegistry } from './http/metrics.js';

/** Wires the services from parsed config and an open pool. The one place implementations are chosen. */
export function buildServices(opts: {
  config: Config;
  db: pg.Pool;
  log: Logger;
  defaultMetrics?: boolean;
  now?: () => number;
}): Services {
  const { config, db, log } = opts;
  const metrics = new MetricsRegistry({ defaultMetrics: opts.defaultMetrics });
  const errorLog = new ErrorLog(db, log);
  const tokens = new Tokens(config.jwt.secret, config.jwt.issuer, config.jwt.accessTtlSeconds, opts.now);
  const sessions = new Sessions(db, tokens, config.jwt.refreshTtlDays);
  const deviceCheck = config.deviceCheck ? new AppleDeviceCheck(config.deviceCheck, opts.now) : undefined;
  const onboarding = new Onboarding(db, sessions, deviceCheck, config.initialGrantCredits, log);
  metrics.gauge('rendio_db_pool_total', 'Connections in the pool', () => db.totalCount);
  metrics.gauge('rendio_db_pool_waiting', 'Requests waiting for a connection', () => db.waitingCount);
  metrics.gauge('rendio_error_log_dropped', 'error_log rows not stored (overload or database down)', () => errorLog.dropped);
  return { config, db, log, metrics, errorLog, tokens, sessions, onboarding, deviceCheck };
}
