import { z } from 'zod';
import { bool, type ReportIssue } from './env.js';
import type { ServerEnv } from './server.js';

const jwtSecret = (name: string) => z.string().min(32, `${name} must be at least 32 characters`);

/** Our own tokens and sessions, and the shipped app's legacy anon-key mode. */
export const authEnv = z.object({
  JWT_SECRET: jwtSecret('JWT_SECRET').optional(),
  /**
   * During a rotation (docs/DEPLOY.md "Rotating JWT_SECRET and ANON_KEY"): the secret JWT_SECRET
   * replaced. Access tokens it signed are still accepted until they expire; new ones are signed
   * with JWT_SECRET only.
   */
  JWT_SECRET_PREVIOUS: jwtSecret('JWT_SECRET_PREVIOUS').optional(),
  JWT_ISSUER: z.string().default('rendio'),
  ACCESS_TOKEN_TTL_SECONDS: z.coerce.number().int().min(60).max(86_400).default(3600),
  REFRESH_TOKEN_TTL_DAYS: z.coerce.number().int().min(1).max(365).default(60),
  ANON_KEY: z.string().min(1).optional(),
  /** During a rotation: the anon key ANON_KEY replaced, accepted too until the app builds that carry it are gone. */
  ANON_KEY_PREVIOUS: z.string().min(1).optional(),
  LEGACY_ANON_CLIENTS: bool.default(false),
  /** Production refuses legacy mode unless this second, explicit acknowledgement is set too. */
  LEGACY_ANON_CLIENTS_I_UNDERSTAND: bool.default(false),
});
export type AuthEnv = z.infer<typeof authEnv>;

export interface AuthSection {
  jwt: {
    secret: string;
    /** Verifies (never signs) access tokens made before a rotation; undefined outside one. */
    previousSecret: string | undefined;
    issuer: string;
    accessTtlSeconds: number;
    refreshTtlDays: number;
    generated: boolean;
  };
  /** The current anon key: the one to hand to clients. */
  anonKey: string | undefined;
  /**
   * Every anon key a request may carry: the current one, and during a rotation the previous one.
   * Empty without ANON_KEY. Checked only through src/auth/anon-key.ts (constant time).
   */
  acceptedAnonKeys: readonly string[];
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
  // A previous value only means something next to the current one that replaced it.
  if (e.JWT_SECRET_PREVIOUS !== undefined) {
    if (!e.JWT_SECRET) report('JWT_SECRET_PREVIOUS', 'set JWT_SECRET to the new secret too (JWT_SECRET_PREVIOUS is the one it replaces)');
    else if (e.JWT_SECRET_PREVIOUS === e.JWT_SECRET) report('JWT_SECRET_PREVIOUS', 'is the same as JWT_SECRET: set JWT_SECRET to the new secret');
  }
  if (e.ANON_KEY_PREVIOUS !== undefined) {
    if (!e.ANON_KEY) report('ANON_KEY_PREVIOUS', 'set ANON_KEY to the new key too (ANON_KEY_PREVIOUS is the one it replaces)');
    else if (e.ANON_KEY_PREVIOUS === e.ANON_KEY) report('ANON_KEY_PREVIOUS', 'is the same as ANON_KEY: set ANON_KEY to the new key');
  }
  return {
    jwt: {
      // Without a configured secret (the embedded demo) main.ts persists one under DATA_DIR so
      // sessions survive restarts; this placeholder is replaced there.
      secret: e.JWT_SECRET ?? '',
      previousSecret: e.JWT_SECRET_PREVIOUS,
      issuer: e.JWT_ISSUER,
      accessTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS,
      refreshTtlDays: e.REFRESH_TOKEN_TTL_DAYS,
      generated: !e.JWT_SECRET,
    },
    anonKey: e.ANON_KEY,
    acceptedAnonKeys: [e.ANON_KEY, e.ANON_KEY_PREVIOUS].filter((key): key is string => key !== undefined),
    legacyAnonClients: e.LEGACY_ANON_CLIENTS,
  };
}
