import { withTransaction, type Queryable } from '../db/pool.js';
import { movePushTokens } from '../db/queries/push.js';
import * as sessionsDb from '../db/queries/sessions.js';
import * as users from '../db/queries/users.js';
import { DomainError } from '../errors/domain-error.js';
import * as ledger from '../ledger/ledger.js';
import type { Logger } from '../logger.js';
import { IdentityTokenRejected, type AppleIdentity } from '../apple/sign-in.js';
import type { SessionService, SessionTokens } from './sessions.js';
import { UserBanned } from './onboarding.js';

/**
 * Sign in with Apple: find or create the account for an Apple `sub`, and — when a guest signs in —
 * bring the guest along atomically. If the Apple account is new, the guest simply becomes it (same
 * id: the shipped app keeps using that id; its anonymous sessions end). If it exists, the guest is merged into it: credits and
 * open holds through the ledger, jobs, files and purchases re-owned, the guest left as a tombstone
 * whose sessions are over. Repeating a sign-in or a merge changes nothing.
 */

/** The guest is already another Apple account: it cannot be merged into this one. */
export class GuestBelongsToAnotherAppleId extends DomainError {
  readonly code = 'ERR_4006';
  override get details() {
    return { reason: 'this guest is already linked to another Apple ID' };
  }
}

export interface AppleSignInResult {
  user: users.UserRow;
  /** became = the guest turned into the Apple account; merged = folded into an existing one. */
  guest: 'none' | 'became' | 'merged' | 'already_merged';
  session: SessionTokens;
}

export class AppleAccountService {
  constructor(
    private readonly db: Queryable,
    private readonly sessions: SessionService,
    private readonly log: Logger,
  ) {}

  async signIn(identity: AppleIdentity, guestId?: string): Promise<AppleSignInResult> {
    // Two first sign-ins of one Apple ID race on the unique apple_sub: the loser runs again and
    // finds the winner's row.
    for (let attempt = 0; ; attempt++) {
      try {
        return await withTransaction(this.db, (tx) => this.signInOnce(tx, identity, guestId));
      } catch (err) {
        if (attempt < 2 && (err as { code?: string }).code === '23505') continue;
        throw err;
      }
    }
  }

  private async signInOnce(tx: Queryable, identity: AppleIdentity, guestId: string | undefined): Promise<AppleSignInResult> {
    // An identity token signs in once: a replay (leaked, intercepted, or simply re-sent) is refused.
    // In this transaction, so a sign-in that fails does not use the token up.
    if (identity.token && !(await sessionsDb.rememberIdentityToken(tx, identity.token.sha256, identity.token.expiresAt))) {
      throw new IdentityTokenRejected('this identity token was already used; sign in with Apple again');
    }
    const email = identity.emailVerified ? identity.email : null;
    const existing = await users.lockUserByAppleSub(tx, identity.sub);
    const guest = guestId && guestId !== existing?.id ? await users.lockUser(tx, guestId) : undefined;
    if (existing?.banned_at || guest?.banned_at) throw new UserBanned();

    if (!guest) {
      const user = existing ?? (await this.createAppleUser(tx, identity.sub, email));
      return { user, guest: 'none', session: await this.sessions.start(user, tx) };
    }
    if (guest.merged_into) {
      if (guest.merged_into !== existing?.id) throw new GuestBelongsToAnotherAppleId();
      return { user: existing!, guest: 'already_merged', session: await this.sessions.start(existing!, tx) };
    }
    if (!guest.is_guest || guest.deleted_at) throw new GuestBelongsToAnotherAppleId();

    if (!existing) {
      const user = await users.linkAppleToGuest(tx, guest.id, identity.sub, email);
      // The anonymous sessions end with the guest: from now on only Apple's identity signs in.
      // Same user id; the devices just lose the guest session that ends below. Tokens before
      // sessions, everywhere (logout, deletion): the same row order cannot deadlock.
      await movePushTokens(tx, guest.id, user.id);
      await sessionsDb.revokeAllSessions(tx, guest.id, 'signed_in_with_apple');
      this.log.info({ userId: user.id }, 'guest signed in with Apple: the guest became the Apple account');
      return { user, guest: 'became', session: await this.sessions.start(user, tx) };
    }

    const moved = await ledger.mergeAccounts(tx, { fromUserId: guest.id, toUserId: existing.id });
    await users.moveGuestInto(tx, guest.id, existing.id);
    // After users and credit_accounts were locked above (lock order), like the jobs the guest had.
    await movePushTokens(tx, guest.id, existing.id);
    await sessionsDb.revokeAllSessions(tx, guest.id, 'merged_into_apple_account');
    this.log.info({ guestId: guest.id, userId: existing.id, credits: moved.moved, held: moved.held }, 'guest merged into an existing Apple account');
    return { user: existing, guest: 'merged', session: await this.sessions.start(existing, tx) };
  }

  private async createAppleUser(tx: Queryable, sub: string, email: string | null): Promise<users.UserRow> {
    const user = await users.insertAppleUserIfAbsent(tx, sub, email);
    // Lost the race to a concurrent first sign-in: unique_violation semantics, handled by signIn's retry.
    if (!user) throw Object.assign(new Error('apple_sub taken concurrently'), { code: '23505' });
    await ledger.openAccount(tx, user.id);
    return user;
  }
}
