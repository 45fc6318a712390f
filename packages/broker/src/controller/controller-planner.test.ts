import { ErrorCode } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assignReplicas,
  planAllocateProducerIds,
  planAlterTopicConfig,
  planBootstrap,
  planControlledShutdown,
  planCreateTopic,
  planDeleteTopic,
  planFenceExpired,
  planHeartbeat,
  planIsrChange,
  planRegisterBroker,
  preferredLeaderMoves,
} from './controller-planner.js';
import type { MetadataRecord } from './metadata-records.js';
import {
  apply,
  decodeSnapshot,
  EMPTY_METADATA_STATE,
  encodeSnapshot,
  isLive,
  leaderCounts,
  type MetadataState,
  topicByName,
  topicsInOrder,
} from './metadata-state.js';
import { liveCluster } from './state-testing.js';

const run = (s: MetadataState, records: readonly MetadataRecord[]) => records.reduce(apply, s);

/** A bootstrapped cluster of brokers 1..n, each registered and unfenced by a heartbeat at tick 0. */
const cluster = liveCluster;

function expectCode(fn: () => unknown, code: number, message?: RegExp): void {
  expect(fn).toThrow(expect.objectContaining({ code }));
  if (message) expect(fn).toThrow(message);
}

function spread(s: MetadataState): number {
  const counts = [...leaderCounts(s).values()];
  return Math.max(...counts) - Math.min(...counts);
}

/** Invariants every state reached through the planner keeps. */
function checkInvariants(s: MetadataState): void {
  for (const t of s.topics.values()) {
    for (const p of t.partitions) {
      expect(new Set(p.replicas).size).toBe(p.replicas.length);
      if (p.leader !== -1) {
        expect(p.isr).toContain(p.leader);
        expect(isLive(s, p.leader), `leader ${p.leader} of ${t.name} is fenced`).toBe(true);
      }
      for (const id of p.isr) expect(p.replicas).toContain(id);
    }
  }
}

