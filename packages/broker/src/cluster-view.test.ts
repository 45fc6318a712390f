import { ErrorCode } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import {
  describeClusterFromState,
  heldReplicas,
  metadataFromState,
  planReplicas,
  type RaftLeaderView,
  withRaftLeaders,
} from './cluster-view.js';
import type { MetadataRecord } from './controller/metadata-records.js';
import { apply, EMPTY_METADATA_STATE, type MetadataState } from './controller/metadata-state.js';

function applyAll(state: MetadataState, records: MetadataRecord[]): MetadataState {
  return records.reduce(apply, state);
}

/** Bootstrapped, brokers 1..3 registered and unfenced. */
function threeBrokers(): MetadataState {
  const records: MetadataRecord[] = [{ type: 'cluster-bootstrap', clusterId: 'c1' }];
  for (const id of [1, 2, 3]) {
    records.push(
      {
        type: 'register-broker',
        brokerId: id,
        host: '127.0.0.1',
        port: 9000 + id,
        incarnation: `i${id}`,
        brokerEpoch: id,
      },
      { type: 'unfence-broker', brokerId: id, brokerEpoch: id },
    );
  }
  return applyAll(EMPTY_METADATA_STATE, records);
}

const createT: MetadataRecord = {
  type: 'create-topic',
  topicId: 1,
  name: 't',
  partitions: [{ replicas: [1, 2] }, { replicas: [2, 3] }, { replicas: [3, 1] }],
  configs: [],
};

/** Partition 0 of createT leaderless at epoch 1 (its leader fenced), broker 2 in sync. */
const leaderless0: MetadataRecord = {
  type: 'partition-change',
  topicId: 1,
  partition: 0,
  leader: -1,
  leaderEpoch: 1,
  replicas: [1, 2],
  isr: [2],
};

describe('planReplicas', () => {
  it('opens the partitions assigned here when a topic is created, and nothing elsewhere', () => {
    const before = threeBrokers();
    const after = apply(before, createT);
    const plan = planReplicas(before, after, 1);
    expect(plan.open.map((h) => [h.topic, h.partition, h.replicas])).toEqual([
      ['t', 0, [1, 2]],
      ['t', 2, [3, 1]],
    ]);
    expect(plan.close).toEqual([]);
    expect(planReplicas(before, after, 2).open.map((h) => h.partition)).toEqual([0, 1]);
    // A step that does not touch topics plans nothing.
    const hb = apply(after, { type: 'broker-heartbeat', brokerId: 1, brokerEpoch: 1, tick: 5 });
    expect(planReplicas(after, hb, 1)).toEqual({ open: [], close: [], reconfigure: [] });
  });

  it('closes the held partitions of a deleted topic, and reports a config change', () => {
    const created = apply(threeBrokers(), createT);
    const altered = apply(created, {
      type: 'alter-topic-config',
      topicId: 1,
      changes: [{ key: 'retention.ms', value: '1000' }],
    });
    const reconf = planReplicas(created, altered, 3);
    expect(reconf.reconfigure).toEqual([
      { topicId: 1, topic: 't', configs: [{ key: 'retention.ms', value: '1000' }] },
    ]);
    expect(reconf.open).toEqual([]);
    const deleted = apply(altered, { type: 'delete-topic', topicId: 1 });
    const plan = planReplicas(altered, deleted, 3);
    expect(plan.close.map((h) => h.partition)).toEqual([1, 2]);
    expect(plan.open).toEqual([]);
  });

  it('lists every held replica of a state (start-up)', () => {
    const s = apply(threeBrokers(), createT);
    expect(heldReplicas(s, 2).map((h) => `${h.topicId}/${h.partition}`)).toEqual(['1/0', '1/1']);
  });
});

describe('answers from the state', () => {
  it('Metadata: leaders, replicas, ISR, live brokers; unknown topics and leaderless partitions typed', () => {
    let s = apply(threeBrokers(), createT);
    s = apply(s, { type: 'fence-broker', brokerId: 3, brokerEpoch: 3 });
    const m = metadataFromState(s, ['t', 'nope'], 1);
    expect(m.clusterId).toBe('c1');
    expect(m.controllerId).toBe(1);
    expect(m.brokers.map((b) => b.nodeId)).toEqual([1, 2]);
    const t = m.topics[0];
    expect(t?.partitions.map((p) => [p.partition, p.leaderId, p.replicas])).toEqual([
      [0, 1, [1, 2]],
      [1, 2, [2, 3]],
      [2, 3, [3, 1]],
    ]);
    expect(m.topics[1]?.errorCode).toBe(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    const noLeader = apply(s, leaderless0);
    const p0 = metadataFromState(noLeader, null, 1).topics[0]?.partitions[0];
    expect(p0?.errorCode).toBe(ErrorCode.LEADER_NOT_AVAILABLE);
    expect(p0?.leaderId).toBe(-1);
  });

  it('Metadata corrected by the Raft leader a replica here knows of a later term: live replicas only, never an older term', () => {
    let s = apply(threeBrokers(), createT);
    s = apply(s, { type: 'fence-broker', brokerId: 3, brokerEpoch: 3 });
    const base = metadataFromState(s, null, 1);
    const views = new Map<number, RaftLeaderView>();
    const local = (topicId: number, partition: number) =>
      topicId === 1 ? (views.get(partition) ?? null) : null;
    // Nothing known here beyond the state: the very same answer.
    expect(withRaftLeaders(base, s, local)).toBe(base);
    views.set(0, { leaderId: 2, leaderEpoch: 4 }); // elected, its report not applied yet
    views.set(1, { leaderId: 3, leaderEpoch: 5 }); // broker 3 is fenced: not offered
    views.set(2, { leaderId: 1, leaderEpoch: 0 }); // not a later term than the state's
    const m = withRaftLeaders(base, s, local);
    expect(
      m.topics[0]?.partitions.map((p) => [p.partition, p.errorCode, p.leaderId, p.leaderEpoch]),
    ).toEqual([
      [0, 0, 2, 4],
      [1, 0, 2, 0],
      [2, 0, 3, 0],
    ]);
    expect(m.topics[0]?.partitions[0]?.isr).toEqual(base.topics[0]?.partitions[0]?.isr);
    // A leaderless partition (its leader fenced) is served again once the group elected one.
    const noLeader = apply(s, leaderless0);
    const p0 = withRaftLeaders(metadataFromState(noLeader, null, 1), noLeader, local).topics[0]
      ?.partitions[0];
    expect([p0?.errorCode, p0?.leaderId, p0?.leaderEpoch]).toEqual([0, 2, 4]);
    // A leader that is not a replica of the partition (a stale view) is not taken.
    views.set(0, { leaderId: 3, leaderEpoch: 9 });
    expect(withRaftLeaders(base, s, local).topics[0]?.partitions[0]?.leaderId).toBe(1);
  });

  it('DescribeCluster: every registered broker with its counts and voter role', () => {
    let s = apply(threeBrokers(), createT);
    s = apply(s, { type: 'fence-broker', brokerId: 3, brokerEpoch: 3 });
    const d = describeClusterFromState(s, 2, [1, 2]);
    expect(d.controllerId).toBe(2);
    expect(
      d.brokers.map((b) => [b.nodeId, b.live, b.isVoter, b.replicaCount, b.leaderCount]),
    ).toEqual([
      [1, true, true, 2, 1],
      [2, true, true, 2, 1],
      [3, false, false, 2, 1],
    ]);
  });
});
