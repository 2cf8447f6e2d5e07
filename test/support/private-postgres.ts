import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway PostgreSQL cluster of our own (the machine's PostgreSQL 15 binaries), for tests and
 * the chaos run that restart the database: never the shared one. As root, initdb/pg_ctl run as the
 * postgres system user (PostgreSQL refuses root).
 */

const run = promisify(execFile);
const BIN = process.env.PG_BIN_DIR ?? '/usr/lib/postgresql/15/bin';

export async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function asPostgres(cmd: string, args: string[]) {
  const isRoot = process.getuid?.() === 0;
  return isRoot ? run('runuser', ['-u', 'postgres', '--', path.join(BIN, cmd), ...args]) : run(path.join(BIN, cmd), args);
}

export interface PrivatePostgres {
  url: string;
  port: number;
  /** pg_ctl restart -m fast: every connection is terminated (57P01), the server is back moments later. */
  restart(): Promise<void>;
  stop(): Promise<void>;
  /** The server's log so far. */
  log(): Promise<string>;
}

export async function startPrivatePostgres(label: string, settings: { maxConnections?: number } = {}): Promise<PrivatePostgres> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `rendio-pg-${label}-`));
  if (process.getuid?.() === 0) await run('chown', ['postgres', dir]);
  const data = path.join(dir, 'data');
  const port = await freePort();
  await asPostgres('initdb', ['-D', data, '-U', 'postgres', '--auth=trust', '--encoding=UTF8', '--locale=C.UTF-8', '--no-sync']);
  const opts = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=${settings.maxConnections ?? 200}`;
  const ctl = (...args: string[]) => asPostgres('pg_ctl', ['-D', data, '-o', opts, '-l', path.join(dir, 'log'), '-w', '-t', '60', ...args]);
  await ctl('start');
  let stopped = false;
  return {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    restart: async () => void (await ctl('restart', '-m', 'fast')),
    log: () => readFile(path.join(dir, 'log'), 'utf8').catch(() => ''),
    stop: async () => {
      if (stopped) return;
      stopped = true;
      await ctl('stop', '-m', 'immediate').catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    },
  };
}
