import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, inject, it } from 'vitest';
import { adminQuery } from '../support/db.js';

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * `npm run bench:scale` as the docs name it, at tiny sizes: it seeds three databases, prints the
 * table (median / p99 per row and size), and the data it seeds passes `npm run verify-ledger -- --full`.
 * Nothing here is about speed: the numbers only have to be there.
 */
describe('npm run bench:scale', () => {
  it('seeds consistent data at three sizes and prints the costs table', { timeout: 600_000 }, async () => {
    const adminUrl = inject('adminUrl');
    const { stdout } = await run(
      'npm',
      ['run', '--silent', 'bench:scale', '--', '--sizes', '200:2k,300:3k,400:4k', '--iterations', '3', '--verify-rounds', '2', '--database-url', adminUrl, '--keep'],
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
    );
    const kept = /^kept database: (\S+)$/m.exec(stdout)?.[1];
    expect(kept, stdout).toBeDefined();
    try {
      expect(stdout.match(/^verify-ledger --full on the seeded data: OK/gm), stdout).toHaveLength(3);
      expect(stdout.match(/^verify-ledger incremental: OK \(2 rounds/gm), stdout).toHaveLength(3);
      expect(stdout).toContain('| what | 200 users / 2k jobs | 300 users / 3k jobs | 400 users / 4k jobs |');
      const ms = String.raw`[\d.]+ (?:ms|s)`;
      const pair = `${ms} / ${ms}`;
      for (const [row, cell] of [
        ['admin search by email / device / id', pair],
        ['admin user page, typical user', pair],
        ['admin user page, 20k-job user', pair],
        ['admin dashboard', pair],
        ['admin actions of one user', pair],
        ['admin job timeline', pair],
        ['verify-ledger --full \\(seeded data\\)', `${ms} \\(\\d+ accounts\\)`],
        ['verify-ledger incremental \\(a day of traffic\\)', `${pair} \\(\\d+ accounts changed\\)`],
        ['session retention', `${ms} \\([1-9]\\d* sessions deleted\\)`],
        ['video retention', `${ms} \\([1-9]\\d* jobs expired\\)`],
      ]) {
        expect(stdout, row).toMatch(new RegExp(`^\\| ${row} \\| ${cell} \\| ${cell} \\| ${cell} \\|$`, 'm'));
      }

      // The seeded data (and the bench's own traffic and retention on it) holds every invariant,
      // checked by the command operators run.
      const verify = await run('npm', ['run', '--silent', 'verify-ledger', '--', '--full'], { cwd: ROOT, env: { ...process.env, DATABASE_URL: kept! } });
      expect(verify.stdout).toMatch(/^ledger OK \(full pass, 400 accounts/m);
    } finally {
      await adminQuery(adminUrl, `DROP DATABASE IF EXISTS "${new URL(kept!).pathname.slice(1)}" WITH (FORCE)`);
    }
  });
});
