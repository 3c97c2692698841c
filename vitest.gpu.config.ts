import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/gpu/**/*.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 600_000,
    pool: 'forks',
    globalSetup: ['test/setup/gradients.ts'],
    fileParallelism: false,
  },
});
