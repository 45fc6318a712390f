// The offset translator of one partition replica: Raft index <-> record offset.
//
// Raft indexes are dense, one per entry, and one entry is one RecordBatch. Offsets count
// records, so the two differ by the batches' record counts. This module keeps that mapping; it
// does not read the log, and it does not know terms (term-runs.ts does).
//
// Decision: control batches OCCUPY OFFSETS, as Kafka's control records (transaction markers) do.
// The leader's no-op and configuration entries are written as control batches of one record;
// consumers skip them by the batch's control attribute. Why not Redpanda's way (control batches
// take no client-visible offset, and the translator keeps a delta to subtract):
//   - the bytes on disk are the bytes served: with a delta, every batch served to a consumer
//     would need its baseOffset rewritten (or consumers would see a different offset than the
//     replicas stamped), which breaks "append the bytes unchanged, serve the same bytes";
//   - the segment log's own checks stay as they are: offsets are contiguous across every batch,
//     a follower verifies "baseOffset = previous last offset + 1" on each batch it appends, and
//     recovery, truncate-to-offset and the offset index need no notion of control batches;
//   - a gap in the offsets a consumer sees is ordinary Kafka behaviour (transaction markers).
// The price: a record offset is not a count of data records. Nothing relies on that.
//
// Representation: runs of consecutive entries with the same record count and control flag
// (a producer with a steady batch size, or one record per batch, makes long runs), so memory is
// O(runs), not O(batches). The most recent `runsMax` runs are the exact window; older runs are
// evicted into sparse anchors (exact (index, offset) points, thinned to `anchorsMax` by dropping
// every other one), like Kafka's sparse offset index: a lookup below the window returns the
// nearest anchor at or before it, and the caller scans batch headers forward from there
// (asynchronously, raft-log-tail.ts `prefetch`). The Raft core's own work (appends, truncation
// above the commit index, the commit index -> high watermark) happens at the recent end.
//
// Invariants (asserted on every change, checked on decode):
//   1. start.index <= window.index <= end.index, and the same for offsets; between any two exact
//      points the offset gap is >= the index gap (each batch holds >= 1 record).
//   2. runs are contiguous from `window` to `end`: run[k+1] starts where run[k] ends
//      (index + count, offset + count * records); each run has count >= 1, records >= 1.
//   3. Adjacent runs differ in (records, control): appends extend the last run when they can.
//   4. anchors are strictly increasing exact points in [start, window); when window > start,
//      anchors[0] is start. With runs empty, window = end.
//   5. runs.length <= runsMax and anchors.length <= anchorsMax.
//
// Checkpoint payload (wrapped by checkpoint-file.ts, magic 'SBOT'; all big-endian):
//   start index u64, start offset u64, window index u64, window offset u64,
//   anchor count u32, then per anchor: index u64, offset u64,
//   run count u32, then per run: index u64, offset u64, count u64, records u32, control u8.
// Recovery: decode the checkpoint (it covers the log up to its `end`), check that the log holds
// `end` (the shell reads the batch there), then append what the log scan finds after it; with
// no usable checkpoint, `fromScan` from the log start. A checkpoint ahead of the log (the log
// was truncated after it was written) is cut with `truncateSuffix`.
import assert from 'node:assert/strict';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { LogIndex } from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import {
  PayloadReader,
  PayloadWriter,
  readCheckpoint,
  writeCheckpoint,
} from './checkpoint-file.js';
import { lastWhere } from './last-where.js';
import type { LogPosition } from './term-runs.js';

export const OFFSET_TRANSLATOR_MAGIC = 'SBOT';

/** Where one entry's batch sits in the offset space. */
export interface BatchPlacement {
  readonly baseOffset: number;
  /** Records in the batch (>= 1; a control batch has one). */
  readonly recordCount: number;
  /** A control batch (leader no-op, configuration): consumers skip it. */
  readonly isControl: boolean;
}

export interface OffsetTranslatorLimits {
  /** Runs kept exactly (the recent window). */
  readonly runsMax: number;
  /** Sparse exact points kept below the window. */
  readonly anchorsMax: number;
}

export const OFFSET_TRANSLATOR_DEFAULTS: OffsetTranslatorLimits = {
  runsMax: 4096,
  anchorsMax: 1024,
};

