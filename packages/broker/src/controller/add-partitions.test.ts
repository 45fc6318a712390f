// The add-partitions planner (add-partitions.ts): its refusals with Kafka's codes, placement
// like a creation's when the controller chooses, client assignments checked, and a record
// planned against a stale count applying as a no-op.
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { planAddPartitions } from './add-partitions.js';
import { planCreateTopic } from './controller-planner.js';
import { applyRecord, leaderCounts, type MetadataState, topicByName } from './metadata-state.js';
import { liveCluster, runRecords } from './state-testing.js';

function withTopic(brokers: number, partitions: number, rf: number): MetadataState {
  const s = liveCluster(brokers);
  return runRecords(s, planCreateTopic(s, { name: 't', partitions, replicationFactor: rf }));
}

function expectCode(fn: () => unknown, code: number, message: RegExp): void {
  let thrown: unknown;
  try {
    fn();
  } catch (err) {
    thrown = err;
  }
  expect(isStreamBusError(thrown, code), String(thrown)).toBe(true);
  expect((thrown as Error).message).toMatch(message);
}

describe('planAddPartitions', () => {
  it('places the new partitions like a creation: the topic factor, leaders spread', () => {
    const s = withTopic(3, 3, 2);
    const records = planAddPartitions(s, { name: 't', count: 6 });
    expect(records).toHaveLength(1);
    const r = records[0]!;
    expect(r).toMatchObject({ type: 'add-partitions', count: 6 });
    const after = runRecords(s, records);
    const t = topicByName(after, 't')!;
    expect(t.partitions).toHaveLength(6);
    for (const p of t.partitions.slice(3)) {
      expect(p.replicas).toHaveLength(2);
      expect(new Set(p.replicas).size).toBe(2);
      expect(p.leader).toBe(p.replicas[0]);
    }
    // 6 partitions over 3 brokers: 2 leaders each.
    expect([...leaderCounts(after).values()]).toEqual([2, 2, 2]);
  });

  it('takes assignments given by the client, checked', () => {
    const s = withTopic(3, 1, 2);
    const after = runRecords(
      s,
      planAddPartitions(s, {
        name: 't',
        count: 3,
        assignments: [
          [3, 1],
          [2, 3],
        ],
      }),
    );
    expect(topicByName(after, 't')!.partitions.map((p) => p.replicas)).toEqual([
      topicByName(s, 't')!.partitions[0]!.replicas,
      [3, 1],
      [2, 3],
    ]);
    const bad = (assignments: number[][], message: RegExp) =>
      expectCode(
        () => planAddPartitions(s, { name: 't', count: 2, assignments }),
        ErrorCode.INVALID_REPLICA_ASSIGNMENT,
        message,
      );
    bad([[1, 2, 3]], /3 replicas, the topic's replication factor is 2/);
    bad([[1, 1]], /broker 1 appears twice/);
    bad([[1, 9]], /broker 9 is not registered/);
    bad(
      [
        [1, 2],
        [2, 3],
      ],
      /2 replica assignments for 1 new partitions/,
    );
  });

  it("refuses with Kafka's codes: unknown topic, no growth, over the limits", () => {
    const s = withTopic(2, 2, 2);
    expectCode(
      () => planAddPartitions(s, { name: 'nope', count: 3 }),
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      /unknown topic nope/,
    );
    for (const count of [1, 2]) {
      expectCode(
        () => planAddPartitions(s, { name: 't', count }),
        ErrorCode.INVALID_PARTITIONS,
        /has 2 partitions: the count can only grow/,
      );
    }
    const limits = { partitionsPerTopicMax: 5, partitionsTotalMax: 4 };
    expectCode(
      () => planAddPartitions(s, { name: 't', count: 6 }, limits),
      ErrorCode.INVALID_PARTITIONS,
      /6 partitions exceed the most a topic may have \(5\)/,
    );
    expectCode(
      () => planAddPartitions(s, { name: 't', count: 5 }, limits),
      ErrorCode.POLICY_VIOLATION,
      /exceed partitionsTotalMax \(4\)/,
    );
    // A factor above the live brokers (one fenced) cannot be placed by the controller.
    const fenced = runRecords(s, [
      { type: 'fence-broker', brokerId: 2, brokerEpoch: s.brokers.get(2)!.brokerEpoch },
    ]);
    expectCode(
      () => planAddPartitions(fenced, { name: 't', count: 3 }),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /replication factor 2 but only 1 brokers are live/,
    );
  });

  it('a record planned against a stale count is a no-op when applied (no double add)', () => {
    const s = withTopic(2, 1, 1);
    const first = planAddPartitions(s, { name: 't', count: 2 });
    const second = planAddPartitions(s, { name: 't', count: 2 });
    const after = runRecords(s, first);
    expect(applyRecord(after, second[0]!).noop).toMatch(/has 2 partitions/);
    expect(topicByName(runRecords(after, second), 't')!.partitions).toHaveLength(2);
  });
});
