import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, dropTestDatabase, withDatabase } from '../support/db.js';
import {
  MAIN,
  errorLogs,
  freePort,
  isAlive,
  portIsFree,
  startProcess,
  startServer,
  waitFor,
  waitForReady,
  type ServerProcess,
} from '../support/process.js';

/**
 * The process as operators run it: `npm start` and `node dist/main.js`, started for real, stopped by
 * signals, and started wrongly on purpose. Each failure must be one clear line and exit 1, and
 * nothing that was started (the embedded PostgreSQL above all) may outlive the process.
 */

const JWT_SECRET = 'runtime-test-secret-that-is-long-enough-0123456789';
const started: ServerProcess[] = [];
const tmpDirs: string[] = [];

async function tmpDir(label: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `rendio-runtime-${label}-`));
  tmpDirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const s of started) if (s.proc.exitCode === null && s.proc.signalCode === null) s.proc.kill('SIGKILL');
  for (const dir of tmpDirs) {
    const pidFile = path.join(dir, 'pg', 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (isAlive(pid)) process.kill(pid, 'SIGINT');
      await waitFor('the embedded postgres of a failed test to stop', () => !isAlive(pid), 60_000).catch(() => undefined);
    }
    await fs.rm(dir, { recursive: true, force: true });
  }
});

/** Field 5 of /proc/<pid>/stat; the command name (field 2) may hold spaces, so count from its ')'. */
function processGroupOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
}

function track(s: ServerProcess): ServerProcess {
  started.push(s);
  return s;
}

/** A database of its own for the describe block, dropped after it; returns its URL. */
function useTestDatabase(): () => string {
  let adminUrl: string;
  let dbName: string;
  beforeAll(async () => {
    adminUrl = inject('adminUrl');
    dbName = await createTestDatabase(adminUrl);
  });
  afterAll(async () => dropTestDatabase(adminUrl, dbName));
  return () => withDatabase(adminUrl, dbName);
}

describe('npm start on a PostgreSQL given by DATABASE_URL', () => {
  const databaseUrl = useTestDatabase();

  it('stops on SIGTERM to the npm process: node exits and the port is freed', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const dataDir = await tmpDir('npm');
    const npm = track(
      startProcess('npm', ['start'], {
        env: { DATABASE_URL: databaseUrl(), PORT: String(port), HOST: '127.0.0.1', JWT_SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'info' },
      }),
    );
    await waitForReady(port, npm);
    npm.proc.kill('SIGTERM'); // what docker stop and systemd send to the process they started
    const { code } = await npm.exited;
    expect(code, npm.output()).toBe(0);
    expect(npm.output()).toMatch(/"msg":"stopped"/);
    // The start-up line names the ffmpeg that makes posters (CI installs Debian's).
    expect(npm.output()).toMatch(/"posters":"ffmpeg at ffmpeg \(ffmpeg version [^"]+\)".*"msg":"rendio listening on /);
    expect(await portIsFree(port)).toBe(true);
    expect(errorLogs(npm.output())).toEqual([]);
  });
});

describe('stopping with a live video-events stream', () => {
  const databaseUrl = useTestDatabase();

  it('SIGTERM ends the stream after the grace period and the process drains cleanly, not by the 15 s force exit', { timeout: 180_000 }, async () => {
    const port = await freePort();
    const server = track(
      startServer(
        // The job stays in flight for the whole test, so its stream would never end by itself.
        // No ffmpeg here (a missing binary): the server still starts, and says how posters are made instead.
        { DATABASE_URL: databaseUrl(), PORT: String(port), HOST: '127.0.0.1', JWT_SECRET, LOG_LEVEL: 'info', SIMULATOR_DELAY_MS: '600000', FFMPEG_PATH: '/nonexistent/ffmpeg' },
        { cwd: await tmpDir('sse') },
      ),
    );
    await waitForReady(port, server);
    const base = `http://127.0.0.1:${port}/functions/v1`;
    const json = { 'content-type': 'application/json' };
    const guest = (await (await fetch(`${base}/device-check`, { method: 'POST', headers: json, body: JSON.stringify({ device_id: 'sse-stop', device_token: Buffer.from('sse-stop-device-token').toString('base64') }) })).json()) as { access_token: string };
    const auth = { authorization: `Bearer ${guest.access_token}` };
    const job = (await (
      await fetch(`${base}/generate-video`, { method: 'POST', headers: { ...json, ...auth, 'idempotency-key': 'sse-stop-1' }, body: JSON.stringify({ model_id: 'simulator-text-to-video', prompt: 'a stream that never ends' }) })
    ).json()) as { job_id: string };
    const stream = await fetch(`${base}/video-events?job_id=${job.job_id}`, { headers: auth });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read(); // the first status event: the stream is live

    server.proc.kill('SIGTERM');
    const ended = (async () => {
      for (;;) if ((await reader.read().catch(() => ({ done: true }))).done) return true;
    })();
    const { code } = await server.exited;
    expect(code, server.output()).toBe(0);
    expect(await ended).toBe(true);
    expect(server.output()).toMatch(/"msg":"stopped"/);
    expect(server.output()).not.toMatch(/shutdown took longer/);
    expect(server.output()).toMatch(/"posters":"provider thumbnails only \(no ffmpeg at \/nonexistent\/ffmpeg\)"/);
  });
});

