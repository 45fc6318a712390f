// Option-name checking: the pure helpers, then every place the SDK takes an options object
// (client, client.retry, producer, consumer, assign, assign.from, seek, createTopics), as plain
// JavaScript would call it (the casts stand for untyped callers).
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StreamBusClient } from './client.js';
import {
  checkOptionNames,
  editDistance,
  nearestName,
  OptionNames,
  UnknownOptionError,
} from './options.js';
import { FakeBroker } from './testing/fake-broker.js';

// biome-ignore lint/suspicious/noExplicitAny: an untyped (JavaScript) caller.
type Untyped = any;

function thrown(fn: () => unknown): StreamBusError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    return err as StreamBusError;
  }
  throw new Error('expected a throw');
}

describe('option-name helpers', () => {
  it('computes edit distances', () => {
    expect(editDistance('', '')).toBe(0);
    expect(editDistance('abc', '')).toBe(3);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('lingerMS', 'lingerMs')).toBe(0); // case-insensitive
    expect(editDistance('acks', 'ack')).toBe(1);
  });

  it('suggests only names that are close', () => {
    expect(nearestName('linger', OptionNames.producer)).toBe('lingerMs');
    expect(nearestName('lingerMS', OptionNames.producer)).toBe('lingerMs');
    expect(nearestName('ack', OptionNames.producer)).toBe('acks');
    expect(nearestName('compresion', OptionNames.producer)).toBe('compression');
    expect(nearestName('maxWait', OptionNames.consumer)).toBe('maxWaitMs');
    expect(nearestName('zebra', OptionNames.producer)).toBeNull();
  });

  it('accepts known names and undefined; refuses non-objects', () => {
    expect(() => checkOptionNames('producer', undefined, OptionNames.producer)).not.toThrow();
    expect(() =>
      checkOptionNames('producer', { acks: 1, lingerMs: undefined }, OptionNames.producer),
    ).not.toThrow();
    // The producer's delivery timeout is a valid name.
    expect(() =>
      checkOptionNames('producer', { deliveryTimeoutMs: 1000 }, OptionNames.producer),
    ).not.toThrow();
    for (const bad of [null, 5, 'acks', [1]]) {
      const e = thrown(() => checkOptionNames('producer', bad, OptionNames.producer));
      expect(e.code).toBe(ErrorCode.INVALID_ARGUMENT);
      expect(e.message).toMatch(/^producer: expected an options object/);
    }
  });

  it('names the option path and the nearest valid name', () => {
    const e = thrown(() => checkOptionNames('producer', { linger: 0 }, OptionNames.producer));
    expect(e).toBeInstanceOf(UnknownOptionError);
    expect(e).toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      retriable: false,
      path: 'producer.linger',
      suggestion: 'lingerMs',
    });
    expect(e.message).toBe("producer.linger: unknown option (did you mean 'lingerMs'?)");
    // Nothing close: the valid names are listed.
    const far = thrown(() => checkOptionNames('consumer', { zebra: 1 }, OptionNames.consumer));
    expect(far).toMatchObject({ path: 'consumer.zebra', suggestion: null });
    expect(far.message).toContain('valid options: autoOffsetReset, maxBytes, maxPollRecords');
    // Other clients' names.
    expect(
      thrown(() => checkOptionNames('client', { brokers: ['a:1'] }, OptionNames.client)),
    ).toMatchObject({ suggestion: 'bootstrap' });
    expect(
      thrown(() => checkOptionNames('client.retry', { retries: 3 }, OptionNames.retry)),
    ).toMatchObject({ path: 'client.retry.retries', suggestion: 'retriesMax' });
  });
});

