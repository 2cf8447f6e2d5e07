import { withTransaction, type Queryable } from '../db/pool.js';
import { findModel, type ModelRow } from '../db/queries/catalogue.js';
import { revokeAllSessions } from '../db/queries/sessions.js';
import { lockUser } from '../db/queries/users.js';
import * as ledger from '../ledger/ledger.js';
import { AccountNotFound } from '../ledger/errors.js';
import { AdminInputRejected, AdminKeyReused, CatalogueWouldBeEmpty, ModelNotFound, TargetAccountClosed } from './errors.js';
import * as adminDb from './queries/admins.js';
import * as charts from './queries/charts.js';
import type { ChartRange } from './queries/charts.js';
import * as catalogueDb from './queries/models.js';
import * as reports from './queries/reports.js';

/**
 * What the support team can do, for the admin API and the console alike (both call these verbs, so
 * a rule lives in one place). Every change writes its audit row (admin_actions) in the same
 * transaction as the change itself: no change without its row, no row without its change.
 */

/** Who acts and in which request: what every audit row records. */
export interface Actor {
  adminId: string;
  requestId: string;
}

export interface CreditChange {
  userId: string;
  amount: number;
  reason: string;
  /** The client's request key: the same key again returns the first answer and moves nothing. */
  idempotencyKey: string;
}

export interface CreditChangeResult {
  replayed: boolean;
  action: adminDb.AdminActionRow;
}

export interface ModelPatch extends catalogueDb.ModelFields {
  reason?: string;
  /** Go ahead although the app would be left with no model to show. */
  confirm_empty_catalogue?: boolean;
}

const clawback = (a: ledger.AccountState, amount: number) => {
  const { taken, shortfall } = ledger.clawbackTake(a, amount);
  return { delta: -taken, shortfall };
};
/**
 * What an audit row's credit change really moved: a clawback's amount is what was asked, and what
 * it could not take (after.shortfall) stayed; a grant moves what it names. Null for other actions.
 */
export function creditsMoved(a: Pick<adminDb.AdminActionRow, 'action' | 'amount' | 'after'>): number | null {
  if (a.amount === null) return null;
  if (a.action === 'grant_credits') return a.amount;
  if (a.action === 'clawback_credits') return a.amount - Number(a.after?.shortfall ?? 0);
  return null;
}

const accountState = (a: ledger.AccountState) => ({ balance: a.balance, held: a.held, available: a.available, debt: a.debt });
const MODEL_AUDITED = ['is_active', 'is_available', 'is_featured', 'cost_per_generation', 'credits_per_second', 'sort_order'] as const;
const modelState = (m: ModelRow) => Object.fromEntries(MODEL_AUDITED.map((k) => [k, m[k] ?? null]));

export class AdminService {
  constructor(
    private readonly db: Queryable,
    /** Told after a model change commits: this process's get-models copy drops it before the NOTIFY arrives. */
    private readonly onCatalogueChanged: () => void = () => undefined,
  ) {}

  grantCredits(actor: Actor, req: CreditChange): Promise<CreditChangeResult> {
    return this.changeCredits(actor, req, 'grant_credits');
  }

  clawBackCredits(actor: Actor, req: CreditChange): Promise<CreditChangeResult> {
    return this.changeCredits(actor, req, 'clawback_credits');
  }

