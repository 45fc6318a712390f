import { describe, expect, it } from 'vitest';
import { crc32c } from './crc32c.js';
import { ErrorCode, isStreamBusError } from './errors.js';
import {
  batchSizeAt,
  decodeRecordBatch,
  encodeRecordBatch,
  RECORD_BATCH_HEADER_BYTES,
  readBatchHeader,
  setBaseOffset,
  setPartitionLeaderEpoch,
  splitBatches,
  validateBatch,
  verifyBatchCrc,
} from './record-batch.js';

/** kafka-protocol.md §5.4: one record, key null, value "hi", checked against kafkajs 2.2.4. */
const GOLDEN = Buffer.from(
  '0000000000000000' +
    '0000003a' +
    '00000000' +
    '02' +
    'bbcc4115' +
    '0000' +
    '00000000' +
    '0000018bcfe56800' +
    '0000018bcfe56800' +
    'ffffffffffffffff' +
    'ffff' +
    'ffffffff' +
    '00000001' +
    '100000000104686900',
  'hex',
);

function codeOf(fn: () => unknown): number | string {
  try {
    fn();
    return 'no error';
  } catch (err) {
    return isStreamBusError(err) ? err.code : `untyped: ${String(err)}`;
  }
}

const enc = (s: string) => Buffer.from(s, 'utf8');

describe('golden 70-byte batch', () => {
  it('decodes', () => {
    expect(GOLDEN.length).toBe(70);
    const { header, records, isControl } = decodeRecordBatch(GOLDEN);
    expect(header).toEqual({
      baseOffset: 0,
      batchLength: 58,
      partitionLeaderEpoch: 0,
      magic: 2,
      crc: 0xbbcc4115,
      attributes: 0,
      lastOffsetDelta: 0,
      baseTimestamp: 1700000000000,
      maxTimestamp: 1700000000000,
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
      recordCount: 1,
    });
    expect(isControl).toBe(false);
    expect(records).toHaveLength(1);
    const r = records[0]!;
    expect(r.offset).toBe(0);
    expect(r.timestamp).toBe(1700000000000);
    expect(r.key).toBeNull();
    expect(Buffer.from(r.value!).toString()).toBe('hi');
    expect(r.headers).toEqual([]);
  });

  it('re-encodes byte for byte', () => {
    const out = encodeRecordBatch([{ value: enc('hi'), timestamp: 1700000000000 }], {
      producerId: -1,
      producerEpoch: -1,
      baseSequence: -1,
    });
    expect(out.toString('hex')).toBe(GOLDEN.toString('hex'));
  });
});

