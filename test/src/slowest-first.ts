// The suite's file order (vitest.config.ts `sequence.sequencer`): the files known to take
// longest start first, so that with two workers the run does not end on one long file alone.
// Vitest orders by the durations of an earlier run on this machine when it has them (its
// results cache); a clean clone (CI) has none and would order by file size, which puts a long
// 2-test file late. Files not listed keep vitest's order, after the listed ones.
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

/**
 * Seconds each took in a full run (2 cores, one worker, noisy: load average about 10), longest
 * first. Only the order matters; refresh it when a file grows past the last entry here.
 */
export const SLOW_FILES_SECONDS: Readonly<Record<string, number>> = {
  'test/src/cluster-faults.test.ts': 104,
  'packages/broker/src/broker-crash.test.ts': 88,
  'packages/broker/src/broker-fd-limit.test.ts': 37,
  'test/src/cluster-groups-churn.test.ts': 32,
  'test/src/cli-dev-cluster.test.ts': 21,
  'test/src/corruption.test.ts': 20,
  'packages/broker/src/broker-faults.test.ts': 18,
  'benchmarks/src/suites/groups.test.ts': 17,
  'benchmarks/src/suites/fuzz.test.ts': 14,
  'packages/broker/src/kafka/kafka-group-park.test.ts': 13,
  'packages/broker/src/groups/coordinator.test.ts': 11,
  'test/src/cluster-groups.test.ts': 11,
  'test/src/consumer-groups.test.ts': 10,
  'packages/cli/src/cli.test.ts': 10,
  'test/src/kafka-groups.test.ts': 10,
  'test/src/cli-startup.test.ts': 9,
  'test/src/cli.test.ts': 9,
  'test/src/kafka-cluster.test.ts': 9,
  'packages/broker/src/sim/cluster-sim.test.ts': 8,
  'packages/cli/src/group-cli.test.ts': 8,
};

export default class SlowestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const root = this.ctx.config.root;
    const seconds = (f: TestSpecification): number =>
      SLOW_FILES_SECONDS[relative(root, f.moduleId).replaceAll('\\', '/')] ?? 0;
    // A stable sort: the unlisted files (0) keep the base order.
    return base
      .map((f, i) => ({ f, i, s: seconds(f) }))
      .sort((a, b) => b.s - a.s || a.i - b.i)
      .map((x) => x.f);
  }
}
