import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import { seededRandom } from '@streambus/raft';
import { FaultyFileSystem, MemoryFileSystem } from '@streambus/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { ControllerNode, NotControllerError } from './controller-node.js';
import { ControllerTestCluster, registerAll, rejection } from './controller-testing.js';
import { encodeSnapshot, topicByName } from './metadata-state.js';
import { bindNodeIdentity, readNodeIdentity, writeNodeIdentity } from './node-identity.js';

let cluster: ControllerTestCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

function hex(state: Parameters<typeof encodeSnapshot>[0]): string {
  return Buffer.from(encodeSnapshot(state)).toString('hex');
}

/** A cluster of one over `fs` (its metadata log in /data/m), sending nowhere. */
function openSole(
  fs: FaultyFileSystem,
  seed: number,
  limits?: { recoveryTicks: number },
): Promise<ControllerNode> {
  return ControllerNode.open({
    nodeId: 1,
    voters: [1],
    fs,
    dir: '/data/m',
    transport: { send: () => {} },
    random: seededRandom(seed),
    ...(limits ? { limits } : {}),
  });
}

async function heartbeat(
  c: ControllerTestCluster,
  epochs: Map<number, number>,
  ids: readonly number[],
) {
  for (const id of ids) {
    const leader = await c.leader();
    await c.run(leader.heartbeat({ brokerId: id, brokerEpoch: epochs.get(id)! }));
  }
}

