// Quiescence (RaftConfig.quiesce, docs/raft.md): an idle, fully replicated group stops ticking
// and heartbeating; proposals, reads, messages and a lost leader wake it; safety is untouched.
import { describe, expect, it } from 'vitest';
import { RaftNode } from './raft.js';
import { seededRandom } from './rng.js';
import { MemoryStorage } from './storage.js';
import {
  type Entry,
  HEARTBEAT_QUIESCE,
  type Message,
  MessageType,
  type NodeId,
  StateRole,
} from './types.js';

const voters = [1, 2, 3] as NodeId[];

/** Three nodes delivering messages at once (in order), each Ready persisted synchronously. */
class Group {
  readonly storages = new Map<NodeId, MemoryStorage>();
  readonly nodes = new Map<NodeId, RaftNode>();
  readonly applied = new Map<NodeId, Entry[]>();
  readonly down = new Set<NodeId>();
  sent: Message[] = [];

  constructor(private readonly quiesce = true) {
    for (const id of voters) {
      this.storages.set(id, new MemoryStorage({ voters, learners: [] }));
      this.applied.set(id, []);
      this.start(id);
    }
  }

  start(id: NodeId): void {
    this.down.delete(id);
    this.nodes.set(
      id,
      new RaftNode(
        {
          id,
          random: seededRandom(id * 101 + this.nodes.size),
          electionTicks: 10,
          heartbeatTicks: 2,
          quiesce: this.quiesce,
        },
        this.storages.get(id)!,
      ),
    );
  }

  crash(id: NodeId): void {
    this.down.add(id);
  }

  node(id: NodeId): RaftNode {
    return this.nodes.get(id)!;
  }

  leader(): RaftNode | undefined {
    let best: RaftNode | undefined;
    for (const [id, n] of this.nodes) {
      if (this.down.has(id) || n.currentRole !== StateRole.Leader) continue;
      if (!best || n.currentTerm > best.currentTerm) best = n;
    }
    return best;
  }

  /** Runs every node's Readys and delivers their messages until nothing is left. */
  settle(): void {
    for (let guard = 0; guard < 10_000; guard++) {
      let moved = false;
      for (const [id, n] of this.nodes) {
        if (this.down.has(id) || !n.hasReady()) continue;
        moved = true;
        const rd = n.ready();
        const s = this.storages.get(id)!;
        if (rd.snapshot) s.applySnapshot(rd.snapshot);
        s.append(rd.entries);
        if (rd.hardState) s.setHardState(rd.hardState);
        this.applied.get(id)!.push(...rd.committedEntries);
        n.advance();
        for (const m of rd.messages) {
          this.sent.push(m);
          if (!this.down.has(m.to)) this.node(m.to).step(m);
        }
      }
      if (!moved) return;
    }
    throw new Error('group did not settle');
  }

  tick(times = 1): void {
    for (let i = 0; i < times; i++) {
      for (const [id, n] of this.nodes) if (!this.down.has(id)) n.tick();
      this.settle();
    }
  }

  messagesDuring(ticks: number): Message[] {
    this.sent = [];
    this.tick(ticks);
    return this.sent;
  }

  dataOf(id: NodeId): string[] {
    return this.applied
      .get(id)!
      .filter((e) => e.data.byteLength > 0)
      .map((e) => Buffer.from(e.data).toString());
  }
}

function elected(g: Group): RaftNode {
  for (let i = 0; i < 100 && !g.leader(); i++) g.tick();
  const l = g.leader();
  if (!l) throw new Error('no leader');
  return l;
}

