import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type pg from 'pg';
import { createAdmin } from '../support/admin.js';
import { useAppStoreFakes } from '../fakes/app-store.js';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { useTestApp, type Guest } from '../support/harness.js';
import { ledgerBreaking } from '../support/ledger-breaking.js';

/**
 * verify-ledger's debt checks see what they are for. A correct state with debts is built through
 * the app (refunds while credits are held, releases collecting, a merge carrying a debt, a
 * reversal), then broken with SQL inside a rolled-back transaction; exactly the matching check must
 * report it (test/money/verify-ledger.invariants.test.ts does the same for the other checks).
 */

const CHECK = {
  total: 'debt equals the sum of the ledger, and is owed only while nothing is available',
  running: 'every entry carries the running debt (debt_after)',
  source: "a debt comes only from a clawback's shortfall, moves only with merges, and is paid from credits or cancelled",
  merges: 'merges move debts between accounts without creating or losing any',
  payments:
    "a debt is paid or cancelled only for the clawback that recorded it, on its owner, never beyond it; a refund's reversal cancels what is left and gives back at most what was collected (and not given back yet)",
  shortfall: 'a clawback records a shortfall only when it takes everything available',
} as const;

const { fakes: appStore, txId } = useAppStoreFakes();
const apple = useFakeAppleId();
const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true', ...apple.env() }));

/** Jobs that never finish on their own (the simulator hangs), holding `size` credits apiece. */
async function holdInJobs(g: Guest, sizes: number[]): Promise<string[]> {
  const jobs: string[] = [];
  for (const size of sizes) {
    const body = size === 1 ? { model_id: 'simulator-text-to-video', prompt: 'held [sim:hang]' } : { model_id: 'veo-3.1-text-to-video', prompt: 'held [sim:hang]', settings: { duration: size } };
    jobs.push((await t().json(t().generate(g, body))).job_id);
  }
  return jobs;
}

/** A guest who bought 25 credits: 35 with the free 10. */
async function buyer(): Promise<{ g: Guest; tx: { transactionId: string; productId: string } }> {
  const g = await t().createGuest();
  const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
  await t().json(t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId } }));
  return { g, tx };
}

/** A guest who bought 25 credits and holds all 35 in jobs that hang; then Apple refunds the 25. */
async function refundedWhileHeld(): Promise<{ g: Guest; tx: { transactionId: string; productId: string }; jobs: string[] }> {
  const { g, tx } = await buyer();
  const jobs = await holdInJobs(g, [8, 8, 8, 8, 1, 1, 1]);
  const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now() });
  expect((await t().json(t().post('/functions/v1/apple-server-notifications', { body: refund }))).outcome).toBe('refund_clawed_back');
  return { g, tx, jobs };
}

const cancel = (g: Guest, jobId: string) => t().json(t().post('/functions/v1/delete-video-job', { token: g.accessToken, body: { job_id: jobId } }));

const { whenBroken, expectOnly, expectClean } = ledgerBreaking(t);

/** Appends an entry with correct running totals and account totals: only the rule under test breaks. */
async function forge(c: pg.PoolClient, userId: string, e: { kind: string; amount?: number; debtDelta?: number; debtOf?: string; debtAfterOff?: number }): Promise<string> {
  const { rows } = await c.query('SELECT balance, held, debt FROM credit_accounts WHERE user_id = $1 FOR UPDATE', [userId]);
  const balance = rows[0].balance + (e.amount ?? 0);
  const debt = rows[0].debt + (e.debtDelta ?? 0);
  const inserted = await c.query(
    `INSERT INTO ledger_entries (user_id, kind, amount, debt_delta, debt_of, reason, balance_after, held_after, debt_after)
     VALUES ($1, $2, $3, $4, $5, 'forged by test', $6, $7, $8) RETURNING id`,
    [userId, e.kind, e.amount ?? 0, e.debtDelta ?? 0, e.debtOf ?? null, balance, rows[0].held, debt + (e.debtAfterOff ?? 0)],
  );
  await c.query('UPDATE credit_accounts SET balance = $2, debt = $3 WHERE user_id = $1', [userId, balance, debt]);
  return String(inserted.rows[0].id);
}

/**
 * What writeEntry leaves when a clawback miscounts what is available: it takes `taken`, records the
 * rest as shortfall and debt, and the debt is collected at once from the credits it said were not
 * there. Every total, running sum and debt payment agrees; only the shortfall is false.
 */
