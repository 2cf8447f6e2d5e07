import { spawn } from 'node:child_process';
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { freePort } from './private-postgres.js';

/**
 * A real PgBouncer (Debian's package; .ci/run installs it) in transaction mode in front of a
 * PostgreSQL, as managed databases run behind Supavisor, PgBouncer or RDS Proxy: each statement
 * outside a transaction, and each transaction, may get a different server connection, and a
 * LISTEN through it hears nothing. Its admin console (PAUSE/RESUME) starves the pool on demand.
 */

const BIN = process.env.PGBOUNCER_BIN ?? '/usr/sbin/pgbouncer';

export interface PgBouncer {
  port: number;
  /** The same database as `directUrl`, through the pooler. */
  url(directUrl: string): string;
  /** A statement on the admin console (SHOW POOLS, PAUSE db, RESUME db). */
  admin(sql: string): Promise<pg.QueryResult>;
  log(): Promise<string>;
  stop(): Promise<void>;
}

export async function startPgBouncer(upstream: { host: string; port: number }, opts: { poolSize: number }): Promise<PgBouncer> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'rendio-pgbouncer-'));
  const asRoot = process.getuid?.() === 0;
  // PgBouncer refuses to run as root: it switches to postgres (-u), which must read this folder.
  if (asRoot) await chown(dir, ...(await postgresIds()));
  await chmod(dir, 0o755);
  const port = await freePort();
  const ini = path.join(dir, 'pgbouncer.ini');
  await writeFile(path.join(dir, 'userlist.txt'), '"postgres" ""\n');
  await writeFile(
    ini,
    [
      '[databases]',
      `* = host=${upstream.host} port=${upstream.port}`,
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = trust',
      `auth_file = ${path.join(dir, 'userlist.txt')}`,
      'admin_users = postgres',
      'pool_mode = transaction',
      `default_pool_size = ${opts.poolSize}`,
      'min_pool_size = 0',
      // The default 15 s between login attempts keeps a restarted PostgreSQL unreachable through it for that long.
      'server_login_retry = 1',
      'reserve_pool_size = 0',
      'max_client_conn = 1000',
      // What node-postgres and graphile-worker send at start-up that PgBouncer does not track.
      'ignore_startup_parameters = extra_float_digits,options',
      `logfile = ${path.join(dir, 'pgbouncer.log')}`,
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
  );
  const proc = spawn(BIN, asRoot ? ['-u', 'postgres', ini] : [ini], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr!.on('data', (d) => (stderr += d));
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  proc.once('error', (err) => (stderr += String(err)));
  const deadline = Date.now() + 30_000;
  while (!(await accepts(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      throw new Error(`PgBouncer (${BIN}) did not start: ${stderr || (await readFile(path.join(dir, 'pgbouncer.log'), 'utf8').catch(() => 'no log'))}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    port,
    url: (directUrl) => {
      const u = new URL(directUrl);
      u.hostname = '127.0.0.1';
      u.port = String(port);
      return u.toString();
    },
    admin: async (sql) => {
      const c = new pg.Client({ host: '127.0.0.1', port, user: 'postgres', database: 'pgbouncer' });
      await c.connect();
      try {
        return await c.query(sql);
      } finally {
        await c.end();
      }
    },
    log: () => readFile(path.join(dir, 'pgbouncer.log'), 'utf8'),
    stop: async () => {
      proc.kill('SIGTERM');
      await exited;
      await rm(dir, { recursive: true, force: true });
    },
  };
}

async function postgresIds(): Promise<[number, number]> {
  const line = (await readFile('/etc/passwd', 'utf8')).split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new Error('no postgres system user to run PgBouncer as');
  const [, , uid, gid] = line.split(':');
  return [Number(uid), Number(gid)];
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}
