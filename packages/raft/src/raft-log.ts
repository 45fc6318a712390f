// The node's view of its log: the durable part read through `LogStorage`, plus the "unstable"
// part (entries and possibly a snapshot) that the core has accepted but the caller has not yet
// confirmed durable via `advance()`. Also tracks the commit and applied indexes.
//
// Invariants:
//   1. unstable[k].index === offset + k; when a snapshot is unstable, offset === snap.index + 1.
//   2. Storage may still hold a stale suffix at or beyond `offset`; it is never read (the next
//      Ready's append overwrites it).
//   3. applied <= committed <= lastIndex(), and committed entries are never truncated.

import { assert } from './errors.js';
import { countWithinBytes, type LogStorage } from './storage.js';
import type { Entry, EntryRange, LogIndex, Snapshot, Term } from './types.js';

export class RaftLog {
  unstableSnapshot: Snapshot | null = null;
  unstable: Entry[] = [];
  /** The index of unstable[0] (or where the next unstable entry will go). */
  offset: LogIndex;
  committed: LogIndex;
  applied: LogIndex;
  /**
   * The apply index found not in memory (0: none): `hasNextCommittedEntries` is false while
   * `nextApplyFrom()` still equals it, so a blocked apply does not spin `ready()`. Cleared by
   * `entriesFetched()`.
   */
  applyBlockedAt: LogIndex = 0 as LogIndex;
  /**
   * Asynchronous storage writes (RaftConfig.asyncStorageWrites): the last index the caller
   * reported durable (`durableTo`), lowered when a truncation or a snapshot replaces entries at
   * or below it. Null when stable (advanced) entries are durable by the Ready contract.
   */
  reportedDurable: LogIndex | null = null;

  constructor(readonly storage: LogStorage) {
    this.offset = (storage.lastIndex() + 1) as LogIndex;
    this.committed = storage.snapshotMeta().index;
    this.applied = storage.snapshotMeta().index;
  }

  firstIndex(): LogIndex {
    if (this.unstableSnapshot) return (this.unstableSnapshot.meta.index + 1) as LogIndex;
    return this.storage.firstIndex();
  }

  lastIndex(): LogIndex {
    if (this.unstable.length > 0) return (this.offset + this.unstable.length - 1) as LogIndex;
    if (this.unstableSnapshot) return this.unstableSnapshot.meta.index;
    return this.storage.lastIndex();
  }

  /** The last index that is durable and agrees with this log. */
  durableLastIndex(): LogIndex {
    const placed = this.placedLastIndex();
    const r = this.reportedDurable;
    return r === null || r >= placed ? placed : r;
  }

  /** The last index written to storage (advanced) that agrees with this log. */
  private placedLastIndex(): LogIndex {
    if (this.unstableSnapshot) return this.storage.snapshotMeta().index;
    if (this.unstable.length > 0) return (this.offset - 1) as LogIndex;
    return this.lastIndex();
  }

  /**
   * Asynchronous storage writes: entries up to (index, term) are durable. Ignored (false) when
   * not in that mode, when they are not placed yet, or when the entry at `index` is no longer
   * of `term` (replaced since: the report is about entries this log no longer holds). Log
   * Matching makes the term check enough: an entry of the same index and term has the same
   * prefix, and a replacement of a prefix entry would have lowered the report (`append`).
   */
  durableTo(index: LogIndex, term: Term): boolean {
    const r = this.reportedDurable;
    if (r === null || index <= r || index > this.placedLastIndex()) return false;
    if (this.term(index) !== term) return false;
    this.reportedDurable = index;
    return true;
  }

  /** The term at `index`, or undefined when compacted away or beyond the end. */
  term(index: LogIndex): Term | undefined {
    const snap = this.unstableSnapshot;
    if (snap && index === snap.meta.index) return snap.meta.term;
    if (index >= this.offset) {
      return this.unstable[index - this.offset]?.term;
    }
    if (snap) return undefined;
    return this.storage.term(index);
  }

