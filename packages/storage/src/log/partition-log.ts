// PartitionLog: the append-only, segmented log of one partition (ARCHITECTURE.md §3), also used
// as the partition's Raft log (§4: a batch is an entry, partitionLeaderEpoch is the term).
//
// Concurrency model. Every mutation (append, truncate, delete-records, retention, flush, close)
// goes through one ordered queue served by one writer loop, so they apply in call order and
// offsets are assigned by the loop just before the bytes are written. Consecutive appends are
// coalesced into one positional `writev` of the callers' own buffers (patched in place, never
// copied). Reads run concurrently with the loop and only see bytes whose write completed.
//
// Offsets. logStartOffset <= durableEndOffset <= writtenEndOffset <= logEndOffset:
//   logEndOffset      the next offset to assign (advanced when the loop assigns a group);
//   writtenEndOffset  every offset below was handed to the OS (readable);
//   durableEndOffset  every offset below is on stable storage (fsynced).
//
// Durability policies:
//   'always'   group commit. At most one fsync runs; when it ends, the next one starts at once
//              if anything was written meanwhile, covering all of it (after the write in
//              progress, if one is, lands: syncLoop); no timer. An append resolves only once an
//              fsync covers it.
//   'interval' an fsync every `flushIntervalMs` (when something is unsynced); appends resolve
//              once written; `waitDurable` resolves when an fsync covers the offset.
//   'none'     never fsyncs on its own (only `flush()` and `close()`).
// Recovery at open is in log-recovery.ts. It does not do compaction of keyed topics, tiered
// storage, or preallocation of segment files.
import assert from 'node:assert/strict';
import {
  BatchCursor,
  batchSizeAt,
  decodeRecordBatch,
  ErrorCode,
  RECORD_BATCH_HEADER_BYTES,
  StreamBusError,
  setPartitionLeaderEpoch,
  verifyBatchCrc,
} from '@streambus/protocol';
import type { FileSystem } from '../fs.js';
import { joinPath } from '../fs.js';
import { stageProbe } from '../stage-probe.js';
import {
  describeDamage,
  LogCorruptionError,
  type LogDamage,
  type LogEventListener,
} from './log-damage.js';
import { type RecoveryReport, recoverLog } from './log-recovery.js';
import {
  batchBaseOffset,
  batchLastOffsetDelta,
  batchMaxTimestamp,
  LogSegment,
} from './log-segment.js';
import { PARTITION_META_FILE, writePartitionMeta } from './partition-meta.js';
import { verifyReadBuffer } from './verify-read.js';
import { logFailedError, writeRefusedError } from './write-failure.js';

/** Stage timings for benchmarks (stage-probe.ts); null unless SB_STAGE_PROBE_FILE is set. */
const PROBE = stageProbe();

export type { RecoveryReport } from './log-recovery.js';

export type DurabilityPolicy = 'always' | 'interval' | 'none';

export interface PartitionLogConfig {
  /** Roll to a new segment before an append would take the active one past this size. */
  segmentBytesMax: number;
  /** Roll when the active segment is older than this (ms since this process started it). */
  segmentAgeMsMax: number;
  /** Bytes of batches between offset-index entries. */
  indexIntervalBytes: number;
  /** Delete oldest segments while the rest stay at or above this size; -1 = unlimited. */
  retentionBytesMax: number;
  /** Delete segments whose newest timestamp is older than this; -1 = forever. */
  retentionMs: number;
  durability: DurabilityPolicy;
  /** For 'interval'. */
  flushIntervalMs: number;
}

export interface PartitionLogOptions {
  /** Clock for segment age, retention and append time (default Date.now). */
  nowMs?: () => number;
  /** 'all': verify every segment at open, not only those past the recovery point. */
  verify?: 'auto' | 'all';
  /**
   * CRC checks on read: 'unverified' (default) checks batches not yet verified in this process
   * (segments trusted at open), once each; 'always' checks every batch served; 'never' none.
   */
  verifyOnRead?: 'unverified' | 'always' | 'never';
  /**
   * Appends waiting for the writer beyond this many bytes are refused with LOG_BACKPRESSURE
   * (retriable; default 64 MiB).
   */
  appendQueueBytesMax?: number;
  /**
   * Bytes accepted by `append` and not yet covered by an fsync (queued, being written, or written
   * and waiting for the fsync) are at most this many: an append beyond it is refused with
   * LOG_BACKPRESSURE (retriable) instead of piling up behind a slow fsync. One append is always
   * accepted when nothing is unsynced. Under 'interval' an fsync starts early once half of it is
   * written. Not applied under 'none' (no fsync would ever free it; only the queue bound holds).
   * Default DEFAULT_UNSYNCED_BYTES_MAX.
   */
  unsyncedBytesMax?: number;
  /**
   * A write group of at most this many bytes is written inline on the calling thread
   * (`FileHandle.writevNow`, when the handle offers it) instead of through `writev` (a libuv
   * thread-pool round trip); larger ones, and any the handle cannot write inline right now, take
   * `writev`. 0 = never inline. Default DEFAULT_INLINE_WRITE_BYTES_MAX. Durability is the same
   * either way (the bytes are in the OS; 'always' still answers only after the fsync).
   */
  inlineWriteBytesMax?: number;
  /**
   * Told of every cut recovery makes and every damaged batch found at open or by a read
   * (log-damage.ts), once per damage. Called synchronously; must not throw.
   */
  onEvent?: LogEventListener;
}

export interface AppendOptions {
  /** Stamped into every batch's partitionLeaderEpoch (the Raft term). */
  leaderEpoch?: number;
  /**
   * false: never refused with LOG_BACKPRESSURE (neither bound applies; its bytes still count).
   * For writers bounded upstream that cannot take a refusal back, such as a Raft group
   * persisting entries it already accepted (its flow control and the broker's byte budget bound
   * them). Default true: producers' appends get back-pressure.
   */
  backpressure?: boolean;
  /**
   * Called once the batches are written to the OS (readable, not yet fsynced), before the
   * returned promise resolves. Under 'always' the promise still waits for the fsync; this is the
   * separate "written" signal (a broker's acks=1). Under 'interval'/'none' it is called just
   * before the promise resolves. Not called when the append fails before its write.
   */
  onWritten?: (result: AppendResult) => void;
  /**
   * The batches already carry their offsets and leader epoch (a Raft follower appending its
   * leader's bytes, or a leader that stamped them when proposing): nothing is patched; each
   * batch's CRC is checked when queued (CORRUPT_MESSAGE) and its baseOffset must be the log end
   * when its turn comes (INVALID_RECORD otherwise; that append and the later ones of its write
   * group are refused, the log is unchanged). Default false: offsets are assigned.
   */
  assignedOffsets?: boolean;
  /** With `assignedOffsets`: the caller already checked every batch's CRC; skip that check. */
  crcVerified?: boolean;
}

export interface AppendResult {
  baseOffset: number;
  lastOffset: number;
  appendTimeMs: number;
}

export interface ReadResult {
  /** Whole batches, back to back; empty when none. */
  data: Buffer;
  /** The offset after the last returned batch (the requested offset when data is empty). */
  nextOffset: number;
  highWatermark?: never;
}

