import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // GPU suites need the CUDA addon and a device; `npm run test:gpu` runs them.
    exclude: ['test/gpu/**', 'node_modules/**', 'dist/**'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    globalSetup: ['test/setup/gradients.ts'],
  },
});
