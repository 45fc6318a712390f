import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, StreamBusError } from '../errors.js';
import { encodeFrame, FrameFlag, FrameParser } from './frame.js';
import { FrameAssembler } from './frame-assembler.js';

function frameOf(id: number, bodyBytes: number): Buffer {
  const body = Buffer.alloc(bodyBytes, id & 0xff);
  return encodeFrame(
    { apiKey: 7, apiVersion: 0, correlationId: id, flags: FrameFlag.RESPONSE },
    body,
  );
}

/** Feeds `stream` in pieces of the given sizes through ONE reused chunk buffer. */
function feedReused(a: FrameAssembler, stream: Buffer, sizes: number[]) {
  const scratch = Buffer.alloc(Math.max(1, ...sizes));
  const out = [];
  let p = 0;
  for (let i = 0; p < stream.length; i++) {
    const n = Math.min(sizes[i % sizes.length]!, stream.length - p);
    stream.copy(scratch, 0, p, p + n);
    out.push(...a.push(scratch.subarray(0, n)));
    scratch.fill(0xee); // the caller reuses its buffer: frames must not see that
    p += n;
  }
  return out;
}

describe('FrameAssembler', () => {
  it('yields what FrameParser yields for any chunking, from a reused chunk buffer', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 3000 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 700 }), { minLength: 1, maxLength: 5 }),
        (bodies, sizes) => {
          const stream = Buffer.concat(bodies.map((n, i) => frameOf(i + 1, n)));
          const expected = new FrameParser().push(stream);
          const a = new FrameAssembler();
          const got = feedReused(a, stream, sizes);
          expect(
            got.map((f) => [f.correlationId, f.apiKey, f.flags, f.body.toString('hex')]),
          ).toEqual(
            expected.map((f) => [f.correlationId, f.apiKey, f.flags, f.body.toString('hex')]),
          );
          expect(a.pendingBytes).toBe(0);
        },
      ),
      { numRuns: 150 },
    );
  });

  it('holds a partial frame across pushes and counts its bytes', () => {
    const a = new FrameAssembler();
    const f = frameOf(9, 100);
    expect(a.push(f.subarray(0, 5))).toEqual([]);
    expect(a.pendingBytes).toBe(5);
    expect(a.push(f.subarray(5, 60))).toEqual([]);
    expect(a.pendingBytes).toBe(60);
    const [frame] = a.push(f.subarray(60));
    expect(frame!.correlationId).toBe(9);
    expect(frame!.body.length).toBe(100);
  });

  it('refuses an oversized, too short or unknown-flag header before buffering its body, for good', () => {
    const big = new FrameAssembler({ frameBytesMax: 1000 });
    const header = frameOf(1, 2000).subarray(0, 14);
    expect(() => big.push(header)).toThrow(
      expect.objectContaining({ code: ErrorCode.FRAME_TOO_LARGE }) as unknown as Error,
    );
    expect(() => big.push(frameOf(2, 1))).toThrow(StreamBusError);
    const short = Buffer.from(frameOf(1, 0));
    short.writeUInt32BE(3, 0);
    expect(() => new FrameAssembler().push(short)).toThrow(
      expect.objectContaining({ code: ErrorCode.MALFORMED_FRAME }) as unknown as Error,
    );
    const flags = Buffer.from(frameOf(1, 0));
    flags.writeUInt16BE(0x80, 12);
    expect(() => new FrameAssembler().push(flags)).toThrow(
      expect.objectContaining({ code: ErrorCode.MALFORMED_FRAME }) as unknown as Error,
    );
  });
});
