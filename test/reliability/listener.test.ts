import { afterAll, beforeAll, describe, expect, inject, it, vi } from 'vitest';
import pg from 'pg';
import { DatabaseListener } from '../../src/db/listener.js';
import { createLogger } from '../../src/logger.js';
import { createTestDatabase, dropTestDatabase, withDatabase } from '../support/db.js';
import { startTcpProxy } from '../support/tcp-proxy.js';

/**
 * The process's one LISTEN connection: it must come back after every loss, however the loss
 * interleaves with channels being added, and hear every channel once it is back.
 */

/**
 * A pool whose clients may still be closing when the test database is dropped WITH (FORCE): the
 * server's 57P01 then reaches a client the ended pool no longer listens to, and pg re-emits it as
 * an 'error' event nobody handles (seen once on Node 24). The tests assert on their own queries.
 */
function quietAtTeardown(pool: pg.Pool): pg.Pool {
  pool.on('error', () => undefined);
  return pool;
}
describe('the LISTEN connection', () => {
  const adminUrl = inject('adminUrl');
  let dbName: string;
  let url: string;
  let db: pg.Pool;
  const listeners: DatabaseListener[] = [];
  const open = (name = `rendio-listen-${listeners.length}`) => {
    const l = new DatabaseListener(url, createLogger('silent'), { applicationName: name, reconnectMaxMs: 200, stableAfterMs: 0 });
    listeners.push(l);
    return l;
  };
  const terminate = async (name: string) =>
    (await db.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [name])).rowCount;
  const backends = async (name: string) =>
    (await db.query('SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [name])).rowCount;

  beforeAll(async () => {
    dbName = await createTestDatabase(adminUrl);
    url = withDatabase(adminUrl, dbName);
    db = quietAtTeardown(new pg.Pool({ connectionString: url, max: 2 }));
  });
  afterAll(async () => {
    await Promise.all(listeners.map((l) => l.close()));
    await db.end();
    await dropTestDatabase(adminUrl, dbName);
  });

  it('comes back after every loss, and each channel hears its NOTIFYs again', { timeout: 60_000 }, async () => {
    const listener = open('listen-rounds');
    const heard: string[] = [];
    const resets: boolean[] = [];
    await listener.listen('round_a', { onNotify: (p) => heard.push(`a:${p}`), onReset: (live) => resets.push(live) });
    expect(listener.live).toBe(true);
    for (let round = 1; round <= 5; round++) {
      expect(await terminate('listen-rounds')).toBe(1);
      await vi.waitFor(() => expect(listener.connects).toBe(round + 1), { timeout: 20_000, interval: 20 });
      await vi.waitFor(() => expect(listener.live).toBe(true), { timeout: 20_000, interval: 20 });
      await db.query("SELECT pg_notify('round_a', $1)", [String(round)]);
      await vi.waitFor(() => expect(heard).toContain(`a:${round}`), { timeout: 10_000, interval: 20 });
    }
    // Told when it first listened, then of each loss and each return, in order.
    expect(resets).toEqual([true, ...Array.from({ length: 5 }, () => [false, true]).flat()]);
    expect(await backends('listen-rounds')).toBe(1);
  });

  it('hears a channel added while it reconnects, even when the connection dies again meanwhile', { timeout: 60_000 }, async () => {
    const listener = open('listen-racing');
    const heard = new Set<string>();
    await listener.listen('race_0', { onNotify: () => heard.add('race_0') });
    for (let i = 1; i <= 6; i++) {
      await terminate('listen-racing');
      // Added at once, while the new connection is being opened, and killed once more half the time.
      const adding = listener.listen(`race_${i}`, { onNotify: () => heard.add(`race_${i}`) });
      if (i % 2) await terminate('listen-racing');
      await adding;
    }
    // `live` alone may still be the last connection killed, before its end has reached the client:
    // wait until a NOTIFY is heard, which only the connection that stays can do.
    await vi.waitFor(async () => expect(await listener.verifyHearing(db)).toBe(true), { timeout: 20_000, interval: 20 });
    for (let i = 0; i <= 6; i++) await db.query(`SELECT pg_notify('race_${i}', '')`);
    await vi.waitFor(() => expect([...heard].sort()).toEqual(Array.from({ length: 7 }, (_, i) => `race_${i}`)), { timeout: 10_000, interval: 20 });
    expect(await backends('listen-racing')).toBe(1);
  });

  it('gives up a connection on which a LISTEN outlasts its timeout, and hears that channel on the next', { timeout: 60_000 }, async () => {
    const target = new URL(url);
    const proxy = await startTcpProxy({ host: target.hostname, port: Number(target.port || 5432) });
    try {
      target.hostname = '127.0.0.1';
      target.port = String(proxy.port);
      const listener = new DatabaseListener(target.toString(), createLogger('silent'), {
        applicationName: 'listen-stalled',
        statementTimeoutMs: 1000,
        reconnectMaxMs: 200,
        stableAfterMs: 0,
      });
      listeners.push(listener);
      const resets: boolean[] = [];
      let heardLate = false;
      await listener.listen('stall_a', { onNotify: () => undefined, onReset: (live) => resets.push(live) });
      expect(listener.connects).toBe(1);
      // The path stalls: the LISTEN for a new channel gets no answer within the timeout.
      proxy.stall();
      await listener.listen('stall_b', { onNotify: () => (heardLate = true) });
      proxy.resume();
      // Not kept as if listening on it: reopened, and the channels told that something may have gone unheard.
      await vi.waitFor(() => expect(listener.connects).toBe(2), { timeout: 20_000, interval: 20 });
      expect(resets).toEqual([true, false, true]);
      await db.query("SELECT pg_notify('stall_b', '')");
      await vi.waitFor(() => expect(heardLate).toBe(true), { timeout: 10_000, interval: 20 });
      await vi.waitFor(async () => expect(await backends('listen-stalled')).toBe(1), { timeout: 10_000, interval: 20 });
    } finally {
      await proxy.close();
    }
  });

  it('counts as down while a NOTIFY sent through the pool does not reach it', { timeout: 30_000 }, async () => {
    const listener = open('listen-probe');
    expect(await listener.start()).toBe(true);
    // Another database's pool: its NOTIFYs can never reach this connection, as through a pooler.
    const elsewhere = new pg.Pool({ connectionString: adminUrl, max: 1 });
    try {
      expect(await listener.verifyHearing(elsewhere)).toBe(false);
      expect(listener.live).toBe(false);
      expect(await listener.verifyHearing(db)).toBe(true);
      expect(listener.live).toBe(true);
    } finally {
      await elsewhere.end();
    }
  });
});

describe('statements on the LISTEN connection', () => {
  const adminUrl = inject('adminUrl');

  it('never overlap: channels added and dropped at once, with pings, are sent one at a time', { timeout: 60_000 }, async () => {
    // pg runs a query sent while another is in flight only through a queue it has deprecated (and
    // drops in pg 9); it says so once per process, as a warning.
    const overlaps: string[] = [];
    const onWarning = (w: Error) => {
      if (/already executing a query/.test(w.message)) overlaps.push(w.message);
    };
    process.on('warning', onWarning);
    const dbName = await createTestDatabase(adminUrl);
    const url = withDatabase(adminUrl, dbName);
    const db = quietAtTeardown(new pg.Pool({ connectionString: url, max: 2 }));
    const listener = new DatabaseListener(url, createLogger('silent'), { applicationName: 'listen-overlap', pingIntervalMs: 1 });
    try {
      const heard = new Set<string>();
      await listener.listen('overlap_base', { onNotify: () => heard.add('base') });
      for (let round = 0; round < 10; round++) {
        const stops = await Promise.all(
          Array.from({ length: 8 }, (_, i) => listener.listen(`overlap_${round}_${i}`, { onNotify: () => undefined })),
        );
        for (const stop of stops) stop();
      }
      // Every statement went through and the connection still hears.
      await db.query("SELECT pg_notify('overlap_base', '')");
      await vi.waitFor(() => expect(heard.has('base')).toBe(true), { timeout: 10_000, interval: 20 });
      await new Promise((resolve) => setImmediate(resolve)); // a warning is emitted on the next tick
      expect(overlaps).toEqual([]);
    } finally {
      process.off('warning', onWarning);
      await listener.close();
      await db.end();
      await dropTestDatabase(adminUrl, dbName);
    }
  });
});
