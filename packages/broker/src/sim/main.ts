// `pnpm sim cluster --seeds N --seed-start S [--trace] [--replica real|stand-in]
//   [--fault-phase-ms MS] [--unsafe-ack-on-leader-write] [--unsafe-ungated-leader-reads]
//   [--unsafe-durable-at-write] [--lenient-topic-exists] [--no-rack-power-cuts]`
// (also `npm run sim -- cluster ...`; scripts/sim.mjs sends `cluster` here and everything else to
// the Raft core's simulator). Runs N cluster-simulation seeds from S and prints a summary:
// seeds, steps, faults injected by kind, records produced, acknowledged and consumed, the worst
// liveness after healing, violations. Exits 1 on any violation, printing the seed and the
// command that replays it (with --trace: the event log of that seed). Exits 2 on bad arguments.
// --unsafe-ack-on-leader-write answers acks=all at the leader's own write: the checkers must
// then fail; --unsafe-ungated-leader-reads turns off leader read-gating (the leader-read checker
// must then fail); --unsafe-durable-at-write counts a replica's entries durable once written
// (pipelined persistence without the fsync report: the checkers must then fail). --lenient-topic-exists only counts a TOPIC_ALREADY_EXISTS answer for a topic that never
// came to exist instead of failing the seed (see controller-sim.ts). --no-rack-power-cuts leaves out
// the rack power cuts (the chaos of the seeds run before that fault existed, cluster-sim.ts).

import { LIVENESS_TICKS_MAX, runClusterSeed } from './cluster-sim.js';
import { DEFAULT_REPLICA, replicaFactory } from './replicas.js';
import { clusterReplayCommand, runClusterSeeds } from './run.js';

const USAGE =
  'usage: pnpm sim cluster --seeds N --seed-start S [--trace] [--replica real|stand-in] [--fault-phase-ms MS] [--unsafe-ack-on-leader-write] [--unsafe-ungated-leader-reads] [--unsafe-durable-at-write] [--lenient-topic-exists] [--no-rack-power-cuts]';

function intFlag(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(name);
  if (i < 0) return fallback;
  const v = Number(argv[i + 1]);
  if (!Number.isSafeInteger(v) || v < 0) throw new Error(`${name} needs a non-negative integer`);
  return v;
}

function stringFlag(argv: readonly string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  if (i < 0) return undefined;
  const v = argv[i + 1];
  if (v === undefined || v.startsWith('--')) throw new Error(`${name} needs a value`);
  return v;
}

export async function main(argv: readonly string[]): Promise<number> {
  let seeds: number;
  let seedStart: number;
  let faultPhaseMs: number | undefined;
  let replicaName: string;
  const known = new Set([
    '--seeds',
    '--seed-start',
    '--trace',
    '--replica',
    '--fault-phase-ms',
    '--unsafe-ack-on-leader-write',
    '--unsafe-ungated-leader-reads',
    '--unsafe-durable-at-write',
    '--lenient-topic-exists',
    '--no-rack-power-cuts',
  ]);
  try {
    for (const a of argv)
      if (a.startsWith('--') && !known.has(a)) throw new Error(`unknown flag ${a}`);
    seeds = intFlag(argv, '--seeds', 100);
    seedStart = intFlag(argv, '--seed-start', 1);
    const phase = intFlag(argv, '--fault-phase-ms', -1);
    faultPhaseMs = phase >= 0 ? phase : undefined;
    replicaName = stringFlag(argv, '--replica') ?? DEFAULT_REPLICA;
    replicaFactory(replicaName);
  } catch (err) {
    console.error(`sim cluster: ${(err as Error).message}`);
    console.error(USAGE);
    return 2;
  }
  const replica = replicaFactory(replicaName);
  const unsafeAckOnLeaderWrite = argv.includes('--unsafe-ack-on-leader-write');
  const unsafeUngatedLeaderReads = argv.includes('--unsafe-ungated-leader-reads');
  const unsafeDurableAtWrite = argv.includes('--unsafe-durable-at-write');
  const strictTopicExists = !argv.includes('--lenient-topic-exists');
  const rackPowerCuts = !argv.includes('--no-rack-power-cuts');
  const common = {
    replica,
    ...(strictTopicExists ? {} : { strictTopicExists }),
    ...(rackPowerCuts ? {} : { rackPowerCuts }),
    ...(faultPhaseMs !== undefined ? { faultPhaseMs } : {}),
    ...(unsafeAckOnLeaderWrite ? { unsafeAckOnLeaderWrite } : {}),
    ...(unsafeUngatedLeaderReads ? { unsafeUngatedLeaderReads } : {}),
    ...(unsafeDurableAtWrite ? { unsafeDurableAtWrite } : {}),
  };
  if (argv.includes('--trace')) {
    for (let seed = seedStart; seed < seedStart + seeds; seed++) {
      const r = await runClusterSeed({ seed, ...common, trace: (l) => console.log(l) });
      for (const v of r.violations) console.log(`VIOLATION ${v.kind}: ${v.detail}`);
    }
  }
  const started = performance.now();
  const s = await runClusterSeeds(seedStart, seeds, common);
  const seconds = (performance.now() - started) / 1000;
  console.log(`replica:          ${replica.name}`);
  console.log(
    `seeds run:        ${s.seedsRun} (${seedStart}..${seedStart + s.seedsRun - 1}) in ${seconds.toFixed(1)} s`,
  );
  console.log(`steps:            ${s.steps}`);
  console.log(`faults injected:  ${Object.values(s.faults).reduce((a, b) => a + b, 0)}`);
  for (const [k, v] of Object.entries(s.faults).sort()) console.log(`  ${k.padEnd(22)}${v}`);
  console.log(
    `produce requests: ${s.produced} (acked acks=all ${s.ackedAll}, acks=1 ${s.ackedLeader})`,
  );
  console.log(`records consumed: ${s.consumed} (committed at the end: ${s.committedRecords})`);
  console.log(
    `topics created:   ${s.topicsCreated} (through any broker, forwarded to the controller)`,
  );
  console.log(
    `exists, then not: ${s.existsAnswersLost} (retries told TOPIC_ALREADY_EXISTS of a topic that never came to exist)`,
  );
  console.log(
    `liveness:         worst ${s.livenessTicksMax} ticks after healing (bound ${LIVENESS_TICKS_MAX})`,
  );
  console.log(
    `violations:       ${s.failures.reduce((a, f) => a + f.violations.length, 0)} in ${s.failures.length} seeds`,
  );
  for (const f of s.failures.slice(0, 10)) {
    for (const v of f.violations.slice(0, 3))
      console.log(`  seed ${f.seed}: ${v.kind}: ${v.detail.split('\n')[0]}`);
  }
  const first = s.failures[0];
  if (first) {
    console.log(`failing seed: ${first.seed}`);
    console.log(
      `replay: ${clusterReplayCommand(first.seed, { replica: replica.name, unsafeAckOnLeaderWrite, unsafeUngatedLeaderReads, unsafeDurableAtWrite, strictTopicExists, rackPowerCuts, ...(faultPhaseMs !== undefined ? { faultPhaseMs } : {}) })}`,
    );
    return 1;
  }
  return 0;
}
