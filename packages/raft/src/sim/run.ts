// Runs many seeds and summarises them; shared by the CLI (`pnpm sim`) and the Vitest suite.

import type { RaftConfig } from '../config.js';
import { runSeed, type SimResult } from './cluster.js';

export interface SeedsSummary {
  readonly seedsRun: number;
  readonly steps: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly faultCount: number;
  readonly proposals: number;
  readonly committed: number;
  readonly reads: number;
  readonly livenessTicksMax: number;
  readonly failures: readonly SimResult[];
}

export function runSeeds(
  seedStart: number,
  seeds: number,
  options: {
    unsafe?: RaftConfig['unsafe'];
    faultPhaseMs?: number;
    coldStorage?: boolean;
    stopAtFirstFailure?: boolean;
  } = {},
): SeedsSummary {
  let steps = 0;
  let faultCount = 0;
  let proposals = 0;
  let committed = 0;
  let reads = 0;
  let livenessTicksMax = 0;
  let seedsRun = 0;
  const faults: Record<string, number> = {};
  const failures: SimResult[] = [];
  for (let seed = seedStart; seed < seedStart + seeds; seed++) {
    const r = runSeed({
      seed,
      ...(options.unsafe ? { unsafe: options.unsafe } : {}),
      ...(options.faultPhaseMs !== undefined ? { faultPhaseMs: options.faultPhaseMs } : {}),
      ...(options.coldStorage ? { coldStorage: true } : {}),
    });
    seedsRun++;
    steps += r.steps;
    faultCount += r.faultCount;
    proposals += r.proposals;
    committed += r.committed;
    reads += r.reads;
    for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
    if (r.livenessTicks !== null) livenessTicksMax = Math.max(livenessTicksMax, r.livenessTicks);
    if (r.violations.length > 0) {
      failures.push(r);
      if (options.stopAtFirstFailure) break;
    }
  }
  return {
    seedsRun,
    steps,
    faults,
    faultCount,
    proposals,
    committed,
    reads,
    livenessTicksMax,
    failures,
  };
}

export function replayCommand(
  seed: number,
  unsafe?: RaftConfig['unsafe'],
  coldStorage = false,
): string {
  const flags: string[] = [];
  if (coldStorage) flags.push('--cold-storage');
  if (unsafe?.voteTwice) flags.push('--unsafe-vote-twice');
  if (unsafe?.commitPreviousTerm) flags.push('--unsafe-commit-previous-term');
  return ['pnpm sim --seeds 1 --seed-start', String(seed), '--trace', ...flags].join(' ');
}
