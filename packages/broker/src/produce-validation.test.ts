import { gzipSync } from 'node:zlib';
import {
  BatchField,
  Compression,
  crc32c,
  ErrorCode,
  encodeRecordBatch,
  RECORD_BATCH_HEADER_BYTES,
  StreamBusError,
} from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { validateProduceRecords } from './produce-validation.js';

const NOW = 1_700_000_000_000;
const limits = { maxMessageBytes: 10_000, segmentBytes: 100_000, timestampSkewMsMax: -1 };

function batch(n: number, options: Parameters<typeof encodeRecordBatch>[1] = {}): Buffer {
  const records = Array.from({ length: n }, (_, i) => ({ value: Buffer.from(`value-${i}`) }));
  return encodeRecordBatch(records, { timestamp: NOW, ...options });
}

/** Rewrites a CRC-covered header field and fixes the CRC, as a buggy (not malicious) producer would. */
function withField(b: Buffer, field: number, write: (b: Buffer) => void): Buffer {
  const copy = Buffer.from(b);
  write(copy);
  copy.writeUInt32BE(crc32c(copy, 0, BatchField.ATTRIBUTES, copy.length), BatchField.CRC);
  expect(field).toBeGreaterThanOrEqual(BatchField.ATTRIBUTES);
  return copy;
}

function code(records: Buffer, l = limits): number {
  try {
    validateProduceRecords(records, l, NOW);
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    return (err as StreamBusError).code;
  }
  return 0;
}

/** The error validateProduceRecords throws (or null), for code and message. */
function refusal(records: Buffer, decompressedBytesMax?: number): StreamBusError | null {
  try {
    validateProduceRecords(records, limits, NOW, decompressedBytesMax);
    return null;
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    return err as StreamBusError;
  }
}

/** Sets record-section byte `at` (counted from the end of the header) and fixes the CRC. */
function withRecordByte(b: Buffer, at: number, value: number): Buffer {
  const copy = Buffer.from(b);
  copy[RECORD_BATCH_HEADER_BYTES + at] = value;
  copy.writeUInt32BE(crc32c(copy, 0, BatchField.ATTRIBUTES, copy.length), BatchField.CRC);
  return copy;
}

/** Sets recordCount and lastOffsetDelta to agree with `n` and fixes the CRC. */
function claiming(b: Buffer, n: number): Buffer {
  return withField(b, BatchField.RECORD_COUNT, (x) => {
    x.writeInt32BE(n, BatchField.RECORD_COUNT);
    x.writeInt32BE(n - 1, BatchField.LAST_OFFSET_DELTA);
  });
}

