import type { NodeId } from '@streambus/raft';
import { describe, expect, it } from 'vitest';
import {
  planBootstrap,
  planControlledShutdown,
  planCreateTopic,
  planHeartbeat,
  planIsrChange,
  planRegisterBroker,
} from '../controller/controller-planner.js';
import type { MetadataRecord } from '../controller/metadata-records.js';
import {
  apply,
  EMPTY_METADATA_STATE,
  type MetadataState,
  topicByName,
} from '../controller/metadata-state.js';
import {
  balancePlan,
  balanceTargets,
  type HeldLeadership,
  handoffTargets,
  type LeadershipHost,
  LeadershipOps,
} from './leadership.js';

const run = (s: MetadataState, records: readonly MetadataRecord[]) => records.reduce(apply, s);

function cluster(n: number, partitions: number): MetadataState {
  let s = run(EMPTY_METADATA_STATE, planBootstrap(EMPTY_METADATA_STATE, 'c1'));
  for (let id = 1; id <= n; id++) {
    s = run(s, planRegisterBroker(s, { brokerId: id, host: 'h', port: id, incarnation: 'a' }));
    s = run(s, planHeartbeat(s, { brokerId: id, brokerEpoch: s.brokers.get(id)!.brokerEpoch }, 0));
  }
  return run(s, planCreateTopic(s, { name: 't', partitions, replicationFactor: n }));
}

/** A fake replica that leads until transferred; records the transfers. */
function held(
  partition: number,
  isLeader: boolean,
  inSync: number[],
  log: string[],
): HeldLeadership & { isLeader: boolean } {
  const h = {
    topic: 't',
    partition,
    isLeader,
    inSync,
    transferLeadership(to: NodeId) {
      log.push(`t/${partition}->${to}`);
    },
  };
  return h;
}

