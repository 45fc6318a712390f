// @platformatic/kafka against the Kafka listener of an in-process cluster-path broker: admin
// creates a topic, the producer sends (plain, idempotent, compressed) with acks=-1, and the
// native SDK reads the records unchanged; then every codec, group consumers from earliest,
// latest, a timestamp and the committed (reset) offsets, the group admin calls and topic delete;
// an idempotent retry across a dropped connection; a group of 3 with a member leaving.
// @platformatic/kafka declares Node >= 22; on an older Node the one built-in it needs from 22,
// Promise.withResolvers, is provided here (a test shim, not a library change), so the client's
// own protocol code is what runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Broker, kafkaListener } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { zstdCanCompress } from '@streambus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nativeValues, startKafkaBroker, withDroppingProxy } from './kafka-testing.js';

kafkaListener.providePromiseWithResolvers();
const { Admin, Consumer, Producer, stringDeserializers, stringSerializers } = await import(
  '@platformatic/kafka'
);

describe('@platformatic/kafka against the Kafka listener', () => {
  let broker: Broker;
  let dir: string;
  let bootstrap: string[];
  let native: StreamBusClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-platformatic-'));
    broker = await startKafkaBroker(dir);
    bootstrap = [`127.0.0.1:${broker.kafkaAddress!.port}`];
    native = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.address.port}` });
  });
  afterAll(async () => {
    await native?.close();
    await broker?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a topic and produces (plain, idempotent, gzip); the native SDK reads it', async () => {
    const admin = new Admin({ clientId: 'plt', bootstrapBrokers: bootstrap });
    try {
      await admin.createTopics({ topics: ['plt'], partitions: 1, replicas: 1 });
      expect(await admin.listTopics()).toContain('plt');
    } finally {
      await admin.close();
    }
    const sent: string[] = [];
    for (const [n, options] of [
      ['plain', {}],
      ['idempotent', { idempotent: true }],
      ['gzip', { compression: 'gzip' as const }],
    ] as const) {
      const producer = new Producer({
        clientId: `plt-${n}`,
        bootstrapBrokers: bootstrap,
        serializers: stringSerializers,
        acks: -1,
        ...options,
      });
      try {
        const messages = Array.from({ length: 50 }, (_, i) => ({
          topic: 'plt',
          key: `${n}-${i % 5}`,
          value: `${n} ${i}`,
        }));
        const r = await producer.send({ messages });
        expect(r.offsets?.[0]?.topic).toBe('plt');
        sent.push(...messages.map((m) => m.value));
      } finally {
        await producer.close();
      }
    }
    expect(await nativeValues(native, 'plt', sent.length, 15_000)).toEqual(sent);
  });

  it('an idempotent producer retries across a dropped connection; each record is stored once', async () => {
    // A broker of its own advertising a proxy that drops one Produce answer after the broker
    // wrote the batch (kafka-testing.ts).
    await withDroppingProxy(async ({ proxy, native: pnative }) => {
      await pnative.admin().createTopic({ name: 'plt-drop', partitions: 1 });
      const producer = new Producer({
        clientId: 'plt-drop',
        bootstrapBrokers: [`127.0.0.1:${proxy.port}`],
        serializers: stringSerializers,
        acks: -1,
        idempotent: true,
        retries: 5,
        retryDelay: 100,
      });
      const values = Array.from({ length: 4 }, (_, i) => `drop-${i}`);
      try {
        for (const [i, value] of values.entries()) {
          if (i === 1) proxy.dropNextProduce();
          await producer.send({ messages: [{ topic: 'plt-drop', value }] });
        }
      } finally {
        await producer.close();
      }
      expect(proxy.dropped).toBe(1);
      expect(await nativeValues(pnative, 'plt-drop', values.length)).toEqual(values);
    });
  });

  type Mode = 'earliest' | 'latest' | 'committed' | 'manual';

  /** A group consumer reading `topic` until `n` messages arrived (then it leaves the group). */
  async function groupConsume(
    groupId: string,
    topic: string,
    n: number,
    mode: Mode,
    extra: {
      offsets?: Array<{ topic: string; partition: number; offset: bigint }>;
      /** Called once consume() answered, with the count received so far (to produce then). */
      joined?: (received: () => number) => Promise<void>;
    } = {},
  ): Promise<string[]> {
    const consumer = new Consumer({
      groupId,
      clientId: `plt-${groupId}`,
      bootstrapBrokers: bootstrap,
      deserializers: stringDeserializers,
      maxWaitTime: 100,
    });
    const got: string[] = [];
    try {
      const stream = await consumer.consume({
        topics: [topic],
        mode,
        autocommit: 100,
        ...(extra.offsets ? { offsets: extra.offsets } : {}),
      });
      let resolve!: () => void;
      const done = new Promise<void>((r) => {
        resolve = r;
      });
      stream.on('data', (m: { value: string }) => {
        got.push(m.value);
        if (got.length >= n) resolve();
      });
      if (n === 0) resolve();
      await extra.joined?.(() => got.length);
      await Promise.race([done, new Promise((r) => setTimeout(r, 15_000))]);
      // Let the autocommit interval commit what was read.
      await new Promise((r) => setTimeout(r, 300));
      await stream.close();
    } finally {
      await consumer.close(true);
    }
    return got;
  }

  async function send(topic: string, values: string[], compression?: 'snappy' | 'lz4' | 'zstd') {
    const producer = new Producer({
      clientId: `plt-send-${compression ?? 'none'}`,
      bootstrapBrokers: bootstrap,
      serializers: stringSerializers,
      acks: -1,
      ...(compression ? { compression } : {}),
    });
    try {
      await producer.send({ messages: values.map((value) => ({ topic, value })) });
    } finally {
      await producer.close();
    }
  }

  it('every codec; group consumers from earliest, latest, a timestamp and reset offsets; group admin; topic delete', async () => {
    const admin = new Admin({ clientId: 'plt-admin', bootstrapBrokers: bootstrap });
    try {
      await admin.createTopics({ topics: ['pltg'], partitions: 1, replicas: 1 });
      // snappy and lz4 (the client's wasm codecs), zstd where this Node has it.
      const codecs = ['snappy', 'lz4', ...(zstdCanCompress ? ['zstd' as const] : [])] as const;
      const sent: string[] = [];
      for (const codec of codecs) {
        const values = Array.from({ length: 20 }, (_, i) => `${codec} ${i}`);
        await send('pltg', values, codec);
        sent.push(...values);
      }
      const before = BigInt(Date.now());
      await new Promise((r) => setTimeout(r, 20));
      const late = Array.from({ length: 10 }, (_, i) => `late ${i}`);
      await send('pltg', late);
      sent.push(...late);

      // From earliest: everything, byte-identical, in order.
      expect(await groupConsume('plt-g1', 'pltg', sent.length, 'earliest')).toEqual(sent);

      // From latest: nothing produced before it; a record produced now and then (until one
      // arrives, however long the consumer takes to start) is what it reads.
      const fresh: string[] = [];
      const latest = await groupConsume('plt-g2', 'pltg', 1, 'latest', {
        joined: async (received) => {
          for (let i = 0; received() === 0 && i < 50; i++) {
            fresh.push(`fresh ${i}`);
            await send('pltg', [fresh.at(-1)!]);
            await new Promise((r) => setTimeout(r, 200));
          }
        },
      });
      expect(latest.length).toBeGreaterThan(0);
      expect(fresh).toEqual(expect.arrayContaining(latest));
      expect(latest).toEqual(
        fresh.slice(fresh.indexOf(latest[0]!), fresh.indexOf(latest[0]!) + latest.length),
      );
      sent.push(...fresh);

      // From a timestamp: ListOffsets by time, then a manual start there.
      const probe = new Consumer({
        groupId: 'plt-probe',
        clientId: 'plt-probe',
        bootstrapBrokers: bootstrap,
      });
      let at: bigint;
      try {
        const offsets = await probe.listOffsets({ topics: ['pltg'], timestamp: before });
        at = offsets.get('pltg')![0]!;
      } finally {
        await probe.close(true);
      }
      const fromTime = await groupConsume('plt-g3', 'pltg', late.length + fresh.length, 'manual', {
        offsets: [{ topic: 'pltg', partition: 0, offset: at }],
      });
      expect(fromTime).toEqual([...late, ...fresh]);

      // The group admin calls see plt-g1 with its committed offset at the end.
      const groups = await admin.listGroups();
      expect([...groups.keys()]).toEqual(expect.arrayContaining(['plt-g1', 'plt-g2', 'plt-g3']));
      const described = await admin.describeGroups({ groups: ['plt-g1'] });
      expect(described.get('plt-g1')).toMatchObject({ id: 'plt-g1', state: 'Empty' });
      const committed = async () =>
        (await admin.listConsumerGroupOffsets({ groups: ['plt-g1'] }))[0]!.topics.find(
          (t) => t.name === 'pltg',
        )!.partitions[0]!.committedOffset;
      const end = await committed();
      expect(end).toBeGreaterThan(0n);

      // Reset plt-g1 to the first late record: a committed-mode consumer resumes there.
      await admin.alterConsumerGroupOffsets({
        groupId: 'plt-g1',
        topics: [{ name: 'pltg', partitionOffsets: [{ partition: 0, offset: at }] }],
      });
      expect(await committed()).toBe(at);
      expect(await groupConsume('plt-g1', 'pltg', late.length + fresh.length, 'committed')).toEqual(
        [...late, ...fresh],
      );

      await admin.deleteGroups({ groups: ['plt-g2'] });
      expect([...(await admin.listGroups()).keys()]).not.toContain('plt-g2');
      await admin.deleteTopics({ topics: ['pltg'] });
      expect(await admin.listTopics()).not.toContain('pltg');
    } finally {
      await admin.close();
    }
  }, 90_000);

  it('a group of 3 members, one leaves: no record lost, a new member resumes from the committed offsets', async () => {
    const topic = 'plt3';
    const admin = new Admin({ clientId: 'plt3-admin', bootstrapBrokers: bootstrap });
    try {
      await admin.createTopics({ topics: [topic], partitions: 3, replicas: 1 });
    } finally {
      await admin.close();
    }
    const producer = new Producer({
      clientId: 'plt3',
      bootstrapBrokers: bootstrap,
      serializers: stringSerializers,
      acks: -1,
    });
    const produce = (from: number, count: number) =>
      producer.send({
        messages: Array.from({ length: count }, (_, i) => ({
          topic,
          partition: (from + i) % 3,
          value: `v${from + i}`,
        })),
      });
    const members: Array<{ close: () => Promise<void>; seen: string[] }> = [];
    const join = async (name: string) => {
      const consumer = new Consumer({
        groupId: 'plt3-group',
        clientId: name,
        bootstrapBrokers: bootstrap,
        deserializers: stringDeserializers,
        maxWaitTime: 100,
        sessionTimeout: 10_000,
        rebalanceTimeout: 10_000,
        heartbeatInterval: 300,
      });
      const seen: string[] = [];
      const stream = await consumer.consume({
        topics: [topic],
        mode: 'committed',
        fallbackMode: 'earliest',
        autocommit: 100,
      });
      stream.on('data', (m: { value: string }) => seen.push(m.value));
      let closed = false;
      const member = {
        seen,
        close: async () => {
          if (closed) return;
          closed = true;
          await new Promise((r) => setTimeout(r, 300)); // one autocommit interval and more
          await stream.close();
          await consumer.close(true);
        },
      };
      members.push(member);
      return member;
    };
    const until = async (what: string, done: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!done()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const all = () => new Set(members.flatMap((m) => m.seen));
    const has = (from: number, to: number) => {
      const got = all();
      for (let i = from; i < to; i++) if (!got.has(`v${i}`)) return false;
      return true;
    };
    try {
      const [a, b, c] = [await join('m1'), await join('m2'), await join('m3')];
      await produce(0, 60);
      await until('the first 60 records', () => has(0, 60));
      await until('each member reading', () => [a, b, c].every((m) => m!.seen.length > 0));
      // m3 leaves: the other two take its partition and read what follows.
      await c!.close();
      await produce(60, 30);
      await until('records 60..90 after m3 left', () => has(60, 90));
      expect(c!.seen.every((v) => Number(v.slice(1)) < 60)).toBe(true);
      await a!.close();
      await b!.close();
      // A new member resumes from the committed offsets: only what is produced now.
      const d = await join('m4');
      await produce(90, 9);
      await until('records 90..99 by the new member', () =>
        [...Array(9).keys()].every((i) => d.seen.includes(`v${90 + i}`)),
      );
      expect(d.seen.filter((v) => Number(v.slice(1)) < 90)).toEqual([]);
      await d.close();
    } finally {
      await producer.close();
      for (const m of members) await m.close().catch(() => undefined);
    }
  }, 90_000);
});
