// ReplicaStore: the durable side of one partition replica. The Raft log IS the partition's
// segment log (one entry = one RecordBatch, no second copy); this class owns that PartitionLog,
// the RaftLogTail the core reads through, and the replica's four small files (replica-files.ts).
// It is the `ReplicaLogSource` of the tail (reads by offset). partition-replica.ts drives it from
// the Raft core's Ready; this file holds no Raft logic.
//
// Writing a Ready (`persistEntries`, `installSnapshot`, `saveHardState`), in this order, which
// is what makes every crash recoverable (checked by the crash tests):
//   1. hard state first when term or vote changed (H1 of replica-files.ts): entries of term T
//      are never on disk under a saved term below T;
//   2. a snapshot install: snapshot file (kind 'installed'), reset the log at its start offset,
//      snapshot file again as 'compaction', empty term-run table (S1);
//   3. entries: placements from the translator (a leader's batch already carries its offset and
//      term, stamped at propose; a follower's is checked: one whole batch, baseOffset where the
//      translator says, partitionLeaderEpoch = entry term, CRC by PartitionLog.append), control
//      batches encoded for the no-op and Conf entries (control-entry.ts); when the entries
//      replace a suffix, truncate the segment log first; then save the planned term-run table
//      (R1/R2 of term-runs.ts; after the truncation, so a crash between leaves a file that is a
//      prefix of the log, which recovery clips); then append the bytes unchanged
//      (`assignedOffsets`), wait until they are written to the OS, then `tail.append`. Their
//      durability ('always': fsynced) is reported separately (`writeEntries`' `durable`), so the
//      next Ready is written while this one's fsync runs (partition-replica.ts, "Pipelined
//      persistence").
//
// Recovery (`open`), after PartitionLog.open recovered the segments (an unsynced tail is gone):
//   a. snapshot file, or a fresh one from the initial voters (saved at once); finish the cut it
//      describes (S1);
//   b. one scan of the log from the snapshot's start offset, headers only (control batches are
//      decoded, configuration entries kept): it is the truth the tables must agree with;
//   c. the offset translator from its checkpoint plus the scan after it (recoverOffsetTranslator),
//      then checked against the scan; any difference and it is rebuilt from the scan;
//   d. the term runs from their file (recoverTermRuns, clipped) or rebuilt; every scanned batch's
//      term must agree with the table, else CORRUPT_DATA (the term is outside the batch CRC);
//   (b also rebuilds the idempotent-producer state: the snapshot's table plus every data batch)
//   e. the hard state; its commit is clamped to the log (under 'interval'/'none' the log may
//      have lost what a saved commit covered) and its term raised to the last entry's term.
// The full scan is O(log) at open: a known limit (docs/replication.md); the checkpoints make it
// avoidable later (scan only after the translator checkpoint, producer state in the snapshot).
import {
  BatchField,
  batchSizeAt,
  ErrorCode,
  readBatchHeader,
  StreamBusError,
} from '@streambus/protocol';
import {
  type ConfState,
  type Entry,
  EntryType,
  type HardState,
  type LogIndex,
  type NodeId,
  type Snapshot,
  type Term,
} from '@streambus/raft';
import {
  DEFAULT_UNSYNCED_BYTES_MAX,
  type FileSystem,
  joinPath,
  PartitionLog,
  type PartitionLogConfig,
  type PartitionLogOptions,
} from '@streambus/storage';
import type { ProducerStateTable } from '../idempotence.js';
import {
  batchesToSources,
  batchToSource,
  encodeControlEntry,
  isControlBatch,
  isControlEntry,
} from './control-entry.js';
import {
  type BatchPlacement,
  OFFSET_TRANSLATOR_DEFAULTS,
  OffsetTranslator,
  type OffsetTranslatorLimits,
  recoverOffsetTranslator,
  saveOffsetTranslator,
} from './offset-translator.js';
import {
  RaftLogTail,
  type RaftLogTailLimits,
  type ReplicaLogSource,
  type SourceBatch,
} from './raft-log-tail.js';
import {
  decodeSnapshotData,
  encodeSnapshotData,
  HARD_STATE_FILE,
  loadHardState,
  loadSnapshot,
  OFFSETS_FILE,
  SNAPSHOT_FILE,
  saveHardState,
  saveSnapshot,
  TERM_RUNS_FILE,
} from './replica-files.js';
import { batchProducer, observeBatch, producersFrom } from './replica-producers.js';
import { type LogPosition, recoverTermRuns, saveTermRuns, TermRuns } from './term-runs.js';

