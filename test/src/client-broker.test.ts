// The SDK against real broker processes: codec round trips through producer and consumer, an
// idempotent resend after the connection drops between append and ack, and kill -9 of a broker
// while a client produces with acks=all (every acknowledged record must survive the restart).
import { type CompressionName, ErrorCode, StreamBusClient } from '@streambus/client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type BrokerProcess, DroppingProxy, removeDir, startBroker, tempDir } from './harness.js';

const text = (u: Uint8Array | null): string | null =>
  u === null ? null : Buffer.from(u).toString();
const fastRetry = {
  retriesMax: 6,
  backoffInitialMs: 20,
  backoffMaxMs: 200,
  totalTimeoutMs: 10_000,
};

async function consumeAll(
  client: StreamBusClient,
  topic: string,
  count: number,
  timeoutMs = 10_000,
) {
  const consumer = client.consumer({ maxWaitMs: 100 });
  await consumer.assign({ topic, from: 'earliest' });
  const out: Array<{
    partition: number;
    offset: number;
    key: string | null;
    value: string | null;
    headers: string[];
  }> = [];
  const deadline = Date.now() + timeoutMs;
  while (out.length < count && Date.now() < deadline) {
    for (const b of await consumer.poll()) {
      for (const r of b.records) {
        out.push({
          partition: b.partition,
          offset: r.offset,
          key: text(r.key),
          value: text(r.value),
          headers: r.headers.map((h) => `${h.key}=${text(h.value)}`),
        });
      }
    }
  }
  await consumer.close();
  return out;
}

describe('client against a real broker', () => {
  let broker: BrokerProcess;
  let dir: string;
  let client: StreamBusClient;

  beforeAll(async () => {
    dir = tempDir();
    broker = await startBroker(dir);
    client = new StreamBusClient({ bootstrap: broker.bootstrap, retry: fastRetry });
  });
  afterAll(async () => {
    await client?.close();
    await broker?.stop();
    removeDir(dir);
  });

  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  const codecs: CompressionName[] = ['none', 'gzip', 'snappy', 'lz4'];
  if (major > 22 || (major === 22 && minor >= 15)) codecs.push('zstd');

  it.each(codecs)('round-trips records compressed with %s', async (compression) => {
    const topic = `codec-${compression}`;
    await client.admin().createTopic({ name: topic, partitions: 2 });
    const producer = client.producer({ compression, lingerMs: 2 });
    const n = 400;
    const sent = await producer.sendBatch(
      Array.from({ length: n }, (_, i) => ({
        topic,
        key: i % 3 === 0 ? null : `key-${i % 17}`,
        value: `${compression}-value-${i}-${'x'.repeat(i % 50)}`,
        headers: { idx: String(i) },
      })),
    );
    const got = await consumeAll(client, topic, n);
    expect(got).toHaveLength(n);
    const byValue = new Map(got.map((r) => [r.value, r]));
    for (let i = 0; i < n; i++) {
      const r = byValue.get(`${compression}-value-${i}-${'x'.repeat(i % 50)}`);
      expect(r, `record ${i}`).toBeDefined();
      expect(r!.partition).toBe(sent[i]!.partition);
      expect(r!.offset).toBe(sent[i]!.offset);
      expect(r!.key).toBe(i % 3 === 0 ? null : `key-${i % 17}`);
      expect(r!.headers).toEqual([`idx=${i}`]);
    }
    await producer.close();
  });

  it('resends a batch whose ack was lost with the same sequence and gets the original offsets', async () => {
    const topic = 'idempotent-drop';
    await client.admin().createTopic({ name: topic, partitions: 1 });
    const proxy = new DroppingProxy({ host: '127.0.0.1', port: broker.port });
    await proxy.start();
    const viaProxy = new StreamBusClient({ bootstrap: proxy.bootstrap, retry: fastRetry });
    try {
      const producer = viaProxy.producer({ acks: 'all', lingerMs: 0 });
      const first = await producer.send({ topic, value: 'before' });
      // The first record follows the partition's first Raft term's no-op (a control batch at 0).
      const at = first.offset;
      expect(at).toBe(1);
      proxy.dropsLeft = 1;
      const res = await producer.sendBatch([
        { topic, value: 'a' },
        { topic, value: 'b' },
        { topic, value: 'c' },
      ]);
      expect(proxy.drops).toBe(1);
      expect(proxy.produceRequests).toBeGreaterThanOrEqual(3);
      expect(res.map((r) => r.offset)).toEqual([at + 1, at + 2, at + 3]);
      const after = await producer.send({ topic, value: 'after' });
      expect(after.offset).toBe(at + 4);
      const got = await consumeAll(client, topic, 5);
      expect(got.map((r) => [r.offset, r.value])).toEqual([
        [at, 'before'],
        [at + 1, 'a'],
        [at + 2, 'b'],
        [at + 3, 'c'],
        [at + 4, 'after'],
      ]);
    } finally {
      await viaProxy.close();
      await proxy.close();
    }
  });

  it('fails fast with typed errors: unknown topic, bad partition count', async () => {
    const admin = client.admin();
    await expect(admin.describeTopic('no-such-topic')).rejects.toMatchObject({
      code: ErrorCode.TOPIC_NOT_FOUND,
    });
    await expect(admin.createTopic({ name: 'zero', partitions: 0 })).rejects.toMatchObject({
      code: ErrorCode.INVALID_PARTITIONS,
    });
  });
});

