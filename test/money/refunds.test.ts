import { beforeEach, describe, expect, it } from 'vitest';
import { useAppStoreFakes, type FakeTransaction } from '../fakes/app-store.js';
import { appleSub, useFakeAppleId } from '../fakes/apple-id.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * Money integrity regressions around App Store purchases: a purchase verified while its guest is
 * merged into an Apple account, refunds and their reversals across a merge, a refund that arrives
 * before the purchase is credited, and refund notifications delivered out of Apple's order
 * (signedDate). Real HTTP through the in-process app, real PostgreSQL, the local Apple fakes.
 */

const STARTER = 'com.rendioai.credits.starter.25'; // 25 credits

const { fakes: appStore, txId } = useAppStoreFakes();
const apple = useFakeAppleId();

const notify = (t: TestApp, body: unknown) => t.post('/functions/v1/apple-server-notifications', { body });
const buy = (t: TestApp, token: string, transactionId: string) => t.post('/functions/v1/update-credits', { token, body: { transaction_id: transactionId } });
const signIn = (t: TestApp, idToken: string, guest?: Guest) =>
  t.post('/auth/v1/token?grant_type=id_token', { token: guest?.accessToken, body: { provider: 'apple', id_token: idToken } });

async function account(t: TestApp, userId: string): Promise<{ balance: number; held: number }> {
  const { rows } = await t.db.query('SELECT balance, held FROM credit_accounts WHERE user_id = $1', [userId]);
  return rows[0];
}

async function iapRow(t: TestApp, transactionId: string): Promise<{ user_id: string; revoked_at: Date | null } | undefined> {
  const { rows } = await t.db.query('SELECT user_id, revoked_at FROM iap_transactions WHERE transaction_id = $1', [transactionId]);
  return rows[0];
}

/** An existing Apple account that owns 10 credits of its own (a guest that became it). */
async function appleAccount(t: TestApp): Promise<{ sub: string; userId: string; accessToken: string }> {
  const sub = appleSub();
  const g0 = await t.createGuest();
  const res = await t.json(signIn(t, await apple.identityToken({ sub }), g0));
  expect(res.user.id).toBe(g0.userId);
  expect(await account(t, res.user.id)).toEqual({ balance: 10, held: 0 });
  return { sub, userId: res.user.id, accessToken: res.access_token };
}

/** A guest who bought the 25-credit pack: 35 credits with the free 10. */
async function buyer(t: TestApp): Promise<{ g: Guest; tx: FakeTransaction }> {
  const g = await t.createGuest();
  const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
  // Bought (and signed by Apple) ten minutes ago: every refund notification a test sends comes later.
  const fake = appStore().production;
  fake.clock = () => Date.now() - 600_000;
  try {
    await t.json(buy(t, g.accessToken, tx.transactionId));
  } finally {
    fake.clock = () => Date.now();
  }
  expect(await account(t, g.userId)).toEqual({ balance: 35, held: 0 });
  return { g, tx };
}