/** Bytes read per step of the open scan. */
const SCAN_READ_BYTES = 1024 * 1024;

export interface ReplicaStoreOptions {
  readonly fs: FileSystem;
  /** The partition directory (segment files and the replica's files). */
  readonly dir: string;
  readonly logConfig: PartitionLogConfig;
  readonly logOptions?: PartitionLogOptions;
  /** The configuration of a fresh directory (ignored once the directory has a snapshot). */
  readonly initialConf: ConfState;
  readonly tailLimits?: Partial<RaftLogTailLimits>;
  readonly translatorLimits?: OffsetTranslatorLimits;
  /** Told why a table was rebuilt at open (never throws). */
  readonly onRecovery?: (message: string) => void;
}

/** One batch the open scan found, headers only. */
export interface ScannedBatch {
  readonly index: LogIndex;
  readonly placement: BatchPlacement;
  readonly term: Term;
}

function corrupt(dir: string, message: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_DATA, `replica ${dir}: ${message}`);
}

const NOOP = (): void => {};

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

export class ReplicaStore implements ReplicaLogSource {
  private savedHard: HardState;
  private closed = false;
  private readonly unsyncedMax: number;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    readonly log: PartitionLog,
    readonly tail: RaftLogTail,
    hard: HardState,
    /** The idempotent-producer state of this log (replica-producers.ts). */
    private producerTable: ProducerStateTable,
    unsyncedBytesMax: number,
  ) {
    this.savedHard = hard;
    this.unsyncedMax = unsyncedBytesMax;
  }

  /** The idempotent-producer state of what this replica's log holds (read it; do not change). */
  get producers(): ProducerStateTable {
    return this.producerTable;
  }

  static async open(o: ReplicaStoreOptions): Promise<ReplicaStore> {
    const { fs, dir } = o;
    const log = await PartitionLog.open(fs, dir, o.logConfig, o.logOptions);
    try {
      return await ReplicaStore.recover(o, log);
    } catch (err) {
      await log.close().catch(() => undefined);
      throw err;
    }
  }

  private static async recover(o: ReplicaStoreOptions, log: PartitionLog): Promise<ReplicaStore> {
    const { fs, dir } = o;
    const path = (name: string) => joinPath(dir, name);
    const tell = o.onRecovery ?? (() => {});
    // a. The snapshot, and the cut it describes (S1).
    let loaded = await loadSnapshot(fs, path(SNAPSHOT_FILE));
    if (loaded === null) {
      if (log.logEndOffset > log.logStartOffset) {
        throw corrupt(dir, 'the directory holds a partition log but no raft-snapshot file');
      }
      const snapshot: Snapshot = {
        meta: { index: 0 as LogIndex, term: 0 as Term, conf: o.initialConf },
        data: encodeSnapshotData({ startOffset: log.logStartOffset, producers: new Uint8Array(0) }),
      };
      await saveSnapshot(fs, path(SNAPSHOT_FILE), snapshot, 'compaction');
      loaded = { snapshot, kind: 'compaction' };
    }
    const snapshot = loaded.snapshot;
    const start = decodeSnapshotData(snapshot.data).startOffset;
    if (loaded.kind === 'installed' || log.logEndOffset < start) {
      await log.truncateFullyAndStartAt(start);
      if (loaded.kind === 'installed') {
        await saveSnapshot(fs, path(SNAPSHOT_FILE), snapshot, 'compaction');
        await saveTermRuns(fs, path(TERM_RUNS_FILE), new TermRuns());
      }
    } else if (log.logStartOffset < start) {
      await log.deleteRecordsBefore(start);
    } else if (log.logStartOffset > start) {
      throw corrupt(dir, `the log starts at ${log.logStartOffset}, after the snapshot's ${start}`);
    }
    const logStart: LogPosition = { index: (snapshot.meta.index + 1) as LogIndex, offset: start };

    // b. One scan of the log.
    const producers = producersFrom(decodeSnapshotData(snapshot.data).producers);
    const { batches, confs } = await scanLog(log, logStart, dir, producers);
    const scanEnd: LogPosition = {
      index: (logStart.index + batches.length) as LogIndex,
      offset: log.logEndOffset,
    };
    const translatorLimits = o.translatorLimits ?? OFFSET_TRANSLATOR_DEFAULTS;

    // c. The offset translator, checked against the scan.
    const recovered = await recoverOffsetTranslator(
      fs,
      path(OFFSETS_FILE),
      logStart,
      async (from) =>
        batches.filter((b) => b.placement.baseOffset >= from.offset).map((b) => b.placement),
      translatorLimits,
    );
    let translator = recovered.translator;
    if (recovered.reason) tell(`offset translator rebuilt from the log: ${recovered.reason}`);
    const disagreement = translatorDisagrees(translator, batches, scanEnd);
    if (disagreement !== null) {
      tell(`offset translator checkpoint does not match the log (${disagreement}); rebuilt`);
      translator = OffsetTranslator.fromScan(
        logStart,
        batches.map((b) => b.placement),
        translatorLimits,
      );
    }

    // d. The term runs, which must agree with every batch's term.
    const runs = await recoverTermRuns(
      fs,
      path(TERM_RUNS_FILE),
      { start: logStart, end: scanEnd },
      async () =>
        batches.map((b) => ({ index: b.index, offset: b.placement.baseOffset, term: b.term })),
    );
    if (runs.from === 'rebuilt') tell(`term runs rebuilt from the log: ${runs.reason}`);
    for (const b of batches) {
      const t = runs.table.termOf(b.index);
      if (t !== b.term) {
        throw corrupt(
          dir,
          `the batch at offset ${b.placement.baseOffset} (entry ${b.index}) has term ${b.term}, the term runs say ${t}`,
        );
      }
    }

    // e. The hard state, made consistent with the log.
    const saved = (await loadHardState(fs, path(HARD_STATE_FILE))) ?? {
      term: 0 as Term,
      vote: 0 as NodeId,
      commit: 0 as LogIndex,
    };
    const lastIndex = scanEnd.index - 1;
    const lastTerm = batches.length > 0 ? batches[batches.length - 1]!.term : snapshot.meta.term;
    const commit = Math.min(Math.max(saved.commit, snapshot.meta.index), lastIndex) as LogIndex;
    const hard: HardState =
      saved.term >= lastTerm ? { ...saved, commit } : { term: lastTerm, vote: 0 as NodeId, commit };

    const tail = new RaftLogTail({
      source: { read: (offset, bytesMax) => readSource(log, offset, bytesMax) },
      translator,
      termRuns: runs.table,
      snapshot,
      hardState: hard,
      confEntries: confs,
      ...(o.tailLimits ? { limits: o.tailLimits } : {}),
      translatorLimits,
    });
    const unsynced = o.logOptions?.unsyncedBytesMax ?? DEFAULT_UNSYNCED_BYTES_MAX;
    return new ReplicaStore(fs, dir, log, tail, hard, producers, unsynced);
  }

  get hardState(): HardState {
    return this.savedHard;
  }

  // ------------------------------------------------------------------ ReplicaLogSource

  read(offset: number, bytesMax: number): Promise<readonly SourceBatch[]> {
    return readSource(this.log, offset, bytesMax);
  }

  // ------------------------------------------------------------------ writes, from Ready

  /** Saves term and vote (and the commit with them) when they changed (H1). */
  async saveHardState(h: HardState): Promise<void> {
    if (h.term !== this.savedHard.term || h.vote !== this.savedHard.vote) {
      await saveHardState(this.fs, joinPath(this.dir, HARD_STATE_FILE), h);
      this.savedHard = h;
    }
    this.tail.setHardState(h);
  }

  /** Records `h` whose term and vote are the saved ones (its commit only): no file write. */
  noteHardState(h: HardState): void {
    this.tail.setHardState(h);
  }

  /** True when saving `h` would write the file (term or vote differ from the saved ones). */
  hardStateChanges(h: HardState | null): boolean {
    return h !== null && (h.term !== this.savedHard.term || h.vote !== this.savedHard.vote);
  }

  /**
   * Where the batches for `entries` go, and their bytes: the placement of each and the buffer
   * to append (the entry's own bytes for data, an encoded control batch otherwise). Checks a
   * data entry is one whole batch at the expected offset with partitionLeaderEpoch = its term.
   */
  plan(entries: readonly Entry[]): { placements: BatchPlacement[]; bufs: Buffer[] } {
    const tail = this.tail;
    const first = entries[0]!.index;
    let offset: number;
    if (first <= tail.lastIndex()) {
      const at = tail.translator.offsetOf(first);
      if (at === undefined) {
        throw corrupt(
          this.dir,
          `entry ${first} to overwrite is below the translator's exact window`,
        );
      }
      offset = at;
    } else {
      offset = tail.translator.endPosition.offset;
    }
    const placements: BatchPlacement[] = [];
    const bufs: Buffer[] = [];
    for (const e of entries) {
      if (isControlEntry(e)) {
        bufs.push(encodeControlEntry(offset, e.term, e));
        placements.push({ baseOffset: offset, recordCount: 1, isControl: true });
        offset += 1;
        continue;
      }
      const buf = asBuffer(e.data);
      if (buf.length < BatchField.RECORD_COUNT + 4)
        this.refuseEntry(e, `is not a record batch (${buf.length} bytes)`);
      if (batchSizeAt(buf, 0) !== buf.length)
        this.refuseEntry(e, 'is not exactly one record batch');
      const h = readBatchHeader(buf, 0);
      if (h.baseOffset !== offset)
        this.refuseEntry(e, `has baseOffset ${h.baseOffset}, the log is at ${offset}`);
      if (h.partitionLeaderEpoch !== e.term)
        this.refuseEntry(e, `has partitionLeaderEpoch ${h.partitionLeaderEpoch}`);
      if (h.lastOffsetDelta < 0) this.refuseEntry(e, 'has no records');
      const count = h.lastOffsetDelta + 1;
      bufs.push(buf);
      placements.push({ baseOffset: offset, recordCount: count, isControl: isControlBatch(buf) });
      offset += count;
    }
    return { placements, bufs };
  }

  private refuseEntry(e: Entry, why: string): never {
    throw new StreamBusError(
      ErrorCode.CORRUPT_MESSAGE,
      `replica ${this.dir}: entry ${e.index} (term ${e.term}) ${why}`,
    );
  }

  /**
   * Writes `entries` (a Ready's, in order) to the segment log as described at the top and
   * records them in the tail; resolves once every batch reached the OS (written: the next Ready
   * may follow, reads see them). `durable` resolves once they are durable under the log's policy
   * ('always': an fsync covers them; the log's group commit lets later writes proceed while it
   * runs) and rejects with the log's failure. `onWritten(index)` is called as each entry's batch
   * reaches the OS (acks=1). `crcVerified`: every data batch's CRC was checked already (the
   * broker's produce validation, a follower's inbound check), so the segment log does not check
   * it again.
   *
   * `unsyncedBytesMax` (the log option; not under 'none'): a batch that would take the bytes
   * appended and not yet fsynced past it waits, before it is appended, for the oldest write in
   * flight to become durable (one batch alone is let through when nothing is unsynced). So a
   * slow fsync holds this replica's writes back instead of letting them pile up in the OS.
   */
  async writeEntries(
    all: readonly Entry[],
    onWritten?: (index: LogIndex) => void,
    crcVerified = false,
  ): Promise<{ placements: BatchPlacement[]; durable: Promise<void> }> {
    const tail = this.tail;
    const first = tail.firstIndex();
    const entries =
      all.length > 0 && all[0]!.index >= first ? all : all.filter((e) => e.index >= first);
    if (entries.length === 0) return { placements: [], durable: Promise.resolve() };
    const { placements, bufs } = this.plan(entries);
    const plan = tail.planTermRuns(entries, placements);
    if (entries[0]!.index <= tail.lastIndex()) {
      // (The log lets every earlier append become durable before it truncates.)
      await this.log.truncateTo(placements[0]!.baseOffset);
      // The producer state goes back with the log: the snapshot's table plus what is left.
      const start = tail.translator.startPosition;
      const table = producersFrom(decodeSnapshotData(tail.snapshot().data).producers);
      await scanLog(this.log, start, this.dir, table);
      this.producerTable = table;
    }
    if (plan !== null) await saveTermRuns(this.fs, joinPath(this.dir, TERM_RUNS_FILE), plan);
    // One promise for "every batch written" (or the first that failed before it was written)
    // instead of a promise and a race per batch: the path runs once per Ready on every replica
    // (issue 9, garbage per request).
    const n = bufs.length;
    const durables: Array<Promise<unknown>> = new Array(n);
    let left = n;
    let allWritten!: () => void;
    let writeFailed!: (err: unknown) => void;
    const written = new Promise<void>((resolve, reject) => {
      allWritten = resolve;
      writeFailed = reject;
    });
    written.catch(NOOP); // awaited below, possibly after a later batch's waitUnsynced
    for (let k = 0; k < n; k++) {
      const buf = bufs[k]!;
      // Awaited even when it returns at once: that one microtask before the append is what lets
      // a leader's previous fsync start before this Ready's write is queued, so the write runs
      // during it (pipelined persistence; test/src/producer-pipelining.test.ts counts such
      // overlapping writes, and skipping the hop took them from 6 to 0 there).
      await this.waitUnsynced(buf.length);
      let counted = false;
      const wrote = (): void => {
        if (counted) return;
        counted = true;
        if (--left === 0) allWritten();
      };
      const d = this.log.append(buf, {
        assignedOffsets: true,
        crcVerified,
        // Entries a Ready hands over were already accepted by Raft (its flow control and the
        // replica's pendingBytesMax bound them; unsyncedBytesMax is waited for above); a
        // LOG_BACKPRESSURE refusal here would take the replica offline.
        backpressure: false,
        onWritten: () => {
          wrote();
          onWritten?.(entries[k]!.index);
        },
      });
      durables[k] = d;
      // Tracked until durable (waitUnsynced); a failure before the write landed fails the call.
      this.inflight.add(d);
      d.then(
        () => {
          this.inflight.delete(d);
          wrote();
        },
        (err: unknown) => {
          this.inflight.delete(d);
          if (counted) return;
          counted = true;
          writeFailed(err);
        },
      );
    }
    await written;
    tail.append(entries, placements);
    for (let k = 0; k < bufs.length; k++) {
      if (!placements[k]!.isControl) {
        observeBatch(this.producerTable, batchProducer(bufs[k]!), placements[k]!.baseOffset);
      }
    }
    const durable = n === 1 ? durables[0]!.then(NOOP) : Promise.all(durables).then(NOOP);
    return { placements, durable };
  }

  /** `writeEntries`, then waits for their durability (tests, tools). */
  async persistEntries(
    all: readonly Entry[],
    onWritten?: (index: LogIndex) => void,
    crcVerified = false,
  ): Promise<BatchPlacement[]> {
    const { placements, durable } = await this.writeEntries(all, onWritten, crcVerified);
    await durable;
    return placements;
  }

  /** Appends whose durability is still awaited, oldest first (`waitUnsynced`). */
  private readonly inflight = new Set<Promise<unknown>>();

  /** Waits while appending `bytes` more would pass unsyncedBytesMax (see `writeEntries`). */
  private async waitUnsynced(bytes: number): Promise<void> {
    if (this.log.config.durability === 'none') return;
    while (this.log.unsyncedBytes > 0 && this.log.unsyncedBytes + bytes > this.unsyncedBytesMax) {
      const oldest = this.inflight.values().next();
      if (!oldest.done) {
        await oldest.value.then(
          () => undefined,
          () => undefined,
        );
      } else if (this.log.writtenEndOffset > this.log.durableEndOffset) {
        // 'interval': appends resolved once written; the next fsync frees the bytes.
        await this.log.waitDurable(this.log.writtenEndOffset);
      } else {
        return;
      }
      if (this.log.failed || this.closed) return;
    }
  }

  /** Bytes this replica may have appended and not fsynced before a write waits. */
  get unsyncedBytesMax(): number {
    return this.unsyncedMax;
  }

  /**
   * A snapshot from the leader replaces the whole log (S1): file first, then the reset, then
   * the file marked done and an empty term-run table. Returns the new log start offset.
   */
  async installSnapshot(snapshot: Snapshot): Promise<number> {
    const { startOffset } = decodeSnapshotData(snapshot.data);
    const file = joinPath(this.dir, SNAPSHOT_FILE);
    await saveSnapshot(this.fs, file, snapshot, 'installed');
    await this.log.truncateFullyAndStartAt(startOffset);
    await saveSnapshot(this.fs, file, snapshot, 'compaction');
    await saveTermRuns(this.fs, joinPath(this.dir, TERM_RUNS_FILE), new TermRuns());
    this.tail.applySnapshot(snapshot, startOffset);
    this.producerTable = producersFrom(decodeSnapshotData(snapshot.data).producers);
    return startOffset;
  }

  /**
   * Moves the log start up to the entry after `snapshot.meta.index` (retention, delete-records):
   * the snapshot file first (S1), then the segment log, then the tail.
   */
  async compactTo(snapshot: Snapshot): Promise<void> {
    const { startOffset } = decodeSnapshotData(snapshot.data);
    await saveSnapshot(this.fs, joinPath(this.dir, SNAPSHOT_FILE), snapshot, 'compaction');
    await this.log.deleteRecordsBefore(startOffset);
    this.tail.createSnapshot(snapshot.meta.index, snapshot.meta.conf, snapshot.data);
    this.tail.compact(snapshot.meta.index, startOffset);
  }

  /**
   * The entry whose batch holds `offset` (its index and base offset), for
   * logStart <= offset <= logEnd (logEnd gives the next entry). From the translator, or by a
   * header scan forward from the nearest anchor below its exact window.
   */
  async positionAt(offset: number): Promise<LogPosition> {
    const t = this.tail.translator;
    let at = t.anchorForOffset(offset);
    while (at.offset < offset) {
      const r = await this.log.read(at.offset, SCAN_READ_BYTES);
      if (r.data.length === 0) throw corrupt(this.dir, `no batch at offset ${at.offset}`);
      let pos = 0;
      while (pos < r.data.length) {
        const h = readBatchHeader(r.data, pos);
        if (h.baseOffset !== at.offset) throw corrupt(this.dir, `no batch at offset ${at.offset}`);
        const next = h.baseOffset + h.lastOffsetDelta + 1;
        if (next > offset) return at;
        at = { index: (at.index + 1) as LogIndex, offset: next };
        pos += batchSizeAt(r.data, pos);
      }
    }
    return at;
  }

  /**
   * Whole batches from the one holding `offset`, none at or past `highWatermark` (a batch is
   * either entirely below it or not: it is a batch boundary). Empty at or past it.
   */
  async readCommitted(
    offset: number,
    maxBytes: number,
    highWatermark: number,
  ): Promise<{ data: Buffer; nextOffset: number }> {
    if (offset >= highWatermark && offset <= this.log.logEndOffset) {
      return { data: Buffer.alloc(0), nextOffset: offset };
    }
    const r = await this.log.read(offset, maxBytes);
    let pos = 0;
    let next = offset;
    while (pos < r.data.length) {
      const h = readBatchHeader(r.data, pos);
      if (h.baseOffset >= highWatermark) break;
      pos += batchSizeAt(r.data, pos);
      next = h.baseOffset + h.lastOffsetDelta + 1;
    }
    return { data: r.data.subarray(0, pos), nextOffset: pos === 0 ? offset : next };
  }

  /** Saves the translator checkpoint and the hard state (with its commit), closes the log. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    let error: unknown = null;
    try {
      if (!this.log.failed) {
        await saveOffsetTranslator(this.fs, joinPath(this.dir, OFFSETS_FILE), this.tail.translator);
        const h = this.tail.hardState();
        await saveHardState(this.fs, joinPath(this.dir, HARD_STATE_FILE), h);
        this.savedHard = h;
      }
    } catch (err) {
      error = err;
    }
    await this.log.close().catch((err: unknown) => {
      error ??= err;
    });
    if (error) throw error;
  }
}

async function readSource(
  log: PartitionLog,
  offset: number,
  bytesMax: number,
): Promise<readonly SourceBatch[]> {
  const r = await log.read(offset, bytesMax);
  return batchesToSources(r.data);
}

/** Null when the translator places every scanned batch as the scan did, else what differs. */
function translatorDisagrees(
  t: OffsetTranslator,
  batches: readonly ScannedBatch[],
  end: LogPosition,
): string | null {
  if (t.endPosition.index !== end.index || t.endPosition.offset !== end.offset) {
    return `it ends at entry ${t.endPosition.index} offset ${t.endPosition.offset}, the log at ${end.index}/${end.offset}`;
  }
  for (const b of batches) {
    const p = t.placementOf(b.index);
    if (p === undefined) continue; // below the exact window: an anchor, checked by reads
    if (
      p.baseOffset !== b.placement.baseOffset ||
      p.recordCount !== b.placement.recordCount ||
      p.isControl !== b.placement.isControl
    ) {
      return `entry ${b.index}`;
    }
  }
  return null;
}

