// The tail's eviction is amortized: once at its entry bound it drops down to 7/8 of it, so the
// array holding the tail is copied once per tailEntriesMax/8 appends, not on every append (a
// full-size copy per produce request was most of a busy broker's garbage). The bounds hold.
import { EntryType, type LogIndex, type Snapshot, type Term } from '@streambus/raft';
import { describe, expect, it } from 'vitest';
import { OffsetTranslator } from './offset-translator.js';
import { RaftLogTail, type ReplicaLogSource } from './raft-log-tail.js';
import { TermRuns } from './term-runs.js';

const idx = (n: number) => n as LogIndex;
const source: ReplicaLogSource = { read: async () => [] };
const snapshot = (): Snapshot => ({
  meta: { index: idx(0), term: 0 as Term, conf: { voters: [1 as never], learners: [] } },
  data: new Uint8Array(0),
});

function newTail(tailEntriesMax: number, tailBytesMax = 1 << 30) {
  return new RaftLogTail({
    source,
    translator: new OffsetTranslator({ index: idx(1), offset: 0 }, { runsMax: 4, anchorsMax: 4 }),
    termRuns: new TermRuns(),
    snapshot: snapshot(),
    limits: { tailEntriesMax, tailBytesMax },
    translatorLimits: { runsMax: 4, anchorsMax: 4 },
  });
}

/** Appends `n` one-entry Readies of `bytes` each; counts how often the tail array was replaced. */
function appendOneByOne(tail: RaftLogTail, entriesMax: number, n: number, bytes = 10) {
  const internal = tail as unknown as { tail: unknown[] };
  let copies = 0;
  let minAfterFull = Number.POSITIVE_INFINITY;
  for (let i = 1; i <= n; i++) {
    const before = internal.tail;
    const index = tail.lastIndex() + 1;
    tail.append(
      [{ index: idx(index), term: 1 as Term, type: EntryType.Normal, data: new Uint8Array(bytes) }],
      [{ baseOffset: index - 1, recordCount: 1, isControl: false }],
    );
    if (internal.tail !== before) copies++;
    const s = tail.stats();
    if (i > 5000) minAfterFull = Math.min(minAfterFull, s.tailEntries);
    expect(s.tailEntries).toBeLessThanOrEqual(entriesMax);
  }
  return { copies, minAfterFull };
}

describe('RaftLogTail eviction', () => {
  it('copies the tail once per tailEntriesMax/8 appends and keeps between 7/8 and all of the bound', () => {
    const tail = newTail(4096);
    const { copies, minAfterFull } = appendOneByOne(tail, 4096, 20_000);
    // 20,000 appends past a 4,096 bound: (20,000 - 4,096) / 512 + 1 evictions, not 15,904.
    expect(copies).toBeLessThanOrEqual(Math.ceil((20_000 - 4096) / 512) + 1);
    expect(minAfterFull).toBeGreaterThanOrEqual(4096 - 512);
    expect(tail.lastIndex()).toBe(20_000);
  });

  it('keeps small bounds exact (each append past the bound evicts one)', () => {
    const tail = newTail(8);
    const { minAfterFull } = appendOneByOne(tail, 8, 6000);
    expect(minAfterFull).toBe(8);
  });

  it('still holds the byte bound (at least the newest entry)', () => {
    const tail = newTail(4096, 1000);
    appendOneByOne(tail, 4096, 3000, 100);
    expect(tail.stats().tailBytes).toBeLessThanOrEqual(1000);
    expect(tail.stats().tailEntries).toBeGreaterThanOrEqual(1);
  });
});
