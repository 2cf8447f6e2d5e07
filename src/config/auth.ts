import { z } from 'zod';
import { bool, type ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

/** Our own tokens and sessions, and the shipped app's legacy anon-key mode. */
export const authEnv = z.object({
  JWT_SECRET: z.string().min(32, 'JWT_SECRET must be at least 32 characters').optional(),
  JWT_ISSUER: z.string().default('rendio'),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
  REFRESH_TOKEN_TTL_DAYS: z.coerce.number().int().min(1).max(365).default(60),
  ANON_KEY: z.string().min(1).optional(),
  LEGACY_ANON_CLIENTS: bool.default(false),
  /** Production refuses legacy mode unless this second, explicit acknowledgement is set too. */
  LEGACY_ANON_CLIENTS_I_UNDERSTAND: bool.default(false),
});
export type AuthEnv = z.infer<typeof authEnv>;

export interface AuthSection {
  jwt: { secret: string; issuer: string; accessTtlSeconds: number; refreshTtlDays: number; generated: boolean };
  anonKey: string | undefined;
  legacyAnonClients: boolean;
}

export function authSection(e: AuthEnv & Pick<ServerEnv, 'NODE_ENV'>, report: ReportIssue): AuthSection {
  if (e.NODE_ENV === 'production') {
    if (!e.JWT_SECRET) report('JWT_SECRET', 'required in production');
    if (e.LEGACY_ANON_CLIENTS && !e.ANON_KEY) report('ANON_KEY', 'LEGACY_ANON_CLIENTS needs ANON_KEY');
    if (e.LEGACY_ANON_CLIENTS && !e.LEGACY_ANON_CLIENTS_I_UNDERSTAND) {
      report(
        'LEGACY_ANON_CLIENTS_I_UNDERSTAND',
        'LEGACY_ANON_CLIENTS lets anyone holding the public anon key act as any user_id they name; in production also set LEGACY_ANON_CLIENTS_I_UNDERSTAND=true',
      );
    }
  }
  return {
    jwt: {
      // Without a configured secret (the embedded demo) main.ts persists one under DATA_DIR so
      // sessions survive restarts; this placeholder is replaced there.
      secret: e.JWT_SECRET ?? '',
      issuer: e.JWT_ISSUER,
      accessTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
      refreshTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
      generated: !e.JWT_SECRET,
    },
    anonKey: e.ANON_KEY,
    legacyAnonClients: e.LEGACY_ANON_CLIENTS,
  };
}
