import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type pg from 'pg';
import { deleteExpiredKeys } from '../../src/db/queries/idempotency.js';
import { useAppStoreFakes, type FakeTransaction } from '../fakes/app-store.js';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { createTestApp, type Guest, type TestApp } from '../support/harness.js';
import { ledgerBreaking } from '../support/ledger-breaking.js';

/**
 * The money invariants of migration 0007 (src/ledger/verify.ts) can see what they were written
 * for. Each test builds a correct state through the real app (guests, simulator videos, App Store
 * purchases and refund notifications, Sign in with Apple merges, account deletion), asserts that
 * verifyLedger() finds nothing, then breaks that state with direct SQL the way the historical bug
 * did and asserts that exactly the matching check reports it, naming the offending row.
 *
 * Every break runs inside a transaction that is rolled back, so the tests share one app (and one
 * database) and each starts from a state where every invariant holds. The harness's after-each
 * invariant hook (useTestApp) is deliberately not used.
 */

const SIM = 'simulator-text-to-video'; // 1 credit
const STARTER = 'com.rendioai.credits.starter.25'; // 25 credits

const CHECK = {
  reversal: 'a refund reversal restores at most what its clawback took, on the same (current) user',
  rounds: 'refund rounds alternate: each clawback after the first follows a reversal',
  revoked: "a purchase's revoked_at agrees with its clawbacks and with Apple's latest refund state",
  purchaseOwner: "a purchase belongs to a live account or the end of a merge chain, and its credit to that account's chain",
  closedEmpty: 'a merged or deleted account holds nothing: balance 0, held 0, no open hold',
  jobOwner: "a job belongs to its hold's (current) owner, never to a merged guest",
  idempotency: 'an idempotent answer names a job of the same (current) user',
  signs: 'credits come in only as positive grants, purchases and reversals, and leave only by clawbacks, merges and forfeits',
  grantPerDevice: 'a device is given the free grant at most once, across its guests and the accounts they merged into',
} as const;

const { fakes: appStore, txId } = useAppStoreFakes();
const apple = useFakeAppleId();
let t: TestApp;
beforeAll(async () => {
  t = await createTestApp({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true', ...apple.env() });
  // A bystander no break touches: an incremental pass must leave its account out.
  await t.createGuest();
});
afterAll(async () => {
  await t?.close();
});

// ---------------------------------------------------------------------------------------------
// Building correct states through the app
// ---------------------------------------------------------------------------------------------

const signIn = (idToken: string, guest?: Guest) =>
  t.post('/auth/v1/token?grant_type=id_token', { token: guest?.accessToken, body: { provider: 'apple', id_token: idToken } });

/** An existing Apple account with 10 credits of its own (a guest that became it). */
async function appleAccount(): Promise<{ sub: string; userId: string }> {
  const sub = appleSub();
  const g0 = await t.createGuest();
  const res = await t.json(signIn(await apple.identityToken({ sub }), g0));
  expect(res.user.id).toBe(g0.userId);
  return { sub, userId: res.user.id };
}

/** Signs the guest in to the existing Apple account: the guest is merged into it (a tombstone). */
async function mergeInto(g: Guest, a: { sub: string; userId: string }): Promise<void> {
  const res = await t.json(signIn(await apple.identityToken({ sub: a.sub }), g));
  expect(res.user.id).toBe(a.userId);
  expect((await t.db.query('SELECT merged_into FROM users WHERE id = $1', [g.userId])).rows[0].merged_into).toBe(a.userId);
}

/** Apple's clock for this file: purchases and refund notifications are signed in the order they happen. */
let clock = Date.now() - 3_600_000;

/** A guest who bought the 25-credit pack: 35 credits with the free 10. */
async function buyer(): Promise<{ g: Guest; tx: FakeTransaction }> {
  const g = await t.createGuest();
  const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
  // Apple signs the purchase on the same clock as the refund notifications below: before them.
  clock += 10_000;
  const signedAt = clock;
  appStore().production.clock = () => signedAt;
  const res = await t.json(t.post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId } }));
  expect(res).toMatchObject({ credits_added: 25, already_processed: false });
  return { g, tx };
}

/** Apple's REFUND / REFUND_REVERSED for tx, each signed later than the previous one. */
async function notify(type: 'REFUND' | 'REFUND_REVERSED', tx: FakeTransaction): Promise<string> {
  clock += 10_000;
  const inner = type === 'REFUND' ? { ...tx, revocationDate: clock, revocationReason: 0 } : tx;
  const body = await appStore().production.notification(type, inner, { signedDate: clock });
  return (await t.json(t.post('/functions/v1/apple-server-notifications', { body }))).outcome;
}

