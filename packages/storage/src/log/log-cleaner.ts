// The log cleaner of compacted topics (cleanup.policy=compact): keeps the latest record per key in
// the sealed segments of a partition log below a caller-given bound, drops tombstones (null
// value) once older than delete.retention.ms, keeps offsets (a cleaned segment has gaps), and
// swaps each cleaned segment in atomically (checked at its turn in the log's op queue). See
// docs/storage.md "Compaction".
//
// Pure core: `rewriteBatch`, `emptyBatchLike`, `recordVerdict` (bytes and decisions in, bytes
// out). Async shell: `LogCleaner.clean`, which reads through `PartitionLog.read` (so damage is
// found by the log's own verification), writes `<base>.log.cleaned.tmp`, fsyncs it, verifies it
// by a full scan, and hands it to `PartitionLog.replaceCleanedSegment`. All its I/O goes through
// an optional IoBudget, in slices of `readBytesMax`, so appends (and their writer) never wait
// for it, not even for the swap (its file operations run beside the writer).
//
// Batches. A batch keeps its baseOffset, lastOffsetDelta, timestamps, producer fields and
// partitionLeaderEpoch; only the surviving records stay (their bytes as they were: their
// offset and timestamp deltas are relative to the unchanged header), with a new record count,
// length and CRC (recompressed with the same codec). So every offset is still covered by exactly
// one batch header, the segment stays contiguous by header offsets, and recovery and reads work
// on it unchanged: a read of a cleaned-away offset gets the batch that covered it, whose records
// start later. A batch left with no record becomes
//   - nothing, when it has no producer id: a run of such batches becomes one 61-byte gap batch
//     (log-repair.ts `encodeGapBatches`) spanning their offsets;
//   - an empty batch with its header (recordCount 0) when it has a producer id (idempotent or
//     transactional), so the producer's last sequence and epoch stay in the log;
//   - always that empty batch with `keepEveryBatch` (a replicated log: each batch is one Raft
//     entry, and the replica's offset translator, term runs and recovery scan count batches, so
//     the cleaned log keeps exactly the batches, offsets and epochs it had).
// Control batches (transaction markers) are kept as they are. Records without a key are kept (a
// compacted topic should refuse them at produce: `checkKeyedRecords`). A batch whose records do
// not decode is kept as it is: the cleaner never turns what it cannot read into a loss.
import {
  BatchAttributes,
  BatchCursor,
  BatchField,
  compress,
  crc32c,
  type DecodedRecord,
  decodeRecordBatch,
  decompress,
  ErrorCode,
  isStreamBusError,
  RECORD_BATCH_HEADER_BYTES,
  RECORD_BATCH_MIN_LENGTH,
  StreamBusError,
} from '@streambus/protocol';
import type { FileHandle, FileSystem } from '../fs.js';
import { joinPath } from '../fs.js';
import type { CleanerKeyIndex } from './cleaner-key-index.js';
import type { IoBudget } from './io-budget.js';
import { isLogCorruptionError, type LogDamage } from './log-damage.js';
import { encodeGapBatches } from './log-repair.js';
import {
  batchBaseOffset,
  batchLastOffsetDelta,
  LogSegment,
  segmentFileName,
} from './log-segment.js';
import type { PartitionLog } from './partition-log.js';

// ---- pure core ------------------------------------------------------------------------------

/** The zigzag varint at b[p]; returns [value, next position]. CORRUPT_MESSAGE when truncated. */
function varint(b: Uint8Array, p: number, end: number): [number, number] {
  let u = 0;
  for (let shift = 0; shift <= 28; shift += 7) {
    if (p >= end) break;
    const byte = b[p++]!;
    u |= (byte & 0x7f) << shift;
    if (byte < 0x80) {
      u >>>= 0;
      return [(u >>> 1) ^ -(u & 1), p];
    }
  }
  throw new StreamBusError(ErrorCode.CORRUPT_MESSAGE, 'record length varint truncated');
}

