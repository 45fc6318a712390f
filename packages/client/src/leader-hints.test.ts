// Leader hints (issue 12, docs/client.md "Leader hints"): a NOT_LEADER_OR_FOLLOWER refusal that
// names the partition's leader (`currentLeader`) routes the retry straight there, with no
// Metadata request in between; a wrong hint, one naming the refusing broker, or one older than
// what the client knows falls back to the metadata refresh, and never loops. Counted (requests
// per broker), not timed; fake brokers on 127.0.0.1.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import { Cluster, PartitionRefusedError, parseAddress } from './cluster.js';
import { retry } from './retry.js';
import { FakeCluster } from './testing/fake-broker.js';
import { closeAfterEach } from './testing/per-test.js';

const track = closeAfterEach();

const policy = { retriesMax: 20, backoffInitialMs: 5, backoffMaxMs: 20, totalTimeoutMs: 10_000 };

/** Per broker: produce requests, metadata requests, NOT_LEADER answers (totals). */
function counts(cluster: FakeCluster) {
  return cluster.brokers.map((b) => ({
    produce: b.produceRequests,
    metadata: b.metadataRequests,
    notLeader: b.notLeaderAnswers,
  }));
}

function delta(before: ReturnType<typeof counts>, after: ReturnType<typeof counts>) {
  return after.map((a, i) => ({
    produce: a.produce - before[i]!.produce,
    metadata: a.metadata - before[i]!.metadata,
    notLeader: a.notLeader - before[i]!.notLeader,
  }));
}

async function started(hints: Parameters<FakeCluster['leaderHints']>[0]) {
  const cluster = track(await FakeCluster.start(3));
  cluster.createTopic('t', 1);
  cluster.leaderHints(hints);
  const client = track(new StreamBusClient({ bootstrap: cluster.bootstrap, retry: policy }));
  const producer = client.producer({ lingerMs: 0 });
  // Metadata cached: broker 1 leads, epoch 0.
  expect((await producer.send({ topic: 't', value: 'v0' })).offset).toBe(0);
  return { cluster, producer };
}