async function deleteAccount(g: Guest): Promise<void> {
  expect(await t.json(t.post('/functions/v1/delete-account', { token: g.accessToken, body: {} }))).toEqual({ success: true });
}

async function account(userId: string): Promise<{ balance: number; held: number }> {
  return (await t.db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [userId])).rows[0];
}

/** The app's own answers expire after a day and the worker deletes them: as if a day had passed. */
async function expireIdempotencyKeys(): Promise<void> {
  await t.db.query("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'");
  await deleteExpiredKeys(t.db);
}

// ---------------------------------------------------------------------------------------------
// Breaking them, inside a transaction that is rolled back
// ---------------------------------------------------------------------------------------------

const { whenBroken, expectOnly, expectClean } = ledgerBreaking(() => t);

/**
 * Appends an entry the way writeEntry does (locked account, running totals, account totals), so
 * only the invariant under test is broken. The ledger is append-only: history is forged by adding.
 */
async function forgeEntry(
  c: pg.PoolClient,
  e: { userId: string; kind: string; amount: number; transactionId?: string; refundRound?: number; reason?: string; shortfall?: number },
): Promise<string> {
  const { rows } = await c.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1 FOR UPDATE', [e.userId]);
  const { balance, held } = rows[0];
  const inserted = await c.query(
    `INSERT INTO ledger_entries (user_id, kind, amount, held_delta, transaction_id, refund_round, reason, shortfall, balance_after, held_after)
     VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9) RETURNING id`,
    [e.userId, e.kind, e.amount, e.transactionId ?? null, e.refundRound ?? null, e.reason ?? 'forged by test', e.shortfall ?? 0, balance + e.amount, held],
  );
  await c.query('UPDATE credit_accounts SET balance = $2 WHERE user_id = $1', [e.userId, balance + e.amount]);
  return String(inserted.rows[0].id);
}

// ---------------------------------------------------------------------------------------------

