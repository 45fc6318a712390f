// The one batch walk (BatchCursor / batchSpans): on valid runs of batches it agrees with the
// naive `12 + batchLength` walk it replaces; on mutated bytes (bit flips, truncations, forged
// lengths, random bytes) it never throws anything but CORRUPT_MESSAGE and never reports a span
// outside the range it was given.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ErrorCode, isStreamBusError } from './errors.js';
import {
  BatchCursor,
  BatchField,
  type BatchSpan,
  batchSpans,
  encodeRecordBatch,
  peekBatchSize,
  RECORD_BATCH_HEADER_BYTES,
} from './record-batch.js';

/** The hand-written walk the cursor replaced (trusts every length). */
function naiveSpans(buf: Buffer): BatchSpan[] {
  const out: BatchSpan[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const size = 12 + buf.readInt32BE(pos + BatchField.BATCH_LENGTH);
    out.push({ position: pos, size });
    pos += size;
  }
  return out;
}

/** Whole batches of `buf[start, end)` by a partial-tail cursor, and where they end. */
function windowSpans(buf: Uint8Array, start = 0, end = buf.length) {
  const c = new BatchCursor(buf, start, end, true);
  const spans: BatchSpan[] = [];
  while (c.next()) spans.push({ position: c.position, size: c.size });
  return { spans, wholeEnd: c.wholeEnd, tailSize: c.size };
}

/** Runs fn; a thrown error must be CORRUPT_MESSAGE. Returns the value or null. */
function typedOnly<T>(fn: () => T): T | null {
  try {
    return fn();
  } catch (err) {
    if (!isStreamBusError(err, ErrorCode.CORRUPT_MESSAGE)) {
      throw new Error(`untyped or unexpected error: ${String(err)}`, { cause: err });
    }
    return null;
  }
}

const batchArb = fc
  .array(fc.record({ value: fc.uint8Array({ maxLength: 80 }) }), { minLength: 1, maxLength: 5 })
  .map((records) => encodeRecordBatch(records, { timestamp: 1_700_000_000_000 }));
const runArb = fc.array(batchArb, { minLength: 0, maxLength: 6 }).map((bs) => Buffer.concat(bs));

function expectTiles(spans: BatchSpan[], start: number, end: number): void {
  let at = start;
  for (const s of spans) {
    expect(s.position).toBe(at);
    expect(s.size).toBeGreaterThanOrEqual(RECORD_BATCH_HEADER_BYTES);
    at += s.size;
  }
  expect(at).toBeLessThanOrEqual(end);
}

