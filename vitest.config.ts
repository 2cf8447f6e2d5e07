import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    reporters: ['default', './test/support/slowest-reporter.ts'],
    pool: 'forks',
    // Test files run in parallel, each on its own database; two cores, mostly waiting on Postgres.
    poolOptions: { forks: { maxForks: 4, minForks: 1 } },
    // Limits, not expectations: a loaded 2-core machine may take this long; nothing asserts speed.
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
