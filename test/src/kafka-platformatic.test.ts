// @platformatic/kafka against the Kafka listener of an in-process cluster-path broker: admin
// creates a topic, the producer sends (plain, idempotent, compressed) with acks=-1, and the
// native SDK reads the records unchanged. @platformatic/kafka declares Node >= 22; on an older
// Node the one built-in it needs from 22, Promise.withResolvers, is provided here (a test shim,
// not a library change), so the client's own protocol code is what runs.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Broker, kafkaListener } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKafkaBroker } from './kafka-testing.js';

kafkaListener.providePromiseWithResolvers();
const { Admin, Producer, stringSerializers } = await import('@platformatic/kafka');

const text = (u: Uint8Array | null) => (u === null ? null : Buffer.from(u).toString());

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
    const consumer = native.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'plt', from: 'earliest' });
    const got: Array<string | null> = [];
    const deadline = Date.now() + 15_000;
    while (got.length < sent.length && Date.now() < deadline) {
      for (const b of await consumer.poll()) for (const r of b.records) got.push(text(r.value));
    }
    await consumer.close();
    expect(got).toEqual(sent);
  });
});
