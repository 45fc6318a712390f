import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { decodeResponse, encodeResponse, packBody } from './codec.js';
import { FRAME_HEADER_BYTES, FrameParser } from './frame.js';
import { ApiKey, type FetchResponse } from './messages.js';
import { encodeResponsePartsByRef, PACK_REF_BYTES_MIN, packParts } from './pack-parts.js';

const REQ = { apiKey: ApiKey.FETCH, apiVersion: 0, correlationId: 4242, flags: 0 } as const;

function fetchBody(
  sizes: number[],
  extra: Partial<FetchResponse['topics'][number]['partitions'][number]> = {},
): FetchResponse {
  return {
    topics: [
      {
        name: 'topic-é',
        partitions: sizes.map((n, i) => ({
          errorCode: 0,
          partition: i,
          highWatermark: 2 ** 40 + i,
          logStartOffset: i === 0 ? -1 : 1,
          lastStableOffset: 300 + i * 70_000,
          records: Buffer.alloc(n, i + 1),
          ...extra,
        })),
      },
    ],
  };
}

describe('packParts / encodeResponsePartsByRef', () => {
  it('joins to exactly the bytes of encodeResponse, with large record bytes passed by reference', () => {
    const body = fetchBody([0, 10, PACK_REF_BYTES_MIN - 1, PACK_REF_BYTES_MIN, 70_000, 300]);
    const parts = encodeResponsePartsByRef(REQ, body);
    const joined = Buffer.concat(parts);
    expect(joined.equals(encodeResponse(REQ, body))).toBe(true);
    const recs = body.topics[0]!.partitions.map((p) => p.records);
    // The two large ones are the caller's buffers themselves; the small ones were copied.
    expect(parts.includes(recs[3]!)).toBe(true);
    expect(parts.includes(recs[4]!)).toBe(true);
    expect(parts.includes(recs[2]!)).toBe(false);
    const [frame] = new FrameParser().push(joined);
    expect(frame!.correlationId).toBe(4242);
    const decoded = decodeResponse(ApiKey.FETCH, frame!);
    expect(decoded.topics[0]!.partitions.map((p) => p.records.length)).toEqual([
      0,
      10,
      PACK_REF_BYTES_MIN - 1,
      PACK_REF_BYTES_MIN,
      70_000,
      300,
    ]);
    expect(decoded.topics[0]!.partitions[1]!.highWatermark).toBe(2 ** 40 + 1);
  });

  it('matches msgpack for error partitions, long strings, wide arrays and maps, every int width', () => {
    const body = fetchBody(
      Array.from({ length: 20 }, () => 5),
      { errorCode: 1001, errorMessage: 'x'.repeat(300) },
    );
    expect(
      Buffer.concat(encodeResponsePartsByRef(REQ, body)).equals(encodeResponse(REQ, body)),
    ).toBe(true);
    const wide: Record<string, unknown> = {};
    for (let i = 0; i < 20; i++) wide[`k${i}`] = i;
    const values = [
      0,
      127,
      128,
      255,
      256,
      65_535,
      65_536,
      2 ** 32 - 1,
      2 ** 32,
      -1,
      -32,
      -33,
      -128,
      -129,
      -32_768,
      -32_769,
      -(2 ** 31),
      -(2 ** 31) - 1,
      1.5,
      true,
      false,
      null,
      'a'.repeat(70_000),
      Array.from({ length: 70_000 }, () => 1),
      wide,
    ];
    for (const v of values) {
      const { parts, bodyBytes } = packParts(v);
      const joined = Buffer.concat(parts);
      expect(joined.equals(packBody(v)), String(v).slice(0, 20)).toBe(true);
      expect(bodyBytes).toBe(joined.length);
    }
  });

  it('leaves out undefined keys (a missing optional field decodes the same)', () => {
    const { parts } = packParts({ a: 1, b: undefined });
    expect(Buffer.concat(parts).equals(packBody({ a: 1 }))).toBe(true);
  });

  it('round-trips random fetch responses through the frame parser', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 5000 }), { minLength: 1, maxLength: 18 }),
        fc.integer({ min: 0, max: 2 ** 50 }),
        (sizes, hw) => {
          const body = fetchBody(sizes, { highWatermark: hw });
          const parts = encodeResponsePartsByRef(REQ, body);
          expect(parts[0]!.length).toBeGreaterThanOrEqual(FRAME_HEADER_BYTES);
          const joined = Buffer.concat(parts);
          expect(joined.equals(encodeResponse(REQ, body))).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });
});
