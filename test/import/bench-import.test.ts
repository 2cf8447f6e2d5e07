import { describe, expect, inject, it } from 'vitest';
import { npmRun } from '../support/process.js';

/**
 * `npm run bench:import` as the docs name it, at a tiny size: it seeds a former Supabase deployment,
 * imports it, and the import balances and passes verify-ledger --full. Nothing here is about speed:
 * the numbers only have to be there.
 */
describe('npm run bench:import', () => {
  it('seeds, imports and verifies, and prints the rate of each phase and the peak memory', { timeout: 300_000 }, async () => {
    const out = await npmRun(['--silent', 'bench:import', '--', '--users', '300', '--jobs-per-user', '2', '--batch-size', '100', '--database-url', inject('adminUrl')]);
    expect(out).toContain('import balanced and verify-ledger OK');
    expect(out).toMatch(/^\| users \| 300 \| [\d.]+ \| [\d,]+ \|$/m);
    expect(out).toMatch(/^\| purchases \| [1-9][\d,]* \| [\d.]+ \| [\d,]+ \|$/m);
    expect(out).toMatch(/^\| jobs \| 600 \| [\d.]+ \| [\d,]+ \|$/m);
    expect(out).toMatch(/^peak resident memory: [\d,]+ MiB$/m);
    expect(out).toMatch(/^at these rates: 1M users \/ 10M jobs ≈ \d+ min/m);
  });
});
