import { defineConfig } from 'vitest/config';

// One suite for the whole workspace. Tests import sibling packages through their built `dist`
// (the exports map), so `npm test` builds first; see scripts/run.mjs.
export default defineConfig({
  test: {
    include: [
      'packages/*/src/**/*.test.ts',
      'test/src/**/*.test.ts',
      'benchmarks/src/**/*.test.ts',
    ],
    exclude: ['**/node_modules/**', '**/dist/**'],
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