describe('the SDK refuses unknown option names', () => {
  let broker: FakeBroker;
  let client: StreamBusClient;
  beforeAll(async () => {
    broker = await FakeBroker.start({ defaultPartitions: 1 });
    broker.createTopic('t', 1);
    client = new StreamBusClient({ bootstrap: broker.bootstrap });
  });
  afterAll(async () => {
    await client.close();
    await broker.close();
  });

  it('client options and client.retry', () => {
    expect(
      thrown(() => new StreamBusClient({ bootstrap: 'x:1', requestTimeout: 5 } as Untyped)),
    ).toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
      path: 'client.requestTimeout',
      suggestion: 'requestTimeoutMs',
    });
    expect(thrown(() => new StreamBusClient({ retry: { retriesMx: 1 } } as Untyped))).toMatchObject(
      { path: 'client.retry.retriesMx', suggestion: 'retriesMax' },
    );
  });

  it('producer and consumer options (the issue 13 examples)', () => {
    expect(thrown(() => client.producer({ linger: 0 } as Untyped)).message).toBe(
      "producer.linger: unknown option (did you mean 'lingerMs'?)",
    );
    const e = thrown(() => client.consumer({ fromBeginning: true } as Untyped));
    expect(e).toMatchObject({ code: ErrorCode.INVALID_ARGUMENT, path: 'consumer.fromBeginning' });
    expect(e.message).toContain("assign({ topic, from: 'earliest' })");
    expect(() => client.consumer({ maxWaitMs: 10, autoOffsetReset: 'latest' })).not.toThrow();
  });

  it('assign options, assign.from and seek positions', async () => {
    const consumer = client.consumer({ maxWaitMs: 10 });
    await expect(consumer.assign({ topic: 't', partition: [0] } as Untyped)).rejects.toMatchObject({
      path: 'assign.partition',
      suggestion: 'partitions',
    });
    await expect(
      consumer.assign({ topic: 't', fromBeginning: true } as Untyped),
    ).rejects.toMatchObject({ path: 'assign.fromBeginning', suggestion: "from: 'earliest'" });
    await expect(
      consumer.assign({ topic: 't', from: { ofset: 3 } } as Untyped),
    ).rejects.toMatchObject({ path: 'assign.from.ofset', suggestion: 'offset' });
    await expect(
      consumer.assign({ topic: 't', from: { offset: 1, timestamp: 2 } } as Untyped),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_ARGUMENT });
    await expect(consumer.assign({ topic: 't', from: 'begin' } as Untyped)).rejects.toThrow(
      "assign.from: expected 'earliest', 'latest', { offset } or { timestamp }, got 'begin'",
    );
    await expect(consumer.assign({ topic: 't', from: { timestamp: -5 } })).rejects.toMatchObject({
      code: ErrorCode.INVALID_ARGUMENT,
    });
    expect(consumer.assignment()).toEqual([]);
    await consumer.assign({ topic: 't', from: { offset: 0 } });
    expect(() => consumer.seek('t', 0, { timestmp: 5 } as Untyped)).toThrow(
      expect.objectContaining({ path: 'seek.timestmp', suggestion: 'timestamp' }),
    );
    expect(() => consumer.seek('t', 0, 'start' as Untyped)).toThrow(
      expect.objectContaining({ code: ErrorCode.INVALID_ARGUMENT }),
    );
    expect(consumer.assignment()[0]!.position).toBe(0);
  });

  it('admin() takes no options', () => {
    expect(thrown(() => client.admin({ timeoutMs: 5 } as Untyped)).message).toBe(
      'admin.timeoutMs: unknown option (none are accepted)',
    );
    expect(() => client.admin({})).not.toThrow();
  });

  it('createTopics topics and options', async () => {
    const admin = client.admin();
    await expect(admin.createTopic({ name: 'n', partiton: 2 } as Untyped)).rejects.toMatchObject({
      path: 'topics[0].partiton',
      suggestion: 'partitions',
    });
    await expect(
      admin.createTopics([{ name: 'n' }], { timeout: 5 } as Untyped),
    ).rejects.toMatchObject({ path: 'createTopics.timeout', suggestion: 'timeoutMs' });
    expect(broker.topics.has('n')).toBe(false);
  });
});
