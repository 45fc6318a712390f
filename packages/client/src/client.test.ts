import {
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  partitionForKey,
  StreamBusError,
} from '@streambus/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import { FakeBroker } from './testing/fake-broker.js';

let broker: FakeBroker;
let client: StreamBusClient;
const fastRetry = { retriesMax: 4, backoffInitialMs: 5, backoffMaxMs: 20, totalTimeoutMs: 5_000 };

beforeEach(async () => {
  broker = await FakeBroker.start({ defaultPartitions: 2 });
  client = new StreamBusClient({ bootstrap: broker.bootstrap, retry: fastRetry });
});

afterEach(async () => {
  await client.close();
  await broker.close();
});

const text = (u: Uint8Array | null): string | null =>
  u === null ? null : Buffer.from(u).toString();

describe('admin', () => {
  it('creates, lists, describes, alters and deletes topics', async () => {
    const admin = client.admin();
    await admin.createTopic({ name: 'a', partitions: 3, configs: { 'retention.ms': '1000' } });
    await admin.createTopic({ name: 'b' });
    expect(await admin.listTopics()).toEqual(['a', 'b']);
    const d = await admin.describeTopic('a');
    expect(
      d.partitions.map((p) => [p.partition, p.leaderId, p.earliestOffset, p.latestOffset]),
    ).toEqual([
      [0, 0, 0, 0],
      [1, 0, 0, 0],
      [2, 0, 0, 0],
    ]);
    expect(d.configs).toEqual([
      { name: 'retention.ms', value: '1000', isDefault: false, readOnly: false },
    ]);
    await admin.alterConfigs('a', { 'retention.ms': '5', 'segment.bytes': '100' });
    expect((await admin.describeConfigs('a')).map((c) => [c.name, c.value])).toEqual([
      ['retention.ms', '5'],
      ['segment.bytes', '100'],
    ]);
    await expect(admin.createTopic({ name: 'a' })).rejects.toMatchObject({
      code: ErrorCode.TOPIC_ALREADY_EXISTS,
    });
    await admin.deleteTopic('b');
    expect(await admin.listTopics()).toEqual(['a']);
    await expect(admin.describeTopic('b')).rejects.toMatchObject({
      code: ErrorCode.TOPIC_NOT_FOUND,
    });
    const cluster = await admin.describeCluster();
    expect(cluster.clusterId).toBe('fake-cluster');
    expect(cluster.brokers.map((x) => [x.nodeId, x.port, x.isController, x.leaderCount])).toEqual([
      [0, broker.port, true, 3],
    ]);
  });

  it('lists offsets by time and deletes records', async () => {
    broker.createTopic('t', 1);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send({ topic: 't', value: 'old', timestamp: 1_000 });
    await producer.send({ topic: 't', value: 'new', timestamp: 5_000 });
    const admin = client.admin();
    expect(await admin.listOffsets('t', { timestamp: 2_000 })).toEqual([
      { partition: 0, offset: 1, timestamp: -1 },
    ]);
    expect(await admin.deleteRecords('t', [{ partition: 0, offset: 1 }])).toEqual([
      { partition: 0, lowWatermark: 1 },
    ]);
    expect((await admin.listOffsets('t', 'earliest'))[0]!.offset).toBe(1);
  });
});