/**
 * 32 MiB: one fsync round (1-10 ms on an SSD) at 500 MB/s of ingest leaves 0.5-5 MB unsynced,
 * so a healthy disk never meets the bound; a stalled fsync pins at most this much of producers'
 * request buffers per partition (half the append queue bound), and is what 'interval' can lose
 * in a crash at most beyond its interval.
 */
export const DEFAULT_UNSYNCED_BYTES_MAX = 32 * 1024 * 1024;

/**
 * 64 KiB: small appends (per-record sends, paced producers, 1-record requests) are where a
 * thread-pool round trip costs more than the write (measured on the 2-core VM: 200 B 4-6 us
 * inline vs 35-90 us of CPU through the pool; broker CPU per 1-record request -40%). Larger
 * groups stay on the pool: for 100 KB requests alternating runs showed no gain beyond noise, and
 * a write the kernel throttles (dirty-page writeback under 'none' at disk speed) would stall the
 * event loop instead of a pool thread.
 */
export const DEFAULT_INLINE_WRITE_BYTES_MAX = 64 * 1024;

/** A `writev` takes at most this many buffers (Linux IOV_MAX). */
const WRITE_GROUP_BUFFERS_MAX = 1024;
const WRITE_GROUP_BYTES_MAX = 16 * 1024 * 1024;
/** Bytes read per step when a read must scan (beyond the caller's maxBytes). */
const READ_WINDOW_BYTES_MAX = 64 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

type Op =
  | {
      kind: 'append';
      buf: Buffer;
      /** Its bytes left `pendingBytes` (written, or refused). */
      counted: boolean;
      leaderEpoch: number | undefined;
      onWritten: ((r: AppendResult) => void) | undefined;
      assigned: boolean;
      /** performance.now() at append, only with the stage probe on (else 0). */
      queuedAtMs: number;
      resolve: (r: AppendResult) => void;
      reject: (e: unknown) => void;
    }
  | { kind: 'truncate'; offset: number; resolve: () => void; reject: (e: unknown) => void }
  | {
      kind: 'deleteBefore';
      offset: number;
      resolve: (n: number) => void;
      reject: (e: unknown) => void;
    }
  | { kind: 'retention'; resolve: () => void; reject: (e: unknown) => void }
  | { kind: 'reset'; offset: number; resolve: () => void; reject: (e: unknown) => void }
  | { kind: 'flush'; resolve: () => void; reject: (e: unknown) => void }
  | {
      kind: 'replace';
      cleaned: LogSegment;
      tempPath: string;
      resolve: () => void;
      reject: (e: unknown) => void;
    };

interface Waiter {
  readonly offset: number;
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
}

function invalidConfig(msg: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_CONFIG, msg);
}

export function validatePartitionLogConfig(c: PartitionLogConfig): void {
  if (
    !Number.isInteger(c.segmentBytesMax) ||
    c.segmentBytesMax < 1024 ||
    c.segmentBytesMax > 0x7fffffff
  ) {
    throw invalidConfig(
      `segmentBytesMax must be an integer in [1024, 2^31-1], got ${c.segmentBytesMax}`,
    );
  }
  if (!(c.segmentAgeMsMax > 0)) throw invalidConfig('segmentAgeMsMax must be > 0');
  if (!Number.isInteger(c.indexIntervalBytes) || c.indexIntervalBytes < 1) {
    throw invalidConfig('indexIntervalBytes must be a positive integer');
  }
  if (!(c.retentionBytesMax === -1 || c.retentionBytesMax >= 0)) {
    throw invalidConfig('retentionBytesMax must be -1 or >= 0');
  }
  if (!(c.retentionMs === -1 || c.retentionMs >= 0))
    throw invalidConfig('retentionMs must be -1 or >= 0');
  if (!['always', 'interval', 'none'].includes(c.durability)) {
    throw invalidConfig(`durability must be 'always', 'interval' or 'none', got '${c.durability}'`);
  }
  if (c.durability === 'interval' && !(c.flushIntervalMs > 0)) {
    throw invalidConfig('flushIntervalMs must be > 0 for durability interval');
  }
}

/** Null when every batch of `buf` continues the offsets from `next`, else the error to answer. */
function assignedOffsetsMismatch(buf: Buffer, next: number, dir: string): StreamBusError | null {
  const batch = new BatchCursor(buf);
  while (batch.next()) {
    const p = batch.position;
    const base = batchBaseOffset(buf, p);
    if (base !== next) {
      return new StreamBusError(
        ErrorCode.INVALID_RECORD,
        `batch with baseOffset ${base} does not continue ${dir} at offset ${next}`,
      );
    }
    next += batchLastOffsetDelta(buf, p) + 1;
  }
  return null;
}

