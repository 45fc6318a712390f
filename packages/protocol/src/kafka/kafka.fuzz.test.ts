// Fuzz tests of every Kafka decoder: mutated golden frames (bit flips, overwrites, truncations,
// splices), hostile counts and lengths written over every field position, and random bodies
// behind a valid header for every (API, version). Decoders may only raise the codec's typed
// errors; whatever decodes must re-encode and decode to the same value. Hostile counts must be
// refused from the bytes left, never allocated: a 2^31 count over a small frame takes no time.

import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isStreamBusError } from '../errors.js';
import { type ApiKeyName, Apis } from './apis.js';
import {
  decodeRequest,
  decodeResponse,
  encodeRequest,
  encodeResponse,
  KafkaFrameParser,
} from './frame.js';

const DIR = fileURLToPath(new URL('../../testdata/kafka/', import.meta.url));
const REQUEST_ERRORS = new Set<number>([
  ErrorCode.INVALID_REQUEST,
  ErrorCode.UNKNOWN_API_KEY,
  ErrorCode.UNSUPPORTED_VERSION,
]);
const RESPONSE_ERRORS = new Set<number>([ErrorCode.CORRUPT_MESSAGE]);
const HOSTILE_PREFIX_BYTES = 160;
const PARSER_ERRORS = new Set<number>([ErrorCode.INVALID_REQUEST, ErrorCode.FRAME_TOO_LARGE]);

interface Golden {
  api: ApiKeyName;
  version: number;
  request: Buffer;
  response: Buffer;
}

const GOLDEN: Golden[] = readdirSync(DIR)
  .filter((f) => /-v\d+\.bin$/.test(f) && !f.endsWith('.response.bin'))
  .sort()
  .map((f) => {
    const m = /-([A-Za-z]+)-v(\d+)\.bin$/.exec(f)!;
    return {
      api: m[1] as ApiKeyName,
      version: Number(m[2]),
      request: readFileSync(DIR + f).subarray(4),
      response: readFileSync(DIR + f.replace(/\.bin$/, '.response.bin')).subarray(4),
    };
  });

function typedOnly(codes: Set<number>, fn: () => void): void {
  try {
    fn();
  } catch (err) {
    if (!isStreamBusError(err) || !codes.has(err.code)) {
      throw new Error(`untyped or unexpected error: ${String(err)}`, { cause: err });
    }
  }
}

/** Decodes a request; if it decodes, its re-encoding must decode to the same value. */
function checkRequest(frame: Buffer): void {
  typedOnly(REQUEST_ERRORS, () => {
    const req = decodeRequest(frame);
    const { apiKey: _key, ...header } = req.header;
    const again = encodeRequest(req.name, header, req.body as never);
    const back = decodeRequest(again.subarray(4));
    const { apiKey: _k, ...header2 } = back.header;
    expect(encodeRequest(back.name, header2, back.body as never).equals(again)).toBe(true);
  });
}

function checkResponse(api: ApiKeyName, version: number, frame: Buffer): void {
  typedOnly(RESPONSE_ERRORS, () => {
    const res = decodeResponse(api, version, frame);
    const again = encodeResponse(api, version, res.correlationId, res.body as never, res.tags);
    const back = decodeResponse(api, version, again.subarray(4));
    const third = encodeResponse(api, version, back.correlationId, back.body as never, back.tags);
    expect(third.equals(again)).toBe(true);
  });
}

type Mutation =
  | { kind: 'flip'; at: number; bit: number }
  | { kind: 'set'; at: number; value: number }
  | { kind: 'truncate'; at: number }
  | { kind: 'splice'; at: number; bytes: Uint8Array };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    kind: fc.constant('flip' as const),
    at: fc.nat(),
    bit: fc.integer({ min: 0, max: 7 }),
  }),
  fc.record({
    kind: fc.constant('set' as const),
    at: fc.nat(),
    value: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ kind: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    kind: fc.constant('splice' as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 8 }),
  }),
);

