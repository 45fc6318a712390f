// RaftLogTail: the Raft core's synchronous `LogStorage` over a partition's asynchronous segment
// log (ARCHITECTURE.md §4 "Synchronous core, asynchronous disk"). It holds:
//   - a bounded in-memory TAIL of the most recent durable entries, by reference (no copy);
//   - a bounded SIDE CACHE of older ranges loaded by `prefetch(lo, hi)` from a
//     `ReplicaLogSource` (the partition log, read by offset) for lagging followers;
//   - the snapshot (meta and data), the hard state and the term at firstIndex - 1;
//   - the offset translator (index -> offset, to know where to read) and the term-run table
//     (so `term(index)` answers for every index of the log without reading the disk).
// It does not write the partition log, fsync, or decide when to save the two tables; the shell
// that drives Ready does (see "The shell's turn" below and docs/replication.md).
//
// The contract with the core for entries that are not in memory. `LogStorage.entries` must
// return at least one entry, synchronously; a range starting before the tail that no prefetch
// loaded cannot. Then `entries` throws `EntriesUnavailableError` (REPLICA_ENTRIES_UNAVAILABLE,
// retriable) and records the miss (`takeMisses()`), and `available(lo)` says beforehand whether
// a call would succeed. Today's core (packages/raft) does not catch that error: until it gains
// the hook described in docs/replication.md ("What the Raft core needs"), the shell must keep
// every index the core may read in memory, e.g. by prefetching before stepping a message that
// makes the leader read behind the tail. Entries served are always a prefix of what a complete
// store would return (possibly shorter, which the core handles like a byte limit).
//
// The shell's turn for each Ready with entries (Ready contract in docs/raft.md):
//   1. placements for the entries (baseOffset from the translator's end, record counts);
//      `planTermRuns(entries, placements)`: when it returns a table, save it first (rule R1/R2
//      of term-runs.ts);
//   2. write the batches to the partition log and make them durable;
//   3. `append(entries, placements)`; then `advance()` the core.
// `term()` and `entries()` answer from memory only; `prefetch` is the only asynchronous path.
//
// Invariants (numbered; asserted where they change):
//   1. firstIndex = translator.start.index, lastIndex = translator.end.index - 1; the term runs
//      cover every index in [firstIndex, lastIndex] and agree with the tail's entries.
//   2. The tail is contiguous and ends at lastIndex (or is empty); tail entries are durable.
//   3. Tail bytes <= max(tailBytesMax, the newest entry's bytes) and tail entries <=
//      tailEntriesMax; cache bytes <= max(cacheBytesMax, the newest range's first entry) and
//      ranges <= cacheRangesMax; prefetches in flight <= prefetchesMax; misses <= missesMax.
//   4. Every cached range is contiguous and inside [firstIndex, lastIndex]; a truncation,
//      compaction or snapshot install drops what it invalidates and bumps `generation`, and a
//      prefetch whose log changed while it awaited is discarded ('stale').
//   5. Every entry read from the source is checked in pairs: its base offset against the
//      translator and its term (outside the batch CRC) against the term runs; a mismatch is
//      CORRUPT_DATA and nothing is cached.
import assert from 'node:assert/strict';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type {
  ConfState,
  Entry,
  EntryType,
  HardState,
  LogIndex,
  LogStorage,
  NodeId,
  Snapshot,
  SnapshotMeta,
  Term,
} from '@streambus/raft';
import {
  type BatchPlacement,
  OFFSET_TRANSLATOR_DEFAULTS,
  OffsetTranslator,
  type OffsetTranslatorLimits,
} from './offset-translator.js';
import { TermRuns } from './term-runs.js';

/** One batch as the partition log returns it, already in the Raft core's entry form. */
export interface SourceBatch {
  readonly baseOffset: number;
  readonly recordCount: number;
  /** The batch's `partitionLeaderEpoch`. */
  readonly term: Term;
  /** Normal for data batches and the leader's no-op, Conf for configuration batches. */
  readonly type: EntryType;
  /** The entry's data: a view of the bytes read (the whole batch for data), never a copy. */
  readonly data: Uint8Array;
}

/** What the partition log implements for the tail (reads only). */
export interface ReplicaLogSource {
  /**
   * Whole batches in offset order, the first being the batch whose base offset is `offset`,
   * stopping once about `bytesMax` bytes were read (at least one batch below the log end).
   */
  read(offset: number, bytesMax: number): Promise<readonly SourceBatch[]>;
}

