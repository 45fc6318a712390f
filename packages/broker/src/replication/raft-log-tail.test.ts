import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import {
  type Entry,
  EntryType,
  type LogIndex,
  MemoryStorage,
  type NodeId,
  RaftNode,
  type Ready,
  type Snapshot,
  seededRandom,
  type Term,
} from '@streambus/raft';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BatchPlacement } from './offset-translator.js';
import { OffsetTranslator } from './offset-translator.js';
import {
  EntriesUnavailableError,
  RaftLogTail,
  type RaftLogTailLimits,
  type ReplicaLogSource,
  type SourceBatch,
} from './raft-log-tail.js';
import { TermRuns } from './term-runs.js';

const idx = (n: number) => n as LogIndex;
const term = (n: number) => n as Term;
const CONF = { voters: [1 as NodeId], learners: [] };

/** The partition log as the tail sees it: batches by base offset, holding the entries' data. */
class FakeLog implements ReplicaLogSource {
  batches = new Map<number, SourceBatch>();
  reads = 0;
  gate: Promise<void> | null = null;

  write(entry: Entry, p: BatchPlacement): void {
    for (const o of [...this.batches.keys()]) if (o >= p.baseOffset) this.batches.delete(o);
    this.batches.set(p.baseOffset, {
      baseOffset: p.baseOffset,
      recordCount: p.recordCount,
      term: entry.term,
      type: entry.type,
      data: entry.data,
    });
  }
  async read(offset: number, bytesMax: number): Promise<readonly SourceBatch[]> {
    this.reads++;
    await Promise.resolve();
    if (this.gate) await this.gate;
    const out: SourceBatch[] = [];
    let bytes = 0;
    for (
      let b = this.batches.get(offset);
      b !== undefined;
      b = this.batches.get(b.baseOffset + b.recordCount)
    ) {
      out.push(b);
      bytes += b.data.byteLength;
      if (bytes >= bytesMax) break;
    }
    return out;
  }
}

const emptySnapshot = (): Snapshot => ({
  meta: { index: idx(0), term: term(0), conf: CONF },
  data: new Uint8Array(0),
});

function newTail(limits: Partial<RaftLogTailLimits>, runsMax = 3) {
  const log = new FakeLog();
  const tail = new RaftLogTail({
    source: log,
    translator: new OffsetTranslator({ index: idx(1), offset: 0 }, { runsMax, anchorsMax: 4 }),
    termRuns: new TermRuns(),
    snapshot: emptySnapshot(),
    limits,
    translatorLimits: { runsMax, anchorsMax: 4 },
  });
  return { log, tail };
}

/** What the shell does with a Ready's entries: plan the term runs, write, then append. */
function persistEntries(
  tail: RaftLogTail,
  log: FakeLog,
  entries: readonly Entry[],
  recordsOf: (e: Entry) => number,
) {
  if (entries.length === 0) return;
  const first = entries[0]!.index;
  let offset =
    first <= tail.lastIndex()
      ? (tail.translator.offsetOf(first) ?? offsetByScan(log, tail, first))
      : tail.translator.endPosition.offset;
  const placements = entries.map((e) => {
    const p = { baseOffset: offset, recordCount: recordsOf(e), isControl: e.data.length === 0 };
    offset += p.recordCount;
    return p;
  });
  const plan = tail.planTermRuns(entries, placements);
  for (let k = 0; k < entries.length; k++) log.write(entries[k]!, placements[k]!);
  tail.append(entries, placements);
  if (plan !== null) expect(plan.list()).toEqual(tail.termRuns.list());
  else expect(tail.termRuns.list().length).toBeGreaterThan(0);
}

/** The shell's read below the translator's window: count batches forward from an anchor. */
function offsetByScan(log: FakeLog, tail: RaftLogTail, index: LogIndex): number {
  let at = tail.translator.anchorFor(index);
  while (at.index < index) {
    const b = log.batches.get(at.offset)!;
    at = { index: idx(at.index + 1), offset: b.baseOffset + b.recordCount };
  }
  return at.offset;
}

