import { ErrorCode } from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { planControlledShutdown } from './controller-planner.js';
import { ControllerTestCluster, registerAll, rejection } from './controller-testing.js';
import { nextVoterStep, planControllerVoters, type VoterView } from './controller-voters.js';
import { decodeRecord, encodeRecord } from './metadata-records.js';
import { applyRecord, decodeSnapshot, encodeSnapshot } from './metadata-state.js';
import { liveCluster, runRecords } from './state-testing.js';

function expectCode(fn: () => unknown, code: number, message?: RegExp): void {
  expect(fn).toThrow(expect.objectContaining({ code }));
  if (message) expect(fn).toThrow(message);
}

describe('planning a controller voter change', () => {
  it('records the voter set wanted, one voter more or less; a retry plans nothing', () => {
    const s = liveCluster(4);
    const add = planControllerVoters(s, [3, 1, 2], { op: 'add', brokerId: 4 });
    expect(add).toEqual([{ type: 'set-controller-voters', voters: [1, 2, 3, 4] }]);
    expect(decodeRecord(encodeRecord(add[0]!))).toEqual(add[0]);
    const after = runRecords(s, add);
    expect(after.controllerVoters).toEqual([1, 2, 3, 4]);
    // The group has not moved yet: the next change waits.
    expectCode(
      () => planControllerVoters(after, [1, 2, 3], { op: 'remove', brokerId: 1 }),
      ErrorCode.CONTROLLER_VOTER_CHANGE_IN_PROGRESS,
      /still moving from \[1,2,3\] to \[1,2,3,4\]/,
    );
    // Once it has: a retried add plans nothing, a remove plans the smaller set.
    expect(planControllerVoters(after, [1, 2, 3, 4], { op: 'add', brokerId: 4 })).toEqual([]);
    expect(planControllerVoters(after, [1, 2, 3, 4], { op: 'remove', brokerId: 1 })).toEqual([
      { type: 'set-controller-voters', voters: [2, 3, 4] },
    ]);
    expect(planControllerVoters(after, [1, 2, 3, 4], { op: 'remove', brokerId: 9 })).toEqual([]);
  });

  it('refuses an unregistered or fenced new voter, the last voter, and losing the live majority', () => {
    const s = liveCluster(3);
    expectCode(
      () => planControllerVoters(s, [1, 2, 3], { op: 'add', brokerId: 7 }),
      ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
      /broker 7 is not a registered broker/,
    );
    const fenced = runRecords(s, planControlledShutdown(s, { brokerId: 3, brokerEpoch: 3 }));
    expectCode(
      () => planControllerVoters(fenced, [1, 2], { op: 'add', brokerId: 3 }),
      ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
      /broker 3 is not live \(fenced\)/,
    );
    expectCode(
      () => planControllerVoters(s, [1], { op: 'remove', brokerId: 1 }),
      ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
      /last controller voter/,
    );
    // Voters 1,2,3 with 3 fenced: removing 1 leaves [2,3] with one live voter of the 2 needed.
    expectCode(
      () => planControllerVoters(fenced, [1, 2, 3], { op: 'remove', brokerId: 1 }),
      ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
      /leave the voters \[2,3\] with 1 live \(\[2\]\), fewer than the majority of 2/,
    );
    // Removing the fenced one is fine: [1,2] are both live.
    expect(planControllerVoters(fenced, [1, 2, 3], { op: 'remove', brokerId: 3 })).toHaveLength(1);
    // A --peers voter that never registered cannot be part of a recorded set.
    expectCode(
      () => planControllerVoters(s, [1, 2, 3, 5], { op: 'remove', brokerId: 1 }),
      ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE,
      /voter 5 is not a registered broker yet/,
    );
  });

  it('keeps the voter set and the departed brokers in the state and its snapshot', () => {
    let s = liveCluster(4);
    s = runRecords(s, [{ type: 'set-controller-voters', voters: [1, 2, 4] }]);
    s = runRecords(s, [{ type: 'unregister-broker', brokerId: 4, brokerEpoch: 4 }]);
    // Leaving the registry takes it out of the set and records it as departed.
    expect(s.controllerVoters).toEqual([1, 2]);
    expect(s.departed).toEqual([4]);
    const round = decodeSnapshot(encodeSnapshot(s));
    expect(round.controllerVoters).toEqual([1, 2]);
    expect(round.departed).toEqual([4]);
    expect(Buffer.from(encodeSnapshot(round))).toEqual(Buffer.from(encodeSnapshot(s)));
    // Registering again takes it out of `departed` (the section is then not written at all).
    const back = applyRecord(s, {
      type: 'register-broker',
      brokerId: 4,
      host: 'h4',
      port: 9004,
      incarnation: 'b',
      brokerEpoch: s.brokerEpochNext,
    }).state;
    expect(back.departed).toBeUndefined();
    expect(decodeSnapshot(encodeSnapshot(back)).departed).toBeUndefined();
    // An unregistered voter is a no-op.
    expect(applyRecord(s, { type: 'set-controller-voters', voters: [1, 4] }).noop).toMatch(
      /voter 4 is not a registered broker/,
    );
    expect(() => encodeRecord({ type: 'set-controller-voters', voters: [2, 1] })).toThrow(
      /not ascending/,
    );
  });
});