export interface RaftLogTailLimits {
  /** Newest durable entries kept in memory. */
  readonly tailEntriesMax: number;
  readonly tailBytesMax: number;
  /** Bytes of prefetched older entries kept (at least one entry per range). */
  readonly cacheBytesMax: number;
  readonly cacheRangesMax: number;
  /** Prefetches reading the source at once; more are answered 'busy'. */
  readonly prefetchesMax: number;
  /** Distinct missed ranges remembered for `takeMisses`. */
  readonly missesMax: number;
}

export const RAFT_LOG_TAIL_DEFAULTS: RaftLogTailLimits = {
  tailEntriesMax: 4096,
  tailBytesMax: 8 * 1024 * 1024,
  cacheBytesMax: 4 * 1024 * 1024,
  cacheRangesMax: 4,
  prefetchesMax: 4,
  missesMax: 16,
};

export interface RaftLogTailOptions {
  readonly source: ReplicaLogSource;
  /** Where the log starts and what it holds; the tail owns it from here on. */
  readonly translator: OffsetTranslator;
  /** Must cover [firstIndex, lastIndex] (invariant 1); the tail owns it from here on. */
  readonly termRuns: TermRuns;
  readonly snapshot: Snapshot;
  readonly hardState?: HardState;
  /** The term at firstIndex - 1 when that is not the snapshot's index (after a compaction). */
  readonly prevTerm?: Term;
  readonly limits?: Partial<RaftLogTailLimits>;
  readonly translatorLimits?: OffsetTranslatorLimits;
  /**
   * The configuration entries in [firstIndex, lastIndex] (the shell finds them when it scans
   * the log at open), for `confEntries`. Conf entries are few (single-server changes decided by
   * the controller), so they are all kept; a compaction or truncation drops them with the log.
   */
  readonly confEntries?: readonly Entry[];
}

export type PrefetchResult =
  /** `lo` was already served from memory; nothing read. */
  | 'held'
  /** A range starting at `lo` is now cached. */
  | 'loaded'
  /** Too many prefetches in flight; try again when one ends. */
  | 'busy'
  /** The log was truncated, compacted or replaced while reading; nothing cached. */
  | 'stale';

/** `entries(lo, …)` asked for entries that are neither in the tail nor cached. */
export class EntriesUnavailableError extends StreamBusError {
  constructor(
    readonly lo: LogIndex,
    readonly hi: LogIndex,
  ) {
    super(
      ErrorCode.REPLICA_ENTRIES_UNAVAILABLE,
      `raft log entries [${lo}, ${hi}) are not in memory; prefetch them and retry`,
    );
  }
}

interface CachedRange {
  entries: Entry[];
  bytes: number;
  used: number;
}

export class RaftLogTail implements LogStorage {
  private readonly source: ReplicaLogSource;
  private readonly limits: RaftLogTailLimits;
  private readonly translatorLimits: OffsetTranslatorLimits;
  private translatorValue: OffsetTranslator;
  private termRunsValue: TermRuns;
  private hard: HardState;
  private snap: Snapshot;
  private prevTerm: Term;
  private tail: Entry[] = [];
  private tailBytes = 0;
  /** Every Conf entry in [firstIndex, lastIndex], ascending (see RaftLogTailOptions). */
  private confs: Entry[];
  private ranges: CachedRange[] = [];
  private useClock = 0;
  private readonly inflight = new Map<number, Promise<PrefetchResult>>();
  private readonly misses = new Map<number, number>();
  /** Bumped by every change that invalidates what a prefetch in flight is reading. */
  private generation = 0;

