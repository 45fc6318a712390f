// Property and fuzz tests: random batches round-trip under every codec; random bytes, bit flips
// and truncations given to every decoder end in typed errors only.

import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Compression, type CompressionCodec, zstdCanCompress } from './compression.js';
import { decodeControlRecord, encodeControlBatch } from './control-record.js';
import { crc32c } from './crc32c.js';
import { ErrorCode, isStreamBusError } from './errors.js';
import {
  batchSizeAt,
  decodeRecordBatch,
  encodeRecordBatch,
  type RecordInput,
  readBatchHeader,
  splitBatches,
  validateBatch,
  verifyBatchCrc,
} from './record-batch.js';

const TYPED = new Set<number>([
  ErrorCode.CORRUPT_MESSAGE,
  ErrorCode.INVALID_RECORD,
  ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
  ErrorCode.CORRUPT_COMPRESSED_DATA,
]);

/** Runs fn; fails the test on any error that is not one of the decoders' typed codes. */
function typedOnly(fn: () => unknown): void {
  try {
    fn();
  } catch (err) {
    if (!isStreamBusError(err) || !TYPED.has(err.code)) {
      throw new Error(`untyped or unexpected error: ${String(err)}`, { cause: err });
    }
  }
}

function allDecoders(buf: Uint8Array): void {
  typedOnly(() => readBatchHeader(buf));
  typedOnly(() => batchSizeAt(buf));
  typedOnly(() => verifyBatchCrc(buf));
  typedOnly(() => validateBatch(buf));
  typedOnly(() => splitBatches(buf));
  typedOnly(() => decodeRecordBatch(buf, 0, { maxUncompressedBytes: 1 << 20 }));
}

/** Rewrites the CRC so that corruption reaches the record and codec decoders. */
function fixCrc(b: Buffer): Buffer {
  if (b.length >= 61) b.writeUInt32BE(crc32c(b, 0, 21, b.length), 17);
  return b;
}

const bytes = fc.option(fc.uint8Array({ maxLength: 64 }), { nil: null });
const recordArb: fc.Arbitrary<RecordInput> = fc.record(
  {
    key: bytes,
    value: bytes,
    headers: fc.array(fc.record({ key: fc.string({ maxLength: 8 }), value: bytes }), {
      maxLength: 3,
    }),
    timestamp: fc.integer({ min: -(2 ** 50), max: 2 ** 50 }),
  },
  { requiredKeys: ['value'] },
);

const WRITABLE: CompressionCodec[] = [
  Compression.NONE,
  Compression.GZIP,
  Compression.SNAPPY,
  Compression.LZ4,
  ...(zstdCanCompress ? [Compression.ZSTD] : []),
];

function expectSame(input: readonly RecordInput[], batch: Buffer, baseOffset: number): void {
  const { records } = decodeRecordBatch(batch);
  expect(records).toHaveLength(input.length);
  records.forEach((r, i) => {
    const want = input[i]!;
    expect(r.offset).toBe(baseOffset + i);
    expect(r.timestamp).toBe(want.timestamp ?? 0); // encoded with { timestamp: 0 }
    expect(r.key === null ? null : Buffer.from(r.key)).toEqual(
      want.key == null ? null : Buffer.from(want.key),
    );
    expect(r.value === null ? null : Buffer.from(r.value)).toEqual(
      want.value === null ? null : Buffer.from(want.value),
    );
    expect(r.headers.map((h) => [h.key, h.value === null ? null : Buffer.from(h.value)])).toEqual(
      (want.headers ?? []).map((h) => [h.key, h.value === null ? null : Buffer.from(h.value)]),
    );
  });
}

/** The records zstdSampleRecords() encodes to; testdata/records.zst is its section, zstd'ed. */
function zstdSampleRecords(): RecordInput[] {
  const records: RecordInput[] = [];
  for (let i = 0; i < 200; i++) {
    records.push({
      key: Buffer.from(`k${i}`),
      value: Buffer.from(`value-${i}${'-'.repeat(i % 50)}`),
      timestamp: 1700000000000 + i,
    });
  }
  return records;
}

