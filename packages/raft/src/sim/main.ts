// `pnpm sim --seeds K --seed-start S [--trace] [--cold-storage] [--unsafe-vote-twice] [--unsafe-commit-previous-term]`
// Runs K simulator seeds from S and prints a summary: seeds run, steps, faults injected by
// kind, violations. Exits 1 on any violation, printing the command that replays the first
// failing seed (with --trace, which prints the event log of a single seed). Exits 2 on bad
// arguments. The --unsafe-* switches break the core on purpose, to watch the checkers fail.
// --cold-storage runs every node over ColdStorage (entries randomly not in memory, loaded a
// few ticks after the core asks for them).

import type { RaftConfig } from '../config.js';
import { LIVENESS_TICKS_MAX, runSeed } from './cluster.js';
import { replayCommand, runSeeds } from './run.js';

function intFlag(argv: string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} needs a non-negative integer`);
  return v;
}

function main(argv: string[]): number {
  let seeds: number;
  let seedStart: number;
  try {
    seeds = intFlag(argv, '--seeds', 100);
    seedStart = intFlag(argv, '--seed-start', 1);
  } catch (err) {
    console.error(`sim: ${(err as Error).message}`);
    console.error(
      'usage: pnpm sim --seeds K --seed-start S [--trace] [--cold-storage] [--unsafe-vote-twice] [--unsafe-commit-previous-term]',
    );
    return 2;
  }
  const unsafe: NonNullable<RaftConfig['unsafe']> = {
    ...(argv.includes('--unsafe-vote-twice') ? { voteTwice: true } : {}),
    ...(argv.includes('--unsafe-commit-previous-term') ? { commitPreviousTerm: true } : {}),
  };
  const unsafeOpt = Object.keys(unsafe).length > 0 ? unsafe : undefined;
  const coldStorage = argv.includes('--cold-storage');
  if (argv.includes('--trace')) {
    for (let seed = seedStart; seed < seedStart + seeds; seed++) {
      const r = runSeed({
        seed,
        ...(unsafeOpt ? { unsafe: unsafeOpt } : {}),
        coldStorage,
        trace: (l) => console.log(l),
      });
      for (const v of r.violations) console.log(`VIOLATION ${v.kind}: ${v.detail}`);
    }
  }
  const started = performance.now();
  const s = runSeeds(seedStart, seeds, {
    ...(unsafeOpt ? { unsafe: unsafeOpt } : {}),
    coldStorage,
  });
  const seconds = (performance.now() - started) / 1000;
  console.log(
    `seeds run:        ${s.seedsRun} (${seedStart}..${seedStart + s.seedsRun - 1}) in ${seconds.toFixed(1)} s`,
  );
  console.log(`steps:            ${s.steps}`);
  console.log(`faults injected:  ${s.faultCount}`);
  for (const [k, v] of Object.entries(s.faults).sort()) console.log(`  ${k.padEnd(22)}${v}`);
  console.log(`proposals:        ${s.proposals} (committed entries: ${s.committed})`);
  console.log(`reads (ReadIndex): ${s.reads}`);
  console.log(
    `liveness:         worst ${s.livenessTicksMax} ticks after healing (bound ${LIVENESS_TICKS_MAX})`,
  );
  console.log(
    `violations:       ${s.failures.reduce((a, f) => a + f.violations.length, 0)} in ${s.failures.length} seeds`,
  );
  for (const f of s.failures.slice(0, 10)) {
    for (const v of f.violations.slice(0, 3))
      console.log(`  seed ${f.seed}: ${v.kind}: ${v.detail}`);
  }
  const first = s.failures[0];
  if (first) {
    console.log(`replay: ${replayCommand(first.seed, unsafeOpt, coldStorage)}`);
    return 1;
  }
  return 0;
}

process.exitCode = main(process.argv.slice(2));
