import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['packages/*/src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Store tests start embedded PostgreSQL; keep files from starting many at once on a 2-core machine.
    maxWorkers: 2,
    globalSetup: ['test/support/global-setup.ts'],
  },
});