describe('leader hints', () => {
  it('a refusal naming the leader: the retry goes there at once, with no Metadata request', async () => {
    const { cluster, producer } = await started('current');
    // The cluster's metadata still names broker 1 (a controller that has not heard yet).
    cluster.freezeMetadata();
    cluster.moveLeader('t', 0, 2);
    const before = counts(cluster);
    expect((await producer.send({ topic: 't', value: 'v1' })).offset).toBe(1);
    const d = delta(before, counts(cluster));
    expect(d.map((x) => x.metadata)).toEqual([0, 0, 0]);
    expect(d.map((x) => x.produce)).toEqual([1, 1, 0]);
    expect(d[0]!.notLeader).toBe(1);
    // Later sends keep going to broker 2 (the hint stays in the cache).
    expect((await producer.send({ topic: 't', value: 'v2' })).offset).toBe(2);
    const d2 = delta(before, counts(cluster));
    expect(d2.map((x) => x.produce)).toEqual([1, 2, 0]);
  });

  it('without a hint (an older broker) the refusal takes the metadata refresh', async () => {
    const { cluster, producer } = await started(null);
    cluster.moveLeader('t', 0, 2);
    const before = counts(cluster);
    expect((await producer.send({ topic: 't', value: 'v1' })).offset).toBe(1);
    const d = delta(before, counts(cluster));
    expect(d.reduce((n, x) => n + x.metadata, 0)).toBeGreaterThanOrEqual(1);
    expect(d[1]!.produce).toBe(1);
  });

  it('a wrong hint falls back to the metadata refresh, and is not followed again', async () => {
    // Every refusal names broker 3 at a newer epoch; broker 2 leads.
    const { cluster, producer } = await started((_t, _p, leader) => ({
      leaderId: 3,
      leaderEpoch: leader.epoch + 5,
    }));
    cluster.moveLeader('t', 0, 2);
    const before = counts(cluster);
    expect((await producer.send({ topic: 't', value: 'v1' })).offset).toBe(1);
    const d = delta(before, counts(cluster));
    // Broker 1 refused naming 3; broker 3 refused (naming itself: not followed); then metadata.
    expect(d[0]!.produce).toBe(1);
    expect(d[2]!.produce).toBe(1);
    expect(d[1]!.produce).toBe(1);
    expect(d.reduce((n, x) => n + x.metadata, 0)).toBeGreaterThanOrEqual(1);
    // The refused hint is not followed again: the next sends go to broker 2 only.
    expect((await producer.send({ topic: 't', value: 'v2' })).offset).toBe(2);
    const d2 = delta(before, counts(cluster));
    expect(d2[2]!.produce).toBe(1);
    expect(d2[1]!.produce).toBe(2);
  });

  it('a hint not newer than the epoch the client knows is not followed', async () => {
    const { cluster, producer } = await started((_t, _p, leader) => ({
      leaderId: 3,
      leaderEpoch: leader.epoch - 1,
    }));
    cluster.moveLeader('t', 0, 2);
    expect((await producer.send({ topic: 't', value: 'v1' })).offset).toBe(1);
    // The client knows broker 2 at epoch 1; broker 1 leads again at epoch 2, and broker 2's
    // refusal names broker 3 at epoch 1: not newer than what the client has.
    cluster.moveLeader('t', 0, 1);
    const before = counts(cluster);
    expect((await producer.send({ topic: 't', value: 'v2' })).offset).toBe(2);
    const d = delta(before, counts(cluster));
    expect(d[2]!.produce).toBe(0);
    expect(d[0]!.produce).toBe(1);
    expect(d.reduce((n, x) => n + x.metadata, 0)).toBeGreaterThanOrEqual(1);
  });

  it('the cluster view: a followed hint beats older metadata; a refusal from the hinted broker ends it', async () => {
    const fake = track(await FakeCluster.start(3));
    fake.createTopic('t', 1);
    const view = track(
      new Cluster({
        bootstrap: fake.bootstrap.split(',').map(parseAddress),
        clientId: 'hints',
        connectTimeoutMs: 5_000,
        requestTimeoutMs: 5_000,
        inflightRequestsMax: 5,
        slotWaitersMax: 100,
        frameBytesMax: 1 << 20,
        metadataMaxAgeMs: 60_000,
      }),
    );
    await view.refreshMetadata(['t']);
    const port = (id: number) => fake.broker(id).port;
    const refusal = (from: number, hint?: { leaderId: number; leaderEpoch: number }) =>
      new PartitionRefusedError(
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        'moved',
        't',
        0,
        `127.0.0.1:${port(from)}`,
        hint,
      );
    expect((await view.leaderFor('t', 0)).port).toBe(port(1));
    // A hint naming the refusing broker itself, or an unknown broker: not followed.
    expect(view.handleRetriableError(refusal(1, { leaderId: 1, leaderEpoch: 3 }), 't')).toBe(false);
    await view.refreshMetadata(['t']);
    expect(view.handleRetriableError(refusal(1, { leaderId: 9, leaderEpoch: 3 }), 't')).toBe(false);
    await view.refreshMetadata(['t']);
    expect(view.handleRetriableError(refusal(1, { leaderId: 2, leaderEpoch: 3 }), 't')).toBe(true);
    expect(view.hintsFollowed).toBe(1);
    expect((await view.leaderFor('t', 0)).port).toBe(port(2));
    // Metadata naming broker 1 at epoch 0 does not undo the hint of epoch 3.
    await view.refreshMetadata(['t']);
    expect((await view.leaderFor('t', 0)).port).toBe(port(2));
    // The same hint again (a request sent before): already routed, nothing new followed.
    expect(view.handleRetriableError(refusal(1, { leaderId: 2, leaderEpoch: 3 }), 't')).toBe(true);
    expect(view.hintsFollowed).toBe(1);
    // Broker 2 refuses too, naming broker 3 at the same epoch: not followed (never a loop);
    // the next metadata answer decides again.
    expect(view.handleRetriableError(refusal(2, { leaderId: 3, leaderEpoch: 3 }), 't')).toBe(false);
    await view.refreshMetadata(['t']);
    expect((await view.leaderFor('t', 0)).port).toBe(port(1));
    // Nor is the refused hint followed again when the old leader names it once more.
    expect(view.handleRetriableError(refusal(1, { leaderId: 2, leaderEpoch: 3 }), 't')).toBe(false);
    expect(view.hintsFollowed).toBe(1);
  });

  it('retry(): a hook that says the route is fixed skips the backoff sleep', async () => {
    let calls = 0;
    const slow = {
      retriesMax: 3,
      backoffInitialMs: 600_000,
      backoffMaxMs: 600_000,
      totalTimeoutMs: 600_000,
    };
    const result = retry(
      async () => {
        if (++calls < 3) throw new StreamBusError(ErrorCode.NOT_LEADER_OR_FOLLOWER);
        return 'ok';
      },
      slow,
      { beforeRetry: () => true, random: () => 0.999 },
    );
    // Bounded: with a sleep the backoff alone would be minutes.
    let guard: NodeJS.Timeout | undefined;
    const timeout = new Promise<string>((r) => {
      guard = setTimeout(() => r('slept'), 5_000);
    });
    expect(await Promise.race([result, timeout])).toBe('ok');
    clearTimeout(guard);
    expect(calls).toBe(3);
  });
});
