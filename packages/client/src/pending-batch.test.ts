// PendingBatch.metadataOf: the offsets each record's promise resolves with, whatever the order in
// which the records asked (send() asks in index order and shares one mapping function; any other
// order falls back to a closure per record).
import { describe, expect, it } from 'vitest';
import { BatchBuilder, BufferPool } from './batch-builder.js';
import { PendingBatch } from './producer.js';

const batch = () =>
  new PendingBatch(new BatchBuilder(new BufferPool(1, 64), 1 << 16, 1 << 16), 0, 'topic', 3);

describe('PendingBatch.metadataOf', () => {
  it('maps records asking in index order, then out of order, each to its own offset', async () => {
    const b = batch();
    const asked = [2, 3, 0, 4, 1, 5];
    const promises = asked.map((i) => b.metadataOf(i));
    b.resolve(100);
    const res = await Promise.all(promises);
    expect(res.map((r) => r.offset)).toEqual(asked.map((i) => 100 + i));
    expect(res[0]).toEqual({ topic: 'topic', partition: 3, offset: 102 });
  });

  it('gives -1 to every record of an unacknowledged batch (acks=0) and passes a rejection on', async () => {
    const b = batch();
    const none = [0, 1].map((i) => b.metadataOf(i));
    b.resolve(-1);
    expect((await Promise.all(none)).map((r) => r.offset)).toEqual([-1, -1]);
    const failed = batch();
    const p = failed.metadataOf(0);
    failed.reject(new Error('refused'));
    await expect(p).rejects.toThrow('refused');
  });
});
