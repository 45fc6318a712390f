// The "entries not in memory" hook: a storage whose older entries are on disk until loaded.
// The core must read nothing it was told is unavailable, ask for it in Ready.entriesWanted,
// keep the follower's progress as it was, and resume after entriesFetched().

import { describe, expect, it } from 'vitest';
import { encodeConfState } from './conf.js';
import { RaftNode } from './raft.js';
import { seededRandom } from './rng.js';
import { MemoryStorage } from './storage.js';
import {
  type Entry,
  type EntryRange,
  EntryType,
  type LogIndex,
  type Message,
  MessageType,
  type NodeId,
  StateRole,
  type Term,
} from './types.js';

/** Entries below `gate` are "on disk": readable only inside a range `load` brought in. */
class GatedStorage extends MemoryStorage {
  gate = 0;
  loaded: EntryRange | null = null;
  reads = 0;

  available(lo: LogIndex, _hi: LogIndex): boolean {
    return lo >= this.gate || (this.loaded !== null && this.loaded.lo <= lo && lo < this.loaded.hi);
  }
  override entries(lo: LogIndex, hi: LogIndex, bytesMax: number): readonly Entry[] {
    if (!this.available(lo, hi)) throw new Error(`read of unavailable [${lo}, ${hi})`);
    this.reads++;
    const end = lo < this.gate && this.loaded!.hi < this.gate ? Math.min(hi, this.loaded!.hi) : hi;
    return super.entries(lo, end as LogIndex, bytesMax);
  }
  /** Everything currently stored goes to "disk". */
  evictAll(): void {
    this.gate = this.lastIndex() + 1;
    this.loaded = null;
  }
}

const voters = [1, 2, 3] as NodeId[];

class Cluster {
  readonly nodes = new Map<NodeId, { raft: RaftNode; storage: GatedStorage }>();
  readonly wanted = new Map<NodeId, EntryRange[]>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly sent: Message[] = [];
  cut = new Set<NodeId>();
  private queue: Message[] = [];

  constructor() {
    for (const id of voters) {
      const storage = new GatedStorage({ voters, learners: [] });
      const raft = new RaftNode({ id, random: seededRandom(id), preVote: false }, storage);
      this.nodes.set(id, { raft, storage });
      this.wanted.set(id, []);
      this.applied.set(id, []);
    }
  }

  node(id: number) {
    return this.nodes.get(id as NodeId)!;
  }

  /** Runs ready/advance and message delivery until nothing moves. */
  settle(): void {
    for (let round = 0; round < 1000; round++) {
      let moved = false;
      for (const [id, n] of this.nodes) {
        if (!n.raft.hasReady()) continue;
        moved = true;
        const rd = n.raft.ready();
        n.storage.append(rd.entries);
        if (rd.hardState) n.storage.setHardState(rd.hardState);
        this.wanted.get(id)!.push(...rd.entriesWanted);
        this.applied.get(id)!.push(...rd.committedEntries);
        for (const m of rd.messages) {
          this.sent.push(m);
          if (!this.cut.has(m.to) && !this.cut.has(m.from)) this.queue.push(m);
        }
        n.raft.advance();
      }
      const q = this.queue;
      this.queue = [];
      for (const m of q) this.nodes.get(m.to)!.raft.step(m);
      if (!moved && q.length === 0) return;
    }
    throw new Error('cluster did not settle');
  }

  tick(n: number): void {
    for (let i = 0; i < n; i++) {
      for (const x of this.nodes.values()) x.raft.tick();
      this.settle();
    }
  }
}

function electedCluster(): Cluster {
  const c = new Cluster();
  c.node(1).raft.campaign();
  c.settle();
  expect(c.node(1).raft.currentRole).toBe(StateRole.Leader);
  return c;
}

/** Every append the leader sent names a (prevIndex, prevTerm) that is in its own log. */
function expectConsistentAppends(c: Cluster): void {
  const leader = c.node(1).storage;
  for (const m of c.sent) {
    if (m.type !== MessageType.Append || m.from !== 1) continue;
    expect(leader.term(m.index), `append to ${m.to} at ${m.index}`).toBe(m.logTerm);
    m.entries.forEach((e, k) => {
      expect(e.index).toBe(m.index + 1 + k);
      expect(leader.term(e.index)).toBe(e.term);
    });
  }
}

/** Node 3 missed entries 2..21 while cut off; then the leader's whole log went to "disk". */
function laggingCluster() {
  const c = electedCluster();
  c.cut.add(3 as NodeId);
  for (let i = 0; i < 20; i++) c.node(1).raft.propose(new Uint8Array([i]));
  c.settle();
  const leader = c.node(1);
  expect(leader.raft.commitIndex).toBe(21);
  leader.storage.evictAll();
  c.cut.clear();
  return { c, leader };
}