describe('controller planner', () => {
  it("assigns replicas as Kafka's rack-unaware assignor does", () => {
    // AdminUtils' documented example: 5 brokers, 10 partitions, replication factor 3, start 0.
    const a = assignReplicas([0, 1, 2, 3, 4], 10, 3);
    expect(a[0]).toEqual([0, 1, 2]);
    expect(a[4]).toEqual([4, 0, 1]);
    expect(a[5]).toEqual([0, 2, 3]);
    expect(a[9]).toEqual([4, 1, 2]);
  });

  it('creates topics with distinct replicas on live brokers and leaders balanced within 1', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 7 }),
        fc.array(fc.tuple(fc.integer({ min: 1, max: 20 }), fc.integer({ min: -1, max: 7 })), {
          minLength: 1,
          maxLength: 12,
        }),
        (n, creates) => {
          let s = cluster(n);
          creates.forEach(([partitions, rf], i) => {
            const factor = rf === 0 || rf > n ? -1 : rf;
            const records = planCreateTopic(s, {
              name: `t${i}`,
              partitions,
              replicationFactor: factor,
            });
            expect(records).toHaveLength(1);
            s = run(s, records);
            const topic = topicByName(s, `t${i}`)!;
            expect(topic.partitions).toHaveLength(partitions);
            for (const p of topic.partitions) {
              expect(p.replicas).toHaveLength(factor === -1 ? Math.min(3, n) : factor);
              expect(new Set(p.replicas).size).toBe(p.replicas.length);
              for (const id of p.replicas) expect(isLive(s, id)).toBe(true);
              expect(p.leader).toBe(p.replicas[0]);
            }
            expect(spread(s), `after t${i}`).toBeLessThanOrEqual(1);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuses bad topic requests with typed errors', () => {
    const s = run(
      cluster(2),
      planCreateTopic(cluster(2), { name: 'a.b', partitions: 1, replicationFactor: 1 }),
    );
    expectCode(
      () => planCreateTopic(s, { name: 't', partitions: 1, replicationFactor: 3 }),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /replication factor 3 needs 1..2 \(live brokers: 2\)/,
    );
    expectCode(
      () => planCreateTopic(s, { name: 'a/b', partitions: 1, replicationFactor: 1 }),
      ErrorCode.INVALID_TOPIC_EXCEPTION,
    );
    expectCode(
      () => planCreateTopic(s, { name: 'a_b', partitions: 1, replicationFactor: 1 }),
      ErrorCode.INVALID_TOPIC_EXCEPTION,
      /collides with existing topic 'a.b'/,
    );
    expectCode(
      () => planCreateTopic(s, { name: 'a.b', partitions: 1, replicationFactor: 1 }),
      ErrorCode.TOPIC_ALREADY_EXISTS,
    );
    expectCode(
      () => planCreateTopic(s, { name: 't', partitions: 0, replicationFactor: 1 }),
      ErrorCode.INVALID_PARTITIONS,
    );
    expectCode(
      () =>
        planCreateTopic(
          s,
          { name: 't', partitions: 5, replicationFactor: 1 },
          { partitionsPerTopicMax: 10, partitionsTotalMax: 5 },
        ),
      ErrorCode.POLICY_VIOLATION,
      /the cluster has 1 partitions; 5 more exceed partitionsTotalMax \(5\)/,
    );
    expectCode(
      () =>
        planCreateTopic(s, {
          name: 't',
          partitions: 1,
          replicationFactor: 1,
          configs: { 'retention.ms': 'soon' },
        }),
      ErrorCode.INVALID_CONFIG,
      /retention.ms: expected/,
    );
    expectCode(
      () => planAlterTopicConfig(s, 'a.b', { nope: '1' }),
      ErrorCode.INVALID_CONFIG,
      /unknown topic config/,
    );
    expectCode(() => planDeleteTopic(s, 'zz'), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expectCode(
      () =>
        planCreateTopic(EMPTY_METADATA_STATE, { name: 't', partitions: 1, replicationFactor: 1 }),
      ErrorCode.INVALID_REQUEST,
    );
    const noBrokers = run(EMPTY_METADATA_STATE, planBootstrap(EMPTY_METADATA_STATE, 'c1'));
    expectCode(
      () => planCreateTopic(noBrokers, { name: 't', partitions: 1, replicationFactor: -1 }),
      ErrorCode.INVALID_REPLICATION_FACTOR,
      /no live brokers/,
    );
  });

  it('refuses heartbeats from unknown brokers and stale epochs', () => {
    const s = cluster(1);
    expectCode(
      () => planHeartbeat(s, { brokerId: 9, brokerEpoch: 1 }, 5),
      ErrorCode.BROKER_ID_NOT_REGISTERED,
    );
    expectCode(
      () => planHeartbeat(s, { brokerId: 1, brokerEpoch: 7 }, 5),
      ErrorCode.STALE_BROKER_EPOCH,
      /registered epoch is 1/,
    );
  });

  it('fences a silent broker: out of every ISR, its partitions leaderless at the same epoch until their groups report', () => {
    let s = cluster(3);
    s = run(s, planCreateTopic(s, { name: 't', partitions: 3, replicationFactor: 2 }));
    // Brokers 2 and 3 heartbeat at tick 10; broker 1 stays silent.
    for (const id of [2, 3]) s = run(s, planHeartbeat(s, { brokerId: id, brokerEpoch: id }, 10));
    expect(planFenceExpired(s, 10, 10)).toEqual([]);
    const fencing = planFenceExpired(s, 11, 10);
    expect(fencing[0]).toEqual({ type: 'fence-broker', brokerId: 1, brokerEpoch: 1 });
    s = run(s, fencing);
    checkInvariants(s);
    const t = topicByName(s, 't')!;
    const led = t.partitions.findIndex((p) => p.replicas[0] === 1);
    /** The partition's Raft leader `leader` reports in term `epoch`. */
    const elected = (leader: number, epoch: number, isr: number[]) =>
      planIsrChange(s, { topicId: t.id, partition: led, leader, leaderEpoch: epoch, isr });
    for (const p of t.partitions) {
      expect(p.isr).not.toContain(1);
      // The controller picks no leader and invents no epoch: Raft terms only.
      expect(p.leaderEpoch).toBe(0);
      expect(p.leader).not.toBe(1);
    }
    expect(t.partitions[led]!.leader).toBe(-1);
    // The partition's Raft group elected the other replica (term 1): recorded at once.
    const other = t.partitions[led]!.replicas[1]!;
    s = run(s, elected(other, 1, [other]));
    expect(topicByName(s, 't')!.partitions[led]).toMatchObject({ leader: other, leaderEpoch: 1 });
    // Broker 1 comes back: unfenced, leading nothing until its group elects it.
    s = run(s, planHeartbeat(s, { brokerId: 1, brokerEpoch: 1 }, 12));
    expect(isLive(s, 1)).toBe(true);
    expect(leaderCounts(s).get(1)).toBe(0);
    // Once a leader reports it in sync, it is the preferred leader to move back to.
    s = run(s, elected(other, 1, [1, other]));
    expect(preferredLeaderMoves(s)).toEqual([
      { topicId: t.id, topic: 't', partition: led, from: other, to: 1 },
    ]);
    expect(preferredLeaderMoves(s, 0)).toEqual([]);
    // The hand-over is a Raft transfer: the preferred replica reports its new term.
    s = run(s, elected(1, 2, [1, other]));
    checkInvariants(s);
    expect(preferredLeaderMoves(s)).toEqual([]);
    expect(spread(s)).toBe(0);
  });

  it('the same Raft leader reporting again after it was fenced and returned is recorded in its own term', () => {
    let s = cluster(2);
    s = run(s, planCreateTopic(s, { name: 't', partitions: 1, replicationFactor: 2 }));
    const t = topicByName(s, 't')!;
    const leader = t.partitions[0]!.leader;
    const follower = t.partitions[0]!.replicas[1]!;
    s = run(
      s,
      planIsrChange(s, {
        topicId: t.id,
        partition: 0,
        leader,
        leaderEpoch: 3,
        isr: [leader, follower],
      }),
    );
    s = run(
      s,
      planHeartbeat(
        s,
        { brokerId: follower, brokerEpoch: s.brokers.get(follower)!.brokerEpoch },
        20,
      ),
    );
    s = run(s, planFenceExpired(s, 20, 5));
    expect(topicByName(s, 't')!.partitions[0]).toMatchObject({ leader: -1, leaderEpoch: 3 });
    // A fenced broker's report is not admitted.
    expectCode(
      () =>
        planIsrChange(s, { topicId: t.id, partition: 0, leader, leaderEpoch: 3, isr: [leader] }),
      ErrorCode.LEADER_NOT_AVAILABLE,
    );
    s = run(
      s,
      planHeartbeat(s, { brokerId: leader, brokerEpoch: s.brokers.get(leader)!.brokerEpoch }, 21),
    );
    // Still the Raft leader of term 3 (it never lost it): the same epoch ends the -1.
    s = run(
      s,
      planIsrChange(s, { topicId: t.id, partition: 0, leader, leaderEpoch: 3, isr: [leader] }),
    );
    expect(topicByName(s, 't')!.partitions[0]).toMatchObject({ leader, leaderEpoch: 3 });
    // A stale term is refused.
    expectCode(
      () =>
        planIsrChange(s, {
          topicId: t.id,
          partition: 0,
          leader: follower,
          leaderEpoch: 2,
          isr: [follower],
        }),
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
    );
  });

  it('a controlled shutdown fences the broker at once and takes it out of every ISR; a retry plans nothing', () => {
    let s = cluster(3);
    s = run(s, planCreateTopic(s, { name: 't', partitions: 3, replicationFactor: 3 }));
    const records = planControlledShutdown(s, { brokerId: 2, brokerEpoch: 2 });
    expect(records[0]).toEqual({ type: 'fence-broker', brokerId: 2, brokerEpoch: 2 });
    s = run(s, records);
    expect(isLive(s, 2)).toBe(false);
    for (const p of topicByName(s, 't')!.partitions) {
      expect(p.isr).not.toContain(2);
      expect(p.leader).not.toBe(2);
    }
    expect(planControlledShutdown(s, { brokerId: 2, brokerEpoch: 2 })).toEqual([]);
    expectCode(
      () => planControlledShutdown(s, { brokerId: 2, brokerEpoch: 1 }),
      ErrorCode.STALE_BROKER_EPOCH,
    );
    checkInvariants(s);
  });

  it('a restarted broker (new incarnation) leaves every ISR; a duplicate registration plans nothing', () => {
    let s = cluster(2);
    s = run(s, planCreateTopic(s, { name: 't', partitions: 2, replicationFactor: 2 }));
    expect(
      planRegisterBroker(s, { brokerId: 1, host: 'h1', port: 9001, incarnation: 'a' }),
    ).toEqual([]);
    s = run(s, planRegisterBroker(s, { brokerId: 1, host: 'h1', port: 9001, incarnation: 'b' }));
    expect(s.brokers.get(1)!.fenced).toBe(true);
    for (const p of topicByName(s, 't')!.partitions) {
      expect(p.isr).toEqual([2]);
      // Where broker 1 led, nobody is recorded until the partition's group reports.
      expect(p.leader).toBe(p.replicas[0] === 1 ? -1 : 2);
      expect(p.leaderEpoch).toBe(0);
    }
    checkInvariants(s);
  });

  it('random operations keep the invariants; producer-id blocks never overlap, across snapshots', () => {
    const op = fc.tuple(fc.integer({ min: 0, max: 8 }), fc.nat(), fc.integer({ min: 1, max: 5 }));
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.array(op, { minLength: 1, maxLength: 60 }),
        (n, ops) => {
          let s = cluster(n);
          let tick = 0;
          const blocks: Array<[number, number]> = [];
          for (const [kind, pick, small] of ops) {
            const ids = [...s.brokers.keys()];
            const id = ids[pick % ids.length]!;
            let records: MetadataRecord[] = [];
            try {
              switch (kind) {
                case 0:
                  tick += small;
                  records = planFenceExpired(s, tick, 3);
                  break;
                case 1:
                  records = planHeartbeat(
                    s,
                    { brokerId: id, brokerEpoch: s.brokers.get(id)!.brokerEpoch },
                    tick,
                  );
                  break;
                case 2:
                  records = planCreateTopic(s, {
                    name: `t${pick % 6}`,
                    partitions: small,
                    replicationFactor: -1,
                  });
                  break;
                case 3:
                  records = planDeleteTopic(s, `t${pick % 6}`);
                  break;
                case 4:
                  records = planAllocateProducerIds(s, id, small * 100);
                  break;
                case 5: {
                  const topics = topicsInOrder(s);
                  const t = topics[pick % Math.max(1, topics.length)];
                  const p = t?.partitions[pick % t.partitions.length];
                  if (t && p) {
                    const isr = p.replicas.filter((_, i) => (pick >> i) & 1);
                    records = planIsrChange(s, {
                      topicId: t.id,
                      partition: pick % t.partitions.length,
                      leader: p.leader,
                      leaderEpoch: p.leaderEpoch,
                      isr,
                    });
                  }
                  break;
                }
                case 6: {
                  // A replica's Raft group elected it (a report at a later or the same term).
                  const topics = topicsInOrder(s);
                  const t = topics[pick % Math.max(1, topics.length)];
                  const p = t?.partitions[pick % t.partitions.length];
                  if (t && p) {
                    const leader = p.replicas[small % p.replicas.length]!;
                    records = planIsrChange(s, {
                      topicId: t.id,
                      partition: pick % t.partitions.length,
                      leader,
                      leaderEpoch: p.leaderEpoch + (pick % 2),
                      isr: p.replicas,
                    });
                  }
                  break;
                }
                case 8:
                  records = planControlledShutdown(s, {
                    brokerId: id,
                    brokerEpoch: s.brokers.get(id)!.brokerEpoch,
                  });
                  break;
                case 7:
                  records = planRegisterBroker(s, {
                    brokerId: id,
                    host: 'h',
                    port: 1,
                    incarnation: `r${pick % 3}`,
                  });
                  break;
              }
            } catch (err) {
              // Refusals are typed; anything else (an assertion in the planner) fails the test.
              expect(err).toHaveProperty('code');
              expect((err as { code: number }).code).toBeLessThan(2000);
            }
            for (const r of records) {
              if (r.type === 'allocate-producer-ids') blocks.push([r.firstProducerId, r.count]);
            }
            s = run(s, records);
            checkInvariants(s);
            if (pick % 4 === 0) {
              // Planning on a state restored from its snapshot proposes exactly the same.
              const restored = decodeSnapshot(encodeSnapshot(s));
              expect(planAllocateProducerIds(restored, ids[0]!, 7)).toEqual(
                planAllocateProducerIds(s, ids[0]!, 7),
              );
              expect(planFenceExpired(restored, tick + 1, 3)).toEqual(
                planFenceExpired(s, tick + 1, 3),
              );
              s = restored;
            }
          }
          let next = 0;
          for (const [first, count] of blocks) {
            expect(first).toBe(next);
            next = first + count;
          }
          expect(s.producerIdNext).toBe(next);
        },
      ),
      { numRuns: 200 },
    );
  });
});