describe('leadership hand-over and balancing', () => {
  it('hands each led partition to an in-sync live replica in assignment order, rotating per attempt', () => {
    let s = cluster(3, 3);
    // Broker 3 shut down: fenced, so never a target.
    s = run(s, planControlledShutdown(s, { brokerId: 3, brokerEpoch: 3 }));
    const log: string[] = [];
    const mine = [held(0, true, [1, 2, 3], log), held(1, false, [], log), held(2, true, [1], log)];
    const replicas0 = topicByName(s, 't')!.partitions[0]!.replicas;
    expect(replicas0).toEqual([1, 2, 3]);
    expect(handoffTargets(s, 1, mine, () => 0)).toEqual([
      { topic: 't', partition: 0, to: 2 },
      // Nobody in sync to take it: stays, reported as left.
      { topic: 't', partition: 2, to: null },
    ]);
    // Only one candidate (2): every attempt picks it.
    expect(handoffTargets(s, 1, mine, () => 5)[0]!.to).toBe(2);
    const s2 = cluster(3, 1);
    expect(handoffTargets(s2, 1, [held(0, true, [1, 2, 3], log)], () => 1)[0]!.to).toBe(3);
  });

  it('tries first the in-sync replicas whose match reaches the commit index now (rule 1)', () => {
    const s = cluster(3, 1);
    expect(topicByName(s, 't')!.partitions[0]!.replicas).toEqual([1, 2, 3]);
    const log: string[] = [];
    // 2 (first in assignment order) is in sync but behind, as a broker restarted a moment ago.
    const behind2 = { ...held(0, true, [1, 2, 3], log), caughtUp: [3] };
    expect(handoffTargets(s, 1, [behind2], () => 0)[0]!.to).toBe(3);
    // The next attempt (3 did not take it) tries 2.
    expect(handoffTargets(s, 1, [behind2], () => 1)[0]!.to).toBe(2);
    // Both caught up, or neither: assignment order.
    for (const caughtUp of [[2, 3], []]) {
      const h = { ...held(0, true, [1, 2, 3], log), caughtUp };
      expect(handoffTargets(s, 1, [h], () => 0)[0]!.to).toBe(2);
    }
    // A caught-up replica that is not in sync is no candidate.
    const h = { ...held(0, true, [1, 2], log), caughtUp: [3] };
    expect(handoffTargets(s, 1, [h], () => 0)[0]!.to).toBe(2);
  });

  it('balances back only to a live preferred replica that is in sync by Raft progress', () => {
    let s = cluster(3, 3);
    const t = topicByName(s, 't')!;
    // Partition 0 (preferred 1) is led by 2 in term 1, and 2 reports 1 in sync.
    s = run(
      s,
      planIsrChange(s, { topicId: t.id, partition: 0, leader: 2, leaderEpoch: 1, isr: [1, 2, 3] }),
    );
    const log: string[] = [];
    // The Raft progress says 1 is behind: no move yet.
    expect(balanceTargets(s, 2, [held(0, true, [2, 3], log)], 10)).toEqual([]);
    expect(balanceTargets(s, 2, [held(0, true, [1, 2, 3], log)], 10)).toEqual([
      { topic: 't', partition: 0, to: 1 },
    ]);
    expect(balanceTargets(s, 2, [held(0, true, [1, 2, 3], log)], 0)).toEqual([]);
    // Broker 3 holds nothing to move; a fenced preferred replica is not moved to.
    expect(balanceTargets(s, 3, [held(0, false, [], log)], 10)).toEqual([]);
    const fenced = run(s, planControlledShutdown(s, { brokerId: 1, brokerEpoch: 1 }));
    expect(balanceTargets(fenced, 2, [held(0, true, [1, 2, 3], log)], 10)).toEqual([]);
  });

  it('a periodic round leaves a partition taken over moments ago (a draining broker is still live): on demand it moves', () => {
    let s = cluster(3, 1);
    const t = topicByName(s, 't')!;
    // Broker 1 (preferred) handed partition 0 to broker 2 while shutting down: still live.
    s = run(
      s,
      planIsrChange(s, { topicId: t.id, partition: 0, leader: 2, leaderEpoch: 1, isr: [1, 2, 3] }),
    );
    const log: string[] = [];
    const fresh = { ...held(0, true, [1, 2, 3], log), ledForMs: 300 };
    expect(balanceTargets(s, 2, [fresh], 10, 5000)).toEqual([]);
    expect(balanceTargets(s, 2, [{ ...fresh, ledForMs: 6000 }], 10, 5000)).toEqual([
      { topic: 't', partition: 0, to: 1 },
    ]);
    // Unknown age: as before.
    expect(balanceTargets(s, 2, [held(0, true, [1, 2, 3], log)], 10, 5000)).toHaveLength(1);
    const ops = new LeadershipOps({
      self: 2,
      state: () => s,
      held: () => [fresh],
      controller: () => ({ isLeader: false, voters: [1, 2, 3], transferLeadership: () => false }),
      balanceOn: async () => 0,
      sleep: async () => {},
      now: () => 0,
    });
    expect(ops.balance(true)).toBe(0);
    expect(log).toEqual([]);
    // Rule 5: the round left a wanted move for later, so the broker runs the next one soon.
    expect(ops.lastRoundDeferred).toBe(true);
    expect(balancePlan(s, 2, [fresh], 10, 5000)).toEqual({ moves: [], deferred: 1 });
    expect(ops.balance()).toBe(1);
    expect(log).toEqual(['t/0->1']);
    // Nothing wanted (or everything moved): a whole interval to the next round.
    const settled = { ...fresh, ledForMs: 6000 };
    expect(balancePlan(s, 2, [settled], 10, 5000).deferred).toBe(0);
    // Past the cap (rule 3) counts as left for later too.
    expect(balancePlan(s, 2, [settled], 0, 5000)).toEqual({ moves: [], deferred: 1 });
  });

  it('handOff retries until nothing is led here, hands the controller role over, and stops at the deadline', async () => {
    const s = cluster(3, 2);
    let now = 0;
    const log: string[] = [];
    const p0 = held(0, true, [1, 2, 3], log);
    const p1 = held(1, true, [1, 2, 3], log);
    let controllerLeader = true;
    const host: LeadershipHost = {
      self: 1,
      state: () => s,
      held: () => [p0, p1],
      controller: () => ({
        isLeader: controllerLeader,
        voters: [1, 2, 3],
        transferLeadership: (to) => {
          log.push(`controller->${to}`);
          return true;
        },
      }),
      balanceOn: async () => 0,
      sleep: async (ms) => {
        now += ms;
        // Partition 0 moves at once; partition 1 only after its second attempt; the
        // controller role after the first.
        p0.isLeader = false;
        if (log.filter((l) => l.startsWith('t/1')).length >= 2) p1.isLeader = false;
        if (log.includes('controller->2')) controllerLeader = false;
      },
      now: () => now,
    };
    const ops = new LeadershipOps(host, { retryMs: 100, pollMs: 50 });
    const r = await ops.handOff(10_000);
    expect(r).toEqual({ partitionsLeft: [], controllerLeft: false, transfers: 4 });
    // The second attempt of partition 1 went to the next in-sync replica.
    expect(log).toEqual(['t/0->2', 't/1->2', 'controller->2', 't/1->3']);
    // A deadline already passed: nothing is tried, everything led is reported.
    p0.isLeader = true;
    const tried = log.length;
    const late = await new LeadershipOps(host).handOff(now);
    expect(late).toEqual({ partitionsLeft: ['t/0'], controllerLeft: false, transfers: 0 });
    expect(log.length).toBe(tried);
  });

  it('handOff then waits, bounded, until the metadata names the new leaders (clients are sent there)', async () => {
    const base = cluster(3, 1);
    const t = topicByName(base, 't')!;
    const leader = t.partitions[0]!.leader;
    const other = t.partitions[0]!.replicas.find((id) => id !== leader)!;
    const moved = run(
      base,
      planIsrChange(base, {
        topicId: t.id,
        partition: 0,
        leader: other,
        leaderEpoch: t.partitions[0]!.leaderEpoch + 1,
        isr: [1, 2, 3],
      }),
    );
    const handOffAt = async (stateAtMs: number, metadataWaitMs: number) => {
      let now = 0;
      const log: string[] = [];
      const p0 = held(0, true, [1, 2, 3], log);
      const host: LeadershipHost = {
        self: leader,
        // The new leader's report reaches this broker's applied state at `stateAtMs`.
        state: () => (now >= stateAtMs ? moved : base),
        held: () => [p0],
        controller: () => ({ isLeader: false, voters: [1, 2, 3], transferLeadership: () => false }),
        balanceOn: async () => 0,
        sleep: async (ms) => {
          now += ms;
          // Raft moves the leadership at once.
          if (log.length > 0) p0.isLeader = false;
        },
        now: () => now,
      };
      const r = await new LeadershipOps(host, { pollMs: 10, metadataWaitMs }).handOff(10_000);
      expect(r).toEqual({ partitionsLeft: [], controllerLeft: false, transfers: 1 });
      return now;
    };
    // Raft moved it after one poll; the hand-over returns once the state shows it, not before.
    const shown = await handOffAt(300, 2000);
    expect(shown).toBeGreaterThanOrEqual(300);
    expect(shown).toBeLessThan(320);
    // The state never shows it (the controller unreachable): it stops waiting at the bound.
    const bounded = await handOffAt(Number.POSITIVE_INFINITY, 500);
    expect(bounded).toBeGreaterThanOrEqual(500);
    expect(bounded).toBeLessThan(530);
  });

  it('balanceCluster repeats rounds on every live broker until the state shows the moves, bounded', async () => {
    let s = cluster(3, 1);
    const t = topicByName(s, 't')!;
    // Partition 0 (preferred 1) led by 2 in term 1, 1 in the ISR.
    s = run(
      s,
      planIsrChange(s, { topicId: t.id, partition: 0, leader: 2, leaderEpoch: 1, isr: [1, 2, 3] }),
    );
    let now = 0;
    const asked: number[] = [];
    const host: LeadershipHost = {
      self: 3,
      state: () => s,
      held: () => [],
      controller: () => ({ isLeader: false, voters: [1, 2, 3], transferLeadership: () => false }),
      // Broker 2 moves nothing on its first round (1 a moment behind by its progress), then
      // hands over; the state shows it a little later.
      balanceOn: async (id) => {
        asked.push(id);
        if (id !== 2 || asked.filter((x) => x === 2).length < 2) return 0;
        return 1;
      },
      sleep: async (ms) => {
        now += ms;
        if (asked.filter((x) => x === 2).length >= 2 && now > 1500) {
          s = run(
            s,
            planIsrChange(s, {
              topicId: t.id,
              partition: 0,
              leader: 1,
              leaderEpoch: 2,
              isr: [1, 2, 3],
            }),
          );
        }
      },
      now: () => now,
    };
    const ops = new LeadershipOps(host, { retryMs: 1000, pollMs: 100 });
    expect(await ops.balanceCluster(10_000)).toEqual({ transfersStarted: 1, remaining: [] });
    expect(asked).toEqual([1, 2, 1, 2]);
    // Nothing wanted now: no round at all.
    expect(await ops.balanceCluster(10_000)).toEqual({ transfersStarted: 0, remaining: [] });
    expect(asked).toHaveLength(4);
    // Wanted but never moving: gives up at the deadline, listing it.
    s = run(
      s,
      planIsrChange(s, { topicId: t.id, partition: 0, leader: 2, leaderEpoch: 3, isr: [1, 2, 3] }),
    );
    const stuck = new LeadershipOps(
      {
        ...host,
        balanceOn: async () => 0,
        sleep: async (ms) => {
          now += ms;
        },
      },
      { retryMs: 1000, pollMs: 100 },
    );
    const start = now;
    const r = await stuck.balanceCluster(3000);
    expect(r.transfersStarted).toBe(0);
    expect(r.remaining).toHaveLength(1);
    expect(now - start).toBeGreaterThanOrEqual(3000);
    expect(now - start).toBeLessThan(3200);
  });
});
