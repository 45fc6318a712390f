import { ErrorCode } from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { planControlledShutdown, planCreateTopic, planIsrChange } from './controller-planner.js';
import { decodeRecord, encodeRecord, type MetadataRecord } from './metadata-records.js';
import {
  applyRecord,
  decodeSnapshot,
  encodeSnapshot,
  type MetadataState,
  topicByName,
} from './metadata-state.js';
import {
  nextReassignmentStep,
  planCancelReassignment,
  planCompleteReassignment,
  planDecommission,
  planReassignPartition,
  planUnregisterBroker,
  type ReassignmentStep,
} from './reassignment.js';
import { liveCluster, runRecords } from './state-testing.js';

const run = runRecords;

/** Brokers 1..n live, topic `t` with one partition on `replicas` (preferred leader first). */
function withTopic(n: number, replicas: number[]): MetadataState {
  let s = liveCluster(n);
  s = run(s, planCreateTopic(s, { name: 't', partitions: 1, replicationFactor: replicas.length }));
  const t = topicByName(s, 't')!;
  const p = t.partitions[0]!;
  // Place the partition on `replicas` exactly (the planner's layout is not the point here).
  return run(s, [
    {
      type: 'partition-change',
      topicId: t.id,
      partition: 0,
      leader: replicas[0]!,
      leaderEpoch: p.leaderEpoch + 1,
      replicas,
      isr: replicas,
    },
  ]);
}

const part = (s: MetadataState) => topicByName(s, 't')!.partitions[0]!;

function expectCode(fn: () => unknown, code: number, message?: RegExp): void {
  expect(fn).toThrow(expect.objectContaining({ code }));
  if (message) expect(fn).toThrow(message);
}

