import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/integration/global-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Integration tests share namespaces/ports; keep files sequential to
    // stay within the 2-core CI machines' limits.
    fileParallelism: false,
  },
});
