// kafkajs 2.2.4 against the Kafka listener of an in-process broker on the cluster path (a
// cluster of one): admin create/delete topics, produce with every codec
// kafkajs can compress with (gzip built in; snappy, lz4 and zstd through codecs registered here
// on top of the protocol package's own compressors), idempotent produce, consume from
// earliest, latest and a timestamp, and records crossing protocols byte-identical (kafkajs ->
// native SDK, native SDK -> kafkajs).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Broker } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { CompressionTypes, Kafka, logLevel } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  kafkajsCodecs,
  nativeValues,
  startKafkaBroker,
  withDroppingProxy,
} from './kafka-testing.js';

describe('kafkajs against the Kafka listener', () => {
  let broker: Broker;
  let dir: string;
  let kafka: Kafka;
  let native: StreamBusClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-kafkajs-'));
    broker = await startKafkaBroker(dir);
    kafka = new Kafka({
      clientId: 'kafkajs-test',
      brokers: [`127.0.0.1:${broker.kafkaAddress!.port}`],
      logLevel: logLevel.NOTHING,
      retry: { retries: 8, initialRetryTime: 50, maxRetryTime: 500 },
    });
    native = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
    kafkajsCodecs();
  });
  afterAll(async () => {
    await native?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates, lists and deletes topics', async () => {
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(await admin.createTopics({ topics: [{ topic: 'admin-t', numPartitions: 3 }] })).toBe(
        true,
      );
      // Already there: kafkajs answers false (TOPIC_ALREADY_EXISTS).
      expect(await admin.createTopics({ topics: [{ topic: 'admin-t', numPartitions: 3 }] })).toBe(
        false,
      );
      expect(await admin.listTopics()).toContain('admin-t');
      const md = await admin.fetchTopicMetadata({ topics: ['admin-t'] });
      expect(md.topics[0]!.partitions).toHaveLength(3);
      expect(md.topics[0]!.partitions.every((p) => p.leader === 1)).toBe(true);
      await admin.deleteTopics({ topics: ['admin-t'] });
      expect(await admin.listTopics()).not.toContain('admin-t');
    } finally {
      await admin.disconnect();
    }
  });
  const text = (u: Uint8Array | null) => (u === null ? null : Buffer.from(u).toString());

  async function nativeRead(topic: string, count: number, timeoutMs = 15_000) {
    const consumer = native.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic, from: 'earliest' });
    const out: Array<{
      partition: number;
      offset: number;
      timestamp: number;
      key: string | null;
      value: string | null;
      headers: string[];
    }> = [];
    const deadline = Date.now() + timeoutMs;
    try {
      while (out.length < count && Date.now() < deadline) {
        for (const b of await consumer.poll()) {
          for (const r of b.records) {
            out.push({
              partition: b.partition,
              offset: r.offset,
              timestamp: r.timestamp,
              key: text(r.key),
              value: text(r.value),
              headers: r.headers.map((h) => `${h.key}=${text(h.value)}`),
            });
          }
        }
      }
    } finally {
      await consumer.close();
    }
    return out;
  }

  async function createTopic(topic: string | string[], numPartitions: number) {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const names = typeof topic === 'string' ? [topic] : topic;
      await admin.createTopics({
        topics: names.map((t) => ({ topic: t, numPartitions })),
        waitForLeaders: true,
      });
    } finally {
      await admin.disconnect();
    }
  }

  it('produces with every codec (acks=all); the native SDK reads the records unchanged', async () => {
    const codecs = kafkajsCodecs();
    const producer = kafka.producer({ allowAutoTopicCreation: false });
    await producer.connect();
    await createTopic(
      codecs.map((c) => `kjs-codec-${c}`),
      2,
    );
    try {
      for (const compression of codecs) {
        const topic = `kjs-codec-${compression}`;
        const messages = Array.from({ length: 300 }, (_, i) => ({
          key: i % 4 === 0 ? null : `k-${i % 13}`,
          value: `codec-${compression}-${i}-${'v'.repeat(i % 40)}`,
          headers: { idx: String(i) },
          timestamp: String(1_700_000_000_000 + i),
        }));
        const sent = await producer.send({ topic, acks: -1, compression, messages });
        expect(sent.every((r) => r.errorCode === 0)).toBe(true);
        const got = await nativeRead(topic, messages.length);
        expect(got).toHaveLength(messages.length);
        const byIdx = new Map(got.map((r) => [Number(r.headers[0]!.split('=')[1]), r]));
        for (const [i, m] of messages.entries()) {
          const r = byIdx.get(i)!;
          expect(r.value).toBe(m.value);
          expect(r.key).toBe(m.key);
          expect(r.timestamp).toBe(Number(m.timestamp));
        }
      }
    } finally {
      await producer.disconnect();
    }
    expect(codecs).toContain(CompressionTypes.LZ4);
  });

  it('an idempotent producer gets a producer id and writes each record once', async () => {
    const topic = 'kjs-idempotent';
    await createTopic(topic, 1);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    try {
      for (let i = 0; i < 5; i++) {
        await producer.send({
          topic,
          acks: -1,
          messages: Array.from({ length: 20 }, (_, j) => ({ value: `idem-${i}-${j}` })),
        });
      }
    } finally {
      await producer.disconnect();
    }
    const got = await nativeRead(topic, 100);
    expect(got.map((r) => r.value)).toEqual(
      Array.from({ length: 100 }, (_, n) => `idem-${Math.floor(n / 20)}-${n % 20}`),
    );
    // Consecutive offsets: no batch was written twice. (On the cluster path the log may start
    // with the leader's term-start control batch, so the first record's offset can be above 0.)
    const base = got[0]!.offset;
    expect(got.map((r) => r.offset)).toEqual(Array.from({ length: 100 }, (_, n) => base + n));
  });

  it('an idempotent producer retries across a dropped connection; each record is stored once', async () => {
    // A broker of its own that advertises a proxy, so kafkajs's produce connection runs through
    // it; the proxy forwards a Produce, lets the broker write it, and drops the answer.
    await withDroppingProxy(async ({ proxy, native: pnative }) => {
      await pnative.admin().createTopic({ name: 'kjs-drop', partitions: 1 });
      const k = new Kafka({
        clientId: 'kafkajs-drop',
        brokers: [`127.0.0.1:${proxy.port}`],
        logLevel: logLevel.NOTHING,
        retry: { retries: 8, initialRetryTime: 50, maxRetryTime: 500 },
      });
      const producer = k.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      const values = Array.from({ length: 4 }, (_, i) => `drop-${i}`);
      try {
        for (const [i, value] of values.entries()) {
          if (i === 1) proxy.dropNextProduce();
          await producer.send({ topic: 'kjs-drop', acks: -1, messages: [{ value }] });
        }
      } finally {
        await producer.disconnect();
      }
      expect(proxy.dropped).toBe(1);
      expect(await nativeValues(pnative, 'kjs-drop', values.length)).toEqual(values);
    });
  });

  it('lists offsets: earliest, latest and by timestamp', async () => {
    const topic = 'kjs-offsets';
    await createTopic(topic, 1);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({
      topic,
      acks: -1,
      messages: Array.from({ length: 10 }, (_, i) => ({
        value: `t-${i}`,
        timestamp: String(1_800_000_000_000 + i * 1000),
      })),
    });
    await producer.disconnect();
    const base = (await nativeRead(topic, 10))[0]!.offset;
    const admin = kafka.admin();
    await admin.connect();
    try {
      const latest = await admin.fetchTopicOffsets(topic);
      expect(latest).toEqual([
        { partition: 0, offset: String(base + 10), high: String(base + 10), low: '0' },
      ]);
      // The first record at or after the time: the sixth.
      const byTime = await admin.fetchTopicOffsetsByTimestamp(topic, 1_800_000_000_000 + 4500);
      expect(byTime).toEqual([{ partition: 0, offset: String(base + 5) }]);
      expect(await admin.fetchTopicOffsets(topic)).toHaveLength(1); // the connection still works
    } finally {
      await admin.disconnect();
    }
  });

  it('consumes from earliest, latest and a timestamp', async () => {
    const topic = 'kjs-consume';
    await createTopic(topic, 1);
    const producer = kafka.producer();
    await producer.connect();
    const sendValues = (values: string[], timestamp?: number) =>
      producer.send({
        topic,
        acks: -1,
        messages: values.map((value, i) => ({
          value,
          ...(timestamp === undefined ? {} : { timestamp: String(timestamp + i) }),
        })),
      });
    const early = Array.from({ length: 10 }, (_, i) => `early-${i}`);
    await sendValues(early, 1_700_000_000_000);
    const late = Array.from({ length: 5 }, (_, i) => `late-${i}`);
    await sendValues(late, 1_700_000_100_000);
    /** A consumer in its own group; `start` runs once it is running, until `want` arrived. */
    const consume = async (
      groupId: string,
      fromBeginning: boolean,
      want: number,
      start: (c: ReturnType<Kafka['consumer']>, got: string[]) => Promise<void> = async () => {},
    ) => {
      const c = kafka.consumer({ groupId, maxWaitTimeInMs: 100, heartbeatInterval: 300 });
      const got: string[] = [];
      await c.connect();
      try {
        await c.subscribe({ topic, fromBeginning });
        await c.run({
          eachMessage: async ({ message }) => void got.push(message.value!.toString()),
        });
        await start(c, got);
        const deadline = Date.now() + 20_000;
        while (got.length < want && Date.now() < deadline) {
          await new Promise((r) => setTimeout(r, 50));
        }
      } finally {
        await c.disconnect();
      }
      return got;
    };
    try {
      expect(await consume('kjs-earliest', true, 15)).toEqual([...early, ...late]);
      // Latest: none of the records above; records produced after the start (one now and then,
      // until the first arrives however long the join takes) are read.
      const fresh: string[] = [];
      const latest = await consume('kjs-latest', false, 1, async (_, got) => {
        for (let i = 0; got.length === 0 && i < 60; i++) {
          fresh.push(`fresh-${i}`);
          await sendValues([fresh.at(-1)!]);
          await new Promise((r) => setTimeout(r, 250));
        }
      });
      expect(latest.length).toBeGreaterThan(0);
      expect(latest.every((v) => fresh.includes(v))).toBe(true);
      // A timestamp: the offset ListOffsets gives for it, then a seek there.
      const admin = kafka.admin();
      await admin.connect();
      const [at] = await admin.fetchTopicOffsetsByTimestamp(topic, 1_700_000_050_000);
      await admin.disconnect();
      const fromTime = await consume('kjs-time', false, late.length + fresh.length, async (c) => {
        c.seek({ topic, partition: 0, offset: at!.offset });
      });
      expect(fromTime).toEqual([...late, ...fresh]);
    } finally {
      await producer.disconnect();
    }
  });

  it('native SDK records read back through Kafka Fetch by kafkajs admin offsets match', async () => {
    const topic = 'native-to-kafka';
    await native.admin().createTopic({ name: topic, partitions: 1 });
    const producer = native.producer({ lingerMs: 1 });
    await producer.sendBatch(
      Array.from({ length: 50 }, (_, i) => ({ topic, key: `n${i}`, value: `native-${i}` })),
    );
    await producer.close();
    const admin = kafka.admin();
    await admin.connect();
    try {
      const offsets = await admin.fetchTopicOffsets(topic);
      const base = (await nativeRead(topic, 1))[0]!.offset;
      expect(offsets[0]!.high).toBe(String(base + 50));
      const cfg = await admin.describeConfigs({
        resources: [{ type: 2, name: topic }],
        includeSynonyms: false,
      });
      expect(cfg.resources[0]!.errorCode).toBe(0);
      expect(cfg.resources[0]!.configEntries.map((c) => c.configName)).toContain('retention.ms');
    } finally {
      await admin.disconnect();
    }
  });

  /** One record to `partition` of `topic` with a fresh kafkajs producer (its own metadata). */
  async function kafkaProduceTo(topic: string, partition: number) {
    const p = kafka.producer();
    await p.connect();
    try {
      const [meta] = await p.send({ topic, acks: -1, messages: [{ value: 'new', partition }] });
      return meta!;
    } finally {
      await p.disconnect();
    }
  }

  it('admin: alterConfigs, deleteTopicRecords, describeCluster, createPartitions', async () => {
    const topic = 'kjs-admin';
    await createTopic(topic, 1);
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic, acks: -1, messages: [{ value: 'a' }, { value: 'b' }] });
    const second = await producer.send({ topic, acks: -1, messages: [{ value: 'c' }] });
    await producer.disconnect();
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.alterConfigs({
        validateOnly: false,
        resources: [
          { type: 2, name: topic, configEntries: [{ name: 'retention.ms', value: '120000' }] },
        ],
      });
      const cfg = await admin.describeConfigs({
        resources: [{ type: 2, name: topic, configNames: ['retention.ms'] }],
        includeSynonyms: false,
      });
      expect(cfg.resources[0]!.configEntries).toMatchObject([
        { configName: 'retention.ms', configValue: '120000', isDefault: false },
      ]);
      const at = Number(second[0]!.baseOffset);
      await admin.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: String(at) }] });
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets[0]!.low).toBe(String(at));
      const cluster = await admin.describeCluster();
      expect(cluster.brokers).toEqual([
        { nodeId: 1, host: '127.0.0.1', port: broker.kafkaAddress!.port },
      ]);
      expect(cluster.controller).toBe(1);
      // createPartitions adds partitions (the controller's add-partitions record); a count that
      // does not grow is Kafka's INVALID_PARTITIONS.
      await admin.createPartitions({ topicPartitions: [{ topic, count: 3 }] });
      const grown = await admin.fetchTopicMetadata({ topics: [topic] });
      expect(grown.topics[0]!.partitions.map((p) => p.partitionId).sort()).toEqual([0, 1, 2]);
      const sent = await kafkaProduceTo(topic, 2);
      expect(sent.partition).toBe(2);
      await expect(
        admin.createPartitions({ topicPartitions: [{ topic, count: 2 }] }),
      ).rejects.toMatchObject({ type: 'INVALID_PARTITIONS' });
    } finally {
      await admin.disconnect();
    }
  });
});
