import { defineConfig } from 'vitest/config';

// npx vitest run --config bench/census.config.ts  → kernel names in $CENSUS_OUT (default /tmp/kernel-census.txt)
export default defineConfig({
  test: {
    include: ['test/adapters/*.test.ts', 'test/train/*.test.ts', 'test/model/*.test.ts', 'test/ops/*.test.ts'],
    setupFiles: ['bench/census.setup.ts'],
    testTimeout: 600_000,
    pool: 'forks',
    globalSetup: ['test/setup/gradients.ts'],
  },
});
