// Runs many cluster-simulation seeds and summarises them; shared by the CLI (`pnpm sim cluster`)
// and the Vitest suite.

import { type ClusterSimResult, runClusterSeed } from './cluster-sim.js';
import type { SimReplicaFactory } from './sim-replica.js';

/** Stack frames kept on errors during a batch of seeds (see runClusterSeeds). */
const STACK_FRAMES_BATCH_MAX = 4;

export interface ClusterSeedsOptions {
  readonly replica: SimReplicaFactory;
  readonly faultPhaseMs?: number;
  readonly unsafeAckOnLeaderWrite?: boolean;
  readonly unsafeUngatedLeaderReads?: boolean;
  readonly unsafeDurableAtWrite?: boolean;
  /** Rack power cuts (default true; see ClusterSimOptions.rackPowerCuts). */
  readonly rackPowerCuts?: boolean;
  /** Run the controller quorum too (default true). */
  readonly controller?: boolean;
  readonly strictTopicExists?: boolean;
  readonly stopAtFirstFailure?: boolean;
}

export interface ClusterSeedsSummary {
  readonly seedsRun: number;
  readonly steps: number;
  readonly faults: Readonly<Record<string, number>>;
  readonly produced: number;
  readonly ackedAll: number;
  readonly ackedLeader: number;
  readonly consumed: number;
  readonly committedRecords: number;
  readonly topicsCreated: number;
  readonly existsAnswersLost: number;
  readonly livenessTicksMax: number;
  readonly failures: readonly ClusterSimResult[];
}

export async function runClusterSeeds(
  seedStart: number,
  seeds: number,
  options: ClusterSeedsOptions,
): Promise<ClusterSeedsSummary> {
  let steps = 0;
  let produced = 0;
  let ackedAll = 0;
  let ackedLeader = 0;
  let consumed = 0;
  let committedRecords = 0;
  let topicsCreated = 0;
  let existsAnswersLost = 0;
  let livenessTicksMax = 0;
  let seedsRun = 0;
  const faults: Record<string, number> = {};
  const failures: ClusterSimResult[] = [];
  // The code under test throws (and answers with) many typed errors a run (NOT_LEADER_OR_FOLLOWER,
  // NOT_CONTROLLER, timeouts); capturing deep stacks for each is about a third of a run's time.
  // Batch runs keep a few frames; a replay (`--trace`, runClusterSeed) keeps the default.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = STACK_FRAMES_BATCH_MAX;
  try {
    for (let seed = seedStart; seed < seedStart + seeds; seed++) {
      const r = await runClusterSeed({
        seed,
        replica: options.replica,
        ...(options.faultPhaseMs !== undefined ? { faultPhaseMs: options.faultPhaseMs } : {}),
        ...(options.unsafeAckOnLeaderWrite ? { unsafeAckOnLeaderWrite: true } : {}),
        ...(options.unsafeUngatedLeaderReads ? { unsafeUngatedLeaderReads: true } : {}),
        ...(options.unsafeDurableAtWrite ? { unsafeDurableAtWrite: true } : {}),
        ...(options.controller === false ? { controller: false } : {}),
        ...(options.rackPowerCuts === false ? { rackPowerCuts: false } : {}),
        ...(options.strictTopicExists === false ? { strictTopicExists: false } : {}),
      });
      seedsRun++;
      steps += r.steps;
      produced += r.produced;
      ackedAll += r.ackedAll;
      ackedLeader += r.ackedLeader;
      consumed += r.consumed;
      committedRecords += r.committedRecords;
      topicsCreated += r.topicsCreated;
      existsAnswersLost += r.existsAnswersLost;
      for (const [k, v] of Object.entries(r.faults)) faults[k] = (faults[k] ?? 0) + v;
      if (r.livenessTicks !== null) livenessTicksMax = Math.max(livenessTicksMax, r.livenessTicks);
      if (r.violations.length > 0) {
        failures.push(r);
        if (options.stopAtFirstFailure) break;
      }
    }
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
  return {
    seedsRun,
    steps,
    faults,
    produced,
    ackedAll,
    ackedLeader,
    consumed,
    committedRecords,
    topicsCreated,
    existsAnswersLost,
    livenessTicksMax,
    failures,
  };
}

export function clusterReplayCommand(
  seed: number,
  options: {
    replica: string;
    unsafeAckOnLeaderWrite?: boolean;
    unsafeUngatedLeaderReads?: boolean;
    unsafeDurableAtWrite?: boolean;
    faultPhaseMs?: number;
    strictTopicExists?: boolean;
    rackPowerCuts?: boolean;
  },
): string {
  const flags = ['--replica', options.replica];
  if (options.faultPhaseMs !== undefined)
    flags.push('--fault-phase-ms', String(options.faultPhaseMs));
  if (options.unsafeAckOnLeaderWrite) flags.push('--unsafe-ack-on-leader-write');
  if (options.unsafeUngatedLeaderReads) flags.push('--unsafe-ungated-leader-reads');
  if (options.unsafeDurableAtWrite) flags.push('--unsafe-durable-at-write');
  if (options.strictTopicExists === false) flags.push('--lenient-topic-exists');
  if (options.rackPowerCuts === false) flags.push('--no-rack-power-cuts');
  return ['pnpm sim cluster --seeds 1 --seed-start', String(seed), '--trace', ...flags].join(' ');
}
