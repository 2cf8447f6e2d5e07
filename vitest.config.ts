import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/global-setup.ts'],
    pool: 'forks',
    // Test files run in parallel, each on its own database; two cores, mostly waiting on Postgres.
    poolOptions: { forks: { maxForks: 4, minForks: 1 } },
    testTimeout: 30_000,
    hookTimeout: 60_000,
  },
});