describe('entries not in memory (LogStorage.available)', () => {
  it('catches a lagging follower up only after the leader loads the wanted range', () => {
    const { c, leader } = laggingCluster();
    const behind = c.node(3).raft.status().lastIndex;
    expect(behind).toBe(1);
    const sentBefore = c.sent.length;
    c.tick(4);
    const asked = leader.raft.status().progress.get(3 as NodeId)!;
    expect(c.wanted.get(1 as NodeId)!.length).toBeGreaterThan(0);
    c.tick(8); // more heartbeat rounds: each response retries and asks again
    const progress = leader.raft.status().progress.get(3 as NodeId)!;
    // Waiting does not touch the follower's progress.
    expect([progress.match, progress.next, progress.state]).toEqual([
      asked.match,
      asked.next,
      asked.state,
    ]);
    const wanted = c.wanted.get(1 as NodeId)!;
    expect(wanted.length).toBeGreaterThan(0);
    for (const w of wanted) expect(w).toEqual({ lo: progress.next, hi: 22 });
    expect(progress.next).toBeLessThanOrEqual(behind + 1);
    expect(progress.match).toBeLessThanOrEqual(behind);
    // Nothing with entries went to node 3 while the range was on disk, and it did not move.
    const toThree = c.sent.slice(sentBefore).filter((m) => m.to === 3 && m.type === 'append');
    expect(toThree.filter((m) => m.entries.length > 0)).toEqual([]);
    expect(c.node(3).raft.status().lastIndex).toBe(behind);
    expect(leader.raft.hasReady()).toBe(false); // no spinning while waiting

    leader.storage.loaded = wanted[0]!;
    leader.raft.entriesFetched();
    c.settle();
    expect(c.node(3).raft.status().lastIndex).toBe(21);
    expect(leader.raft.status().progress.get(3 as NodeId)!.match).toBe(21);
    for (let i = 2; i <= 21; i++) {
      expect(c.node(3).storage.term(i as LogIndex)).toBe(leader.storage.term(i as LogIndex));
    }
    expectConsistentAppends(c);
  });

  it('serves a follower from a loaded range that stops short, then asks for the rest', () => {
    const { c, leader } = laggingCluster();
    c.tick(4);
    const first = c.wanted.get(1 as NodeId)!.at(-1)!;
    leader.storage.loaded = { lo: first.lo, hi: (first.lo + 5) as LogIndex };
    c.wanted.get(1 as NodeId)!.length = 0;
    leader.raft.entriesFetched();
    c.settle();
    const mid = c.node(3).raft.status().lastIndex;
    expect(mid).toBe(first.lo + 4);
    expect(c.wanted.get(1 as NodeId)!.at(-1)).toEqual({ lo: mid + 1, hi: 22 });
    leader.storage.loaded = { lo: (mid + 1) as LogIndex, hi: 22 as LogIndex };
    leader.raft.entriesFetched();
    c.settle();
    expect(c.node(3).raft.status().lastIndex).toBe(21);
    expectConsistentAppends(c);
  });

  it('holds applying while the committed entries are not in memory, then resumes', () => {
    const storage = new GatedStorage({ voters: [1 as NodeId], learners: [] });
    const raft = new RaftNode({ id: 1 as NodeId, random: seededRandom(1) }, storage);
    const applied: Entry[] = [];
    const wanted: EntryRange[] = [];
    const cycle = () => {
      while (raft.hasReady()) {
        const rd = raft.ready();
        storage.append(rd.entries);
        if (rd.hardState) storage.setHardState(rd.hardState);
        applied.push(...rd.committedEntries);
        wanted.push(...rd.entriesWanted);
        raft.advance();
      }
    };
    raft.campaign();
    cycle();
    expect(raft.currentRole).toBe(StateRole.Leader);
    const before = applied.length; // the leader's no-op
    // Entries become durable; evict them before the next Ready would read them to apply.
    for (let i = 0; i < 5; i++) raft.propose(new Uint8Array([i]));
    const rd = raft.ready();
    storage.append(rd.entries);
    raft.advance();
    storage.evictAll();
    expect(raft.commitIndex).toBe(6);
    cycle();
    expect(applied.length).toBe(before);
    expect(wanted).toEqual([{ lo: 2, hi: 7 }]);
    expect(raft.hasReady()).toBe(false);
    storage.loaded = wanted[0]!;
    raft.entriesFetched();
    expect(raft.hasReady()).toBe(true);
    cycle();
    expect(applied.slice(before).map((e) => e.index)).toEqual([2, 3, 4, 5, 6]);
    expect(raft.status().applied).toBe(6);
  });

  it('recovers the configuration from confEntries, never reading unavailable entries', () => {
    const conf12 = { voters: [1, 2] as NodeId[], learners: [] };
    const conf123 = { voters: [1, 2, 3] as NodeId[], learners: [] };
    const build = () => {
      const s = new GatedStorage(conf12);
      const ents: Entry[] = [];
      for (let i = 1; i <= 6; i++) {
        const conf = i === 4;
        ents.push({
          term: 1 as Term,
          index: i as LogIndex,
          type: conf ? EntryType.Conf : EntryType.Normal,
          data: conf ? encodeConfState(conf123) : new Uint8Array([i]),
        });
      }
      s.append(ents);
      s.setHardState({ term: 1 as Term, vote: 1 as NodeId, commit: 3 as LogIndex });
      s.evictAll();
      return { s, ents };
    };
    // Without confEntries the constructor scans, and the storage's own error surfaces.
    const plain = build().s;
    expect(() => new RaftNode({ id: 1 as NodeId, random: seededRandom(1) }, plain)).toThrow(
      /read of unavailable \[1, 7\)/,
    );
    const { s, ents } = build();
    const withMeta = Object.assign(s, {
      confEntries: (lo: LogIndex, hi: LogIndex) =>
        ents.filter((e) => e.type === EntryType.Conf && e.index >= lo && e.index < hi),
    });
    const raft = new RaftNode({ id: 1 as NodeId, random: seededRandom(1) }, withMeta);
    expect(s.reads).toBe(0);
    expect(raft.status().conf.voters).toEqual([1, 2, 3]);
    expect(raft.confStateAt(3 as LogIndex).voters).toEqual([1, 2]);
  });
});
