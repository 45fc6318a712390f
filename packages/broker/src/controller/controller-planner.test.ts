import { ErrorCode } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assignReplicas,
  planAllocateProducerIds,
  planAlterTopicConfig,
  planBootstrap,
  planCreateTopic,
  planDeleteTopic,
  planFenceExpired,
  planHeartbeat,
  planIsrChange,
  planPreferredLeaders,
  planRegisterBroker,
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

const run = (s: MetadataState, records: readonly MetadataRecord[]) => records.reduce(apply, s);

/** A bootstrapped cluster of brokers 1..n, each registered and unfenced by a heartbeat at tick 0. */
function cluster(n: number): MetadataState {
  let s = run(EMPTY_METADATA_STATE, planBootstrap(EMPTY_METADATA_STATE, 'c1'));
  for (let id = 1; id <= n; id++) {
    s = run(
      s,
      planRegisterBroker(s, { brokerId: id, host: `h${id}`, port: 9000 + id, incarnation: 'a' }),
    );
    s = run(s, planHeartbeat(s, { brokerId: id, brokerEpoch: s.brokers.get(id)!.brokerEpoch }, 0));
  }
  return s;
}

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

  it('fences a silent broker, moves its leaderships to in-sync replicas, and takes them back after it returns', () => {
    let s = cluster(3);
    s = run(s, planCreateTopic(s, { name: 't', partitions: 3, replicationFactor: 2 }));
    // Brokers 2 and 3 heartbeat at tick 10; broker 1 stays silent.
    for (const id of [2, 3]) s = run(s, planHeartbeat(s, { brokerId: id, brokerEpoch: id }, 10));
    expect(planFenceExpired(s, 10, 10)).toEqual([]);
    const fencing = planFenceExpired(s, 11, 10);
    expect(fencing[0]).toEqual({ type: 'fence-broker', brokerId: 1, brokerEpoch: 1 });
    s = run(s, fencing);
    checkInvariants(s);
    for (const p of topicByName(s, 't')!.partitions) {
      expect(p.isr).not.toContain(1);
      expect(p.leader).not.toBe(1);
    }
    // Broker 1 comes back: unfenced, but it rejoins ISRs only when a leader reports it caught up.
    s = run(s, planHeartbeat(s, { brokerId: 1, brokerEpoch: 1 }, 12));
    expect(isLive(s, 1)).toBe(true);
    const t = topicByName(s, 't')!;
    t.partitions.forEach((p, i) => {
      if (!p.replicas.includes(1)) return;
      s = run(
        s,
        planIsrChange(s, {
          topicId: t.id,
          partition: i,
          leader: p.leader,
          leaderEpoch: p.leaderEpoch,
          isr: p.replicas,
        }),
      );
    });
    s = run(s, planPreferredLeaders(s));
    checkInvariants(s);
    expect(spread(s)).toBe(0);
    expect(planPreferredLeaders(s)).toEqual([]);
  });

  it('elects no out-of-sync replica: a partition whose last in-sync replica is fenced waits for it', () => {
    let s = cluster(2);
    s = run(s, planCreateTopic(s, { name: 't', partitions: 1, replicationFactor: 2 }));
    const t = topicByName(s, 't')!;
    const p = t.partitions[0]!;
    const follower = p.replicas[1]!;
    // The leader reports the follower out of sync, then goes silent.
    s = run(
      s,
      planIsrChange(s, {
        topicId: t.id,
        partition: 0,
        leader: p.leader,
        leaderEpoch: 0,
        isr: [p.leader],
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
    const after = topicByName(s, 't')!.partitions[0]!;
    expect(after.leader).toBe(-1);
    expect(after.isr).toEqual([p.leader]);
    expect(after.leaderEpoch).toBe(1);
    // The old leader returns and takes the partition back; nobody else could.
    s = run(
      s,
      planHeartbeat(
        s,
        { brokerId: p.leader, brokerEpoch: s.brokers.get(p.leader)!.brokerEpoch },
        21,
      ),
    );
    expect(topicByName(s, 't')!.partitions[0]!.leader).toBe(p.leader);
    expect(topicByName(s, 't')!.partitions[0]!.leaderEpoch).toBe(2);
    expectCode(
      () =>
        planIsrChange(s, {
          topicId: t.id,
          partition: 0,
          leader: p.leader,
          leaderEpoch: 1,
          isr: [p.leader],
        }),
      ErrorCode.NOT_LEADER_OR_FOLLOWER,
    );
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
      expect(p.leader).toBe(2);
    }
    checkInvariants(s);
  });

  it('random operations keep the invariants; producer-id blocks never overlap, across snapshots', () => {
    const op = fc.tuple(fc.integer({ min: 0, max: 7 }), fc.nat(), fc.integer({ min: 1, max: 5 }));
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
                case 6:
                  records = planPreferredLeaders(s, small);
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
