// Leader reports against a real in-process controller quorum (controller-testing.ts: three
// ControllerNodes, the real ControllerClient, time in ticks), with stand-in partition replicas
// whose role and term the test sets: the state must name the real Raft leader within a few
// ticks of its term committing, also after a refused report of an older term.
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';
import type { NodeId } from '@streambus/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerLifecycle } from './controller/broker-lifecycle.js';
import type { IsrReport } from './controller/controller-planner.js';
import { encodeError } from './controller/controller-rpc.js';
import {
  ControllerTestCluster,
  rejection,
  scriptedControllerClient,
} from './controller/controller-testing.js';
import { EMPTY_METADATA_STATE, topicByName } from './controller/metadata-state.js';
import { LeaderReports, type ReportingReplica } from './leader-reports.js';

let cluster: ControllerTestCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

class StandIn implements ReportingReplica {
  role = 'follower';
  termCommitted = false;
  leaderEpoch = 0;
  isr: NodeId[] = [];
  readonly transfers: number[] = [];
  inSyncReplicas(): readonly NodeId[] {
    return this.role === 'leader' ? this.isr : [];
  }
  transferLeadership(to: NodeId): void {
    this.transfers.push(to);
  }
  lead(epoch: number, isr: number[]): void {
    this.role = 'leader';
    this.termCommitted = true;
    this.leaderEpoch = epoch;
    this.isr = isr as NodeId[];
  }
  follow(epoch: number): void {
    this.role = 'follower';
    this.termCommitted = false;
    this.leaderEpoch = epoch;
    this.isr = [];
  }
}

/** Three live brokers, a topic of one partition on all three, a reporter per broker. */
async function setUp() {
  const c = new ControllerTestCluster([1, 2, 3]);
  cluster = c;
  await c.startAll();
  const lifecycles = [1, 2, 3].map((id) => {
    const l = new BrokerLifecycle({
      brokerId: id,
      host: '127.0.0.1',
      port: 9000 + id,
      incarnation: `inc-${id}`,
      client: c.client(id),
      heartbeatIntervalTicks: 3,
      sessionTicks: 1000,
    });
    c.tickers.push(() => l.tick());
    return l;
  });
  await c.tickUntil(() => lifecycles.every((l) => !l.fenced));
  const t = await c.run(
    c.client(1).createTopic({ name: 't', partitions: 1, replicationFactor: 3 }),
  );
  const replicas = new Map<number, StandIn>();
  const sent: Array<{ from: number; report: IsrReport }> = [];
  for (const id of [1, 2, 3]) {
    const r = new StandIn();
    replicas.set(id, r);
    const client = c.client(id);
    const reports = new LeaderReports({
      self: id,
      state: () => c.brokers.get(id)?.node?.state ?? EMPTY_METADATA_STATE,
      changeIsr: (report) => {
        sent.push({ from: id, report });
        return client.changeIsr(report);
      },
    });
    c.tickers.push(() => {
      reports.tick();
      reports.report('t/0', 't', 0, r);
    });
  }
  const leaderInState = () => {
    const p = topicByName(c.node(1).state, 't')?.partitions[0];
    return p === undefined ? null : { leader: p.leader, epoch: p.leaderEpoch };
  };
  return { c, replicas, sent, leaderInState, epoch0: t.partitions[0]!.leaderEpoch };
}

describe('leader reports', () => {
  it('a leader of a later term is in the state within a few ticks, also while a refused report of its older term was in flight', async () => {
    const { c, replicas, sent, leaderInState, epoch0 } = await setUp();
    const [r1, r2] = [replicas.get(1)!, replicas.get(2)!];
    const e = epoch0 + 1;
    r1.lead(e, [1, 2, 3]);
    await c.tickUntil(() => leaderInState()?.leader === 1, 50);
    // Broker 2 takes over at e + 1 (a transfer) and its report is accepted.
    r2.lead(e + 1, [1, 2, 3]);
    await c.tickUntil(() => leaderInState()?.epoch === e + 1, 50);
    expect(leaderInState()).toEqual({ leader: 2, epoch: e + 1 });
    // Broker 1, deposed without knowing yet, reports its old term again: refused (the state
    // names broker 2 at a later epoch).
    const before = sent.length;
    await c.tickUntil(() => sent.slice(before).some((x) => x.from === 1), 50);
    expect(sent.at(-1)?.report).toMatchObject({ leader: 1, leaderEpoch: e });
    await c.tick(5);
    // Then the group elects broker 1 again (balancing hands it back), at e + 2.
    r2.follow(e + 2);
    r1.lead(e + 2, [1, 2, 3]);
    const ticks = await c.tickUntil(() => leaderInState()?.epoch === e + 2, 400);
    expect(leaderInState()).toEqual({ leader: 1, epoch: e + 2 });
    // About one report round; without rules 4 and 5, 133 ticks here (the refused report of
    // term e retried with backoff, holding the partition's slot), about 17 s on a broker.
    expect(ticks).toBeLessThanOrEqual(10);
    // Refused at e, it had handed the group to the leader the state named (rule 6); not at e + 2.
    expect(r1.transfers).toEqual([2]);
  });

  it("a newer term's report is sent while an older term's call is still unanswered", async () => {
    const sent: IsrReport[] = [];
    const answers: Array<() => void> = [];
    const c = new ControllerTestCluster([1]);
    cluster = c;
    await c.start(1);
    const l = new BrokerLifecycle({
      brokerId: 1,
      host: 'h',
      port: 1,
      incarnation: 'a',
      client: c.client(1),
      heartbeatIntervalTicks: 1,
    });
    c.tickers.push(() => l.tick());
    await c.tickUntil(() => !l.fenced);
    await c.run(c.client(1).createTopic({ name: 't', partitions: 1, replicationFactor: 1 }));
    const reports = new LeaderReports({
      self: 1,
      state: () => c.node(1).state,
      changeIsr: (report) => {
        sent.push(report);
        // Never answered until the test says so (a call stuck on timeouts).
        return new Promise((_resolve, reject) =>
          answers.push(() => reject(new StreamBusError(ErrorCode.REQUEST_TIMED_OUT, 'late'))),
        );
      },
    });
    const r = new StandIn();
    r.lead(5, [1]);
    for (let i = 0; i < 30; i++) {
      reports.tick();
      reports.report('t/0', 't', 0, r);
    }
    // One call per term while it is unanswered, however many ticks pass.
    expect(sent.map((s) => s.leaderEpoch)).toEqual([5]);
    r.lead(6, [1]);
    reports.tick();
    reports.report('t/0', 't', 0, r);
    expect(sent.map((s) => s.leaderEpoch)).toEqual([5, 6]);
    expect(reports.inFlight).toBe(2);
    for (const a of answers) a();
    await new Promise((resolve) => setImmediate(resolve));
    expect(reports.inFlight).toBe(0);
  });

  it('the controller client throws a refusal of an ISR report at once: no backoff, no other voter', async () => {
    for (const code of [ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.LEADER_NOT_AVAILABLE]) {
      const { client, asked, slept } = scriptedControllerClient(() =>
        Promise.resolve(encodeError(new StreamBusError(code, 'the state moved on'))),
      );
      const err = await rejection(
        client.changeIsr({ topicId: 1, partition: 0, leader: 9, leaderEpoch: 3, isr: [9] }),
      );
      expect(isStreamBusError(err, code)).toBe(true);
      expect({ asked: asked.length, slept: slept() }).toEqual({ asked: 1, slept: 0 });
    }
  });
});