interface Run {
  readonly index: LogIndex;
  readonly offset: number;
  count: number;
  readonly records: number;
  readonly control: boolean;
}

const POSITION_BYTES = 16;
const RUN_BYTES = 8 + 8 + 8 + 4 + 1;

export class OffsetTranslator {
  private readonly limits: OffsetTranslatorLimits;
  private start: LogPosition;
  private anchors: LogPosition[] = [];
  private window: LogPosition;
  private runs: Run[] = [];
  private endPos: LogPosition;

  /** An empty log whose first entry will be at `start`. */
  constructor(start: LogPosition, limits: OffsetTranslatorLimits = OFFSET_TRANSLATOR_DEFAULTS) {
    assert.ok(limits.runsMax >= 1 && limits.anchorsMax >= 2, 'offset translator: limits');
    assert.ok(start.index >= 1 && start.offset >= 0, 'offset translator: start position');
    this.limits = limits;
    this.start = start;
    this.window = start;
    this.endPos = start;
  }

  /** The first entry held (its index and base offset). */
  get startPosition(): LogPosition {
    return this.start;
  }
  /** Where the next entry goes: the index after the last and the next offset to assign. */
  get endPosition(): LogPosition {
    return this.endPos;
  }
  /** The first index answered exactly; below it, lookups give anchors. */
  get exactFrom(): LogPosition {
    return this.window;
  }
  get runCount(): number {
    return this.runs.length;
  }
  get anchorCount(): number {
    return this.anchors.length;
  }

  /** Records the entry at `index` (= endPosition.index) and its batch placement. */
  append(index: LogIndex, placement: BatchPlacement): void {
    const { baseOffset, recordCount, isControl } = placement;
    assert.equal(index, this.endPos.index, 'offset translator: appends are contiguous');
    assert.equal(baseOffset, this.endPos.offset, `offset translator: base offset at ${index}`);
    assert.ok(Number.isInteger(recordCount) && recordCount >= 1, 'offset translator: records');
    const last = this.runs[this.runs.length - 1];
    if (last !== undefined && last.records === recordCount && last.control === isControl) {
      last.count++;
    } else {
      this.runs.push({
        index,
        offset: baseOffset,
        count: 1,
        records: recordCount,
        control: isControl,
      });
    }
    this.endPos = { index: (index + 1) as LogIndex, offset: baseOffset + recordCount };
    this.maybeEvict();
  }

  private maybeEvict(): void {
    while (this.runs.length > this.limits.runsMax) {
      const r = this.runs.shift()!;
      this.anchors.push(this.window);
      this.window = {
        index: (r.index + r.count) as LogIndex,
        offset: r.offset + r.count * r.records,
      };
    }
    if (this.anchors.length > this.limits.anchorsMax) {
      // Keeps anchors[0] (= start, invariant 4) and every other point after it.
      this.anchors = this.anchors.filter((_, k) => k % 2 === 0);
    }
  }

  /** The run holding `index` (window.index <= index < end.index). */
  private runOfIndex(index: number): Run {
    return this.runs[
      Math.max(
        0,
        lastWhere(this.runs, (r) => r.index <= index),
      )
    ]!;
  }

  private runOfOffset(offset: number): Run {
    return this.runs[
      Math.max(
        0,
        lastWhere(this.runs, (r) => r.offset <= offset),
      )
    ]!;
  }

  /**
   * The base offset of the entry at `index`, exactly, for window.index <= index <= end.index
   * (end.index gives the next offset to assign). Undefined outside: below the window, use
   * `anchorFor` and scan.
   */
  offsetOf(index: LogIndex): number | undefined {
    if (index < this.window.index || index > this.endPos.index) return undefined;
    if (index === this.endPos.index) return this.endPos.offset;
    const r = this.runOfIndex(index);
    return r.offset + (index - r.index) * r.records;
  }

  /**
   * The index of the entry whose batch holds `offset` (any offset inside it, not only its base),
   * for window.offset <= offset <= end.offset (end.offset gives end.index). Undefined outside.
   */
  indexOf(offset: number): LogIndex | undefined {
    if (offset < this.window.offset || offset > this.endPos.offset) return undefined;
    if (offset === this.endPos.offset) return this.endPos.index;
    const r = this.runOfOffset(offset);
    return (r.index + Math.floor((offset - r.offset) / r.records)) as LogIndex;
  }

