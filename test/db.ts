import { randomBytes } from 'node:crypto';
import pg from 'pg';

/** Test databases: one template with the migrations applied, cloned per test file. */

export const TEMPLATE_DB = 'rendio_test_template';

export function withDatabase(adminUrl: string, db: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${db}`;
  return u.toString();
}

export async function adminQuery(adminUrl: string, sql: string, values?: unknown[]): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await client.query(sql, values);
  } finally {
    await client.end();
  }
}

/** A fresh database copied from the migrated template (fast: no migrations per file). */
export async function createTestDatabase(adminUrl: string, template = TEMPLATE_DB): Promise<string> {
  const name = `rendio_t_${randomBytes(6).toString('hex')}`;
  for (let attempt = 0; ; attempt++) {
    try {
      await adminQuery(adminUrl, `CREATE DATABASE ${name} TEMPLATE ${template}`);
      return name;
    } catch (err) {
      // Two files cloning the template at the same instant can collide ("being accessed by other users").
      if (attempt >= 20 || !/being accessed by other users/.test((err as Error).message)) throw err;
      await new Promise((r) => setTimeout(r, 50 + Math.random() * 200));
    }
  }
}

export async function dropTestDatabase(adminUrl: string, name: string): Promise<void> {
  await adminQuery(adminUrl, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}
