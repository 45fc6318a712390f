// The log-storage interface the core reads from, and an in-memory implementation.
//
// The core only ever READS storage, synchronously (term lookups and entry ranges inside
// `step`). All writes are done by the caller, from `Ready` (see types.ts), through whatever
// durable store sits behind this interface; the core learns they are done from `advance()`.
// That split is what lets an asynchronous, fsyncing store (a partition's segment log) be the
// Raft log without the core ever waiting on I/O: entries not yet durable stay in the core's
// unstable buffer and are served from there.
//
// Layout: the log holds entries (firstIndex .. lastIndex). Everything before firstIndex has been
// compacted into the snapshot, whose `meta.index` is at least firstIndex - 1, so the term at
// firstIndex - 1 is always known (the "dummy" entry). Entries are returned by reference: their
// data is never copied by this interface or by the core.

import { EMPTY_CONF } from './conf.js';
import { RaftError, RaftErrorCode } from './errors.js';
import type {
  ConfState,
  Entry,
  HardState,
  LogIndex,
  NodeId,
  Snapshot,
  SnapshotMeta,
  Term,
} from './types.js';

/** What the core reads. Implementations must be consistent with what `Ready` asked to write. */
export interface LogStorage {
  /** The durable hard state (term 0, vote 0, commit 0 for a new node). */
  hardState(): HardState;
  /** The metadata of the latest snapshot (index 0, term 0 and the bootstrap conf when none). */
  snapshotMeta(): SnapshotMeta;
  /** The latest snapshot including its data; called only to send it to a lagging follower. */
  snapshot(): Snapshot;
  /** The first index still held as an entry (snapshotMeta().index + 1 or less). */
  firstIndex(): LogIndex;
  /** The last index held (firstIndex - 1 when the log is empty). */
  lastIndex(): LogIndex;
  /** The term at `index` for firstIndex - 1 <= index <= lastIndex, else undefined. */
  term(index: LogIndex): Term | undefined;
  /**
   * Entries [lo, hi) in index order; stops before the entry that would make the total data
   * size exceed `bytesMax`, but always returns at least one entry when lo < hi. Requires
   * firstIndex <= lo <= hi <= lastIndex + 1.
   */
  entries(lo: LogIndex, hi: LogIndex, bytesMax: number): readonly Entry[];
  /**
   * Optional: false when `entries(lo, hi, …)` cannot be served synchronously now (the entries
   * are on disk, not in memory). The core then reads nothing, reports the range in
   * `Ready.entriesWanted` and waits for `RaftNode.entriesFetched()`. Absent: always available.
   * Same bounds as `entries`; may answer for a prefix only (entries may still stop early).
   */
  available?(lo: LogIndex, hi: LogIndex): boolean;
  /**
   * Optional: the configuration entries in [lo, hi) in index order, from metadata, without
   * reading the other entries. Used only by the `RaftNode` constructor, which must find the
   * configuration entries after the snapshot. Without it the constructor scans `entries()`,
   * and a storage that cannot serve a range must throw its own typed error there (see
   * docs/raft.md, "Entries not in memory").
   */
  confEntries?(lo: LogIndex, hi: LogIndex): readonly Entry[];
}

/** The writes a caller performs from `Ready`; implemented by stores the simulator drives. */
export interface LogStorageWriter {
  /** Appends entries at entries[0].index, first discarding any stored suffix from that index. */
  append(entries: readonly Entry[]): void;
  setHardState(hardState: HardState): void;
  /** Replaces the whole log by the snapshot (a follower installing one from its leader). */
  applySnapshot(snapshot: Snapshot): void;
  /** Records a snapshot the application took at `index` (<= lastIndex) with configuration `conf`. */
  createSnapshot(index: LogIndex, conf: ConfState, data: Uint8Array): Snapshot;
  /** Discards entries up to `index` (<= the snapshot's index). */
  compact(index: LogIndex): void;
}

function invalid(message: string): RaftError {
  return new RaftError(RaftErrorCode.INVALID_ARGUMENT, `memory storage: ${message}`);
}

export function entryBytes(entry: Entry): number {
  return entry.data.byteLength;
}

