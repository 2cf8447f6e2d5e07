import { describe, expect, it } from 'vitest';
import { startProcess } from '../support/process.js';

/**
 * The load and fault runs the docs name (docs/DEPLOY.md, docs/RELIABILITY.md, bench/README.md),
 * run through npm exactly as an operator types them, small: each must finish and say PASSED.
 */

async function npmRun(args: string[]): Promise<string> {
  const p = startProcess('npm', ['run', ...args], { env: {} });
  const { code } = await p.exited;
  expect(code, p.output().slice(-4000)).toBe(0);
  return p.output();
}

describe('bench commands', () => {
  it('npm run bench:scale-out: API instances and a worker through PgBouncer on a small database', { timeout: 300_000 }, async () => {
    const out = await npmRun(['bench:scale-out', '--', '--api', '2', '--workers', '1', '--users', '4', '--rest', '1']);
    expect(out).toMatch(/^\| users \/ jobs completed \| 4 \/ 4 \|$/m);
    expect(out).toMatch(/^\| SSE streams that heard their job end \(NOTIFY only\) \| 4 of 4 \|$/m);
    expect(out).toMatch(/^\| connections PostgreSQL refused \(too many clients\) \| 0 \|$/m);
    expect(out).toMatch(/SCALE-OUT: PASSED/);
  });
});