  /**
   * A grant or clawback through the ledger, idempotent per (admin, request key). Lock order as
   * everywhere: the owner's users row and account first (ledger.lockOwner), then the audit row,
   * then the entry. Holding the account lock, the audit row's before/after are exact. A clawback
   * takes at most what is available (never below zero, never held credits) and records the rest
   * as shortfall; the audit row's amount is what was asked.
   */
  private changeCredits(actor: Actor, req: CreditChange, action: 'grant_credits' | 'clawback_credits'): Promise<CreditChangeResult> {
    const fingerprint = JSON.stringify([action, req.userId, req.amount, req.reason]);
    return withTransaction(this.db, async (tx) => {
      const owner = await ledger.lockOwner(tx, req.userId);
      const replay = async () => {
        const first = await adminDb.findAdminActionByKey(tx, actor.adminId, req.idempotencyKey);
        if (!first || first.fingerprint !== fingerprint) throw new AdminKeyReused();
        return { replayed: true, action: first };
      };
      // A retry of a request that already committed replays, even if the account has closed since.
      const previous = await adminDb.findAdminActionByKey(tx, actor.adminId, req.idempotencyKey);
      if (previous) return replay();
      if (owner.closed) throw new TargetAccountClosed(req.userId);
      const before = owner.account;
      const take = action === 'grant_credits' ? { delta: req.amount, shortfall: 0 } : clawback(before, req.amount);
      // A shortfall is owed; a grant (like any credit) pays what is owed first.
      const after = ledger.settle(before, take.delta, take.shortfall);
      const inserted = await adminDb.insertAdminAction(tx, {
        adminId: actor.adminId,
        action,
        targetType: 'user',
        targetId: req.userId,
        amount: req.amount,
        reason: req.reason,
        requestId: actor.requestId,
        idempotencyKey: req.idempotencyKey,
        fingerprint,
        before: { ...accountState(before), owner_id: owner.ownerId },
        after: {
          ...accountState(after),
          owner_id: owner.ownerId,
          // What a clawback could not take (it never goes below zero nor into held credits).
          ...(action === 'clawback_credits' ? { shortfall: take.shortfall } : {}),
        },
      });
      // A concurrent request with the same key committed between our read and insert.
      if (!inserted) return replay();
      const input = { userId: req.userId, amount: req.amount, adminActionId: inserted.id, reason: req.reason };
      const moved = action === 'grant_credits' ? await ledger.adminGrant(tx, input) : await ledger.adminClawback(tx, input);
      if (!moved.applied || moved.account.balance !== after.balance || moved.account.debt !== after.debt) throw new Error(`admin action ${inserted.id}: the ledger disagrees with its audit row`);
      return { replayed: false, action: inserted };
    });
  }

  /**
   * Makes a model active (the app's one: the previous one stops being active, with its own audit
   * row), enables or disables it, features it, prices it or moves it in the catalogue. get-models'
   * ETag follows its body, so it changes too. A change that leaves the app with no model to show is
   * refused (ERR_4028) unless confirmed.
   */
  async updateModel(actor: Actor, modelId: string, patch: ModelPatch): Promise<{ model: ModelRow; action: adminDb.AdminActionRow }> {
    const changed = await withTransaction(this.db, async (tx) => {
      // Every model row, locked in one order: two changes of the active model cannot interleave.
      const { rows: all } = await tx.query<ModelRow>('SELECT * FROM models ORDER BY id FOR UPDATE');
      const before = all.find((m) => m.id === modelId);
      if (!before) throw new ModelNotFound(modelId);
      // A price is only what the model's pricing type reads: the other one would change nothing.
      if (patch.cost_per_generation !== undefined && before.pricing_type !== 'per_video') {
        throw new AdminInputRejected('this model is priced per second: set credits_per_second', 'cost_per_generation');
      }
      if (patch.credits_per_second !== undefined && before.pricing_type !== 'per_second') {
        throw new AdminInputRejected('this model is priced per video: set cost_per_generation', 'credits_per_second');
      }
      const audit = (target: string, from: ModelRow, to: ModelRow) =>
        adminDb.insertAdminAction(tx, {
          adminId: actor.adminId,
          action: 'update_model',
          targetType: 'model',
          targetId: target,
          amount: to.cost_per_generation !== from.cost_per_generation || to.credits_per_second !== from.credits_per_second ? (to.cost_per_generation ?? to.credits_per_second) : null,
          reason: patch.reason ?? null,
          requestId: actor.requestId,
          before: modelState(from),
          after: modelState(to),
        });
      // At most one model is active (models_single_active): the one it replaces goes first.
      if (patch.is_active && !before.is_active) {
        for (const previous of all.filter((m) => m.is_active)) {
          const replaced = await catalogueDb.setModelFields(tx, previous.id, { is_active: false });
          await audit(previous.id, previous, replaced);
        }
      }
      const model = await catalogueDb.setModelFields(tx, modelId, patch);
      const action = await audit(modelId, before, model);
      if (!patch.confirm_empty_catalogue) {
        const empty = await catalogueDb.catalogueEmptiness(tx);
        const wasEmpty = { active: !all.some((m) => m.is_active && m.is_available), available: !all.some((m) => m.is_available) };
        // Refusing throws: the transaction rolls back, nothing changed.
        if (empty.available && !wasEmpty.available) throw new CatalogueWouldBeEmpty('no available model');
        if (empty.active && !wasEmpty.active) throw new CatalogueWouldBeEmpty('no active, available model');
      }
      return { model, action: action! };
    });
    this.onCatalogueChanged();
    return changed;
  }

