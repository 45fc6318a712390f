// Lazy verification of a segment trusted at open, done in the bytes a read has just fetched
// instead of in a scan of its own. A broker restarted over its data verifies each batch the first
// time it is served (PartitionLog `verifyOnRead: 'unverified'`); with `LogSegment.verifyUpTo`
// that meant reading every byte twice (the scan, then the read) on the first pass of a consumer,
// which doubled a fresh broker's CPU per fetched byte (profile: file reads and the GC of their
// buffers; see docs/benchmarks.md, fresh-process rows).
//
// The checks are `LogSegment.scan`'s with verification on (invariants 1-3 in log-segment.ts):
// header sane (batchLength >= 49, magic 2), batch within the segment, baseOffset contiguous with
// the verified prefix, lastOffsetDelta >= 0, `validateBatch` (CRC-32C and counts). Only batches
// whole in the buffer are verified; the verified prefix moves past them. Pure and synchronous.
import { peekBatchSize, RECORD_BATCH_HEADER_BYTES, validateBatch } from '@streambus/protocol';
import { batchBaseOffset, batchLastOffsetDelta, type LogSegment } from './log-segment.js';

/**
 * Verifies the batches of `buf` (the segment's bytes from `bufPosition`) from the segment's
 * verified end onward, which must lie inside the buffer. Returns how far the good prefix now
 * reaches and, when a batch fails, why (the prefix stops before it).
 */
export function verifyReadBuffer(
  seg: LogSegment,
  buf: Buffer,
  bufPosition: number,
): { goodEnd: number; problem: string | null } {
  let pos = seg.verifiedBytes;
  let next = seg.verifiedNextOffset;
  if (pos < bufPosition || pos > bufPosition + buf.length) {
    throw new RangeError(`verified end ${pos} is outside the buffer read at ${bufPosition}`);
  }
  let problem: string | null = null;
  for (;;) {
    const at = pos - bufPosition;
    if (pos >= seg.sizeBytes || at + RECORD_BATCH_HEADER_BYTES > buf.length) break;
    const size = peekBatchSize(buf, at);
    if (size < 0) {
      problem = `garbled batch header at position ${pos}`;
      break;
    }
    if (pos + size > seg.sizeBytes) {
      problem = `torn batch at position ${pos}`;
      break;
    }
    if (at + size > buf.length) break; // not whole here: the next read verifies it
    const base = batchBaseOffset(buf, at);
    const delta = batchLastOffsetDelta(buf, at);
    if (base !== next) {
      problem = `batch at position ${pos} has baseOffset ${base}, expected ${next}`;
      break;
    }
    if (delta < 0) {
      problem = `batch at position ${pos} has lastOffsetDelta ${delta}`;
      break;
    }
    try {
      validateBatch(buf, at);
    } catch (err) {
      problem = `batch at position ${pos} (offset ${base}): ${(err as Error).message}`;
      break;
    }
    pos += size;
    next = base + delta + 1;
  }
  if (pos > seg.verifiedBytes) seg.markVerified(pos, next);
  return { goodEnd: pos, problem };
}
