import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints the slowest test files after the run, so whoever watches CI's 20-minute budget sees where
 * the time goes (the default reporter shows durations only file by file, as they finish).
 */
export default class SlowestFiles implements Reporter {
  onTestRunEnd(modules: ReadonlyArray<TestModule>): void {
    const rows = modules
      .map((m) => ({ file: m.moduleId.replace(process.cwd() + '/', ''), ms: m.diagnostic().duration }))
      .sort((a, b) => b.ms - a.ms)
      .slice(0, 10);
    if (!rows.length) return;
    const total = modules.reduce((sum, m) => sum + m.diagnostic().duration, 0);
    console.log(`\nSlowest test files (of ${modules.length}; ${(total / 1000).toFixed(0)} s summed over parallel workers):`);
    for (const r of rows) console.log(`  ${(r.ms / 1000).toFixed(1).padStart(7)} s  ${r.file}`);
  }
}