  /** The placement of the entry at `index`, when it is in the exact window. */
  placementOf(index: LogIndex): BatchPlacement | undefined {
    if (index < this.window.index || index >= this.endPos.index) return undefined;
    const r = this.runOfIndex(index);
    return {
      baseOffset: r.offset + (index - r.index) * r.records,
      recordCount: r.records,
      isControl: r.control,
    };
  }

  /**
   * The nearest exact point at or before `index` (start.index <= index <= end.index): the entry
   * itself inside the window, else an anchor. A reader starting there and counting one index
   * per batch reaches `index`.
   */
  anchorFor(index: LogIndex): LogPosition {
    assert.ok(index >= this.start.index && index <= this.endPos.index, `anchor for ${index}`);
    const exact = this.offsetOf(index);
    if (exact !== undefined) return { index, offset: exact };
    return this.anchors[lastAtOrBefore(this.anchors, (a) => a.index <= index)]!;
  }

  /** The nearest exact point whose offset is at or before `offset` (start..end offsets). */
  anchorForOffset(offset: number): LogPosition {
    assert.ok(offset >= this.start.offset && offset <= this.endPos.offset, `anchor at ${offset}`);
    const index = this.indexOf(offset);
    if (index !== undefined) return { index, offset: this.offsetOf(index)! };
    return this.anchors[lastAtOrBefore(this.anchors, (a) => a.offset <= offset)]!;
  }

