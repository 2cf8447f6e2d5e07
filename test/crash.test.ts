import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deviceToken } from './fakes/device-check.js';

/**
 * The zero-setup promise under a crash (DESIGN §4.5): `npm start` on the embedded database,
 * kill -9 (which orphans the postgres child), start again — no manual step, nothing lost.
 */

const ROOT = path.resolve(import.meta.dirname, '..');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

function startServer(dataDir: string, port: number): { proc: ChildProcess; output: () => string } {
  let out = '';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: { ...process.env, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: '', NODE_ENV: 'development' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  return { proc, output: () => out };
}

async function waitForHealth(port: number, output: () => string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/ready`);
      if (res.status === 200) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not become ready:\n${output()}`);
}

const exited = (p: ChildProcess) => new Promise<number | null>((resolve) => (p.exitCode !== null ? resolve(p.exitCode) : p.on('exit', (code) => resolve(code))));

describe('kill -9 and restart on the embedded database', () => {
  const dataDir = path.join(os.tmpdir(), `rendio-crash-${process.pid}-${Date.now()}`);
  const procs: ChildProcess[] = [];
  afterAll(async () => {
    for (const p of procs) if (p.exitCode === null) p.kill('SIGKILL');
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
    if (existsSync(pidFile)) {
      try {
        process.kill(Number(readFileSync(pidFile, 'utf8').split('\n')[0]), 'SIGINT');
      } catch {
        // already gone
      }
      await new Promise((r) => setTimeout(r, 1500));
    }
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('loses nothing and needs no manual step, even with postgres orphaned', { timeout: 240_000 }, async () => {
    const port = await freePort();
    const first = startServer(dataDir, port);
    procs.push(first.proc);
    await waitForHealth(port, first.output);

    const deviceId = `crash-${Date.now()}`;
    const onboard = () =>
      fetch(`http://127.0.0.1:${port}/functions/v1/device-check`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ device_id: deviceId, device_token: deviceToken('crash-phone') }),
      }).then((r) => r.json() as Promise<any>);
    const before = await onboard();
    expect(before).toMatchObject({ is_new: true, credits_remaining: 10 });

    first.proc.kill('SIGKILL');
    await exited(first.proc);
    const pid = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(() => process.kill(pid, 0), 'postgres should be orphaned, still running').not.toThrow();

    const second = startServer(dataDir, port);
    procs.push(second.proc);
    await waitForHealth(port, second.output);
    expect(second.output()).toMatch(/orphaned postmaster/);

    const after = await onboard();
    expect(after).toMatchObject({ user_id: before.user_id, is_new: false, credits_remaining: 10 });
    // Sessions survive: the refresh token issued before the crash still rotates (JWT secret kept in DATA_DIR).
    const refreshed = await fetch(`http://127.0.0.1:${port}/auth/v1/token?grant_type=refresh_token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: before.refresh_token }),
    });
    expect(refreshed.status).toBe(200);

    // The CLI joins the running server's embedded database instead of stopping it.
    const verify = spawn(process.execPath, ['--import', 'tsx', 'src/scripts/verify-ledger.ts'], {
      cwd: ROOT,
      env: { ...process.env, DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn' },
      stdio: 'ignore',
    });
    expect(await exited(verify)).toBe(0);
    expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);

    // A graceful stop drains, closes the pool, then stops postgres last.
    second.proc.kill('SIGTERM');
    expect(await exited(second.proc)).toBe(0);
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  });
});
