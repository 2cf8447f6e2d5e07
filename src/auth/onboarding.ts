import type { DeviceCheckClient } from '../apple/device-check.js';
import type { KeyedLock } from '../db/keyed-lock.js';
import { withTransaction, type Queryable } from '../db/pool.js';
import {
  claimDeviceGrant,
  deviceMarkOwed,
  deviceOfBannedUser,
  findPendingDeviceGrant,
  insertDevicelessGuest,
  insertGuestIfAbsent,
  lockGuestByDeviceId,
  markDeviceBitSet,
  settlePendingDeviceGrant,
  type UserRow,
} from '../db/queries/users.js';
import { DomainError } from '../errors/domain-error.js';
import { AccountClosed } from '../ledger/errors.js';
import * as ledger from '../ledger/ledger.js';
import type { Logger } from '../logger.js';
import type { SessionService, SessionTokens } from './sessions.js';
import { boundedMetadata } from './user-metadata.js';

/**
 * Guest onboarding (functions/v1/device-check). Invariant 4: the free grant happens at most once
 * per device — per device_id (device_grants, which outlives the guest: a merge or deletion frees
 * users.device_id but not the device id's grant) and per physical device (Apple's DeviceCheck bit0,
 * which survives reinstalls and new device_ids).
 *
 * DeviceCheck's bits have no compare-and-set, so with DeviceCheck configured:
 *  - onboardings from one client address run one at a time (KeyedLock), so the calls of one phone
 *    under many device_ids see each other's bit0 (docs/ARCHITECTURE.md "Free credits" says what
 *    remains possible from many addresses);
 *  - a new device id is first recorded as owed a grant (pending), then bit0 is set, then the grant
 *    is written. A crash or an Apple failure in between leaves the grant pending, completed by the
 *    device id's next call, once (settlePendingDeviceGrant moves it in the grant's transaction).
 */

export class UserBanned extends DomainError {
  readonly code = 'ERR_4014';
}

export interface OnboardingResult {
  user: UserRow;
  isNew: boolean;
  granted: boolean;
  available: number;
  session: SessionTokens;
}

/** What the device may be given: 'unchecked' = no DeviceCheck configured (the grant is per device id only). */
type DeviceStanding = 'unchecked' | 'fresh' | 'already-granted';

/** Rolls the completion back when a concurrent call completed the same pending grant first. */
class AlreadySettled extends Error {}

export class OnboardingService {
  constructor(
    private readonly db: Queryable,
    private readonly sessions: SessionService,
    private readonly deviceCheck: DeviceCheckClient | undefined,
    private readonly grantCredits: number,
    private readonly log: Logger,
    private readonly perAddress?: KeyedLock,
  ) {}

  /**
   * GoTrue's anonymous sign-up (supabase-js auth.signInAnonymously): a guest with no device and no
   * free credits. Free credits are only ever given by device-check, where DeviceCheck vouches for a
   * genuine device and device_grants makes it once per device id; an anonymous sign-up costs nothing
   * to repeat, so it can be worth nothing. Its guest buys, merges into Apple and is deleted like any.
   */
  async signUpAnonymously(metadata: Record<string, unknown>): Promise<{ user: UserRow; session: SessionTokens }> {
    return withTransaction(this.db, async (tx) => {
      const user = await insertDevicelessGuest(tx, boundedMetadata(metadata));
      await ledger.openAccount(tx, user.id);
      return { user, session: await this.sessions.start(user, tx) };
    });
  }

  /** clientAddress: the rate limiter's key for the caller's address (serialises one phone's calls). */
  async onboard(deviceId: string, deviceToken: string, clientAddress = 'unknown'): Promise<OnboardingResult> {
    // A banned user's device gets no fresh guest (nor their own guest back: returning() refuses it).
    if (await deviceOfBannedUser(this.db, deviceId)) throw new UserBanned();
    const deviceCheck = this.deviceCheck;
    if (!deviceCheck) return this.onboardAs(deviceId, deviceToken, 'unchecked');
    const run = async () => {
      // Asking Apple proves the token came from a genuine Apple device before anything is created
      // or handed out; its bits tell whether this device was already given free credits.
      const bits = await deviceCheck.queryTwoBits(deviceToken);
      return this.onboardAs(deviceId, deviceToken, bits?.bit0 === true ? 'already-granted' : 'fresh');
    };
    return this.perAddress ? this.perAddress.run(clientAddress, run) : run();
  }

  private async onboardAs(deviceId: string, deviceToken: string, standing: DeviceStanding): Promise<OnboardingResult> {
    // Two rounds at most: a concurrent call may create this device's guest between our two steps.
    for (let round = 0; round < 2; round++) {
      const returning = await this.returning(deviceId, deviceToken);
      if (returning) return returning;
      const created = await this.createGuest(deviceId, deviceToken, standing);
      if (created) return created;
    }
    throw new Error(`device ${deviceId}: neither a guest to return to nor one could be created`);
  }

