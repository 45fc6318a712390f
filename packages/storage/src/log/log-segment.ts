// LogSegment: one segment of a partition log, i.e. the file `<baseOffset>.log` (20-digit,
// zero-padded base offset) plus its offset index and time index (see offset-index.ts and
// time-index.ts), after Kafka's `LogSegment` and Redpanda's `segment.h`.
//
// `.log` format: RecordBatch v2 batches back to back, exactly as appended (kafka-protocol.md §5),
// nothing else: no per-file header, no padding. Invariants checked by `scan` (recovery):
//   1. the first batch's baseOffset is the segment's baseOffset;
//   2. each next batch starts at the previous batch's lastOffset + 1 (no gaps, no overlaps);
//   3. every batch is complete, magic 2, batchLength >= 49, lastOffsetDelta >= 0, and (when
//      verifying) passes `validateBatch` (CRC-32C and counts).
// This class owns the file handle and the in-memory indexes; it does not decide when to roll,
// sync or delete (PartitionLog does) and it does not recover the log as a whole (log-recovery.ts).
import assert from 'node:assert/strict';
import {
  BatchField,
  batchSizeAt,
  ErrorCode,
  peekBatchSize,
  RECORD_BATCH_HEADER_BYTES,
  StreamBusError,
  validateBatch,
} from '@streambus/protocol';
import type { FileHandle, FileSystem } from '../fs.js';
import { isNotFound, joinPath, readFully } from '../fs.js';
import { OffsetIndex } from './offset-index.js';
import { readBufferPool } from './read-buffers.js';
import { TimeIndex } from './time-index.js';

/** Bytes read per step when scanning a segment. */
const SCAN_CHUNK_BYTES = 1024 * 1024;

export function segmentFileName(baseOffset: number, suffix: '.log' | '.index' | '.timeindex') {
  return `${String(baseOffset).padStart(20, '0')}${suffix}`;
}

/** The fields of a batch header the log needs, read without allocating a header object. */
export function batchBaseOffset(b: Buffer, p: number): number {
  return b.readUInt32BE(p) * 0x100000000 + b.readUInt32BE(p + 4);
}
export function batchLastOffsetDelta(b: Buffer, p: number): number {
  return b.readInt32BE(p + BatchField.LAST_OFFSET_DELTA);
}
export function batchMaxTimestamp(b: Buffer, p: number): number {
  return (
    b.readInt32BE(p + BatchField.MAX_TIMESTAMP) * 0x100000000 +
    b.readUInt32BE(p + BatchField.MAX_TIMESTAMP + 4)
  );
}

export interface ScanResult {
  /** Position after the last good batch. */
  readonly endPosition: number;
  /** lastOffset + 1 of the last good batch (baseOffset when none). */
  readonly nextOffset: number;
  readonly batchCount: number;
  /** Why the scan stopped before the end of the file, or null. */
  readonly problem: string | null;
}

export class LogSegment {
  readonly index: OffsetIndex;
  readonly timeIndex: TimeIndex;
  /** Offset after the last batch written (== baseOffset when empty). */
  nextOffset: number;
  /** Bytes of complete batches written (the file may be longer only while a write runs). */
  sizeBytes = 0;
  /** Largest batch maxTimestamp in the segment (-1 when empty). */
  maxTimestamp = -1;
  private bytesSinceIndexEntry = 0;
  /**
   * Bytes [0, verifiedBytes) are known good: every batch passed validation (at append, at
   * recovery or by `verifyUpTo`) and offsets are contiguous up to `verifiedNextOffset`.
   */
  verifiedBytes = 0;
  verifiedNextOffset: number;
  /** Has writes not yet fsynced. */
  dirty = false;
  /** Reads in progress; a deleted segment closes its handle when the last one ends. */
  readers = 0;
  deleted = false;
  /** For age-based rolling: when this process started writing it. */
  createdAtMs: number;

  constructor(
    readonly fs: FileSystem,
    readonly dir: string,
    readonly baseOffset: number,
    readonly handle: FileHandle,
    private readonly indexIntervalBytes: number,
    nowMs: number,
  ) {
    this.index = new OffsetIndex(baseOffset);
    this.timeIndex = new TimeIndex(baseOffset);
    this.nextOffset = baseOffset;
    this.verifiedNextOffset = baseOffset;
    this.createdAtMs = nowMs;
  }

  get logPath(): string {
    return joinPath(this.dir, segmentFileName(this.baseOffset, '.log'));
  }
  get indexPath(): string {
    return joinPath(this.dir, segmentFileName(this.baseOffset, '.index'));
  }
  get timeIndexPath(): string {
    return joinPath(this.dir, segmentFileName(this.baseOffset, '.timeindex'));
  }

  /** Creates a new, empty segment file (fails if one exists). */
  static async create(
    fs: FileSystem,
    dir: string,
    baseOffset: number,
    indexIntervalBytes: number,
    nowMs: number,
  ): Promise<LogSegment> {
    const path = joinPath(dir, segmentFileName(baseOffset, '.log'));
    const handle = await fs.open(path, 'create-new');
    return new LogSegment(fs, dir, baseOffset, handle, indexIntervalBytes, nowMs);
  }