/**
 * Reads the whole log from `start` (headers; control batches decoded), in order, replaying every
 * data batch into `producers`.
 */
async function scanLog(
  log: PartitionLog,
  start: LogPosition,
  dir: string,
  producers: ProducerStateTable,
): Promise<{ batches: ScannedBatch[]; confs: Entry[] }> {
  const batches: ScannedBatch[] = [];
  const confs: Entry[] = [];
  let offset = start.offset;
  let index = start.index;
  while (offset < log.logEndOffset) {
    const r = await log.read(offset, SCAN_READ_BYTES);
    if (r.data.length === 0) break;
    let pos = 0;
    while (pos < r.data.length) {
      const b = batchToSource(r.data, pos);
      if (b.baseOffset !== offset) {
        throw corrupt(
          dir,
          `the log has a batch at offset ${b.baseOffset} where ${offset} was expected`,
        );
      }
      const isControl = isControlBatch(r.data, pos);
      batches.push({
        index,
        placement: { baseOffset: b.baseOffset, recordCount: b.recordCount, isControl },
        term: b.term,
      });
      if (b.type === EntryType.Conf) {
        confs.push({ index, term: b.term, type: EntryType.Conf, data: Uint8Array.from(b.data) });
      }
      if (!isControl) observeBatch(producers, batchProducer(r.data, pos), b.baseOffset);
      offset += b.recordCount;
      index = (index + 1) as LogIndex;
      pos += batchSizeAt(r.data, pos);
    }
  }
  return { batches, confs };
}
