// Leader reports against a real in-process controller quorum (controller-testing.ts: three
// ControllerNodes, the real ControllerClient, time in ticks), with stand-in partition replicas
// whose role and term the test sets: the state must name the real Raft leader within a few
// ticks of its term committing, also after a refused report of an older term.
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';
import type { NodeId } from '@streambus/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerLifecycle } from './controller/broker-lifecycle.js';
import {
  type IsrReport,
  planBootstrap,
  planCreateTopic,
  planHeartbeat,
  planIsrChange,
  planRegisterBroker,
} from './controller/controller-planner.js';
import { encodeError } from './controller/controller-rpc.js';
import {
  ControllerTestCluster,
  rejection,
  scriptedControllerClient,
} from './controller/controller-testing.js';
import type { MetadataRecord } from './controller/metadata-records.js';
import {
  apply,
  EMPTY_METADATA_STATE,
  type MetadataState,
  topicByName,
} from './controller/metadata-state.js';
import { LeaderReports, type ReportingReplica, reportKeysTouched } from './leader-reports.js';

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

describe('leader reports: idle cost (rule 7)', () => {
  const run = (s: MetadataState, records: readonly MetadataRecord[]) => records.reduce(apply, s);

  /** Three live brokers, a topic of `n` partitions of RF 3: each led by replicas[0], epoch 0. */
  function stateOf(n: number): MetadataState {
    let s = run(EMPTY_METADATA_STATE, planBootstrap(EMPTY_METADATA_STATE, 'c1'));
    for (let id = 1; id <= 3; id++) {
      s = run(s, planRegisterBroker(s, { brokerId: id, host: 'h', port: id, incarnation: 'a' }));
      const brokerEpoch = s.brokers.get(id)!.brokerEpoch;
      s = run(s, planHeartbeat(s, { brokerId: id, brokerEpoch }, 0));
    }
    return run(s, planCreateTopic(s, { name: 't', partitions: n, replicationFactor: 3 }));
  }

  it('1,000 replicas held: an idle tick evaluates none; a change, a retry or a call ending only its own', async () => {
    const n = 1000;
    let state = stateOf(n);
    const t = topicByName(state, 't')!;
    const sent: IsrReport[] = [];
    const reports = new LeaderReports({
      self: 1,
      state: () => state,
      changeIsr: (report) => {
        sent.push(report);
        return Promise.resolve();
      },
      retryTicks: 5,
    });
    // This broker's stand-ins agree with the state: leaders where it is replicas[0].
    const replicas = new Map<string, StandIn>();
    for (let i = 0; i < n; i++) {
      const r = new StandIn();
      const ps = t.partitions[i]!;
      if (ps.leader === 1) r.lead(ps.leaderEpoch, [...ps.isr]);
      replicas.set(`${t.id}/${i}`, r);
    }
    const subject = (k: string) => {
      const r = replicas.get(k);
      return r === undefined
        ? undefined
        : { topic: 't', partition: Number(k.split('/')[1]), replica: r };
    };
    const tick = () => {
      reports.tick();
      return reports.reportDirty(subject, () => replicas.keys());
    };
    reports.markAllDirty();
    expect(tick()).toBe(n);
    expect(sent).toEqual([]);
    // Idle: nothing changed, nothing evaluated, tick after tick.
    for (let i = 0; i < 20; i++) expect(tick()).toBe(0);
    // Broker heartbeats (the records an idle cluster applies) touch no partition.
    expect(
      reportKeysTouched([{ type: 'broker-heartbeat', brokerId: 2, brokerEpoch: 2, tick: 9 }]),
    ).toEqual([]);
    // A leader whose follower fell behind: marked (its group had work), reported once...
    const k = `${t.id}/0`;
    replicas.get(k)!.isr = [1, 2] as NodeId[];
    reports.markDirty(k);
    expect(tick()).toBe(1);
    expect(sent.map((r) => r.isr)).toEqual([[1, 2]]);
    await Promise.resolve();
    await Promise.resolve();
    // ...and while the state still disagrees it alone is looked at again, resent after retryTicks.
    const evaluated: number[] = [];
    for (let i = 0; i < 6; i++) evaluated.push(tick());
    // Due again on the 5th tick: resent; the call's end (not yet run) marks it dirty again.
    expect(evaluated).toEqual([1, 1, 1, 1, 1, 0]);
    expect(sent).toHaveLength(2);
    // The state takes the report (a partition-change record marks that partition): settled.
    const change = planIsrChange(state, {
      topicId: t.id,
      partition: 0,
      leader: 1,
      leaderEpoch: 0,
      isr: [1, 2],
    });
    state = run(state, change);
    expect(reportKeysTouched(change)).toEqual([k]);
    for (const key of reportKeysTouched(change) as string[]) reports.markDirty(key);
    await Promise.resolve();
    expect(tick()).toBe(1);
    expect(tick()).toBe(0);
    expect(sent).toHaveLength(2);
    // A record that may touch any partition, or a snapshot install ([]): everything once.
    expect(reportKeysTouched([])).toBe('all');
    expect(
      reportKeysTouched(planCreateTopic(state, { name: 'u', partitions: 1, replicationFactor: 3 })),
    ).toBe('all');
  });
});