describe('batchSpans / BatchCursor', () => {
  it('agrees with the naive walk on valid runs of batches', () => {
    fc.assert(
      fc.property(runArb, (run) => {
        const spans = [...batchSpans(run)];
        expect(spans).toEqual(naiveSpans(run));
        expectTiles(spans, 0, run.length);
        expect(windowSpans(run)).toEqual({ spans, wholeEnd: run.length, tailSize: 0 });
      }),
      { numRuns: 300 },
    );
  });

  it('a window (any prefix, any batch-aligned start) yields the whole batches inside it', () => {
    fc.assert(
      fc.property(runArb, fc.nat(), fc.nat(), (run, a, b) => {
        const all = naiveSpans(run);
        const from = all.length === 0 ? 0 : all[a % all.length]!.position;
        const end = from + (run.length === from ? 0 : b % (run.length - from + 1));
        const inside = all.filter((s) => s.position >= from && s.position + s.size <= end);
        const w = windowSpans(run, from, end);
        expect(w.spans).toEqual(inside);
        const wholeEnd = inside.length === 0 ? from : inside.at(-1)!.position + inside.at(-1)!.size;
        expect(w.wholeEnd).toBe(wholeEnd);
        // The partial batch's declared size is known once its header is in the window.
        const partial = all.find((s) => s.position === wholeEnd);
        const expectedTail =
          partial !== undefined && end - wholeEnd >= RECORD_BATCH_HEADER_BYTES ? partial.size : 0;
        expect(w.tailSize).toBe(expectedTail);
        // The strict walk refuses the same window unless it ends on a batch boundary.
        const strict = typedOnly(() => [...batchSpans(run, from, end)]);
        if (wholeEnd === end) expect(strict).toEqual(inside);
        else expect(strict).toBeNull();
      }),
      { numRuns: 300 },
    );
  });

  it('never throws anything but CORRUPT_MESSAGE on mutated bytes, and stays in range', () => {
    const mutation = fc.oneof(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), bit: fc.nat(7) }),
      fc.record({ kind: fc.constant('cut' as const), at: fc.nat() }),
      fc.record({
        kind: fc.constant('length' as const),
        batch: fc.nat(),
        value: fc.oneof(
          fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
          fc.integer({ min: 0, max: 200 }),
        ),
      }),
    );
    fc.assert(
      fc.property(runArb, fc.array(mutation, { minLength: 1, maxLength: 4 }), (run, muts) => {
        let buf = Buffer.from(run);
        for (const m of muts) {
          if (buf.length === 0) break;
          if (m.kind === 'flip') buf[m.at % buf.length]! ^= 1 << m.bit;
          else if (m.kind === 'cut') buf = buf.subarray(0, m.at % (buf.length + 1));
          else {
            const spans = typedOnly(() => windowSpans(buf).spans) ?? [];
            const s = spans[m.batch % Math.max(1, spans.length)];
            if (s !== undefined) buf.writeInt32BE(m.value, s.position + BatchField.BATCH_LENGTH);
          }
        }
        const strict = typedOnly(() => [...batchSpans(buf)]);
        if (strict !== null) {
          expectTiles(strict, 0, buf.length);
          expect(strict.reduce((n, s) => n + s.size, 0)).toBe(buf.length);
        }
        const w = typedOnly(() => windowSpans(buf));
        if (w !== null) {
          expectTiles(w.spans, 0, buf.length);
          expect(w.wholeEnd).toBeLessThanOrEqual(buf.length);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('never throws anything but CORRUPT_MESSAGE on random bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 400 }), (bytes) => {
        typedOnly(() => [...batchSpans(bytes)]);
        typedOnly(() => windowSpans(bytes));
        // The non-throwing header check agrees with the cursor's at every position.
        for (let at = 0; at < bytes.length; at++) {
          const peeked = peekBatchSize(bytes, at);
          const c = new BatchCursor(bytes, at, bytes.length, true);
          const walked = typedOnly(() => (c.next() || c.size > 0 ? c.size : -1));
          expect(peeked).toBe(walked ?? -1);
        }
      }),
      { numRuns: 500 },
    );
  });

  it('names what is wrong', () => {
    const b = encodeRecordBatch([{ value: Buffer.from('x') }], { timestamp: 1 });
    const err = (fn: () => unknown): string => {
      try {
        fn();
      } catch (e) {
        if (isStreamBusError(e, ErrorCode.CORRUPT_MESSAGE)) return e.message;
      }
      return 'no error';
    };
    expect(err(() => [...batchSpans(b.subarray(0, 30))])).toMatch(/header incomplete/);
    expect(err(() => [...batchSpans(b.subarray(0, b.length - 1))])).toMatch(
      /incomplete: \d+ bytes declared/,
    );
    const short = Buffer.from(b);
    short.writeInt32BE(10, BatchField.BATCH_LENGTH);
    expect(err(() => [...batchSpans(short)])).toMatch(/batchLength 10 is below the minimum 49/);
    const magic = Buffer.from(b);
    magic[BatchField.MAGIC] = 1;
    expect(err(() => [...batchSpans(magic)])).toMatch(/magic 1/);
    expect(() => new BatchCursor(b, 5, 2)).toThrow(RangeError);
    expect(() => new BatchCursor(b, 0, b.length + 1)).toThrow(RangeError);
  });
});