describe('money integrity: purchases, refunds and merges', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true', ...apple.env() }));
  beforeEach(() => {
    appStore().production.server.clearFaults();
    appStore().sandbox.server.clearFaults();
  });

  it('a purchase still being verified with Apple while its guest merges into an existing Apple account is credited to that account, and the account can re-send it', async () => {
    const a = await appleAccount(t());
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const gate = appStore().production.server.gate(new RegExp(`/inApps/v1/transactions/${tx.transactionId}$`));

    // The guest's purchase reaches Apple; Apple's answer is held back while the guest signs in.
    const pending = buy(t(), g.accessToken, tx.transactionId);
    let reached = false;
    await Promise.race([
      gate.reached.then(() => (reached = true)),
      pending.then((r) => {
        if (!reached) throw new Error(`update-credits answered HTTP ${r.status} before asking Apple`);
      }),
    ]);
    let merged: any;
    try {
      merged = await t().json(signIn(t(), await apple.identityToken({ sub: a.sub }), g));
      expect(merged.user.id).toBe(a.userId);
    } finally {
      gate.release();
    }
    const inFlight = await pending;
    expect(inFlight.status, await inFlight.text()).toBeLessThan(500);

    // The money landed on the account the guest became part of: its own 10 + the guest's 10 + 25.
    expect({
      account: await account(t(), a.userId),
      guestTombstone: await account(t(), g.userId),
      purchaseOwner: (await iapRow(t(), tx.transactionId))?.user_id,
    }).toEqual({
      account: { balance: 45, held: 0 },
      guestTombstone: { balance: 0, held: 0 },
      purchaseOwner: a.userId,
    });

    // The app re-sends the purchase (it has not called finish()) with the account's session.
    const retry = await t().json(buy(t(), merged.access_token, tx.transactionId));
    expect(retry).toMatchObject({ transaction_id: tx.transactionId, credits_added: 25, credits_remaining: 45, already_processed: true });
    expect(await account(t(), a.userId)).toEqual({ balance: 45, held: 0 });
  });

  it('REFUND_REVERSED after the refunded guest merged into an existing Apple account gives the 25 credits back to that account', async () => {
    const a = await appleAccount(t());
    const { g, tx } = await buyer(t());
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: Date.now(), revocationReason: 1 });
    expect(await t().json(notify(t(), refund))).toEqual({ received: true, outcome: 'refund_clawed_back' });
    expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });

    const merged = await t().json(signIn(t(), await apple.identityToken({ sub: a.sub }), g));
    expect(merged.user.id).toBe(a.userId);
    expect(await account(t(), a.userId)).toEqual({ balance: 20, held: 0 });

    const reversal = await appStore().production.notification('REFUND_REVERSED', tx);
    expect(await t().json(notify(t(), reversal))).toEqual({ received: true, outcome: 'refund_reversed' });
    expect({
      account: await account(t(), a.userId),
      guestTombstone: await account(t(), g.userId),
      revokedAt: (await iapRow(t(), tx.transactionId))?.revoked_at,
    }).toEqual({ account: { balance: 45, held: 0 }, guestTombstone: { balance: 0, held: 0 }, revokedAt: null });
  });

  it('a purchase Apple already refunded (REFUND arrived first) is recorded and taken back at once when the app re-sends its pre-refund signed transaction; the reversal restores it', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const boughtAt = Date.now() - 120_000;
    // StoreKit's jwsRepresentation, signed at purchase time: before the refund.
    const preRefundJws = await appStore().production.signTransaction(tx, undefined, boughtAt);
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: boughtAt + 30_000, revocationReason: 0 }, { signedDate: boughtAt + 30_000 });
    expect(await t().json(notify(t(), refund))).toEqual({ received: true, outcome: 'unknown_transaction' });

    const res = await t().json(
      t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: tx.transactionId, signed_transaction: preRefundJws } }),
    );
    expect(res).toMatchObject({ credits_added: 0, refunded: true, credits_remaining: 10 });
    expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });
    expect((await iapRow(t(), tx.transactionId))?.revoked_at).not.toBeNull();

    // Apple reverses the refund later: the recorded purchase is given back (nothing lost).
    const reversal = await appStore().production.notification('REFUND_REVERSED', tx, { signedDate: boughtAt + 60_000 });
    expect((await t().json(notify(t(), reversal))).outcome).toBe('refund_reversed');
    expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
  });

  it('a purchase Apple already refunded is taken back at once when the server asks Apple (Get Transaction Info carries the revocation)', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const refundedAt = Date.now() - 60_000;
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: refundedAt }, { signedDate: refundedAt });
    expect(await t().json(notify(t(), refund))).toEqual({ received: true, outcome: 'unknown_transaction' });
    appStore().production.add({ ...tx, revocationDate: refundedAt, revocationReason: 0 }); // Apple's own record now says refunded

    const res = await t().json(buy(t(), g.accessToken, tx.transactionId));
    expect(res).toMatchObject({ credits_added: 0, refunded: true });
    expect(await account(t(), g.userId)).toEqual({ balance: 10, held: 0 });
  });

  it("Apple's newer signed word wins over a stored refund: a transaction Apple signs as not refunded after the REFUND (its reversal was lost) is credited", async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const refundedAt = Date.now() - 60_000;
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: refundedAt }, { signedDate: refundedAt });
    await t().json(notify(t(), refund));
    // Apple reversed the refund; the REFUND_REVERSED notification never arrived, but Get Transaction Info (signed now) says so.
    const res = await t().json(buy(t(), g.accessToken, tx.transactionId));
    expect(res).toMatchObject({ credits_added: 25, credits_remaining: 35 });
    // The late REFUND_REVERSED, when it comes, changes nothing; an older REFUND redelivered neither.
    const reversal = await appStore().production.notification('REFUND_REVERSED', tx, { signedDate: refundedAt + 10_000 });
    expect((await t().json(notify(t(), reversal))).outcome).toBe('out_of_order');
    expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
  });

  it('a purchase whose early refund Apple then reversed (REFUND, REFUND_REVERSED, then the app sends it) is credited normally', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: STARTER });
    const t1 = Date.now() - 60_000;
    const refund = await appStore().production.notification('REFUND', { ...tx, revocationDate: t1 }, { signedDate: t1 });
    const reversal = await appStore().production.notification('REFUND_REVERSED', tx, { signedDate: t1 + 10_000 });
    expect((await t().json(notify(t(), refund))).received).toBe(true);
    expect((await t().json(notify(t(), reversal))).received).toBe(true);

    const res = await t().json(buy(t(), g.accessToken, tx.transactionId));
    expect(res).toMatchObject({ credits_added: 25, credits_remaining: 35, already_processed: false });
    expect(await account(t(), g.userId)).toEqual({ balance: 35, held: 0 });
    expect((await iapRow(t(), tx.transactionId))?.revoked_at).toBeNull();
  });
});

