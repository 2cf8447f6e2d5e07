import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/db/pool.js';
import { HoldAlreadyResolved, InsufficientCredits } from '../../src/ledger/errors.js';
import * as ledger from '../../src/ledger/ledger.js';
import { verifyLedger } from '../../src/ledger/verify.js';
import { useTestApp } from '../support/harness.js';

/**
 * Random sequences of every ledger operation. Sequentially, the database must agree with a
 * simple in-memory model after every step; concurrently (random interleavings on real
 * PostgreSQL), the docs/reference/DESIGN.md §4 invariants must hold and only expected refusals may happen.
 */

type Op =
  | { kind: 'grant'; user: number; amount: number }
  | { kind: 'purchase'; user: number; tx: number; amount: number }
  | { kind: 'hold'; user: number; amount: number }
  | { kind: 'capture'; hold: number; part: number }
  | { kind: 'release'; hold: number }
  | { kind: 'clawback'; tx: number }
  | { kind: 'adjust'; user: number; amount: number };

const USERS = 3;
const user = fc.integer({ min: 0, max: USERS - 1 });
const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ kind: fc.constant('grant' as const), user, amount: fc.integer({ min: 1, max: 20 }) }),
  fc.record({ kind: fc.constant('purchase' as const), user, tx: fc.integer({ min: 0, max: 4 }), amount: fc.constantFrom(25, 60, 150) }),
  fc.record({ kind: fc.constant('hold' as const), user, amount: fc.integer({ min: 1, max: 40 }) }),
  fc.record({ kind: fc.constant('capture' as const), hold: fc.nat(), part: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('release' as const), hold: fc.nat() }),
  fc.record({ kind: fc.constant('clawback' as const), tx: fc.integer({ min: 0, max: 4 }) }),
  fc.record({ kind: fc.constant('adjust' as const), user, amount: fc.integer({ min: -20, max: 20 }).filter((n) => n !== 0) }),
);

interface World {
  users: string[];
  txIds: string[];
  holds: { id: string; user: number; amount: number }[];
}

async function newWorld(db: Queryable): Promise<World> {
  const users: string[] = [];
  for (let i = 0; i < USERS; i++) {
    const { rows } = await db.query('INSERT INTO users (is_guest) VALUES (true) RETURNING id');
    await ledger.openAccount(db, rows[0].id);
    users.push(rows[0].id);
  }
  return { users, txIds: Array.from({ length: 5 }, () => `prop-${randomUUID()}`), holds: [] };
}

/** Runs one op against the database; returns what happened in model terms. */
async function run(db: Queryable, w: World, op: Op): Promise<string> {
  try {
    switch (op.kind) {
      case 'grant':
        return (await ledger.grant(db, { userId: w.users[op.user]!, amount: op.amount })).applied ? 'ok' : 'dup';
      case 'purchase':
        return (await ledger.purchase(db, { userId: w.users[op.user]!, amount: op.amount, transactionId: w.txIds[op.tx]! })).applied ? 'ok' : 'dup';
      case 'hold': {
        const r = await ledger.hold(db, { userId: w.users[op.user]!, amount: op.amount, jobId: randomUUID() });
        w.holds.push({ id: r.holdId, user: op.user, amount: op.amount });
        return 'ok';
      }
      case 'capture': {
        const h = w.holds[op.hold % Math.max(1, w.holds.length)];
        if (!h) return 'nohold';
        await ledger.capture(db, { holdId: h.id, amount: Math.floor(h.amount * op.part) });
        return 'ok';
      }
      case 'release': {
        const h = w.holds[op.hold % Math.max(1, w.holds.length)];
        if (!h) return 'nohold';
        await ledger.release(db, { holdId: h.id });
        return 'ok';
      }
      case 'clawback': {
        const { rows } = await db.query("SELECT user_id, amount FROM ledger_entries WHERE kind = 'purchase' AND transaction_id = $1", [
          w.txIds[op.tx],
        ]);
        if (!rows[0]) return 'nopurchase';
        return (await ledger.clawback(db, { userId: rows[0].user_id, transactionId: w.txIds[op.tx]!, amount: rows[0].amount })).applied ? 'ok' : 'dup';
      }
      case 'adjust':
        await ledger.adminAdjust(db, { userId: w.users[op.user]!, amount: op.amount, reason: 'property test' });
        return 'ok';
    }
  } catch (err) {
    if (err instanceof InsufficientCredits) return 'insufficient';
    if (err instanceof HoldAlreadyResolved) return 'resolved';
    throw err;
  }
}

