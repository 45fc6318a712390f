// The simulator's "cold storage" mode: a MemoryStorage whose older entries are, from time to
// time, declared on disk. `available` says no for them until the simulated shell loads the
// range the core asked for (Ready.entriesWanted) a few ticks later, like the broker's
// RaftLogTail and its asynchronous prefetch. Reading a range that was declared unavailable is a
// bug in the core, so `entries` throws for it (which fails the seed loudly).

import { assert } from '../errors.js';
import { MemoryStorage } from '../storage.js';
import { type Entry, type EntryRange, EntryType, type LogIndex } from '../types.js';

export class ColdStorage extends MemoryStorage {
  /** Loaded ranges kept (oldest dropped first), like a bounded prefetch cache. */
  static readonly loadedRangesMax = 4;
  /** Entries at or after this index are in memory; older ones only inside `loaded`. */
  private hotFrom = 0;
  private readonly loaded: EntryRange[] = [];

  available(lo: LogIndex, _hi: LogIndex): boolean {
    return lo >= this.hotFrom || this.holding(lo) !== undefined;
  }

  override entries(lo: LogIndex, hi: LogIndex, bytesMax: number): readonly Entry[] {
    let end = hi;
    if (lo < this.hotFrom && lo < hi) {
      const range = this.holding(lo);
      assert(range !== undefined, `cold storage: the core read unavailable entries [${lo}, ${hi})`);
      if (range.hi < this.hotFrom) end = Math.min(hi, range.hi) as LogIndex;
    }
    return super.entries(lo, end, bytesMax);
  }

  /** The configuration entries, as a storage keeping them as metadata would answer. */
  confEntries(lo: LogIndex, hi: LogIndex): readonly Entry[] {
    return lo < hi ? this.rawEntries(lo, hi).filter((e) => e.type === EntryType.Conf) : [];
  }

  /** Every entry in [lo, hi), in memory or not (for the simulator's own inspection). */
  rawEntries(lo: LogIndex, hi: LogIndex): readonly Entry[] {
    return super.entries(lo, hi, Number.POSITIVE_INFINITY);
  }

  /** Entries below this index are not in memory (unless loaded). */
  get hotFromIndex(): number {
    return this.hotFrom;
  }

  /** Everything but the last `keep` entries goes to disk; loaded ranges are forgotten. */
  evict(keep: number): void {
    this.hotFrom = Math.max(this.firstIndex(), this.lastIndex() + 1 - keep);
    this.loaded.length = 0;
  }

  /** A prefetch landed: [lo, hi) is in memory until the next eviction. */
  load(range: EntryRange): void {
    this.loaded.push(range);
    if (this.loaded.length > ColdStorage.loadedRangesMax) this.loaded.shift();
  }

  private holding(lo: LogIndex): EntryRange | undefined {
    let best: EntryRange | undefined;
    for (const r of this.loaded) {
      if (r.lo <= lo && lo < r.hi && (best === undefined || r.hi > best.hi)) best = r;
    }
    return best;
  }
}