  lastTerm(): Term {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, 'the last entry has a term');
    return t;
  }

  matchTerm(index: LogIndex, term: Term): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (index, term) at least as up to date as this one? */
  isUpToDate(index: LogIndex, term: Term): boolean {
    const lastTerm = this.lastTerm();
    return term > lastTerm || (term === lastTerm && index >= this.lastIndex());
  }

  /** The index of the first entry that conflicts with or extends this log, else 0. */
  findConflict(entries: readonly Entry[]): LogIndex {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0 as LogIndex;
  }

  /**
   * Fast backtracking: the largest index <= `index` whose term is <= `term` (or the compaction
   * point, where the term is unknown). Used on both sides of a rejected append, so that one
   * round trip skips a whole term of divergent entries instead of one entry.
   */
  findConflictByTerm(index: LogIndex, term: Term): { index: LogIndex; term: Term } {
    for (let i = index; i > 0; i--) {
      const t = this.term(i as LogIndex);
      if (t === undefined) return { index: i as LogIndex, term: 0 as Term };
      if (t <= term) return { index: i as LogIndex, term: t };
    }
    return { index: 0 as LogIndex, term: 0 as Term };
  }

  /** Appends entries (contiguous), truncating any conflicting suffix. */
  append(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const after = entries[0]!.index;
    assert(after > this.committed, `truncation at ${after} below commit ${this.committed}`);
    if (this.reportedDurable !== null && this.reportedDurable >= after) {
      this.reportedDurable = (after - 1) as LogIndex;
    }
    const end = this.offset + this.unstable.length;
    if (after === end) {
      for (const e of entries) this.unstable.push(e);
    } else if (after <= this.offset) {
      // Replaces the whole unstable part and (later, through Ready) the stored suffix.
      this.offset = after;
      this.unstable = entries.slice();
    } else {
      this.unstable.length = after - this.offset;
      for (const e of entries) this.unstable.push(e);
    }
  }

  /** Can `slice(lo, hi, …)` be served now? Only the stored part may be out of memory. */
  available(lo: LogIndex, hi: LogIndex): boolean {
    if (lo >= hi || lo >= this.offset || this.storage.available === undefined) return true;
    return this.storage.available(lo, Math.min(hi, this.offset) as LogIndex);
  }

  /** Entries [lo, hi) across storage and the unstable part, within `bytesMax` (>= 1 entry). */
  slice(lo: LogIndex, hi: LogIndex, bytesMax: number): Entry[] {
    assert(lo >= this.firstIndex() && hi <= this.lastIndex() + 1, `slice [${lo}, ${hi}) in range`);
    if (lo >= hi) return [];
    let out: Entry[] = [];
    let budget = bytesMax;
    if (lo < this.offset) {
      const stored = this.storage.entries(lo, Math.min(hi, this.offset) as LogIndex, bytesMax);
      out = stored.slice();
      const last = out[out.length - 1]!;
      if (last.index + 1 < Math.min(hi, this.offset)) return out; // the byte limit was hit
      for (const e of out) budget -= e.data.byteLength;
      if (budget <= 0) return out;
    }
    const start = Math.max(lo, this.offset) - this.offset;
    const count = hi - this.offset - start;
    if (count <= 0) return out;
    const n =
      out.length === 0
        ? countWithinBytes((i) => this.unstable[start + i]!, count, budget)
        : countWithinBytesStrict(this.unstable, start, count, budget);
    for (let i = 0; i < n; i++) out.push(this.unstable[start + i]!);
    return out;
  }

  hasNextCommittedEntries(): boolean {
    const lo = this.nextApplyFrom();
    return this.committed > lo - 1 && lo !== this.applyBlockedAt;
  }

  nextApplyFrom(): LogIndex {
    const snapIndex = this.unstableSnapshot ? this.unstableSnapshot.meta.index : 0;
    return (Math.max(this.applied, snapIndex) + 1) as LogIndex;
  }

  /**
   * The next committed entries to apply. When they are not in memory: none, and `wanted` is
   * set to the range (the caller reports it and calls `entriesFetched()` once loaded).
   */
  nextCommittedEntries(bytesMax: number, wanted: { range: EntryRange | null }): Entry[] {
    const lo = this.nextApplyFrom();
    const hi = (this.committed + 1) as LogIndex;
    if (lo >= hi) return [];
    if (!this.available(lo, hi)) {
      this.applyBlockedAt = lo;
      wanted.range = { lo, hi: Math.min(hi, this.offset) as LogIndex };
      return [];
    }
    return this.slice(lo, hi, bytesMax);
  }

  commitTo(index: LogIndex): void {
    if (index <= this.committed) return;
    assert(index <= this.lastIndex(), `commit ${index} beyond last index ${this.lastIndex()}`);
    this.committed = index;
  }

  appliedTo(index: LogIndex): void {
    if (index <= this.applied) return;
    assert(index <= this.committed, `applied ${index} beyond commit ${this.committed}`);
    this.applied = index;
  }

  /** The caller made entries up to (index, term) durable. Ignored if they were replaced since. */
  stableTo(index: LogIndex, term: Term): void {
    if (index < this.offset) return;
    const e = this.unstable[index - this.offset];
    if (e === undefined || e.term !== term) return;
    this.unstable = this.unstable.slice(index - this.offset + 1);
    this.offset = (index + 1) as LogIndex;
  }

  stableSnapshotTo(index: LogIndex): void {
    if (this.unstableSnapshot && this.unstableSnapshot.meta.index === index) {
      this.unstableSnapshot = null;
      // The caller installs a snapshot durably before it advances (the Ready contract).
      if (this.reportedDurable !== null && this.reportedDurable < index) {
        this.reportedDurable = index;
      }
    }
  }

  /** Replaces the log by a snapshot received from the leader. */
  restore(snapshot: Snapshot): void {
    assert(snapshot.meta.index > this.committed, 'a restored snapshot is ahead of commit');
    this.committed = snapshot.meta.index;
    if (this.reportedDurable !== null) {
      // The old entries are replaced: only the old snapshot's prefix is still known durable.
      const before = this.storage.snapshotMeta().index;
      if (this.reportedDurable > before) this.reportedDurable = before;
    }
    this.unstableSnapshot = snapshot;
    this.unstable = [];
    this.offset = (snapshot.meta.index + 1) as LogIndex;
  }
}

/** How many of arr[start..start+count) fit in `budget` bytes (may be zero). */
function countWithinBytesStrict(
  arr: readonly Entry[],
  start: number,
  count: number,
  budget: number,
) {
  let bytes = 0;
  for (let i = 0; i < count; i++) {
    bytes += arr[start + i]!.data.byteLength;
    if (bytes > budget) return i;
  }
  return count;
}
