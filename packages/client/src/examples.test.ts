// The examples of docs/client.md, run against the fake broker. Each example's body sits between
// `// example: NAME` and `// end` lines; the last test checks that docs/client.md shows every
// example exactly as it is run here, so the guide cannot drift from working code.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode, StreamBusClient, StreamBusError } from './index.js';
import { FakeBroker } from './testing/fake-broker.js';

let broker: FakeBroker;
let bootstrap: string;
beforeAll(async () => {
  broker = await FakeBroker.start();
  bootstrap = broker.bootstrap;
});
afterAll(async () => {
  await broker.close();
});

describe('docs/client.md examples', () => {
  it('quick start', async () => {
    const lines: string[] = [];
    // example: quick-start
    const client = new StreamBusClient({ bootstrap });
    await client.admin().createTopic({ name: 'orders', partitions: 3 });

    const producer = client.producer(); // acks 'all', idempotent
    const { partition, offset } = await producer.send({
      topic: 'orders',
      key: 'customer-42',
      value: JSON.stringify({ item: 'book', qty: 1 }),
      headers: { source: 'web' },
    });

    const consumer = client.consumer();
    await consumer.assign({ topic: 'orders', partitions: [partition], from: { offset } });
    for await (const record of consumer) {
      lines.push(`${record.offset}: ${Buffer.from(record.value ?? []).toString()}`);
      break;
    }
    await client.close();
    // end
    expect(lines).toEqual(['0: {"item":"book","qty":1}']);
  });

  it('fast paths', async () => {
    let total = 0;
    // example: fast-paths
    const client = new StreamBusClient({ bootstrap });
    await client.admin().createTopic({ name: 'metrics', partitions: 1 });
    const producer = client.producer({ acks: 1, compression: 'lz4', lingerMs: 10 });
    const records = Array.from({ length: 1000 }, (_, i) => ({ topic: 'metrics', value: `m${i}` }));
    const results = await producer.sendBatch(records); // one promise for the lot
    console.assert(results.length === 1000);

    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'metrics', from: 'earliest' });
    for await (const batch of consumer.batches()) {
      total += batch.records.length;
      if (total >= 1000) break;
    }
    await client.close();
    // end
    expect(total).toBe(1000);
  });

  it('consumer group', async () => {
    const seen: string[] = [];
    // example: consumer-group
    const client = new StreamBusClient({ bootstrap });
    await client.admin().createTopic({ name: 'payments', partitions: 2 });
    await client.producer().sendBatch([
      { topic: 'payments', key: 'a', value: 'paid 10' },
      { topic: 'payments', key: 'b', value: 'paid 20' },
    ]);

    const member = client.consumer({ groupId: 'billing' }); // cooperative-sticky, auto-commit
    await member.subscribe({ topics: ['payments'] });
    for await (const record of member) {
      seen.push(Buffer.from(record.value ?? []).toString());
      if (seen.length === 2) break; // this record counts as processed too
    }
    await member.close(); // commits what was processed, leaves the group
    const group = await client.admin().describeGroup('billing');
    console.assert(group.offsets.every((o) => o.lag === 0));
    await client.close();
    // end
    expect(seen.sort()).toEqual(['paid 10', 'paid 20']);
  });

  it('errors', async () => {
    let code = 0;
    // example: errors
    const client = new StreamBusClient({ bootstrap });
    try {
      await client.admin().describeTopic('missing');
    } catch (err) {
      if (err instanceof StreamBusError && err.code === ErrorCode.TOPIC_NOT_FOUND) {
        code = err.code; // err.retriable says whether retrying could help
      } else {
        throw err;
      }
    } finally {
      await client.close();
    }
    // end
    expect(code).toBe(ErrorCode.TOPIC_NOT_FOUND);
  });

  it('docs/client.md shows every example exactly as tested', () => {
    const self = readFileSync(fileURLToPath(import.meta.url), 'utf8');
    const doc = readFileSync(
      fileURLToPath(new URL('../../../docs/client.md', import.meta.url)),
      'utf8',
    );
    const examples = [...self.matchAll(/\/\/ example: ([\w-]+)\n([\s\S]*?)\n\s*\/\/ end/g)];
    expect(examples.map((m) => m[1])).toEqual([
      'quick-start',
      'fast-paths',
      'consumer-group',
      'errors',
    ]);
    const squash = (s: string): string => s.replace(/\s+/g, ' ').trim();
    for (const [, name, body] of examples) {
      expect(squash(doc), `example ${name}`).toContain(squash(body!));
    }
  });
});
