import { randomUUID } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { describe, expect, inject, it } from 'vitest';
import { verifyLedger } from '../../src/ledger/verify.js';
import { createTestDatabase, dropTestDatabase, withDatabase } from '../support/db.js';
import { deviceToken } from '../fakes/device-check.js';
import { freePort, startServer, waitFor, waitForReady } from '../support/process.js';

/**
 * docs/reference/DESIGN.md §4.5 as a repeatable test: the server process SIGKILLs itself (FAULT_CRASH_AT) at each
 * step of the generate flow; a fresh process starts on the same database with no human help; the
 * job must end exactly once, its hold captured or released, every ledger invariant intact.
 */

const POINTS = ['generate:after-commit', 'submit:after-provider', 'ingest:after-store', 'complete:before-commit'] as const;

describe('kill -9 between the steps of the generate flow', () => {
  for (const point of POINTS) {
    it(`crash at ${point}: after a restart the job ends exactly once and the ledger holds`, { timeout: 300_000 }, async () => {
      const adminUrl = inject('adminUrl');
      const dbName = await createTestDatabase(adminUrl);
      const databaseUrl = withDatabase(adminUrl, dbName);
      const port = await freePort();
      const env = {
        DATABASE_URL: databaseUrl,
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_ENV: 'test',
        JWT_SECRET: 'crash-test-secret-that-is-long-enough-0123456789',
        DATA_DIR: path.join(os.tmpdir(), `rendio-crash-jobs-${dbName}`),
        LOG_LEVEL: 'warn',
        SIMULATOR_DELAY_MS: '200',
        WORKER_POLL_INTERVAL_MS: '100',
        SUBMIT_LEASE_SECONDS: '1',
        JOB_QUIET_SECONDS: '1',
      };
      const db = new pg.Client({ connectionString: databaseUrl });
      await db.connect();
      try {
        const first = startServer({ ...env, FAULT_CRASH_AT: point }, { cwd: os.tmpdir() });
        await waitForReady(port, first);
        const onboard = await fetch(`http://127.0.0.1:${port}/functions/v1/device-check`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ device_id: randomUUID(), device_token: deviceToken('crash') }),
        }).then((r) => r.json() as Promise<any>);
        const key = randomUUID();
        const generate = () =>
          fetch(`http://127.0.0.1:${port}/functions/v1/generate-video`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', authorization: `Bearer ${onboard.access_token}`, 'idempotency-key': key },
            body: JSON.stringify({ model_id: 'simulator-text-to-video', prompt: `crash at ${point}` }),
          });
        await generate().catch(() => undefined); // at generate:after-commit the answer never comes
        expect((await first.exited).signal, first.output()).toBe('SIGKILL');

        await new Promise((r) => setTimeout(r, 1100)); // let the lease and the quiet period lapse
        const second = startServer(env, { cwd: os.tmpdir() });
        try {
          await waitForReady(port, second);
          // The client retries with the same key: the stored answer, never a second job.
          const retry = await generate();
          expect(retry.status).toBe(200);
          let job: any;
          await waitFor(
            'the job to end',
            async () => {
              job = (await db.query('SELECT status, error_code FROM video_jobs WHERE user_id = $1', [onboard.user_id])).rows;
              return job.length === 1 && ['completed', 'failed'].includes(job[0].status);
            },
            120_000,
            second.output,
          );
          expect(job, second.output()).toEqual([{ status: 'completed', error_code: null }]);
          const entries = (await db.query("SELECT kind FROM ledger_entries WHERE user_id = $1 AND kind IN ('hold', 'capture', 'release') ORDER BY id", [onboard.user_id])).rows.map((r) => r.kind);
          expect(entries).toEqual(['hold', 'capture']);
          expect(await verifyLedger(db)).toEqual([]);
        } finally {
          second.proc.kill('SIGTERM');
          await second.exited;
        }
      } finally {
        await db.end();
        await dropTestDatabase(adminUrl, dbName);
      }
    });
  }
});
