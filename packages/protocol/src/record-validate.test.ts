// The record walker: the five batches of issue 8 item 4 (valid CRC, records contradicting the
// header), decompression bombs, and a property test that the walker and the decoder agree on
// every mutated batch.

import { gzipSync } from 'node:zlib';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Compression, type CompressionCodec, compress } from './compression.js';
import { crc32c } from './crc32c.js';
import { ErrorCode, isStreamBusError, type StreamBusError } from './errors.js';
import { lz4CompressFrame } from './lz4-frame.js';
import {
  BatchField,
  decodeRecordBatch,
  encodeRecordBatch,
  RECORD_BATCH_HEADER_BYTES,
  type RecordInput,
  validateBatch,
} from './record-batch.js';
import { validateBatchRecords } from './record-validate.js';

const NOW = 1_700_000_000_000;

interface Craft {
  recordCount?: number;
  lastOffsetDelta?: number;
  codec?: CompressionCodec;
  /** Compressed payload as is (for hand-made bombs); `section` is then ignored. */
  payload?: Uint8Array;
}

/**
 * A batch around an uncompressed records section, with a header from the encoder and the given
 * counts, compressed if asked, batchLength and CRC right: only the records can be wrong.
 */
function craft(section: Uint8Array, opts: Craft = {}): Buffer {
  const template = encodeRecordBatch([{ value: null }], { timestamp: NOW });
  const codec = opts.codec ?? 0;
  const body = opts.payload ?? (codec === 0 ? section : compress(codec, section));
  const b = Buffer.concat([template.subarray(0, RECORD_BATCH_HEADER_BYTES), body]);
  b.writeInt32BE(b.length - 12, BatchField.BATCH_LENGTH);
  b.writeInt16BE(codec, BatchField.ATTRIBUTES);
  b.writeInt32BE(opts.recordCount ?? 1, BatchField.RECORD_COUNT);
  b.writeInt32BE(opts.lastOffsetDelta ?? (opts.recordCount ?? 1) - 1, BatchField.LAST_OFFSET_DELTA);
  b.writeUInt32BE(crc32c(b, 0, BatchField.ATTRIBUTES, b.length), BatchField.CRC);
  return b;
}

function sectionOf(records: RecordInput[]): Buffer {
  return encodeRecordBatch(records, { timestamp: NOW }).subarray(RECORD_BATCH_HEADER_BYTES);
}

/** validateBatch then the walk; the error (typed) or null. */
function walk(b: Uint8Array, maxBytes = 1 << 20): StreamBusError | null {
  try {
    validateBatchRecords(b, 0, validateBatch(b, 0), maxBytes);
    return null;
  } catch (err) {
    if (!isStreamBusError(err)) throw err;
    return err;
  }
}

function decodeError(b: Uint8Array): StreamBusError | null {
  try {
    decodeRecordBatch(b, 0, { maxUncompressedBytes: 1 << 20 });
    return null;
  } catch (err) {
    if (!isStreamBusError(err)) throw err;
    return err;
  }
}

const one = sectionOf([{ key: Buffer.from('k'), value: Buffer.from('a value of some bytes') }]);