describe('verify-ledger: the money integrity invariants see the bugs they were written for', () => {
  it(CHECK.reversal, async () => {
    // Correct: a refunded guest merges into an Apple account; the reversal lands on the account,
    // the clawback stays on the guest's tombstone (same current owner).
    const a = await appleAccount();
    const { g: g1, tx: tx1 } = await buyer();
    expect(await notify('REFUND', tx1)).toBe('refund_clawed_back');
    await mergeInto(g1, a);
    expect(await notify('REFUND_REVERSED', tx1)).toBe('refund_reversed');
    expect(await account(a.userId)).toEqual({ balance: 45, held: 0 });
    // And a second buyer whose refund stands (round 1 clawed back, not reversed).
    const { g: g2, tx: tx2 } = await buyer();
    expect(await notify('REFUND', tx2)).toBe('refund_clawed_back');
    expect(await account(g2.userId)).toEqual({ balance: 10, held: 0 });
    await expectClean();

    // Broken: the reversal of g2's refund credited to another user (the Apple account).
    const elsewhere = await whenBroken(async (c) => {
      await forgeEntry(c, { userId: a.userId, kind: 'refund_reversal', amount: 25, transactionId: tx2.transactionId, refundRound: 1 });
      await c.query('UPDATE iap_transactions SET revoked_at = NULL, revocation_reason = NULL WHERE transaction_id = $1', [tx2.transactionId]);
      await c.query('UPDATE app_store_refund_states SET refunded = false WHERE transaction_id = $1', [tx2.transactionId]);
    });
    expectOnly(elsewhere, CHECK.reversal, tx2.transactionId, a.userId, g2.userId);

    // Broken: the reversal gives back more than the clawback took.
    const more = await whenBroken(async (c) => {
      await forgeEntry(c, { userId: g2.userId, kind: 'refund_reversal', amount: 26, transactionId: tx2.transactionId, refundRound: 1 });
      await c.query('UPDATE iap_transactions SET revoked_at = NULL, revocation_reason = NULL WHERE transaction_id = $1', [tx2.transactionId]);
      await c.query('UPDATE app_store_refund_states SET refunded = false WHERE transaction_id = $1', [tx2.transactionId]);
    });
    expectOnly(more, CHECK.reversal, tx2.transactionId);
    await expectClean();
  });

  it(CHECK.rounds, async () => {
    // Correct: REFUND, REFUND_REVERSED, REFUND again: round 1 clawback + reversal, round 2 clawback.
    const { g, tx } = await buyer();
    expect(await notify('REFUND', tx)).toBe('refund_clawed_back');
    expect(await notify('REFUND_REVERSED', tx)).toBe('refund_reversed');
    expect(await notify('REFUND', tx)).toBe('refund_clawed_back');
    expect(await account(g.userId)).toEqual({ balance: 10, held: 0 });
    const { g: g2, tx: tx2 } = await buyer();
    expect(await notify('REFUND', tx2)).toBe('refund_clawed_back');
    await expectClean();

    // Broken: a second clawback of a refund that was never reversed (one refund taken twice).
    const twice = await whenBroken(async (c) => {
      // The full refund (the 10 left taken, 15 short), so only the missing reversal is wrong.
      await forgeEntry(c, { userId: g2.userId, kind: 'refund_clawback', amount: -10, shortfall: 15, transactionId: tx2.transactionId, refundRound: 2 });
    });
    expectOnly(twice, CHECK.rounds, tx2.transactionId);
    await expectClean();
  });

  it(CHECK.revoked, async () => {
    // Correct: one purchase refunded (revoked), one refunded and reversed, one untouched.
    const { tx: refunded } = await buyer();
    expect(await notify('REFUND', refunded)).toBe('refund_clawed_back');
    const { tx: reversed } = await buyer();
    expect(await notify('REFUND', reversed)).toBe('refund_clawed_back');
    expect(await notify('REFUND_REVERSED', reversed)).toBe('refund_reversed');
    const { tx: kept } = await buyer();
    await expectClean();

    // Broken: revoked_at set without a clawback (the purchase still credited).
    const noClawback = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET revoked_at = now(), revocation_reason = 0 WHERE transaction_id = $1', [kept.transactionId]);
    });
    expectOnly(noClawback, CHECK.revoked, kept.transactionId);

    // Broken: Apple's refund recorded (state and revoked_at) but the credits never clawed back.
    const recordedOnly = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET revoked_at = now(), revocation_reason = 0 WHERE transaction_id = $1', [kept.transactionId]);
      await c.query(
        `INSERT INTO app_store_refund_states (transaction_id, refunded, signed_at) VALUES ($1, true, now())
         ON CONFLICT (transaction_id) DO UPDATE SET refunded = true, signed_at = now()`,
        [kept.transactionId],
      );
    });
    expectOnly(recordedOnly, CHECK.revoked, kept.transactionId);

    // Broken: the refund reversed in the ledger while Apple still says refunded (and revoked_at stays).
    const reversedInLedgerOnly = await whenBroken(async (c) => {
      const g = (await c.query('SELECT user_id FROM iap_transactions WHERE transaction_id = $1', [refunded.transactionId])).rows[0].user_id;
      await forgeEntry(c, { userId: g, kind: 'refund_reversal', amount: 25, transactionId: refunded.transactionId, refundRound: 1 });
    });
    expectOnly(reversedInLedgerOnly, CHECK.revoked, refunded.transactionId);

    // Broken: the reversal's revoked_at never cleared.
    const stillRevoked = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET revoked_at = now() WHERE transaction_id = $1', [reversed.transactionId]);
    });
    expectOnly(stillRevoked, CHECK.revoked, reversed.transactionId);

    // Broken: clawed back but revoked_at cleared (a reversal recorded on the purchase, not in the ledger).
    const clearedOnly = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET revoked_at = NULL WHERE transaction_id = $1', [refunded.transactionId]);
    });
    expectOnly(clearedOnly, CHECK.revoked, refunded.transactionId);

    // Broken: Apple's latest word (a newer REFUND_REVERSED) was recorded but never applied.
    const staleState = await whenBroken(async (c) => {
      await c.query('UPDATE app_store_refund_states SET refunded = false WHERE transaction_id = $1', [refunded.transactionId]);
    });
    expectOnly(staleState, CHECK.revoked, refunded.transactionId);
    await expectClean();
  });

  it(CHECK.purchaseOwner, async () => {
    // Correct: a guest buys, then merges into an Apple account: the purchase row follows it to the
    // account, its credit entry stays on the tombstone (whose chain ends at the account).
    const a = await appleAccount();
    const { g, tx } = await buyer();
    await mergeInto(g, a);
    expect(await account(a.userId)).toEqual({ balance: 45, held: 0 });
    expect((await t.db.query('SELECT user_id FROM iap_transactions WHERE transaction_id = $1', [tx.transactionId])).rows[0].user_id).toBe(a.userId);
    const other = await t.createGuest();
    await expectClean();

    // Broken: the purchase left on the merged guest's tombstone.
    const onTombstone = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET user_id = $2 WHERE transaction_id = $1', [tx.transactionId, g.userId]);
    });
    expectOnly(onTombstone, CHECK.purchaseOwner, tx.transactionId, g.userId);

    // Broken: the purchase recorded for someone whose chain its credit is not on.
    const wrongChain = await whenBroken(async (c) => {
      await c.query('UPDATE iap_transactions SET user_id = $2 WHERE transaction_id = $1', [tx.transactionId, other.userId]);
    });
    expectOnly(wrongChain, CHECK.purchaseOwner, tx.transactionId, other.userId);

    // Broken: a purchase recorded but never credited.
    const uncredited = String(BigInt(tx.transactionId) + 500_000_000_000n);
    const notCredited = await whenBroken(async (c) => {
      await c.query(
        `INSERT INTO iap_transactions (transaction_id, original_transaction_id, user_id, product_id, quantity, credits, environment, purchased_at, signed_transaction)
         SELECT $2, $2, $3, product_id, quantity, credits, environment, purchased_at, signed_transaction FROM iap_transactions WHERE transaction_id = $1`,
        [tx.transactionId, uncredited, other.userId],
      );
    });
    expectOnly(notCredited, CHECK.purchaseOwner, uncredited);
    await expectClean();
  });

  it(CHECK.closedEmpty, async () => {
    // Correct: a merged guest's tombstone and a deleted account (its credits forfeit) hold nothing.
    const a = await appleAccount();
    const merged = await t.createGuest();
    await mergeInto(merged, a);
    const deleted = await t.createGuest();
    await deleteAccount(deleted);
    expect(await account(merged.userId)).toEqual({ balance: 0, held: 0 });
    expect(await account(deleted.userId)).toEqual({ balance: 0, held: 0 });
    const g = await t.createGuest(); // 10 credits
    const busy = await t.createGuest(); // 10 credits, 1 held by a queued video (no worker)
    await t.json(t.generate(busy, { model_id: SIM, prompt: 'still queued' }));
    expect(await account(busy.userId)).toEqual({ balance: 10, held: 1 });
    await expectClean();

    // Broken: deletion that did not forfeit the balance.
    const notForfeited = await whenBroken(async (c) => {
      await c.query('UPDATE users SET deleted_at = now() WHERE id = $1', [g.userId]);
    });
    expectOnly(notForfeited, CHECK.closedEmpty, g.userId);

    // Broken: deleted while a video still held credits (its hold left open).
    const holdLeftOpen = await whenBroken(async (c) => {
      await c.query('UPDATE users SET deleted_at = now() WHERE id = $1', [busy.userId]);
    });
    expectOnly(holdLeftOpen, CHECK.closedEmpty, busy.userId);

    // Broken: a merge that did not move the guest's credits.
    const notMoved = await whenBroken(async (c) => {
      await c.query('UPDATE users SET merged_into = $2, deleted_at = now(), device_id = NULL WHERE id = $1', [g.userId, a.userId]);
    });
    expectOnly(notMoved, CHECK.closedEmpty, g.userId);
    await expectClean();
  });

  it(CHECK.jobOwner, async () => {
    // Correct: a guest with a delivered video (hold captured on the guest) and a queued one (hold
    // open) merges into an Apple account: both jobs and the open hold move to the account.
    const a = await appleAccount();
    const g = await t.createGuest();
    await t.startWorker();
    let done: string;
    try {
      done = (await t.json(t.generate(g, { model_id: SIM, prompt: 'delivered before signing in' }))).job_id;
      expect((await t.waitForJob(g.accessToken, done)).status).toBe('completed');
    } finally {
      await t.stopWorker();
    }
    const queued = (await t.json(t.generate(g, { model_id: SIM, prompt: 'queued while signing in' }))).job_id;
    await mergeInto(g, a);
    const jobs = await t.db.query(
      'SELECT j.job_id, j.user_id, h.user_id AS hold_user, h.status FROM video_jobs j JOIN credit_holds h ON h.id = j.hold_id WHERE j.job_id = ANY($1) ORDER BY h.status',
      [[done, queued]],
    );
    expect(jobs.rows).toEqual([
      { job_id: done, user_id: a.userId, hold_user: g.userId, status: 'captured' },
      { job_id: queued, user_id: a.userId, hold_user: a.userId, status: 'open' },
    ]);
    // Their idempotent answers have expired (they follow their jobs; their own check is tested below).
    await expireIdempotencyKeys();
    const other = await t.createGuest();
    await expectClean();

    // Broken: the delivered job left on the merged guest.
    const leftOnGuest = await whenBroken(async (c) => {
      await c.query('UPDATE video_jobs SET user_id = $2 WHERE job_id = $1', [done, g.userId]);
    });
    expectOnly(leftOnGuest, CHECK.jobOwner, done, g.userId);

    // Broken: the running job moved away from its open hold.
    const awayFromHold = await whenBroken(async (c) => {
      await c.query('UPDATE video_jobs SET user_id = $2 WHERE job_id = $1', [queued, other.userId]);
    });
    expectOnly(awayFromHold, CHECK.jobOwner, queued, other.userId);

    // Broken: the delivered job on a live user outside its hold's merge chain.
    const outsideChain = await whenBroken(async (c) => {
      await c.query('UPDATE video_jobs SET user_id = $2 WHERE job_id = $1', [done, other.userId]);
    });
    expectOnly(outsideChain, CHECK.jobOwner, done, other.userId);
    await expectClean();
  });

  it(CHECK.idempotency, async () => {
    // Correct: a guest's generate-video answer follows it into the Apple account, with the job.
    const a = await appleAccount();
    const g = await t.createGuest();
    const key = randomUUID().toUpperCase();
    await t.json(t.generate(g, { model_id: SIM, prompt: 'answered before signing in' }, key));
    await mergeInto(g, a);
    const k = (await t.db.query('SELECT id, user_id FROM idempotency_keys WHERE key = $1', [key])).rows;
    expect(k).toEqual([{ id: expect.anything(), user_id: a.userId }]);
    const keyId = String(k[0].id);
    const other = await t.createGuest();
    const otherJob = (await t.json(t.generate(other, { model_id: SIM, prompt: "someone else's video" }))).job_id;
    await expectClean();

    // Broken: the key left on the merged guest.
    const onGuest = await whenBroken(async (c) => {
      await c.query('UPDATE idempotency_keys SET user_id = $2 WHERE id = $1', [keyId, g.userId]);
    });
    expectOnly(onGuest, CHECK.idempotency, keyId, g.userId);

    // Broken: the account's answer names another user's job.
    const othersJob = await whenBroken(async (c) => {
      await c.query(`UPDATE idempotency_keys SET response_body = jsonb_set(response_body, '{job_id}', to_jsonb($2::text)) WHERE id = $1`, [keyId, otherJob]);
    });
    expectOnly(othersJob, CHECK.idempotency, keyId, otherJob, other.userId);

    // Broken: a request of the guest's still claiming its key when the merge left it on the guest.
    const pendingKey = randomUUID().toUpperCase();
    let pendingId = '';
    const claimOnGuest = await whenBroken(async (c) => {
      const { rows } = await c.query(
        `INSERT INTO idempotency_keys (user_id, key, request_method, request_path, request_fingerprint, locked_at, claim_token)
         VALUES ($1, $2, 'POST', '/functions/v1/generate-video', 'fingerprint', now(), gen_random_uuid()) RETURNING id`,
        [g.userId, pendingKey],
      );
      pendingId = String(rows[0].id);
    });
    expectOnly(claimOnGuest, CHECK.idempotency, pendingId, g.userId);

    // Broken: an answer naming a job that does not exist.
    const ghost = randomUUID();
    const noJob = await whenBroken(async (c) => {
      await c.query(`UPDATE idempotency_keys SET response_body = jsonb_set(response_body, '{job_id}', to_jsonb($2::text)) WHERE id = $1`, [keyId, ghost]);
    });
    expectOnly(noJob, CHECK.idempotency, keyId, ghost);
    await expectClean();
  });

  it(CHECK.signs, async () => {
    // Correct: a refunded buyer deletes the account (the rest is forfeit, a negative entry), then
    // Apple reverses the refund: nothing comes back to a deleted account (a reversal of 0).
    const { g, tx } = await buyer();
    expect(await notify('REFUND', tx)).toBe('refund_clawed_back');
    await deleteAccount(g);
    expect(await notify('REFUND_REVERSED', tx)).toBe('refund_reversed');
    const entries = await t.db.query(
      "SELECT kind, amount FROM ledger_entries WHERE user_id = $1 AND kind IN ('forfeit', 'refund_reversal') ORDER BY id",
      [g.userId],
    );
    expect(entries.rows).toEqual([
      { kind: 'forfeit', amount: -10 },
      { kind: 'refund_reversal', amount: 0 },
    ]);
    const live = await t.createGuest();
    await expectClean();

    // Broken: a "forfeit" that gives credits.
    let id = '';
    const positive = await whenBroken(async (c) => {
      id = await forgeEntry(c, { userId: live.userId, kind: 'forfeit', amount: 5 });
    });
    expectOnly(positive, CHECK.signs, id, 'forfeit', '5');

    // Broken: a forfeit of nothing.
    const zero = await whenBroken(async (c) => {
      id = await forgeEntry(c, { userId: live.userId, kind: 'forfeit', amount: 0 });
    });
    expectOnly(zero, CHECK.signs, id, 'forfeit', '0');

    // Broken: a purchase entry that takes credits.
    const negativePurchase = await whenBroken(async (c) => {
      id = await forgeEntry(c, { userId: live.userId, kind: 'purchase', amount: -3, transactionId: txId() });
    });
    expectOnly(negativePurchase, CHECK.signs, id, 'purchase', '-3');
    await expectClean();
  });

  it(CHECK.grantPerDevice, async () => {
    // Correct: a device's first guest gets the grant and becomes an Apple account; the device
    // onboards again and its new guest gets none. A second device's guest merges into that account
    // with its own grant (one per device, both now on one account). A third device's guest merges
    // into an Apple account that never was a guest (onboarded from no device).
    const device = randomUUID().toUpperCase();
    const first = await t.createGuest(device);
    expect(first.credits).toBe(10);
    const a = { sub: appleSub(), userId: first.userId };
    expect((await t.json(signIn(await apple.identityToken({ sub: a.sub }), first))).user.id).toBe(first.userId);
    const again = await t.createGuest(device);
    expect(again.userId).not.toBe(first.userId);
    expect(again.credits).toBe(0);
    const otherDevice = await t.createGuest();
    await mergeInto(otherDevice, a);
    const b = { sub: appleSub(), userId: '' };
    b.userId = (await t.json(signIn(await apple.identityToken({ sub: b.sub })))).user.id;
    const third = await t.createGuest();
    await mergeInto(third, b);
    expect(await account(a.userId)).toEqual({ balance: 20, held: 0 });
    expect(await account(b.userId)).toEqual({ balance: 10, held: 0 });
    await expectClean();

    /** After the break, exactly the grants of `owner` (whose device they count for) and `extra` are reported, under that device. */
    async function expectTwoGrants(breakIt: (c: pg.PoolClient) => Promise<unknown>, owner: string, extra: string): Promise<void> {
      let expected: Record<string, unknown>[] = [];
      const violations = await whenBroken(async (c) => {
        await breakIt(c);
        const { rows } = await c.query(
          "SELECT u.onboarded_device_hash AS device_hash, e.id, e.user_id::text, e.amount FROM ledger_entries e JOIN users u ON u.id = $1 WHERE e.kind = 'grant' AND e.user_id IN ($1, $2) ORDER BY e.id",
          [owner, extra],
        );
        expected = rows.map((r) => ({ ...r, grants: 2 }));
      });
      expectOnly(violations, CHECK.grantPerDevice, extra);
      expect([...violations[0]!.rows].sort((x, y) => Number(x.id) - Number(y.id))).toEqual(expected);
      expect(expected.map((r) => r.user_id)).toEqual([owner, extra]);
    }

    // Broken: the device's second guest given the free grant too.
    await expectTwoGrants((c) => forgeEntry(c, { userId: again.userId, kind: 'grant', amount: 10, reason: 'initial guest grant' }), first.userId, again.userId);
    // Broken: the account the third device's guest merged into given a grant of its own.
    await expectTwoGrants((c) => forgeEntry(c, { userId: b.userId, kind: 'grant', amount: 10, reason: 'initial guest grant' }), third.userId, b.userId);
    // Broken: another device's guest, with its grant, recorded as onboarded from the first device.
    const rerecord = 'UPDATE users SET onboarded_device_hash = (SELECT onboarded_device_hash FROM users WHERE id = $2) WHERE id = $1';
    await expectTwoGrants((c) => c.query(rerecord, [otherDevice.userId, first.userId]), first.userId, otherDevice.userId);
    await expectClean();
  });
});
