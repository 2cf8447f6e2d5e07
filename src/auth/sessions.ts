import { withTransaction, type Queryable } from '../db/pool.js';
import { deletePushTokensOnLogout } from '../db/queries/push.js';
import * as sessionsDb from '../db/queries/sessions.js';
import { findUserById, type UserRow } from '../db/queries/users.js';
import { hashToken, newRefreshToken, type AccessTokens } from './tokens.js';

/**
 * Sign-in sessions. One auth_session = one refresh-token family: every refresh rotates the token,
 * and presenting an already-rotated token (a stolen copy, or a replay) revokes the whole family.
 */

export interface SessionTokens {
  access_token: string;
  token_type: 'bearer';
  expires_in: number;
  expires_at: number;
  refresh_token: string;
}

export class RefreshRejected extends Error {
  constructor(public readonly reason: 'unknown' | 'expired' | 'revoked' | 'reused' | 'user_unavailable' | 'banned') {
    super(`refresh token rejected: ${reason}`);
  }
}

export class SessionService {
  constructor(
    private readonly db: Queryable,
    private readonly tokens: AccessTokens,
    private readonly refreshTtlDays: number,
  ) {}

  private async issue(db: Queryable, user: Pick<UserRow, 'id' | 'is_guest' | 'email'>, sessionId: string, parentId?: number) {
    const refresh = newRefreshToken();
    await sessionsDb.insertRefreshToken(db, { sessionId, tokenHash: hashToken(refresh), parentId, ttlDays: this.refreshTtlDays });
    const access = await this.tokens.sign({ sub: user.id, sessionId, isAnonymous: user.is_guest, email: user.email });
    return {
      access_token: access.token,
      token_type: 'bearer' as const,
      expires_in: access.expiresIn,
      expires_at: access.expiresAt,
      refresh_token: refresh,
    };
  }

  /** Starts a new session (a new refresh-token family) for a user. */
  start(user: Pick<UserRow, 'id' | 'is_guest' | 'email'>, db: Queryable = this.db): Promise<SessionTokens> {
    return withTransaction(db, async (tx) => {
      const sessionId = await sessionsDb.insertSession(tx, user.id);
      return this.issue(tx, user, sessionId);
    });
  }

  /** Rotates a refresh token. Reuse of a rotated token revokes the session, and that revocation is committed. */
  async refresh(refreshToken: string): Promise<{ tokens: SessionTokens; user: UserRow }> {
    const outcome = await withTransaction(this.db, async (tx) => {
      const row = await sessionsDb.lockRefreshToken(tx, hashToken(refreshToken));
      if (!row) return { rejected: 'unknown' as const };
      const user = await findUserById(tx, row.user_id);
      // A ban ended this session; the app is told the reason rather than "signed out".
      if (user?.banned_at) return { rejected: 'banned' as const };
      if (row.session_revoked_at) return { rejected: 'revoked' as const };
      if (row.rotated_at) {
        await sessionsDb.revokeSession(tx, row.session_id, 'refresh_token_reuse');
        return { rejected: 'reused' as const };
      }
      if (row.is_expired) return { rejected: 'expired' as const };
      if (!user || user.deleted_at) return { rejected: 'user_unavailable' as const };
      await sessionsDb.markRotated(tx, row.id, row.session_id);
      return { tokens: await this.issue(tx, user, row.session_id, row.id), user };
    });
    if ('rejected' in outcome) throw new RefreshRejected(outcome.rejected!);
    return { tokens: outcome.tokens!, user: outcome.user! };
  }

  /** GoTrue's scopes: global ends every session of the user, local this one, others all but this one. */
  /** Signed-out devices stop getting pushes: their tokens go with their sessions. */
  async logout(userId: string, sessionId: string, scope: 'global' | 'local' | 'others'): Promise<void> {
    await withTransaction(this.db, async (tx) => {
      // Tokens before sessions, as in merge and deletion (one row order, no deadlock between them).
      await deletePushTokensOnLogout(tx, userId, sessionId, scope);
      if (scope === 'local') await sessionsDb.revokeSession(tx, sessionId, 'logout');
      else if (scope === 'others') await sessionsDb.revokeOtherSessions(tx, userId, sessionId, 'logout');
      else await sessionsDb.revokeAllSessions(tx, userId, 'logout');
    });
  }
}