  static async open(
    fs: FileSystem,
    dir: string,
    baseOffset: number,
    indexIntervalBytes: number,
    nowMs: number,
  ): Promise<LogSegment> {
    const handle = await fs.open(joinPath(dir, segmentFileName(baseOffset, '.log')), 'readwrite');
    return new LogSegment(fs, dir, baseOffset, handle, indexIntervalBytes, nowMs);
  }

  /**
   * Accounts for one batch written at `position` (indexes, sizes, timestamps). Called for every
   * appended batch and for every batch a recovery scan accepts; per batch, never per record.
   */
  onBatch(
    position: number,
    size: number,
    baseOffset: number,
    lastOffset: number,
    maxTs: number,
  ): void {
    assert.equal(position, this.sizeBytes, 'batches must be accounted in file order');
    assert.equal(baseOffset, this.nextOffset, 'batches must be contiguous');
    if (this.bytesSinceIndexEntry >= this.indexIntervalBytes) {
      this.index.append(baseOffset, position);
      this.timeIndex.append(this.maxTimestamp, baseOffset);
      this.bytesSinceIndexEntry = 0;
    }
    this.bytesSinceIndexEntry += size;
    if (maxTs > this.maxTimestamp) this.maxTimestamp = maxTs;
    this.sizeBytes = position + size;
    this.nextOffset = lastOffset + 1;
  }

  /** Forgets all batches (before a rebuild). */
  resetIndexes(): void {
    this.index.clear();
    this.timeIndex.clear();
    this.sizeBytes = 0;
    this.nextOffset = this.baseOffset;
    this.maxTimestamp = -1;
    this.bytesSinceIndexEntry = 0;
    this.verifiedBytes = 0;
    this.verifiedNextOffset = this.baseOffset;
  }

  markVerified(endPosition: number, nextOffset: number): void {
    this.verifiedBytes = endPosition;
    this.verifiedNextOffset = nextOffset;
  }

  /**
   * Verifies batches from `verifiedBytes` up to `endPosition` (a batch boundary), once: CRCs,
   * framing and offset contiguity. Returns how far the good prefix reaches and, when it stops
   * short, why.
   */
  async verifyUpTo(endPosition: number): Promise<{ goodEnd: number; problem: string | null }> {
    const start = this.verifiedBytes;
    if (endPosition <= start) return { goodEnd: endPosition, problem: null };
    // Scan to the first batch boundary at or past endPosition.
    const r = await this.scan(
      start,
      this.verifiedNextOffset,
      this.sizeBytes,
      true,
      false,
      // scan() visits whole batches whose header it checked.
      (buf, at, position) => position + batchSizeAt(buf, at) < endPosition,
    );
    if (this.verifiedBytes === start) this.markVerified(r.endPosition, r.nextOffset);
    return { goodEnd: r.endPosition, problem: r.problem };
  }

  /**
   * Loads the index files when they are intact and describe exactly this log file. Returns null
   * on success or the reason they cannot be trusted.
   */
  async loadIndexes(fileBytes: number): Promise<string | null> {
    let indexData: Buffer;
    let timeData: Buffer;
    try {
      indexData = await this.fs.readFile(this.indexPath);
      timeData = await this.fs.readFile(this.timeIndexPath);
    } catch (err) {
      if (isNotFound(err)) return 'missing';
      throw err;
    }
    const idx = OffsetIndex.decode(this.baseOffset, indexData);
    if (typeof idx === 'string') return `${this.indexPath}: ${idx}`;
    if (idx.summary.logBytes !== fileBytes) return `${this.indexPath}: stale (log size changed)`;
    const tix = TimeIndex.decode(this.baseOffset, timeData, idx.summary.nextOffset);
    if (typeof tix === 'string') return `${this.timeIndexPath}: ${tix}`;
    if (tix.logBytes !== fileBytes) return `${this.timeIndexPath}: stale (log size changed)`;
    // Adopt: copy entries into this segment's live indexes.
    this.resetIndexes();
    const { index, summary } = idx;
    (this as { index: OffsetIndex }).index = index;
    (this as { timeIndex: TimeIndex }).timeIndex = tix.index;
    this.sizeBytes = summary.logBytes;
    this.nextOffset = summary.nextOffset;
    this.maxTimestamp = summary.maxTimestamp;
    this.bytesSinceIndexEntry = summary.logBytes - index.lastPosition;
    return null;
  }

  /** Writes both index files whole (and fsyncs them when `sync`). */
  async writeIndexes(sync: boolean): Promise<void> {
    const summary = {
      logBytes: this.sizeBytes,
      nextOffset: this.nextOffset,
      maxTimestamp: this.maxTimestamp,
    };
    for (const [path, data] of [
      [this.indexPath, this.index.encode(summary)],
      [this.timeIndexPath, this.timeIndex.encode(this.sizeBytes)],
    ] as const) {
      const h = await this.fs.open(path, 'create');
      try {
        await h.truncate(0);
        await h.write(data, 0);
        if (sync) await h.sync();
      } finally {
        await h.close();
      }
    }
  }

