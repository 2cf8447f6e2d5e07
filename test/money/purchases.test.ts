import { beforeEach, describe, expect, it } from 'vitest';
import { ApplePki } from '../fakes/apple-pki.js';
import { useAppStoreFakes, type FakeTransaction } from '../fakes/app-store.js';
import { useTestApp, type Guest, type TestApp } from '../support/harness.js';

/**
 * update-credits against local fakes of the App Store Server API (production + sandbox), whose
 * signed data chains to a test root configured in place of Apple's: the production verifier
 * (Apple's library) runs unchanged.
 */

const { fakes: appStore, txId } = useAppStoreFakes();

const buy = (t: TestApp, g: Guest, body: Record<string, unknown>) => t.post('/functions/v1/update-credits', { token: g.accessToken, body });

async function ledgerTotal(t: TestApp, userId: string): Promise<{ balance: number; purchases: number }> {
  const { rows } = await t.db.query(
    `SELECT (SELECT balance FROM credit_accounts WHERE user_id = $1) AS balance,
            (SELECT count(*)::int FROM ledger_entries WHERE user_id = $1 AND kind = 'purchase') AS purchases`,
    [userId],
  );
  return rows[0];
}

describe('update-credits (App Store purchases)', () => {
  const t = useTestApp(() => ({ ...appStore().env(), ALLOW_GUEST_PURCHASES: 'true' }));
  beforeEach(() => {
    appStore().production.server.clearFaults();
    appStore().sandbox.server.clearFaults();
  });

  it('credits each product exactly its configured amount, once, verified with Apple', async () => {
    const g = await t().createGuest();
    let expected = 10;
    for (const [productId, credits] of [
      ['com.rendioai.credits.starter.25', 25],
      ['com.rendioai.credits.popular.60', 60],
      ['com.rendioai.credits.best.150', 150],
    ] as const) {
      const tx = appStore().production.add({ transactionId: txId(), productId });
      const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId, product_id: productId, receipt_data: 'MIIT…', purchase_date: '2026-11-25T10:20:30Z' }));
      expected += credits;
      // docs/reference/ios-app.md §5: the app decodes credits_added and total_credits.
      expect(res).toEqual({
        success: true,
        transaction_id: tx.transactionId,
        product_id: productId,
        credits_added: credits,
        credits_remaining: expected,
        total_credits: expected,
        already_processed: false,
        refunded: false,
      });
    }
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: expected, purchases: 3 });
    const rows = (await t().db.query('SELECT environment, credits, signed_transaction FROM iap_transactions WHERE user_id = $1', [g.userId])).rows;
    expect(rows).toHaveLength(3);
    for (const r of rows) {
      expect(r.environment).toBe('Production');
      expect(r.signed_transaction.split('.')).toHaveLength(3); // Apple's JWS kept as evidence
    }
  });

  it('credits quantity × the pack when Apple says more than one was bought', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25', quantity: 3 });
    const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId }));
    expect(res).toMatchObject({ credits_added: 75, total_credits: 85 });
  });

  it('a re-sent purchase answers the same result with already_processed and moves nothing', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.popular.60' });
    const first = await t().json(buy(t(), g, { transaction_id: tx.transactionId, product_id: tx.productId }));
    const again = await t().json(buy(t(), g, { transaction_id: tx.transactionId, product_id: tx.productId }));
    expect(first.already_processed).toBe(false);
    expect(again).toEqual({ ...first, already_processed: true });
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 70, purchases: 1 });
  });

  it('20 concurrent submissions of one transaction credit once', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.best.150' });
    const results = await Promise.all(Array.from({ length: 20 }, () => t().json(buy(t(), g, { transaction_id: tx.transactionId }))));
    expect(results.filter((r) => !r.already_processed)).toHaveLength(1);
    for (const r of results) expect(r.credits_added).toBe(150);
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 160, purchases: 1 });
  });

  it("another user's transaction id is refused with 409 and nothing moves", async () => {
    const [owner, thief] = [await t().createGuest(), await t().createGuest()];
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
    await t().json(buy(t(), owner, { transaction_id: tx.transactionId }));
    const res = await t().json(buy(t(), thief, { transaction_id: tx.transactionId }), 409);
    expect(res.error.code).toBe('ERR_4012');
    expect(await ledgerTotal(t(), thief.userId)).toEqual({ balance: 10, purchases: 0 });
    expect(await ledgerTotal(t(), owner.userId)).toEqual({ balance: 35, purchases: 1 });
  });

  it('falls back to the sandbox when production does not know the transaction (App Review)', async () => {
    const g = await t().createGuest();
    const tx = appStore().sandbox.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
    await t().json(buy(t(), g, { transaction_id: tx.transactionId }));
    expect(appStore().production.server.calls(new RegExp(tx.transactionId))).toHaveLength(1);
    expect(appStore().sandbox.server.calls(new RegExp(tx.transactionId))).toHaveLength(1);
    const row = (await t().db.query('SELECT environment FROM iap_transactions WHERE transaction_id = $1', [tx.transactionId])).rows[0];
    expect(row.environment).toBe('Sandbox');
  });

  it('reaches the sandbox while production refuses our key (401 until the first release: App Review time)', async () => {
    const g = await t().createGuest();
    const tx = appStore().sandbox.add({ transactionId: txId(), productId: 'com.rendioai.credits.popular.60' });
    appStore().production.server.inject(new RegExp(tx.transactionId), { status: 401, times: 1 });
    expect(await t().json(buy(t(), g, { transaction_id: tx.transactionId }))).toMatchObject({ credits_added: 60 });
    // Unknown to the sandbox while production cannot answer: not "not found", but try again later.
    const unknown = txId();
    appStore().production.server.inject(new RegExp(unknown), { status: 401, times: 1 });
    expect((await t().json(buy(t(), g, { transaction_id: unknown }), 503)).error.code).toBe('ERR_5002');
  });

  it('refuses what Apple does not vouch for, with a reason, crediting nothing', async () => {
    const g = await t().createGuest();
    const cases: [FakeTransaction | { transactionId: string }, Record<string, unknown>, string][] = [
      [{ transactionId: txId() }, {}, 'not_found'],
      [appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.gigantic.9999' }), {}, 'unknown_product'],
      [appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.pro.monthly', type: 'Auto-Renewable Subscription' }), {}, 'not_consumable'],
      [appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' }), { product_id: 'com.rendioai.credits.best.150' }, 'product_mismatch'],
      [appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25', bundleId: 'com.someone.else' }), {}, 'wrong_bundle'],
    ];
    for (const [tx, extra, reason] of cases) {
      const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId, ...extra }), 400);
      expect(res.error, reason).toMatchObject({ code: 'ERR_4011', details: { reason } });
    }
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 10, purchases: 0 });
    expect((await t().db.query('SELECT count(*)::int AS n FROM iap_transactions WHERE user_id = $1', [g.userId])).rows[0].n).toBe(0);
  });

  it('a purchase Apple already refunded is recorded and taken back at once (net 0), and a later REFUND_REVERSED restores it', async () => {
    const g = await t().createGuest();
    const refundedAt = Date.now() - 60_000;
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.best.150', revocationDate: refundedAt, revocationReason: 0 });
    const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId }));
    expect(res).toMatchObject({ success: true, credits_added: 0, credits_remaining: 10, refunded: true, already_processed: false });
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 10, purchases: 1 });
    const iapRow = (await t().db.query('SELECT user_id, revoked_at FROM iap_transactions WHERE transaction_id = $1', [tx.transactionId])).rows[0];
    expect(iapRow.user_id).toBe(g.userId);
    expect(iapRow.revoked_at).not.toBeNull();
    // The app re-sends it: the same answer.
    expect(await t().json(buy(t(), g, { transaction_id: tx.transactionId }))).toMatchObject({ credits_added: 0, refunded: true, already_processed: true });

    const { revocationDate: _r, revocationReason: _rr, ...reversed } = tx;
    const reversal = await appStore().production.notification('REFUND_REVERSED', reversed);
    expect(await t().json(t().post('/functions/v1/apple-server-notifications', { body: reversal }))).toMatchObject({ outcome: 'refund_reversed' });
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 160, purchases: 1 });
  });

  it('forged signed transactions (wrong key, self-signed chain, no Apple OIDs, expired leaf, wrong bundle) credit nothing', async () => {
    const g = await t().createGuest();
    const stranger = await ApplePki.create('Mallory');
    const noOids = await ApplePki.create('Plain CA', { withoutAppleOids: true });
    const tx = (productId = 'com.rendioai.credits.best.150') => ({ transactionId: txId(), productId });
    const forgeries: [string, string, string][] = [];
    const a = tx();
    forgeries.push([a.transactionId, await appStore().pki.sign(JSON.parse(Buffer.from((await appStore().production.signTransaction(a)).split('.')[1]!, 'base64url').toString()), { signWith: await ApplePki.strayKey() }), 'bad_signature']);
    const b = tx();
    forgeries.push([b.transactionId, await appStore().production.signTransaction(b, stranger), 'bad_signature']);
    const c = tx();
    forgeries.push([c.transactionId, await appStore().production.signTransaction(c, noOids), 'bad_signature']);
    const d = { ...tx(), bundleId: 'com.someone.else' };
    forgeries.push([d.transactionId, await appStore().production.signTransaction(d), 'wrong_bundle']);
    const e = { ...tx(), environment: 'Xcode' };
    forgeries.push([e.transactionId, await appStore().production.signTransaction(e), 'wrong_environment']);
    // Apple's chain, but the leaf had expired when the transaction was signed.
    const expiredLeaf = await appStore().pki.withLeaf({ leafNotBefore: new Date(Date.now() - 30 * 86_400_000), leafNotAfter: new Date(Date.now() - 86_400_000) });
    const x = tx();
    forgeries.push([x.transactionId, await appStore().production.signTransaction(x, expiredLeaf), 'bad_signature']);
    // A genuine signature over one transaction, presented as another.
    const f = tx();
    forgeries.push([txId(), await appStore().production.signTransaction(f), 'transaction_mismatch']);
    for (const [id, jws, reason] of forgeries) {
      const res = await t().json(buy(t(), g, { transaction_id: id, signed_transaction: jws }), 400);
      expect(res.error, reason).toMatchObject({ code: 'ERR_4011', details: { reason } });
    }
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 10, purchases: 0 });
  });

  it('a genuine StoreKit 2 signed transaction is credited without asking Apple', async () => {
    const g = await t().createGuest();
    const tx = { transactionId: txId(), productId: 'com.rendioai.credits.popular.60' };
    const before = appStore().production.server.requests.length;
    const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId, signed_transaction: await appStore().production.signTransaction(tx) }));
    expect(res).toMatchObject({ credits_added: 60, total_credits: 70 });
    expect(appStore().production.server.requests.length).toBe(before);
  });

  it('Apple unreachable (5xx, 429, our key refused, silence) → ERR_5002, nothing credited, a retry then works', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.starter.25' });
    const path = new RegExp(`/transactions/${tx.transactionId}`);
    for (const fault of [
      { status: 503, body: '' },
      { status: 500, body: JSON.stringify({ errorCode: 5000000, errorMessage: 'An unknown error occurred.' }) },
      { status: 429, body: JSON.stringify({ errorCode: 4290000, errorMessage: 'Rate limit exceeded.' }) },
      { status: 401, body: '' },
      { status: 200, delayMs: Infinity },
    ]) {
      appStore().production.server.inject(path, { ...fault, times: 1 });
      const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId }), 503);
      expect(res.error, JSON.stringify(fault)).toMatchObject({ code: 'ERR_5002', details: { service: 'app_store' } });
    }
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 10, purchases: 0 });
    await t().json(buy(t(), g, { transaction_id: tx.transactionId }));
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 35, purchases: 1 });
  });

  it('validates the request before asking Apple', async () => {
    const g = await t().createGuest();
    for (const body of [{}, { transaction_id: 'abc' }, { transaction_id: 42 }, { transaction_id: '1'.repeat(40) }]) {
      const res = await t().json(buy(t(), g, body), 400);
      expect(res.error.code).toBe('ERR_4008');
    }
    await t().json(t().post('/functions/v1/update-credits', { body: { transaction_id: '1' } }), 401);
    const other = await t().createGuest();
    await t().json(buy(t(), g, { transaction_id: '1', user_id: other.userId }), 403);
  });
});

