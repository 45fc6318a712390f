import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerLifecycle } from './broker-lifecycle.js';
import { NotControllerError } from './controller-node.js';
import {
  type ControllerClient,
  ControllerRpcKind,
  decodeResponse,
  encodeRequest,
  isControllerRpcKind,
} from './controller-rpc.js';
import {
  ControllerTestCluster,
  rejection,
  scriptedControllerClient,
} from './controller-testing.js';
import { encodeSnapshot, topicByName } from './metadata-state.js';

let cluster: ControllerTestCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

const hex = (c: ControllerTestCluster, id: number) =>
  Buffer.from(encodeSnapshot(c.node(id).state)).toString('hex');

function lifecycle(c: ControllerTestCluster, id: number, client?: ControllerClient) {
  const l = new BrokerLifecycle({
    brokerId: id,
    host: '127.0.0.1',
    port: 9000 + id,
    incarnation: `inc-${id}-${Math.random()}`,
    client: client ?? c.client(id),
    heartbeatIntervalTicks: 3,
    sessionTicks: 30,
  });
  c.tickers.push(() => l.tick());
  return l;
}

/** Three voters, each broker registered and heartbeating through its own lifecycle. */
async function threeLive(limits: ConstructorParameters<typeof ControllerTestCluster>[1] = {}) {
  cluster = new ControllerTestCluster([1, 2, 3], limits);
  await cluster.startAll();
  const c = cluster;
  const lifecycles = [1, 2, 3].map((id) => lifecycle(c, id));
  await c.tickUntil(() => lifecycles.every((l) => !l.fenced));
  return { c, lifecycles };
}