describe('producer and consumer', () => {
  it('round-trips keys, values, headers and timestamps; keys pick murmur2 partitions', async () => {
    broker.createTopic('t', 4);
    const producer = client.producer();
    const sent = await Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        producer.send({
          topic: 't',
          key: `k${i % 7}`,
          value: `v${i}`,
          headers: { h: `x${i}` },
          timestamp: 1000 + i,
        }),
      ),
    );
    for (const [i, m] of sent.entries()) expect(m.partition).toBe(partitionForKey(`k${i % 7}`, 4));
    const consumer = client.consumer({ maxWaitMs: 50 });
    await consumer.assign({ topic: 't', from: 'earliest' });
    const got = new Map<
      string,
      { partition: number; offset: number; ts: number; h: string | null }
    >();
    for await (const r of consumer) {
      got.set(text(r.value)!, {
        partition: r.partition,
        offset: r.offset,
        ts: r.timestamp,
        h: text(r.headers[0]!.value),
      });
      if (got.size === 50) break;
    }
    for (const [i, m] of sent.entries()) {
      expect(got.get(`v${i}`)).toEqual({
        partition: m.partition,
        offset: m.offset,
        ts: 1000 + i,
        h: `x${i}`,
      });
    }
  });

  it('round-trips under every codec the runtime can encode', async () => {
    broker.createTopic('c', 1);
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    const zstdEncodes = major > 22 || (major === 22 && minor >= 15);
    const codecs = [
      'none',
      'gzip',
      'snappy',
      'lz4',
      ...(zstdEncodes ? (['zstd'] as const) : []),
    ] as const;
    if (!zstdEncodes) {
      expect(() => client.producer({ compression: 'zstd' })).toThrow(
        expect.objectContaining({ code: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE }),
      );
    }
    for (const compression of codecs) {
      const producer = client.producer({ compression });
      const res = await producer.sendBatch(
        Array.from({ length: 100 }, (_, i) => ({ topic: 'c', value: `${compression}-${i}` })),
      );
      const consumer = client.consumer({ maxWaitMs: 20 });
      await consumer.assign({ topic: 'c', from: { offset: res[0]!.offset } });
      const values: string[] = [];
      for await (const b of consumer.batches()) {
        values.push(...b.records.map((r) => text(r.value)!));
        if (values.length >= 100) break;
      }
      expect(values).toEqual(Array.from({ length: 100 }, (_, i) => `${compression}-${i}`));
    }
  });

  it('keeps keyless records on one sticky partition per batch', async () => {
    broker.createTopic('s', 8);
    const producer = client.producer({ lingerMs: 20 });
    const res = await producer.sendBatch(
      Array.from({ length: 20 }, () => ({ topic: 's', value: 'x' })),
    );
    expect(new Set(res.map((r) => r.partition)).size).toBe(1);
    expect(res.map((r) => r.offset)).toEqual(Array.from({ length: 20 }, (_, i) => i));
  });

  it('sticks to a partition until a full batch went there: no tiny request per idle partition', async () => {
    broker.createTopic('st', 4);
    const producer = client.producer(); // adaptive batching
    await producer.connect(['st']);
    const tick = () => new Promise((r) => setImmediate(r));
    broker.holdProduce();
    const sends: Array<Promise<{ partition: number }>> = [];
    // One record per turn, as an application sending per event does.
    sends.push(producer.send({ topic: 'st', value: 'first' }));
    await tick();
    for (let i = 0; i < 10; i++) {
      sends.push(producer.send({ topic: 'st', value: `r${i}` }));
      await tick();
    }
    await new Promise((r) => setTimeout(r, 30));
    // The first record went alone (its partition was idle); the next ones follow it on the same
    // partition (one request per turn up to the partition's 5 in flight, then the last six
    // accumulate) instead of going to the three idle ones, one request each.
    expect(broker.produceFramesReceived).toBe(5);
    broker.releaseProduce();
    const res = await Promise.all(sends);
    expect(new Set(res.map((r) => r.partition)).size).toBe(1);
    expect(broker.produceRequests).toBe(6);
    // Past a full batch's worth the records move on: 40 records of ~100 B, 1,000-byte batches.
    const spread = client.producer({ batchBytesMax: 1_000 });
    const many = await spread.sendBatch(
      Array.from({ length: 40 }, () => ({ topic: 'st', value: 'v'.repeat(100) })),
    );
    expect(new Set(many.map((r) => r.partition)).size).toBeGreaterThan(1);
    await producer.close();
    await spread.close();
  });

  it('resends the same batch after a dropped connection and gets the original offsets (idempotence)', async () => {
    broker.createTopic('i', 1);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send({ topic: 'i', value: 'first' });
    broker.dropConnectionAfterProduce(1);
    const res = await producer.sendBatch([
      { topic: 'i', value: 'a' },
      { topic: 'i', value: 'b' },
    ]);
    expect(res.map((r) => r.offset)).toEqual([1, 2]);
    expect(broker.produceRequests).toBe(3);
    expect(broker.topics.get('i')!.partitions[0]!.nextOffset).toBe(3);
  });

  it('pipelines batches per partition and, after a failed one, resends the rest in order', async () => {
    broker.createTopic('pl', 1);
    const producer = client.producer({ lingerMs: 0, batchBytesMax: 200 });
    await producer.send({ topic: 'pl', value: 'warm' });
    const before = broker.produceRequests;
    // The first request fails (retriable); those pipelined behind it are refused as out of order.
    broker.failNextProduce(ErrorCode.REQUEST_TIMED_OUT);
    const values = Array.from({ length: 40 }, (_, i) => `v${String(i).padStart(2, '0')}`.repeat(5));
    const res = await producer.sendBatch(values.map((value) => ({ topic: 'pl', value })));
    expect(res.map((r) => r.offset)).toEqual(values.map((_, i) => i + 1));
    const batches = broker.topics.get('pl')!.partitions[0]!.batches;
    const stored = batches.flatMap((b) =>
      decodeRecordBatch(b.bytes).records.map((r) => text(r.value)),
    );
    expect(stored).toEqual(['warm', ...values]);
    // More requests than batches: at least one was in flight behind the failed one and resent.
    expect(broker.produceRequests - before).toBeGreaterThanOrEqual(batches.length - 1 + 2);
  });

  it('retries produce past the client retry budget until deliveryTimeoutMs, then times out', async () => {
    broker.createTopic('dt', 1);
    const producer = client.producer({ lingerMs: 0, deliveryTimeoutMs: 3_000 });
    await producer.send({ topic: 'dt', value: 'warm' });
    // Twice fastRetry's retriesMax (4): the delivery timeout, not the count, bounds produce.
    broker.failNextProduce(...Array(8).fill(ErrorCode.NOT_LEADER_OR_FOLLOWER));
    expect((await producer.send({ topic: 'dt', value: 'late' })).offset).toBe(1);

    const short = client.producer({ lingerMs: 0, deliveryTimeoutMs: 150 });
    broker.failNextProduce(...Array(10_000).fill(ErrorCode.REQUEST_TIMED_OUT));
    const started = Date.now();
    const err = await short.send({ topic: 'dt', value: 'never' }).catch((e: unknown) => e);
    const tookMs = Date.now() - started;
    broker.clearProduceFailures();
    expect(err).toMatchObject({ code: ErrorCode.REQUEST_TIMED_OUT });
    expect((err as Error).message).toContain('deliveryTimeoutMs 150');
    expect((err as Error).cause).toBeInstanceOf(StreamBusError);
    expect(tookMs).toBeGreaterThanOrEqual(140);
    expect(tookMs).toBeLessThan(2_000);
    expect(() => client.producer({ deliveryTimeoutMs: 0 })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
  });

  it('after a batch fails for good, the batches behind it are re-sequenced, not failed out of order', async () => {
    broker.createTopic('rs', 1);
    const producer = client.producer({ lingerMs: 0, batchBytesMax: 200 });
    await producer.send({ topic: 'rs', value: 'warm' });
    // The first pipelined request is refused for itself; those behind it meet the sequence gap.
    broker.failNextProduce(ErrorCode.INVALID_RECORD);
    const values = Array.from({ length: 30 }, (_, i) => `v${String(i).padStart(2, '0')}`.repeat(5));
    const results = await Promise.allSettled(
      values.map((value) => producer.send({ topic: 'rs', value })),
    );
    const failed = results.flatMap((r, i) => (r.status === 'rejected' ? [i] : []));
    expect(failed.length).toBeGreaterThan(0);
    // Only the refused batch (the first records) failed, with its own error.
    expect(failed).toEqual(failed.map((_, i) => i));
    for (const i of failed) {
      expect((results[i] as PromiseRejectedResult).reason).toMatchObject({
        code: ErrorCode.INVALID_RECORD,
      });
    }
    const stored = broker.topics
      .get('rs')!
      .partitions[0]!.batches.flatMap((b) => decodeRecordBatch(b.bytes).records)
      .map((r) => text(r.value));
    expect(stored).toEqual(['warm', ...values.slice(failed.length)]);
    const offsets = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value.offset] : []));
    expect(offsets).toEqual(offsets.map((_, i) => i + 1));
  });

  it('a batch that timed out unappended leaves no gap: the next batches are re-sequenced', async () => {
    broker.createTopic('gap', 1);
    const producer = client.producer({ lingerMs: 0, deliveryTimeoutMs: 400 });
    await producer.send({ topic: 'gap', value: 'warm' });
    broker.failNextProduce(...Array(10_000).fill(ErrorCode.REQUEST_TIMED_OUT));
    const lost = producer.send({ topic: 'gap', value: 'lost' }).catch((e: unknown) => e);
    await new Promise((r) => setTimeout(r, 200));
    const behind = producer.send({ topic: 'gap', value: 'behind' });
    expect(await lost).toMatchObject({ code: ErrorCode.REQUEST_TIMED_OUT });
    // 'behind' (sequence after 'lost', which the broker never appended) has ~200 ms left.
    broker.clearProduceFailures();
    expect((await behind).offset).toBe(1);
    expect((await producer.send({ topic: 'gap', value: 'after' })).offset).toBe(2);
    const stored = broker.topics
      .get('gap')!
      .partitions[0]!.batches.flatMap((b) => decodeRecordBatch(b.bytes).records)
      .map((r) => text(r.value));
    expect(stored).toEqual(['warm', 'behind', 'after']);
  });

  it('connect() takes the producer id and metadata before the first send', async () => {
    broker.createTopic('cn', 2);
    const producer = client.producer();
    await producer.connect(['cn']);
    await producer.connect();
    const started = performance.now();
    const sent = producer.send({ topic: 'cn', value: 'x' });
    // Ready: the record went straight into a batch (no metadata or producer-id wait).
    expect(producer.bufferedBytesNow).toBeGreaterThan(0);
    expect((await sent).offset).toBe(0);
    expect(performance.now() - started).toBeLessThan(5_000);
    await expect(producer.connect(['missing'])).rejects.toMatchObject({
      code: ErrorCode.TOPIC_NOT_FOUND,
    });
    await producer.close();
    await expect(producer.connect()).rejects.toMatchObject({ code: ErrorCode.CLIENT_CLOSED });
  });

  it('batches adaptively: the records of a turn go at once while fewer than 5 requests are out, then accumulate', async () => {
    broker.createTopic('ad', 1);
    const producer = client.producer(); // default: no lingerMs
    await producer.send({ topic: 'ad', value: 'warm' });
    const tick = () => new Promise((r) => setImmediate(r));
    broker.holdProduce();
    const before = broker.produceFramesReceived;
    const sends: Promise<unknown>[] = [];
    const turn = async (n: number) => {
      for (let i = 0; i < 3; i++) sends.push(producer.send({ topic: 'ad', value: `t${n}-${i}` }));
      await tick();
    };
    // The partition is idle: the first turn's records go at the end of that turn.
    await turn(0);
    for (let i = 0; i < 500 && broker.produceFramesReceived === before; i++) {
      await new Promise((r) => setTimeout(r, 2));
    }
    expect(broker.produceFramesReceived - before).toBe(1);
    // While it is unanswered, the next four turns go too (5 in flight), and the six after
    // them accumulate into one batch.
    for (let n = 1; n <= 10; n++) await turn(n);
    await new Promise((r) => setTimeout(r, 30));
    expect(broker.produceFramesReceived - before).toBe(5);
    broker.releaseProduce();
    const res = (await Promise.all(sends)) as Array<{ offset: number }>;
    expect(res.map((r) => r.offset)).toEqual(sends.map((_, i) => i + 1));
    // The 18 accumulated records went as one request once a request was answered.
    expect(broker.produceFramesReceived - before).toBe(6);
    const sizes = broker.topics
      .get('ad')!
      .partitions[0]!.batches.map((b) => decodeRecordBatch(b.bytes).records.length);
    expect(sizes).toEqual([1, 3, 3, 3, 3, 3, 18]);
  });

  it('batches adaptively: a burst of 1,000 in one turn leaves as overlapping requests, not one', async () => {
    broker.createTopic('burst', 1);
    const producer = client.producer(); // default: no lingerMs
    await producer.send({ topic: 'burst', value: 'warm' });
    broker.holdProduce();
    const before = broker.produceFramesReceived;
    // A publish loop's window: 1,000 send() promises appended in one turn.
    const sends = Array.from({ length: 1000 }, (_, i) =>
      producer.send({ topic: 'burst', value: `b${i}` }),
    );
    for (let i = 0; i < 500 && broker.produceFramesReceived - before < 5; i++) {
      await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 30));
    // Five requests are out at once before any answer (split at 64, then at half the volume
    // seen so far), not one request carrying the whole window; the rest waits for an answer.
    expect(broker.produceFramesReceived - before).toBe(5);
    broker.releaseProduce();
    const res = await Promise.all(sends);
    expect(res.map((r) => r.offset)).toEqual(sends.map((_, i) => i + 1));
    const sizes = broker.topics
      .get('burst')!
      .partitions[0]!.batches.map((b) => decodeRecordBatch(b.bytes).records.length);
    expect(sizes).toEqual([1, 64, 64, 64, 96, 144, 568]);
    await producer.close();
  });

  it('lingerMs: a batch that cannot go when its linger ends keeps filling until it can', async () => {
    broker.createTopic('lg', 1);
    const producer = client.producer({ lingerMs: 0 }); // idempotent: 5 requests in flight
    await producer.send({ topic: 'lg', value: 'warm' });
    const tick = () => new Promise((r) => setImmediate(r));
    broker.holdProduce();
    const before = broker.produceFramesReceived;
    const sends: Promise<unknown>[] = [];
    for (let n = 0; n < 8; n++) {
      for (let i = 0; i < 3; i++) sends.push(producer.send({ topic: 'lg', value: `t${n}-${i}` }));
      await tick();
    }
    for (let i = 0; i < 500 && broker.produceFramesReceived - before < 5; i++) {
      await new Promise((r) => setTimeout(r, 2));
    }
    await new Promise((r) => setTimeout(r, 30));
    // Five turns went (the in-flight bound); the last three turns wait in one batch.
    expect(broker.produceFramesReceived - before).toBe(5);
    broker.releaseProduce();
    const res = (await Promise.all(sends)) as Array<{ offset: number }>;
    expect(res.map((r) => r.offset)).toEqual(sends.map((_, i) => i + 1));
    const sizes = broker.topics
      .get('lg')!
      .partitions[0]!.batches.map((b) => decodeRecordBatch(b.bytes).records.length);
    expect(sizes).toEqual([1, 3, 3, 3, 3, 3, 9]);
    await producer.close();
  });

  it('adaptive batching: a 1,000 window through dropped connections and refused requests keeps order, no duplicates', async () => {
    broker.createTopic('wr', 1);
    const producer = client.producer(); // defaults: adaptive batching, idempotent, acks=all
    await producer.send({ topic: 'wr', value: 'warm' });
    const total = 6_000;
    const values = Array.from({ length: total }, (_, i) => `r${i}`);
    const window: Array<Promise<{ offset: number }>> = [];
    const offsets: number[] = [];
    for (let i = 0; i < total; i++) {
      if (window.length === 1000) offsets.push((await window.shift()!).offset);
      // Mid-stream, while requests overlap: an appended request whose answer is lost, and a
      // retriable refusal (the requests pipelined behind each fail out of order and are resent).
      if (i === 2_000) broker.dropConnectionAfterProduce(1);
      if (i === 4_000) broker.failNextProduce(ErrorCode.REQUEST_TIMED_OUT);
      window.push(producer.send({ topic: 'wr', value: values[i]! }));
    }
    for (const r of await Promise.all(window)) offsets.push(r.offset);
    expect(offsets).toEqual(values.map((_, i) => i + 1));
    const stored = broker.topics
      .get('wr')!
      .partitions[0]!.batches.flatMap((b) =>
        decodeRecordBatch(b.bytes).records.map((r) => text(r.value)),
      );
    expect(stored).toEqual(['warm', ...values]);
    await producer.close();
  });

  it('a per-record send() loop with 1,000 outstanding sends few large requests, not tiny ones', async () => {
    broker.createTopic('win', 4);
    const producer = client.producer(); // defaults: adaptive batching, idempotent, acks=all
    await producer.send({ topic: 'win', value: 'warm' });
    const before = broker.produceRequests;
    const total = 20_000;
    const window: Array<Promise<{ partition: number; offset: number }>> = [];
    const results: Array<{ partition: number; offset: number }> = [];
    for (let i = 0; i < total; i++) {
      if (window.length === 1000) results.push(await window.shift()!);
      window.push(producer.send({ topic: 'win', value: `v${i}` }));
    }
    results.push(...(await Promise.all(window)));
    const requests = broker.produceRequests - before;
    // A few overlapping requests per window round (adaptive batching splits a round at the
    // records in flight: 64, 64, 128, 256, ...); tiny requests would be thousands.
    expect(total / requests).toBeGreaterThanOrEqual(125);
    expect(total / requests).toBeLessThanOrEqual(500);
    // Every record got its own offset: per partition, offsets are distinct and contiguous.
    const byPartition = new Map<number, number[]>();
    for (const r of results)
      byPartition.set(r.partition, [...(byPartition.get(r.partition) ?? []), r.offset]);
    let counted = 0;
    for (const offsets of byPartition.values()) {
      const sorted = [...offsets].sort((a, b) => a - b);
      expect(new Set(sorted).size).toBe(sorted.length);
      expect(sorted[sorted.length - 1]! - sorted[0]!).toBe(sorted.length - 1);
      counted += sorted.length;
    }
    expect(counted).toBe(total);
    await producer.close();
  });

  it('send() resolves each record of a batch with its own offset, slow and fast path alike', async () => {
    broker.createTopic('mix', 1);
    const producer = client.producer({ lingerMs: 200 });
    // No metadata yet: these three take the slow path; the next three the fast one, into the
    // same open batch (the linger keeps it open).
    const slow = [0, 1, 2].map((i) => producer.send({ topic: 'mix', value: `s${i}` }));
    await producer.connect(['mix']);
    await new Promise((r) => setTimeout(r, 20));
    const fast = [0, 1, 2].map((i) => producer.send({ topic: 'mix', value: `f${i}` }));
    const res = await Promise.all([...slow, ...fast]);
    expect(res.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(broker.produceRequests).toBe(1);
    await producer.close();
  });

  it('retries retriable partition errors and fails fast on others', async () => {
    broker.createTopic('r', 1);
    const producer = client.producer({ lingerMs: 0 });
    broker.failNextProduce(ErrorCode.NOT_LEADER_OR_FOLLOWER, ErrorCode.REQUEST_TIMED_OUT);
    expect((await producer.send({ topic: 'r', value: 'x' })).offset).toBe(0);
    broker.failNextProduce(ErrorCode.INVALID_RECORD);
    const err = await producer.send({ topic: 'r', value: 'y' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamBusError);
    expect((err as StreamBusError).code).toBe(ErrorCode.INVALID_RECORD);
    expect(broker.produceRequests).toBe(4);
  });

  it('fails a send to an unknown topic at once, not retriable (unknown-topic.test.ts has more)', async () => {
    const producer = client.producer();
    await expect(producer.send({ topic: 'nope', value: 'x' })).rejects.toMatchObject({
      code: ErrorCode.TOPIC_NOT_FOUND,
      retriable: false,
    });
  });

  it('acks=0 sends without answers; flush and close settle everything', async () => {
    broker.createTopic('z', 1);
    const producer = client.producer({ acks: 0, lingerMs: 1000 });
    const p = producer.send({ topic: 'z', value: 'x' });
    await producer.flush();
    expect(await p).toEqual({ topic: 'z', partition: 0, offset: -1 });
    await producer.close();
    await expect(producer.send({ topic: 'z', value: 'y' })).rejects.toMatchObject({
      code: ErrorCode.CLIENT_CLOSED,
    });
    await new Promise((r) => setTimeout(r, 20));
    expect(broker.topics.get('z')!.partitions[0]!.nextOffset).toBe(1);
  });

  it('bounds the buffer: senders wait for space and still keep order', async () => {
    broker.createTopic('b', 1);
    const producer = client.producer({ bufferBytesMax: 2_000, batchBytesMax: 1_000, lingerMs: 1 });
    const res = await Promise.all(
      Array.from({ length: 300 }, (_, i) => producer.send({ topic: 'b', value: `value-${i}` })),
    );
    expect(res.map((r) => r.offset)).toEqual(Array.from({ length: 300 }, (_, i) => i));
    expect(producer.bufferedBytesNow).toBe(0);
  });

  it('rejects bad options and oversized records with typed errors', async () => {
    broker.createTopic('o', 1);
    expect(() => client.producer({ acks: 2 as 1 })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_REQUIRED_ACKS }),
    );
    expect(() => client.producer({ compression: 'brotli' as 'gzip' })).toThrow(
      expect.objectContaining({ code: ErrorCode.UNSUPPORTED_COMPRESSION_TYPE }),
    );
    const producer = client.producer({ recordBytesMax: 100 });
    await expect(producer.send({ topic: 'o', value: 'x'.repeat(500) })).rejects.toMatchObject({
      code: ErrorCode.MESSAGE_TOO_LARGE,
    });
    await expect(producer.send({ topic: 'o', value: 'ok', partition: 5 })).rejects.toMatchObject({
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    });
    expect((await producer.send({ topic: 'o', value: 'ok' })).offset).toBe(0);
  });

  it('consumer: skips control batches and records below the position inside a batch', async () => {
    broker.createTopic('ctl', 1);
    const producer = client.producer({ lingerMs: 50 });
    await Promise.all([0, 1].map((i) => producer.send({ topic: 'ctl', value: `v${i}` })));
    // A transaction marker at offset 2, stored as the broker would store it.
    const part = broker.topics.get('ctl')!.partitions[0]!;
    const marker = encodeRecordBatch([{ key: Buffer.from([0, 0, 0, 1]), value: null }], {
      baseOffset: part.nextOffset,
      isControl: true,
      isTransactional: true,
    });
    part.batches.push({
      baseOffset: part.nextOffset,
      lastOffset: part.nextOffset,
      maxTimestamp: Date.now(),
      bytes: marker,
    });
    part.nextOffset++;
    await producer.send({ topic: 'ctl', value: 'v3' });
    const consumer = client.consumer({ maxWaitMs: 30 });
    await consumer.assign({ topic: 'ctl', from: { offset: 1 } });
    const got: Array<[number, string | null]> = [];
    while (got.length < 2) {
      for (const b of await consumer.poll()) {
        got.push(...b.records.map((r): [number, string | null] => [r.offset, text(r.value)]));
      }
    }
    expect(got).toEqual([
      [1, 'v1'],
      [3, 'v3'],
    ]);
    expect(consumer.assignment()[0]!.position).toBe(4);
  });

  it('consumer records(): in order across polls, concurrent next() calls, close() ends it', async () => {
    broker.createTopic('it', 1);
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 7; i++) await producer.send({ topic: 'it', value: `r${i}` });
    const consumer = client.consumer({ maxWaitMs: 30, maxPollRecords: 2 });
    await consumer.assign({ topic: 'it', from: 'earliest' });
    const it = consumer.records();
    // Three calls at once (a poll in progress): they resolve in order, nothing lost or repeated.
    const first = await Promise.all([it.next(), it.next(), it.next()]);
    expect(
      first.map((r) => (r.done ? null : [r.value.topic, r.value.partition, r.value.offset])),
    ).toEqual([
      ['it', 0, 0],
      ['it', 0, 1],
      ['it', 0, 2],
    ]);
    const seen: string[] = [];
    for await (const r of it) {
      seen.push(text(r.value)!);
      if (seen.length === 4) break;
    }
    expect(seen).toEqual(['r3', 'r4', 'r5', 'r6']);
    // After break (return()), the iterator is done.
    expect((await it.next()).done).toBe(true);
    const other = consumer.records();
    const pending = other.next();
    await consumer.close();
    // The poll in flight returns its data or nothing; then the iterator ends.
    let r = await pending;
    while (!r.done) r = await other.next();
    expect(r.done).toBe(true);
  });

  it('consumer: maxPollRecords splits a round over polls; seek and pause drop the rest', async () => {
    broker.createTopic('mp', 1);
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 12; i++) await producer.send({ topic: 'mp', value: `m${i}` });
    const consumer = client.consumer({ maxWaitMs: 30, maxPollRecords: 3 });
    await consumer.assign({ topic: 'mp', from: 'earliest' });
    const offsets = async (): Promise<number[]> =>
      (await consumer.poll()).flatMap((b) => b.records.map((r) => r.offset));
    expect(await offsets()).toEqual([0, 1, 2]);
    expect(consumer.assignment()[0]!.position).toBe(3);
    expect(await offsets()).toEqual([3, 4, 5]);
    // Paused and resumed: the undelivered rest is dropped and fetched again, nothing skipped.
    consumer.pause('mp');
    consumer.resume('mp');
    expect(await offsets()).toEqual([6, 7, 8]);
    consumer.seek('mp', 0, 1);
    expect(await offsets()).toEqual([1, 2, 3]);
    const rest: number[] = [];
    while (rest.length < 8) rest.push(...(await offsets()));
    expect(rest).toEqual([4, 5, 6, 7, 8, 9, 10, 11]);
    expect(consumer.assignment()[0]!.position).toBe(12);
    expect(() => client.consumer({ maxPollRecords: 0 })).toThrow(/maxPollRecords/);
  });

  it('consumer prefetch: a seek after a prefetched round delivers from the new position', async () => {
    broker.createTopic('pf', 1);
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 5; i++) await producer.send({ topic: 'pf', value: `a${i}` });
    const consumer = client.consumer({ maxWaitMs: 30 });
    await consumer.assign({ topic: 'pf', from: 'earliest' });
    expect((await consumer.poll()).flatMap((b) => b.records.map((r) => r.offset))).toEqual([
      0, 1, 2, 3, 4,
    ]);
    // The next round (from offset 5) is already in flight; these records may land in it.
    for (let i = 5; i < 8; i++) await producer.send({ topic: 'pf', value: `a${i}` });
    consumer.seek('pf', 0, 2);
    const offsets: number[] = [];
    while (offsets.length < 6) {
      for (const b of await consumer.poll()) offsets.push(...b.records.map((r) => r.offset));
    }
    expect(offsets).toEqual([2, 3, 4, 5, 6, 7]);
    expect(consumer.assignment()[0]!.position).toBe(8);
  });

  it('consumer: latest, timestamp, seek, pause and resume', async () => {
    broker.createTopic('c', 2);
    const producer = client.producer({ lingerMs: 0 });
    for (let i = 0; i < 5; i++)
      await producer.send({ topic: 'c', partition: 0, value: `p0-${i}`, timestamp: 100 * i });
    const consumer = client.consumer({ maxWaitMs: 30 });
    await consumer.assign({ topic: 'c', partitions: [0], from: { timestamp: 250 } });
    expect((await consumer.poll()).flatMap((b) => b.records.map((r) => text(r.value)))).toEqual([
      'p0-3',
      'p0-4',
    ]);
    expect(consumer.lag('c', 0)).toBe(0);
    consumer.seek('c', 0, 1);
    expect((await consumer.poll()).flatMap((b) => b.records.map((r) => r.offset))).toEqual([
      1, 2, 3, 4,
    ]);
    await consumer.assign({ topic: 'c', partitions: [1], from: 'latest' });
    expect(await consumer.poll()).toEqual([]);
    consumer.pause('c', [1]);
    await producer.send({ topic: 'c', partition: 1, value: 'p1-0' });
    expect(await consumer.poll()).toEqual([]);
    consumer.resume('c', [1]);
    const got = await consumer.poll();
    expect(got.map((b) => [b.partition, b.records.map((r) => text(r.value))])).toEqual([
      [1, ['p1-0']],
    ]);
    await expect(consumer.assign({ topic: 'c', partitions: [9] })).rejects.toMatchObject({
      code: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
    });
    expect(() => consumer.seek('c', 0, -1)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
  });

  it('consumer: long-poll returns as soon as a record arrives; offset out of range resets', async () => {
    broker.createTopic('l', 1);
    const consumer = client.consumer({ maxWaitMs: 5_000 });
    await consumer.assign({ topic: 'l', from: { offset: 99 } });
    // Out of range -> reset to earliest (0); then a long-poll that a produce ends early.
    expect(await consumer.poll()).toEqual([]);
    expect(consumer.assignment()[0]!.position).toBeNull();
    const started = Date.now();
    const polled = (async () => {
      for (;;) {
        const b = await consumer.poll();
        if (b.length > 0) return b;
      }
    })();
    setTimeout(() => void client.producer().send({ topic: 'l', value: 'wake' }), 50);
    const b = await polled;
    expect(text(b[0]!.records[0]!.value)).toBe('wake');
    expect(Date.now() - started).toBeLessThan(4_000);
  });

  it('reconnects after the broker drops every connection', async () => {
    broker.createTopic('d', 1);
    const producer = client.producer({ lingerMs: 0 });
    await producer.send({ topic: 'd', value: '1' });
    broker.dropAllConnections();
    expect((await producer.send({ topic: 'd', value: '2' })).offset).toBe(1);
  });
});

describe('client', () => {
  it('rejects a malformed bootstrap address', () => {
    expect(() => new StreamBusClient({ bootstrap: 'localhost' })).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
  });

  it('fails with NETWORK_EXCEPTION when no broker listens', async () => {
    const port = broker.port;
    await broker.close();
    const c = new StreamBusClient({
      bootstrap: `127.0.0.1:${port}`,
      retry: { retriesMax: 1, backoffInitialMs: 1, backoffMaxMs: 1 },
    });
    await expect(c.admin().listTopics()).rejects.toMatchObject({
      code: ErrorCode.NETWORK_EXCEPTION,
    });
    // A first send waits for the producer id under the retry policy, not the 120 s delivery
    // timeout; so does connect().
    const producer = c.producer();
    const started = Date.now();
    await expect(producer.send({ topic: 't', value: 'x' })).rejects.toMatchObject({
      code: ErrorCode.NETWORK_EXCEPTION,
    });
    await expect(producer.connect()).rejects.toMatchObject({ code: ErrorCode.NETWORK_EXCEPTION });
    expect(Date.now() - started).toBeLessThan(5_000);
    await c.close();
  });
});