/** The [start, end) of each of `count` records in data[start, end) (length-prefixed). */
function recordSpans(data: Uint8Array, start: number, end: number, count: number): number[] {
  const spans: number[] = [];
  let p = start;
  for (let i = 0; i < count; i++) {
    const [length, q] = varint(data, p, end);
    if (length < 0 || q + length > end) {
      throw new StreamBusError(ErrorCode.CORRUPT_MESSAGE, `record ${i} overruns its batch`);
    }
    spans.push(p, q + length);
    p = q + length;
  }
  return spans;
}

function writeCrc(batch: Buffer): void {
  batch.writeUInt32BE(crc32c(batch, 0, BatchField.ATTRIBUTES, batch.length), BatchField.CRC);
}

/**
 * The batch (exactly one, at position 0 of `batch`) with only the records whose `keep` flag is
 * set; `batch` itself when all are kept; null when none is. Header fields other than length,
 * record count and CRC are unchanged. CORRUPT_MESSAGE / CORRUPT_COMPRESSED_DATA when the records
 * cannot be walked.
 */
export function rewriteBatch(batch: Buffer, keep: readonly boolean[]): Buffer | null {
  const count = batch.readInt32BE(BatchField.RECORD_COUNT);
  if (keep.length !== count) throw new RangeError(`${keep.length} flags for ${count} records`);
  const kept = keep.filter(Boolean).length;
  if (kept === count) return batch;
  if (kept === 0) return null;
  const codec = batch.readInt16BE(BatchField.ATTRIBUTES) & BatchAttributes.COMPRESSION_MASK;
  const size = 12 + batch.readInt32BE(BatchField.BATCH_LENGTH);
  const data =
    codec === 0
      ? batch.subarray(RECORD_BATCH_HEADER_BYTES, size)
      : decompress(codec, batch.subarray(RECORD_BATCH_HEADER_BYTES, size));
  const spans = recordSpans(data, 0, data.length, count);
  const parts: Buffer[] = [];
  for (let i = 0; i < count; i++) {
    if (keep[i])
      parts.push(
        Buffer.from(
          data.buffer,
          data.byteOffset + spans[2 * i]!,
          spans[2 * i + 1]! - spans[2 * i]!,
        ),
      );
  }
  const records = Buffer.concat(parts);
  const payload = codec === 0 ? records : compress(codec, records);
  const out = Buffer.allocUnsafe(RECORD_BATCH_HEADER_BYTES + payload.length);
  batch.copy(out, 0, 0, RECORD_BATCH_HEADER_BYTES);
  payload.copy(out, RECORD_BATCH_HEADER_BYTES);
  out.writeInt32BE(out.length - 12, BatchField.BATCH_LENGTH);
  out.writeInt32BE(kept, BatchField.RECORD_COUNT);
  writeCrc(out);
  return out;
}

/**
 * A batch with `batch`'s header and no records (recordCount 0, no compression): it keeps the
 * offsets it covers and its producer id, epoch and sequence in the log.
 */
export function emptyBatchLike(batch: Buffer): Buffer {
  const out = Buffer.from(batch.subarray(0, RECORD_BATCH_HEADER_BYTES));
  out.writeInt32BE(RECORD_BATCH_MIN_LENGTH, BatchField.BATCH_LENGTH);
  out.writeInt16BE(
    out.readInt16BE(BatchField.ATTRIBUTES) & ~BatchAttributes.COMPRESSION_MASK,
    BatchField.ATTRIBUTES,
  );
  out.writeInt32BE(0, BatchField.RECORD_COUNT);
  writeCrc(out);
  return out;
}

export type RecordVerdict = 'keep' | 'superseded' | 'tombstone-expired';

/**
 * Whether a record below the bound survives. `latest` is the index's offset for its key
 * (undefined: none; then kept, never guessed away). A tombstone that is the latest record of its
 * key goes once its timestamp is older than `deleteBeforeMs` and `tombstonesMayGo` (every
 * earlier segment of this run was cleaned, so no older value of its key can come back).
 */
