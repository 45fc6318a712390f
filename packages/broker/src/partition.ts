// One partition replica on this broker: its log (the storage package's PartitionLog, reached
// through the narrow `PartitionLogLike` seam so a Raft-backed log can take its place later), its
// idempotent-producer state, and its long-poll waiters. It turns a validated produce into an
// append (or a duplicate's original offsets), waits for durability as acks=all requires, and
// wakes parked fetches when the log grows.
//
// What it does not do: validate bytes (produce-validation.ts), decide topic configs, or own the
// socket. Leadership is fixed (single node); replication will replace `append` + `waitDurable`
// with "propose to Raft, wait for commit", keeping the same shape (ARCHITECTURE.md §4).
//
// Producer-state snapshot file `<dir>.producers.json` (next to the log directory, through the
// broker's FileSystem; fsync + atomic rename): { "offset": N, "producers": [{ "id", "epoch", "batches": [[firstSeq,
// lastSeq, baseOffset], ...] }] } where `offset` is the log end offset the state covers. At open
// the snapshot is loaded and the batch headers from `offset` to the log end are replayed; with no
// usable snapshot (missing, damaged, or beyond the recovered log end) the whole log is replayed.
//
// Offline (offline-log.ts). A partition whose log cannot be opened (`open(..., 'offline')`: damage found
// by recovery or by the producer-state replay, EMFILE, an I/O error), or whose log meets a damaged
// batch while serving a read, is kept as an object holding an OfflineLog: every request to it
// answers KAFKA_STORAGE_ERROR with the reason, and `offline` says why. `repair` closes the log,
// runs the storage repair on its directory and opens it again (online, or offline with the new
// reason); the producer state is then rebuilt from the whole log.
// Storage failures (docs/broker.md, "When the disk fails"). An append the disk refuses (ENOSPC:
// the log undoes it) answers KAFKA_STORAGE_ERROR (retriable) and the next append tries again. A
// log that failed as a whole (an fsync failed) is reopened from disk by the next request, at most
// once per RECOVERY_INTERVAL_MS, and cut back to what was durable when it failed (what was only
// written may be lost on disk: it is rewritten by the producers' retries, never acknowledged from
// a page cache whose fsync failed); the producer state is then rebuilt from the log. A config
// change that reopens the log makes concurrent produces wait for the new log, not fail.
import {
  batchSizeAt,
  ErrorCode,
  isStreamBusError,
  RECORD_BATCH_HEADER_BYTES,
  readBatchHeader,
  StreamBusError,
} from '@streambus/protocol';
import {
  type FileSystem,
  isLogCorruptionError,
  type LogEvent,
  type RepairOptions,
  type RepairReport,
} from '@streambus/storage';
import { readFileIfExists, writeFileDurably } from './durable-file.js';
import {
  type BatchEntry,
  lastSequence,
  type ProducerStateSnapshot,
  ProducerStateTable,
} from './idempotence.js';
import { type Waiter, WaiterSet } from './long-poll.js';
import { OfflineLog, type OfflineState, offlineError, REPAIRING_REASON } from './offline-log.js';
import type { ValidatedRecords } from './produce-validation.js';
import type { TopicConfig } from './topic-config.js';

/** The slice of `@streambus/storage`'s PartitionLog the broker uses. */
export interface PartitionLogLike {
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  /** Every offset below is written and readable (<= logEndOffset, which counts queued appends). */
  readonly writtenEndOffset: number;
  readonly durableEndOffset: number;
  readonly sizeBytes: number;
  /**
   * Resolves once written, or under 'always' once durable. `onWritten` (when the log supports it)
   * is called as soon as the bytes are written, before a pending fsync.
   */
  append(
    batches: Buffer,
    options?: {
      leaderEpoch?: number;
      onWritten?: (r: { baseOffset: number; lastOffset: number; appendTimeMs: number }) => void;
    },
  ): Promise<{ baseOffset: number; lastOffset: number; appendTimeMs: number }>;
  waitDurable(offset: number): Promise<void>;
  /** The LOG_BACKPRESSURE error an append of `bytes` would get now (synchronous), or null. */
  backpressureRefusal?(bytes: number): StreamBusError | null;
  read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }>;
  offsetForTimestamp(timestampMs: number): Promise<number | null>;
  /** The first record with timestamp >= timestampMs: its offset and timestamp. */
  findOffsetByTimestamp(timestampMs: number): Promise<{ offset: number; timestamp: number } | null>;
  deleteRecordsBefore(offset: number): Promise<number>;
  /** The log failed as a whole and refuses everything until reopened (storage's `failed`). */
  readonly failed?: boolean;
  /** Why writes fail right now (a full disk, a failed log), or null. */
  readonly storageError?: StreamBusError | null;
  /** Removes every batch from the one containing `offset` on (used after a failed fsync). */
  truncateTo?(offset: number): Promise<void>;
  enforceRetention(): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
}

