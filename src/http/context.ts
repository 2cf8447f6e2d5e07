import type { AccessClaims } from '../auth/tokens.js';
import type { Logger } from '../logger.js';
import type { AdminIdentity } from '../admin/auth.js';
import type { Language } from '../errors/i18n.js';

/** The authenticated caller, always resolved from a verified token (or the legacy anon-key mode). */
export interface AuthUser {
  id: string;
  isGuest: boolean;
  isAdmin: boolean;
  sessionId: string | null;
  /** 'token' = verified user JWT; 'legacy-anon' = anon key + user_id (LEGACY_ANON_CLIENTS). */
  via: 'token' | 'legacy-anon';
}

export type AppEnv = {
  Variables: {
    requestId: string;
    log: Logger;
    lang: Language;
    user: AuthUser;
    /** A verified user token whose session the route checks in its own read (requireUser's sessionCheck 'route'). */
    unsettledToken: AccessClaims;
    /** The signed-in admin, on /admin routes only (src/admin/middleware.ts). */
    admin: AdminIdentity;
    /** The API error code this request was answered with (the error handler sets it; the access log names it). */
    errorCode: string;
  };
};