export function recordVerdict(
  record: Pick<DecodedRecord, 'offset' | 'timestamp' | 'key' | 'value'>,
  latest: number | undefined,
  deleteBeforeMs: number,
  tombstonesMayGo: boolean,
): RecordVerdict {
  if (record.key === null || latest === undefined || latest < record.offset) return 'keep';
  if (latest > record.offset) return 'superseded';
  if (record.value === null && tombstonesMayGo && record.timestamp < deleteBeforeMs) {
    return 'tombstone-expired';
  }
  return 'keep';
}

/**
 * For the broker's produce path of a compacted topic (Kafka refuses these too): INVALID_RECORD
 * when a non-control batch in `batches` has a record without a key.
 */
export function checkKeyedRecords(batches: Buffer): void {
  const cursor = new BatchCursor(batches);
  while (cursor.next()) {
    const decoded = decodeRecordBatch(batches, cursor.position);
    if (decoded.isControl) continue;
    for (const r of decoded.records) {
      if (r.key === null) {
        throw new StreamBusError(
          ErrorCode.INVALID_RECORD,
          `a compacted topic needs a key on every record (offset delta ${r.offset - decoded.header.baseOffset} has none)`,
        );
      }
    }
  }
}

// ---- async shell ----------------------------------------------------------------------------

export interface CleanOptions {
  /**
   * Exclusive upper bound: only sealed segments whose every offset is below it are cleaned. The
   * broker passes min(commit point, active segment base).
   */
  bound: number;
  /** delete.retention.ms: how long a tombstone that is the latest record of its key stays. */
  deleteRetentionMs: number;
  /** The clock for tombstone age (default Date.now). */
  nowMs?: number;
  /** Bytes read per slice (default 1 MiB). */
  readBytesMax?: number;
  /** Every byte read or written goes through it (none: unthrottled). */
  budget?: IoBudget | null;
  /**
   * Keep one batch per batch: an emptied batch stays as its header (recordCount 0) instead of
   * joining a gap batch. For a replicated log, where every batch is a Raft entry.
   */
  keepEveryBatch?: boolean;
  /**
   * Stops the clean at its next read, write or swap (LOG_CLEAN_ABORTED); what was swapped in
   * stays, the segment in progress is left as it was. For closing the partition.
   */
  signal?: AbortSignal;
}

export interface CleanReport {
  /** Segments replaced by a cleaned version. */
  cleanedSegments: number[];
  /** Segments read and found to need no change. */
  unchangedSegments: number;
  /** Segments left alone, with why (damage, a conflict with the writer, below the log start). */
  skippedSegments: Array<{ baseOffset: number; reason: string }>;
  /** Damage the cleaner met (typed, from the log's read verification); nothing was cleaned there. */
  damage: LogDamage[];
  recordsRemoved: number;
  tombstonesRemoved: number;
  bytesRead: number;
  bytesWritten: number;
  /** Bytes of the cleaned segments before and after. */
  bytesBefore: number;
  bytesAfter: number;
  /** Every record below this offset is in the key index. */
  indexedUpTo: number;
  /**
   * The oldest timestamp among tombstones kept only because they are not old enough yet (the
   * latest record of their key, in a segment this run read); null when there is none. Such a
   * tombstone can go once `deleteRetentionMs` has passed since it: a scheduler can clean then.
   */
  tombstoneKeptMinTimestamp: number | null;
}

export interface LogCleanerOptions {
  /** The log's `indexIntervalBytes` (for the cleaned segments' offset index). */
  indexIntervalBytes: number;
}

const DEFAULT_READ_BYTES_MAX = 1024 * 1024;
/** Output is written once this much is buffered. */
const WRITE_CHUNK_BYTES = 1024 * 1024;
const CLEANED_SUFFIX = '.cleaned.tmp';

/** One clean at a time per log (a second is refused with LOG_CLEANER_BUSY). */
const cleaning = new WeakSet<PartitionLog>();