describe('quiescence', () => {
  it('an idle, fully replicated group goes silent on every node, and stays so', () => {
    const g = new Group();
    elected(g);
    g.tick(10);
    for (const id of voters) expect(g.node(id).isQuiesced).toBe(true);
    expect(g.messagesDuring(200)).toEqual([]);
    // The followers knew the commit index before going quiet.
    for (const id of voters) expect(g.node(id).commitIndex).toBe(g.leader()!.commitIndex);
  });

  it('without the option nothing quiesces (heartbeats every round)', () => {
    const g = new Group(false);
    elected(g);
    g.tick(10);
    expect(g.leader()!.isQuiesced).toBe(false);
    expect(g.messagesDuring(20).length).toBeGreaterThan(10);
  });

  it('a proposal wakes the group, commits everywhere, and the group quiesces again', () => {
    const g = new Group();
    const l = elected(g);
    g.tick(10);
    l.propose(Buffer.from('a'));
    expect(l.isQuiesced).toBe(false);
    g.settle();
    for (const id of voters) expect(g.node(id).isQuiesced).toBe(false);
    g.tick(10);
    for (const id of voters) {
      expect(g.dataOf(id)).toEqual(['a']);
      expect(g.node(id).isQuiesced).toBe(true);
    }
  });

  it('a quiesced leader ignores late acknowledgements but wakes for a ReadIndex', () => {
    const g = new Group();
    const l = elected(g);
    g.tick(10);
    const f = voters.find((id) => id !== l.id)!;
    l.step({
      type: MessageType.HeartbeatResp,
      from: f,
      to: l.id,
      term: l.currentTerm,
      logTerm: l.currentTerm,
      index: 0,
      entries: [],
      commit: 0,
      reject: false,
      rejectHint: 0,
      snapshot: null,
      context: '',
      readSeq: 0,
    } as unknown as Message);
    expect(l.isQuiesced).toBe(true);
    l.readIndex('r1');
    expect(l.isQuiesced).toBe(false);
  });

  it('a leader crash while quiesced: the followers told of it elect a new leader, nothing committed is lost', () => {
    const g = new Group();
    const old = elected(g);
    old.propose(Buffer.from('x'));
    g.settle();
    g.tick(10);
    for (const id of voters) expect(g.node(id).isQuiesced).toBe(true);
    const term = old.currentTerm;
    g.crash(old.id);
    // Nothing happens by itself: quiesced followers have no timer running.
    g.tick(100);
    expect(g.leader()).toBe(undefined);
    // The transport reports the lost link (or the controller fences the broker).
    for (const id of voters) if (id !== old.id) g.node(id).reportUnreachable(old.id);
    g.tick(30);
    const next = g.leader();
    expect(next).toBeDefined();
    expect(next!.id).not.toBe(old.id);
    expect(next!.currentTerm).toBeGreaterThan(term);
    next!.propose(Buffer.from('y'));
    g.settle();
    for (const id of voters) if (id !== old.id) expect(g.dataOf(id)).toEqual(['x', 'y']);
    // The old leader restarts from its storage and catches up as a follower.
    g.start(old.id);
    g.tick(40);
    expect(g.dataOf(old.id).slice(-2)).toEqual(['x', 'y']);
  });

  it('a leader with a member down does not quiesce; once the member is back, it does', () => {
    const g = new Group();
    const l = elected(g);
    g.tick(10);
    const f = voters.find((id) => id !== l.id)!;
    g.crash(f);
    l.reportUnreachable(f);
    expect(l.isQuiesced).toBe(false);
    const hb = g.messagesDuring(40).filter((m) => m.type === MessageType.Heartbeat);
    expect(hb.length).toBeGreaterThan(10);
    expect(hb.some((m) => m.context === HEARTBEAT_QUIESCE)).toBe(false);
    g.start(f);
    g.tick(30);
    expect(g.leader()).toBe(l);
    for (const id of voters) expect(g.node(id).isQuiesced).toBe(true);
  });

  it('a restarted follower (not quiesced, no heartbeats) wakes the group without a new term', () => {
    const g = new Group();
    const l = elected(g);
    g.tick(10);
    const term = l.currentTerm;
    const f = voters.find((id) => id !== l.id)!;
    g.crash(f);
    g.start(f); // the leader was not told (a fast restart)
    g.tick(60);
    expect(g.leader()).toBe(l);
    expect(l.currentTerm).toBe(term);
    for (const id of voters) expect(g.node(id).isQuiesced).toBe(true);
  });
});
