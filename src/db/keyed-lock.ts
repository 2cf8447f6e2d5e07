import type pg from 'pg';

/**
 * Runs one task at a time per key, across every instance: waiters queue in this process's memory
 * (holding no connection, so a burst cannot take the pool hostage and starve the holder of the
 * connections its own work needs), and the holder takes a transaction-scoped advisory lock on the
 * key (pg_advisory_xact_lock: released by COMMIT, ROLLBACK or a dropped connection, never leaked),
 * which orders it against holders in other instances.
 */
export class KeyedLock {
  private readonly tails = new Map<string, Promise<void>>();

  constructor(
    private readonly db: pg.Pool,
    /** Keeps these keys apart from other advisory locks (migrations use a constant of their own). */
    private readonly namespace: string,
  ) {}

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const tail = previous.then(() => mine);
    this.tails.set(key, tail);
    try {
      await previous;
      return await this.holdingDatabaseLock(key, fn);
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  private async holdingDatabaseLock<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const client = await this.db.connect();
    let broken = false;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`${this.namespace}:${key}`]);
      const result = await fn();
      await client.query('COMMIT');
      return result;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }
}