  /**
   * Bans a user: every request of theirs answers ERR_4014 (src/http/auth.ts), their sessions end
   * now, and the device ids they onboarded with cannot onboard a new guest (src/auth/onboarding.ts).
   */
  ban(actor: Actor, userId: string, reason: string): Promise<adminDb.AdminActionRow> {
    return this.setBanned(actor, userId, reason, true);
  }

  /** Lifts a ban. Sessions ended by the ban stay ended: the user signs in again. */
  unban(actor: Actor, userId: string, reason: string): Promise<adminDb.AdminActionRow> {
    return this.setBanned(actor, userId, reason, false);
  }

  private setBanned(actor: Actor, userId: string, reason: string, banned: boolean): Promise<adminDb.AdminActionRow> {
    return withTransaction(this.db, async (tx) => {
      // The users row first, FOR UPDATE: a sign-in or merge of this user waits, then sees the ban.
      const user = await lockUser(tx, userId);
      if (!user) throw new AccountNotFound(userId);
      if (user.merged_into || (banned && user.deleted_at)) throw new TargetAccountClosed(userId);
      const { rows } = await tx.query<{ banned_at: string | null }>(
        'UPDATE users SET banned_at = CASE WHEN $2 THEN coalesce(banned_at, now()) END WHERE id = $1 RETURNING banned_at',
        [userId, banned],
      );
      if (banned) await revokeAllSessions(tx, userId, 'banned');
      const action = await adminDb.insertAdminAction(tx, {
        adminId: actor.adminId,
        action: banned ? 'ban_user' : 'unban_user',
        targetType: 'user',
        targetId: userId,
        reason,
        requestId: actor.requestId,
        before: { banned_at: user.banned_at },
        after: { banned_at: rows[0]!.banned_at },
      });
      return action!;
    });
  }

  // ---- reads ------------------------------------------------------------------------------

  searchUsers(q: string) {
    return reports.searchUsers(this.db, q);
  }

  async userDetail(userId: string) {
    const user = await reports.findUserView(this.db, userId);
    if (!user) throw new AccountNotFound(userId);
    const [stats, entries, jobs, actions] = await Promise.all([
      reports.userStats(this.db, userId),
      reports.ledgerEntriesOf(this.db, userId, 50),
      reports.jobsOf(this.db, userId, 50),
      adminDb.listAdminActions(this.db, { limit: 20, targetType: 'user', targetId: userId }),
    ]);
    return { user, stats, entries, jobs, actions };
  }

  async userStats(userId: string) {
    const user = await reports.findUserView(this.db, userId);
    if (!user) throw new AccountNotFound(userId);
    return { user, stats: await reports.userStats(this.db, userId) };
  }

  async jobTimeline(jobId: string) {
    return reports.jobTimeline(this.db, jobId);
  }

  failures(hours: number) {
    return reports.failuresByProvider(this.db, hours);
  }

  dashboard() {
    return reports.dashboard(this.db);
  }

  charts(range: ChartRange) {
    return charts.charts(this.db, range);
  }

  auditLog(q: { before?: number; limit: number }) {
    return adminDb.listAdminActions(this.db, q);
  }

  models(): Promise<ModelRow[]> {
    return catalogueDb.allModels(this.db);
  }

  async model(modelId: string): Promise<ModelRow> {
    const m = await findModel(this.db, modelId);
    if (!m) throw new ModelNotFound(modelId);
    return m;
  }
}
