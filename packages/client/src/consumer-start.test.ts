// Where a consumer starts: assign() without `from` uses autoOffsetReset ('earliest' unless set),
// so a newcomer reads a filled topic from its start; 'none' makes `from` required. And
// consumer.connect(): ready before the first poll, with 'latest' fixed at connect time.
import { ErrorCode } from '@streambus/protocol';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import type { Consumer } from './consumer.js';
import { FakeBroker } from './testing/fake-broker.js';

let broker: FakeBroker;
let client: StreamBusClient;
const fastRetry = { retriesMax: 2, backoffInitialMs: 5, backoffMaxMs: 20, totalTimeoutMs: 2_000 };

beforeEach(async () => {
  broker = await FakeBroker.start({ defaultPartitions: 1 });
  client = new StreamBusClient({ bootstrap: broker.bootstrap, retry: fastRetry });
  broker.createTopic('filled', 2);
  const producer = client.producer({ lingerMs: 0 });
  await producer.sendBatch(
    Array.from({ length: 6 }, (_, i) => ({ topic: 'filled', partition: i % 2, value: `v${i}` })),
  );
});

afterEach(async () => {
  await client.close();
  await broker.close();
});

/** Values polled within a few rounds (the fake broker answers a long-poll after maxWaitMs). */
async function pollValues(consumer: Consumer, rounds = 3): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < rounds; i++) {
    for (const b of await consumer.poll()) {
      for (const r of b.records) out.push(Buffer.from(r.value ?? []).toString());
    }
  }
  return out.sort();
}

describe('assign() default start', () => {
  it("is 'earliest' (autoOffsetReset's default): a newcomer reads what the topic holds", async () => {
    const consumer = client.consumer({ maxWaitMs: 20 });
    await consumer.assign({ topic: 'filled' });
    expect(await pollValues(consumer)).toEqual(['v0', 'v1', 'v2', 'v3', 'v4', 'v5']);
  });

  it("follows autoOffsetReset: 'latest' starts at the end", async () => {
    const consumer = client.consumer({ maxWaitMs: 20, autoOffsetReset: 'latest' });
    await consumer.assign({ topic: 'filled' });
    expect(await pollValues(consumer)).toEqual([]);
    expect(consumer.assignment().map((a) => a.position)).toEqual([3, 3]);
  });

  it("needs `from` when autoOffsetReset is 'none'", async () => {
    const consumer = client.consumer({ maxWaitMs: 20, autoOffsetReset: 'none' });
    await expect(consumer.assign({ topic: 'filled' })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      message: "assign.from: required when autoOffsetReset is 'none' (no default start position)",
    });
    await consumer.assign({ topic: 'filled', partitions: [1], from: { offset: 1 } });
    expect(await pollValues(consumer)).toEqual(['v3', 'v5']);
  });
});

describe('consumer.connect()', () => {
  it("resolves start positions now: 'latest' means from connect(), not from the first poll", async () => {
    const consumer = client.consumer({ maxWaitMs: 20 });
    await consumer.assign({ topic: 'filled', from: 'latest' });
    expect(consumer.assignment().map((a) => a.position)).toEqual([null, null]);
    await consumer.connect();
    expect(consumer.assignment().map((a) => a.position)).toEqual([3, 3]);
    await client.producer({ lingerMs: 0 }).send({ topic: 'filled', partition: 0, value: 'new' });
    expect(await pollValues(consumer)).toEqual(['new']);
  });

  it('without connect(), a lazy latest start begins at the first poll (what connect() avoids)', async () => {
    const consumer = client.consumer({ maxWaitMs: 20 });
    await consumer.assign({ topic: 'filled', from: 'latest' });
    await client.producer({ lingerMs: 0 }).send({ topic: 'filled', partition: 0, value: 'new' });
    expect(await pollValues(consumer)).toEqual([]);
  });

  it('works with nothing assigned, and fails typed when no broker answers', async () => {
    await client.consumer().connect();
    const port = broker.port;
    await broker.close();
    const down = new StreamBusClient({ bootstrap: `127.0.0.1:${port}`, retry: fastRetry });
    try {
      await expect(down.consumer().connect()).rejects.toMatchObject({
        code: ErrorCode.NETWORK_EXCEPTION,
      });
    } finally {
      await down.close();
    }
  });

  it('refuses a closed consumer', async () => {
    const consumer = client.consumer();
    await consumer.close();
    await expect(consumer.connect()).rejects.toMatchObject({ code: ErrorCode.CLIENT_CLOSED });
  });
});