  private async createGuest(deviceId: string, deviceToken: string, standing: DeviceStanding): Promise<OnboardingResult | undefined> {
    const owed = this.grantCredits === 0 || standing === 'already-granted' ? 'none' : standing === 'fresh' ? 'pending' : 'now';
    const created = await withTransaction(this.db, async (tx) => {
      const user = await insertGuestIfAbsent(tx, deviceId);
      if (!user) return undefined; // a concurrent call for the same device won the insert
      await ledger.openAccount(tx, user.id);
      // A device id that had a guest before (since merged into an Apple account, or deleted) gets none.
      const first = await claimDeviceGrant(tx, deviceId, user.id, owed);
      const granted = first?.granted
        ? (await ledger.grant(tx, { userId: user.id, amount: this.grantCredits, reason: 'initial guest grant' })).applied
        : false;
      const session = await this.sessions.start(user, tx);
      return { user, granted, session };
    });
    if (!created) return undefined; // a concurrent call for the same device won the insert
    // Under the address lock bit0 was unset when we asked: no need to ask again before setting it.
    const completedFor = await this.settleDevice(deviceId, deviceToken, standing === 'fresh');
    const granted = created.granted || completedFor === created.user.id;
    if (!granted) this.log.info({ userId: created.user.id, standing }, 'no free credits for this device (yet)');
    const account = await ledger.getAccount(this.db, created.user.id);
    return { user: created.user, isNew: true, granted, available: account.available, session: created.session };
  }

  /**
   * The device's guest, if it has one: locked while its session starts, so a Sign in with Apple
   * turning it into an Apple account (which releases the device id and ends its sessions) either
   * comes after — and ends this session too — or before, and this device gets a new guest.
   */
  private async returning(deviceId: string, deviceToken: string): Promise<OnboardingResult | undefined> {
    const opened = await withTransaction(this.db, async (tx) => {
      const user = await lockGuestByDeviceId(tx, deviceId);
      if (!user) return undefined;
      if (user.banned_at) throw new UserBanned();
      return { user, session: await this.sessions.start(user, tx) };
    });
    if (!opened) return undefined;
    const granted = (await this.settleDevice(deviceId, deviceToken, false)) === opened.user.id;
    const account = await ledger.getAccount(this.db, opened.user.id);
    return { user: opened.user, isNew: false, granted, available: account.available, session: opened.session };
  }

  /**
   * Finishes what a device id is owed with Apple: its pending grant (the device id's first guest,
   * to whose owner this call gave it), or the bit0 mark of a grant given before grants waited for
   * the mark. Apple being unreachable leaves both owed to the device id's next call.
   */
  private async settleDevice(deviceId: string, deviceToken: string, bitKnownUnset: boolean): Promise<string | undefined> {
    if (!this.deviceCheck) return undefined;
    try {
      const pending = await findPendingDeviceGrant(this.db, deviceId);
      if (pending) return (await this.completePendingGrant(deviceId, deviceToken, pending, bitKnownUnset)) ? pending.firstUserId : undefined;
      if (await deviceMarkOwed(this.db, deviceId)) {
        await this.deviceCheck.updateTwoBits(deviceToken, { bit0: true, bit1: false });
        await markDeviceBitSet(this.db, deviceId);
      }
    } catch (err) {
      this.log.warn({ err, deviceId }, 'could not settle the device with DeviceCheck; will retry on its next onboarding call');
    }
    return undefined;
  }

  private async completePendingGrant(
    deviceId: string,
    deviceToken: string,
    pending: { firstUserId: string; bitMarked: boolean },
    bitKnownUnset: boolean,
  ): Promise<boolean> {
    const deviceCheck = this.deviceCheck!;
    if (!pending.bitMarked) {
      // Resumed without Apple's confirmation of our mark: if bit0 is set now, another device id of
      // this phone may have been given the credits meanwhile — never twice, so this one gets none
      // (the rare crash right after Apple set the bit, before we recorded it, costs the user the grant).
      if (!bitKnownUnset && (await deviceCheck.queryTwoBits(deviceToken))?.bit0) {
        await settlePendingDeviceGrant(this.db, deviceId, false);
        this.log.info({ deviceId }, 'pending free grant dropped: the device was marked meanwhile');
        return false;
      }
      await deviceCheck.updateTwoBits(deviceToken, { bit0: true, bit1: false });
      await markDeviceBitSet(this.db, deviceId);
    }
    try {
      return await withTransaction(this.db, async (tx) => {
        // Lock order: the ledger locks the owner's users row and account first, device_grants after.
        const applied = (await ledger.grant(tx, { userId: pending.firstUserId, amount: this.grantCredits, reason: 'initial guest grant' })).applied;
        if (!(await settlePendingDeviceGrant(tx, deviceId, applied))) throw new AlreadySettled();
        return applied;
      });
    } catch (err) {
      if (err instanceof AlreadySettled) return false;
      if (err instanceof AccountClosed) {
        await settlePendingDeviceGrant(this.db, deviceId, false); // the account it was for is gone
        return false;
      }
      throw err;
    }
  }
}
