import {
  Compression,
  type CompressionCodec,
  decodeRecordBatch,
  ErrorCode,
  readBatchHeader,
  validateBatch,
} from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchBuilder, BufferPool, type Bytes, stampBatch } from './batch-builder.js';

const bytesArb: fc.Arbitrary<Bytes> = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 40 }),
  fc.uint8Array({ maxLength: 300 }),
);
const recordArb = fc.record({
  key: bytesArb,
  value: bytesArb,
  headers: fc.array(fc.record({ key: fc.string({ maxLength: 10 }), value: bytesArb }), {
    maxLength: 3,
  }),
  timestamp: fc.integer({ min: 0, max: 2 ** 45 }),
});

function asBytes(b: Bytes): Buffer | null {
  if (b === null) return null;
  return typeof b === 'string' ? Buffer.from(b, 'utf8') : Buffer.from(b);
}

function toBuf(u: Uint8Array | null): Buffer | null {
  return u === null ? null : Buffer.from(u);
}

describe('BatchBuilder', () => {
  it('produces batches that decodeRecordBatch reads back exactly, under every codec', () => {
    // zstd encoding needs Node >= 22.15 (protocol decodes it everywhere): the producer refuses it
    // up front there, see client.test.ts.
    const codecs: CompressionCodec[] = [
      Compression.NONE,
      Compression.GZIP,
      Compression.SNAPPY,
      Compression.LZ4,
    ];
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 30 }),
        fc.constantFrom(...codecs),
        (records, codec) => {
          const b = new BatchBuilder(new BufferPool(2, 128), 1 << 20, 1 << 20);
          for (const r of records)
            expect(b.tryAppend(r.key, r.value, r.headers, r.timestamp)).toBe(true);
          const { batch } = b.build(codec);
          stampBatch(batch, { producerId: 7, producerEpoch: 1, baseSequence: 42 });
          const decoded = decodeRecordBatch(batch);
          expect(decoded.header.producerId).toBe(7);
          expect(decoded.header.baseSequence).toBe(42);
          expect(decoded.header.recordCount).toBe(records.length);
          expect(decoded.header.attributes & 7).toBe(codec);
          expect(decoded.header.maxTimestamp).toBe(Math.max(...records.map((r) => r.timestamp)));
          decoded.records.forEach((d, i) => {
            const r = records[i]!;
            expect(d.offset).toBe(i);
            expect(d.timestamp).toBe(r.timestamp);
            expect(toBuf(d.key)).toEqual(asBytes(r.key));
            expect(toBuf(d.value)).toEqual(asBytes(r.value));
            expect(d.headers.map((h) => [h.key, toBuf(h.value)])).toEqual(
              r.headers.map((h) => [h.key, asBytes(h.value)]),
            );
          });
        },
      ),
      { numRuns: 150 },
    );
  });

  it('refuses a record that would pass batchBytesMax, but takes a lone large record', () => {
    const b = new BatchBuilder(new BufferPool(2, 64), 200, 10_000);
    expect(b.tryAppend(null, 'x'.repeat(100), null, 1)).toBe(true);
    expect(b.tryAppend(null, 'y'.repeat(100), null, 1)).toBe(false);
    expect(b.recordCount).toBe(1);
    const lone = new BatchBuilder(new BufferPool(2, 64), 200, 10_000);
    expect(lone.tryAppend(null, 'z'.repeat(1000), null, 1)).toBe(true);
    expect(validateBatch(lone.build(0).batch).recordCount).toBe(1);
  });

  it('rejects a record above recordBytesMax with MESSAGE_TOO_LARGE', () => {
    const b = new BatchBuilder(new BufferPool(2, 64), 1000, 100);
    expect(() => b.tryAppend(null, new Uint8Array(200), null, 1)).toThrow(
      expect.objectContaining({ code: ErrorCode.MESSAGE_TOO_LARGE }),
    );
    expect(b.recordCount).toBe(0);
  });

  it('restamping keeps the CRC valid and the record bytes identical', () => {
    const b = new BatchBuilder(new BufferPool(2, 64), 1000, 1000);
    b.tryAppend('k', 'v', null, 5);
    const { batch } = b.build(0);
    const before = Buffer.from(batch.subarray(61));
    stampBatch(batch, { producerId: 1, producerEpoch: 0, baseSequence: 3 });
    expect(readBatchHeader(batch).baseSequence).toBe(3);
    expect(validateBatch(batch).producerId).toBe(1);
    expect(batch.subarray(61)).toEqual(before);
  });

  it('build without the checksum leaves the CRC to the stamp, which makes the batch valid', () => {
    const pool = new BufferPool(2, 64);
    const plain = new BatchBuilder(pool, 1000, 1000);
    const bare = new BatchBuilder(pool, 1000, 1000);
    for (const builder of [plain, bare]) {
      builder.tryAppend('k', 'v', null, 5);
      builder.tryAppend(null, 'w', [{ key: 'h', value: 'x' }], 7);
    }
    const withCrc = plain.build(Compression.NONE).batch;
    const { batch } = bare.build(Compression.NONE, false);
    batch.writeUInt32BE(0, 17); // whatever the pooled buffer held there
    expect(() => validateBatch(batch)).toThrow();
    stampBatch(batch, { producerId: 4, producerEpoch: 1, baseSequence: 0 });
    expect(validateBatch(batch).producerId).toBe(4);
    expect(decodeRecordBatch(batch).records.length).toBe(2);
    // The same bytes as a batch built with its checksum and stamped alike.
    stampBatch(withCrc, { producerId: 4, producerEpoch: 1, baseSequence: 0 });
    expect(batch).toEqual(withCrc);
  });
});