describe('kill -9 with acks=all', () => {
  const cleanup: Array<() => Promise<unknown>> = [];
  afterEach(async () => {
    for (const f of cleanup.splice(0).reverse()) await f().catch(() => undefined);
  });

  it('loses no acknowledged record', async () => {
    const dir = tempDir();
    cleanup.push(async () => removeDir(dir));
    let broker = await startBroker(dir);
    cleanup.push(() => broker.kill9());
    const admin = new StreamBusClient({ bootstrap: broker.bootstrap, retry: fastRetry });
    await admin.admin().createTopic({ name: 'durable', partitions: 2 });
    await admin.close();

    const client = new StreamBusClient({
      bootstrap: broker.bootstrap,
      retry: { retriesMax: 1, backoffInitialMs: 10, backoffMaxMs: 10, totalTimeoutMs: 1_000 },
    });
    // Sends caught by the kill give up within a second (nothing restarts this broker in time).
    const producer = client.producer({ acks: 'all', lingerMs: 1, deliveryTimeoutMs: 1_000 });
    const acked = new Map<string, { partition: number; offset: number }>();
    let i = 0;
    let failures = 0;
    const inflight = new Set<Promise<void>>();
    const killAt = 600;
    // The broker is killed while the loop keeps sending: sends are in flight at the kill, and
    // the loop goes on until the kill has landed.
    let killed: Promise<void> | null = null;
    let killDone = false;
    let inflightAtKill = 0;
    while (!killDone && i < 50_000) {
      const value = `r-${i++}`;
      const p = producer.send({ topic: 'durable', key: value, value }).then(
        (m) => void acked.set(value, m),
        () => void failures++,
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (killed === null && acked.size >= killAt) {
        inflightAtKill = inflight.size;
        killed = broker.kill9().then(() => {
          killDone = true;
        });
      }
      if (inflight.size >= 50)
        await Promise.race(killed === null ? inflight : [killed, ...inflight]);
    }
    await killed;
    await Promise.allSettled([...inflight]);
    await client.close();
    const ackedBeforeRestart = new Map(acked);
    expect(ackedBeforeRestart.size).toBeGreaterThanOrEqual(killAt);
    expect(inflightAtKill).toBeGreaterThan(0);
    // Every send settled: acknowledged, or failed once its delivery timeout ran out.
    expect(ackedBeforeRestart.size + failures).toBe(i);

    broker = await startBroker(dir);
    const reader = new StreamBusClient({ bootstrap: broker.bootstrap, retry: fastRetry });
    cleanup.push(() => reader.close());
    const got = await consumeAll(reader, 'durable', ackedBeforeRestart.size, 15_000);
    const found = new Map(got.map((r) => [r.value!, r]));
    for (const [value, m] of ackedBeforeRestart) {
      const r = found.get(value);
      expect(r, `acknowledged ${value} is missing`).toBeDefined();
      expect([r!.partition, r!.offset]).toEqual([m.partition, m.offset]);
    }
  });
});