async function clawbackShortOfAvailable(
  c: pg.PoolClient,
  userId: string,
  e: { kind: 'refund_clawback' | 'admin_clawback'; taken: number; shortfall: number; transactionId?: string; adminActionId?: string },
): Promise<string> {
  const { rows } = await c.query('SELECT balance, held, debt FROM credit_accounts WHERE user_id = $1 FOR UPDATE', [userId]);
  const { balance, held, debt } = rows[0];
  const clawback = await c.query(
    `INSERT INTO ledger_entries (user_id, kind, amount, shortfall, debt_delta, transaction_id, refund_round, admin_action_id, reason, balance_after, held_after, debt_after)
     VALUES ($1, $2, $3, $4, $4, $5, $6, $7, 'forged by test', $8, $9, $10) RETURNING id::text`,
    [userId, e.kind, -e.taken, e.shortfall, e.transactionId ?? null, e.transactionId ? 1 : null, e.adminActionId ?? null, balance - e.taken, held, debt + e.shortfall],
  );
  const id = clawback.rows[0].id as string;
  const left = balance - e.taken - e.shortfall;
  await c.query(
    `INSERT INTO ledger_entries (user_id, kind, amount, debt_delta, debt_of, reason, balance_after, held_after, debt_after)
     VALUES ($1, 'debt_collection', $2, $2, $3, 'forged by test', $4, $5, $6)`,
    [userId, -e.shortfall, id, left, held, debt],
  );
  await c.query('UPDATE credit_accounts SET balance = $2 WHERE user_id = $1', [userId, left]);
  return id;
}