describe('update-credits by default: guests cannot buy', () => {
  const t = useTestApp(() => appStore().env());

  it('a guest gets 403 ERR_4020 (sign in with Apple first) and nothing is recorded or asked of Apple', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.popular.60' });
    const calls = appStore().production.server.calls(new RegExp(tx.transactionId)).length;
    const res = await t().json(buy(t(), g, { transaction_id: tx.transactionId }), 403);
    expect(res.error).toMatchObject({ code: 'ERR_4020' });
    expect(await ledgerTotal(t(), g.userId)).toEqual({ balance: 10, purchases: 0 });
    expect(appStore().production.server.calls(new RegExp(tx.transactionId)).length).toBe(calls);
  });
});

describe('update-credits from the shipped app (legacy anon-key mode)', () => {
  const ANON = 'anon-key-for-the-shipped-app-0123456789';
  const t = useTestApp(() => ({ ...appStore().env(), ANON_KEY: ANON, LEGACY_ANON_CLIENTS: 'true' }));
  const legacy = { token: ANON, headers: { apikey: ANON } };

  it('accepts the exact request the app sends (after Sign in with Apple) and answers what it decodes', async () => {
    const g = await t().createGuest();
    // The shipped app only sells to a signed-in user (docs/reference/ios-app.md §5): its legacy Sign in with Apple first.
    await t().json(t().post('/functions/v1/merge-guest-user', { ...legacy, body: { device_id: g.deviceId, apple_sub: `001234.${g.userId.replaceAll('-', '')}.0987` } }));
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.popular.60' });
    const res = await t().json(
      t().post('/functions/v1/update-credits', {
        ...legacy,
        body: { user_id: g.userId, transaction_id: tx.transactionId, product_id: tx.productId, receipt_data: 'MIIUQgYJKoZIhvcNAQcCoIIUMzCCFC8CAQEx', purchase_date: '2026-11-16T10:20:30Z' },
      }),
    );
    expect(typeof res.credits_added).toBe('number');
    expect(typeof res.total_credits).toBe('number');
    expect(res).toMatchObject({ credits_added: 60, total_credits: 70 });
  });

  it('a guest named by the app is refused like any guest', async () => {
    const g = await t().createGuest();
    const tx = appStore().production.add({ transactionId: txId(), productId: 'com.rendioai.credits.popular.60' });
    const res = await t().json(t().post('/functions/v1/update-credits', { ...legacy, body: { user_id: g.userId, transaction_id: tx.transactionId } }), 403);
    expect(res.error.code).toBe('ERR_4020');
  });
});

describe('update-credits without App Store configuration', () => {
  const t = useTestApp({ ALLOW_GUEST_PURCHASES: 'true' });

  it('credits nothing and says the App Store is unavailable', async () => {
    const g = await t().createGuest();
    const res = await t().json(t().post('/functions/v1/update-credits', { token: g.accessToken, body: { transaction_id: '2000000123' } }), 503);
    expect(res.error).toMatchObject({ code: 'ERR_5002', details: { service: 'app_store' } });
  });
});
