// Damage in a partition log: what is reported when a stored batch fails its checks, and the
// events a log emits when recovery cuts data or a read meets a bad batch.
//
// Two outcomes, never mixed:
//   - a `LogCorruptionError` (CORRUPT_DATA) carrying a `LogDamage`: a sealed segment, or a read,
//     met a batch that fails its CRC or framing. Nothing is changed on disk: the operator decides
//     (log-repair.ts truncates at the damage or skips the damaged range);
//   - a `truncated` event: recovery cut a torn tail of the active segment (or, under durability
//     'none', anything after a torn write), which after a crash is expected.
// Every one of them also goes to the log's `onEvent` listener, so the owner (the broker) can log
// it at warn level with the offsets and bytes, and count it. This module does no I/O beyond
// reading the segment it is given, and keeps no state.
import {
  BatchField,
  ErrorCode,
  peekBatchSize,
  RECORD_BATCH_HEADER_BYTES,
  StreamBusError,
  verifyBatchCrc,
} from '@streambus/protocol';
import { batchBaseOffset, type LogSegment } from './log-segment.js';

/** Bytes read per step while looking for the next good batch after damage. */
const RESYNC_WINDOW_BYTES = 1024 * 1024;
/** A candidate batch further than this many offsets past the expected one is not believed. */
const RESYNC_OFFSET_SPAN_MAX = 2 ** 31;

/** One damaged byte range of one segment file. */
export interface LogDamage {
  /** Path of the segment `.log` file. */
  readonly segment: string;
  readonly segmentBaseOffset: number;
  /** Byte position of the first bad batch in the segment. */
  readonly position: number;
  /** Bytes from `position` to the next good batch (or to the end of the file). */
  readonly bytes: number;
  /** The first offset that cannot be read (the offset the bad batch should start at). */
  readonly fromOffset: number;
  /**
   * The last offset inside the damaged range, inclusive: the next good batch's baseOffset - 1, or
   * for damage reaching the end of a sealed segment the next segment's baseOffset - 1. null when
   * nothing good follows the damage in this segment and no later segment bounds it.
   */
  readonly toOffset: number | null;
  /** Position of the next good batch in the same segment, or null. */
  readonly resumePosition: number | null;
  /** What was wrong, naming the file. */
  readonly reason: string;
}

export type LogEvent =
  | ({
      readonly kind: 'corruption';
      readonly dir: string;
      readonly detectedBy: 'open' | 'read';
    } & LogDamage)
  | {
      readonly kind: 'truncated';
      readonly dir: string;
      readonly segment: string;
      /** Byte position the file was cut at (0 for a deleted file). */
      readonly position: number;
      readonly bytes: number;
      /** The first offset removed: the log now ends there and will hand it out again. */
      readonly fromOffset: number;
      /** The last offset seen in the removed bytes (from batch headers), or null if none. */
      readonly toOffset: number | null;
      readonly reason: string;
    };

export type LogEventListener = (event: LogEvent) => void;

/** A stored batch failed its checks; `damage` says where and which offsets. */
export class LogCorruptionError extends StreamBusError {
  constructor(readonly damage: LogDamage) {
    super(
      ErrorCode.CORRUPT_DATA,
      `${damage.reason} (damaged: offsets ${damage.fromOffset}..${damage.toOffset ?? 'end'}, ${damage.bytes} B at position ${damage.position} of ${damage.segment})`,
    );
    this.name = 'LogCorruptionError';
  }
}

export function isLogCorruptionError(err: unknown): err is LogCorruptionError {
  return err instanceof LogCorruptionError;
}

/**
 * The next position at or after `from` (and before `endPosition`) where a whole batch passes its
 * CRC and starts at an offset in [expectedOffset, expectedOffset + 2^31): where good data resumes
 * after damage. Null when none does.
 */
export async function findNextGoodBatch(
  seg: LogSegment,
  from: number,
  endPosition: number,
  expectedOffset: number,
): Promise<{ position: number; baseOffset: number } | null> {
  for (let win = from; win < endPosition; win += RESYNC_WINDOW_BYTES) {
    const buf = await seg.read(
      win,
      Math.min(RESYNC_WINDOW_BYTES + RECORD_BATCH_HEADER_BYTES, endPosition - win),
    );
    const last = Math.min(RESYNC_WINDOW_BYTES, buf.length - RECORD_BATCH_HEADER_BYTES + 1);
    for (let i = 0; i < last; i++) {
      // A candidate header at every byte (a resynchronisation search, not a walk).
      const size = peekBatchSize(buf, i);
      if (size < 0 || win + i + size > endPosition) continue;
      const base = batchBaseOffset(buf, i);
      if (base < expectedOffset || base >= expectedOffset + RESYNC_OFFSET_SPAN_MAX) continue;
      const batch =
        i + size <= buf.length ? buf.subarray(i, i + size) : await seg.read(win + i, size);
      if (batch.length === size && verifyBatchCrc(batch, 0)) {
        return { position: win + i, baseOffset: base };
      }
    }
  }
  return null;
}

/**
 * Describes damage found at `position` of `seg` (a batch boundary whose batch should start at
 * `fromOffset`): how far it reaches. `fileBytes` is the file's length; `nextSegmentBase` the base
 * offset of the following segment, if any.
 */
export async function describeDamage(
  seg: LogSegment,
  position: number,
  fromOffset: number,
  fileBytes: number,
  nextSegmentBase: number | null,
  reason: string,
): Promise<LogDamage> {
  const resume = await findNextGoodBatch(seg, position + 1, fileBytes, fromOffset);
  return {
    segment: seg.logPath,
    segmentBaseOffset: seg.baseOffset,
    position,
    bytes: (resume?.position ?? fileBytes) - position,
    fromOffset,
    toOffset:
      resume !== null
        ? resume.baseOffset - 1
        : nextSegmentBase !== null
          ? nextSegmentBase - 1
          : null,
    resumePosition: resume?.position ?? null,
    reason: `${seg.logPath}: ${reason}`,
  };
}

/** The last offset named by a readable batch header in [from, end) of `seg`, or null. */
export async function lastOffsetIn(
  seg: LogSegment,
  from: number,
  end: number,
): Promise<number | null> {
  let last: number | null = null;
  let pos = from;
  while (pos + RECORD_BATCH_HEADER_BYTES <= end) {
    const h = await seg.read(pos, RECORD_BATCH_HEADER_BYTES);
    const size = peekBatchSize(h, 0);
    if (size < 0) break;
    const delta = h.readInt32BE(BatchField.LAST_OFFSET_DELTA);
    if (delta < 0) break;
    last = batchBaseOffset(h, 0) + delta;
    pos += size;
  }
  return last;
}