const op = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      at: fc.nat({ max: 999 }),
      truncate: fc.boolean(),
      count: fc.integer({ min: 1, max: 4 }),
      termStep: fc.nat({ max: 2 }),
      size: fc.nat({ max: 30 }),
      records: fc.integer({ min: 1, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('prefetch' as const), at: fc.nat({ max: 999 }) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('compact' as const),
      snapAt: fc.nat({ max: 999 }),
      compactAt: fc.nat({ max: 999 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({ kind: fc.constant('install' as const), gap: fc.nat({ max: 3 }) }),
  },
);

const LIMITS: RaftLogTailLimits = {
  tailEntriesMax: 4,
  tailBytesMax: 50,
  cacheBytesMax: 60,
  cacheRangesMax: 2,
  prefetchesMax: 2,
  missesMax: 3,
};

function compare(tail: RaftLogTail, mem: MemoryStorage, bytesMax: number): void {
  expect(tail.firstIndex()).toBe(mem.firstIndex());
  expect(tail.lastIndex()).toBe(mem.lastIndex());
  expect(tail.snapshotMeta()).toEqual(mem.snapshotMeta());
  for (let i = Math.max(0, mem.firstIndex() - 2); i <= mem.lastIndex() + 1; i++) {
    expect({ i, t: tail.term(idx(i)) }).toEqual({ i, t: mem.term(idx(i)) });
  }
  const hi = idx(mem.lastIndex() + 1);
  for (let lo = mem.firstIndex(); lo <= mem.lastIndex(); lo++) {
    const want = mem.entries(idx(lo), hi, bytesMax);
    if (!tail.available(idx(lo))) {
      expect(() => tail.entries(idx(lo), hi, bytesMax)).toThrow(EntriesUnavailableError);
      continue;
    }
    const got = tail.entries(idx(lo), hi, bytesMax);
    expect(got.length).toBeGreaterThan(0);
    expect(got.length).toBeLessThanOrEqual(want.length);
    got.forEach((e, k) => {
      const w = want[k]!;
      expect({ index: e.index, term: e.term, type: e.type }).toEqual({
        index: w.index,
        term: w.term,
        type: w.type,
      });
      expect(e.data).toBe(w.data); // by reference: never a copy
    });
  }
  // Invariant 3: the bounds hold.
  const s = tail.stats();
  expect(s.tailEntries).toBeLessThanOrEqual(LIMITS.tailEntriesMax);
  expect(s.tailBytes).toBeLessThanOrEqual(LIMITS.tailBytesMax + 30);
  expect(s.cacheRanges).toBeLessThanOrEqual(LIMITS.cacheRangesMax);
  expect(s.cacheBytes).toBeLessThanOrEqual(LIMITS.cacheBytesMax + 30);
  expect(s.misses).toBeLessThanOrEqual(LIMITS.missesMax);
}

describe('RaftLogTail against the raft package’s MemoryStorage', () => {
  it('agrees on every read, serves old entries only after a prefetch, and keeps its bounds', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(op, { maxLength: 25 }),
        fc.integer({ min: 1, max: 80 }),
        async (ops, bytesMax) => {
          const mem = new MemoryStorage(CONF);
          const { log, tail } = newTail(LIMITS);
          for (const o of ops) {
            if (o.kind === 'append') {
              // Raft truncates only above its commit index, which is at or above the snapshot.
              const first = Math.max(mem.firstIndex(), mem.snapshotMeta().index + 1);
              const span = mem.lastIndex() - first + 2;
              const at = o.truncate
                ? first + Math.floor((o.at / 1000) * span)
                : mem.lastIndex() + 1;
              const prevTerm = mem.term(idx(at - 1)) ?? 0;
              const t = Math.max(1, prevTerm + o.termStep);
              const entries: Entry[] = [];
              for (let k = 0; k < o.count; k++) {
                entries.push({
                  index: idx(at + k),
                  term: term(t),
                  type: EntryType.Normal,
                  data: new Uint8Array((o.size + k * 7) % 31),
                });
              }
              mem.append(entries);
              persistEntries(tail, log, entries, (e) => 1 + ((e.index + o.records) % 3));
            } else if (o.kind === 'prefetch') {
              if (mem.lastIndex() < mem.firstIndex()) continue;
              const lo = idx(
                mem.firstIndex() +
                  Math.floor((o.at / 1000) * (mem.lastIndex() - mem.firstIndex() + 1)),
              );
              const result = await tail.prefetch(lo, idx(mem.lastIndex() + 1));
              expect(['held', 'loaded']).toContain(result);
              expect(tail.available(lo)).toBe(true);
            } else if (o.kind === 'compact') {
              const snap = mem.snapshotMeta().index;
              if (mem.lastIndex() > snap) {
                const s = idx(snap + 1 + Math.floor((o.snapAt / 1000) * (mem.lastIndex() - snap)));
                mem.createSnapshot(s, CONF, new Uint8Array(1));
                tail.createSnapshot(s, CONF, new Uint8Array(1));
              }
              const first = mem.firstIndex();
              const j = idx(
                first + Math.floor((o.compactAt / 1000) * (mem.snapshotMeta().index - first + 1)),
              );
              if (j >= first && j <= mem.snapshotMeta().index) {
                const startOffset =
                  j + 1 <= tail.lastIndex()
                    ? offsetByScan(log, tail, idx(j + 1))
                    : tail.translator.endPosition.offset;
                mem.compact(j);
                tail.compact(j, startOffset);
              }
            } else {
              const s = idx(Math.max(mem.snapshotMeta().index, mem.lastIndex()) + o.gap);
              if (s < mem.snapshotMeta().index || s === 0) continue;
              const snapshot: Snapshot = {
                meta: {
                  index: s,
                  term: term((mem.term(idx(mem.lastIndex())) ?? 0) + 1),
                  conf: CONF,
                },
                data: new Uint8Array(2),
              };
              mem.applySnapshot(snapshot);
              const startOffset = tail.translator.endPosition.offset + 10;
              log.batches.clear();
              tail.applySnapshot(snapshot, startOffset);
            }
            compare(tail, mem, bytesMax);
          }
        },
      ),
      { numRuns: 200 },
    );
  });

  it('reports a miss, records it, and serves it after prefetch; old entries come from the log', async () => {
    const { log, tail } = newTail({ ...LIMITS, tailEntriesMax: 2 });
    const mem = new MemoryStorage(CONF);
    const entries = Array.from({ length: 10 }, (_, k) => ({
      index: idx(k + 1),
      term: term(1 + Math.floor(k / 4)),
      type: EntryType.Normal,
      data: new Uint8Array([k]),
    }));
    mem.append(entries);
    persistEntries(tail, log, entries, () => 2);
    expect(tail.available(idx(8))).toBe(false);
    let err: unknown;
    try {
      tail.entries(idx(3), idx(11), 1000);
    } catch (e) {
      err = e;
    }
    expect(isStreamBusError(err, ErrorCode.REPLICA_ENTRIES_UNAVAILABLE)).toBe(true);
    expect((err as StreamBusErrorLike).retriable).toBe(true);
    expect(tail.takeMisses()).toEqual([{ lo: 3, hi: 11 }]);
    expect(tail.takeMisses()).toEqual([]);
    expect(await tail.prefetch(idx(3), idx(11))).toBe('loaded');
    expect(await tail.prefetch(idx(3), idx(11))).toBe('held');
    const got = tail.entries(idx(3), idx(11), 1000);
    expect(got.map((e) => e.index)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]); // cache, then the tail
    expect(got[0]!.data).toBe(entries[2]!.data);
    expect(got.map((e) => e.term)).toEqual(entries.slice(2).map((e) => e.term));
  });

  it('throws away a prefetch whose log was truncated meanwhile, and answers busy past prefetchesMax', async () => {
    const { log, tail } = newTail({ ...LIMITS, tailEntriesMax: 1, prefetchesMax: 1 });
    const entries = Array.from({ length: 6 }, (_, k) => ({
      index: idx(k + 1),
      term: term(1),
      type: EntryType.Normal,
      data: new Uint8Array(3),
    }));
    persistEntries(tail, log, entries, () => 1);
    let open!: () => void;
    log.gate = new Promise((resolve) => {
      open = resolve;
    });
    const first = tail.prefetch(idx(2), idx(6));
    expect(tail.prefetch(idx(2), idx(6))).toBe(first); // the same read, shared
    expect(await tail.prefetch(idx(4), idx(6))).toBe('busy');
    // A new leader's entries replace the log from index 3 while the read is under way.
    persistEntries(
      tail,
      log,
      [{ index: idx(3), term: term(2), type: EntryType.Normal, data: new Uint8Array(1) }],
      () => 1,
    );
    open();
    expect(await first).toBe('stale');
    expect(tail.available(idx(2))).toBe(false);
    log.gate = null;
    expect(await tail.prefetch(idx(2), idx(4))).toBe('loaded');
    expect(tail.entries(idx(2), idx(4), 100).map((e) => [e.index, e.term])).toEqual([
      [2, 1],
      [3, 2],
    ]);
  });

  it('refuses what the log returns when its term or offset disagrees with the tables (CORRUPT_DATA)', async () => {
    for (const damage of ['term', 'offset'] as const) {
      const { log, tail } = newTail({ ...LIMITS, tailEntriesMax: 1 });
      const entries = Array.from({ length: 4 }, (_, k) => ({
        index: idx(k + 1),
        term: term(1),
        type: EntryType.Normal,
        data: new Uint8Array(2),
      }));
      persistEntries(tail, log, entries, () => 1);
      const b = log.batches.get(1)!;
      log.batches.set(1, damage === 'term' ? { ...b, term: term(9) } : { ...b, recordCount: 2 });
      let err: unknown;
      try {
        await tail.prefetch(idx(1), idx(4));
      } catch (e) {
        err = e;
      }
      expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
      expect(String(err)).toMatch(
        damage === 'term' ? /batch term 9, term runs say 1/ : /2 records, the translator says 1/,
      );
      expect(tail.available(idx(1))).toBe(false);
    }
  });
});