  async deleteIndexFiles(): Promise<void> {
    for (const path of [this.indexPath, this.timeIndexPath]) {
      try {
        await this.fs.unlink(path);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
  }

  /**
   * Walks batches from `fromPosition` (a batch boundary whose batch starts at `fromOffset`) to
   * `endPosition`, checking the invariants above (and CRCs when `verify`), and calls `onBatch`
   * (the segment's own accounting when `account`). Stops at the first bad batch.
   */
  async scan(
    fromPosition: number,
    fromOffset: number | null,
    endPosition: number,
    verify: boolean,
    account: boolean,
    visit?: (buf: Buffer, at: number, position: number) => boolean,
  ): Promise<ScanResult> {
    let pos = fromPosition;
    // null: the first batch's offset is not known in advance (a mid-segment start).
    let next: number | null = fromOffset;
    let count = 0;
    let buf: Buffer = Buffer.alloc(0);
    let bufPos = pos;
    const stop = (problem: string | null): ScanResult => ({
      endPosition: pos,
      nextOffset: next ?? this.baseOffset,
      batchCount: count,
      problem,
    });
    while (pos < endPosition) {
      let at = pos - bufPos;
      if (at + RECORD_BATCH_HEADER_BYTES > buf.length) {
        buf = await readFully(this.handle, pos, Math.min(SCAN_CHUNK_BYTES, endPosition - pos));
        bufPos = pos;
        at = 0;
        if (buf.length < RECORD_BATCH_HEADER_BYTES) {
          return stop(`incomplete batch header at position ${pos} (${buf.length} B left)`);
        }
      }
      const size = peekBatchSize(buf, at);
      if (size < 0) return stop(`garbled batch header at position ${pos}`);
      if (pos + size > endPosition) return stop(`torn batch at position ${pos}`);
      if (at + size > buf.length) {
        buf = await readFully(
          this.handle,
          pos,
          Math.max(size, Math.min(SCAN_CHUNK_BYTES, endPosition - pos)),
        );
        bufPos = pos;
        at = 0;
        if (buf.length < size) return stop(`torn batch at position ${pos}`);
      }
      const base = batchBaseOffset(buf, at);
      const delta = batchLastOffsetDelta(buf, at);
      if (next !== null && base !== next) {
        return stop(`batch at position ${pos} has baseOffset ${base}, expected ${next}`);
      }
      if (delta < 0) return stop(`batch at position ${pos} has lastOffsetDelta ${delta}`);
      if (verify) {
        try {
          validateBatch(buf, at);
        } catch (err) {
          return stop(`batch at position ${pos} (offset ${base}): ${(err as Error).message}`);
        }
      }
      if (account) this.onBatch(pos, size, base, base + delta, batchMaxTimestamp(buf, at));
      const more = visit ? visit(buf, at, pos) : true;
      pos += size;
      next = base + delta + 1;
      count++;
      if (!more) return stop(null);
    }
    return stop(null);
  }

  /** The position of the batch containing `offset` (sizeBytes when offset >= nextOffset). */
  async positionOf(offset: number): Promise<{ position: number; baseOffset: number }> {
    if (offset >= this.nextOffset) return { position: this.sizeBytes, baseOffset: this.nextOffset };
    const from = this.index.lookup(offset);
    let found = { position: this.sizeBytes, baseOffset: this.nextOffset };
    await this.scan(from, null, this.sizeBytes, false, false, (buf, at, position) => {
      const base = batchBaseOffset(buf, at);
      if (base + batchLastOffsetDelta(buf, at) >= offset) {
        found = { position, baseOffset: base };
        return false;
      }
      return true;
    });
    return found;
  }

  /** Cuts the segment back to `position` (a batch boundary) and rebuilds its indexes. */
  async truncateTo(position: number): Promise<void> {
    await this.handle.truncate(position);
    const verified = this.verifiedBytes;
    this.resetIndexes();
    if (position > 0) {
      const r = await this.scan(0, this.baseOffset, position, false, true);
      assert.equal(r.problem, null, `segment ${this.logPath} unreadable while truncating`);
    }
    if (verified >= this.sizeBytes) this.markVerified(this.sizeBytes, this.nextOffset);
    this.dirty = true;
  }

  /** Reads [position, position+length) from the file. */
  read(position: number, length: number): Promise<Buffer> {
    return readFully(this.handle, position, length);
  }

  /** The same, into a buffer of `readBufferPool` (batches a fetch serves: read-buffers.ts). */
  readServed(position: number, length: number): Promise<Buffer> {
    return readFully(this.handle, position, length, readBufferPool.take(length));
  }

  storageCorruption(position: number, what: string): StreamBusError {
    return new StreamBusError(
      ErrorCode.CORRUPT_DATA,
      `segment ${this.logPath} at position ${position}: ${what}`,
    );
  }
}