describe('planning a reassignment', () => {
  it('records the target, the union of replicas (target first) and the members being added', () => {
    const s = withTopic(4, [1, 2, 3]);
    const records = planReassignPartition(s, { topic: 't', partition: 0, replicas: [2, 3, 4] });
    expect(records).toEqual([
      {
        type: 'reassign-partition',
        topicId: 1,
        partition: 0,
        replicas: [2, 3, 4, 1],
        target: [2, 3, 4],
        adding: [4],
      },
    ]);
    const after = part(run(s, records));
    expect(after.replicas).toEqual([2, 3, 4, 1]);
    expect(after.reassignment).toEqual({ target: [2, 3, 4], adding: [4], original: [1, 2, 3] });
    expect(after.leader).toBe(1);
    expect(after.isr).toEqual([1, 2, 3]);
    expect(after.partitionEpoch).toBe(part(s).partitionEpoch + 1);
  });

  it('plans nothing for the replicas the partition already has', () => {
    const s = withTopic(3, [1, 2, 3]);
    expect(planReassignPartition(s, { topic: 't', partition: 0, replicas: [1, 2, 3] })).toEqual([]);
    // The same set in another order is a move of the preferred leader: recorded, nothing added.
    const r = planReassignPartition(s, { topic: 't', partition: 0, replicas: [3, 1, 2] });
    expect(r[0]).toMatchObject({ replicas: [3, 1, 2], adding: [] });
  });

  it('refuses unknown partitions, bad lists, brokers that are not live, and a second move', () => {
    const s = withTopic(4, [1, 2, 3]);
    const plan = (topic: string, partition: number, replicas: number[]) => () =>
      planReassignPartition(s, { topic, partition, replicas });
    expectCode(plan('nope', 0, [1]), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, /nope\/0/);
    expectCode(plan('t', 1, [1]), ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expectCode(plan('t', 0, []), ErrorCode.INVALID_REPLICA_ASSIGNMENT, /0 replicas/);
    expectCode(plan('t', 0, [2, 2]), ErrorCode.INVALID_REPLICA_ASSIGNMENT, /appears twice/);
    expectCode(plan('t', 0, [2, 9]), ErrorCode.INVALID_REPLICA_ASSIGNMENT, /9 is not registered/);
    const fenced = run(s, planControlledShutdown(s, { brokerId: 4, brokerEpoch: 4 }));
    expectCode(
      () => planReassignPartition(fenced, { topic: 't', partition: 0, replicas: [2, 3, 4] }),
      ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      /broker 4 is not live/,
    );
    const moving = run(s, plan('t', 0, [2, 3, 4])());
    expectCode(
      () => planReassignPartition(moving, { topic: 't', partition: 0, replicas: [1, 2, 4] }),
      ErrorCode.REASSIGNMENT_IN_PROGRESS,
      /already moving to \[2,3,4\]/,
    );
  });

  it('keeps the reassignment across ISR reports; a new member may lead and be reported', () => {
    const s0 = withTopic(4, [1, 2, 3]);
    let s = run(s0, planReassignPartition(s0, { topic: 't', partition: 0, replicas: [2, 3, 4] }));
    const p = part(s);
    s = run(
      s,
      planIsrChange(s, {
        topicId: 1,
        partition: 0,
        leader: 1,
        leaderEpoch: p.leaderEpoch,
        isr: [1, 2, 3, 4],
      }),
    );
    expect(part(s).isr).toEqual([2, 3, 4, 1]);
    expect(part(s).reassignment?.target).toEqual([2, 3, 4]);
    // Broker 4, promoted, is elected (a hand-over) and reports its term.
    s = run(
      s,
      planIsrChange(s, {
        topicId: 1,
        partition: 0,
        leader: 4,
        leaderEpoch: p.leaderEpoch + 1,
        isr: [2, 3, 4],
      }),
    );
    expect(part(s)).toMatchObject({ leader: 4, isr: [2, 3, 4] });
    expect(part(s).reassignment?.target).toEqual([2, 3, 4]);
  });

  it('completes once the voters are the target: replicas = target, ISR and leader within it', () => {
    const s0 = withTopic(4, [1, 2, 3]);
    const s = run(s0, planReassignPartition(s0, { topic: 't', partition: 0, replicas: [2, 3, 4] }));
    expectCode(
      () => planCompleteReassignment(s, { topicId: 1, partition: 0, voters: [1, 2, 3, 4] }),
      ErrorCode.INVALID_REQUEST,
      /voters \[1,2,3,4\] are not the target \[2,3,4\]/,
    );
    const records = planCompleteReassignment(s, { topicId: 1, partition: 0, voters: [4, 2, 3] });
    const done = run(s, records);
    const p = part(done);
    expect(p.replicas).toEqual([2, 3, 4]);
    expect(p.reassignment).toBeUndefined();
    expect(p.isr).toEqual([2, 3]);
    // The leader (1) left: lost at the same epoch until the group's leader reports.
    expect(p.leader).toBe(-1);
    expect(p.leaderEpoch).toBe(part(s).leaderEpoch);
    // A retried completion plans nothing.
    expect(planCompleteReassignment(done, { topicId: 1, partition: 0, voters: [2, 3, 4] })).toEqual(
      [],
    );
    expect(
      applyRecord(done, { type: 'complete-reassignment', topicId: 1, partition: 0 }).noop,
    ).toMatch(/not being reassigned/);
  });

  it('refuses records that do not follow from the state', () => {
    const s = withTopic(4, [1, 2, 3]);
    const bad: MetadataRecord = {
      type: 'reassign-partition',
      topicId: 1,
      partition: 0,
      replicas: [2, 3, 4],
      target: [2, 3, 4],
      adding: [4],
    };
    expect(applyRecord(s, bad).noop).toMatch(/do not follow/);
    expect(applyRecord(s, { ...bad, topicId: 7 }).noop).toMatch(/topic id 7 does not exist/);
  });
});

describe('reassignment records and snapshots', () => {
  it('round-trips the new records and refuses malformed ones', () => {
    const records: MetadataRecord[] = [
      {
        type: 'reassign-partition',
        topicId: 3,
        partition: 2,
        replicas: [2, 3, 4, 1],
        target: [2, 3, 4],
        adding: [4],
      },
      {
        type: 'reassign-partition',
        topicId: 3,
        partition: 2,
        replicas: [3, 1, 2],
        target: [3, 1, 2],
        adding: [],
      },
      { type: 'complete-reassignment', topicId: 3, partition: 2 },
    ];
    for (const r of records) expect(decodeRecord(encodeRecord(r))).toEqual(r);
    const r0 = records[0] as Extract<MetadataRecord, { type: 'reassign-partition' }>;
    expect(() => encodeRecord({ ...r0, replicas: [1, 2, 3, 4] })).toThrow(/start with the target/);
    expect(() => encodeRecord({ ...r0, adding: [1] })).toThrow(/adding member 1/);
    expectCode(() => encodeRecord({ ...r0, target: [] }), ErrorCode.INVALID_ARGUMENT);
  });

  it('a snapshot keeps a reassignment in progress; a state without one encodes as before', () => {
    const s0 = withTopic(4, [1, 2, 3]);
    const plain = encodeSnapshot(s0);
    const s = run(s0, planReassignPartition(s0, { topic: 't', partition: 0, replicas: [2, 3, 4] }));
    const bytes = encodeSnapshot(s);
    const back = decodeSnapshot(bytes);
    expect(part(back).reassignment).toEqual({
      target: [2, 3, 4],
      adding: [4],
      original: [1, 2, 3],
    });
    expect(encodeSnapshot(back)).toEqual(bytes);
    // A snapshot written without the original order (older code) decodes without it, and a
    // cancel then keeps the staying replicas in their present order.
    const t = topicByName(s, 't')!;
    const withPartition = (p: (typeof t.partitions)[0]): MetadataState => ({
      ...s,
      topics: new Map([...s.topics, [t.id, { ...t, partitions: [p] }]]),
    });
    const older = withPartition({ ...part(s), reassignment: { target: [2, 3, 4], adding: [4] } });
    const olderBack = decodeSnapshot(encodeSnapshot(older));
    expect(part(olderBack).reassignment).toEqual({ target: [2, 3, 4], adding: [4] });
    expect(encodeSnapshot(older).length).toBeLessThan(bytes.length);
    const cancelledOlder = run(
      olderBack,
      planCancelReassignment(olderBack, { topic: 't', partition: 0 }),
    );
    expect(part(cancelledOlder).replicas).toEqual([2, 3, 1]);
    // An original order that is not the replicas less the added ones is refused.
    for (const original of [
      [1, 2],
      [1, 2, 4],
      [1, 2, 3, 3],
    ]) {
      const bad = withPartition({
        ...part(s),
        reassignment: { target: [2, 3, 4], adding: [4], original },
      });
      expectCode(
        () => decodeSnapshot(encodeSnapshot(bad)),
        ErrorCode.CORRUPT_DATA,
        /original replicas/,
      );
    }
    // No reassignment: no section (the bytes of a snapshot from before reassignments existed).
    const done = run(
      s,
      planCompleteReassignment(s, { topicId: 1, partition: 0, voters: [2, 3, 4] }),
    );
    expect(encodeSnapshot(decodeSnapshot(plain))).toEqual(plain);
    expect(part(decodeSnapshot(encodeSnapshot(done))).reassignment).toBeUndefined();
  });
});

// ---- the leader's driver, against a model of the partition's Raft group ----

interface Group {
  leader: number;
  voters: Set<number>;
  learners: Set<number>;
  /** Ticks until a learner has caught up. */
  catchUp: Map<number, number>;
}

function simulate(
  from: number[],
  target: number[],
  leader: number,
  catchUpTicks: number,
): { steps: ReassignmentStep[]; group: Group } {
  const g: Group = {
    leader,
    voters: new Set(from),
    learners: new Set(),
    catchUp: new Map(),
  };
  const steps: ReassignmentStep[] = [];
  for (let tick = 0; tick < 200; tick++) {
    for (const [id, left] of g.catchUp) g.catchUp.set(id, left - 1);
    const step = nextReassignmentStep({
      self: g.leader,
      target,
      voters: [...g.voters].sort((a, b) => a - b),
      learners: [...g.learners].sort((a, b) => a - b),
      changePending: false,
      caughtUp: (id) => (g.catchUp.get(id) ?? 0) <= 0,
      inSync: [...g.voters].filter((id) => (g.catchUp.get(id) ?? 0) <= 0),
    });
    if (step.kind === 'wait') continue;
    steps.push(step);
    switch (step.kind) {
      case 'add-learner':
        g.learners.add(step.node);
        g.catchUp.set(step.node, catchUpTicks);
        break;
      case 'promote':
        expect(g.learners.has(step.node)).toBe(true);
        g.learners.delete(step.node);
        g.voters.add(step.node);
        break;
      case 'remove':
        expect(step.node, 'the leader never removes itself').not.toBe(g.leader);
        g.voters.delete(step.node);
        g.learners.delete(step.node);
        break;
      case 'transfer':
        expect(g.voters.has(step.to)).toBe(true);
        g.leader = step.to;
        break;
      case 'complete':
        return { steps, group: g };
    }
    // Invariant: every voter is caught up (only caught-up learners are promoted), and a
    // majority of the voters stays (single-server changes), so the group keeps committing.
    for (const id of g.voters) expect(g.catchUp.get(id) ?? 0).toBeLessThanOrEqual(0);
  }
  throw new Error(`no completion: ${JSON.stringify(steps)}`);
}

describe('the leader driving a reassignment', () => {
  it('{1,2,3} -> {2,3,4} led by 1: learner, promotion, removal of the others, hand-over', () => {
    const { steps, group } = simulate([1, 2, 3], [2, 3, 4], 1, 3);
    expect(steps).toEqual([
      { kind: 'add-learner', node: 4 },
      { kind: 'promote', node: 4 },
      { kind: 'transfer', to: 2 },
      { kind: 'remove', node: 1 },
      { kind: 'complete' },
    ]);
    expect([...group.voters].sort()).toEqual([2, 3, 4]);
  });

  it('waits while a change is in flight and while a learner catches up', () => {
    const view = {
      self: 1,
      target: [1, 2, 4],
      voters: [1, 2, 3],
      learners: [4],
      changePending: false,
      caughtUp: () => false,
      inSync: [1, 2, 3],
    };
    expect(nextReassignmentStep(view)).toEqual({ kind: 'wait', why: 'a learner is catching up' });
    expect(nextReassignmentStep({ ...view, changePending: true }).kind).toBe('wait');
    expect(nextReassignmentStep({ ...view, caughtUp: () => true })).toEqual({
      kind: 'promote',
      node: 4,
    });
    // A learner that is not wanted any more is removed first.
    expect(nextReassignmentStep({ ...view, learners: [5] })).toEqual({ kind: 'remove', node: 5 });
    // A leader leaving with no in-sync target voter to hand over to waits.
    expect(
      nextReassignmentStep({ ...view, target: [2], voters: [1, 2], learners: [], inSync: [1] }),
    ).toMatchObject({ kind: 'wait' });
  });

  it('any move between replica sets completes with the target as voters (property)', () => {
    const set = fc.uniqueArray(fc.integer({ min: 1, max: 6 }), { minLength: 1, maxLength: 5 });
    fc.assert(
      fc.property(set, set, fc.nat(), fc.integer({ min: 0, max: 5 }), (from, target, pick, k) => {
        const leader = from[pick % from.length]!;
        const { group } = simulate(from, target, leader, k);
        expect([...group.voters].sort()).toEqual([...target].sort());
        expect(group.learners.size).toBe(0);
        expect(target).toContain(group.leader);
      }),
      { numRuns: 300 },
    );
  });
});

describe('decommissioning a broker', () => {
  /** Brokers 1..n live and topic `d` with `partitions` partitions of RF 3 (planner layout). */
  function spread(n: number, partitions: number): MetadataState {
    let s = withTopic(n, [1, 2, 3]);
    s = run(s, planCreateTopic(s, { name: 'd', partitions, replicationFactor: 3 }));
    return s;
  }

  it('moves each of its replicas to the least-loaded live broker outside the partition', () => {
    const s = spread(4, 4);
    const records = planDecommission(s, 1);
    const held = [...s.topics.values()].flatMap((t) =>
      t.partitions.filter((p) => p.replicas.includes(1)),
    );
    expect(records).toHaveLength(held.length);
    const after = run(s, records);
    for (const t of after.topics.values()) {
      for (const p of t.partitions) {
        if (p.reassignment === undefined) continue;
        expect(p.reassignment.target).not.toContain(1);
        expect(p.reassignment.target).toHaveLength(3);
        expect(new Set(p.reassignment.target).size).toBe(3);
      }
    }
    // Replaced in place, so the others keep their positions (and the preferred leader, unless
    // it was broker 1).
    const t = topicByName(s, 't')!;
    expect(part(after).reassignment?.target).toEqual([4, 2, 3]);
    expect(t.partitions[0]!.replicas).toEqual([1, 2, 3]);
    // A second round moves nothing more while those are in progress; unregistering is refused.
    expect(planDecommission(after, 1)).toEqual([]);
    expectCode(
      () => planUnregisterBroker(after, 1),
      ErrorCode.REASSIGNMENT_IN_PROGRESS,
      /still holds/,
    );
  });

  it('is refused when no live broker can take a replica, or the broker is unknown', () => {
    expectCode(
      () => planDecommission(withTopic(3, [1, 2, 3]), 1),
      ErrorCode.INVALID_REPLICA_ASSIGNMENT,
      /no live broker outside \[1,2,3\]/,
    );
    expectCode(
      () => planDecommission(withTopic(3, [1, 2, 3]), 7),
      ErrorCode.BROKER_ID_NOT_REGISTERED,
    );
  });

  it('unregisters the broker once no partition lists it; its epoch must match', () => {
    let s = withTopic(4, [1, 2, 3]);
    s = run(s, planDecommission(s, 1));
    s = run(s, planCompleteReassignment(s, { topicId: 1, partition: 0, voters: [2, 3, 4] }));
    const records = planUnregisterBroker(s, 1);
    expect(records).toEqual([{ type: 'unregister-broker', brokerId: 1, brokerEpoch: 1 }]);
    const gone = run(s, records);
    expect(gone.brokers.has(1)).toBe(false);
    expect(planUnregisterBroker(gone, 1)).toEqual([]);
    expect(applyRecord(s, { type: 'unregister-broker', brokerId: 1, brokerEpoch: 9 }).noop).toMatch(
      /epoch 9 is not registered/,
    );
    expect(
      applyRecord(withTopic(4, [1, 2, 3]), {
        type: 'unregister-broker',
        brokerId: 2,
        brokerEpoch: 2,
      }).noop,
    ).toMatch(/still holds t\/0/);
    // The snapshot of a state without it decodes to the same state.
    expect(decodeSnapshot(encodeSnapshot(gone)).brokers.has(1)).toBe(false);
    expect(decodeRecord(encodeRecord(records[0]!))).toEqual(records[0]);
  });
});

describe('cancelling a reassignment', () => {
  it('drops the replicas being added and moves back to the replicas before the move', () => {
    let s = withTopic(4, [1, 2, 3]);
    s = run(s, planReassignPartition(s, { topic: 't', partition: 0, replicas: [2, 3, 4] }));
    expect(part(s).replicas).toEqual([2, 3, 4, 1]);
    const records = planCancelReassignment(s, { topic: 't', partition: 0 });
    expect(records).toEqual([{ type: 'cancel-reassignment', topicId: 1, partition: 0 }]);
    expect(decodeRecord(encodeRecord(records[0]!))).toEqual(records[0]);
    const cancelled = run(s, records);
    // Broker 4 holds no replica any more (it closes and deletes it); the target is the old set,
    // in its old order (broker 1 is the preferred leader again).
    expect(part(cancelled).replicas).toEqual([1, 2, 3]);
    expect(part(cancelled).reassignment).toEqual({ target: [1, 2, 3], adding: [] });
    expect(part(cancelled).isr).toEqual([1, 2, 3]);
    expect(part(cancelled).leader).toBe(1);
    expect(decodeSnapshot(encodeSnapshot(cancelled))).toEqual(cancelled);
    // The leader's driver removes the learner that never caught up, then completes.
    const step = nextReassignmentStep({
      self: 1,
      target: [1, 2, 3],
      voters: [1, 2, 3],
      learners: [4],
      changePending: false,
      caughtUp: (id) => id !== 4,
      inSync: [1, 2, 3],
    });
    expect(step).toEqual({ kind: 'remove', node: 4 });
    const done = run(
      cancelled,
      planCompleteReassignment(cancelled, { topicId: 1, partition: 0, voters: [1, 2, 3] }),
    );
    expect(part(done).replicas).toEqual([1, 2, 3]);
    expect(part(done).reassignment).toBeUndefined();
    // A second cancel, or one with nothing moving, is refused with the reason.
    expectCode(
      () => planCancelReassignment(cancelled, { topic: 't', partition: 0 }),
      ErrorCode.INVALID_REQUEST,
      /without adding a replica/,
    );
    expectCode(
      () => planCancelReassignment(done, { topic: 't', partition: 0 }),
      ErrorCode.INVALID_REQUEST,
      /is not being reassigned/,
    );
    expectCode(
      () => planCancelReassignment(done, { topic: 'nope', partition: 0 }),
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    );
    // A new reassignment may start once it completed.
    expect(
      planReassignPartition(done, { topic: 't', partition: 0, replicas: [1, 2, 4] }),
    ).toHaveLength(1);
  });

  it('restores the order before the move, whatever the target reordered', () => {
    fc.assert(
      fc.property(
        fc.shuffledSubarray([1, 2, 3, 4, 5, 6], { minLength: 3, maxLength: 3 }),
        fc.shuffledSubarray([1, 2, 3, 4, 5, 6], { minLength: 1, maxLength: 4 }),
        (before, target) => {
          const s0 = withTopic(6, before);
          if (target.every((id) => before.includes(id))) return;
          if (target.length === before.length && target.every((id, i) => before[i] === id)) return;
          const s = run(
            s0,
            planReassignPartition(s0, { topic: 't', partition: 0, replicas: target }),
          );
          // Through a snapshot too: a controller that learned the state from one cancels alike.
          for (const state of [s, decodeSnapshot(encodeSnapshot(s))]) {
            const cancelled = run(
              state,
              planCancelReassignment(state, { topic: 't', partition: 0 }),
            );
            expect(part(cancelled).replicas).toEqual(before);
            expect(part(cancelled).reassignment).toEqual({ target: before, adding: [] });
            const done = run(
              cancelled,
              planCompleteReassignment(cancelled, { topicId: 1, partition: 0, voters: before }),
            );
            expect(part(done).replicas).toEqual(before);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('loses a leader that was being added, at the same epoch', () => {
    let s = withTopic(4, [1, 2, 3]);
    s = run(s, planReassignPartition(s, { topic: 't', partition: 0, replicas: [4, 2, 3] }));
    const t = topicByName(s, 't')!;
    const p = part(s);
    // Broker 4 caught up and took the leadership (its report) before the cancel.
    s = run(
      s,
      planIsrChange(s, {
        topicId: t.id,
        partition: 0,
        leader: 4,
        leaderEpoch: p.leaderEpoch + 1,
        isr: [1, 2, 3, 4],
      }),
    );
    expect(part(s).leader).toBe(4);
    const cancelled = run(s, planCancelReassignment(s, { topic: 't', partition: 0 }));
    expect(part(cancelled).leader).toBe(-1);
    expect(part(cancelled).leaderEpoch).toBe(part(s).leaderEpoch);
    expect([...part(cancelled).isr].sort()).toEqual([1, 2, 3]);
  });
});
