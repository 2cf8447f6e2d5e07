import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/index.js';
import { preparedStatement, withTransaction } from '../../src/db/pool.js';
import { createTestApp, type TestApp } from '../support/harness.js';

/**
 * The hottest reads are prepared statements on a direct connection (parsed and planned once per
 * connection), and never named where DATABASE_PREPARED_STATEMENTS says a pooler cannot keep them.
 */

const MODEL = 'simulator-text-to-video';

/** The statements the pool's one connection holds, with how often each ran from its prepared plan. */
async function preparedOnTheConnection(t: TestApp): Promise<Record<string, number>> {
  const { rows } = await t.db.query<{ name: string; runs: number }>('SELECT name, generic_plans + custom_plans AS runs FROM pg_prepared_statements');
  return Object.fromEntries(rows.map((r) => [r.name, r.runs]));
}

async function pollTwice(t: TestApp) {
  const guest = await t.createGuest();
  const generated = await t.json<{ job_id: string }>(t.generate(guest, { model_id: MODEL, prompt: 'a lighthouse in a storm' }));
  for (let i = 0; i < 2; i++) {
    const status = await t.json<{ job_id: string }>(t.get(`/functions/v1/get-video-status?job_id=${generated.job_id}`, { token: guest.accessToken }));
    expect(status.job_id).toBe(generated.job_id);
  }
}

describe('prepared statements', () => {
  it('on a direct connection, the status poll and the session check are prepared once and run again from their plans', { timeout: 60_000 }, async () => {
    // One pooled connection, so the test's own query sees what the requests left on it.
    const t = await createTestApp({ DATABASE_POOL_MAX: '1' });
    try {
      await pollTwice(t);
      const prepared = await preparedOnTheConnection(t);
      expect(prepared.job_view_with_auth).toBe(2);
      expect(prepared.auth_state).toBeGreaterThanOrEqual(1);
    } finally {
      await t.close();
    }
  });

  it('with DATABASE_PREPARED_STATEMENTS=off nothing is named, in a transaction or not', { timeout: 60_000 }, async () => {
    const t = await createTestApp({ DATABASE_POOL_MAX: '1', DATABASE_PREPARED_STATEMENTS: 'off' });
    try {
      await pollTwice(t);
      const one = preparedStatement('prepared_statements_test', 'SELECT $1::int AS one');
      expect((await t.db.query(one([1]))).rows).toEqual([{ one: 1 }]);
      expect(await withTransaction(t.db, async (tx) => (await tx.query(one([2]))).rows)).toEqual([{ one: 2 }]);
      expect(await preparedOnTheConnection(t)).toEqual({});
    } finally {
      await t.close();
    }
  });

  it('auto is on unless DATABASE_DIRECT_URL is set apart from DATABASE_URL (a transaction pooler in front)', () => {
    const direct = 'postgres://db.example.com:5432/app';
    const pooler = 'postgres://pooler.example.com:6543/app';
    const resolved = (env: Record<string, string>) => loadConfig({ DATABASE_URL: direct, ...env }).databasePreparedStatements;
    expect(resolved({})).toBe(true);
    expect(resolved({ DATABASE_DIRECT_URL: direct })).toBe(true);
    expect(resolved({ DATABASE_URL: pooler, DATABASE_DIRECT_URL: direct })).toBe(false);
    expect(resolved({ DATABASE_URL: pooler, DATABASE_DIRECT_URL: direct, DATABASE_PREPARED_STATEMENTS: 'on' })).toBe(true);
    expect(resolved({ DATABASE_PREPARED_STATEMENTS: 'off' })).toBe(false);
    expect(() => loadConfig({ DATABASE_URL: direct, DATABASE_PREPARED_STATEMENTS: 'sometimes' })).toThrow(/DATABASE_PREPARED_STATEMENTS/);
  });
});