/** The model: what each op must do, given the state before it. */
class Model {
  balance = Array(USERS).fill(0) as number[];
  held = Array(USERS).fill(0) as number[];
  /** What clawbacks could not take (credits held): paid first from whatever becomes available. */
  debt = Array(USERS).fill(0) as number[];
  granted = new Set<number>();
  purchases = new Map<number, { user: number; amount: number }>();
  clawedBack = new Set<number>();
  holds: { user: number; amount: number; open: boolean }[] = [];
  available = (u: number) => this.balance[u]! - this.held[u]!;
  private collect(u: number): string {
    const paid = Math.min(this.debt[u]!, this.available(u));
    this.balance[u]! -= paid;
    this.debt[u]! -= paid;
    return 'ok';
  }

  apply(op: Op): string {
    switch (op.kind) {
      case 'grant':
        if (this.granted.has(op.user)) return 'dup';
        this.granted.add(op.user);
        this.balance[op.user]! += op.amount;
        return this.collect(op.user);
      case 'purchase':
        if (this.purchases.has(op.tx)) return 'dup';
        this.purchases.set(op.tx, { user: op.user, amount: op.amount });
        this.balance[op.user]! += op.amount;
        return this.collect(op.user);
      case 'hold':
        if (this.available(op.user) < op.amount) return 'insufficient';
        this.held[op.user]! += op.amount;
        this.holds.push({ user: op.user, amount: op.amount, open: true });
        return 'ok';
      case 'capture':
      case 'release': {
        const h = this.holds[op.hold % Math.max(1, this.holds.length)];
        if (!h) return 'nohold';
        if (!h.open) return 'resolved';
        h.open = false;
        this.held[h.user]! -= h.amount;
        if (op.kind === 'capture') this.balance[h.user]! -= Math.floor(h.amount * op.part);
        return this.collect(h.user);
      }
      case 'clawback': {
        const p = this.purchases.get(op.tx);
        if (!p) return 'nopurchase';
        if (this.clawedBack.has(op.tx)) return 'dup';
        this.clawedBack.add(op.tx);
        const take = Math.min(p.amount, this.available(p.user));
        this.balance[p.user]! -= take;
        this.debt[p.user]! += p.amount - take;
        return 'ok';
      }
      case 'adjust':
        if (op.amount < 0 && this.available(op.user) < -op.amount) return 'insufficient';
        this.balance[op.user]! += op.amount;
        return this.collect(op.user);
    }
  }
}

describe('ledger properties', () => {
  const t = useTestApp();

  it('sequential operations match the model step by step', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 25 }), async (ops) => {
        const w = await newWorld(t().db);
        const model = new Model();
        for (const op of ops) {
          const expected = model.apply(op);
          const actual = await run(t().db, w, op);
          expect(actual, JSON.stringify(op)).toBe(expected);
        }
        for (let u = 0; u < USERS; u++) {
          expect(await ledger.getAccount(t().db, w.users[u]!)).toEqual({
            balance: model.balance[u],
            held: model.held[u],
            available: model.balance[u]! - model.held[u]!,
            debt: model.debt[u],
          });
        }
      }),
      { numRuns: 40 },
    );
    expect(await verifyLedger(t().db)).toEqual([]);
  });

  it('random concurrent interleavings keep every invariant', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 5, maxLength: 15 }),
        fc.array(fc.array(opArb, { minLength: 2, maxLength: 12 }), { minLength: 1, maxLength: 3 }),
        async (setup, batches) => {
          const w = await newWorld(t().db);
          for (const op of setup) await run(t().db, w, op);
          for (const batch of batches) {
            // Every op of a batch at once: lock order and unique indexes must serialise them correctly.
            const outcomes = await Promise.allSettled(batch.map((op) => run(t().db, w, op)));
            for (const o of outcomes) if (o.status === 'rejected') throw o.reason;
          }
          const violations = await verifyLedger(t().db);
          expect(violations, JSON.stringify(violations)).toEqual([]);
        },
      ),
      { numRuns: 25 },
    );
  });
});
