import { describe, expect, it } from 'vitest';
import { RaftError, RaftErrorCode } from './errors.js';
import { RaftNode } from './raft.js';
import { seededRandom } from './rng.js';
import { MemoryStorage } from './storage.js';
import {
  type Message,
  MessageType,
  message,
  type NodeId,
  type Ready,
  StateRole,
  type Term,
} from './types.js';

const voters = [1, 2, 3] as NodeId[];

function node(
  id: number,
  extra: Record<string, unknown> = {},
): { raft: RaftNode; storage: MemoryStorage } {
  const storage = new MemoryStorage({ voters, learners: [] });
  const raft = new RaftNode({ id: id as NodeId, random: seededRandom(id), ...extra }, storage);
  return { raft, storage };
}

function persist(storage: MemoryStorage, rd: Ready): void {
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
}

/** Elects node 1 of three by hand; returns its messages for node 2 and 3 afterwards. */
function electOne(extra: Record<string, unknown> = {}) {
  const n = node(1, { preVote: false, ...extra });
  n.raft.campaign();
  let rd = n.raft.ready();
  persist(n.storage, rd);
  n.raft.advance();
  n.raft.step(
    message({ type: MessageType.VoteResp, from: 2 as NodeId, to: 1 as NodeId, term: 1 as Term }),
  );
  expect(n.raft.currentRole).toBe(StateRole.Leader);
  rd = n.raft.ready();
  persist(n.storage, rd);
  n.raft.advance();
  return n;
}

describe('RaftNode API', () => {
  it('refuses proposals on a follower with NOT_LEADER_OR_FOLLOWER (retriable)', () => {
    const { raft } = node(1);
    try {
      raft.propose(new Uint8Array(1));
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RaftError);
      expect((err as RaftError).code).toBe(RaftErrorCode.NOT_LEADER_OR_FOLLOWER);
      expect((err as RaftError).retriable).toBe(true);
    }
  });

  it('enforces the ready/advance protocol', () => {
    const { raft } = node(1);
    expect(() => raft.advance()).toThrow(/advance\(\) without ready/);
    raft.campaign();
    raft.ready();
    expect(() => raft.ready()).toThrow(/twice/);
    expect(raft.hasReady()).toBe(false);
    raft.advance();
  });

  it('rejects malformed messages without changing state', () => {
    const { raft } = node(1);
    const bad: Message[] = [
      message({ type: MessageType.Heartbeat, from: 2 as NodeId, to: 9 as NodeId, term: 1 as Term }),
      message({ type: MessageType.Heartbeat, from: 0 as NodeId, to: 1 as NodeId, term: 1 as Term }),
      message({ type: MessageType.Snapshot, from: 2 as NodeId, to: 1 as NodeId, term: 1 as Term }),
      message({
        type: MessageType.Append,
        from: 2 as NodeId,
        to: 1 as NodeId,
        term: 1 as Term,
        entries: [{ index: 5 as never, term: 1 as Term, type: 0, data: new Uint8Array(0) }],
      }),
    ];
    for (const m of bad) {
      expect(() => raft.step(m)).toThrow(RaftError);
    }
    expect(raft.currentTerm).toBe(0);
  });

  it('validates its configuration', () => {
    expect(() => node(1, { heartbeatTicks: 10, electionTicks: 10 })).toThrow(RaftError);
    expect(() => node(1, { inflightMsgsMax: 0 })).toThrow(/inflightMsgsMax/);
  });

  it('bounds in-flight appends to a silent follower by count and by bytes', () => {
    const n = electOne({ inflightMsgsMax: 4, appendBytesMax: 100, inflightBytesMax: 1000 });
    // Follower 2 acknowledges the no-op once, moving it to replicate; then it goes silent.
    n.raft.step(
      message({
        type: MessageType.AppendResp,
        from: 2 as NodeId,
        to: 1 as NodeId,
        term: 1 as Term,
        index: 1 as never,
      }),
    );
    n.raft.ready();
    n.raft.advance();
    let appendsTo2 = 0;
    for (let i = 0; i < 50; i++) {
      n.raft.propose(new Uint8Array(100));
      const rd = n.raft.ready();
      persist(n.storage, rd);
      n.raft.advance();
      appendsTo2 += rd.messages.filter(
        (m) => m.to === 2 && m.type === MessageType.Append && m.entries.length > 0,
      ).length;
    }
    expect(appendsTo2).toBe(4);
    const p = n.raft.status().progress.get(2 as NodeId)!;
    expect(p.inflightCount).toBe(4);
    expect(p.inflightBytes).toBeLessThanOrEqual(1000);
  });

  it('refuses proposals beyond uncommittedBytesMax with PROPOSAL_DROPPED', () => {
    const n = electOne({ uncommittedBytesMax: 1000 });
    n.raft.propose(new Uint8Array(600));
    expect(() => n.raft.propose(new Uint8Array(600))).toThrow(
      expect.objectContaining({ code: RaftErrorCode.PROPOSAL_DROPPED }),
    );
  });

  it('never copies entry data on the way to Ready', () => {
    const n = electOne();
    n.raft.step(
      message({
        type: MessageType.AppendResp,
        from: 2 as NodeId,
        to: 1 as NodeId,
        term: 1 as Term,
        index: 1 as never,
      }),
    );
    n.raft.ready();
    n.raft.advance();
    const data = new Uint8Array(1024);
    n.raft.propose(data);
    const rd = n.raft.ready();
    expect(rd.entries.at(-1)!.data).toBe(data);
    expect(rd.messages.find((m) => m.type === MessageType.Append)!.entries.at(-1)!.data).toBe(data);
  });

  it('recovers term, vote and configuration from storage after a restart', () => {
    const n = electOne();
    const again = new RaftNode({ id: 1 as NodeId, random: seededRandom(1) }, n.storage);
    expect(again.currentTerm).toBe(1);
    expect(again.status().vote).toBe(1);
    expect(again.status().conf.voters).toEqual(voters);
    expect(again.currentRole).toBe(StateRole.Follower);
  });
});