describe('ControllerNode', () => {
  it('a cluster of one elects itself, bootstraps and serves at once', async () => {
    cluster = new ControllerTestCluster([1]);
    await cluster.start(1);
    const node = cluster.node(1);
    await cluster.settle();
    expect(node.isLeader).toBe(true);
    expect(node.ready).toBe(true);
    expect(node.state.clusterId).toMatch(/^[A-Za-z0-9_-]{22}$/);
    const reg = await cluster.run(
      node.registerBroker({ brokerId: 1, host: '127.0.0.1', port: 9092, incarnation: 'a' }),
    );
    expect(reg.brokerEpoch).toBeGreaterThan(0);
    await cluster.run(node.heartbeat({ brokerId: 1, brokerEpoch: reg.brokerEpoch }));
    const topic = await cluster.run(
      node.createTopic({ name: 't', partitions: 2, replicationFactor: -1 }),
    );
    expect(topic.partitions.map((p) => p.replicas)).toEqual([[1], [1]]);
    expect(topicByName(node.state, 't')?.id).toBe(topic.id);
  });

  it('three voters bootstrap exactly once and agree on the state', async () => {
    cluster = new ControllerTestCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await cluster.tick(5);
    const ids = cluster.running().map((n) => n.state.clusterId);
    expect(new Set(ids).size).toBe(1);
    expect(ids[0]).not.toBeNull();
    for (const id of [1, 2, 3]) {
      await cluster.run(
        leader.registerBroker({ brokerId: id, host: 'h', port: 9000 + id, incarnation: 'x' }),
      );
    }
    await cluster.tick(3);
    const snaps = cluster
      .running()
      .map((n) => Buffer.from(encodeSnapshot(n.state)).toString('hex'));
    expect(new Set(snaps).size).toBe(1);
  });

  it('a non-leader answers NOT_CONTROLLER with the leader hint', async () => {
    cluster = new ControllerTestCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await cluster.tick(3);
    const follower = cluster.running().find((n) => n !== leader)!;
    const err = await rejection(
      follower.createTopic({ name: 't', partitions: 1, replicationFactor: 1 }),
    );
    expect(err).toBeInstanceOf(NotControllerError);
    expect(err.code).toBe(ErrorCode.NOT_CONTROLLER);
    expect((err as NotControllerError).leaderId).toBe(leader.nodeId);
  });

  it('planner errors reach the caller typed, and nothing is proposed', async () => {
    cluster = new ControllerTestCluster([1]);
    await cluster.start(1);
    const node = cluster.node(1);
    await cluster.settle();
    const applied = node.applied;
    const err = await rejection(
      cluster.run(node.createTopic({ name: 't', partitions: 1, replicationFactor: 3 })),
    );
    expect(isStreamBusError(err, ErrorCode.INVALID_REPLICATION_FACTOR)).toBe(true);
    const bad = await rejection(cluster.run(node.heartbeat({ brokerId: 9, brokerEpoch: 1 })));
    expect(isStreamBusError(bad, ErrorCode.BROKER_ID_NOT_REGISTERED)).toBe(true);
    expect(node.applied).toBe(applied);
  });

  it('controller leader crash: a new leader, nothing committed lost, sessions survive', async () => {
    cluster = new ControllerTestCluster([1, 2, 3], { sessionTicks: 40 });
    await cluster.startAll();
    const epochs = await registerAll(cluster, [1, 2, 3]);
    const first = await cluster.leader();
    const topic = await cluster.run(
      first.createTopic({ name: 'orders', partitions: 3, replicationFactor: 3 }),
    );
    const before = hex(first.state);
    await cluster.crash(first.nodeId);
    const second = await cluster.leader();
    expect(second.nodeId).not.toBe(first.nodeId);
    expect(topicByName(second.state, 'orders')?.id).toBe(topic.id);
    // Every broker is still live right after the failover: the new clock resumed from the log.
    expect([...second.state.brokers.values()].every((b) => !b.fenced)).toBe(true);
    const alive = [1, 2, 3].filter((id) => id !== first.nodeId);
    await heartbeat(cluster, epochs, alive);
    await cluster.run(second.createTopic({ name: 'more', partitions: 1, replicationFactor: 2 }));
    // The crashed node comes back from its disk and catches up.
    await cluster.start(first.nodeId);
    const back = cluster.node(first.nodeId);
    await cluster.tickUntil(() => back.applied === second.applied);
    expect(hex(back.state)).toBe(hex(second.state));
    expect(before).not.toBe(hex(second.state));
  });

  it('restart of every node restores the state from disk', async () => {
    cluster = new ControllerTestCluster([1, 2, 3], { snapshotEveryEntries: 5, sessionTicks: 400 });
    await cluster.startAll();
    const epochs = await registerAll(cluster, [1, 2, 3]);
    const leader = await cluster.leader();
    await cluster.run(leader.createTopic({ name: 'a', partitions: 4, replicationFactor: 3 }));
    await cluster.run(leader.alterTopicConfig('a', { 'retention.ms': '1000' }));
    // Let the controller clock run well past what a restarted node has ticked.
    await cluster.tick(150);
    // Heartbeats of live brokers are the leader's memory (rule 4a): no log entry.
    const appliedBefore = leader.applied;
    await heartbeat(cluster, epochs, [1, 2, 3]);
    await cluster.tick(3);
    expect(leader.applied).toBe(appliedBefore);
    const expected = hex(leader.state);
    for (const id of [1, 2, 3]) await cluster.crash(id);
    for (const id of [1, 2, 3]) await cluster.start(id);
    // Before any election, each node has recovered the snapshot and applies the rest on commit.
    const again = await cluster.leader();
    await cluster.tickUntil(() => cluster!.running().every((n) => n.applied === again.applied));
    for (const n of cluster.running()) expect(hex(n.state)).toBe(expected);
    expect(leader.stats.snapshotsTaken).toBeGreaterThan(0);
    // Sessions survive the restart: the new controller's clock resumes at the log's, so the
    // brokers are live and their next heartbeats are accepted.
    expect([...again.state.brokers.values()].every((b) => !b.fenced)).toBe(true);
    await heartbeat(cluster, epochs, [1, 2, 3]);
    expect([...(await cluster.leader()).state.brokers.values()].every((b) => !b.fenced)).toBe(true);
  });

  it('a broker that stops heartbeating is fenced and leaves the ISRs', async () => {
    cluster = new ControllerTestCluster([1, 2, 3], { sessionTicks: 20 });
    await cluster.startAll();
    const epochs = await registerAll(cluster, [1, 2, 3]);
    const leader = await cluster.leader();
    const topic = await cluster.run(
      leader.createTopic({ name: 't', partitions: 3, replicationFactor: 3 }),
    );
    expect(topic.partitions.every((p) => p.isr.length === 3)).toBe(true);
    for (let i = 0; i < 8; i++) {
      await heartbeat(cluster, epochs, [1, 2]);
      await cluster.tick(5);
    }
    const state = (await cluster.leader()).state;
    expect(state.brokers.get(3)?.fenced).toBe(true);
    expect(state.brokers.get(1)?.fenced).toBe(false);
    const parts = state.topics.get(topic.id)!.partitions;
    // Where 3 led, nobody is recorded (at the same epoch) until that partition's group reports.
    expect(parts.every((p) => !p.isr.includes(3) && p.leader !== 3)).toBe(true);
    expect(parts.every((p) => (p.leader === -1) === (p.replicas[0] === 3))).toBe(true);
    expect(parts.every((p) => p.leaderEpoch === 0)).toBe(true);
    // Every node applied the same fence.
    for (const n of cluster.running()) expect(n.state.brokers.get(3)?.fenced).toBe(true);
  });

  it('heartbeats are leader memory: no entries, and a controller failover fences only the silent broker', async () => {
    cluster = new ControllerTestCluster([1, 2, 3], { sessionTicks: 20 });
    await cluster.startAll();
    const epochs = await registerAll(cluster, [1, 2, 3]);
    const first = await cluster.leader();
    const applied = first.applied;
    for (let i = 0; i < 6; i++) {
      await heartbeat(cluster, epochs, [1, 2, 3]);
      await cluster.tick(5);
    }
    // Thirty ticks, past the session, every broker live, and not one heartbeat entry.
    expect(first.applied).toBe(applied);
    expect([...first.state.brokers.values()].every((b) => !b.fenced)).toBe(true);
    await cluster.crash(first.nodeId);
    const next = await cluster.leader();
    expect(next.nodeId).not.toBe(first.nodeId);
    const live = [1, 2, 3].filter((id) => id !== first.nodeId);
    const silent = live[1]!;
    const talking = [first.nodeId, live[0]!];
    for (let i = 0; i < 8; i++) {
      await heartbeat(cluster, epochs, talking);
      await cluster.tick(5);
    }
    const state = (await cluster.leader()).state;
    expect(state.brokers.get(silent)?.fenced).toBe(true);
    for (const id of talking) expect(state.brokers.get(id)?.fenced).toBe(false);
  });

  it('a learner broker joins and catches up through a snapshot after compaction', async () => {
    cluster = new ControllerTestCluster([1, 2, 3], { snapshotEveryEntries: 6 });
    await cluster.startAll();
    const epochs = await registerAll(cluster, [1, 2, 3]);
    for (let i = 0; i < 4; i++) await heartbeat(cluster, epochs, [1, 2, 3]);
    const leader = await cluster.leader();
    await cluster.run(leader.createTopic({ name: 'x', partitions: 2, replicationFactor: 3 }));
    await cluster.tick(3);
    await cluster.start(4);
    const learner = cluster.node(4);
    expect(learner.state.clusterId).toBeNull();
    await cluster.run(
      leader.registerBroker({ brokerId: 4, host: '127.0.0.1', port: 9004, incarnation: 'l' }),
    );
    await cluster.tickUntil(() => leader.conf.learners.includes(4 as never));
    await cluster.tickUntil(() => learner.applied === leader.applied);
    expect(hex(learner.state)).toBe(hex(leader.state));
    expect(learner.stats.snapshotsInstalled).toBe(1);
    expect(leader.stats.snapshotsTaken).toBeGreaterThan(0);
    expect(learner.state.brokers.get(4)?.port).toBe(9004);
    expect(learner.isLeader).toBe(false);
    const err = await rejection(learner.deleteTopic('x'));
    expect((err as NotControllerError).leaderId).toBe(leader.nodeId);
  });

  it('promotes live caught-up learners to voters up to votersTarget; the quorum then survives its first voter', async () => {
    cluster = new ControllerTestCluster([1], { sessionTicks: 1000 });
    await cluster.startAll();
    await cluster.start(2);
    await cluster.start(3);
    await cluster.start(4);
    const epochs = await registerAll(cluster, [1, 2, 3, 4]);
    const first = cluster.node(1);
    await cluster.tickUntil(() => first.conf.voters.length === 3);
    // Lowest ids first; the fourth broker stays a learner (votersTarget 3).
    expect([...first.conf.voters].sort()).toEqual([1, 2, 3]);
    expect(first.conf.learners).toEqual([4]);
    await cluster.tick(20);
    expect(first.conf.voters.length).toBe(3);
    // The first voter goes away: 2 and 3 elect a controller that serves, 4 follows it.
    await cluster.crash(1);
    const next = await cluster.leader();
    expect([2, 3]).toContain(next.nodeId);
    await cluster.run(next.createTopic({ name: 'after', partitions: 1, replicationFactor: 2 }));
    await heartbeat(cluster, epochs, [2, 3, 4]);
    const learner = cluster.node(4);
    await cluster.tickUntil(() => learner.applied === next.applied);
    expect(hex(learner.state)).toBe(hex(next.state));
  });

  it('does not promote a fenced learner', async () => {
    cluster = new ControllerTestCluster([1]);
    await cluster.startAll();
    await cluster.start(2);
    const leader = await cluster.leader();
    // Registered (fenced until its first heartbeat), never heartbeating: a learner only.
    await cluster.run(
      leader.registerBroker({ brokerId: 2, host: '127.0.0.1', port: 9002, incarnation: 'x' }),
    );
    await cluster.tickUntil(() => leader.conf.learners.includes(2 as never));
    await cluster.tick(30);
    expect(leader.conf.voters).toEqual([1]);
  });

  it('binds the data directory to the cluster id once known, and refuses another cluster', async () => {
    cluster = new ControllerTestCluster([1]);
    const b = await cluster.start(1);
    const node = cluster.node(1);
    expect(node.state.clusterId).toBeNull();
    const bound = bindNodeIdentity(node, b.fs, '/data', 1);
    await cluster.settle();
    const identity = await bound;
    expect(identity).toEqual({ clusterId: node.state.clusterId, nodeId: 1 });
    expect(await readNodeIdentity(b.fs, '/data')).toEqual(identity);
    // Once known, the check is immediate; a directory of another cluster is refused by name.
    expect(await bindNodeIdentity(node, b.fs, '/data', 1)).toEqual(identity);
    await writeNodeIdentity(b.fs, '/data', { clusterId: 'other', nodeId: 1 });
    const err = await rejection(bindNodeIdentity(node, b.fs, '/data', 1));
    expect(isStreamBusError(err, ErrorCode.NODE_IDENTITY_MISMATCH)).toBe(true);
    expect(err.message).toContain(`cluster other, not ${node.state.clusterId}`);
  });

  it('requests in flight see each other (plans on the pending state) and the queue is bounded', async () => {
    cluster = new ControllerTestCluster([1], { requestsPendingMax: 2 });
    await cluster.start(1);
    const node = cluster.node(1);
    await cluster.settle();
    await registerAll(cluster, [1]);
    const first = node.createTopic({ name: 'same', partitions: 1, replicationFactor: 1 });
    const third = node.createTopic({ name: 'other', partitions: 1, replicationFactor: 1 });
    const busy = await rejection(
      node.createTopic({ name: 'x', partitions: 1, replicationFactor: 1 }),
    );
    expect(isStreamBusError(busy, ErrorCode.CONTROLLER_BUSY)).toBe(true);
    expect(busy.message).toMatch(/requestsPendingMax/);
    // Planned on each other: consecutive topic ids before either applied.
    const [a, c] = await cluster.run(Promise.all([first, third]));
    expect(c.id).toBe(a.id + 1);
    // A refusal resting on a plan not applied yet waits for it (had that plan been lost with
    // the leader, the caller would have been told of a topic that never existed), and is
    // answered once it still holds against the applied state.
    const late = node.createTopic({ name: 'late', partitions: 1, replicationFactor: 1 });
    let settled = false;
    const again = rejection(
      node.createTopic({ name: 'late', partitions: 1, replicationFactor: 1 }),
    ).finally(() => {
      settled = true;
    });
    await Promise.resolve();
    expect(settled).toBe(false);
    const [, second] = await cluster.run(Promise.all([late, again]));
    expect(isStreamBusError(second, ErrorCode.TOPIC_ALREADY_EXISTS)).toBe(true);
    // Each request is answered from the state right after its own entry applied, even when a
    // later entry (here a delete of the same topic) applies in the same round.
    const created = node.createTopic({ name: 'brief', partitions: 1, replicationFactor: 1 });
    const deleted = node.deleteTopic('brief');
    const [topic] = await cluster.run(Promise.all([created, deleted]));
    expect(topic.name).toBe('brief');
    expect(topicByName(node.state, 'brief')).toBeUndefined();
  });

  it('a disk error takes the metadata group offline: pending requests fail typed, nothing hangs', async () => {
    const faulty = new FaultyFileSystem(new MemoryFileSystem());
    const node = await openSole(faulty, 5);
    const settle = async () => {
      for (let i = 0; i < 50 && node.hasWork(); i++) await node.process();
    };
    await settle();
    expect(node.ready).toBe(true);
    faulty.inject = (op) => (op === 'sync' || op === 'write' ? { code: 'EIO' } : null);
    const pending = node.registerBroker({ brokerId: 1, host: 'h', port: 1, incarnation: 'a' });
    await settle();
    const err = await rejection(pending);
    expect(isStreamBusError(err, ErrorCode.CONTROLLER_OFFLINE)).toBe(true);
    expect(node.offline?.message).toMatch(/EIO/);
    expect(node.hasWork()).toBe(false);
    const later = await rejection(node.deleteTopic('t'));
    expect(isStreamBusError(later, ErrorCode.CONTROLLER_OFFLINE)).toBe(true);
    node.tick(); // a tick on an offline group does nothing and does not throw
    await node.close();
  });

  it('an offline metadata log reopens by itself once the disk works again, keeping its state', async () => {
    const faulty = new FaultyFileSystem(new MemoryFileSystem());
    const node = await openSole(faulty, 6, { recoveryTicks: 5 });
    const applied: unknown[] = [];
    node.onApplied((_s, records) => {
      for (const r of records) applied.push(r.type);
    });
    const settle = async () => {
      for (let i = 0; i < 50; i++) {
        if (node.hasWork()) await node.process();
        else await new Promise((r) => setImmediate(r));
      }
    };
    /** Ticks `n` times, letting a reopen and the rounds after it run. */
    const ticks = async (n: number) => {
      for (let i = 0; i < n; i++) {
        node.tick();
        await settle();
      }
    };
    await settle();
    const registered = node.registerBroker({ brokerId: 1, host: 'h', port: 1, incarnation: 'a' });
    await settle();
    const { brokerEpoch } = await registered;
    const unfenced = node.heartbeat({ brokerId: 1, brokerEpoch });
    await settle();
    await unfenced;
    const created = node.createTopic({ name: 'kept', partitions: 1, replicationFactor: 1 });
    await settle();
    await created;
    const appliedBefore = [...applied];
    faulty.inject = (op) => (op === 'sync' || op === 'write' ? { code: 'ENOSPC' } : null);
    const failed = rejection(
      node.createTopic({ name: 'lost', partitions: 1, replicationFactor: 1 }),
    );
    await settle();
    const err = await failed;
    expect(isStreamBusError(err, ErrorCode.CONTROLLER_OFFLINE)).toBe(true);
    expect((err as { retriable?: boolean }).retriable).toBe(true);
    expect(node.offline?.message).toMatch(/ENOSPC/);
    expect(node.isLeader).toBe(false);
    // Still failing: each reopen runs into the full disk again (its first write), and the group
    // stays offline, answering the same typed error.
    await ticks(12);
    expect(node.offline?.message).toMatch(/ENOSPC/);
    expect(node.stats.recoveries).toBeGreaterThan(0);
    const recoveriesWhileFull = node.stats.recoveries;
    const meanwhile = await rejection(node.deleteTopic('kept'));
    expect(isStreamBusError(meanwhile, ErrorCode.CONTROLLER_OFFLINE)).toBe(true);
    // The disk has room again: within recoveryTicks the log reopens and the node leads again.
    faulty.inject = null;
    await ticks(6);
    expect(node.offline).toBeNull();
    expect(node.stats.recoveries).toBe(recoveriesWhileFull + 1);
    expect(node.ready).toBe(true);
    // The applied state survived, and the committed entries the new Raft node handed out again
    // were not applied (nor announced) twice.
    expect(topicByName(node.state, 'kept')).toBeDefined();
    expect(appliedBefore.length).toBeGreaterThan(1);
    expect(applied).toEqual(appliedBefore);
    const again = node.createTopic({ name: 'after', partitions: 1, replicationFactor: 1 });
    await settle();
    expect((await again).name).toBe('after');
    await node.close();
    // A restart finds what the recovered log wrote.
    const restarted = await openSole(faulty, 7);
    for (let i = 0; i < 50 && restarted.hasWork(); i++) await restarted.process();
    expect(topicByName(restarted.state, 'kept')).toBeDefined();
    expect(topicByName(restarted.state, 'after')).toBeDefined();
    await restarted.close();
  });

  for (const seed of [1, 2, 3, 4]) {
    it(`a power cut of the leader mid-flight loses no acknowledged request (${seed})`, async () => {
      cluster = new ControllerTestCluster([1, 2, 3], {}, seed);
      await cluster.startAll();
      await registerAll(cluster, [1, 2, 3]);
      const c = cluster;
      const leader = await c.leader();
      const acked: string[] = [];
      const requests: Promise<unknown>[] = [];
      // One request per round of work, so the cut lands with some applied and some in flight.
      for (let round = 0; round < 2 + seed * 3; round++) {
        const name = `t${round}`;
        requests.push(
          leader.createTopic({ name, partitions: 1, replicationFactor: 3 }).then(
            () => acked.push(name),
            (err: unknown) => err,
          ),
        );
        for (const n of c.running()) if (n.hasWork()) await n.process();
        await new Promise((r) => setImmediate(r));
      }
      await c.crash(leader.nodeId, 'keep-prefix');
      await Promise.all(requests);
      expect(acked.length).toBeLessThan(requests.length);
      const next = await c.leader();
      for (const name of acked) expect(topicByName(next.state, name), name).toBeDefined();
      await c.start(leader.nodeId);
      await c.tickUntil(() => c.running().every((n) => n.applied === next.applied));
      const states = c.running().map((n) => hex(n.state));
      expect(new Set(states).size).toBe(1);
    });
  }
});
