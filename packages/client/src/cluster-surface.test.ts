// The SDK against a cluster of fake brokers: a bootstrap list with dead addresses, the
// replication factor on create, describeCluster (and its Metadata fallback on a broker older
// than DescribeCluster), and a partition leader moving between brokers mid-produce and
// mid-consume: NOT_LEADER_OR_FOLLOWER refreshes metadata in the one retry layer.
import { ApiKey, ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import { Cluster, parseAddress } from './cluster.js';
import { deadAddress, FakeBroker, FakeCluster } from './testing/fake-broker.js';
import { closeAfterEach } from './testing/per-test.js';

const track = closeAfterEach();

const noRetry = { retriesMax: 0 };
const fastRetry = { retriesMax: 20, backoffInitialMs: 5, backoffMaxMs: 20, totalTimeoutMs: 5_000 };
const text = (u: Uint8Array | null): string => Buffer.from(u ?? []).toString();

describe('bootstrap list', () => {
  it('works while one address answers, as a comma list or an array, without a retry', async () => {
    const broker = track(await FakeBroker.start());
    broker.createTopic('t', 1);
    const dead = [await deadAddress(), await deadAddress()];
    for (const bootstrap of [
      `${dead[0]}, ${dead[1]},${broker.bootstrap}`,
      [...dead, broker.bootstrap],
    ]) {
      const client = track(new StreamBusClient({ bootstrap, retry: noRetry }));
      expect(await client.admin().listTopics()).toEqual(['t']);
    }
  });

  it('names every address tried when none answers', async () => {
    const dead = [await deadAddress(), await deadAddress()];
    const client = track(new StreamBusClient({ bootstrap: dead.join(','), retry: noRetry }));
    const err = await client
      .admin()
      .listTopics()
      .catch((e: unknown) => e);
    expect(err).toMatchObject({ code: ErrorCode.NETWORK_EXCEPTION });
    expect((err as Error).message).toMatch(
      new RegExp(`^no broker answered \\(tried ${dead[0]}, ${dead[1]}\\); last: cannot connect`),
    );
  });

  it('falls back to a broker metadata named when the bootstrap broker is gone', async () => {
    const cluster = track(await FakeCluster.start(2));
    cluster.createTopic('t', 1);
    // Retries: a request in flight when its broker goes is retried (CONNECTION_CLOSED); the
    // bootstrap address alone would then never answer again.
    const client = track(
      new StreamBusClient({ bootstrap: cluster.broker(1).bootstrap, retry: fastRetry }),
    );
    await client.admin().listTopics(); // learns broker 2 from metadata
    await cluster.broker(1).close();
    expect(await client.admin().listTopics()).toEqual(['t']);
  });
});

describe('admin on a cluster', () => {
  it('creates a topic with a replication factor, checked by the cluster', async () => {
    const cluster = track(await FakeCluster.start(2));
    const client = track(new StreamBusClient({ bootstrap: cluster.bootstrap, retry: fastRetry }));
    const admin = client.admin();
    await admin.createTopic({ name: 'r2', partitions: 2, replicationFactor: 2 });
    await expect(admin.createTopic({ name: 'r3', replicationFactor: 3 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_REPLICATION_FACTOR,
      message: 'replication factor 3: this cluster has 2 brokers',
    });
    for (const rf of [0, -1, 1.5, 40_000]) {
      await expect(admin.createTopic({ name: 'x', replicationFactor: rf })).rejects.toMatchObject({
        code: ErrorCode.INVALID_ARGUMENT,
        message: `topics[0].replicationFactor: expected an integer in 1..32767, got ${rf}`,
      });
    }
    expect(await admin.listTopics()).toEqual(['r2']);
  });

  it('describes brokers (live or not, controller, counts) and partitions (replicas, ISR, epoch)', async () => {
    const cluster = track(await FakeCluster.start(3));
    cluster.createTopic('t', 3);
    cluster.moveLeader('t', 1, 2);
    cluster.moveLeader('t', 2, 2);
    cluster.moveLeader('t', 2, 3);
    const client = track(new StreamBusClient({ bootstrap: cluster.bootstrap, retry: fastRetry }));
    const admin = client.admin();
    const d = await admin.describeTopic('t');
    expect(d.partitions.map((p) => [p.leaderId, p.leaderEpoch, p.replicas, p.isr])).toEqual([
      [1, 0, [1, 2, 3], [1, 2, 3]],
      [2, 1, [1, 2, 3], [1, 2, 3]],
      [3, 2, [1, 2, 3], [1, 2, 3]],
    ]);
    // Broker 3 goes; its partition gets a new leader, as a controller would elect one.
    await cluster.broker(3).close();
    cluster.moveLeader('t', 2, 1);
    const c = await admin.describeCluster();
    expect(c.clusterId).toBe('fake-cluster');
    expect(c.controllerId).toBe(1);
    expect(
      c.brokers.map((b) => [b.nodeId, b.live, b.isController, b.replicaCount, b.leaderCount]),
    ).toEqual([
      [1, true, true, 3, 2],
      [2, true, false, 3, 1],
      [3, false, false, 3, 0],
    ]);
    const after = await admin.describeTopic('t');
    expect(after.partitions.map((p) => [p.leaderId, p.leaderEpoch, p.isr])).toEqual([
      [1, 0, [1, 2]],
      [2, 1, [1, 2]],
      [1, 3, [1, 2]],
    ]);
  });

  it('describes the cluster from Metadata on a broker without DescribeCluster', async () => {
    const old = track(await FakeBroker.start({ withoutApis: [ApiKey.DESCRIBE_CLUSTER] }));
    old.createTopic('a', 2);
    old.createTopic('b', 1);
    const client = track(new StreamBusClient({ bootstrap: old.bootstrap, retry: noRetry }));
    expect(await client.admin().describeCluster()).toEqual({
      clusterId: 'fake-cluster',
      controllerId: 0,
      brokers: [
        {
          nodeId: 0,
          host: '127.0.0.1',
          port: old.port,
          rack: null,
          live: true,
          fenced: false,
          isVoter: true,
          isController: true,
          replicaCount: 3,
          leaderCount: 3,
        },
      ],
    });
  });
});

describe('partitions led by different brokers', () => {
  it('a consumer resolves its start offsets and fetches from each leader', async () => {
    const cluster = track(await FakeCluster.start(2));
    cluster.createTopic('t', 2);
    cluster.moveLeader('t', 1, 2);
    const client = track(new StreamBusClient({ bootstrap: cluster.bootstrap, retry: noRetry }));
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 6; i++)
      await producer.send({ topic: 't', partition: i % 2, value: `v${i}` });
    expect(await client.admin().listOffsets('t', 'latest')).toEqual([
      { partition: 0, offset: 3, timestamp: -1 },
      { partition: 1, offset: 3, timestamp: -1 },
    ]);
    const consumer = client.consumer({ maxWaitMs: 20 });
    await consumer.assign({ topic: 't', from: 'earliest' });
    const got: string[] = [];
    while (got.length < 6) {
      for (const b of await consumer.poll()) got.push(...b.records.map((r) => text(r.value)));
    }
    expect(got.sort()).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
    // Without a retry budget: nothing was sent to a broker that does not lead it.
    expect(cluster.broker(1).notLeaderAnswers + cluster.broker(2).notLeaderAnswers).toBe(0);
  });
});

describe('a leader moving between brokers', () => {
  it('produce and consume follow it: NOT_LEADER_OR_FOLLOWER refreshes and retries', async () => {
    const cluster = track(await FakeCluster.start(2));
    cluster.createTopic('t', 1);
    const client = track(new StreamBusClient({ bootstrap: cluster.bootstrap, retry: fastRetry }));
    const producer = client.producer({ lingerMs: 0 });
    const consumer = client.consumer({ maxWaitMs: 20 });
    await consumer.assign({ topic: 't', from: 'earliest' });
    const got: Array<[number, string]> = [];
    const consumeTo = async (n: number): Promise<void> => {
      while (got.length < n) {
        for (const b of await consumer.poll()) {
          got.push(...b.records.map((r): [number, string] => [r.offset, text(r.value)]));
        }
      }
    };
    const sendRange = async (from: number, to: number): Promise<number[]> => {
      const offsets: number[] = [];
      for (let i = from; i < to; i++) {
        offsets.push((await producer.send({ topic: 't', value: `v${i}` })).offset);
      }
      return offsets;
    };

    const first = await sendRange(0, 5);
    await consumeTo(5);
    const [b1, b2] = [cluster.broker(1), cluster.broker(2)];
    const before = {
      b2Produce: b2.produceRequests,
      metadata: b1.metadataRequests + b2.metadataRequests,
    };
    cluster.moveLeader('t', 0, 2);
    const second = await sendRange(5, 10);
    await consumeTo(10);
    const b2ProduceSecond = b2.produceRequests - before.b2Produce;
    cluster.moveLeader('t', 0, 1);
    const third = await sendRange(10, 15);
    await consumeTo(15);

    expect([...first, ...second, ...third]).toEqual(Array.from({ length: 15 }, (_, i) => i));
    expect(got).toEqual(Array.from({ length: 15 }, (_, i) => [i, `v${i}`]));
    // The old leader refused (produce and fetch), the new one took the writes, and metadata was
    // asked again after each move.
    expect(b1.notLeaderAnswers).toBeGreaterThanOrEqual(2);
    expect(b2.notLeaderAnswers).toBeGreaterThanOrEqual(2);
    expect(b2ProduceSecond).toBe(5);
    expect(b1.metadataRequests + b2.metadataRequests).toBeGreaterThan(before.metadata + 1);
    // One copy of each record (idempotent retries never append twice).
    const part = b1.topics.get('t')!.partitions[0]!;
    expect(part.nextOffset).toBe(15);
  });

  it('every partition of a moved topic retries through one shared metadata refresh, soon after the move', async () => {
    const partitions = 16;
    const cluster = track(await FakeCluster.start(2));
    cluster.createTopic('m', partitions);
    // A policy whose backoff alone would wait seconds: deliveries while a leader moves retry
    // within leaderMovedBackoffMaxMs (100 ms) instead (context.ts runUntil).
    const slow = {
      retriesMax: 5,
      backoffInitialMs: 5_000,
      backoffMaxMs: 10_000,
      totalTimeoutMs: 60_000,
    };
    const client = track(new StreamBusClient({ bootstrap: cluster.bootstrap, retry: slow }));
    const producer = client.producer({ lingerMs: 0 });
    const sendAll = (tag: string) =>
      Promise.all(
        Array.from({ length: partitions }, (_, p) =>
          producer.send({ topic: 'm', partition: p, value: `${tag}${p}` }),
        ),
      );
    await sendAll('a');
    const [b1, b2] = [cluster.broker(1), cluster.broker(2)];
    const before = b1.metadataRequests + b2.metadataRequests;
    for (let p = 0; p < partitions; p++) cluster.moveLeader('m', p, 2);
    const t0 = Date.now();
    await sendAll('b');
    const ms = Date.now() - t0;
    const refreshes = b1.metadataRequests + b2.metadataRequests - before;
    expect(b1.notLeaderAnswers).toBeGreaterThanOrEqual(1);
    expect(refreshes).toBeGreaterThanOrEqual(1);
    expect(refreshes).toBeLessThan(partitions / 2);
    expect(ms).toBeLessThan(2_000);
    // Refreshes asking the same while one is in flight share it: one request answers them all.
    const view = new Cluster({
      bootstrap: cluster.bootstrap.split(',').map(parseAddress),
      clientId: 'shared-refresh',
      connectTimeoutMs: 5_000,
      requestTimeoutMs: 5_000,
      inflightRequestsMax: 5,
      slotWaitersMax: 100,
      frameBytesMax: 1 << 20,
      metadataMaxAgeMs: 60_000,
    });
    track(view);
    await view.anyConnection();
    const asked = b1.metadataRequests + b2.metadataRequests;
    const answers = await Promise.all(
      Array.from({ length: 10 }, () => view.refreshMetadata(['m'])),
    );
    expect(new Set(answers).size).toBe(1);
    expect(b1.metadataRequests + b2.metadataRequests - asked).toBe(1);
    await view.refreshMetadata(['m']);
    expect(b1.metadataRequests + b2.metadataRequests - asked).toBe(2);
    // A leader-moved error right after a refresh keeps that answer (the error may predate it):
    // at most one refresh per 50 ms however many partitions err; later it is dropped.
    const notLeader = new StreamBusError(ErrorCode.NOT_LEADER_OR_FOLLOWER, 'moved');
    view.handleRetriableError(notLeader, 'm');
    expect(view.cachedTopic('m')).toBeDefined();
    await new Promise((r) => setTimeout(r, 60));
    view.handleRetriableError(notLeader, 'm');
    expect(view.cachedTopic('m')).toBeUndefined();
    // A connection the broker closed with requests pending (a controlled shutdown's end) too:
    // the leaders it had are elsewhere now.
    await view.refreshMetadata(['m']);
    await new Promise((r) => setTimeout(r, 60));
    view.handleRetriableError(new StreamBusError(ErrorCode.CONNECTION_CLOSED, 'closed'), 'm');
    expect(view.cachedTopic('m')).toBeUndefined();
  });
});