export class LogCleaner {
  constructor(
    private readonly fs: FileSystem,
    /** The log's directory (the cleaned file is written next to its segments). */
    private readonly dir: string,
    private readonly log: PartitionLog,
    private readonly index: CleanerKeyIndex,
    private readonly options: LogCleanerOptions,
  ) {}

  /**
   * Dirty bytes over cleanable bytes below `bound`: the share of sealed segments below it that
   * were written since the last finished clean. A simple trigger: clean when this is at least
   * min.cleanable.dirty.ratio.
   */
  async dirtyRatio(bound: number): Promise<number> {
    const { cleanedUpTo } = await this.index.state();
    let total = 0;
    let dirty = 0;
    for (const s of this.log.segmentExtents) {
      if (!s.sealed || s.nextOffset > bound) continue;
      total += s.sizeBytes;
      if (s.nextOffset > cleanedUpTo) dirty += s.sizeBytes;
    }
    return total === 0 ? 0 : dirty / total;
  }

  /** One pass over the sealed segments below `options.bound`. */
  async clean(options: CleanOptions): Promise<CleanReport> {
    if (cleaning.has(this.log)) {
      throw new StreamBusError(ErrorCode.LOG_CLEANER_BUSY, `a clean of ${this.dir} is running`);
    }
    cleaning.add(this.log);
    try {
      return await this.run(options);
    } finally {
      cleaning.delete(this.log);
    }
  }

  private async run(options: CleanOptions): Promise<CleanReport> {
    const budget = options.budget ?? null;
    const readBytesMax = options.readBytesMax ?? DEFAULT_READ_BYTES_MAX;
    const signal = options.signal;
    const keepEveryBatch = options.keepEveryBatch === true;
    const deleteBeforeMs = (options.nowMs ?? Date.now()) - options.deleteRetentionMs;
    const bound = Math.min(options.bound, this.log.logEndOffset);
    const report: CleanReport = {
      cleanedSegments: [],
      unchangedSegments: 0,
      skippedSegments: [],
      damage: [],
      recordsRemoved: 0,
      tombstonesRemoved: 0,
      bytesRead: 0,
      bytesWritten: 0,
      bytesBefore: 0,
      bytesAfter: 0,
      indexedUpTo: 0,
      tombstoneKeptMinTimestamp: null,
    };
    try {
      report.indexedUpTo = await this.index.catchUp(this.log, bound, readBytesMax, budget, signal);
    } catch (err) {
      if (!isLogCorruptionError(err)) throw err;
      report.damage.push(err.damage);
      report.skippedSegments.push({ baseOffset: err.damage.fromOffset, reason: err.message });
      return report;
    }
    const cleanBound = Math.min(bound, report.indexedUpTo);
    let tombstonesMayGo = true;
    for (const seg of this.log.segmentExtents) {
      if (!seg.sealed || seg.nextOffset > cleanBound) break;
      if (seg.baseOffset < this.log.logStartOffset) {
        if (seg.nextOffset > this.log.logStartOffset) {
          report.skippedSegments.push({
            baseOffset: seg.baseOffset,
            reason: 'holds the log start',
          });
          tombstonesMayGo = false;
        }
        continue;
      }
      const outcome = await this.cleanSegment(
        seg,
        deleteBeforeMs,
        tombstonesMayGo,
        readBytesMax,
        budget,
        report,
        keepEveryBatch,
        signal,
      );
      if (outcome !== 'ok') tombstonesMayGo = false;
    }
    if (tombstonesMayGo) await this.index.markCleaned(cleanBound);
    return report;
  }

