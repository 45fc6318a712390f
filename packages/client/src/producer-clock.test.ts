// Default record timestamps (producer.ts now()): the appends of one event-loop turn share a
// clock read, up to TIMESTAMP_REUSE_MAX (64) of them, and the next turn reads the clock again.
// Counts Date.now() calls, and reads the timestamps back from the batches FakeBroker stored.
import { decodeRecordBatch } from '@streambus/protocol';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fakeBrokerEachTest } from './testing/per-test.js';

const t = fakeBrokerEachTest();

afterEach(() => {
  vi.restoreAllMocks();
});

function storedTimestamps(topic: string): number[] {
  const out: number[] = [];
  for (const p of t.broker.topics.get(topic)!.partitions) {
    for (const b of p.batches)
      for (const r of decodeRecordBatch(b.bytes).records) out.push(r.timestamp);
  }
  return out;
}

describe('producer: default record timestamps', () => {
  it('1,000 sends in one turn read the clock once per 64 of them, not per record', async () => {
    t.broker.createTopic('c', 1);
    const producer = t.client.producer();
    await producer.connect(['c']);
    const now = vi.spyOn(Date, 'now');
    const sends = Array.from({ length: 1000 }, (_, i) =>
      producer.send({ topic: 'c', value: `${i}` }),
    );
    const reads = now.mock.calls.length;
    now.mockRestore();
    // 16 timestamp reads (1,000 / 64) plus one deadline per batch opened (a few: adaptive
    // batching splits the turn); it was 1,000 + those before.
    expect(reads).toBeGreaterThanOrEqual(16);
    expect(reads).toBeLessThanOrEqual(40);
    await Promise.all(sends);
    await producer.close();
    const ts = storedTimestamps('c');
    expect(ts).toHaveLength(1000);
    for (let i = 1; i < ts.length; i++) expect(ts[i]).toBeGreaterThanOrEqual(ts[i - 1]!);
  });

  it('a send in a later turn reads the clock again; an explicit timestamp is kept', async () => {
    t.broker.createTopic('d', 1);
    const producer = t.client.producer();
    await producer.connect(['d']);
    const before = Date.now();
    await producer.send({ topic: 'd', value: 'first' });
    await new Promise((r) => setTimeout(r, 30));
    const between = Date.now();
    await producer.send({ topic: 'd', value: 'second' });
    await producer.send({ topic: 'd', value: 'explicit', timestamp: 1234 });
    await producer.close();
    const [first, second, explicit] = storedTimestamps('d');
    expect(first).toBeGreaterThanOrEqual(before);
    expect(first).toBeLessThan(between);
    expect(second).toBeGreaterThanOrEqual(between);
    expect(explicit).toBe(1234);
  });
});
