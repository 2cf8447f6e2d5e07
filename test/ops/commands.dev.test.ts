import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, dropTestDatabase, withDatabase } from '../support/db.js';
import { ROOT, errorLogs, freePort, isAlive, npmRun, portIsFree, startProcess, waitFor, waitForReady } from '../support/process.js';

/**
 * The development commands the docs name (README.md, docs/ARCHITECTURE.md, docs/DEPLOY.md,
 * CONTRIBUTING.md), run through npm exactly as a developer types them: each must do what the docs
 * say and leave the checkout (and the dist/ other test files run) as it was.
 */

const JWT_SECRET = 'commands-test-secret-that-is-long-enough-0123456789';
const tmpDirs: string[] = [];

async function tmpDir(label: string): Promise<string> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), `rendio-commands-${label}-`));
  tmpDirs.push(dir);
  return dir;
}

afterAll(async () => {
  for (const dir of tmpDirs) await fs.rm(dir, { recursive: true, force: true });
});

/** jscpd colours its report even into a pipe. */
const plain = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '');

describe('development commands', () => {
  it('npm run dev: serves src/ through tsx watch, and SIGTERM to its process group stops every process in it', { timeout: 180_000 }, async () => {
    const adminUrl = inject('adminUrl');
    const db = await createTestDatabase(adminUrl);
    try {
      const port = await freePort();
      const dev = startProcess('npm', ['run', 'dev'], {
        // Its own process group, as a terminal gives it: Ctrl-C reaches npm, tsx watch and the server.
        detached: true,
        env: { NODE_ENV: 'development', DATABASE_URL: withDatabase(adminUrl, db), PORT: String(port), HOST: '127.0.0.1', JWT_SECRET, DATA_DIR: await tmpDir('dev'), LOG_LEVEL: 'info' },
      });
      const group = dev.proc.pid!;
      try {
        await waitForReady(port, dev);
        const health = await fetch(`http://127.0.0.1:${port}/health`);
        expect(health.status, await health.clone().text()).toBe(200);
        process.kill(-group, 'SIGTERM');
        await dev.exited;
        await waitFor('every process of the group to end', () => !isAlive(-group), 60_000, dev.output);
      } finally {
        if (isAlive(-group)) process.kill(-group, 'SIGKILL');
      }
      expect(dev.output()).toMatch(/"msg":"stopped"/);
      expect(errorLogs(dev.output())).toEqual([]);
      expect(await portIsFree(port)).toBe(true);
    } finally {
      await dropTestDatabase(adminUrl, db);
    }
  });

  it('npm run build: compiles src/ into a dist/ that serves (in a copy of the checkout, not the dist/ other tests run)', { timeout: 180_000 }, async () => {
    const copy = await tmpDir('build');
    for (const part of ['src', 'scripts', 'assets']) await fs.cp(path.join(ROOT, part), path.join(copy, part), { recursive: true });
    await fs.copyFile(path.join(ROOT, 'package.json'), path.join(copy, 'package.json'));
    await fs.symlink(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'));

    const out = await npmRun(['build'], { cwd: copy });
    expect(out).toMatch(/^built dist\/ from \d+ files in \d+ ms$/m);
    expect(existsSync(path.join(copy, 'dist', '.build-stamp'))).toBe(true);
    const migrations = (await fs.readdir(path.join(ROOT, 'src/db/migrations'))).sort();
    expect((await fs.readdir(path.join(copy, 'dist/db/migrations'))).sort()).toEqual(migrations);

    const adminUrl = inject('adminUrl');
    const db = await createTestDatabase(adminUrl);
    const port = await freePort();
    const server = startProcess(process.execPath, [path.join(copy, 'dist', 'main.js')], {
      cwd: copy,
      env: { DATABASE_URL: withDatabase(adminUrl, db), PORT: String(port), HOST: '127.0.0.1', JWT_SECRET, LOG_LEVEL: 'info' },
    });
    try {
      await waitForReady(port, server);
      const models = await fetch(`http://127.0.0.1:${port}/functions/v1/get-models`);
      expect(models.status, await models.clone().text()).toBe(200);
      server.proc.kill('SIGTERM');
      expect((await server.exited).code, server.output()).toBe(0);
    } finally {
      server.proc.kill('SIGKILL');
      await dropTestDatabase(adminUrl, db);
    }
  });

  // npm run typecheck is not run here: `npm test` itself starts with it, exactly as written
  // (package.json), so a suite that runs at all has run it.

  it('npm run duplicates: jscpd reads src, test and bench and prints its report', { timeout: 300_000 }, async () => {
    const out = plain(await npmRun(['duplicates']));
    const files = Number(/│ typescript\s+│ (\d+)\s+│/.exec(out)?.[1]);
    const sources = (await fs.readdir(path.join(ROOT, 'src'), { recursive: true })).filter((f) => f.endsWith('.ts')).length;
    expect(files, out.slice(-2000)).toBeGreaterThan(sources);
    expect(out).toMatch(/^Found \d+ clones\.$/m);
  });
});