describe('the controller leader moving the voters', () => {
  const view = (over: Partial<VoterView>): VoterView => ({
    self: 1,
    target: [1, 2, 3],
    voters: [1, 2, 3],
    learners: [],
    live: () => true,
    caughtUp: () => true,
    ...over,
  });

  it('adds a caught-up live learner, then removes the others, itself last after a hand-over', () => {
    expect(nextVoterStep(view({}))).toEqual({ kind: 'none' });
    const adding = { target: [1, 2, 3, 4], learners: [4] };
    expect(nextVoterStep(view({ ...adding, caughtUp: (id) => id !== 4 })).kind).toBe('wait');
    expect(nextVoterStep(view({ ...adding, live: (id) => id !== 4 })).kind).toBe('wait');
    expect(nextVoterStep(view(adding))).toEqual({ kind: 'add-voter', node: 4 });
    expect(nextVoterStep(view({ target: [1, 2, 3, 4], learners: [] })).kind).toBe('wait');
    expect(nextVoterStep(view({ target: [1, 2], voters: [1, 2, 3] }))).toEqual({
      kind: 'remove',
      node: 3,
    });
    expect(nextVoterStep(view({ target: [2, 3, 4], voters: [1, 2, 3, 4] }))).toEqual({
      kind: 'transfer',
      to: 2,
    });
    expect(
      nextVoterStep(view({ target: [2, 3], voters: [1, 2, 3], caughtUp: (id) => id === 1 })).kind,
    ).toBe('wait');
  });
});

describe('changing the voters of a running controller quorum', () => {
  let cluster: ControllerTestCluster | null = null;
  afterEach(async () => {
    await cluster?.closeAll();
    cluster = null;
  });

  it('adds broker 4, removes the leader 1 (handing over), survives 1 gone and a restart with the old --peers', async () => {
    cluster = new ControllerTestCluster([1, 2, 3], {
      sessionTicks: 100_000,
      snapshotEveryEntries: 4,
    });
    await cluster.startAll();
    await cluster.start(4);
    await registerAll(cluster, [1, 2, 3, 4]);
    let leader = await cluster.leader();
    await cluster.tickUntil(() => leader.conf.learners.includes(4 as never));
    await cluster.run(leader.alterControllerVoters({ op: 'add', brokerId: 4 }));
    await cluster.tickUntil(() => leader.conf.voters.length === 4);
    expect([...leader.conf.voters]).toEqual([1, 2, 3, 4]);
    // Remove the leader itself: it hands the role over, the next leader removes it.
    leader = await cluster.leader();
    const first = leader.nodeId;
    await cluster.run(leader.alterControllerVoters({ op: 'remove', brokerId: first }));
    await cluster.tickUntil(() => {
      const l = cluster!.running().find((n) => n.ready);
      return l !== undefined && !l.conf.voters.includes(first as never);
    });
    leader = await cluster.leader();
    expect(leader.nodeId).not.toBe(first);
    const rest = [1, 2, 3, 4].filter((id) => id !== first);
    expect([...leader.conf.voters]).toEqual(rest);
    // The removed voter stays a learner: it still receives the log.
    await cluster.tickUntil(() => leader.conf.learners.includes(first as never));
    // It goes away: the others elect a controller that serves.
    await cluster.crash(first);
    leader = await cluster.leader();
    await cluster.run(leader.createTopic({ name: 'after', partitions: 1, replicationFactor: 3 }));
    // Every node restarts with the --peers of the start ([1,2,3]): the recorded voters win.
    for (const id of rest) await cluster.crash(id);
    for (const id of rest) await cluster.start(id);
    leader = await cluster.leader();
    expect([...leader.conf.voters]).toEqual(rest);
    expect(leader.state.controllerVoters).toEqual(rest);
    await cluster.run(leader.createTopic({ name: 'again', partitions: 1, replicationFactor: 3 }));
    // The next change is refused with the reason while the last one is not done; a bad one too.
    const err = await rejection(
      cluster.run(leader.alterControllerVoters({ op: 'add', brokerId: 42 })),
    );
    expect(err.code).toBe(ErrorCode.INVALID_CONTROLLER_VOTER_CHANGE);
  });

  it('a controller that got its state from a snapshot still removes a decommissioned voter', async () => {
    // Every applied entry is snapshotted, so after a restart the unregistration is only in the
    // snapshot (no entry is applied again to tell the node about it).
    cluster = new ControllerTestCluster([1, 2, 3], {
      sessionTicks: 100_000,
      snapshotEveryEntries: 1,
    });
    await cluster.startAll();
    await registerAll(cluster, [1, 2, 3]);
    const leader = await cluster.leader();
    const gone = [1, 2, 3].find((id) => id !== leader.nodeId)!;
    // Commit and apply the unregistration without a tick: the leader has no chance to act on it.
    const p = leader.unregisterBroker(gone);
    await cluster.settle();
    await p;
    for (const n of cluster.running()) {
      expect(n.state.brokers.has(gone)).toBe(false);
      expect(n.conf.voters).toContain(gone);
    }
    for (const id of [1, 2, 3]) await cluster.crash(id);
    for (const id of [1, 2, 3]) await cluster.start(id);
    for (const n of cluster.running()) expect(n.state.departed).toEqual([gone]);
    await cluster.tickUntil(() => {
      const l = cluster!.running().find((n) => n.ready);
      return (
        l !== undefined &&
        !l.conf.voters.includes(gone as never) &&
        !l.conf.learners.includes(gone as never)
      );
    });
  });
});