/**
 * Sums entries' sizes for a range, stopping before exceeding `bytesMax`; returns how many
 * entries fit (at least one when the range is non-empty).
 */
export function countWithinBytes(
  get: (i: number) => Entry,
  count: number,
  bytesMax: number,
): number {
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    bytes += entryBytes(get(i));
    if (bytes > bytesMax && i > 0) return i;
  }
  return count;
}

/** The in-memory log storage: everything written is immediately "durable". */
export class MemoryStorage implements LogStorage, LogStorageWriter {
  private hard: HardState = { term: 0 as Term, vote: 0 as NodeId, commit: 0 as LogIndex };
  private snap: Snapshot;
  /** ents[0] is the dummy entry at firstIndex - 1 (only its index and term matter). */
  private ents: Entry[];

  /** A fresh log whose initial configuration is `conf` (empty for a node that will be added). */
  constructor(conf: ConfState = EMPTY_CONF) {
    this.snap = { meta: { index: 0 as LogIndex, term: 0 as Term, conf }, data: new Uint8Array(0) };
    this.ents = [{ index: 0 as LogIndex, term: 0 as Term, type: 0, data: new Uint8Array(0) }];
  }

  hardState(): HardState {
    return this.hard;
  }
  snapshotMeta(): SnapshotMeta {
    return this.snap.meta;
  }
  snapshot(): Snapshot {
    return this.snap;
  }
  firstIndex(): LogIndex {
    return (this.ents[0]!.index + 1) as LogIndex;
  }
  lastIndex(): LogIndex {
    return (this.ents[0]!.index + this.ents.length - 1) as LogIndex;
  }
  term(index: LogIndex): Term | undefined {
    const offset = this.ents[0]!.index;
    if (index < offset) return undefined;
    return this.ents[index - offset]?.term;
  }
  entries(lo: LogIndex, hi: LogIndex, bytesMax: number): readonly Entry[] {
    const offset = this.ents[0]!.index;
    if (lo <= offset || hi > this.lastIndex() + 1 || lo > hi) {
      throw invalid(`entries [${lo}, ${hi}) outside (${offset}, ${this.lastIndex() + 1}]`);
    }
    const start = lo - offset;
    const n = countWithinBytes((i) => this.ents[start + i]!, hi - lo, bytesMax);
    return this.ents.slice(start, start + n);
  }

  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const first = entries[0]!.index;
    const offset = this.ents[0]!.index;
    if (first <= offset) {
      // Entries at or below the compaction point are already covered by the snapshot.
      const skip = offset + 1 - first;
      if (skip >= entries.length) return;
      this.append(entries.slice(skip));
      return;
    }
    if (first > this.lastIndex() + 1) {
      throw invalid(`append at ${first} leaves a gap after last index ${this.lastIndex()}`);
    }
    this.ents.length = first - offset;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      if (e.index !== first + i) throw invalid(`entries not contiguous at ${e.index}`);
      this.ents.push(e);
    }
  }

  setHardState(hardState: HardState): void {
    this.hard = hardState;
  }

  applySnapshot(snapshot: Snapshot): void {
    if (snapshot.meta.index < this.snap.meta.index) {
      throw invalid(`snapshot at ${snapshot.meta.index} is older than ${this.snap.meta.index}`);
    }
    this.snap = snapshot;
    this.ents = [
      { index: snapshot.meta.index, term: snapshot.meta.term, type: 0, data: new Uint8Array(0) },
    ];
  }

  createSnapshot(index: LogIndex, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) {
      throw invalid(`snapshot at ${index} is not newer than ${this.snap.meta.index}`);
    }
    const term = this.term(index);
    if (term === undefined) throw invalid(`snapshot at ${index} outside the log`);
    this.snap = { meta: { index, term, conf }, data };
    return this.snap;
  }

  compact(index: LogIndex): void {
    const offset = this.ents[0]!.index;
    if (index <= offset) return;
    if (index > this.snap.meta.index) {
      throw invalid(`compact to ${index} beyond the snapshot at ${this.snap.meta.index}`);
    }
    const e = this.ents[index - offset]!;
    const rest = this.ents.slice(index - offset + 1);
    this.ents = [{ index: e.index, term: e.term, type: 0, data: new Uint8Array(0) }, ...rest];
  }
}