describe('header view', () => {
  it('reads sizes and verifies the CRC without decoding', () => {
    expect(batchSizeAt(GOLDEN)).toBe(70);
    expect(verifyBatchCrc(GOLDEN)).toBe(true);
    expect(validateBatch(GOLDEN).recordCount).toBe(1);
    const bad = Buffer.from(GOLDEN);
    bad[69] = bad[69]! ^ 1;
    expect(verifyBatchCrc(bad)).toBe(false);
    expect(codeOf(() => validateBatch(bad))).toBe(ErrorCode.CORRUPT_MESSAGE);
  });

  it('patches baseOffset and partitionLeaderEpoch in place, keeping the CRC valid', () => {
    const b = Buffer.concat([Buffer.alloc(5), GOLDEN]);
    setBaseOffset(b, 5, 2 ** 53 - 1);
    setPartitionLeaderEpoch(b, 5, 77);
    const h = readBatchHeader(b, 5);
    expect(h.baseOffset).toBe(2 ** 53 - 1);
    expect(h.partitionLeaderEpoch).toBe(77);
    expect(verifyBatchCrc(b, 5)).toBe(true);
    setBaseOffset(b, 5, 1234);
    const d = decodeRecordBatch(b, 5);
    expect(d.records[0]!.offset).toBe(1234);
    expect(codeOf(() => setBaseOffset(b, 5, 2 ** 53))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => setPartitionLeaderEpoch(b, 5, 2 ** 31))).toBe(ErrorCode.INVALID_ARGUMENT);
  });

  it('refuses short headers, bad magic and small lengths', () => {
    expect(codeOf(() => readBatchHeader(GOLDEN.subarray(0, 60)))).toBe(ErrorCode.CORRUPT_MESSAGE);
    const m = Buffer.from(GOLDEN);
    m[16] = 1;
    expect(codeOf(() => readBatchHeader(m))).toBe(ErrorCode.CORRUPT_MESSAGE);
    const l = Buffer.from(GOLDEN);
    l.writeInt32BE(48, 8);
    expect(codeOf(() => batchSizeAt(l))).toBe(ErrorCode.CORRUPT_MESSAGE);
    const big = Buffer.from(GOLDEN);
    big.writeInt32BE(0x00400000, 0); // baseOffset high word beyond 2^53
    expect(codeOf(() => readBatchHeader(big))).toBe(ErrorCode.CORRUPT_MESSAGE);
  });

  it('splits back-to-back batches and refuses a partial tail', () => {
    const a = encodeRecordBatch([{ value: enc('a') }, { value: enc('b') }], { baseOffset: 0 });
    const b = encodeRecordBatch([{ value: enc('c') }], { baseOffset: 2 });
    const all = Buffer.concat([a, b, GOLDEN]);
    expect(splitBatches(all)).toEqual([
      { position: 0, size: a.length },
      { position: a.length, size: b.length },
      { position: a.length + b.length, size: 70 },
    ]);
    expect(splitBatches(new Uint8Array(0))).toEqual([]);
    expect(codeOf(() => splitBatches(all.subarray(0, all.length - 1)))).toBe(
      ErrorCode.CORRUPT_MESSAGE,
    );
    expect(codeOf(() => splitBatches(all.subarray(0, a.length + 30)))).toBe(
      ErrorCode.CORRUPT_MESSAGE,
    );
  });

  it('rejects insane counts as INVALID_RECORD', () => {
    const b = Buffer.from(GOLDEN);
    b.writeInt32BE(5, 57); // recordCount 5 with lastOffsetDelta 0
    b.writeUInt32BE(0, 17);
    b.writeUInt32BE(crc32c(b, 0, 21, b.length), 17);
    expect(codeOf(() => validateBatch(b))).toBe(ErrorCode.INVALID_RECORD);
  });
});