  /**
   * Forgets the entries from `from.index` on (Raft truncated the log's suffix there). Inside the
   * window the offset is known and `from.offset` may be omitted; below it the caller supplies
   * it (read from the log), and it is checked against the anchors around it.
   */
  truncateSuffix(index: LogIndex, offset?: number): void {
    assert.ok(index >= this.start.index && index <= this.endPos.index, `truncate at ${index}`);
    const exact = this.offsetOf(index);
    if (exact !== undefined) {
      assert.ok(offset === undefined || offset === exact, `truncate at ${index}: offset`);
      while (this.runs.length > 0 && this.runs[this.runs.length - 1]!.index >= index)
        this.runs.pop();
      const last = this.runs[this.runs.length - 1];
      if (last !== undefined && last.index + last.count > index) last.count = index - last.index;
      this.endPos = { index, offset: exact };
      return;
    }
    if (offset === undefined) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `offset translator: truncating at ${index}, below the exact window (${this.window.index}), needs its offset`,
      );
    }
    const at = { index, offset };
    this.checkBetweenAnchors(at);
    this.anchors = this.anchors.filter((a) => a.index < index);
    this.runs = [];
    this.window = at;
    this.endPos = at;
  }

  /**
   * The log now starts at `start` (snapshot compaction, retention): forgets older entries.
   * Inside the window its offset must match; below it, it must fit between the anchors.
   */
  trimPrefix(start: LogPosition): void {
    assert.ok(start.index >= this.start.index && start.index <= this.endPos.index, 'trim start');
    if (start.index === this.start.index) {
      assert.equal(start.offset, this.start.offset, 'offset translator: trim start offset');
      return;
    }
    const exact = this.offsetOf(start.index);
    if (exact !== undefined) {
      assert.equal(start.offset, exact, `offset translator: trim at ${start.index}: offset`);
      while (this.runs.length > 0) {
        const r = this.runs[0]!;
        if (r.index + r.count <= start.index) {
          this.runs.shift();
          continue;
        }
        if (r.index < start.index) {
          const skip = start.index - r.index;
          this.runs[0] = {
            index: start.index,
            offset: r.offset + skip * r.records,
            count: r.count - skip,
            records: r.records,
            control: r.control,
          };
        }
        break;
      }
      this.anchors = [];
      this.window = start;
    } else {
      this.checkBetweenAnchors(start);
      this.anchors = [start, ...this.anchors.filter((a) => a.index > start.index)];
    }
    this.start = start;
  }

  /** A position below the window must be consistent with the exact points around it. */
  private checkBetweenAnchors(at: LogPosition): void {
    const k = lastAtOrBefore(this.anchors, (a) => a.index <= at.index);
    const before = this.anchors[k]!;
    const after = this.anchors[k + 1] ?? this.window;
    const fits =
      (at.index !== before.index || at.offset === before.offset) &&
      at.offset - before.offset >= at.index - before.index &&
      after.offset - at.offset >= after.index - at.index;
    if (!fits) {
      throw new StreamBusError(
        ErrorCode.CORRUPT_DATA,
        `offset translator: ${at.index}/${at.offset} does not fit between ${before.index}/${before.offset} and ${after.index}/${after.offset}`,
      );
    }
  }

  /** The checkpoint payload (format in the header comment). */
  encode(): Uint8Array {
    const size =
      2 * POSITION_BYTES +
      4 +
      this.anchors.length * POSITION_BYTES +
      4 +
      this.runs.length * RUN_BYTES;
    const w = new PayloadWriter(size);
    w.u64(this.start.index);
    w.u64(this.start.offset);
    w.u64(this.window.index);
    w.u64(this.window.offset);
    w.u32(this.anchors.length);
    for (const a of this.anchors) {
      w.u64(a.index);
      w.u64(a.offset);
    }
    w.u32(this.runs.length);
    for (const r of this.runs) {
      w.u64(r.index);
      w.u64(r.offset);
      w.u64(r.count);
      w.u32(r.records);
      w.u8(r.control ? 1 : 0);
    }
    return w.finish();
  }

  /**
   * Decodes a checkpoint payload, re-checking every invariant; a string says why it is not a
   * valid translator. A checkpoint written with larger limits is evicted down to `limits`.
   */
  static decode(
    payload: Uint8Array,
    limits: OffsetTranslatorLimits = OFFSET_TRANSLATOR_DEFAULTS,
  ): OffsetTranslator | string {
    const r = new PayloadReader(payload);
    const position = (): LogPosition | undefined => {
      const index = r.u64();
      const offset = r.u64();
      return index === undefined || offset === undefined || index < 1
        ? undefined
        : { index: index as LogIndex, offset };
    };
    const start = position();
    const window = position();
    if (start === undefined || window === undefined) return 'bad start or window';
    const anchorCount = r.u32();
    if (anchorCount === undefined || anchorCount * POSITION_BYTES > r.remaining)
      return 'bad anchors';
    const anchors: LogPosition[] = [];
    for (let k = 0; k < anchorCount; k++) anchors.push(position()!);
    const runCount = r.u32();
    if (runCount === undefined || runCount * RUN_BYTES !== r.remaining) return 'bad run count';
    const runs: Run[] = [];
    for (let k = 0; k < runCount; k++) {
      const index = r.u64()!;
      const offset = r.u64()!;
      const count = r.u64()!;
      const records = r.u32()!;
      const control = r.u8()!;
      if (control > 1) return `run ${k}: bad control flag`;
      runs.push({ index: index as LogIndex, offset, count, records, control: control === 1 });
    }
    // Invariants 1, 2, 4 (3 and 5 are restored below rather than refused).
    if (anchors.length === 0) {
      if (window.index !== start.index || window.offset !== start.offset) {
        return 'window above start without anchors';
      }
    } else {
      if (anchors[0]!.index !== start.index || anchors[0]!.offset !== start.offset) {
        return 'first anchor is not the start';
      }
      const points = [...anchors, window];
      for (let k = 1; k < points.length; k++) {
        const a = points[k - 1]!;
        const b = points[k]!;
        if (b.index <= a.index || b.offset - a.offset < b.index - a.index) {
          return `anchor ${b.index}/${b.offset} does not follow ${a.index}/${a.offset}`;
        }
      }
    }
    let at = window;
    for (const run of runs) {
      if (run.index !== at.index || run.offset !== at.offset)
        return `run at ${run.index} not contiguous`;
      if (run.count < 1 || run.records < 1) return `run at ${run.index} is empty`;
      at = {
        index: (run.index + run.count) as LogIndex,
        offset: run.offset + run.count * run.records,
      };
    }
    const t = new OffsetTranslator(start, limits);
    t.anchors = anchors;
    t.window = window;
    t.endPos = at;
    for (const run of runs) {
      const last = t.runs[t.runs.length - 1];
      if (last !== undefined && last.records === run.records && last.control === run.control) {
        last.count += run.count;
      } else {
        t.runs.push({ ...run });
      }
    }
    t.maybeEvict();
    return t;
  }

  /**
   * Rebuilds from a scan of the log: the first batch is the entry at `start.index`, each next
   * batch the next index. A batch that does not start where the previous one ended is a damaged
   * log (CORRUPT_DATA), never papered over.
   */
  static fromScan(
    start: LogPosition,
    batches: Iterable<BatchPlacement>,
    limits: OffsetTranslatorLimits = OFFSET_TRANSLATOR_DEFAULTS,
  ): OffsetTranslator {
    const t = new OffsetTranslator(start, limits);
    t.appendScanned(batches);
    return t;
  }

  /** Appends what a log scan found after `endPosition` (recovery from a checkpoint). */
  appendScanned(batches: Iterable<BatchPlacement>): void {
    for (const b of batches) {
      if (b.baseOffset !== this.endPos.offset || !(b.recordCount >= 1)) {
        throw new StreamBusError(
          ErrorCode.CORRUPT_DATA,
          `offset translator: batch at offset ${b.baseOffset} (${b.recordCount} records) where ${this.endPos.offset} was expected, entry ${this.endPos.index}`,
        );
      }
      this.append(this.endPos.index, b);
    }
  }
}

