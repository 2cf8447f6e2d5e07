import { existsSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { deviceToken } from '../fakes/device-check.js';
import { MAIN, freePort, isAlive, startProcess, startServer, waitFor, waitForReady, type ServerProcess } from '../support/process.js';

/**
 * The zero-setup promise under a crash (docs/reference/DESIGN.md §4.5): `npm start` on the embedded database,
 * kill -9 (which orphans the postgres child), start again — no manual step, nothing lost.
 */

function start(dataDir: string, port: number): ServerProcess {
  return startServer({ DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'info', DATABASE_URL: '', NODE_ENV: 'development' }, { cwd: os.tmpdir() });
}

describe('kill -9 and restart on the embedded database', () => {
  const dataDir = path.join(os.tmpdir(), `rendio-crash-${process.pid}-${Date.now()}`);
  const procs: ServerProcess[] = [];
  afterAll(async () => {
    for (const p of procs) if (p.proc.exitCode === null && p.proc.signalCode === null) p.proc.kill('SIGKILL');
    const pidFile = path.join(dataDir, 'pg', 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      if (isAlive(pid)) process.kill(pid, 'SIGINT');
      await waitFor('the orphaned postmaster to stop', () => !isAlive(pid), 60_000).catch(() => undefined);
    }
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  it('loses nothing and needs no manual step, even with postgres orphaned', { timeout: 600_000 }, async () => {
    const port = await freePort();
    const first = start(dataDir, port);
    procs.push(first);
    await waitForReady(port, first, 240_000);

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
    await first.exited;
    const pid = Number(readFileSync(path.join(dataDir, 'pg', 'postmaster.pid'), 'utf8').split('\n')[0]);
    expect(() => process.kill(pid, 0), 'postgres should be orphaned, still running').not.toThrow();

    const second = start(dataDir, port);
    procs.push(second);
    await waitForReady(port, second, 240_000);
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
    const verify = startProcess(process.execPath, [MAIN.replace(/main\.js$/, 'scripts/verify-ledger.js')], {
      env: { DATA_DIR: dataDir, DATABASE_URL: '', LOG_LEVEL: 'warn' },
      cwd: os.tmpdir(),
    });
    expect((await verify.exited).code, verify.output()).toBe(0);
    expect((await fetch(`http://127.0.0.1:${port}/ready`)).status).toBe(200);

    // A graceful stop drains, closes the pool, then stops postgres last.
    second.proc.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(existsSync(path.join(dataDir, 'pg', 'postmaster.pid'))).toBe(false);
  });
});