describe('encode/decode', () => {
  it('round-trips keys, values, nulls, headers and timestamps', () => {
    const records = [
      {
        key: enc('k1'),
        value: enc('v1'),
        timestamp: 1000,
        headers: [{ key: 'h', value: enc('x') }],
      },
      { key: null, value: null, timestamp: 999 },
      { value: new Uint8Array(0), timestamp: 5000, headers: [{ key: 'ünï', value: null }] },
    ];
    const batch = encodeRecordBatch(records, {
      baseOffset: 100,
      producerId: 42,
      producerEpoch: 3,
      baseSequence: 7,
      partitionLeaderEpoch: 9,
      isTransactional: true,
    });
    const { header, records: out } = decodeRecordBatch(batch);
    expect(header.baseOffset).toBe(100);
    expect(header.lastOffsetDelta).toBe(2);
    expect(header.baseTimestamp).toBe(1000);
    expect(header.maxTimestamp).toBe(5000);
    expect(header.producerId).toBe(42);
    expect(header.producerEpoch).toBe(3);
    expect(header.baseSequence).toBe(7);
    expect(header.partitionLeaderEpoch).toBe(9);
    expect(header.attributes).toBe(0x10);
    expect(out.map((r) => r.offset)).toEqual([100, 101, 102]);
    expect(out.map((r) => r.timestamp)).toEqual([1000, 999, 5000]);
    expect(Buffer.from(out[0]!.key!).toString()).toBe('k1');
    expect(out[1]!.key).toBeNull();
    expect(out[1]!.value).toBeNull();
    expect(out[2]!.value!.length).toBe(0);
    expect(out[2]!.headers).toEqual([{ key: 'ünï', value: null }]);
    expect(Buffer.from(out[0]!.headers[0]!.value!).toString()).toBe('x');
  });

  it('decodes multi-byte varints, shares one frozen empty headers array, keeps fields own', () => {
    // 300 records: offsetDeltas from 64 up and 200-byte values need 2-byte varints.
    const records = Array.from({ length: 300 }, (_, i) => ({
      key: i % 2 === 0 ? enc(`k${i}`) : null,
      value: enc('v'.repeat(i === 299 ? 200 : 1)),
      timestamp: 1000 + i * 1000,
      ...(i === 150 ? { headers: [{ key: 'h', value: enc('y') }] } : {}),
    }));
    const out = decodeRecordBatch(encodeRecordBatch(records, { baseOffset: 7 })).records;
    expect(out.map((r) => r.offset)).toEqual(records.map((_, i) => 7 + i));
    expect(out.map((r) => r.timestamp)).toEqual(records.map((r) => r.timestamp));
    expect(Buffer.from(out[298]!.key!).toString()).toBe('k298');
    expect(out[299]!.value!.length).toBe(200);
    // Views are real Buffers: Buffer methods work on them directly.
    expect(Buffer.isBuffer(out[298]!.key)).toBe(true);
    expect((out[298]!.key as Buffer).toString('utf8')).toBe('k298');
    expect((out[299]!.value as Buffer).subarray(0, 2).toString()).toBe('vv');
    expect(out[150]!.headers).toEqual([{ key: 'h', value: enc('y') }]);
    expect(out[0]!.headers).toBe(out[1]!.headers);
    expect(Object.isFrozen(out[0]!.headers)).toBe(true);
    // Spreading or serialising a record sees every field (callers copy records this way).
    const copy = { ...out[0]! };
    expect(Object.keys(copy).sort()).toEqual(['headers', 'key', 'offset', 'timestamp', 'value']);
    expect(Buffer.from(copy.value!).toString()).toBe('v');
  });

  it('appends to a given array and leaves out offsets below minOffset', () => {
    const a = encodeRecordBatch([{ value: enc('a') }, { value: enc('b') }], { baseOffset: 10 });
    const b = encodeRecordBatch([{ value: enc('c') }, { value: enc('d') }], { baseOffset: 12 });
    const into: ReturnType<typeof decodeRecordBatch>['records'] = [];
    const first = decodeRecordBatch(a, 0, { appendTo: into, minOffset: 11 });
    expect(first.records).toBe(into);
    decodeRecordBatch(b, 0, { appendTo: into, minOffset: 11 });
    expect(into.map((r) => [r.offset, Buffer.from(r.value!).toString()])).toEqual([
      [11, 'b'],
      [12, 'c'],
      [13, 'd'],
    ]);
  });

  it('encodes large timestamp deltas as varlongs', () => {
    const batch = encodeRecordBatch([
      { value: null, timestamp: 0 },
      { value: null, timestamp: 2 ** 52 },
      { value: null, timestamp: -(2 ** 52) },
    ]);
    expect(decodeRecordBatch(batch).records.map((r) => r.timestamp)).toEqual([
      0,
      2 ** 52,
      -(2 ** 52),
    ]);
  });

  it('uses the default timestamp and refuses bad arguments', () => {
    const batch = encodeRecordBatch([{ value: null }], { timestamp: 77 });
    expect(decodeRecordBatch(batch).records[0]!.timestamp).toBe(77);
    expect(codeOf(() => encodeRecordBatch([]))).toBe(ErrorCode.INVALID_ARGUMENT);
    expect(codeOf(() => encodeRecordBatch([{ value: null }], { producerEpoch: 40000 }))).toBe(
      ErrorCode.INVALID_ARGUMENT,
    );
    expect(RECORD_BATCH_HEADER_BYTES).toBe(61);
  });
});