/** The last k with pred(items[k]) true, for a predicate true on a prefix; items[0] must hold. */
function lastAtOrBefore<T>(items: readonly T[], pred: (item: T) => boolean): number {
  const k = lastWhere(items, pred);
  assert.ok(k >= 0, 'offset translator: no anchor at or before');
  return k;
}

/** Saves the translator's checkpoint atomically (any time; after a suffix truncation, before
 * writing past it, so a stale checkpoint never describes batches the log no longer has). */
export async function saveOffsetTranslator(
  fs: FileSystem,
  path: string,
  translator: OffsetTranslator,
): Promise<void> {
  await writeCheckpoint(fs, path, OFFSET_TRANSLATOR_MAGIC, translator.encode());
}

export interface RecoveredOffsetTranslator {
  readonly translator: OffsetTranslator;
  /** 'checkpoint' when the file was used (plus a scan of what followed it), else 'rebuilt'. */
  readonly from: 'checkpoint' | 'rebuilt';
  readonly reason?: string;
}

/**
 * Opens the translator at start-up. `scanFrom(position)` reads the log's batches from that exact
 * point to its end. A whole, valid checkpoint inside the log is used and extended with the scan
 * of what follows it; otherwise (missing, torn, corrupt, or not matching the log: the scan
 * after it does not start on a batch) the translator is rebuilt by scanning from `logStart`.
 */
export async function recoverOffsetTranslator(
  fs: FileSystem,
  path: string,
  logStart: LogPosition,
  scanFrom: (from: LogPosition) => Promise<Iterable<BatchPlacement>>,
  limits: OffsetTranslatorLimits = OFFSET_TRANSLATOR_DEFAULTS,
): Promise<RecoveredOffsetTranslator> {
  const read = await readCheckpoint(fs, path, OFFSET_TRANSLATOR_MAGIC);
  let reason = read.status === 'missing' ? 'no file' : read.status === 'corrupt' ? read.reason : '';
  if (read.status === 'ok') {
    const decoded = OffsetTranslator.decode(read.payload, limits);
    if (typeof decoded === 'string') {
      reason = decoded;
    } else if (
      decoded.startPosition.index > logStart.index ||
      decoded.endPosition.index < logStart.index
    ) {
      reason = `it covers [${decoded.startPosition.index}, ${decoded.endPosition.index}), the log starts at ${logStart.index}`;
    } else if ((decoded.offsetOf(logStart.index) ?? logStart.offset) !== logStart.offset) {
      reason = `it puts entry ${logStart.index} at offset ${decoded.offsetOf(logStart.index)}, the log at ${logStart.offset}`;
    } else {
      try {
        if (logStart.index > decoded.startPosition.index) decoded.trimPrefix(logStart);
        decoded.appendScanned(await scanFrom(decoded.endPosition));
        return { translator: decoded, from: 'checkpoint' };
      } catch (err) {
        if (!(err instanceof StreamBusError && err.code === ErrorCode.CORRUPT_DATA)) throw err;
        reason = `it does not match the log: ${err.message}`;
      }
    }
  }
  const translator = OffsetTranslator.fromScan(logStart, await scanFrom(logStart), limits);
  return { translator, from: 'rebuilt', reason };
}
