import { z } from 'zod';
import { adminEnv, adminSection, type AdminSection } from './admin.js';
import { appleEnv, appleSection, type AppleSection } from './apple.js';
import { authEnv, authSection, type AuthSection } from './auth.js';
import { creditsEnv, creditsSection, type CreditsSection } from './credits.js';
import { databaseEnv, databaseSection, type DatabaseSection } from './database.js';
import { ConfigError } from './env.js';
import { jobsEnv, jobsSection, type JobsSection } from './jobs.js';
import { observabilityEnv, observabilitySection, type ObservabilitySection } from './observability.js';
import { providersEnv, providersSection, type ProvidersSection } from './providers.js';
import { pushEnv, pushSection, type PushSection } from './push.js';
import { rateLimitsEnv, rateLimitsSection, type RateLimitsSection } from './rate-limits.js';
import { mediaEnv, mediaSection, type MediaSection } from './media.js';
import { retentionEnv, retentionSection, type RetentionSection } from './retention.js';
import { serverEnv, serverSection, type ServerSection } from './server.js';
import { storageEnv, storageSection, type StorageSection } from './storage.js';
import { supabaseImportEnv, supabaseImportSection, type SupabaseImportSection } from './supabase-import.js';
import { trustProxyEnv, trustProxySection, type TrustProxySection } from './trust-proxy.js';

export { ConfigError } from './env.js';
export type { HttpServerConfig } from './server.js';
export type { AppStoreConfig, DeviceCheckConfig } from './apple.js';
export { DEFAULT_PRODUCTS } from './credits.js';
export { DEFAULT_APNS_BUNDLE_ID } from './push.js';
export type { RetentionConfig } from './retention.js';
export { parseTrustProxy, type TrustProxy } from './trust-proxy.js';
export {
  DEFAULT_RATE_LIMITS,
  JOB_COUNTED_KINDS,
  RATE_LIMIT_POLICIES,
  parseRateLimits,
  type LimitKind,
  type LimitRule,
  type RateLimitConfig,
  type RateLimitPolicy,
  type RateLimitPolicyName,
  type StoreDownPolicy,
} from './rate-limits.js';

/**
 * Every environment variable the server reads, parsed and validated once at start-up.
 * Handlers receive the parsed Config; nothing else reads process.env (parallel tests depend on it).
 * Each variable is documented in .env.example. Each section (a file here) owns its variables,
 * the rules across them, and the part of Config they become.
 */
const EnvSchema = z.object({
  ...serverEnv.shape,
  ...observabilityEnv.shape,
  ...databaseEnv.shape,
  ...authEnv.shape,
  ...creditsEnv.shape,
  ...adminEnv.shape,
  ...appleEnv.shape,
  ...jobsEnv.shape,
  ...providersEnv.shape,
  ...storageEnv.shape,
  ...pushEnv.shape,
  ...rateLimitsEnv.shape,
  ...trustProxyEnv.shape,
  ...retentionEnv.shape,
  ...mediaEnv.shape,
  ...supabaseImportEnv.shape,
});

export type Env = z.infer<typeof EnvSchema>;

/** The names of every variable read (test/ops/operations.test.ts checks .env.example documents each). */
export const ENV_VARIABLES = Object.keys(EnvSchema.shape);

export interface Config
  extends ServerSection,
    ObservabilitySection,
    DatabaseSection,
    AuthSection,
    CreditsSection,
    AdminSection,
    AppleSection,
    JobsSection,
    ProvidersSection,
    StorageSection,
    PushSection,
    RateLimitsSection,
    TrustProxySection,
    RetentionSection,
    MediaSection,
    SupabaseImportSection {}

export function loadConfig(source: Record<string, string | undefined> = process.env): Config {
  // Empty strings in env files mean "not set", not "set to nothing".
  const cleaned = Object.fromEntries(Object.entries(source).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = EnvSchema.safeParse(cleaned);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.') || '(env)'}: ${i.message}`));
  }
  const e = parsed.data;
  const issues: string[] = [];
  const report = (variable: string, message: string) => issues.push(`${variable}: ${message}`);
  const config: Config = {
    ...serverSection(e, report),
    ...observabilitySection(e, report),
    ...databaseSection(e, report),
    ...authSection(e, report),
    ...creditsSection(e),
    ...adminSection(e, report),
    ...appleSection(e, report),
    ...jobsSection(e, report),
    ...providersSection(e),
    ...storageSection(e, report),
    ...pushSection(e, report),
    ...rateLimitsSection(e, report),
    ...trustProxySection(e, report),
    ...retentionSection(e),
    ...mediaSection(e),
    ...supabaseImportSection(e),
  };
  if (issues.length > 0) throw new ConfigError(issues);
  return config;
}