  private async cleanSegment(
    seg: { baseOffset: number; nextOffset: number; sizeBytes: number },
    deleteBeforeMs: number,
    tombstonesMayGo: boolean,
    readBytesMax: number,
    budget: IoBudget | null,
    report: CleanReport,
    keepEveryBatch: boolean,
    signal: AbortSignal | undefined,
  ): Promise<'ok' | 'skipped'> {
    throwIfCleanAborted(signal, this.dir);
    const tempPath = joinPath(this.dir, segmentFileName(seg.baseOffset, '.log') + CLEANED_SUFFIX);
    const handle = await this.fs.open(tempPath, 'create');
    let installed = false;
    try {
      await handle.truncate(0);
      const out = new OutputFile(handle, budget);
      const forgotten: Uint8Array[] = [];
      let removed = 0;
      let tombstones = 0;
      let changed = false;
      // A run of batches that lost every record and carry no producer id: [from, to].
      let gapFrom = -1;
      let gapTo = -1;
      const flushGap = async () => {
        if (gapFrom < 0) return;
        for (const b of encodeGapBatches(gapFrom, gapTo)) await out.write(b);
        gapFrom = -1;
      };
      // One slice of the segment from `at`; null (recorded as skipped) on damage, or when the
      // segment went away under us.
      const readAt = async (at: number): Promise<Buffer | null> => {
        throwIfCleanAborted(signal, this.dir);
        let data: Buffer;
        try {
          data = (await this.log.read(at, readBytesMax)).data;
        } catch (err) {
          if (isLogCorruptionError(err)) report.damage.push(err.damage);
          else if (!isStreamBusError(err, ErrorCode.OFFSET_OUT_OF_RANGE)) throw err;
          report.skippedSegments.push({
            baseOffset: seg.baseOffset,
            reason: (err as Error).message,
          });
          return null;
        }
        report.bytesRead += data.length;
        await budget?.spend(data.length);
        return data;
      };
      // Nothing is written before the first change (an unchanged segment costs only its read);
      // at the first change, the unchanged batches before it are read again and written.
      const copyUnchanged = async (upTo: number): Promise<boolean> => {
        for (let at = seg.baseOffset; at < upTo; ) {
          const data = await readAt(at);
          if (data === null) return false;
          const cursor = new BatchCursor(data);
          const from = at;
          while (cursor.next() && batchBaseOffset(data, cursor.position) < upTo) {
            const p = cursor.position;
            await out.write(data.subarray(p, p + cursor.size));
            at = batchBaseOffset(data, p) + batchLastOffsetDelta(data, p) + 1;
          }
          if (at === from) {
            report.skippedSegments.push({
              baseOffset: seg.baseOffset,
              reason: `no batch at offset ${at} on the second read`,
            });
            return false;
          }
        }
        return true;
      };
      let offset = seg.baseOffset;
      while (offset < seg.nextOffset) {
        const data = await readAt(offset);
        if (data === null) return 'skipped';
        const r = { data };
        if (r.data.length === 0) break;
        const cursor = new BatchCursor(r.data);
        let next = offset;
        while (cursor.next()) {
          const p = cursor.position;
          const base = batchBaseOffset(r.data, p);
          if (base >= seg.nextOffset) break;
          next = base + batchLastOffsetDelta(r.data, p) + 1;
          const batch = r.data.subarray(p, p + cursor.size);
          const attributes = batch.readInt16BE(BatchField.ATTRIBUTES);
          let rewritten: Buffer | null = batch;
          if ((attributes & BatchAttributes.CONTROL) === 0) {
            let records: DecodedRecord[] | null = null;
            try {
              records = decodeRecordBatch(batch).records;
            } catch {
              records = null; // kept as it is
            }
            if (records !== null) {
              const keep: boolean[] = [];
              for (const rec of records) {
                const latest = rec.key === null ? undefined : await this.index.latest(rec.key);
                const verdict = recordVerdict(rec, latest, deleteBeforeMs, tombstonesMayGo);
                keep.push(verdict === 'keep');
                if (verdict !== 'keep') removed++;
                else if (
                  rec.value === null &&
                  latest === rec.offset &&
                  rec.timestamp >= deleteBeforeMs
                ) {
                  report.tombstoneKeptMinTimestamp = Math.min(
                    report.tombstoneKeptMinTimestamp ?? rec.timestamp,
                    rec.timestamp,
                  );
                }
                if (verdict === 'tombstone-expired' && rec.key !== null) {
                  tombstones++;
                  forgotten.push(rec.key);
                }
              }
              rewritten = rewriteBatch(batch, keep);
            }
          }
          if (!changed) {
            if (rewritten === batch) continue;
            changed = true;
            if (!(await copyUnchanged(base))) return 'skipped';
          }
          if (
            rewritten === null &&
            !keepEveryBatch &&
            batch.readBigInt64BE(BatchField.PRODUCER_ID) < 0n
          ) {
            if (gapFrom < 0) gapFrom = base;
            gapTo = next - 1;
            continue;
          }
          await flushGap();
          await out.write(rewritten ?? emptyBatchLike(batch));
        }
        if (next === offset) break;
        offset = next;
      }
      await flushGap();
      await out.flush();
      if (offset !== seg.nextOffset) {
        report.skippedSegments.push({
          baseOffset: seg.baseOffset,
          reason: `read stopped at offset ${offset}, segment ends at ${seg.nextOffset}`,
        });
        return 'skipped';
      }
      if (!changed) {
        report.unchangedSegments++;
        return 'ok';
      }
      await handle.sync();
      // Verify what was written, by the same scan recovery runs, and build its indexes.
      const cleaned = new LogSegment(
        this.fs,
        this.dir,
        seg.baseOffset,
        handle,
        this.options.indexIntervalBytes,
        Date.now(),
      );
      const scan = await cleaned.scan(0, seg.baseOffset, out.position, true, true);
      report.bytesRead += out.position;
      await budget?.spend(out.position);
      if (scan.problem !== null || scan.nextOffset !== seg.nextOffset) {
        throw new Error(
          `cleaned segment ${tempPath} does not verify (${scan.problem ?? `ends at ${scan.nextOffset}`}); left alone`,
        );
      }
      cleaned.markVerified(cleaned.sizeBytes, cleaned.nextOffset);
      throwIfCleanAborted(signal, this.dir);
      try {
        await this.log.replaceCleanedSegment(cleaned, tempPath);
      } catch (err) {
        if (err instanceof StreamBusError && err.code === ErrorCode.LOG_CLEAN_CONFLICT) {
          report.skippedSegments.push({ baseOffset: seg.baseOffset, reason: err.message });
          return 'skipped';
        }
        throw err;
      }
      installed = true;
      report.cleanedSegments.push(seg.baseOffset);
      report.recordsRemoved += removed;
      report.tombstonesRemoved += tombstones;
      report.bytesBefore += seg.sizeBytes;
      report.bytesAfter += out.position;
      report.bytesWritten += out.position;
      if (forgotten.length > 0) await this.index.forget(forgotten);
      return 'ok';
    } finally {
      if (!installed) {
        await handle.close().catch(() => undefined);
        // A file left behind (the unlink failed) is a stray temp file: the next open deletes it.
        await this.fs.unlink(tempPath).catch(() => undefined);
      }
    }
  }
}

/** LOG_CLEAN_ABORTED when `signal` is aborted (the partition is closing). */
export function throwIfCleanAborted(signal: AbortSignal | undefined, dir: string): void {
  if (signal?.aborted === true) {
    throw new StreamBusError(ErrorCode.LOG_CLEAN_ABORTED, `the clean of ${dir} was stopped`);
  }
}

/** Sequential writes of the cleaned file, buffered to WRITE_CHUNK_BYTES, within the budget. */
class OutputFile {
  position = 0;
  private parts: Buffer[] = [];
  private buffered = 0;

  constructor(
    private readonly handle: FileHandle,
    private readonly budget: IoBudget | null,
  ) {}

  async write(b: Buffer): Promise<void> {
    this.parts.push(b);
    this.buffered += b.length;
    if (this.buffered >= WRITE_CHUNK_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.buffered === 0) return;
    const data =
      this.parts.length === 1 ? this.parts[0]! : Buffer.concat(this.parts, this.buffered);
    this.parts = [];
    const n = this.buffered;
    this.buffered = 0;
    await this.budget?.spend(n);
    await this.handle.write(data, this.position);
    this.position += n;
  }
}