describe('validateProduceRecords', () => {
  it('accepts back-to-back batches and reports positions and counts', () => {
    const a = batch(3);
    const b = batch(2, { producerId: 4, producerEpoch: 0, baseSequence: 3 });
    const v = validateProduceRecords(Buffer.concat([a, b]), limits, NOW);
    expect(v.recordCount).toBe(5);
    expect(v.batches.map((x) => [x.position, x.size])).toEqual([
      [0, a.length],
      [a.length, b.length],
    ]);
    expect(v.batches[1]!.header.producerId).toBe(4);
  });

  it('rejects a flipped bit (CRC), a truncated batch and garbage', () => {
    const a = batch(3);
    a[a.length - 1]! ^= 0x01;
    expect(code(a)).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect(code(batch(3).subarray(0, 70))).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect(
      code(Buffer.from('definitely not a record batch, but long enough to have a header!!')),
    ).toBe(ErrorCode.CORRUPT_MESSAGE);
    expect(code(Buffer.alloc(0))).toBe(ErrorCode.INVALID_RECORD);
  });

  it('enforces max.message.bytes per batch and segment.bytes per set', () => {
    expect(code(batch(200), { ...limits, maxMessageBytes: 1000 })).toBe(
      ErrorCode.MESSAGE_TOO_LARGE,
    );
    expect(code(Buffer.concat([batch(50), batch(50)]), { ...limits, segmentBytes: 1000 })).toBe(
      ErrorCode.RECORD_LIST_TOO_LARGE,
    );
  });

  it('rejects inconsistent counts, control and transactional batches', () => {
    const b = batch(3);
    const tampered = Buffer.from(b);
    tampered.writeInt32BE(5, BatchField.LAST_OFFSET_DELTA);
    expect(code(tampered)).toBe(ErrorCode.CORRUPT_MESSAGE); // CRC-covered field changed
    const gapDelta = withField(b, BatchField.LAST_OFFSET_DELTA, (x) =>
      x.writeInt32BE(5, BatchField.LAST_OFFSET_DELTA),
    );
    expect(code(gapDelta)).toBe(ErrorCode.INVALID_RECORD);
    const empty = withField(b, BatchField.RECORD_COUNT, (x) => {
      x.writeInt32BE(0, BatchField.RECORD_COUNT);
      x.writeInt32BE(-1, BatchField.LAST_OFFSET_DELTA);
    });
    expect(code(empty)).toBe(ErrorCode.INVALID_RECORD);
    const backwards = withField(b, BatchField.MAX_TIMESTAMP, (x) =>
      x.writeBigInt64BE(BigInt(NOW - 1), BatchField.MAX_TIMESTAMP),
    );
    expect(code(backwards)).toBe(ErrorCode.INVALID_TIMESTAMP);
    expect(code(batch(1, { isTransactional: true }))).toBe(ErrorCode.INVALID_RECORD);
    expect(code(batch(1, { isControl: true }))).toBe(ErrorCode.INVALID_RECORD);
    expect(code(batch(1, { producerId: 3, producerEpoch: -1, baseSequence: 0 }))).toBe(
      ErrorCode.INVALID_RECORD,
    );
  });

  it('checks timestamps against the topic skew', () => {
    const old = encodeRecordBatch([{ value: Buffer.from('x'), timestamp: NOW - 10_000 }]);
    expect(code(old)).toBe(0);
    expect(code(old, { ...limits, timestampSkewMsMax: 5000 })).toBe(ErrorCode.INVALID_TIMESTAMP);
    expect(code(encodeRecordBatch([{ value: null, timestamp: -5 }]))).toBe(
      ErrorCode.INVALID_TIMESTAMP,
    );
  });

  describe('record framing (valid CRC, records contradicting the header)', () => {
    const keyed = encodeRecordBatch(
      [{ key: Buffer.from('k'), value: Buffer.from('a value, long enough') }],
      {
        timestamp: NOW,
      },
    );

    it('refuses a record count of 2 with one record inside', () => {
      const err = refusal(claiming(keyed, 2));
      expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
      expect(err?.message).toMatch(
        /^batch 0: the header declares 2 records, the records section holds 1/,
      );
    });

    it('refuses a record length of -1', () => {
      const err = refusal(withRecordByte(keyed, 0, 0x01));
      expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
      expect(err?.message).toMatch(/record 0 of 1: length -1/);
    });

    it('refuses a key length of -5 and one past the end of the batch', () => {
      // length | attributes | timestampDelta | offsetDelta | keyLength: the key length is byte 4
      expect(keyed[RECORD_BATCH_HEADER_BYTES + 4]).toBe(2);
      const negative = refusal(withRecordByte(keyed, 4, 9));
      expect(negative?.code).toBe(ErrorCode.INVALID_RECORD);
      expect(negative?.message).toMatch(/record 0: key length -5 is negative/);
      const past = refusal(withRecordByte(keyed, 4, 120));
      expect(past?.code).toBe(ErrorCode.INVALID_RECORD);
      expect(past?.message).toMatch(/record 0: key length 60 runs past the record's end/);
    });

    it('refuses a gzip batch claiming 1,000,000 records with one inside', () => {
      const gz = encodeRecordBatch([{ value: Buffer.from('x') }], {
        timestamp: NOW,
        compression: Compression.GZIP,
      });
      expect(refusal(gz)).toBeNull();
      const err = refusal(claiming(gz, 1_000_000));
      expect(err?.code).toBe(ErrorCode.INVALID_RECORD);
      expect(err?.message).toMatch(/recordCount 1000000 cannot fit/);
    });

    it('names the batch of the set that is wrong and refuses the whole set', () => {
      const err = refusal(Buffer.concat([batch(2), batch(1), claiming(keyed, 2)]));
      expect(err?.message).toMatch(/^batch 2: /);
    });

    it('refuses a gzip bomb within decompressedBytesMax', () => {
      const inflated = Buffer.alloc(4 * 1024 * 1024);
      const bomb = Buffer.concat([
        keyed.subarray(0, RECORD_BATCH_HEADER_BYTES),
        gzipSync(inflated),
      ]);
      bomb.writeInt32BE(bomb.length - 12, BatchField.BATCH_LENGTH);
      const armed = withField(bomb, BatchField.ATTRIBUTES, (x) =>
        x.writeInt16BE(Compression.GZIP, BatchField.ATTRIBUTES),
      );
      const err = refusal(armed, 1024 * 1024);
      expect(err?.code).toBe(ErrorCode.CORRUPT_COMPRESSED_DATA);
      expect(err?.message).toMatch(/inflates past the bound of 1048576 bytes/);
    });
  });
});