describe('controller RPCs', () => {
  it('CONTROLLER_OFFLINE moves on to the next voter at once, and is thrown once every voter said it', async () => {
    let healthy = 0; // a voter that answers (0: none)
    const { client, asked, slept } = scriptedControllerClient((to) => {
      if (to === healthy) return Promise.resolve(new Uint8Array([0]));
      return Promise.reject(
        new StreamBusError(ErrorCode.CONTROLLER_OFFLINE, `node ${to}: disk full`),
      );
    });
    const err = await rejection(client.call(ControllerRpcKind.Heartbeat, new Uint8Array(0)));
    expect(isStreamBusError(err, ErrorCode.CONTROLLER_OFFLINE)).toBe(true);
    expect(asked.sort()).toEqual([1, 2, 3]);
    expect(slept()).toBe(0);
    // One voter whose log works: it is reached without a backoff.
    asked.length = 0;
    healthy = 3;
    await client.call(ControllerRpcKind.Heartbeat, new Uint8Array(0)).catch(() => undefined);
    expect(asked).toContain(3);
    expect(slept()).toBe(0);
  });

  it('every kind round-trips through the server of a cluster of one', async () => {
    cluster = new ControllerTestCluster([1]);
    await cluster.start(1);
    await cluster.settle();
    const client = cluster.client(1);
    const c = cluster;
    const { brokerEpoch } = await c.run(
      client.registerBroker({ brokerId: 1, host: 'h', port: 1, incarnation: 'a' }),
    );
    expect(await c.run(client.heartbeat({ brokerId: 1, brokerEpoch }))).toEqual({ fenced: false });
    const t = await c.run(
      client.createTopic({
        name: 't',
        partitions: 2,
        replicationFactor: 1,
        configs: { 'retention.ms': '5', 'retention.bytes': '100' },
      }),
    );
    expect(t).toEqual(topicByName(c.node(1).state, 't'));
    const altered = await c.run(client.alterTopicConfig('t', { 'retention.ms': null }));
    expect(altered.configs).toEqual([{ key: 'retention.bytes', value: '100' }]);
    const block = await c.run(client.allocateProducerIds(1000));
    const block2 = await c.run(client.allocateProducerIds(10));
    expect(block2.firstProducerId).toBe(block.firstProducerId + 1000);
    const p = t.partitions[0]!;
    const changed = await c.run(
      client.changeIsr({
        topicId: t.id,
        partition: 0,
        leader: 1,
        leaderEpoch: p.leaderEpoch,
        isr: [1],
      }),
    );
    expect(changed.isr).toEqual([1]);
    await c.run(client.deleteTopic('t'));
    expect(topicByName(c.node(1).state, 't')).toBeUndefined();
    const err = await rejection(c.run(client.deleteTopic('t')));
    expect(isStreamBusError(err, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION)).toBe(true);
    // The Kafka address travels in the registration (issue 11): none above (an older broker's
    // body), then a restart advertising one, then another.
    expect(c.node(1).state.brokers.get(1)!.kafka).toBeNull();
    const kafka = { host: 'k1', port: 19092 };
    await c.run(
      client.registerBroker({ brokerId: 1, host: 'h', port: 1, incarnation: 'b', kafka }),
    );
    expect(c.node(1).state.brokers.get(1)!.kafka).toEqual(kafka);
    const moved = { host: 'k1b', port: 29092 };
    await c.run(
      client.registerBroker({ brokerId: 1, host: 'h', port: 1, incarnation: 'c', kafka: moved }),
    );
    expect(c.node(1).state.brokers.get(1)!.kafka).toEqual(moved);
  });

  it('bad bodies, unknown kinds and requests for another broker are INVALID_REQUEST', async () => {
    cluster = new ControllerTestCluster([1]);
    await cluster.start(1);
    await cluster.settle();
    const rpc = cluster.brokers.get(1)!.rpc!;
    const invalid = async (from: number, kind: string, body: Uint8Array) => {
      const reply = await rpc.handle(from, kind, body);
      try {
        decodeResponse(reply);
        expect.unreachable();
      } catch (err) {
        expect(isStreamBusError(err, ErrorCode.INVALID_REQUEST), String(err)).toBe(true);
        return (err as Error).message;
      }
    };
    expect(await invalid(1, ControllerRpcKind.Register, new Uint8Array([1, 2]))).toMatch(
      /malformed controller.register/,
    );
    expect(await invalid(1, 'controller.nope', new Uint8Array(0))).toMatch(/unknown/);
    const trailing = Buffer.concat([encodeRequest.deleteTopic('t'), Buffer.from([0])]);
    expect(await invalid(1, ControllerRpcKind.DeleteTopic, trailing)).toMatch(/trailing/);
    const forOther = encodeRequest.register({ brokerId: 2, host: 'h', port: 1, incarnation: 'x' });
    expect(await invalid(1, ControllerRpcKind.Register, forOther)).toMatch(/may not register/);
    expect(isControllerRpcKind(ControllerRpcKind.IsrChange)).toBe(true);
    expect(isControllerRpcKind('raft')).toBe(false);
    // A garbage response is a retriable network error, never a crash.
    const garbled = (() => {
      try {
        decodeResponse(new Uint8Array([7]));
      } catch (err) {
        return err;
      }
    })();
    expect(isStreamBusError(garbled, ErrorCode.NETWORK_EXCEPTION)).toBe(true);
  });

  it('create topic through a follower is forwarded and gives identical state on all nodes', async () => {
    const { c, lifecycles } = await threeLive();
    const leader = await c.leader();
    const follower = [1, 2, 3].find((id) => id !== leader.nodeId)!;
    // The follower tries the other voters first, so it must follow a NOT_CONTROLLER hint.
    const order = [follower, ...[1, 2, 3].filter((id) => id !== follower)];
    const client = c.client(follower, order);
    const topic = await c.run(
      client.createTopic({ name: 'fw', partitions: 3, replicationFactor: 3 }),
    );
    expect(client.controllerId).toBe(leader.nodeId);
    expect(topic.partitions.every((p) => p.replicas.length === 3)).toBe(true);
    await c.tickUntil(() => c.running().every((n) => n.applied === leader.applied));
    expect(hex(c, 1)).toBe(hex(c, 2));
    expect(hex(c, 2)).toBe(hex(c, 3));
    const dup = await rejection(
      c.run(client.createTopic({ name: 'fw', partitions: 1, replicationFactor: 1 })),
    );
    expect(isStreamBusError(dup, ErrorCode.TOPIC_ALREADY_EXISTS)).toBe(true);
    await c.run(Promise.all(lifecycles.map((l) => l.stop())));
  });

  it('a call survives a controller failover (retries, then the new leader answers)', async () => {
    const { c, lifecycles } = await threeLive();
    const leader = await c.leader();
    const other = [1, 2, 3].find((id) => id !== leader.nodeId)!;
    const client = c.client(other);
    await c.run(client.createTopic({ name: 'before', partitions: 1, replicationFactor: 3 }));
    expect(client.controllerId).toBe(leader.nodeId);
    await c.crash(leader.nodeId);
    const t = await c.run(
      client.createTopic({ name: 'after', partitions: 1, replicationFactor: 2 }),
    );
    expect(client.controllerId).not.toBe(leader.nodeId);
    expect(topicByName(c.node(other).state, 'after')?.id).toBe(t.id);
    await c.run(Promise.all(lifecycles.map((l) => l.stop())));
  });

  it('NOT_CONTROLLER keeps its leader id across the wire', async () => {
    cluster = new ControllerTestCluster([1, 2, 3]);
    await cluster.startAll();
    const leader = await cluster.leader();
    await cluster.tick(2);
    const follower = [1, 2, 3].find((id) => id !== leader.nodeId)!;
    const reply = await cluster.brokers
      .get(follower)!
      .rpc!.handle(follower, ControllerRpcKind.DeleteTopic, encodeRequest.deleteTopic('x'));
    const err = await rejection(Promise.resolve().then(() => decodeResponse(reply)));
    expect(err).toBeInstanceOf(NotControllerError);
    expect((err as NotControllerError).leaderId).toBe(leader.nodeId);
  });
});