  constructor(options: RaftLogTailOptions) {
    this.source = options.source;
    this.limits = { ...RAFT_LOG_TAIL_DEFAULTS, ...options.limits };
    const l = this.limits;
    for (const [name, value] of Object.entries(l)) {
      if (!Number.isInteger(value) || value < 1) {
        throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `raft log tail: ${name} must be >= 1`);
      }
    }
    this.translatorLimits = options.translatorLimits ?? OFFSET_TRANSLATOR_DEFAULTS;
    this.translatorValue = options.translator;
    this.termRunsValue = options.termRuns;
    this.snap = options.snapshot;
    this.hard = options.hardState ?? { term: 0 as Term, vote: 0 as NodeId, commit: 0 as LogIndex };
    const first = this.firstIndex();
    const last = this.lastIndex();
    this.confs = [...(options.confEntries ?? [])];
    for (const [k, e] of this.confs.entries()) {
      if (e.index < first || e.index > last || (k > 0 && e.index <= this.confs[k - 1]!.index)) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `raft log tail: configuration entry ${e.index} outside [${first}, ${last}] or out of order`,
        );
      }
    }
    if (first - 1 > this.snap.meta.index) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: the log starts at ${first}, after the snapshot at ${this.snap.meta.index} + 1`,
      );
    }
    const prev = first - 1 === this.snap.meta.index ? this.snap.meta.term : options.prevTerm;
    if (prev === undefined) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: prevTerm (the term at ${first - 1}) is needed below the snapshot`,
      );
    }
    this.prevTerm = prev;
    if (last >= first && this.termRunsValue.termOf(first) === undefined) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: the term runs do not cover the log start ${first}`,
      );
    }
  }

  /** The translator, kept in step with the log (read it; do not change it directly). */
  get translator(): OffsetTranslator {
    return this.translatorValue;
  }
  /** The term-run table, kept in step with the log (save it as term-runs.ts says). */
  get termRuns(): TermRuns {
    return this.termRunsValue;
  }

  // ------------------------------------------------------------------ LogStorage (synchronous)

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
    return this.translatorValue.startPosition.index;
  }
  lastIndex(): LogIndex {
    return (this.translatorValue.endPosition.index - 1) as LogIndex;
  }

  term(index: LogIndex): Term | undefined {
    const first = this.firstIndex();
    if (index < first - 1 || index > this.lastIndex()) return undefined;
    if (index === first - 1) return this.prevTerm;
    const t = this.tailStart();
    if (index >= t) return this.tail[index - t]!.term;
    return this.termRunsValue.termOf(index);
  }

  /** True when `entries(lo, …)` would be served from memory now. */
  available(lo: LogIndex): boolean {
    return lo >= this.tailStart() || this.rangeHolding(lo) !== undefined;
  }

  /** The configuration entries in [lo, hi), from memory (LogStorage.confEntries). */
  confEntries(lo: LogIndex, hi: LogIndex): readonly Entry[] {
    return this.confs.filter((e) => e.index >= lo && e.index < hi);
  }

  entries(lo: LogIndex, hi: LogIndex, bytesMax: number): readonly Entry[] {
    const first = this.firstIndex();
    if (lo < first || hi > this.lastIndex() + 1 || lo > hi) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: entries [${lo}, ${hi}) outside [${first}, ${this.lastIndex() + 1}]`,
      );
    }
    if (lo === hi) return [];
    const out: Entry[] = [];
    const budget = { bytes: 0, bytesMax };
    const tailStart = this.tailStart();
    let next = lo;
    if (lo < tailStart) {
      const range = this.rangeHolding(lo);
      if (range === undefined) {
        this.recordMiss(lo, hi);
        throw new EntriesUnavailableError(lo, hi);
      }
      range.used = ++this.useClock;
      const first0 = range.entries[0]!.index;
      const end = Math.min(hi, first0 + range.entries.length);
      if (!take(out, range.entries, lo - first0, end - lo, budget)) return out;
      next = end as LogIndex;
      // The cached range may end exactly where the tail begins; continue there if it does.
      if (next < hi && next !== tailStart) return out;
    }
    if (next < hi) take(out, this.tail, next - tailStart, hi - next, budget);
    return out;
  }

  // ------------------------------------------------------------------ writes (from Ready)

  setHardState(hardState: HardState): void {
    this.hard = hardState;
  }

  /**
   * The term-run table as it will be after `append(entries, placements)`, when that changes it
   * (a new term, or a truncation that removes a run): save it BEFORE writing the batches (rules
   * R1, R2 of term-runs.ts). Null when the saved table stays right. Pure.
   */
  planTermRuns(entries: readonly Entry[], placements: readonly BatchPlacement[]): TermRuns | null {
    const { entries: es, placements: ps } = this.skipCompacted(entries, placements);
    if (es.length === 0) return null;
    const plan = new TermRuns(this.termRunsValue.list());
    let changed = plan.truncateSuffix(es[0]!.index);
    for (let k = 0; k < es.length; k++) {
      if (plan.observe(es[k]!.term, es[k]!.index, ps[k]!.baseOffset)) changed = true;
    }
    return changed ? plan : null;
  }

  /**
   * Records durable entries appended at entries[0].index, first discarding any suffix from
   * there (MemoryStorage's semantics); `placements[k]` is where entries[k]'s batch was written.
   */
  append(entries: readonly Entry[], placements: readonly BatchPlacement[]): void {
    assert.equal(entries.length, placements.length, 'raft log tail: one placement per entry');
    const { entries: es, placements: ps } = this.skipCompacted(entries, placements);
    if (es.length === 0) return;
    const at = es[0]!.index;
    const last = this.lastIndex();
    if (at > last + 1) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: append at ${at} leaves a gap after last index ${last}`,
      );
    }
    if (at <= last) this.truncateFrom(at, ps[0]!.baseOffset);
    for (let k = 0; k < es.length; k++) {
      const e = es[k]!;
      assert.equal(e.index, at + k, `raft log tail: entries not contiguous at ${e.index}`);
      this.termRunsValue.observe(e.term, e.index, ps[k]!.baseOffset);
      this.translatorValue.append(e.index, ps[k]!);
      if (e.type === 1) this.confs.push(e); // EntryType.Conf
      this.tail.push(e);
      this.tailBytes += e.data.byteLength;
    }
    this.evictTail();
  }

  /** Entries at or below the compaction point are covered by the snapshot already. */
  private skipCompacted(
    entries: readonly Entry[],
    placements: readonly BatchPlacement[],
  ): { entries: readonly Entry[]; placements: readonly BatchPlacement[] } {
    const first = this.firstIndex();
    if (entries.length === 0 || entries[0]!.index >= first) return { entries, placements };
    const skip = first - entries[0]!.index;
    return { entries: entries.slice(skip), placements: placements.slice(skip) };
  }

  private truncateFrom(index: LogIndex, offset: number): void {
    const t = this.tailStart();
    this.generation++;
    this.translatorValue.truncateSuffix(index, offset);
    this.termRunsValue.truncateSuffix(index);
    this.confs = this.confs.filter((e) => e.index < index);
    if (index < t) {
      this.tail = [];
      this.tailBytes = 0;
    } else {
      for (let i = index - t; i < this.tail.length; i++)
        this.tailBytes -= this.tail[i]!.data.byteLength;
      this.tail.length = index - t;
    }
    this.ranges = this.ranges.filter((r) => {
      const keep = index - r.entries[0]!.index;
      if (keep <= 0) return false;
      for (let i = keep; i < r.entries.length; i++) r.bytes -= r.entries[i]!.data.byteLength;
      if (keep < r.entries.length) r.entries.length = keep;
      return true;
    });
  }

  private evictTail(): void {
    const l = this.limits;
    const over = this.tail.length > l.tailEntriesMax || this.tailBytes > l.tailBytesMax;
    if (!over || this.tail.length <= 1) return;
    // Over a bound: evict down to 7/8 of tailEntriesMax (when that bound is 64 or more), so the
    // array copy below runs once per tailEntriesMax/8 appends instead of on every append (a
    // 4,096-entry copy per produce request was most of the broker's garbage).
    const entriesLow =
      l.tailEntriesMax >= 64 ? l.tailEntriesMax - (l.tailEntriesMax >> 3) : l.tailEntriesMax;
    let drop = 0;
    let bytes = this.tailBytes;
    while (
      this.tail.length - drop > 1 &&
      (this.tail.length - drop > entriesLow || bytes > l.tailBytesMax)
    ) {
      bytes -= this.tail[drop]!.data.byteLength;
      drop++;
    }
    if (drop === 0) return;
    this.tail = this.tail.slice(drop);
    this.tailBytes = bytes;
  }

  /** Replaces the whole log by a snapshot installed from the leader; the log restarts at
   * snapshot index + 1, whose batch will have base offset `startOffset`. */
  applySnapshot(snapshot: Snapshot, startOffset: number): void {
    if (snapshot.meta.index < this.snap.meta.index) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: snapshot at ${snapshot.meta.index} is older than ${this.snap.meta.index}`,
      );
    }
    this.generation++;
    this.snap = snapshot;
    this.prevTerm = snapshot.meta.term;
    this.translatorValue = new OffsetTranslator(
      { index: (snapshot.meta.index + 1) as LogIndex, offset: startOffset },
      this.translatorLimits,
    );
    this.termRunsValue = new TermRuns();
    this.tail = [];
    this.tailBytes = 0;
    this.ranges = [];
    this.confs = [];
    this.misses.clear();
  }

  /** Records a snapshot the state machine took at `index` (<= lastIndex). */
  createSnapshot(index: LogIndex, conf: ConfState, data: Uint8Array): Snapshot {
    if (index <= this.snap.meta.index) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: snapshot at ${index} is not newer than ${this.snap.meta.index}`,
      );
    }
    const term = this.term(index);
    if (term === undefined) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: snapshot at ${index} outside the log`,
      );
    }
    this.snap = { meta: { index, term, conf }, data };
    return this.snap;
  }

  /**
   * Discards entries up to `index` (<= the snapshot's index). The new first entry's base offset
   * comes from the translator, or from `startOffset` when the translator has only an anchor
   * there (the shell read it from the log); given both, they must agree.
   */
  compact(index: LogIndex, startOffset?: number): void {
    if (index < this.firstIndex()) return;
    if (index > this.snap.meta.index) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: compact to ${index} beyond the snapshot at ${this.snap.meta.index}`,
      );
    }
    const start = (index + 1) as LogIndex;
    const offset = this.translatorValue.offsetOf(start) ?? startOffset;
    if (offset === undefined) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `raft log tail: compacting to ${index} needs the base offset of ${start} (below the exact window)`,
      );
    }
    assert.ok(startOffset === undefined || startOffset === offset, 'raft log tail: compact offset');
    const prev = this.term(index);
    assert.ok(prev !== undefined, 'raft log tail: the compaction point has a term');
    this.generation++;
    this.prevTerm = prev;
    this.translatorValue.trimPrefix({ index: start, offset });
    this.termRunsValue.truncatePrefix({ index: start, offset });
    this.confs = this.confs.filter((e) => e.index >= start);
    const t = this.tailStart();
    if (start > t) {
      const drop = Math.min(start - t, this.tail.length);
      for (let i = 0; i < drop; i++) this.tailBytes -= this.tail[i]!.data.byteLength;
      this.tail = this.tail.slice(drop);
    }
    this.ranges = this.ranges.filter((r) => {
      const skip = start - r.entries[0]!.index;
      if (skip <= 0) return true;
      if (skip >= r.entries.length) return false;
      for (let i = 0; i < skip; i++) r.bytes -= r.entries[i]!.data.byteLength;
      r.entries = r.entries.slice(skip);
      return true;
    });
  }

  // ------------------------------------------------------------------ asynchronous reads

  /** The misses `entries` recorded since the last call (lo -> hi), oldest first; clears them. */
  takeMisses(): Array<{ lo: LogIndex; hi: LogIndex }> {
    const out = [...this.misses].map(([lo, hi]) => ({ lo: lo as LogIndex, hi: hi as LogIndex }));
    this.misses.clear();
    return out;
  }

  /**
   * Loads entries from `lo` toward `hi` (stopping at the tail, at `cacheBytesMax`, or at `hi`)
   * from the source into the side cache, so the next `entries(lo, …)` is served. The same `lo`
   * in flight shares one read. Rejects with the source's error, or CORRUPT_DATA when what it read
   * disagrees with the translator or the term runs (invariant 5).
   */
  prefetch(lo: LogIndex, hi: LogIndex): Promise<PrefetchResult> {
    const first = this.firstIndex();
    if (lo < first || hi > this.lastIndex() + 1 || lo >= hi) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `raft log tail: prefetch [${lo}, ${hi}) outside [${first}, ${this.lastIndex() + 1}]`,
        ),
      );
    }
    if (this.available(lo)) return Promise.resolve('held');
    const running = this.inflight.get(lo);
    if (running !== undefined) return running;
    if (this.inflight.size >= this.limits.prefetchesMax) return Promise.resolve('busy');
    const p = this.load(lo, hi).finally(() => this.inflight.delete(lo));
    this.inflight.set(lo, p);
    return p;
  }

  private async load(lo: LogIndex, hi: LogIndex): Promise<PrefetchResult> {
    const generation = this.generation;
    let at = this.translatorValue.anchorFor(lo);
    const out: Entry[] = [];
    let bytes = 0;
    for (;;) {
      const stop = Math.min(hi, this.tailStart());
      if (at.index >= stop) break;
      const batches = await this.source.read(at.offset, this.limits.cacheBytesMax);
      if (this.generation !== generation) return 'stale';
      if (batches.length === 0) {
        throw new StreamBusError(
          ErrorCode.CORRUPT_DATA,
          `raft log tail: the log returned nothing at offset ${at.offset} (entry ${at.index})`,
        );
      }
      let full = false;
      for (const b of batches) {
        this.checkRead(at.index, at.offset, b);
        if (at.index >= lo) {
          if (out.length > 0 && bytes + b.data.byteLength > this.limits.cacheBytesMax) {
            full = true;
            break;
          }
          out.push({ index: at.index, term: b.term, type: b.type, data: b.data });
          bytes += b.data.byteLength;
        }
        at = { index: (at.index + 1) as LogIndex, offset: b.baseOffset + b.recordCount };
        if (at.index >= Math.min(hi, this.tailStart())) break;
      }
      if (full) break;
    }
    if (out.length > 0) this.insertRange(out, bytes);
    return 'loaded';
  }

  /** Invariant 5: a batch read for entry `index` must be where and what the tables say. */
  private checkRead(index: LogIndex, offset: number, b: SourceBatch): void {
    const fail = (what: string): never => {
      throw new StreamBusError(
        ErrorCode.CORRUPT_DATA,
        `raft log tail: entry ${index} at offset ${offset}: ${what}`,
      );
    };
    if (b.baseOffset !== offset) fail(`the log returned a batch at offset ${b.baseOffset}`);
    if (!(Number.isInteger(b.recordCount) && b.recordCount >= 1)) fail('batch without records');
    const term = this.termRunsValue.termOf(index);
    if (b.term !== term) fail(`batch term ${b.term}, term runs say ${term}`);
    const p = this.translatorValue.placementOf(index);
    if (p !== undefined && p.recordCount !== b.recordCount) {
      fail(`batch of ${b.recordCount} records, the translator says ${p.recordCount}`);
    }
  }

  private insertRange(entries: Entry[], bytes: number): void {
    const lo = entries[0]!.index;
    const hi = lo + entries.length;
    this.ranges = this.ranges.filter((r) => {
      const rlo = r.entries[0]!.index;
      return rlo + r.entries.length <= lo || rlo >= hi;
    });
    const fresh: CachedRange = { entries, bytes, used: ++this.useClock };
    this.ranges.push(fresh);
    let total = this.ranges.reduce((n, r) => n + r.bytes, 0);
    while (
      this.ranges.length > 1 &&
      (this.ranges.length > this.limits.cacheRangesMax || total > this.limits.cacheBytesMax)
    ) {
      let victim = -1; // the least recently used range other than the one just loaded
      for (let k = 0; k < this.ranges.length; k++) {
        if (this.ranges[k] === fresh) continue;
        if (victim < 0 || this.ranges[k]!.used < this.ranges[victim]!.used) victim = k;
      }
      total -= this.ranges[victim]!.bytes;
      this.ranges.splice(victim, 1);
    }
  }

  // ------------------------------------------------------------------ helpers and stats

  private tailStart(): LogIndex {
    return (this.lastIndex() + 1 - this.tail.length) as LogIndex;
  }

  private rangeHolding(index: LogIndex): CachedRange | undefined {
    for (const r of this.ranges) {
      const lo = r.entries[0]!.index;
      if (index >= lo && index < lo + r.entries.length) return r;
    }
    return undefined;
  }

  private recordMiss(lo: LogIndex, hi: LogIndex): void {
    const known = this.misses.get(lo);
    if (known !== undefined) {
      this.misses.set(lo, Math.max(known, hi));
      return;
    }
    if (this.misses.size >= this.limits.missesMax) {
      this.misses.delete(this.misses.keys().next().value!);
    }
    this.misses.set(lo, hi);
  }

  /** What the bounds of invariant 3 apply to (for tests and metrics). */
  stats(): {
    tailEntries: number;
    tailBytes: number;
    tailStart: LogIndex;
    cacheRanges: number;
    cacheBytes: number;
    prefetchesInFlight: number;
    misses: number;
  } {
    return {
      tailEntries: this.tail.length,
      tailBytes: this.tailBytes,
      tailStart: this.tailStart(),
      cacheRanges: this.ranges.length,
      cacheBytes: this.ranges.reduce((n, r) => n + r.bytes, 0),
      prefetchesInFlight: this.inflight.size,
      misses: this.misses.size,
    };
  }
}

/**
 * Appends src[start .. start+count) to `out` within the byte budget, with the core's rule: stop
 * before the entry that would exceed `bytesMax`, but always at least one entry in `out`.
 * Returns true when all `count` entries were taken.
 */
function take(
  out: Entry[],
  src: readonly Entry[],
  start: number,
  count: number,
  budget: { bytes: number; bytesMax: number },
): boolean {
  for (let i = 0; i < count; i++) {
    const e = src[start + i]!;
    if (out.length > 0 && budget.bytes + e.data.byteLength > budget.bytesMax) return false;
    out.push(e);
    budget.bytes += e.data.byteLength;
  }
  return true;
}
