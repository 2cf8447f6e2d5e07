import type { DeviceCheckClient } from '../apple/device-check.js';
import { withTransaction, type Queryable } from '../db/pool.js';
import { claimDeviceGrant, deviceMarkOwed, deviceOfBannedUser, insertGuestIfAbsent, lockGuestByDeviceId, markDeviceBitSet, type UserRow } from '../db/queries/users.js';
import * as ledger from '../ledger/ledger.js';
import type { Logger } from '../logger.js';
import type { SessionService, SessionTokens } from './sessions.js';

/**
 * Guest onboarding (functions/v1/device-check). Invariant 4: the free grant happens at most once
 * per device — per device_id (device_grants, which outlives the guest: a merge or deletion frees
 * users.device_id but not the device id's grant) and per physical device (Apple's DeviceCheck bit0,
 * which survives reinstalls and new device_ids).
 */

export class UserBanned extends Error {}

export interface OnboardingResult {
  user: UserRow;
  isNew: boolean;
  granted: boolean;
  available: number;
  session: SessionTokens;
}

export class OnboardingService {
  constructor(
    private readonly db: Queryable,
    private readonly sessions: SessionService,
    private readonly deviceCheck: DeviceCheckClient | undefined,
    private readonly grantCredits: number,
    private readonly log: Logger,
  ) {}

  async onboard(deviceId: string, deviceToken: string): Promise<OnboardingResult> {
    // A banned user's device gets no fresh guest (nor their own guest back: returning() refuses it).
    if (await deviceOfBannedUser(this.db, deviceId)) throw new UserBanned();
    // Asking Apple proves the token came from a genuine Apple device before anything is created
    // or handed out; its bits tell whether this device was already given free credits.
    const bits = this.deviceCheck ? await this.deviceCheck.queryTwoBits(deviceToken) : null;

    const deviceAlreadyGranted = bits?.bit0 === true;
    // Two rounds at most: a concurrent call may create this device's guest between our two steps.
    for (let round = 0; round < 2; round++) {
      const returning = await this.returning(deviceId, deviceToken);
      if (returning) return returning;
      const created = await this.createGuest(deviceId, deviceToken, deviceAlreadyGranted);
      if (created) return created;
    }
    throw new Error(`device ${deviceId}: neither a guest to return to nor one could be created`);
  }

  private async createGuest(deviceId: string, deviceToken: string, deviceAlreadyGranted: boolean): Promise<OnboardingResult | undefined> {
    const created = await withTransaction(this.db, async (tx) => {
      const user = await insertGuestIfAbsent(tx, deviceId);
      if (!user) return undefined; // a concurrent call for the same device won the insert
      await ledger.openAccount(tx, user.id);
      // A device id that had a guest before (since merged into an Apple account, or deleted) gets none.
      const first = await claimDeviceGrant(tx, deviceId, user.id, !deviceAlreadyGranted && this.grantCredits > 0);
      const granted = first?.granted
        ? (await ledger.grant(tx, { userId: user.id, amount: this.grantCredits, reason: 'initial guest grant' })).applied
        : false;
      const session = await this.sessions.start(user, tx);
      return { user, granted, session };
    });
    if (!created) return undefined; // a concurrent call for the same device won the insert
    if (!created.granted) {
      this.log.info({ userId: created.user.id, bit0: deviceAlreadyGranted }, 'device already received its free credits; no grant');
    }
    await this.settleOwedMark(deviceId, deviceToken);
    const account = await ledger.getAccount(this.db, created.user.id);
    return { user: created.user, isNew: true, granted: created.granted, available: account.available, session: created.session };
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
    await this.settleOwedMark(deviceId, deviceToken);
    const account = await ledger.getAccount(this.db, opened.user.id);
    return { user: opened.user, isNew: false, granted: false, available: account.available, session: opened.session };
  }

  /**
   * Sets bit0 after a grant committed. If Apple is unreachable then, the grant stands (the user
   * must not lose credits for our outage) and the mark stays owed by the device id — through merges
   * and deletions — until a later call from that device sets it.
   */
  private async settleOwedMark(deviceId: string, deviceToken: string): Promise<void> {
    if (!this.deviceCheck || !(await deviceMarkOwed(this.db, deviceId))) return;
    try {
      await this.deviceCheck.updateTwoBits(deviceToken, { bit0: true, bit1: false });
      await markDeviceBitSet(this.db, deviceId);
    } catch (err) {
      this.log.warn({ err, deviceId }, 'could not set the DeviceCheck bit after the grant; will retry on the next onboarding call');
    }
  }
}