function mutate(src: Buffer, ms: readonly Mutation[], keepHeader: number): Buffer {
  let b = Buffer.from(src);
  for (const m of ms) {
    if (b.length <= keepHeader) break;
    const at = keepHeader + (m.at % (b.length - keepHeader));
    if (m.kind === 'flip') b[at]! ^= 1 << m.bit;
    else if (m.kind === 'set') b[at] = m.value;
    else if (m.kind === 'truncate') b = b.subarray(0, at);
    else b = Buffer.concat([b.subarray(0, at), m.bytes, b.subarray(at)]);
  }
  return b;
}

describe('kafka decoders under fuzzing', () => {
  it('mutated golden requests raise only typed errors', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: GOLDEN.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        fc.boolean(),
        (i, ms, header) => checkRequest(mutate(GOLDEN[i]!.request, ms, header ? 0 : 4)),
      ),
      { numRuns: 8000 },
    );
  });

  it('mutated golden responses raise only typed errors', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: GOLDEN.length - 1 }),
        fc.array(mutation, { minLength: 1, maxLength: 4 }),
        (i, ms) => {
          const g = GOLDEN[i]!;
          checkResponse(g.api, g.version, mutate(g.response, ms, 0));
        },
      ),
      { numRuns: 8000 },
    );
  });

  it('hostile counts and lengths at every position are refused without allocating', () => {
    const started = Date.now();
    for (const g of GOLDEN) {
      // The counts and lengths sit in the first bytes; past them are record batches and values.
      for (let at = 4; at + 4 <= Math.min(g.request.length, HOSTILE_PREFIX_BYTES); at++) {
        for (const [value, width] of [
          [0x7fffffff, 4],
          [0x7fff, 2],
          [-2, 4],
        ] as const) {
          const b = Buffer.from(g.request);
          if (width === 4) b.writeInt32BE(value, at);
          else b.writeInt16BE(value, at);
          checkRequest(b);
          const r = Buffer.from(g.response);
          if (at + 4 <= r.length) {
            if (width === 4) r.writeInt32BE(value, at);
            else r.writeInt16BE(value, at);
            checkResponse(g.api, g.version, r);
          }
        }
      }
    }
    // Thousands of decodes: a decoder that allocated what a count claims would not be
    // done in this time (nor fit in memory).
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('random bodies behind a valid header, for every API and version', () => {
    const targets: { api: ApiKeyName; version: number }[] = [];
    for (const a of Object.values(Apis)) {
      for (let v = a.codecMin; v <= a.codecMax; v++) targets.push({ api: a.name, version: v });
    }
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: targets.length - 1 }),
        fc.uint8Array({ maxLength: 64 }),
        (i, body) => {
          const { api, version } = targets[i]!;
          const head = Buffer.alloc(10);
          head.writeInt16BE(Apis[api].key, 0);
          head.writeInt16BE(version, 2);
          head.writeInt32BE(7, 4);
          head.writeInt16BE(-1, 8);
          checkRequest(Buffer.concat([head, body]));
          checkResponse(api, version, Buffer.concat([head.subarray(4, 8), body]));
        },
      ),
      { numRuns: 8000 },
    );
  });

  it('random bytes raise only typed errors from every decoder', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 96 }), (bytes) => {
        const b = Buffer.from(bytes);
        checkRequest(b);
        for (const a of Object.values(Apis)) checkResponse(a.name, a.codecMax, b);
      }),
      { numRuns: 1500 },
    );
  });

  it('the frame parser on random streams: typed refusals, frames within bounds', () => {
    fc.assert(
      fc.property(
        fc.array(fc.uint8Array({ maxLength: 40 }), { maxLength: 12 }),
        fc.integer({ min: 8, max: 4096 }),
        (chunks, frameBytesMax) => {
          const p = new KafkaFrameParser({ frameBytesMax });
          typedOnly(PARSER_ERRORS, () => {
            for (const c of chunks) {
              for (const f of p.push(c)) {
                expect(f.length).toBeLessThanOrEqual(frameBytesMax);
                expect(f.length).toBeGreaterThanOrEqual(8);
              }
            }
          });
          expect(p.bufferedBytes).toBeLessThanOrEqual(frameBytesMax + 4);
        },
      ),
      { numRuns: 2000 },
    );
  });
});
