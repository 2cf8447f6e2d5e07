import { describe, expect, inject, it, vi } from 'vitest';
import pg from 'pg';
import { loadMigrations, migrate } from '../../src/db/migrate.js';
import type { Logger } from '../../src/logger.js';
import { adminQuery, createTestDatabase, dropTestDatabase, runPrefix, withDatabase } from '../support/db.js';
import { useTestApp } from '../support/harness.js';

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
      // They take turns migration by migration: together they applied each one, none twice.
      const applied = results.flatMap((r) => r.applied);
      const all = (await loadMigrations()).map((m) => m.name);
      expect([...applied].sort()).toEqual(all);
      const { rows } = await adminQuery(url, 'SELECT count(*)::int AS n FROM schema_migrations');
      expect(rows[0].n).toBe(all.length);
      // The lock was transaction-scoped: nothing holds it now (a leaked session lock hung the next start).
      const locks = await adminQuery(url, "SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND objid = 727274001 AND database = (SELECT oid FROM pg_database WHERE datname = current_database())");
      expect(locks.rows[0].n).toBe(0);
    } finally {
      await dropTestDatabase(adminUrl, name);
    }
  });

  it("a start waiting for another process's migration lock says who holds it, and goes on once it is free", { timeout: 60_000 }, async () => {
    const adminUrl = inject('adminUrl');
    const name = await createTestDatabase(adminUrl);
    const url = withDatabase(adminUrl, name);
    const holder = new pg.Client({ connectionString: url, application_name: 'lock-holder' });
    await holder.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT pg_advisory_xact_lock(727274001)');
      const warnings: { holders: { application_name: string }[] }[] = [];
      const log = { info: () => undefined, warn: (o: (typeof warnings)[number]) => void warnings.push(o) } as unknown as Logger;
      const migrating = migrate(url, log);
      await vi.waitFor(() => expect(warnings.length).toBeGreaterThan(0), { timeout: 30_000, interval: 100 });
      expect(warnings[0]!.holders.map((h) => h.application_name)).toEqual(['lock-holder']);
      await holder.query('COMMIT');
      expect((await migrating).applied).toEqual([]);
    } finally {
      await holder.end();
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
