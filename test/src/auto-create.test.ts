// A missing topic against real broker processes, with the broker's autoCreateTopics off (the
// default) and on (a config file). Off: send() and assign() fail at once with TOPIC_NOT_FOUND,
// not retriable, saying how to create the topic. On: the broker creates the topic on the
// producer's or consumer's metadata request and the client goes on with it; admin lookups
// (describe, list offsets) never create a topic; a bad name is refused with a typed error.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Consumer, ErrorCode, StreamBusClient } from '@streambus/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type BrokerProcess, removeDir, startBroker, tempDir } from './harness.js';

const fastRetry = { retriesMax: 4, backoffInitialMs: 20, backoffMaxMs: 100, totalTimeoutMs: 5_000 };

const notFound = (topic: string) => ({
  code: ErrorCode.TOPIC_NOT_FOUND,
  retriable: false,
  message: expect.stringContaining(
    `topic '${topic}' does not exist: create it with \`streambus topic create ${topic}\``,
  ),
});

/** Values polled until `count` arrived (or 10 s passed); closes the consumer. */
async function pollValues(consumer: Consumer, count: number): Promise<string[]> {
  const out: string[] = [];
  const deadline = Date.now() + 10_000;
  while (out.length < count && Date.now() < deadline) {
    for (const b of await consumer.poll()) {
      for (const r of b.records) out.push(Buffer.from(r.value ?? []).toString());
    }
  }
  await consumer.close();
  return out;
}

/** A broker process for this describe block (with `config` as its config file) and a client. */
function brokerAndClient(config?: Record<string, unknown>): () => StreamBusClient {
  let broker: BrokerProcess | undefined;
  let dir: string;
  let client: StreamBusClient | undefined;
  beforeAll(async () => {
    dir = tempDir();
    const args: string[] = [];
    if (config !== undefined) {
      writeFileSync(join(dir, 'broker.json'), JSON.stringify(config));
      args.push('--config', join(dir, 'broker.json'));
    }
    broker = await startBroker(join(dir, 'data'), args);
    client = new StreamBusClient({ bootstrap: broker.bootstrap, retry: fastRetry });
  });
  afterAll(async () => {
    await client?.close();
    await broker?.stop();
    removeDir(dir);
  });
  return () => client!;
}

describe('autoCreateTopics off (the default)', () => {
  const clientOf = brokerAndClient();

  it('send() and assign() on a missing topic fail at once, not retriable', async () => {
    const client = clientOf();
    const producer = client.producer({ lingerMs: 0 });
    await expect(producer.send({ topic: 'nope', value: 'x' })).rejects.toMatchObject(
      notFound('nope'),
    );
    await expect(client.consumer().assign({ topic: 'nope' })).rejects.toMatchObject(
      notFound('nope'),
    );
    expect(await client.admin().listTopics()).toEqual([]);
    // Created afterwards: the same producer sends to it (absence is not cached).
    await client.admin().createTopic({ name: 'nope', partitions: 1 });
    // Its first record follows the partition's first Raft term's no-op (a control batch at 0).
    expect((await producer.send({ topic: 'nope', value: 'y' })).offset).toBe(1);
  });
});

describe('autoCreateTopics on', () => {
  const clientOf = brokerAndClient({ autoCreateTopics: true });

  it('the first send() creates the topic; a consumer reads it from the start', async () => {
    const client = clientOf();
    const producer = client.producer({ lingerMs: 0 });
    expect(await producer.send({ topic: 'auto-p', value: 'first' })).toMatchObject({
      topic: 'auto-p',
      offset: 1,
    });
    await producer.send({ topic: 'auto-p', value: 'second' });
    expect(await client.admin().listTopics()).toContain('auto-p');
    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'auto-p' });
    expect(await pollValues(consumer, 2)).toEqual(['first', 'second']);
  });

  it('assign() creates the topic too, and then sees what is produced to it', async () => {
    const client = clientOf();
    const consumer = client.consumer({ maxWaitMs: 100 });
    await consumer.assign({ topic: 'auto-c' });
    await consumer.connect();
    expect((await client.admin().describeTopic('auto-c')).partitions).toHaveLength(1);
    await client.producer({ lingerMs: 0 }).send({ topic: 'auto-c', value: 'hello' });
    expect(await pollValues(consumer, 1)).toEqual(['hello']);
  });

  it('admin lookups do not create topics', async () => {
    const client = clientOf();
    const admin = client.admin();
    await expect(admin.describeTopic('looked-up')).rejects.toMatchObject(notFound('looked-up'));
    await expect(admin.listOffsets('looked-up', 'latest')).rejects.toMatchObject(
      notFound('looked-up'),
    );
    await expect(admin.describeConfigs('looked-up')).rejects.toMatchObject(notFound('looked-up'));
    expect(await admin.listTopics()).not.toContain('looked-up');
  });

  it('a name the broker refuses fails with a typed, non-retriable error', async () => {
    const client = clientOf();
    const producer = client.producer({ lingerMs: 0 });
    await expect(producer.send({ topic: 'bad name!', value: 'x' })).rejects.toMatchObject({
      code: ErrorCode.INVALID_TOPIC_EXCEPTION,
      retriable: false,
    });
    expect(await client.admin().listTopics()).not.toContain('bad name!');
  });
});
