import fc from 'fast-check';
import { Packr } from 'msgpackr';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isStreamBusError, StreamBusError } from '../errors.js';
import { decodeRequest, encodeRequest, packBody } from './codec.js';
import { FRAME_HEADER_BYTES, type Frame } from './frame.js';
import { ApiKey } from './messages.js';
import { MSGPACK_LIMITS_DEFAULT, scanMsgpack } from './msgpack-scan.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

function refusal(fn: () => unknown): StreamBusError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StreamBusError);
    expect((err as StreamBusError).code).toBe(ErrorCode.INVALID_REQUEST);
    return err as StreamBusError;
  }
  throw new Error('expected INVALID_REQUEST, nothing was thrown');
}

/** array32 header for `n` items followed by `n` copies of `item`. */
function arrayOf(n: number, item: number[]): Buffer {
  const out = Buffer.alloc(5 + n * item.length);
  out[0] = 0xdd;
  out.writeUInt32BE(n, 1);
  for (let i = 0; i < n; i++) out.set(item, 5 + i * item.length);
  return out;
}

function frameOf(apiKey: number, body: Buffer): Frame {
  return { apiKey, apiVersion: 0, correlationId: 1, flags: 0, body };
}

/** Values and containers in a JS value as msgpack would encode it. */
function countValues(v: unknown): { elements: number; depth: number } {
  if (Array.isArray(v)) {
    let elements = 1;
    let depth = 0;
    for (const x of v) {
      const c = countValues(x);
      elements += c.elements;
      depth = Math.max(depth, c.depth);
    }
    return { elements, depth: depth + 1 };
  }
  if (v !== null && typeof v === 'object' && !(v instanceof Uint8Array)) {
    let elements = 1;
    let depth = 0;
    for (const x of Object.values(v)) {
      const c = countValues(x);
      elements += 1 + c.elements;
      depth = Math.max(depth, c.depth);
    }
    return { elements, depth: depth + 1 };
  }
  return { elements: 1, depth: 0 };
}

const value = fc.letrec((tie) => ({
  leaf: fc.oneof(
    fc.integer({ min: -(2 ** 40), max: 2 ** 40 }),
    fc.double({ noNaN: true }),
    fc.boolean(),
    fc.constant(null),
    fc.string({ maxLength: 300 }),
    fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
  ),
  node: fc.oneof(
    { depthSize: 'small' },
    tie('leaf'),
    fc.array(tie('node'), { maxLength: 20 }),
    fc.dictionary(fc.string({ minLength: 1, maxLength: 8 }), tie('node'), { maxKeys: 20 }),
  ),
})).node;