describe('verify-ledger: the debt checks see what they are for', () => {
  it('a correct state with debts is clean, and each broken rule is reported by its own check', async () => {
    // Owes 25 - 8 = 17 after one release.
    const owing = await refundedWhileHeld();
    await cancel(owing.g, owing.jobs[0]!);
    // A guest owing 25 merges into an Apple account with 10 available: the account pays 10 of it.
    const merged = await refundedWhileHeld();
    const sub = appleSub();
    const signIn = async (g: Guest) =>
      t().json(t().post('/auth/v1/token?grant_type=id_token', { token: g.accessToken, body: { provider: 'apple', id_token: await apple.identityToken({ sub }) } }));
    const a = await signIn(await t().createGuest()); // its guest's 10 free credits
    expect((await signIn(merged.g)).user.id).toBe(a.user.id);
    expect(await t().json(t().get('/functions/v1/get-user-credits', { token: a.access_token }))).toEqual({ credits_remaining: 0, balance: 35, held: 35, debt: 15 });
    // A reversed refund: its debt cancelled, what was collected for it given back.
    const reversed = await refundedWhileHeld();
    await cancel(reversed.g, reversed.jobs[0]!);
    const reversal = await appStore().production.notification('REFUND_REVERSED', reversed.tx);
    expect((await t().json(t().post('/functions/v1/apple-server-notifications', { body: reversal }))).outcome).toBe('refund_reversed');
    const credits = async (g: Guest) => t().json(t().get('/functions/v1/get-user-credits', { token: g.accessToken }));
    expect(await credits(owing.g)).toMatchObject({ credits_remaining: 0, debt: 17 });
    expect(await credits(reversed.g)).toMatchObject({ credits_remaining: 8, debt: 0 });
    await expectClean();

    const { rows } = await t().db.query("SELECT id::text FROM ledger_entries WHERE user_id = $1 AND kind = 'refund_clawback'", [owing.g.userId]);
    const clawback = rows[0].id as string;
    const purchase = (await t().db.query("SELECT id::text FROM ledger_entries WHERE user_id = $1 AND kind = 'purchase'", [owing.g.userId])).rows[0].id as string;
    const reversedClawback = (await t().db.query("SELECT id::text FROM ledger_entries WHERE user_id = $1 AND kind = 'refund_clawback'", [reversed.g.userId])).rows[0].id as string;

    // The account's debt column drifts from its entries.
    expectOnly(await whenBroken((c) => c.query('UPDATE credit_accounts SET debt = debt + 1 WHERE user_id = $1', [owing.g.userId]).then(() => undefined)), CHECK.total, owing.g.userId);
    // An entry whose debt_after is not the running sum.
    const off = await whenBroken(async (c) => void (await forge(c, owing.g.userId, { kind: 'admin_adjust', debtAfterOff: 1 })));
    expectOnly(off, CHECK.running, owing.g.userId);
    // A debt that no clawback recorded.
    const made = await whenBroken(async (c) => void (await forge(c, owing.g.userId, { kind: 'admin_adjust', debtDelta: 3 })));
    expectOnly(made, CHECK.source, owing.g.userId);
    // A merge that sends a debt away to nobody.
    const mergeBroken = await whenBroken(async (c) => void (await forge(c, a.user.id, { kind: 'debt_merge_out', debtDelta: -2 })));
    expectOnly(mergeBroken, CHECK.merges, '-2');
    // A debt cancelled against something that is not a clawback.
    const notAClawback = await whenBroken(async (c) => void (await forge(c, owing.g.userId, { kind: 'debt_reversal', debtDelta: -1, debtOf: purchase })));
    expectOnly(notAClawback, CHECK.payments, purchase);
    // A reversal that gives back more than was collected for its refund.
    const tooMuch = await whenBroken(async (c) => void (await forge(c, reversed.g.userId, { kind: 'debt_reversal', amount: 5, debtDelta: 0, debtOf: reversedClawback })));
    expectOnly(tooMuch, CHECK.payments, reversedClawback);
    // A reversal that leaves part of its refund's debt owed.
    const partial = await whenBroken(async (c) => void (await forge(c, owing.g.userId, { kind: 'debt_reversal', debtDelta: -1, debtOf: clawback })));
    expectOnly(partial, CHECK.payments, clawback);

    // And the database itself refuses credits available while a debt is owed.
    await expect(t().db.query('UPDATE credit_accounts SET balance = balance + 1 WHERE user_id = $1', [owing.g.userId])).rejects.toThrow(/debt_only_when_nothing_available/);
  });

  /** The shortfall and what was left available after each clawback of these users. */
  const clawbacksOf = async (...userIds: string[]) =>
    (
      await t().db.query(
        "SELECT user_id::text, kind, shortfall, balance_after - held_after AS left_available FROM ledger_entries WHERE user_id = ANY($1) AND kind IN ('refund_clawback', 'admin_clawback') ORDER BY id",
        [userIds],
      )
    ).rows;

  it(`${CHECK.shortfall}: a refund's clawback`, async () => {
    // Correct: a refund that finds the credits held by running jobs takes what is available
    // (nothing) and records the rest as shortfall. And a buyer with all 35 available.
    const held = await refundedWhileHeld();
    expect(await clawbacksOf(held.g.userId)).toEqual([{ user_id: held.g.userId, kind: 'refund_clawback', shortfall: 25, left_available: 0 }]);
    const { g, tx } = await buyer();
    await expectClean();

    // Broken: Apple refunds the buyer's 25; the clawback takes 10 and records 15 short.
    let clawback = '';
    const broken = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET revoked_at = now(), revocation_reason = 0 WHERE transaction_id = $1', [tx.transactionId]);
      await c.query(
        `INSERT INTO app_store_refund_states (transaction_id, refunded, signed_at) VALUES ($1, true, now())
         ON CONFLICT (transaction_id) DO UPDATE SET refunded = true, signed_at = now()`,
        [tx.transactionId],
      );
      clawback = await clawbackShortOfAvailable(c, g.userId, { kind: 'refund_clawback', taken: 10, shortfall: 15, transactionId: tx.transactionId });
    });
    expectOnly(broken, CHECK.shortfall, clawback, g.userId, 'refund_clawback');
    expect(broken[0]!.rows).toEqual([
      { id: Number(clawback), user_id: g.userId, kind: 'refund_clawback', amount: -10, shortfall: 15, balance_after: 25, held_after: 0, debt_after: 15 },
    ]);
    await expectClean();
  });

  it(`${CHECK.shortfall}: an admin clawback`, async () => {
    // Correct: support claws back 6 from a guest whose 10 are held by running jobs: nothing taken,
    // 6 short. And a guest with all 10 available.
    const admin = await createAdmin(t());
    const busy = await t().createGuest();
    await holdInJobs(busy, [8, 1, 1]);
    const clawedBack = await t().json(
      t().post(`/admin/api/users/${busy.userId}/credits/clawback`, { token: admin.token, body: { amount: 6, reason: 'chargeback' }, headers: { 'idempotency-key': randomUUID() } }),
    );
    expect(clawedBack.action.after).toMatchObject({ available: 0, shortfall: 6, debt: 6 });
    expect(await clawbacksOf(busy.userId)).toEqual([{ user_id: busy.userId, kind: 'admin_clawback', shortfall: 6, left_available: 0 }]);
    const g = await t().createGuest();
    await expectClean();

    // Broken: support claws back 10 from the guest; the clawback takes 4 and records 6 short.
    let clawback = '';
    const broken = await whenBroken(async (c) => {
      const { rows } = await c.query(
        `INSERT INTO admin_actions (admin_id, action, target_type, target_id, amount, reason, request_id)
         VALUES ($1, 'clawback_credits', 'user', $2, 10, 'chargeback', 'forged by test') RETURNING id::text`,
        [admin.id, g.userId],
      );
      clawback = await clawbackShortOfAvailable(c, g.userId, { kind: 'admin_clawback', taken: 4, shortfall: 6, adminActionId: rows[0].id });
    });
    expectOnly(broken, CHECK.shortfall, clawback, g.userId, 'admin_clawback');
    expect(broken[0]!.rows).toEqual([
      { id: Number(clawback), user_id: g.userId, kind: 'admin_clawback', amount: -4, shortfall: 6, balance_after: 6, held_after: 0, debt_after: 6 },
    ]);
    await expectClean();
  });
});
