// A test group of RaftNodes over MemoryStorage with no network and no clock: every Ready is
// persisted synchronously and its messages stepped into their targets at once, in order, until
// nothing moves. For tests of one rule's effect on the messages a proposal or a tick causes
// (lazy-commit.test.ts, send-paused.test.ts); the simulator (./sim) is for everything timed.
import type { RaftConfigInput } from './config.js';
import { RaftNode } from './raft.js';
import { seededRandom } from './rng.js';
import { MemoryStorage } from './storage.js';
import { type Message, type NodeId, StateRole } from './types.js';

export interface SyncGroup {
  readonly nodes: ReadonlyMap<NodeId, RaftNode>;
  /** Ticks every node `times` times, settling after each; returns the messages sent. */
  tick(times?: number): Message[];
  /** The leader, ticking until there is one (at most 100 ticks). */
  leader(): RaftNode;
  /** Proposes `data` on the leader and settles; returns the messages sent. */
  propose(data: string): Message[];
  followers(): RaftNode[];
  /** The last index of `id`'s storage. */
  lastIndex(id: NodeId): number;
}

/** `config(id)` is each node's configuration beyond its id and a seeded random source. */
export function syncGroup(
  voters: readonly NodeId[],
  config: (id: NodeId) => Omit<RaftConfigInput, 'id' | 'random'>,
): SyncGroup {
  const nodes = new Map<NodeId, RaftNode>();
  const storages = new Map<NodeId, MemoryStorage>();
  let sent: Message[] = [];
  for (const id of voters) {
    storages.set(id, new MemoryStorage({ voters: [...voters], learners: [] }));
    nodes.set(
      id,
      new RaftNode({ ...config(id), id, random: seededRandom(id * 7) }, storages.get(id)!),
    );
  }
  const settle = (): void => {
    for (let guard = 0; guard < 10_000; guard++) {
      let moved = false;
      for (const [id, n] of nodes) {
        if (!n.hasReady()) continue;
        moved = true;
        const rd = n.ready();
        const s = storages.get(id)!;
        s.append(rd.entries);
        if (rd.hardState) s.setHardState(rd.hardState);
        n.advance();
        for (const m of rd.messages) {
          sent.push(m);
          nodes.get(m.to)!.step(m);
        }
      }
      if (!moved) return;
    }
    throw new Error('group did not settle');
  };
  const tick = (times = 1): Message[] => {
    sent = [];
    for (let i = 0; i < times; i++) {
      for (const n of nodes.values()) n.tick();
      settle();
    }
    return sent;
  };
  const leader = (): RaftNode => {
    for (let i = 0; i < 100; i++) {
      for (const n of nodes.values()) if (n.currentRole === StateRole.Leader) return n;
      tick();
    }
    throw new Error('no leader');
  };
  return {
    nodes,
    tick,
    leader,
    propose(data) {
      sent = [];
      leader().propose(Buffer.from(data));
      settle();
      return sent;
    },
    followers: () => [...nodes.values()].filter((n) => n.currentRole !== StateRole.Leader),
    lastIndex: (id) => storages.get(id)!.lastIndex(),
  };
}