describe('scanMsgpack', () => {
  it('accepts what msgpackr encodes and counts its values and depth', () => {
    fc.assert(
      fc.property(value, (v) => {
        const shape = scanMsgpack(packr.pack(v));
        const expected = countValues(v);
        expect(shape.elements).toBe(expected.elements);
        expect(shape.depth).toBe(expected.depth);
        expect(shape.decodedBytes).toBeGreaterThanOrEqual(8 * expected.elements);
      }),
      { numRuns: 300 },
    );
  });

  it('never throws anything but INVALID_REQUEST on mutated or truncated bytes', () => {
    fc.assert(
      fc.property(
        value,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }),
        fc.nat(),
        (v, flips, cut) => {
          const bytes = Buffer.from(packr.pack(v));
          for (const [at, b] of flips) if (bytes.length > 0) bytes[at % bytes.length] = b;
          const mutated = bytes.subarray(0, bytes.length - (cut % 3));
          try {
            scanMsgpack(mutated, { ...MSGPACK_LIMITS_DEFAULT, elementsMax: 10_000 });
          } catch (err) {
            expect(isStreamBusError(err, ErrorCode.INVALID_REQUEST)).toBe(true);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('refuses a body of a million empty maps before msgpackr builds them', () => {
    // 15 arrays of 66,667 empty maps: every container within lengthMax.
    const body = Buffer.concat([
      Buffer.from([0x90 | 15]),
      ...Array(15).fill(arrayOf(66_667, [0x80])),
    ]);
    const limits = { ...MSGPACK_LIMITS_DEFAULT, decodedBytesMax: 16 * 1024 * 1024 };
    const t0 = performance.now();
    const err = refusal(() => scanMsgpack(body, limits, 'metadata'));
    expect(performance.now() - t0).toBeLessThan(500);
    expect(err.message).toMatch(/^metadata: decoded size over 16777216 bytes/);
    // Through the request codec: the bound is named, not a late schema mismatch.
    expect(
      refusal(() => decodeRequest(ApiKey.METADATA, frameOf(ApiKey.METADATA, body), limits)).message,
    ).toMatch(/decoded size over/);
  });

  it('refuses too many values, too long containers, deep nesting, lying lengths and trailing bytes', () => {
    expect(
      refusal(() =>
        scanMsgpack(arrayOf(50_000, [0x01]), { ...MSGPACK_LIMITS_DEFAULT, elementsMax: 1000 }),
      ).message,
    ).toMatch(/more than 1000 msgpack values/);
    expect(refusal(() => scanMsgpack(arrayOf(100_001, [0xc0]))).message).toMatch(
      /array of 100001 items exceeds 100000/,
    );
    const map32 = Buffer.from([0xdf, 0x00, 0x02, 0x00, 0x00]);
    expect(refusal(() => scanMsgpack(map32)).message).toMatch(/map of 131072 entries/);
    // 100,000 nested one-item arrays: msgpackr alone would recurse 100,000 deep.
    const deep = Buffer.alloc(100_001, 0x91);
    deep[100_000] = 0x01;
    expect(refusal(() => scanMsgpack(deep)).message).toMatch(/nesting deeper than 32/);
    // An array declaring 4 billion items in 5 bytes, a string longer than the body.
    expect(refusal(() => scanMsgpack(Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff]))).message).toMatch(
      /exceeds|truncated/,
    );
    expect(refusal(() => scanMsgpack(Buffer.from([0xdb, 0, 0, 1, 0, 0x41]))).message).toMatch(
      /truncated/,
    );
    expect(refusal(() => scanMsgpack(Buffer.from([0x80, 0x80]))).message).toMatch(
      /1 trailing bytes/,
    );
    expect(refusal(() => scanMsgpack(Buffer.from([0xc1]))).message).toMatch(/invalid msgpack byte/);
    expect(refusal(() => scanMsgpack(Buffer.alloc(0))).message).toMatch(/truncated/);
  });

  it('skips record batches in O(1): a 4 MiB produce body is a handful of values', () => {
    const records = Buffer.alloc(4 * 1024 * 1024, 7);
    const frame = encodeRequest(ApiKey.PRODUCE, 1, {
      acks: 1,
      timeoutMs: 1000,
      topics: [{ name: 't', partitions: [{ partition: 0, records }] }],
    });
    const shape = scanMsgpack(frame.subarray(FRAME_HEADER_BYTES));
    expect(shape.elements).toBeLessThan(20);
    expect(shape.depth).toBe(5); // map > array > map > array > map
    expect(shape.decodedBytes).toBeLessThan(2000);
  });

  it('estimates at least what msgpackr allocates for the worst kinds of values', () => {
    // Bytes per value measured with msgpackr 2.1 (docs in msgpack-scan.ts): empty maps 64,
    // empty arrays 40, 1-byte bins 104, float64 24.
    const n = 10_000;
    const cases: Array<[number[], number]> = [
      [[0x80], 64],
      [[0x90], 40],
      [[0xc4, 1, 7], 104],
      [[0xcb, 0x3f, 0xf1, 0, 0, 0, 0, 0, 1], 24],
    ];
    for (const [item, perValue] of cases) {
      const shape = scanMsgpack(arrayOf(n, item));
      expect(shape.decodedBytes).toBeGreaterThanOrEqual(n * perValue);
    }
    expect(scanMsgpack(packBody({ a: 1 })).elements).toBe(3);
  });
});