describe('validateBatchRecords: records contradicting a header with a valid CRC', () => {
  it('accepts what the encoder writes, every codec, with and without headers', () => {
    const records: RecordInput[] = Array.from({ length: 50 }, (_, i) => ({
      key: i % 3 === 0 ? null : Buffer.from(`k${i}`),
      value: i % 7 === 0 ? null : Buffer.alloc(i * 10, i),
      headers:
        i % 2 === 0
          ? []
          : [
              { key: 'h', value: Buffer.from('x') },
              { key: '', value: null },
            ],
      timestamp: NOW + i * 1000,
    }));
    for (const codec of [0, 1, 2, 3] as const) {
      const b = encodeRecordBatch(records, { timestamp: NOW, compression: codec });
      const size = validateBatchRecords(b, 0, validateBatch(b, 0));
      expect(size).toBe(sectionOf(records).length);
    }
  });

  it('record count 2 with one record inside', () => {
    const err = walk(craft(one, { recordCount: 2 }));
    expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
    expect(err?.message).toMatch(/declares 2 records, the records section holds 1/);
    expect(walk(craft(one, { recordCount: 1 }))).toBeNull();
  });

  it('record length -1', () => {
    const s = Buffer.from(one);
    s[0] = 0x01; // zigzag(-1)
    const err = walk(craft(s));
    expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
    expect(err?.message).toMatch(/record 0 of 1: length -1 does not fit/);
  });

  it('key length -5', () => {
    // length | attributes | timestampDelta 0 | offsetDelta 0 | keyLength …: key length at byte 4
    const s = Buffer.from(one);
    expect(s[4]).toBe(2); // zigzag(1): the one-byte key 'k'
    s[4] = 9; // zigzag(-5)
    const err = walk(craft(s));
    expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
    expect(err?.message).toMatch(/record 0: key length -5 is negative/);
  });

  it('a key length past the end of the batch', () => {
    const s = Buffer.from(one);
    s[4] = 100; // zigzag(50): 50 bytes, the record has 25 left
    const err = walk(craft(s));
    expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
    expect(err?.message).toMatch(/record 0: key length 50 runs past the record's end/);
  });

  it('a gzip batch claiming 1,000,000 records with one inside', () => {
    const b = craft(one, { recordCount: 1_000_000, codec: Compression.GZIP });
    const err = walk(b);
    expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
    expect(err?.message).toMatch(/recordCount 1000000 cannot fit/);
    // The same with a count that fits the bytes: the walk finds the missing second record.
    const two = craft(one, { recordCount: 2, codec: Compression.LZ4 });
    expect(walk(two)?.message).toMatch(/declares 2 records, the records section holds 1/);
  });

  it('offset deltas that do not increase, trailing bytes, a header past the record', () => {
    const pair = sectionOf([{ value: Buffer.from('a') }, { value: Buffer.from('b') }]);
    const s = Buffer.from(pair);
    const second = 1 + s[0]! / 2; // first record's length byte + body
    expect(s[second + 3]).toBe(2); // offsetDelta 1
    s[second + 3] = 0;
    expect(walk(craft(s, { recordCount: 2 }))?.message).toMatch(/record 1: offsetDelta 0/);
    expect(walk(craft(Buffer.concat([one, Buffer.from([0, 0])])))?.message).toMatch(
      /2 bytes after the last of the 1 records/,
    );
    const h = sectionOf([{ value: null, headers: [{ key: 'key', value: Buffer.from('v') }] }]);
    const bad = Buffer.from(h);
    // length | attr | ts | od | key -1 | value -1 | count 1 | keyLength 3 'key' | valueLength 1 'v'
    expect(bad[7]).toBe(6);
    bad[7] = 40;
    expect(walk(craft(bad))?.message).toMatch(/record 0: header 0 key length 20 does not fit/);
  });
});

describe('validateBatchRecords: decompression budget', () => {
  const zeros = Buffer.alloc(8 * 1024 * 1024);

  it('refuses a gzip bomb once the budget is spent', () => {
    const b = craft(Buffer.alloc(0), { payload: gzipSync(zeros), codec: Compression.GZIP });
    expect(b.length).toBeLessThan(16 * 1024); // 8 MiB of zeros
    const err = walk(b, 1 << 20);
    expect(err?.code).toBe(ErrorCode.CORRUPT_COMPRESSED_DATA);
    expect(err?.message).toMatch(/gzip payload: inflates past the bound of 1048576 bytes/);
  });

  it('refuses an lz4 bomb once the budget is spent', () => {
    const b = craft(Buffer.alloc(0), { payload: lz4CompressFrame(zeros), codec: Compression.LZ4 });
    expect(b.length).toBeLessThan(64 * 1024);
    const err = walk(b, 1 << 20);
    expect(err?.code).toBe(ErrorCode.CORRUPT_COMPRESSED_DATA);
    expect(err?.message).toMatch(/lz4 payload: decompressed size exceeds the bound/);
  });

  it('accepts the same batch within a larger budget when its records are framed', () => {
    const big = sectionOf([{ value: Buffer.alloc(2 * 1024 * 1024) }]);
    const b = craft(big, { codec: Compression.GZIP });
    expect(walk(b, 1 << 20)?.code).toBe(ErrorCode.CORRUPT_COMPRESSED_DATA);
    expect(walk(b, 4 << 20)).toBeNull();
  });
});

describe('validateBatchRecords agrees with decodeRecordBatch', () => {
  const bytes = fc.option(fc.uint8Array({ maxLength: 40 }), { nil: null });
  const recordArb: fc.Arbitrary<RecordInput> = fc.record(
    {
      key: bytes,
      value: bytes,
      headers: fc.array(fc.record({ key: fc.string({ maxLength: 6 }), value: bytes }), {
        maxLength: 2,
      }),
      timestamp: fc.integer({ min: NOW - 2 ** 40, max: NOW + 2 ** 40 }),
    },
    { requiredKeys: ['value'] },
  );
  const mutation = fc.oneof(
    fc.record({
      kind: fc.constant('set' as const),
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
    }),
    fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
    fc.record({
      kind: fc.constant('insert' as const),
      at: fc.nat(),
      byte: fc.integer({ min: 0, max: 255 }),
    }),
  );

  function mutate(section: Buffer, ms: Array<{ kind: string; at: number; byte?: number }>): Buffer {
    let s = Buffer.from(section);
    for (const m of ms) {
      const at = s.length === 0 ? 0 : m.at % (s.length + (m.kind === 'insert' ? 1 : 0));
      if (m.kind === 'set' && s.length > 0) s[at] = m.byte!;
      if (m.kind === 'cut') s = s.subarray(0, at);
      if (m.kind === 'insert')
        s = Buffer.concat([s.subarray(0, at), Buffer.from([m.byte!]), s.subarray(at)]);
    }
    return s;
  }

  it('every mutated batch either walks and decodes fully, or the walker refuses it', () => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 6 }),
        fc.array(mutation, { minLength: 0, maxLength: 3 }),
        fc.integer({ min: -1, max: 1 }),
        fc.constantFrom<CompressionCodec>(0, 0, Compression.GZIP, Compression.LZ4),
        (records, ms, countShift, codec) => {
          const section = mutate(sectionOf(records), ms);
          const recordCount = Math.max(1, records.length + countShift);
          const b = craft(section, { recordCount, codec });
          const walkErr = walk(b);
          const decodeErr = decodeError(b);
          if (walkErr === null) {
            accepted++;
            expect(decodeErr).toBeNull();
            const { records: out } = decodeRecordBatch(b);
            expect(out).toHaveLength(recordCount);
            expect(out.map((r) => r.offset)).toEqual(out.map((_, i) => i));
          } else {
            refused++;
            expect([ErrorCode.INVALID_RECORD, ErrorCode.CORRUPT_COMPRESSED_DATA]).toContain(
              walkErr.code,
            );
            if (decodeErr === null) {
              // The one thing the walker refuses and the decoder returns: offsets out of order.
              expect(walkErr.message).toMatch(/offsetDelta/);
              const offsets = decodeRecordBatch(b).records.map((r) => r.offset);
              expect(offsets).not.toEqual(offsets.map((_, i) => i));
            }
          }
        },
      ),
      { numRuns: 3000, seed: 8004 },
    );
    // The property is only worth something if both outcomes happen often.
    expect(accepted).toBeGreaterThan(300);
    expect(refused).toBeGreaterThan(300);
  });
});
