import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import type { Queryable } from '../../src/db/pool.js';
import { idempotency, type IdempotentEnv } from '../../src/http/idempotency.js';
import { useTestApp } from '../support/harness.js';

/**
 * Issue 14 item 6: a request that fails before committing releases its idempotency key at once,
 * so the app's immediate retry runs instead of meeting 409 for IDEMPOTENCY_LOCK_SECONDS. The
 * database fault is injected at the connection (a statement that commits and whose answer is
 * lost, as a restart does); the middleware runs as in production.
 */

/** The real pool, except that the first claim INSERT commits and then "loses its connection". */
function losingTheClaimsAnswer(db: Queryable): Queryable {
  let lost = false;
  return {
    query: async (text: string, values?: unknown[]) => {
      const result = await db.query(text, values);
      if (!lost && /^\s*INSERT INTO idempotency_keys/i.test(text)) {
        lost = true;
        throw Object.assign(new Error('Connection terminated unexpectedly'), {});
      }
      return result;
    },
  } as Queryable;
}

describe('an idempotency key whose request died before committing', () => {
  const t = useTestApp({ IDEMPOTENCY_LOCK_SECONDS: '60' });

  it('a claim that committed but whose answer was lost (database restart) is freed at once: the retry runs, no 409', async () => {
    const g = await t().createGuest();
    const app = new Hono<IdempotentEnv>();
    app.onError((err, c) => c.json({ error: err.message }, 503));
    app.use('*', async (c, next) => {
      c.set('user', { id: g.userId, isGuest: false } as never);
      await next();
    });
    app.use('*', idempotency(losingTheClaimsAnswer(t().db), { ttlHours: 24, lockSeconds: 60 }));
    let ran = 0;
    app.post('/work', async (c) => {
      ran++;
      return c.json({ ok: true });
    });
    const send = () => app.request('/work', { method: 'POST', headers: { 'idempotency-key': 'retry-me', 'content-type': 'application/json' }, body: '{}' });

    expect((await send()).status).toBe(503);
    const retry = await send();
    expect(retry.status).toBe(200);
    expect(ran).toBe(1);
  });

  it('a handler that fails part-way (503) leaves no key behind', async () => {
    const g = await t().createGuest();
    const app = new Hono<IdempotentEnv>();
    app.onError((err, c) => c.json({ error: err.message }, 503));
    app.use('*', async (c, next) => {
      c.set('user', { id: g.userId, isGuest: true } as never);
      await next();
    });
    app.use('*', idempotency(t().db, { ttlHours: 24, lockSeconds: 60 }));
    let calls = 0;
    app.post('/work', async (c) => {
      if (++calls === 1) throw Object.assign(new Error('timeout exceeded when trying to connect'), {});
      return c.json({ ok: true });
    });
    const send = () => app.request('/work', { method: 'POST', headers: { 'idempotency-key': 'part-way', 'content-type': 'application/json' }, body: '{}' });
    expect((await send()).status).toBe(503);
    expect((await send()).status).toBe(200);
    expect(calls).toBe(2);
  });
});