describe('start-up failures: one clear line, exit 1', () => {
  const failFast = async (env: Record<string, string>, cwd?: string) => {
    const s = track(startServer({ HOST: '127.0.0.1', JWT_SECRET, LOG_LEVEL: 'info', ...env }, { cwd: cwd ?? (await tmpDir('fail')) }));
    const { code } = await s.exited;
    return { code, stderr: s.stderr(), output: s.output() };
  };

  it('PORT=abc is named as not a port number', { timeout: 60_000 }, async () => {
    const r = await failFast({ PORT: 'abc', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x' });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/PORT must be a port number/);
    expect(r.stderr).not.toMatch(/NaN|\n\s+at /);
  });

  it('a DATABASE_URL whose host does not resolve names DATABASE_URL and the host', { timeout: 60_000 }, async () => {
    const r = await failFast({ PORT: String(await freePort()), DATABASE_URL: 'postgres://user:secret@nowhere.invalid:1/x' });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^DATABASE_URL: cannot connect to .*nowhere\.invalid.*could not be resolved/)]);
    expect(r.output).not.toMatch(/secret/);
  });

  it('a DATABASE_URL where nothing listens says so', { timeout: 60_000 }, async () => {
    const closed = await freePort();
    const r = await failFast({ PORT: String(await freePort()), DATABASE_URL: `postgres://postgres@127.0.0.1:${closed}/x` });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(new RegExp(`^DATABASE_URL: .*nothing accepts connections at 127\\.0\\.0\\.1:${closed}`))]);
  });

  it('a database that does not exist is named', { timeout: 60_000 }, async () => {
    const missing = withDatabase(inject('adminUrl'), 'rendio_no_such_database');
    const r = await failFast({ PORT: String(await freePort()), DATABASE_URL: missing });
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^DATABASE_URL: .*database "rendio_no_such_database" does not exist/)]);
  });

  it('npm run migrate with an unreachable DATABASE_URL says so in one line too', { timeout: 60_000 }, async () => {
    const cli = track(
      startProcess(process.execPath, [MAIN.replace(/main\.js$/, 'scripts/migrate.js')], {
        env: { DATABASE_URL: 'postgres://postgres@nowhere.invalid:1/x' },
        cwd: await tmpDir('migrate'),
      }),
    );
    expect((await cli.exited).code).toBe(1);
    expect(cli.stderr().trim().split('\n')).toEqual([expect.stringMatching(/^DATABASE_URL: .*could not be resolved/)]);
  });

  it('a busy port fails before the embedded database is created or started', { timeout: 60_000 }, async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const port = (blocker.address() as net.AddressInfo).port;
    const dataDir = await tmpDir('busy');
    try {
      const r = await failFast({ PORT: String(port), DATABASE_URL: '', DATA_DIR: dataDir });
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`PORT=${port}: the port is already in use`));
      expect(existsSync(path.join(dataDir, 'pg'))).toBe(false);
    } finally {
      blocker.close();
    }
  });

  it('.env in the working directory is read, and the environment wins over it', { timeout: 60_000 }, async () => {
    const cwd = await tmpDir('dotenv');
    await fs.writeFile(path.join(cwd, '.env'), 'PORT=abc\n');
    const fromFile = await failFast({ DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x' }, cwd);
    expect(fromFile.stderr).toMatch(/PORT must be a port number/);
    await fs.writeFile(path.join(cwd, '.env'), 'PORT=3000\nMETRICS_PORT=abc\n');
    const overridden = await failFast({ PORT: 'abc', DATABASE_URL: 'postgres://postgres@127.0.0.1:1/x' }, cwd);
    expect(overridden.stderr).toMatch(/PORT must be a port number/);
    expect(overridden.stderr).toMatch(/METRICS_PORT must be a port number/); // the file's other lines still apply
  });
});

describe('the embedded database under Ctrl-C', () => {
  it('SIGINT to the whole process group drains the server, then stops postgres last', { timeout: 300_000 }, async () => {
    const dataDir = await tmpDir('embedded');
    const port = await freePort();
    // detached: npm leads a new process group, as a shell gives a foreground job; Ctrl-C signals all of it.
    const npm = track(
      startProcess('npm', ['start'], {
        env: { DATABASE_URL: '', DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', JWT_SECRET, LOG_LEVEL: 'info', NODE_ENV: 'development' },
        detached: true,
      }),
    );
    await waitForReady(port, npm, 240_000);
    const postmaster = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(isAlive(postmaster)).toBe(true);
    // Outside the terminal's process group, so Ctrl-C reaches the server alone; the server stops it.
    expect(processGroupOf(postmaster)).not.toBe(npm.proc.pid);

    process.kill(-npm.proc.pid!, 'SIGINT');
    const { code } = await npm.exited;
    expect(code, npm.output()).toBe(0);
    const out = npm.output();
    expect(out).toMatch(/"msg":"stopped"/);
    expect(errorLogs(out)).toEqual([]);
    expect(out).not.toMatch(/terminating connection due to administrator command/);
    await waitFor('the postmaster to exit', () => !isAlive(postmaster), 60_000);
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
    expect(await portIsFree(port)).toBe(true);
  });

  it('a failure after the database started stops the database too', { timeout: 300_000 }, async () => {
    // Reuses the cluster made above when it exists (a second initdb would only cost time).
    const dataDir = tmpDirs.find((d) => d.includes('rendio-runtime-embedded-')) ?? (await tmpDir('embedded'));
    await fs.mkdir(path.join(dataDir, 'jwt-secret'), { recursive: true }); // unreadable as a file: fails after migrations
    const s = track(startServer({ DATABASE_URL: '', DATA_DIR: dataDir, PORT: String(await freePort()), HOST: '127.0.0.1', LOG_LEVEL: 'info', NODE_ENV: 'development' }, { cwd: dataDir }));
    const { code } = await s.exited;
    expect(code, s.output()).toBe(1);
    expect(s.output()).toMatch(/embedded postgres: ready/);
    expect(s.output()).toMatch(/start-up failed/);
    expect(s.output()).toMatch(/"msg":"stopped"/);
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  });
});