describe('money integrity: refund notifications are applied in the order Apple signed them (signedDate)', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));

  type Kind = 'REFUND' | 'REFUND_REVERSED';
  interface Event {
    label: string;
    type: Kind;
    signedDate: number;
  }

  /** Signs the events for tx (each its own notificationUUID) and delivers them in the given order. */
  async function deliver(tx: FakeTransaction, events: Event[]): Promise<string[]> {
    const outcomes: string[] = [];
    for (const e of events) {
      const inner = e.type === 'REFUND' ? { ...tx, revocationDate: e.signedDate, revocationReason: 0 } : tx;
      const body = await appStore().production.notification(e.type, inner, { signedDate: e.signedDate });
      outcomes.push((await t().json(notify(t(), body))).outcome);
    }
    return outcomes;
  }

  async function finalState(g: Guest, tx: FakeTransaction) {
    return { ...(await account(t(), g.userId)), revoked: (await iapRow(t(), tx.transactionId))?.revoked_at != null };
  }

  const base = () => Date.now() - 120_000;

  it('a REFUND_REVERSED delivered before the older REFUND it reverses leaves the purchase credited (35, not revoked)', async () => {
    const { g, tx } = await buyer(t());
    const t1 = base();
    await deliver(tx, [
      { label: 'REFUND_REVERSED@t2', type: 'REFUND_REVERSED', signedDate: t1 + 10_000 },
      { label: 'REFUND@t1', type: 'REFUND', signedDate: t1 },
    ]);
    expect(await finalState(g, tx)).toEqual({ balance: 35, held: 0, revoked: false });
  });

  it('REFUND, REFUND_REVERSED, then a second REFUND (three notifications) ends refunded: the second REFUND claws back again', async () => {
    const { g, tx } = await buyer(t());
    const t1 = base();
    const outcomes = await deliver(tx, [
      { label: 'REFUND@t1', type: 'REFUND', signedDate: t1 },
      { label: 'REFUND_REVERSED@t2', type: 'REFUND_REVERSED', signedDate: t1 + 10_000 },
      { label: 'REFUND@t3', type: 'REFUND', signedDate: t1 + 20_000 },
    ]);
    expect(outcomes).toEqual(['refund_clawed_back', 'refund_reversed', 'refund_clawed_back']);
    expect(await finalState(g, tx)).toEqual({ balance: 10, held: 0, revoked: true });
  });

  it('every delivery order of {REFUND t1, REFUND_REVERSED t2, REFUND t3} ends as in-order delivery does (clawed back, revoked)', async () => {
    const t1 = base();
    const events: Event[] = [
      { label: 'REFUND@t1', type: 'REFUND', signedDate: t1 },
      { label: 'REFUND_REVERSED@t2', type: 'REFUND_REVERSED', signedDate: t1 + 10_000 },
      { label: 'REFUND@t3', type: 'REFUND', signedDate: t1 + 20_000 },
    ];
    const permutations = (xs: Event[]): Event[][] =>
      xs.length <= 1 ? [xs] : xs.flatMap((x, i) => permutations([...xs.slice(0, i), ...xs.slice(i + 1)]).map((rest) => [x, ...rest]));

    const actual: Record<string, unknown> = {};
    const expected: Record<string, unknown> = {};
    for (const order of permutations(events)) {
      const { g, tx } = await buyer(t()); // a fresh guest and purchase per order
      await deliver(tx, order);
      const name = order.map((e) => e.label).join(' → ');
      actual[name] = await finalState(g, tx);
      expected[name] = { balance: 10, held: 0, revoked: true };
    }
    expect(actual).toEqual(expected);
  });
});
