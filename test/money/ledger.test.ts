import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { HoldAlreadyResolved, InsufficientCredits, InvalidAmount } from '../../src/ledger/errors.js';
import * as ledger from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { useTestApp } from '../support/harness.js';

describe('ledger operations', () => {
  const t = useTestApp();

  async function newAccount(): Promise<string> {
    const { rows } = await t().db.query('INSERT INTO users (is_guest) VALUES (true) RETURNING id');
    await ledger.openAccount(t().db, rows[0].id);
    return rows[0].id;
  }

  it('grants at most once per user', async () => {
    const u = await newAccount();
    expect((await ledger.grant(t().db, { userId: u, amount: 10 })).applied).toBe(true);
    const second = await ledger.grant(t().db, { userId: u, amount: 10 });
    expect(second.applied).toBe(false);
    expect(await ledger.getAccount(t().db, u)).toEqual({ balance: 10, held: 0, available: 10, debt: 0 });
  });

  it('credits a transaction id once, ever, and says to whom', async () => {
    const [a, b] = [await newAccount(), await newAccount()];
    const tx = `tx-${randomUUID()}`;
    const first = await ledger.purchase(t().db, { userId: a, amount: 25, transactionId: tx });
    expect(first).toMatchObject({ applied: true, creditedTo: a });
    expect(await ledger.purchase(t().db, { userId: a, amount: 25, transactionId: tx })).toMatchObject({ applied: false, creditedTo: a });
    expect(await ledger.purchase(t().db, { userId: b, amount: 25, transactionId: tx })).toMatchObject({ applied: false, creditedTo: a });
    expect((await ledger.getAccount(t().db, a)).balance).toBe(25);
    expect((await ledger.getAccount(t().db, b)).balance).toBe(0);
  });

  it('20 concurrent purchases of one transaction credit once', async () => {
    const u = await newAccount();
    const tx = `tx-${randomUUID()}`;
    const results = await Promise.all(
      Array.from({ length: 20 }, () => ledger.purchase(t().db, { userId: u, amount: 60, transactionId: tx })),
    );
    expect(results.filter((r) => r.applied)).toHaveLength(1);
    expect((await ledger.getAccount(t().db, u)).balance).toBe(60);
  });

  it('holds only what is available and refuses the rest with required/available', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    await ledger.hold(t().db, { userId: u, amount: 8, jobId: randomUUID() });
    const err = await ledger.hold(t().db, { userId: u, amount: 4, jobId: randomUUID() }).catch((e) => e);
    expect(err).toBeInstanceOf(InsufficientCredits);
    expect(err).toMatchObject({ required: 4, available: 2 });
    expect(await ledger.getAccount(t().db, u)).toEqual({ balance: 10, held: 8, available: 2, debt: 0 });
  });

  it('one hold per job: holding again for the same job returns the same hold', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    const job = randomUUID();
    const a = await ledger.hold(t().db, { userId: u, amount: 4, jobId: job });
    const b = await ledger.hold(t().db, { userId: u, amount: 4, jobId: job });
    expect(b).toMatchObject({ holdId: a.holdId, created: false });
    expect((await ledger.getAccount(t().db, u)).held).toBe(4);
  });

  it('captures a hold once; a second capture or a release after it is refused', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    const { holdId } = await ledger.hold(t().db, { userId: u, amount: 8, jobId: randomUUID() });
    expect(await ledger.capture(t().db, { holdId })).toEqual({ balance: 2, held: 0, available: 2, debt: 0 });
    await expect(ledger.capture(t().db, { holdId })).rejects.toBeInstanceOf(HoldAlreadyResolved);
    await expect(ledger.release(t().db, { holdId })).rejects.toBeInstanceOf(HoldAlreadyResolved);
    expect(await ledger.getAccount(t().db, u)).toEqual({ balance: 2, held: 0, available: 2, debt: 0 });
  });

  it('racing capture and release of one hold: exactly one wins', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    const { holdId } = await ledger.hold(t().db, { userId: u, amount: 6, jobId: randomUUID() });
    const outcomes = await Promise.allSettled([
      ledger.capture(t().db, { holdId }),
      ledger.release(t().db, { holdId }),
      ledger.capture(t().db, { holdId }),
      ledger.release(t().db, { holdId }),
    ]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(1);
    for (const o of outcomes) if (o.status === 'rejected') expect(o.reason).toBeInstanceOf(HoldAlreadyResolved);
  });

  it('a partial capture spends part and releases the remainder', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    const { holdId } = await ledger.hold(t().db, { userId: u, amount: 8, jobId: randomUUID() });
    expect(await ledger.capture(t().db, { holdId, amount: 5 })).toEqual({ balance: 5, held: 0, available: 5, debt: 0 });
    await expect(ledger.capture(t().db, { holdId: (await ledger.hold(t().db, { userId: u, amount: 2, jobId: randomUUID() })).holdId, amount: 3 }))
      .rejects.toBeInstanceOf(InvalidAmount);
  });

  it('a release gives everything back', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    const { holdId } = await ledger.hold(t().db, { userId: u, amount: 10, jobId: randomUUID() });
    expect(await ledger.release(t().db, { holdId, reason: 'provider failed' })).toEqual({ balance: 10, held: 0, available: 10, debt: 0 });
  });

  it('a clawback never goes below zero nor into held credits, and records the shortfall once, as debt', async () => {
    const u = await newAccount();
    const tx = `tx-${randomUUID()}`;
    await ledger.purchase(t().db, { userId: u, amount: 25, transactionId: tx });
    await ledger.hold(t().db, { userId: u, amount: 5, jobId: randomUUID() });
    const spend = await ledger.hold(t().db, { userId: u, amount: 15, jobId: randomUUID() });
    await ledger.capture(t().db, { holdId: spend.holdId }); // balance 10, held 5, available 5
    const r = await ledger.clawback(t().db, { userId: u, transactionId: tx, amount: 25 });
    expect(r).toMatchObject({ applied: true, clawedBack: 5, shortfall: 20 });
    expect(await ledger.getAccount(t().db, u)).toEqual({ balance: 5, held: 5, available: 0, debt: 20 });
    expect(await ledger.clawback(t().db, { userId: u, transactionId: tx, amount: 25 })).toMatchObject({ applied: false, clawedBack: 0 });
    const entry = await t().db.query("SELECT shortfall FROM ledger_entries WHERE kind = 'refund_clawback' AND transaction_id = $1", [tx]);
    expect(entry.rows).toEqual([{ shortfall: 20 }]);
  });

  it('admin adjustments add, and subtract only what is available', async () => {
    const u = await newAccount();
    await ledger.adminAdjust(t().db, { userId: u, amount: 7, reason: 'support goodwill' });
    await expect(ledger.adminAdjust(t().db, { userId: u, amount: -8, reason: 'too much' })).rejects.toBeInstanceOf(InsufficientCredits);
    await ledger.adminAdjust(t().db, { userId: u, amount: -7, reason: 'correction' });
    expect((await ledger.getAccount(t().db, u)).balance).toBe(0);
  });

  it('rejects zero, negative and fractional amounts', async () => {
    const u = await newAccount();
    for (const amount of [0, -1, 1.5, Number.NaN]) {
      await expect(ledger.grant(t().db, { userId: u, amount })).rejects.toBeInstanceOf(InvalidAmount);
      await expect(ledger.hold(t().db, { userId: u, amount, jobId: randomUUID() })).rejects.toBeInstanceOf(InvalidAmount);
    }
  });

  it('ledger entries are append-only', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    await expect(t().db.query('UPDATE ledger_entries SET amount = 1000 WHERE user_id = $1', [u])).rejects.toThrow(/append-only/);
    await expect(t().db.query('DELETE FROM ledger_entries WHERE user_id = $1', [u])).rejects.toThrow(/append-only/);
  });

  it('the invariant checker catches a balance edited behind the ledger', async () => {
    const u = await newAccount();
    await ledger.grant(t().db, { userId: u, amount: 10 });
    await t().db.query('UPDATE credit_accounts SET balance = 1000 WHERE user_id = $1', [u]);
    const violations = await verifyLedger(t().db);
    expect(violations.map((v) => v.check)).toContain('balance and held equal the sums of the ledger');
    await t().db.query('UPDATE credit_accounts SET balance = 10 WHERE user_id = $1', [u]); // restore for afterEach
  });
});