export type OpenPartitionLog = (
  dir: string,
  config: TopicConfig,
  options?: { onEvent?: (event: LogEvent) => void },
) => Promise<PartitionLogLike>;

/** Repairs the closed log in `dir` (the storage package's repairPartitionLog). */
export type RepairPartitionLog = (dir: string, options: RepairOptions) => Promise<RepairReport>;

/** What a partition tells its owner (the broker logs and counts them). */
export interface PartitionHooks extends PartitionEvents {
  /** A cut or a damaged batch reported by this partition's log. */
  onLogEvent?(p: Partition, event: LogEvent): void;
  /** The partition went offline (its log failed to open, or a read met damage). */
  onOffline?(p: Partition, state: OfflineState): void;
}

export type Acks = -1 | 0 | 1;

export interface ProduceOutcome {
  baseOffset: number;
  /** -1 for a duplicate (the original append time is not kept). */
  appendTimeMs: number;
  duplicate: boolean;
}

const REPLAY_CHUNK_BYTES = 1024 * 1024;
/** A failed log is reopened (recovered from disk) at most this often. */
export const RECOVERY_INTERVAL_MS = 1000;

/** What a partition reports about its storage (the broker logs and counts it). */
export interface PartitionEvents {
  /** An append failed with a storage error; `first` when the partition was healthy before. */
  onStorageError?(p: Partition, err: StreamBusError, bytes: number, first: boolean): void;
  /** Writes land again after `downMs` of storage errors. */
  onStorageRecovered?(p: Partition, downMs: number): void;
  /** A failed log was reopened from disk (`cutTo`: offsets from there on were dropped). */
  onLogRecovered?(p: Partition, cutTo: number | null): void;
}
const EMPTY = Buffer.alloc(0);

type AppendResult = { baseOffset: number; lastOffset: number; appendTimeMs: number };

export class Partition {
  readonly waiters: WaiterSet;
  private producers: ProducerStateTable;
  private readonly pendingOffsets = new WeakMap<BatchEntry, Promise<number>>();
  private closed = false;
  /** Every append below this offset has resolved (appends resolve in offset order). */
  private settledEnd: number;
  private offlineState: OfflineState | null = null;
  private repairing = false;
  /** A reopen (config change or recovery) in progress: requests wait for the new log. */
  private reopening: Promise<void> | null = null;
  /** The log is closed or failed and must be reopened before use. */
  private needsReopen = false;
  /** After a failure: cut the reopened log back to this offset (what was durable). */
  private cutTo: number | null = null;
  private recoveryDueMs = 0;
  /** Why the last reopen failed (answered while the log stays unusable). */
  private reopenError: StreamBusError | null = null;
  /** Since when appends fail on storage (null: healthy). */
  private storageErrorSinceMs: number | null = null;

  private constructor(
    readonly topic: string,
    readonly index: number,
    readonly dir: string,
    private config: TopicConfig,
    private log: PartitionLogLike,
    fetchWaitersMax: number,
    private readonly hooks: PartitionHooks,
    private openLog: OpenPartitionLog,
    private readonly fs: FileSystem,
  ) {
    this.waiters = new WaiterSet(fetchWaitersMax);
    this.producers = new ProducerStateTable();
    this.settledEnd = log.logEndOffset;
  }