export class PartitionLog {
  private segments: LogSegment[];
  private _logStartOffset: number;
  private _logEndOffset: number;
  private writtenEnd: number;
  private durableEnd: number;
  private recoveryPoint: number;
  private ops: Op[] = [];
  private opsBytes = 0;
  private writing = false;
  private kickScheduled = false;
  private syncing: Promise<void> | null = null;
  /** The segment write (`writev`) in progress, if any (group commit waits for it, syncLoop). */
  private writeInFlight: Promise<void> | null = null;
  private appendWaiters: Array<Waiter & { result: AppendResult }> = [];
  private durableWaiters: Waiter[] = [];
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private closing: Promise<void> | null = null;
  /** A segment file was created without fsyncing the directory ('none' rolls). */
  private dirDirty = false;
  /** A cleaned segment's swap in progress (startReplace): structural ops wait for it. */
  private replacing: Promise<void> | null = null;
  private failure: unknown = null;
  /** The last append write the disk refused (cleared by the next write that lands). */
  private refused: StreamBusError | null = null;
  private readonly nowMs: () => number;
  private readonly verifyOnRead: 'unverified' | 'always' | 'never';
  private readonly appendQueueBytesMax: number;
  private readonly unsyncedBytesMax: number;
  /** Bytes of appends accepted and neither written nor refused yet. */
  private pendingBytes = 0;
  /** Bytes of appends written since open, and of those covered by a completed fsync. */
  private writtenBytes = 0;
  private syncedBytes = 0;
  private readonly onEvent: LogEventListener;
  /** Damage found by reads, per segment (reported once; a segment holds at most one). */
  private readonly damages = new WeakMap<LogSegment, LogDamage>();
  /** fsyncs issued for data (tests check group commit with it). */
  syncCount = 0;
  /**
   * Segment writes of appends: `inlineWrites` written on the calling thread, `poolWrites`
   * through `writev` (a thread-pool round trip each). Tests and benchmarks count them.
   */
  inlineWrites = 0;
  poolWrites = 0;
  private readonly inlineWriteBytesMax: number;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    readonly config: PartitionLogConfig,
    options: PartitionLogOptions,
    recovered: Awaited<ReturnType<typeof recoverLog>>,
  ) {
    this.nowMs = options.nowMs ?? Date.now;
    this.verifyOnRead = options.verifyOnRead ?? 'unverified';
    this.appendQueueBytesMax = options.appendQueueBytesMax ?? 64 * 1024 * 1024;
    this.unsyncedBytesMax = options.unsyncedBytesMax ?? DEFAULT_UNSYNCED_BYTES_MAX;
    assert.ok(this.unsyncedBytesMax > 0, 'unsyncedBytesMax must be positive');
    this.inlineWriteBytesMax = options.inlineWriteBytesMax ?? DEFAULT_INLINE_WRITE_BYTES_MAX;
    this.onEvent = options.onEvent ?? (() => {});
    this.segments = recovered.segments;
    this.recovery = recovered.report;
    this._logStartOffset = recovered.logStartOffset;
    this.recoveryPoint = recovered.recoveryPoint;
    this._logEndOffset = this.active.nextOffset;
    this.writtenEnd = this._logEndOffset;
    this.durableEnd = config.durability === 'none' ? this.recoveryPoint : this._logEndOffset;
    this.durableEnd = Math.max(this.durableEnd, this._logStartOffset);
    if (config.durability === 'interval') {
      this.timer = setInterval(() => this.maybeSync(), config.flushIntervalMs);
      this.timer.unref();
    }
  }

  readonly recovery: RecoveryReport;

  /** Opens (creating if needed) the log in `dir`, recovering it first (see log-recovery.ts). */
  static async open(
    fs: FileSystem,
    dir: string,
    config: PartitionLogConfig,
    options: PartitionLogOptions = {},
  ): Promise<PartitionLog> {
    validatePartitionLogConfig(config);
    const now = (options.nowMs ?? Date.now)();
    const recovered = await recoverLog(
      fs,
      dir,
      config.indexIntervalBytes,
      now,
      options.verify === 'all',
      config.durability !== 'none',
      {
        ...(options.onEvent ? { onEvent: options.onEvent } : {}),
        // Under 'none' a sealed segment may be torn by a crash; otherwise damage there is real.
        sealedDamage: config.durability === 'none' ? 'truncate' : 'fail',
      },
    );
    return new PartitionLog(fs, dir, config, options, recovered);
  }

  private get active(): LogSegment {
    return this.segments[this.segments.length - 1]!;
  }

  get logStartOffset(): number {
    return this._logStartOffset;
  }
  get logEndOffset(): number {
    return this._logEndOffset;
  }
  /** Every offset below has been handed to the OS and is readable. */
  get writtenEndOffset(): number {
    return this.writtenEnd;
  }
  get durableEndOffset(): number {
    return this.durableEnd;
  }
  get sizeBytes(): number {
    let n = 0;
    for (const s of this.segments) n += s.sizeBytes;
    return n;
  }
  get segmentCount(): number {
    return this.segments.length;
  }
  /**
   * + The segments, oldest first, with their extents; `sealed` is false for the active one
   * (the log cleaner picks sealed segments below its bound; log-cleaner.ts).
   */
  get segmentExtents(): Array<{
    baseOffset: number;
    nextOffset: number;
    sizeBytes: number;
    sealed: boolean;
  }> {
    const last = this.segments.length - 1;
    return this.segments.map((s, i) => ({
      baseOffset: s.baseOffset,
      nextOffset: s.nextOffset,
      sizeBytes: s.sizeBytes,
      sealed: i < last,
    }));
  }
  /** Base offsets of the segments, oldest first (tests, admin). */
  get segmentBaseOffsets(): number[] {
    return this.segments.map((s) => s.baseOffset);
  }

  /**
   * Bytes accepted by `append` that an fsync does not cover yet (queued, being written, or
   * written and unsynced); at most `unsyncedBytesMax` unless one append alone is larger. Under
   * 'none' only the unwritten ones (and no bound applies there).
   */
  get unsyncedBytes(): number {
    if (this.config.durability === 'none') return this.pendingBytes;
    return this.pendingBytes + this.writtenBytes - this.syncedBytes;
  }

  /**
   * The log failed as a whole (an fsync or a cut-back failed): it refuses everything until it is
   * reopened, which recovers it from what is on disk.
   */
  get failed(): boolean {
    return this.failure !== null;
  }

  /**
   * Why writes fail right now: the log's failure, or the last refused append write (a full disk)
   * until a write lands again; null when healthy.
   */
  get storageError(): StreamBusError | null {
    return this.failure !== null ? this.failureError() : this.refused;
  }

  private checkOpen(): void {
    if (this.closed || this.closing) {
      throw new StreamBusError(ErrorCode.SHUTTING_DOWN, `partition log ${this.dir} is closed`);
    }
    if (this.failure) throw this.failureError();
  }

  // ---- Appends ----

  /**
   * The LOG_BACKPRESSURE error an append of `bytes` would be refused with right now, or null.
   * Synchronous, so a caller can ask before it commits to anything for the append (a broker
   * records idempotent sequences first: refused afterwards, a pipelined later batch of the same
   * producer could pass the sequence check in the same turn and be appended ahead of it).
   */
  backpressureRefusal(bytes: number): StreamBusError | null {
    return this.queueRefusal(bytes) ?? this.unsyncedRefusal(bytes);
  }

  private queueRefusal(bytes: number): StreamBusError | null {
    if (this.opsBytes + bytes > this.appendQueueBytesMax && this.ops.length > 0) {
      return new StreamBusError(
        ErrorCode.LOG_BACKPRESSURE,
        `append queue of ${this.dir} is full (appendQueueBytesMax ${this.appendQueueBytesMax})`,
      );
    }
    return null;
  }

  private unsyncedRefusal(bytes: number): StreamBusError | null {
    const unsynced = this.config.durability === 'none' ? 0 : this.unsyncedBytes;
    if (unsynced > 0 && unsynced + bytes > this.unsyncedBytesMax) {
      return new StreamBusError(
        ErrorCode.LOG_BACKPRESSURE,
        `${unsynced} B appended to ${this.dir} are not fsynced yet (unsyncedBytesMax ${this.unsyncedBytesMax})`,
      );
    }
    return null;
  }

  /**
   * Appends one or more RecordBatch v2 batches (already validated by the caller; here only their
   * framing is checked). Assigns offsets by patching baseOffset in place (and
   * partitionLeaderEpoch when given). Resolves once written to the OS; under 'always' once
   * durable.
   */
  append(batches: Buffer, options?: AppendOptions): Promise<AppendResult> {
    try {
      this.checkOpen();
      // Framing (CORRUPT_MESSAGE for a partial or garbled batch) and offsets of every batch.
      const batch = new BatchCursor(batches);
      while (batch.next()) {
        if (batchLastOffsetDelta(batches, batch.position) < 0) {
          throw new StreamBusError(
            ErrorCode.INVALID_RECORD,
            `batch at ${batch.position} has no offsets`,
          );
        }
        if (
          options?.assignedOffsets &&
          !options.crcVerified &&
          !verifyBatchCrc(batches, batch.position)
        ) {
          throw new StreamBusError(
            ErrorCode.CORRUPT_MESSAGE,
            `batch at ${batch.position} (baseOffset ${batchBaseOffset(batches, batch.position)}) failed its CRC-32C check`,
          );
        }
      }
      if (batches.length === 0) {
        throw new StreamBusError(ErrorCode.INVALID_RECORD, 'append of no batches');
      }
      if (batches.length > this.config.segmentBytesMax) {
        throw new StreamBusError(
          ErrorCode.RECORD_LIST_TOO_LARGE,
          `append of ${batches.length} B exceeds segmentBytesMax ${this.config.segmentBytesMax}`,
        );
      }
      const bounded = options?.backpressure !== false;
      if (bounded) {
        const queueFull = this.queueRefusal(batches.length);
        if (queueFull) throw queueFull;
      }
      if (bounded) {
        const unsyncedFull = this.unsyncedRefusal(batches.length);
        if (unsyncedFull) throw unsyncedFull;
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<AppendResult>((resolve, reject) => {
      const op: Extract<Op, { kind: 'append' }> = {
        kind: 'append',
        buf: batches,
        counted: false,
        leaderEpoch: options?.leaderEpoch,
        onWritten: options?.onWritten,
        assigned: options?.assignedOffsets === true,
        queuedAtMs: PROBE === null ? 0 : performance.now(),
        resolve,
        reject: (e) => {
          this.uncount(op);
          reject(e);
        },
      };
      this.ops.push(op);
      this.opsBytes += batches.length;
      this.pendingBytes += batches.length;
      this.kick();
    });
  }

  /** An append's bytes leave `pendingBytes` once: written (then unsynced) or refused. */
  private uncount(op: Extract<Op, { kind: 'append' }>): void {
    if (op.counted) return;
    op.counted = true;
    this.pendingBytes -= op.buf.length;
  }

  /**
   * Starts the writer loop on a microtask, not synchronously: appends queued in the same
   * synchronous pass (a socket chunk holding several produce frames) then share one writev
   * instead of the first one being written alone.
   */
  private kick(): void {
    if (this.writing || this.kickScheduled) return;
    this.kickScheduled = true;
    queueMicrotask(() => {
      this.kickScheduled = false;
      if (!this.writing) {
        // runOps answers every op it takes; should it still throw (a bug), the log fails and
        // every queued op is answered rather than left hanging or unhandled.
        this.runOps().catch((err: unknown) => {
          this.fail(err);
          for (const op of this.ops.splice(0)) op.reject(this.failureError());
          this.opsBytes = 0;
        });
      }
    });
  }

  private async runOps(): Promise<void> {
    this.writing = true;
    try {
      while (this.ops.length > 0) {
        const op = this.ops[0]!;
        if (op.kind === 'append') {
          await this.runAppends();
          continue;
        }
        // Structural ops (and a second swap) wait for a cleaned segment's swap; appends do not.
        if (this.replacing !== null) {
          await this.replacing;
          continue;
        }
        this.ops.shift();
        try {
          if (this.failure) this.checkOpen();
          switch (op.kind) {
            case 'truncate':
              await this.doTruncate(op.offset);
              op.resolve();
              break;
            case 'deleteBefore':
              op.resolve(await this.doDeleteBefore(op.offset));
              break;
            case 'retention':
              await this.doRetention();
              op.resolve();
              break;
            case 'reset':
              await this.doReset(op.offset);
              op.resolve();
              break;
            case 'flush':
              await this.syncNow();
              op.resolve();
              break;
            case 'replace':
              this.startReplace(op.cleaned, op.tempPath, op.resolve, op.reject);
              break;
          }
        } catch (err) {
          op.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /** Takes the leading run of appends, assigns offsets, writes them (rolling as needed). */
  private async runAppends(): Promise<void> {
    const group: Array<Extract<Op, { kind: 'append' }>> = [];
    let bytes = 0;
    while (group.length < WRITE_GROUP_BUFFERS_MAX && bytes < WRITE_GROUP_BYTES_MAX) {
      const op = this.ops[0];
      if (op?.kind !== 'append') break;
      this.ops.shift();
      this.opsBytes -= op.buf.length;
      group.push(op);
      bytes += op.buf.length;
    }
    if (this.failure) {
      for (const op of group) op.reject(this.failureError());
      return;
    }
    const now = this.nowMs();
    let i = 0;
    /** group[0, answered) are resolved or wait for their fsync; the rest still need an answer. */
    let answered = 0;
    /** An `assignedOffsets` append that does not start at the log end: it and the rest fail. */
    let mismatch: StreamBusError | null = null;
    try {
      while (i < group.length) {
        // Roll before the first append that does not fit (or when the segment is too old).
        const first = group[i]!;
        const act = this.active;
        if (
          act.sizeBytes > 0 &&
          (act.sizeBytes + first.buf.length > this.config.segmentBytesMax ||
            now - act.createdAtMs >= this.config.segmentAgeMsMax ||
            this._logEndOffset - act.baseOffset > 0xffffffff - 0x7fffffff)
        ) {
          await this.roll();
        }
        const seg = this.active;
        let size = seg.sizeBytes;
        const chunk: Array<Extract<Op, { kind: 'append' }>> = [];
        while (
          i < group.length &&
          (chunk.length === 0 || size + group[i]!.buf.length <= this.config.segmentBytesMax)
        ) {
          const op = group[i]!;
          const baseOffset = this._logEndOffset;
          if (op.assigned) {
            mismatch = assignedOffsetsMismatch(op.buf, baseOffset, this.dir);
            if (mismatch) break;
          }
          let next = baseOffset;
          const batch = new BatchCursor(op.buf);
          while (batch.next()) {
            const p = batch.position;
            if (!op.assigned) {
              op.buf.writeUInt32BE(Math.floor(next / 0x100000000), p);
              op.buf.writeUInt32BE(next >>> 0, p + 4);
              if (op.leaderEpoch !== undefined) setPartitionLeaderEpoch(op.buf, p, op.leaderEpoch);
            }
            next += batchLastOffsetDelta(op.buf, p) + 1;
          }
          this._logEndOffset = next;
          size += op.buf.length;
          chunk.push(op);
          i++;
        }
        if (chunk.length === 0) throw mismatch;
        const position = seg.sizeBytes;
        const chunkBase = batchBaseOffset(chunk[0]!.buf, 0);
        const writeStartMs = PROBE === null ? 0 : performance.now();
        if (PROBE !== null) {
          for (const op of chunk) PROBE.record('log.queue', writeStartMs - op.queuedAtMs);
        }
        try {
          const bufs = chunk.map((op) => op.buf);
          const handle = seg.handle;
          if (
            size - position <= this.inlineWriteBytesMax &&
            handle.writevNow !== undefined &&
            handle.writevNow(bufs, position)
          ) {
            this.inlineWrites++;
          } else {
            const write = handle.writev(bufs, position);
            this.poolWrites++;
            this.writeInFlight = write;
            try {
              await write;
            } finally {
              this.writeInFlight = null;
            }
          }
        } catch (err) {
          throw await this.undoWrite(seg, position, chunkBase, size - position, err);
        }
        this.refused = null;
        seg.dirty = true;
        this.writtenBytes += size - position;
        const writtenAtMs = PROBE === null ? 0 : performance.now();
        if (PROBE !== null) {
          PROBE.record('log.write', writtenAtMs - writeStartMs);
          PROBE.record('log.writeBytes', size - position);
          PROBE.record('log.writeBuffers', chunk.length);
        }
        let pos = position;
        for (const op of chunk) {
          this.uncount(op);
          const buf = op.buf;
          const baseOffset = batchBaseOffset(buf, 0);
          let last = baseOffset;
          const batch = new BatchCursor(buf);
          while (batch.next()) {
            const p = batch.position;
            const b = batchBaseOffset(buf, p);
            last = b + batchLastOffsetDelta(buf, p);
            seg.onBatch(pos, batch.size, b, last, batchMaxTimestamp(buf, p));
            pos += batch.size;
          }
          if (seg.verifiedBytes === pos - buf.length) seg.markVerified(pos, last + 1);
          this.writtenEnd = last + 1;
          const result = { baseOffset, lastOffset: last, appendTimeMs: now };
          if (this.config.durability === 'always') {
            op.onWritten?.(result);
            this.appendWaiters.push({
              offset: last + 1,
              resolve:
                PROBE === null
                  ? () => op.resolve(result)
                  : () => {
                      PROBE!.record('log.durableWait', performance.now() - writtenAtMs);
                      op.resolve(result);
                    },
              reject: op.reject,
              result,
            });
          } else {
            op.onWritten?.(result);
            op.resolve(result);
          }
          answered++;
        }
        // 'interval' fsyncs early once half of unsyncedBytesMax is written (not only on its timer).
        if (
          this.config.durability === 'interval' &&
          this.writtenBytes - this.syncedBytes >= this.unsyncedBytesMax / 2
        ) {
          this.maybeSync();
        }
        if (this.config.durability === 'always') this.maybeSync();
        if (mismatch) throw mismatch;
      }
    } catch (err) {
      // The chunk being written and every later append of the group (no offsets assigned, or
      // assigned and taken back by undoWrite) get the error; earlier chunks are written and keep
      // their answer. A roll that failed before any write leaves the log as it was.
      const error =
        this.failure !== null
          ? this.failureError()
          : err instanceof StreamBusError && (err === this.refused || err === mismatch)
            ? err
            : writeRefusedError(this.dir, bytes, err);
      if (this.failure === null) this._logEndOffset = this.writtenEnd;
      for (; answered < group.length; answered++) group[answered]!.reject(error);
    }
  }

  /**
   * A write of the chunk at `position` (offsets from `baseOffset`) failed: part of it may be in the
   * file (a full disk writes what fits). Cut the file back and take the offsets back, so the log
   * is exactly as before and the next append retries at the same place. If the cut fails too, the
   * file's tail is unknown: the log fails and must be recovered (reopened). Returns the error to
   * answer with.
   */
  private async undoWrite(
    seg: LogSegment,
    position: number,
    baseOffset: number,
    bytes: number,
    cause: unknown,
  ): Promise<StreamBusError> {
    this._logEndOffset = baseOffset;
    try {
      await seg.handle.truncate(position);
    } catch (err) {
      this.fail(err);
      return this.failureError();
    }
    this.refused = writeRefusedError(this.dir, bytes, cause);
    return this.refused;
  }

  /** An I/O failure on the write path: the log refuses further writes until reopened. */
  private fail(err: unknown): void {
    this.failure ??= err;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    for (const w of this.appendWaiters.splice(0)) w.reject(this.failureError());
    for (const w of this.durableWaiters.splice(0)) w.reject(this.failureError());
  }

  private failureError(): StreamBusError {
    return logFailedError(this.dir, this.failure);
  }

  /** Seals the active segment and starts a new one at logEndOffset. */
  private async roll(): Promise<void> {
    const old = this.active;
    const durable = this.config.durability !== 'none';
    if (durable) await this.syncNow();
    await old.writeIndexes(durable);
    const seg = await LogSegment.create(
      this.fs,
      this.dir,
      this.writtenEnd,
      this.config.indexIntervalBytes,
      this.nowMs(),
    );
    this.segments.push(seg);
    if (!durable) this.dirDirty = true;
    if (durable) {
      try {
        await this.fs.syncDir(this.dir);
      } catch (err) {
        // The new segment's name may not be durable: data fsynced into it could vanish in a
        // crash, so this counts as a failed fsync.
        this.fail(err);
        throw err;
      }
      this.recoveryPoint = seg.baseOffset;
      await this.writeMeta();
    }
  }

  private writeMeta(): Promise<void> {
    return writePartitionMeta(this.fs, joinPath(this.dir, PARTITION_META_FILE), {
      logStartOffset: this._logStartOffset,
      recoveryPoint: this.recoveryPoint,
    });
  }

  // ---- Durability ----

  /** Starts an fsync if none runs and something is unsynced (group commit). */
  private maybeSync(): void {
    if (this.syncing || this.durableEnd >= this.writtenEnd || this.failure) return;
    this.syncing = this.syncLoop().finally(() => {
      this.syncing = null;
    });
  }

  private async syncLoop(): Promise<void> {
    try {
      while (this.durableEnd < this.writtenEnd && !this.failure) {
        // Group commit across a write in progress: when an fsync is due while a write is still
        // being handed to the OS (a slow or busy disk, a loaded thread pool), it waits for that
        // write, so one fsync covers both, instead of covering only what landed before and
        // leaving the write a whole fsync round behind (one fsync per request under load).
        if (this.writeInFlight !== null) {
          const waitStartMs = PROBE === null ? 0 : performance.now();
          await this.writeInFlight.catch(() => undefined);
          PROBE?.record('log.fsyncWaitsForWrite', performance.now() - waitStartMs);
        }
        if (this.failure) break;
        const target = this.writtenEnd;
        const targetBytes = this.writtenBytes;
        for (const seg of this.segments) {
          if (!seg.dirty) continue;
          seg.dirty = false;
          const syncStartMs = PROBE === null ? 0 : performance.now();
          await seg.handle.sync();
          if (PROBE !== null) {
            PROBE.record('log.fsync', performance.now() - syncStartMs);
            PROBE.record('log.fsyncBytes', this.writtenBytes - this.syncedBytes);
          }
          this.syncCount++;
        }
        if (this.dirDirty) {
          this.dirDirty = false;
          await this.fs.syncDir(this.dir);
        }
        this.syncedBytes = Math.max(this.syncedBytes, targetBytes);
        this.setDurable(target);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  private setDurable(end: number): void {
    if (end > this.durableEnd) this.durableEnd = end;
    let n = 0;
    while (n < this.appendWaiters.length && this.appendWaiters[n]!.offset <= this.durableEnd) n++;
    for (const w of this.appendWaiters.splice(0, n)) w.resolve();
    if (this.durableWaiters.length > 0) {
      const keep: Waiter[] = [];
      for (const w of this.durableWaiters) {
        if (w.offset <= this.durableEnd) w.resolve();
        else keep.push(w);
      }
      this.durableWaiters = keep;
    }
  }

  /** Waits for any running fsync, then fsyncs everything written so far. */
  private async syncNow(): Promise<void> {
    while (this.syncing) await this.syncing;
    this.maybeSync();
    while (this.syncing) await this.syncing;
    if (this.failure) throw this.failureError();
  }

  /** Resolves when durableEndOffset >= offset (acks=all under 'interval'). */
  waitDurable(offset: number): Promise<void> {
    if (offset <= this.durableEnd) return Promise.resolve();
    try {
      this.checkOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      this.durableWaiters.push({ offset, resolve, reject });
      if (this.config.durability === 'always') this.maybeSync();
    });
  }

  /** Fsyncs everything appended before this call (any policy). */
  flush(): Promise<void> {
    return this.enqueue<void>((resolve, reject) => ({ kind: 'flush', resolve, reject }));
  }

  private enqueue<T>(
    make: (resolve: (v: T) => void, reject: (e: unknown) => void) => Op,
  ): Promise<T> {
    try {
      this.checkOpen();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<T>((resolve, reject) => {
      this.ops.push(make(resolve, reject));
      this.kick();
    });
  }

  // ---- Reads ----

  private segmentFor(offset: number): number {
    let lo = 0;
    let hi = this.segments.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.segments[mid]!.baseOffset <= offset) lo = mid + 1;
      else hi = mid;
    }
    return Math.max(0, lo - 1);
  }

  private outOfRange(offset: number): StreamBusError {
    return new StreamBusError(
      ErrorCode.OFFSET_OUT_OF_RANGE,
      `offset ${offset} is outside [${this._logStartOffset}, ${this._logEndOffset}] of ${this.dir}`,
    );
  }

  /**
   * Whole batches from the one containing `offset`, up to `maxBytes` but always at least one
   * batch. OFFSET_OUT_OF_RANGE outside [logStartOffset, logEndOffset]; empty at the end.
   * A read that reaches the end of a segment with budget left continues into the next segment
   * (the parts are joined: one copy, only at a segment boundary); `nextOffset` continues.
   */
  async read(offset: number, maxBytes: number): Promise<ReadResult> {
    this.checkOpen();
    if (
      !Number.isSafeInteger(offset) ||
      offset < this._logStartOffset ||
      offset > this._logEndOffset
    ) {
      throw this.outOfRange(offset);
    }
    const budget = Math.max(0, maxBytes);
    const parts: Buffer[] = [];
    let bytes = 0;
    let next = offset;
    for (let si = this.segmentFor(offset); si < this.segments.length; si++) {
      if (next >= this.writtenEnd) break;
      const seg = this.segments[si]!;
      if (next >= seg.nextOffset) continue;
      // After the first part, a batch is taken only if it fits the remaining budget.
      let r: ReadResult | null;
      try {
        r = await this.readSegment(seg, next, budget - bytes, parts.length > 0);
      } catch (err) {
        // A continuation serves what it has; the failure comes with the read at that offset.
        if (parts.length > 0) break;
        throw err;
      }
      if (r === null) {
        if (parts.length > 0) break;
        continue;
      }
      parts.push(r.data);
      bytes += r.data.length;
      next = r.nextOffset;
      // Stop unless this segment was read to its end with budget left.
      if (bytes >= budget || next < seg.nextOffset) break;
    }
    if (parts.length === 0) return { data: EMPTY, nextOffset: offset };
    return { data: parts.length === 1 ? parts[0]! : Buffer.concat(parts, bytes), nextOffset: next };
  }

  /** `firstMustFit`: the first batch too must fit `maxBytes` (a continuation read). */
  private async readSegment(
    seg: LogSegment,
    offset: number,
    maxBytes: number,
    firstMustFit = false,
  ): Promise<ReadResult | null> {
    let end = seg.sizeBytes;
    let start = seg.index.lookup(offset);
    seg.readers++;
    try {
      const want = Math.min(
        end - start,
        Math.max(maxBytes, RECORD_BATCH_HEADER_BYTES) + this.config.indexIntervalBytes + 4096,
        READ_WINDOW_BYTES_MAX,
      );
      // A segment trusted at open is verified lazily, once, from its verified prefix, as each
      // read comes in and before any header in it is believed: in the bytes just read when the
      // verified prefix ends inside them (a consumer reading on: one read, not two), else by a
      // scan up to the end of the buffer.
      let problem: string | null = null;
      const verify = async (bufStart: number, b: Buffer): Promise<void> => {
        if (this.verifyOnRead !== 'unverified' || problem !== null) return;
        if (seg.verifiedBytes >= bufStart + b.length) return;
        const v =
          seg.verifiedBytes >= bufStart
            ? verifyReadBuffer(seg, b, bufStart)
            : await seg.verifyUpTo(bufStart + b.length);
        if (v.problem !== null) {
          problem = v.problem;
          end = Math.min(end, v.goodEnd);
        }
      };
      const corrupt = () =>
        this.damageError(seg, end, seg.verifiedNextOffset, problem ?? 'unreadable');
      // The size of the stored batch whose header is at `at` of the window (which may hold only
      // part of the batch), bounds-checked; a garbled length is the segment's damage.
      const sizeAt = (at: number): number => {
        try {
          return batchSizeAt(buf, at);
        } catch (err) {
          throw seg.storageCorruption(start + at, `bad batch length (${(err as Error).message})`);
        }
      };
      let buf: Buffer = await seg.readServed(start, Math.max(0, Math.min(want, end - start)));
      await verify(start, buf);
      // Skip batches before `offset`.
      let at = 0;
      for (;;) {
        if (start + at >= end) {
          if (problem !== null) throw await corrupt();
          return null;
        }
        if (at + RECORD_BATCH_HEADER_BYTES > buf.length) {
          start += at;
          at = 0;
          buf = await seg.readServed(start, Math.min(end - start, Math.max(maxBytes, 64 * 1024)));
          await verify(start, buf);
          if (buf.length < RECORD_BATCH_HEADER_BYTES) return null; // truncated meanwhile
        }
        const size = sizeAt(at);
        if (batchBaseOffset(buf, at) + batchLastOffsetDelta(buf, at) >= offset) break;
        at += size;
      }
      // Collect whole batches: the first always, more while within maxBytes and the buffer.
      const firstPos = start + at;
      let endAt = at;
      let lastOffset = -1;
      for (;;) {
        if (endAt + RECORD_BATCH_HEADER_BYTES > buf.length || start + endAt >= end) break;
        const size = sizeAt(endAt);
        if ((endAt > at || firstMustFit) && endAt + size - at > maxBytes) break;
        if (start + endAt + size > end) break;
        if (endAt + size > buf.length) {
          if (endAt > at) break;
          // The first batch is larger than the window: read exactly it.
          buf = await seg.readServed(firstPos, size);
          at = 0;
          endAt = 0;
          if (buf.length < size) return null;
          await verify(firstPos, buf);
          if (firstPos + size > end) break;
        }
        const last = batchBaseOffset(buf, endAt) + batchLastOffsetDelta(buf, endAt);
        if (last >= this.writtenEnd) break; // truncated while we read
        lastOffset = last;
        endAt += size;
      }
      if (lastOffset < 0) {
        if (problem !== null) throw await corrupt();
        return null;
      }
      const data = buf.subarray(at, endAt);
      if (this.verifyOnRead === 'always') {
        const bad = this.verifyServed(data, firstPos);
        if (bad !== null) {
          throw await this.damageError(
            seg,
            bad.position,
            bad.offset,
            `batch at offset ${bad.offset} fails its CRC or order`,
          );
        }
      }
      return { data, nextOffset: lastOffset + 1 };
    } finally {
      seg.readers--;
      if (seg.deleted && seg.readers === 0) void seg.handle.close().catch(() => undefined);
    }
  }

  /** 'always': every served batch's CRC and contiguity; the first bad one, or null. */
  private verifyServed(
    data: Buffer,
    position: number,
  ): { position: number; offset: number } | null {
    let next = -1;
    // `data` is whole batches this read framed already.
    const batch = new BatchCursor(data);
    while (batch.next()) {
      const p = batch.position;
      const base = batchBaseOffset(data, p);
      if (!verifyBatchCrc(data, p) || (next >= 0 && base !== next)) {
        return { position: position + p, offset: next >= 0 ? next : base };
      }
      next = base + batchLastOffsetDelta(data, p) + 1;
    }
    return null;
  }

  /**
   * The CORRUPT_DATA error for damage a read met at `position` of `seg`, where offset
   * `fromOffset` should start; the damage is described (how far it reaches) and reported to
   * `onEvent` the first time only.
   */
  private async damageError(
    seg: LogSegment,
    position: number,
    fromOffset: number,
    reason: string,
  ): Promise<LogCorruptionError> {
    let damage = this.damages.get(seg);
    if (damage === undefined || damage.position !== position) {
      const i = this.segments.indexOf(seg);
      const next = i >= 0 ? this.segments[i + 1] : undefined;
      damage = await describeDamage(
        seg,
        position,
        fromOffset,
        seg.sizeBytes,
        next?.baseOffset ?? null,
        reason,
      );
      this.damages.set(seg, damage);
      this.onEvent({ kind: 'corruption', dir: this.dir, detectedBy: 'read', ...damage });
    }
    return new LogCorruptionError(damage);
  }

  /**
   * The first offset whose record timestamp is >= timestampMs, or null when none. Batches are
   * found through the time index; the one batch that holds the answer is decoded.
   */
  async offsetForTimestamp(timestampMs: number): Promise<number | null> {
    return (await this.findOffsetByTimestamp(timestampMs))?.offset ?? null;
  }

  /**
   * Like `offsetForTimestamp`, with the found record's timestamp (what Kafka's ListOffsets
   * returns): the first batch whose maxTimestamp >= timestampMs is decoded and its first record
   * with timestamp >= timestampMs is the answer. A batch this build cannot decode answers with
   * its base offset (at least logStartOffset) and its maxTimestamp.
   */
  async findOffsetByTimestamp(
    timestampMs: number,
  ): Promise<{ offset: number; timestamp: number } | null> {
    this.checkOpen();
    for (const seg of this.segments.slice()) {
      if (seg.maxTimestamp < timestampMs || seg.nextOffset <= this._logStartOffset) continue;
      const fromOffset = Math.max(seg.timeIndex.lookup(timestampMs), this._logStartOffset);
      const from = seg.index.lookup(fromOffset);
      let hit: Buffer | null = null;
      seg.readers++;
      try {
        await seg.scan(from, null, seg.sizeBytes, false, false, (buf, at) => {
          const last = batchBaseOffset(buf, at) + batchLastOffsetDelta(buf, at);
          if (last < fromOffset || batchMaxTimestamp(buf, at) < timestampMs) return true;
          // scan() hands whole batches whose header it checked.
          hit = Buffer.from(buf.subarray(at, at + batchSizeAt(buf, at)));
          return false;
        });
      } finally {
        seg.readers--;
      }
      if (hit === null) continue;
      const batch: Buffer = hit;
      const base = batchBaseOffset(batch, 0);
      try {
        const decoded = decodeRecordBatch(batch);
        for (const r of decoded.records) {
          if (r.timestamp >= timestampMs && r.offset >= this._logStartOffset) {
            return { offset: r.offset, timestamp: r.timestamp };
          }
        }
      } catch {
        // Undecodable (e.g. a codec this build lacks): the batch start is the best answer.
      }
      return {
        offset: Math.max(base, this._logStartOffset),
        timestamp: batchMaxTimestamp(batch, 0),
      };
    }
    return null;
  }

  // ---- Truncation, retention ----

  /**
   * Removes every batch from the one containing `offset` on; afterwards logEndOffset is that
   * batch's baseOffset (exactly `offset` when it is a batch boundary, as Raft entries are).
   * OFFSET_OUT_OF_RANGE below logStartOffset; no-op at or past logEndOffset.
   */
  truncateTo(offset: number): Promise<void> {
    return this.enqueue<void>((resolve, reject) => ({ kind: 'truncate', offset, resolve, reject }));
  }

  private async doTruncate(offset: number): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < this._logStartOffset)
      throw this.outOfRange(offset);
    if (offset >= this._logEndOffset) return;
    // Let every earlier append become durable first (its promise is then kept), and no fsync
    // may run while files shrink.
    if (this.config.durability === 'always') await this.syncNow();
    while (this.syncing) await this.syncing;
    const si = this.segmentFor(offset);
    const seg = this.segments[si]!;
    const { position, baseOffset } = await seg.positionOf(offset);
    // Lower the recovery point first: a crash mid-truncation must re-verify this segment.
    this.recoveryPoint = Math.min(this.recoveryPoint, seg.baseOffset);
    await this.writeMeta();
    for (const dead of this.segments.splice(si + 1)) await this.deleteSegment(dead);
    await seg.deleteIndexFiles();
    await seg.truncateTo(position);
    assert.equal(seg.nextOffset, baseOffset, 'truncation landed off a batch boundary');
    seg.createdAtMs = this.nowMs();
    this._logEndOffset = baseOffset;
    this.writtenEnd = baseOffset;
    if (this.durableEnd > baseOffset) this.durableEnd = baseOffset;
    if (this.config.durability !== 'none') {
      await seg.handle.sync();
      seg.dirty = false;
      await this.fs.syncDir(this.dir);
      // Earlier segments were fsynced when they rolled; what is left is all on disk now.
      this.syncedBytes = this.writtenBytes;
    }
    const keep: Waiter[] = [];
    for (const w of this.durableWaiters) {
      if (w.offset > baseOffset) {
        w.reject(
          new StreamBusError(
            ErrorCode.LOG_TRUNCATED,
            `log ${this.dir} was truncated to ${baseOffset} before offset ${w.offset} became durable`,
          ),
        );
      } else keep.push(w);
    }
    this.durableWaiters = keep;
  }

  private async deleteSegment(seg: LogSegment): Promise<void> {
    seg.deleted = true;
    await this.fs.unlink(seg.logPath);
    await seg.deleteIndexFiles();
    if (seg.readers === 0) await seg.handle.close();
  }

  /**
   * + For the log cleaner (log-cleaner.ts): replaces the sealed segment with `cleaned.baseOffset`
   * by `cleaned`, a segment over the fsynced file `tempPath` in this directory that covers the
   * same offsets (its batches accounted and verified). Checked at its turn in the op queue; its
   * file operations then run beside the writer (appends go on; structural ops wait for them).
   * The old index files are unlinked durably before the rename, so a crash at any step leaves
   * either the old `.log` or the new one, with matching indexes or none (rebuilt at open).
   * LOG_CLEAN_CONFLICT when that segment is gone, active, or covers other offsets now.
   */
  replaceCleanedSegment(cleaned: LogSegment, tempPath: string): Promise<void> {
    return this.enqueue<void>((resolve, reject) => ({
      kind: 'replace',
      cleaned,
      tempPath,
      resolve,
      reject,
    }));
  }

  /**
   * Checks the swap at its turn in the op queue (synchronously), then runs its file operations
   * beside the writer: appends go on into the active segment meanwhile (a swap touches only a
   * sealed one), and every other structural op waits for `replacing` (runOps, doClose).
   */
  private startReplace(
    cleaned: LogSegment,
    tempPath: string,
    resolve: () => void,
    reject: (err: unknown) => void,
  ): void {
    const i = this.segments.findIndex((s) => s.baseOffset === cleaned.baseOffset);
    const old = i >= 0 ? this.segments[i] : undefined;
    if (
      old === undefined ||
      i === this.segments.length - 1 ||
      old.nextOffset !== cleaned.nextOffset ||
      old.nextOffset <= this._logStartOffset
    ) {
      reject(
        new StreamBusError(
          ErrorCode.LOG_CLEAN_CONFLICT,
          `segment ${cleaned.baseOffset} of ${this.dir} is no longer the sealed segment that was cleaned`,
        ),
      );
      return;
    }
    this.replacing = this.doReplace(old, cleaned, tempPath)
      .then(resolve, reject)
      .finally(() => {
        this.replacing = null;
        this.kick();
      });
  }

  private async doReplace(old: LogSegment, cleaned: LogSegment, tempPath: string): Promise<void> {
    await old.deleteIndexFiles();
    await this.fs.syncDir(this.dir);
    await this.fs.rename(tempPath, old.logPath);
    // From here the name holds the cleaned file; readers of the old one finish on its handle.
    // Only appends ran meanwhile (they add segments at the end), so `old` is still in place.
    this.segments[this.segments.indexOf(old)] = cleaned;
    old.deleted = true;
    if (old.readers === 0) await old.handle.close().catch(() => undefined);
    await this.fs.syncDir(this.dir);
    await cleaned.writeIndexes(true);
    this.dirDirty = true;
  }

  /** Moves logStartOffset up to `offset` (delete-records); returns the new logStartOffset. */
  deleteRecordsBefore(offset: number): Promise<number> {
    return this.enqueue<number>((resolve, reject) => ({
      kind: 'deleteBefore',
      offset,
      resolve,
      reject,
    }));
  }

  private async doDeleteBefore(offset: number): Promise<number> {
    if (!Number.isSafeInteger(offset) || offset > this._logEndOffset) throw this.outOfRange(offset);
    if (offset <= this._logStartOffset) return this._logStartOffset;
    this._logStartOffset = offset;
    if (this.durableEnd < offset) this.durableEnd = Math.min(offset, this.durableEnd);
    await this.writeMeta();
    await this.dropSegmentsBelowStart();
    return this._logStartOffset;
  }

  private async dropSegmentsBelowStart(): Promise<void> {
    while (this.segments.length > 1 && this.segments[0]!.nextOffset <= this._logStartOffset) {
      await this.deleteSegment(this.segments.shift()!);
    }
  }

  /**
   * Deletes everything and restarts the log empty at `offset` (log start = log end = offset):
   * a Raft follower installing a snapshot past its log, or a replica far behind the leader's
   * log start. Durable on return, whatever the policy.
   */
  truncateFullyAndStartAt(offset: number): Promise<void> {
    return this.enqueue<void>((resolve, reject) => ({ kind: 'reset', offset, resolve, reject }));
  }

  private async doReset(offset: number): Promise<void> {
    if (!Number.isSafeInteger(offset) || offset < 0) throw this.outOfRange(offset);
    // Earlier appends keep their promise (durable under 'always'); no fsync runs while files go.
    if (this.config.durability === 'always') await this.syncNow();
    while (this.syncing) await this.syncing;
    // Old segments go first: a crash part-way leaves an empty log (at the old log start) or the
    // new one, never old data under the new offsets.
    for (const dead of this.segments.splice(0)) await this.deleteSegment(dead);
    await this.fs.syncDir(this.dir);
    this.segments = [
      await LogSegment.create(
        this.fs,
        this.dir,
        offset,
        this.config.indexIntervalBytes,
        this.nowMs(),
      ),
    ];
    await this.fs.syncDir(this.dir);
    this._logStartOffset = offset;
    this._logEndOffset = offset;
    this.writtenEnd = offset;
    this.durableEnd = offset;
    this.recoveryPoint = offset;
    // Nothing written before is left to fsync.
    this.syncedBytes = this.writtenBytes;
    await this.writeMeta();
    for (const w of this.durableWaiters.splice(0)) {
      w.reject(
        new StreamBusError(ErrorCode.LOG_TRUNCATED, `log ${this.dir} was reset to ${offset}`),
      );
    }
  }

  /** Deletes oldest sealed segments beyond retentionBytesMax or older than retentionMs. */
  enforceRetention(): Promise<void> {
    return this.enqueue<void>((resolve, reject) => ({ kind: 'retention', resolve, reject }));
  }

  /**
   * The log start `enforceRetention` would move to now (a segment boundary; logStartOffset when
   * nothing is due). A replicated partition asks this and moves the start through its group.
   */
  /**
   * Where retention would move the log start. `limits` overrides the config the log was opened
   * with (a replicated partition takes its topic's current retention at each check, so a
   * change needs no reopen).
   */
  retentionStartOffset(
    limits: { readonly retentionBytesMax: number; readonly retentionMs: number } = this.config,
  ): number {
    const { retentionBytesMax, retentionMs } = limits;
    const now = this.nowMs();
    let total = this.sizeBytes;
    let newStart = this._logStartOffset;
    for (let i = 0; i < this.segments.length - 1; i++) {
      const seg = this.segments[i]!;
      const overSize = retentionBytesMax >= 0 && total - seg.sizeBytes >= retentionBytesMax;
      const expired = retentionMs >= 0 && seg.maxTimestamp < now - retentionMs;
      if (!overSize && !expired) break;
      total -= seg.sizeBytes;
      newStart = Math.max(newStart, seg.nextOffset);
    }
    return newStart;
  }

  private async doRetention(): Promise<void> {
    const newStart = this.retentionStartOffset();
    if (newStart === this._logStartOffset) return;
    this._logStartOffset = newStart;
    // Segments go first: on a full disk the checkpoint write fails, and deleting them is what
    // frees space. Whole segments only, so recovery derives the same log start from the first
    // segment left should the checkpoint not be written.
    await this.dropSegmentsBelowStart();
    await this.writeMeta();
  }

  // ---- Close ----

  /** Finishes queued work, fsyncs, writes the active segment's indexes and the checkpoint. */
  close(): Promise<void> {
    this.closing ??= this.doClose();
    return this.closing;
  }

  private async doClose(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    while (this.writing || this.ops.length > 0 || this.replacing !== null) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    let error: unknown = null;
    if (!this.failure) {
      try {
        await this.syncNow();
        await this.active.writeIndexes(true);
        this.recoveryPoint = this._logEndOffset;
        await this.writeMeta();
      } catch (err) {
        error = err;
      }
    }
    for (const w of this.durableWaiters.splice(0)) {
      w.reject(new StreamBusError(ErrorCode.SHUTTING_DOWN, `partition log ${this.dir} closed`));
    }
    for (const seg of this.segments) await seg.handle.close().catch(() => undefined);
    this.closed = true;
    if (error) throw error;
  }
}