describe('BrokerLifecycle', () => {
  it('registers, heartbeats, is fenced when it stops and re-registers on a stale epoch', async () => {
    const { c, lifecycles } = await threeLive({ sessionTicks: 20 });
    const leader = await c.leader();
    expect(lifecycles.map((l) => l.brokerEpoch)).toEqual(
      [1, 2, 3].map((id) => leader.state.brokers.get(id)!.brokerEpoch),
    );
    // Another incarnation of broker 2 registers: the lifecycle's epoch is stale, it re-registers.
    await c.run(
      leader.registerBroker({ brokerId: 2, host: 'h', port: 1, incarnation: 'impostor' }),
    );
    await c.tickUntil(() => lifecycles[1]!.registrationCount === 2 && !lifecycles[1]!.fenced);
    const l2 = lifecycles[1]!;
    expect(l2.brokerEpoch).toBe((await c.leader()).state.brokers.get(2)!.brokerEpoch);
    // Broker 3 stops heartbeating: fenced by the controller.
    await c.run(lifecycles[2]!.stop());
    await c.tickUntil(
      () =>
        c
          .running()
          .find((n) => n.ready)
          ?.state.brokers.get(3)?.fenced ?? false,
    );
    expect(lifecycles[0]!.fenced).toBe(false);
    await c.run(Promise.all(lifecycles.map((l) => l.stop())));
  });

  it('a broker outside the voters joins as a learner by registering, and catches up', async () => {
    const { c, lifecycles } = await threeLive({ snapshotEveryEntries: 10 });
    await c.tick(30); // heartbeats fill the log past a snapshot
    await c.start(4);
    const joiner = lifecycle(c, 4, c.client(4, [1, 2, 3]));
    await c.tickUntil(() => !joiner.fenced);
    const leader = await c.leader();
    expect(leader.conf.learners).toContain(4);
    expect(leader.stats.snapshotsTaken).toBeGreaterThan(0);
    await c.tickUntil(() => c.node(4).state.brokers.get(4)?.fenced === false);
    expect(c.node(4).state.clusterId).toBe(leader.state.clusterId);
    await c.run(Promise.all([...lifecycles, joiner].map((l) => l.stop())));
  });
});