  /**
   * Opens the partition's log and producer state. A log that cannot be opened throws, or with
   * `ifUnopenable: 'offline'` (startup) leaves the partition offline with the reason.
   */
  static async open(
    topic: string,
    index: number,
    dir: string,
    config: TopicConfig,
    openLog: OpenPartitionLog,
    fetchWaitersMax: number,
    hooks: PartitionHooks = {},
    ifUnopenable: 'throw' | 'offline' = 'throw',
    /** The broker's file system, for the producer-state snapshot. */
    fs: FileSystem,
  ): Promise<Partition> {
    const offline = new OfflineLog(() => new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR), 0, 0);
    const p = new Partition(
      topic,
      index,
      dir,
      config,
      offline,
      fetchWaitersMax,
      hooks,
      openLog,
      fs,
    );
    try {
      await p.openLogAndState(openLog, false);
    } catch (err) {
      if (ifUnopenable === 'throw') throw err;
      p.becomeOffline(describeFailure(err), err);
    }
    return p;
  }

  /** Opens the log and rebuilds the producer state (from the whole log when `fullReplay`). */
  private async openLogAndState(openLog: OpenPartitionLog, fullReplay: boolean): Promise<void> {
    const onEvent = (e: LogEvent): void => this.hooks.onLogEvent?.(this, e);
    const log = await openLog(this.dir, this.config, { onEvent });
    this.log = log;
    this.producers = new ProducerStateTable();
    this.settledEnd = log.logEndOffset;
    this.offlineState = null;
    this.needsReopen = false;
    this.cutTo = null;
    this.reopenError = null;
    try {
      await this.restoreProducerState(fullReplay);
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
  }

  /** Why the partition is offline, or null when it serves. */
  get offline(): OfflineState | null {
    return this.offlineState;
  }

  /** Swaps in an OfflineLog (the caller closes the old log). */
  private becomeOffline(reason: string, cause: unknown): void {
    const damage = isLogCorruptionError(cause) ? cause.damage : null;
    const state: OfflineState = { reason, damage, sinceMs: Date.now() };
    const old = this.log;
    this.offlineState = state;
    this.log = new OfflineLog(
      () => offlineError(this.topic, this.index, state),
      old.logStartOffset,
      old.logEndOffset,
    );
    this.waiters.wakeAll();
    this.hooks.onOffline?.(this, state);
  }

  /** A read met damage: stop serving this partition until it is repaired. */
  private async takeOffline(cause: unknown): Promise<void> {
    if (this.offlineState !== null || this.closed) return;
    const old = this.log;
    this.becomeOffline(describeFailure(cause), cause);
    await old.close().catch(() => undefined);
  }

  /**
   * Closes the log (it stops serving), repairs its directory, and opens it again: online, or
   * offline with the reason it still cannot open. A dry run of an offline partition leaves it
   * as it is.
   */
  async repair(
    options: RepairOptions,
    repairLog: RepairPartitionLog,
    openLog: OpenPartitionLog,
  ): Promise<RepairReport> {
    this.checkNotClosed();
    if (this.repairing) {
      throw new StreamBusError(
        ErrorCode.INVALID_REQUEST,
        `partition ${this.topic}-${this.index} is already being repaired`,
      );
    }
    this.repairing = true;
    try {
      // A reopen in progress (config change, recovery) finishes first.
      while (this.reopening !== null) await this.reopening;
      const wasOffline = this.offlineState !== null;
      if (!wasOffline) {
        const old = this.log;
        this.becomeOffline(REPAIRING_REASON, null);
        await old.close();
      }
      let report: RepairReport;
      try {
        report = await repairLog(this.dir, options);
      } catch (err) {
        if (!wasOffline) await this.reopenOrOffline(openLog);
        throw err;
      }
      if (!(options.dryRun === true && wasOffline)) await this.reopenOrOffline(openLog);
      return report;
    } finally {
      this.repairing = false;
    }
  }

  private async reopenOrOffline(openLog: OpenPartitionLog): Promise<void> {
    if (this.closed) return;
    try {
      await this.openLogAndState(openLog, true);
      this.waiters.wakeAll();
    } catch (err) {
      this.becomeOffline(describeFailure(err), err);
    }
  }

  get logStartOffset(): number {
    return this.log.logStartOffset;
  }
  get logEndOffset(): number {
    return this.log.logEndOffset;
  }
  /**
   * The end of what consumers may see. Under 'always' it is the durable end: no record a crash
   * can take away is served or reported. Under 'interval'/'none' it is the written end (those
   * policies accept losing the unsynced tail; waiting for an fsync would stall consumers for up
   * to flush.ms, or forever under 'none'). Raft will make this the commit index.
   */
  get highWatermark(): number {
    return this.config.durability === 'always'
      ? Math.max(this.log.durableEndOffset, this.log.logStartOffset)
      : this.log.writtenEndOffset;
  }
  get sizeBytes(): number {
    return this.log.sizeBytes;
  }
  get topicConfig(): TopicConfig {
    return this.config;
  }
  /** Appends fail on storage right now (the metrics' storage-error gauge). */
  get inStorageError(): boolean {
    return this.storageErrorSinceMs !== null || this.unusable;
  }

  private get unusable(): boolean {
    return this.needsReopen || this.log.failed === true;
  }

  private get snapshotPath(): string {
    return `${this.dir}.producers.json`;
  }

  private checkOpen(): void {
    this.checkNotClosed();
    if (this.offlineState !== null) {
      throw offlineError(this.topic, this.index, this.offlineState);
    }
  }

  private checkNotClosed(): void {
    if (this.closed) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `partition ${this.topic}-${this.index} is closed`,
      );
    }
  }

  /** Throws the partition's error when it cannot serve (closed or offline). */
  checkServing(): void {
    this.checkOpen();
    // A log whose reopen failed (a full disk, EMFILE) answers its storage error until the next
    // reopen is due; then the request goes on, and produce/fetch try the reopen (ready()).
    if (
      this.needsReopen &&
      this.reopening === null &&
      this.reopenError !== null &&
      Date.now() < this.recoveryDueMs
    ) {
      throw this.reopenError;
    }
  }

  /**
   * Appends validated bytes (or answers a retried batch with its original offset), then waits for
   * durability when acks=all asks for it under a policy that did not already provide it.
   */
  async produce(records: Buffer, validated: ValidatedRecords, acks: Acks): Promise<ProduceOutcome> {
    this.checkOpen();
    if (this.reopening !== null || this.unusable) await this.ready();
    try {
      const out = await this.produceNow(records, validated, acks);
      if (this.storageErrorSinceMs !== null && !out.duplicate) {
        const downMs = Date.now() - this.storageErrorSinceMs;
        this.storageErrorSinceMs = null;
        this.hooks.onStorageRecovered?.(this, downMs);
      }
      return out;
    } catch (err) {
      if (isStreamBusError(err, ErrorCode.KAFKA_STORAGE_ERROR)) {
        const first = this.storageErrorSinceMs === null;
        this.storageErrorSinceMs ??= Date.now();
        this.hooks.onStorageError?.(this, err, records.length, first);
      }
      throw err;
    }
  }

  /**
   * Waits for a reopen in progress, and reopens a failed log when one is due. Throws the storage
   * error while the log stays unusable.
   */
  private async ready(): Promise<void> {
    while (this.reopening !== null) await this.reopening;
    this.checkOpen();
    if (!this.unusable) return;
    if (Date.now() >= this.recoveryDueMs) {
      // A failed reopen keeps its error in reopenError (answered below).
      await this.exclusive(() => this.replaceLog(this.config, this.openLog)).catch(() => undefined);
      this.checkOpen();
    }
    if (this.needsReopen) {
      throw (
        this.reopenError ??
        new StreamBusError(
          ErrorCode.KAFKA_STORAGE_ERROR,
          `partition ${this.topic}-${this.index} is being recovered from disk after a storage failure`,
        )
      );
    }
  }

  /** Runs `work` after any earlier reopen, with every request waiting for it. */
  private exclusive(work: () => Promise<void>): Promise<void> {
    const previous = this.reopening;
    let marker: Promise<void> | null = null;
    const run = (async () => {
      if (previous !== null) await previous;
      try {
        await work();
      } finally {
        if (this.reopening === marker) this.reopening = null;
        // Parked fetches re-read from the new log (or see its error).
        this.waiters.wakeAll();
      }
    })();
    marker = run.catch(() => undefined);
    this.reopening = marker;
    return run;
  }

  /**
   * Closes the log and opens it again (with `config`), recovering it from disk. After a failed
   * log the reopened one is cut back to what was durable and the producer state is rebuilt.
   * When the open fails the partition stays unusable and the next request tries again (at most
   * once per RECOVERY_INTERVAL_MS).
   */
  private async replaceLog(config: TopicConfig, openLog: OpenPartitionLog): Promise<void> {
    const old = this.log;
    this.recoveryDueMs = Date.now() + RECOVERY_INTERVAL_MS;
    if (!this.needsReopen) {
      try {
        await old.close();
      } catch {
        // A close that fails on a data fsync leaves the log failed (handled below); one that
        // fails writing its index files loses nothing (indexes are rebuilt at open).
      }
      if (old.failed === true && this.cutTo === null) {
        this.cutTo =
          this.config.durability === 'none' ? old.writtenEndOffset : old.durableEndOffset;
      }
      this.needsReopen = true;
    }
    this.config = config;
    this.openLog = openLog;
    let log: PartitionLogLike;
    const onEvent = (e: LogEvent): void => this.hooks.onLogEvent?.(this, e);
    try {
      log = await openLog(this.dir, config, { onEvent });
    } catch (err) {
      // Damage will not go away by retrying: the partition goes offline until repaired. Other
      // failures (a full disk, EMFILE) are retried by later requests.
      if (isLogCorruptionError(err)) {
        this.needsReopen = false;
        this.cutTo = null;
        this.becomeOffline(describeFailure(err), err);
      } else {
        this.reopenError = storageFailure(this, err);
      }
      throw err;
    }
    const cutTo = this.cutTo;
    try {
      if (cutTo !== null && log.logEndOffset > cutTo && log.truncateTo) {
        await log.truncateTo(Math.max(cutTo, log.logStartOffset));
      }
      if (cutTo !== null) {
        const previous = this.producers;
        this.log = log;
        this.producers = new ProducerStateTable();
        try {
          await this.restoreProducerState(false);
        } catch (err) {
          this.producers = previous;
          throw err;
        }
      }
    } catch (err) {
      this.log = old;
      this.reopenError = storageFailure(this, err);
      await log.close().catch(() => undefined);
      throw err;
    }
    this.log = log;
    this.settledEnd = log.logEndOffset;
    this.needsReopen = false;
    this.cutTo = null;
    this.reopenError = null;
    if (cutTo !== null || old.failed === true) this.hooks.onLogRecovered?.(this, cutTo);
  }

  private async produceNow(
    records: Buffer,
    validated: ValidatedRecords,
    acks: Acks,
  ): Promise<ProduceOutcome> {
    // Back-pressure is decided before any sequence is recorded, in the same turn as the append
    // below: a refusal after recording would leave a window in which the producer's next
    // pipelined batch passes the sequence check and is appended ahead of the refused one.
    const refusal = this.log.backpressureRefusal?.(records.length) ?? null;
    if (refusal !== null) throw refusal;
    const recorded: Array<{ producerId: number; entry: BatchEntry; deltaFromBase: number }> = [];
    let duplicates = 0;
    let firstDuplicate: BatchEntry | null = null;
    let deltaFromBase = 0;
    try {
      for (const { header: h } of validated.batches) {
        if (h.producerId >= 0) {
          const lastSeq = lastSequence(h.baseSequence, h.lastOffsetDelta);
          const decision = this.producers.check(
            h.producerId,
            h.producerEpoch,
            h.baseSequence,
            lastSeq,
          );
          if (decision.kind === 'duplicate') {
            duplicates++;
            firstDuplicate ??= decision.entry;
          } else {
            const entry = this.producers.record(
              h.producerId,
              h.producerEpoch,
              h.baseSequence,
              lastSeq,
              null,
            );
            recorded.push({ producerId: h.producerId, entry, deltaFromBase });
          }
        }
        deltaFromBase += h.lastOffsetDelta + 1;
      }
      if (duplicates > 0 && duplicates !== validated.batches.length) {
        throw new StreamBusError(
          ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
          'a produce mixes already-written batches with new ones',
        );
      }
    } catch (err) {
      for (let i = recorded.length - 1; i >= 0; i--) {
        const r = recorded[i]!;
        this.producers.forget(r.producerId, r.entry);
      }
      throw err;
    }
    if (firstDuplicate !== null) {
      const baseOffset =
        firstDuplicate.baseOffset ?? (await this.pendingOffsets.get(firstDuplicate));
      if (baseOffset === undefined) {
        throw new StreamBusError(ErrorCode.UNKNOWN_SERVER_ERROR, 'duplicate of a lost append');
      }
      if (acks === -1) await this.waitDurableFor(this.config.durability, baseOffset);
      return { baseOffset, appendTimeMs: -1, duplicate: true };
    }

    // acks=1 is answered once the bytes are written (the log's onWritten), even under 'always'
    // where the append itself resolves only after the fsync; acks=all and acks=0 wait for it.
    let onWritten: ((r: AppendResult) => void) | undefined;
    const written =
      acks === 1
        ? new Promise<AppendResult>((resolve) => {
            onWritten = resolve;
          })
        : null;
    const appending = this.log.append(records, onWritten ? { onWritten } : undefined);
    for (const r of recorded) {
      const pending = appending.then((res) => res.baseOffset + r.deltaFromBase);
      // Only a concurrent duplicate awaits this; the append's own failure is answered below.
      pending.catch(() => undefined);
      this.pendingOffsets.set(r.entry, pending);
    }
    const settled = appending.then(
      (result) => {
        for (const r of recorded) r.entry.baseOffset = result.baseOffset + r.deltaFromBase;
        this.settledEnd = Math.max(this.settledEnd, result.lastOffset + 1);
        // The high watermark moved (written end, or the durable end under 'always'): wake fetches.
        this.waiters.wakeAll();
        return result;
      },
      (err: unknown) => {
        for (let i = recorded.length - 1; i >= 0; i--) {
          const r = recorded[i]!;
          this.producers.forget(r.producerId, r.entry);
        }
        throw err;
      },
    );
    let result: AppendResult;
    if (written !== null) {
      // A failure after the acks=1 answer (a failed fsync) fails the log; nothing to report here.
      settled.catch(() => undefined);
      result = await Promise.race([settled, written]);
    } else {
      result = await settled;
    }
    if (acks === -1) await this.waitDurableFor(this.config.durability, result.lastOffset);
    return { baseOffset: result.baseOffset, appendTimeMs: result.appendTimeMs, duplicate: false };
  }

  /** acks=all: 'always' appends resolve durable already; 'interval' waits for the next flush. */
  private async waitDurableFor(
    policy: TopicConfig['durability'],
    lastOffset: number,
  ): Promise<void> {
    if (policy === 'interval') await this.log.waitDurable(lastOffset + 1);
    else if (policy === 'always' && this.log.durableEndOffset <= lastOffset) {
      await this.log.waitDurable(lastOffset + 1);
    }
  }

  /**
   * Whole batches below the high watermark from `offset` (the log's read, cut at the last batch
   * that ends below it: under 'always' nothing not yet durable is served).
   */
  async read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }> {
    this.checkOpen();
    if (this.reopening !== null || this.unusable) await this.ready();
    const hw = this.highWatermark;
    if (offset >= hw && offset <= this.log.logEndOffset) return { data: EMPTY, nextOffset: offset };
    let r: { data: Buffer; nextOffset: number };
    try {
      r = await this.log.read(offset, maxBytes);
    } catch (err) {
      if (!isLogCorruptionError(err)) throw err;
      await this.takeOffline(err);
      throw offlineError(
        this.topic,
        this.index,
        this.offlineState ?? { reason: err.message, damage: err.damage, sinceMs: Date.now() },
      );
    }
    if (r.nextOffset <= hw) return r;
    let pos = 0;
    let next = offset;
    while (pos + RECORD_BATCH_HEADER_BYTES <= r.data.length) {
      const h = readBatchHeader(r.data, pos);
      if (h.baseOffset + h.lastOffsetDelta >= hw) break;
      next = h.baseOffset + h.lastOffsetDelta + 1;
      pos += batchSizeAt(r.data, pos);
    }
    return { data: r.data.subarray(0, pos), nextOffset: next };
  }

  /** The first record at or after `timestampMs` below the high watermark, with its timestamp. */
  async findOffsetByTimestamp(
    timestampMs: number,
  ): Promise<{ offset: number; timestamp: number } | null> {
    this.checkOpen();
    if (this.reopening !== null || this.unusable) await this.ready();
    const hw = this.highWatermark;
    const found = await this.log.findOffsetByTimestamp(timestampMs);
    return found !== null && found.offset < hw ? found : null;
  }

  async deleteRecordsBefore(offset: number): Promise<number> {
    this.checkOpen();
    if (this.reopening !== null || this.unusable) await this.ready();
    if (offset < 0 || offset > this.highWatermark) {
      throw new StreamBusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `delete-records offset ${offset} is outside [0, ${this.highWatermark}]`,
      );
    }
    return this.log.deleteRecordsBefore(offset);
  }

  /** Periodic work; skipped while the log is being reopened or waits for recovery. */
  async enforceRetention(): Promise<void> {
    if (this.closed || this.reopening !== null || this.unusable) return;
    await this.log.enforceRetention();
  }

  /** Parks a fetch; false when the partition's waiter bound is reached. */
  park(waiter: Waiter): boolean {
    return !this.closed && this.waiters.add(waiter);
  }

  unpark(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  /** Makes everything written durable (resolves acks=all waits under 'interval' and 'none'). */
  async flush(): Promise<void> {
    while (this.reopening !== null) await this.reopening;
    if (!this.closed && !this.unusable) await this.log.flush();
  }

  /** Writes the producer-state snapshot (so a restart replays only the tail). */
  async saveProducerState(): Promise<void> {
    // An offline partition's table may not match its data: the next open rebuilds it. A log
    // waiting for recovery gets its producer state rebuilt from the log: nothing to save.
    if (this.offlineState !== null || this.reopening !== null || this.needsReopen) return;
    // Only settled entries are in the table's JSON, so the snapshot claims only what they cover.
    const snapshot = { offset: this.settledEnd, ...this.producers.toJSON() };
    await writeFileDurably(this.fs, this.snapshotPath, Buffer.from(JSON.stringify(snapshot)));
  }

  /**
   * Replaces the log (a config change that the log only takes at open). Requests arriving
   * meanwhile wait for the new log. When the new log cannot be opened the partition answers
   * storage errors and retries the open on later requests.
   */
  async reopen(config: TopicConfig, openLog: OpenPartitionLog): Promise<void> {
    this.checkNotClosed();
    // An offline partition takes the new config when it is repaired.
    if (this.offlineState !== null) {
      this.config = config;
      this.openLog = openLog;
      return;
    }
    await this.exclusive(() => this.replaceLog(config, openLog));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.waiters.wakeAll();
    while (this.reopening !== null) await this.reopening;
    if (this.needsReopen) return;
    try {
      await this.log.flush();
      await this.saveProducerState();
    } finally {
      await this.log.close();
    }
  }

  private async restoreProducerState(fullReplay: boolean): Promise<void> {
    let from = this.log.logStartOffset;
    const snapshot = fullReplay ? null : await readSnapshot(this.fs, this.snapshotPath);
    if (
      snapshot !== null &&
      snapshot.offset <= this.log.logEndOffset &&
      snapshot.offset >= this.log.logStartOffset
    ) {
      this.producers = ProducerStateTable.fromJSON(snapshot);
      from = snapshot.offset;
    }
    await this.replayHeaders(from);
  }

  private async replayHeaders(from: number): Promise<void> {
    let offset = from;
    const end = this.log.logEndOffset;
    while (offset < end) {
      const { data, nextOffset } = await this.log.read(offset, REPLAY_CHUNK_BYTES);
      if (data.length === 0 || nextOffset <= offset) break;
      let pos = 0;
      while (pos + RECORD_BATCH_HEADER_BYTES <= data.length) {
        const size = batchSizeAt(data, pos);
        const h = readBatchHeader(data, pos);
        if (h.baseOffset >= offset) {
          this.producers.observe(
            h.producerId,
            h.producerEpoch,
            h.baseSequence,
            h.lastOffsetDelta,
            h.baseOffset,
          );
        }
        pos += size;
      }
      offset = nextOffset;
    }
  }
}

async function readSnapshot(
  fs: FileSystem,
  path: string,
): Promise<(ProducerStateSnapshot & { offset: number }) | null> {
  let bytes: Buffer | null;
  try {
    bytes = await readFileIfExists(fs, path);
  } catch {
    return null;
  }
  if (bytes === null) return null;
  try {
    const parsed = JSON.parse(bytes.toString('utf8')) as ProducerStateSnapshot & { offset: number };
    if (!Number.isSafeInteger(parsed.offset) || !Array.isArray(parsed.producers)) return null;
    return parsed;
  } catch {
    // A damaged snapshot is rebuilt from the log; it is only an accelerator.
    return null;
  }
}

/** One line for why a log could not open or serve (the error's own message names the file). */
function describeFailure(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `err` as the partition's KAFKA_STORAGE_ERROR (a typed storage error is kept as it is). */
function storageFailure(p: Partition, err: unknown): StreamBusError {
  if (isStreamBusError(err, ErrorCode.KAFKA_STORAGE_ERROR)) return err;
  return new StreamBusError(
    ErrorCode.KAFKA_STORAGE_ERROR,
    `partition ${p.topic}-${p.index} could not be reopened: ${(err as Error)?.message ?? String(err)}`,
    { cause: err },
  );
}
