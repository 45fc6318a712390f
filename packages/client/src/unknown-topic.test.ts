// A missing topic fails at once: one metadata request whose answer says the topic is absent is
// the confirmation (TOPIC_NOT_FOUND, not retriable, saying how to create the topic), for send(),
// assign() and admin calls alike; UNKNOWN_TOPIC_OR_PARTITION from a produce stays a retriable
// stale-metadata hint. Uses the client's default retry policy, so a retry would be visible as
// more metadata requests (and about a second of backoff). Auto-creation on a real broker is in
// test/src/auto-create.test.ts.
import { ErrorCode } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { fakeBrokerEachTest } from './testing/per-test.js';

const t = fakeBrokerEachTest();

const notFound = (topic: string) => ({
  code: ErrorCode.TOPIC_NOT_FOUND,
  retriable: false,
  message:
    `topic '${topic}' does not exist: create it with \`streambus topic create ${topic}\` ` +
    '(or admin().createTopic()), or start the broker with autoCreateTopics',
});

describe('unknown topic', () => {
  it('send() fails after one metadata request, not retriable', async () => {
    const producer = t.client.producer({ lingerMs: 0 });
    const before = t.broker.metadataRequests;
    await expect(producer.send({ topic: 'nope', value: 'x' })).rejects.toMatchObject(
      notFound('nope'),
    );
    expect(t.broker.metadataRequests - before).toBe(1);
    // Absence is not cached: once the topic exists the same producer sends to it.
    t.broker.createTopic('nope', 1);
    expect((await producer.send({ topic: 'nope', value: 'y' })).offset).toBe(0);
  });

  it('sendBatch() fails the same way', async () => {
    const producer = t.client.producer({ lingerMs: 0 });
    await expect(producer.sendBatch([{ topic: 'nope', value: 'x' }])).rejects.toMatchObject(
      notFound('nope'),
    );
  });

  it('assign() fails after one metadata request, not retriable', async () => {
    const consumer = t.client.consumer();
    const before = t.broker.metadataRequests;
    await expect(consumer.assign({ topic: 'missing' })).rejects.toMatchObject(notFound('missing'));
    expect(t.broker.metadataRequests - before).toBe(1);
    expect(consumer.assignment()).toEqual([]);
  });

  it('admin calls on a missing topic say TOPIC_NOT_FOUND too', async () => {
    const admin = t.client.admin();
    await expect(admin.describeTopic('gone')).rejects.toMatchObject(notFound('gone'));
    await expect(admin.describeConfigs('gone')).rejects.toMatchObject(notFound('gone'));
    await expect(admin.alterConfigs('gone', { 'retention.ms': '1' })).rejects.toMatchObject(
      notFound('gone'),
    );
    await expect(admin.deleteTopic('gone')).rejects.toMatchObject(notFound('gone'));
    await expect(admin.listOffsets('gone', 'latest')).rejects.toMatchObject(notFound('gone'));
  });

  it('a produce answered UNKNOWN_TOPIC_OR_PARTITION is retried after a metadata refresh', async () => {
    t.broker.createTopic('t', 1);
    const producer = t.client.producer({ lingerMs: 0 });
    expect((await producer.send({ topic: 't', value: 'a' })).offset).toBe(0);
    // The topic still exists: the resend succeeds.
    t.broker.failNextProduce(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION);
    expect((await producer.send({ topic: 't', value: 'b' })).offset).toBe(1);
    // Deleted under the producer: the refresh confirms it is gone and the send fails at once.
    t.broker.topics.delete('t');
    await expect(producer.send({ topic: 't', value: 'c' })).rejects.toMatchObject(notFound('t'));
  });
});
