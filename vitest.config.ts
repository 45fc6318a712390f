import { defineConfig } from 'vitest/config';
import SlowestFirst from './test/src/slowest-first.js';

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
    // Two files at a time even on 2 cores (vitest's default there is one): most of a
    // multi-process file's time is spent waiting (elections, sessions, restarts), not computing.
    maxWorkers: 2,
    // The longest files first (test/src/slowest-first.ts), so the run does not end on one alone.
    sequence: { sequencer: SlowestFirst },
    // Bounds for a hang, not speed checks: with two files at a time on a loaded 2-core machine a
    // test that spawns several CLI processes took over 20 s (it takes 2-8 s alone).
    testTimeout: 45_000,
    hookTimeout: 60_000,
    reporters: ['default'],
  },
});