describe('round trip under every codec', () => {
  it.each(WRITABLE)('codec %i', (codec) => {
    fc.assert(
      fc.property(
        fc.array(recordArb, { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 0, max: 2 ** 52 }),
        (records, baseOffset) => {
          const batch = encodeRecordBatch(records, {
            compression: codec,
            baseOffset,
            timestamp: 0,
          });
          expect(readBatchHeader(batch).attributes & 7).toBe(codec);
          expect(verifyBatchCrc(batch)).toBe(true);
          expectSame(records, batch, baseOffset);
        },
      ),
      { numRuns: 60 },
    );
  });

  it('decodes a zstd batch compressed by the zstd reference CLI', () => {
    const records = zstdSampleRecords();
    const plain = encodeRecordBatch(records, { timestamp: 0, baseOffset: 5 });
    const payload = readFileSync(
      fileURLToPath(new URL('../testdata/records.zst', import.meta.url)),
    );
    const batch = Buffer.concat([plain.subarray(0, 61), payload]);
    batch.writeInt32BE(batch.length - 12, 8);
    batch.writeInt16BE(Compression.ZSTD, 21);
    fixCrc(batch);
    expectSame(records, batch, 5);
  });

  it('keeps records views when the input buffer holds several batches', () => {
    const a = encodeRecordBatch([{ value: Buffer.from('a') }], { compression: Compression.LZ4 });
    const b = encodeRecordBatch([{ value: Buffer.from('b') }], { baseOffset: 1 });
    const all = Buffer.concat([a, b]);
    const [, second] = splitBatches(all);
    const d = decodeRecordBatch(all, second!.position);
    expect(Buffer.from(d.records[0]!.value!).toString()).toBe('b');
    expect(d.records[0]!.offset).toBe(1);
  });
});

describe('control batches', () => {
  it('encode and decode a COMMIT marker', () => {
    const batch = encodeControlBatch({
      type: 1,
      producerId: 9000,
      producerEpoch: 4,
      coordinatorEpoch: 17,
      baseOffset: 33,
      timestamp: 1700000000000,
    });
    const d = decodeRecordBatch(batch);
    expect(d.isControl).toBe(true);
    expect(d.header.attributes).toBe(0x30);
    expect(d.header.producerId).toBe(9000);
    expect(d.header.producerEpoch).toBe(4);
    expect(d.header.baseSequence).toBe(-1);
    expect(Buffer.from(d.records[0]!.key!).toString('hex')).toBe('00000001');
    expect(Buffer.from(d.records[0]!.value!).toString('hex')).toBe('000000000011');
    expect(decodeControlRecord(d.records[0]!)).toEqual({
      version: 0,
      type: 1,
      coordinatorEpoch: 17,
    });
  });

  it('refuses malformed control records', () => {
    const rec = { offset: 0, timestamp: 0, headers: [] };
    const code = (key: Uint8Array | null, value: Uint8Array | null) => {
      try {
        decodeControlRecord({ ...rec, key, value });
        return 'ok';
      } catch (err) {
        return isStreamBusError(err) ? err.code : 'untyped';
      }
    };
    expect(code(null, null)).toBe(ErrorCode.INVALID_RECORD);
    expect(code(Buffer.from('0000', 'hex'), null)).toBe(ErrorCode.INVALID_RECORD);
    expect(code(Buffer.from('00000000', 'hex'), Buffer.from('0000', 'hex'))).toBe(
      ErrorCode.INVALID_RECORD,
    );
    expect(code(Buffer.from('00000000', 'hex'), null)).toBe('ok');
  });
});

describe('fuzz: typed errors only', () => {
  const samples: Buffer[] = [
    encodeRecordBatch(
      [
        {
          key: Buffer.from('k'),
          value: Buffer.from('v'.repeat(100)),
          headers: [{ key: 'h', value: null }],
        },
        { value: null },
      ],
      { timestamp: 1 },
    ),
    ...WRITABLE.filter((c) => c !== 0).map((codec) =>
      encodeRecordBatch(
        Array.from({ length: 30 }, (_, i) => ({ value: Buffer.from(`record ${i} `.repeat(20)) })),
        { compression: codec, timestamp: 1 },
      ),
    ),
  ];

  it('random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (b) => allDecoders(b)),
      { numRuns: 300 },
    );
  });

  it('random bytes behind a plausible header', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 0, maxLength: 300 }), fc.nat(7), (tail, codec) => {
        const head = Buffer.from(samples[0]!.subarray(0, 61));
        const b = Buffer.concat([head, tail]);
        b.writeInt32BE(b.length - 12, 8);
        b.writeInt16BE(codec, 21);
        allDecoders(fixCrc(b));
      }),
      { numRuns: 400 },
    );
  });

  it('bit flips, with and without a repaired CRC', () => {
    for (const sample of samples) {
      fc.assert(
        fc.property(fc.nat(sample.length * 8 - 1), fc.boolean(), (bit, repair) => {
          const b = Buffer.from(sample);
          b[bit >> 3] = b[bit >> 3]! ^ (1 << (bit & 7));
          // CRC-32C catches every single-bit error in the bytes it covers, [21, end).
          if (!repair && bit >= 21 * 8) expect(verifyBatchCrc(b)).toBe(false);
          allDecoders(repair ? fixCrc(b) : b);
        }),
        { numRuns: 150 },
      );
    }
  });

  it('truncations', () => {
    for (const sample of samples) {
      for (let len = 0; len < sample.length; len++) {
        const b = Buffer.from(sample.subarray(0, len));
        allDecoders(b);
        // Declared length repaired to the truncated size: the record decoders see the cut.
        if (len >= 61) {
          b.writeInt32BE(len - 12, 8);
          allDecoders(fixCrc(b));
        }
      }
    }
  });
});
