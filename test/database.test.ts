import { describe, expect, inject, it } from 'vitest';
import pg from 'pg';
import { migrate } from '../src/db/migrate.js';
import { adminQuery, createTestDatabase, dropTestDatabase, runPrefix, withDatabase } from './db.js';
import { useTestApp } from './harness.js';

describe('row-level security (Supabase-style, auth.uid())', () => {
  const t = useTestApp();

  /** Runs sql as the non-owner `authenticated` role with a JWT subject claim, as PostgREST would. */
  async function asUser(sub: string | null, sql: string, values: unknown[] = []) {
    const client = new pg.Client({ connectionString: t().dbUrl });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL ROLE authenticated');
      if (sub) await client.query("SELECT set_config('request.jwt.claim.sub', $1, true)", [sub]);
      const { rows } = await client.query(sql, values);
      await client.query('ROLLBACK');
      return rows;
    } finally {
      await client.end();
    }
  }

  it("a user sees their own rows and none of another user's", async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    expect(await asUser(a.userId, 'SELECT id FROM users')).toEqual([{ id: a.userId }]);
    expect(await asUser(a.userId, 'SELECT id FROM users WHERE id = $1', [b.userId])).toEqual([]);
    expect(await asUser(a.userId, 'SELECT user_id FROM credit_accounts WHERE user_id = $1', [b.userId])).toEqual([]);
    expect(await asUser(a.userId, 'SELECT user_id FROM ledger_entries WHERE user_id = $1', [b.userId])).toEqual([]);
    expect(await asUser(a.userId, 'SELECT count(*)::int AS n FROM ledger_entries')).toEqual([{ n: 1 }]);
    expect(await asUser(a.userId, 'SELECT user_id FROM auth_sessions WHERE user_id = $1', [b.userId])).toEqual([]);
  });

  it('without a claim nothing user-owned is visible, and secrets are never readable', async () => {
    await t().createGuest();
    expect(await asUser(null, 'SELECT id FROM users')).toEqual([]);
    await expect(asUser(null, 'SELECT * FROM refresh_tokens')).rejects.toThrow(/permission denied/);
  });

  it("a user cannot move credits or update another user's row", async () => {
    const [a, b] = [await t().createGuest(), await t().createGuest()];
    await expect(asUser(a.userId, 'UPDATE credit_accounts SET balance = 1000')).rejects.toThrow(/permission denied/);
    expect(await asUser(a.userId, "UPDATE users SET language = 'tr' WHERE id = $1 RETURNING id", [b.userId])).toEqual([]);
    expect(await asUser(a.userId, "UPDATE users SET language = 'tr' WHERE id = $1 RETURNING id", [a.userId])).toEqual([{ id: a.userId }]);
  });

  it('the catalogue is readable, but only available rows', async () => {
    const rows = await asUser(null, 'SELECT id FROM models');
    expect(rows.map((r) => r.id)).not.toContain('sora-2-image-to-video');
    expect(rows.length).toBeGreaterThan(3);
  });
});

describe('migrations', () => {
  it('instances starting together apply each migration exactly once', async () => {
    const adminUrl = inject('adminUrl');
    const name = `${runPrefix(inject('runId'))}mig_${Date.now().toString(36)}`;
    await adminQuery(adminUrl, `CREATE DATABASE ${name}`);
    const url = withDatabase(adminUrl, name);
    try {
      const results = await Promise.all([migrate(url), migrate(url), migrate(url)]);
      const appliedCounts = results.map((r) => r.applied.length);
      expect(appliedCounts.filter((n) => n > 0)).toHaveLength(1);
      const { rows } = await adminQuery(url, 'SELECT count(*)::int AS n FROM schema_migrations');
      expect(rows[0].n).toBe(Math.max(...appliedCounts));
    } finally {
      await dropTestDatabase(adminUrl, name);
    }
  });

  it('refuses to start when an applied migration was edited', async () => {
    const adminUrl = inject('adminUrl');
    const name = await createTestDatabase(adminUrl);
    const url = withDatabase(adminUrl, name);
    try {
      await adminQuery(url, "UPDATE schema_migrations SET checksum = 'edited' WHERE version = '0001'");
      await expect(migrate(url)).rejects.toThrow(/changed after it was applied/);
    } finally {
      await dropTestDatabase(adminUrl, name);
    }
  });
});
