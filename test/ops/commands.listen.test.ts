import { readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestDatabase, dropTestDatabase, withDatabase } from '../support/db.js';
import { freePort, startProcess, waitForReady, type ServerProcess } from '../support/process.js';

/**
 * README.md "Port and address": `PORT=8080 HOST=127.0.0.1 npm start` listens where it says, and
 * without HOST the server listens on every interface (0.0.0.0). Run through npm as written (on a
 * free port instead of 8080, which another process may hold); where the socket is bound is read
 * from the kernel's table of listening sockets, not inferred from what answers.
 */

const JWT_SECRET = 'listen-test-secret-that-is-long-enough-0123456789';

/** The IPv4 addresses listening on `port` (Linux /proc/net/tcp: hex little-endian address, hex port, state 0A = LISTEN). */
function listeningAddresses(port: number): string[] {
  return readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((cols) => cols[3] === '0A' && Number.parseInt(cols[1]?.split(':')[1] ?? '', 16) === port)
    .map((cols) => (cols[1]!.split(':')[0]!.match(/../g) ?? []).map((byte) => Number.parseInt(byte, 16)).reverse().join('.'));
}

describe('npm start: PORT and HOST', () => {
  let adminUrl: string;
  let db: string;
  let dataDir: string;
  const started: ServerProcess[] = [];

  beforeAll(async () => {
    adminUrl = inject('adminUrl');
    db = await createTestDatabase(adminUrl);
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'rendio-listen-'));
  });
  afterAll(async () => {
    for (const s of started) s.proc.kill('SIGKILL');
    await Promise.all(started.map((s) => s.exited));
    await dropTestDatabase(adminUrl, db);
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const npmStart = async (env: Record<string, string>) => {
    const port = await freePort();
    const server = startProcess('npm', ['start'], {
      env: { DATABASE_URL: withDatabase(adminUrl, db), JWT_SECRET, DATA_DIR: dataDir, LOG_LEVEL: 'warn', PORT: String(port), ...env },
    });
    started.push(server);
    await waitForReady(port, server);
    const addresses = listeningAddresses(port);
    server.proc.kill('SIGTERM');
    expect((await server.exited).code, server.output()).toBe(0);
    return addresses;
  };

  it('PORT=… HOST=127.0.0.1 npm start listens on that port of the loopback only', { timeout: 180_000 }, async () => {
    expect(await npmStart({ HOST: '127.0.0.1' })).toEqual(['127.0.0.1']);
  });

  it('without HOST it listens on every interface (0.0.0.0)', { timeout: 180_000 }, async () => {
    // Unset, as in a fresh shell (an empty value counts as unset: src/config/index.ts).
    expect(await npmStart({ HOST: '' })).toEqual(['0.0.0.0']);
  });
});