interface StreamBusErrorLike {
  retriable: boolean;
}

describe('a RaftNode over RaftLogTail', () => {
  function drive(node: RaftNode, tail: RaftLogTail, log: FakeLog, applied: Entry[]): void {
    while (node.hasReady()) {
      const rd: Ready = node.ready();
      persistEntries(tail, log, rd.entries, (e) => (e.data.length === 0 ? 1 : e.data.length));
      if (rd.hardState) tail.setHardState(rd.hardState);
      applied.push(...rd.committedEntries);
      node.advance();
    }
  }

  it('elects, commits and applies through the tail, and restarts after prefetching the log', async () => {
    const { log, tail } = newTail(
      { ...LIMITS, tailEntriesMax: 8, tailBytesMax: 1000, cacheBytesMax: 10_000 },
      4096,
    );
    const node = new RaftNode({ id: 1 as NodeId, random: seededRandom(1) }, tail);
    const applied: Entry[] = [];
    node.campaign();
    drive(node, tail, log, applied);
    for (let i = 0; i < 40; i++) {
      node.propose(new Uint8Array(1 + (i % 5)));
      drive(node, tail, log, applied);
    }
    expect(applied.length).toBe(41); // the leader's no-op and 40 proposals
    expect(tail.lastIndex()).toBe(41);
    expect(tail.stats().tailEntries).toBe(8);
    expect(tail.translator.endPosition.offset).toBe(
      1 + applied.slice(1).reduce((n, e) => n + e.data.length, 0),
    );
    // A restart: the core's constructor needs the configuration entries after the snapshot;
    // the tail answers `confEntries` from memory, so nothing behind the tail is read.
    const reads = log.reads;
    const restarted = new RaftNode({ id: 1 as NodeId, random: seededRandom(2) }, tail);
    expect(log.reads).toBe(reads);
    expect(restarted.status().commit).toBe(41);
  });
});
