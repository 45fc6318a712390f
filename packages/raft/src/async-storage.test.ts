// Asynchronous storage writes (RaftConfig.asyncStorageWrites): `advance()` means written, and
// only entries reported by `durableTo` count toward the leader's own match.
import { describe, expect, it } from 'vitest';
import { RaftNode } from './raft.js';
import { seededRandom } from './rng.js';
import { MemoryStorage } from './storage.js';
import {
  type Entry,
  EntryType,
  type LogIndex,
  MessageType,
  message,
  type NodeId,
  type Ready,
  StateRole,
  type Term,
} from './types.js';

function node(id: number, voters: number[], asyncStorageWrites = true) {
  const storage = new MemoryStorage({ voters: voters as NodeId[], learners: [] });
  const raft = new RaftNode(
    { id: id as NodeId, random: seededRandom(id), preVote: false, asyncStorageWrites },
    storage,
  );
  return { raft, storage };
}

/** Writes a Ready (what `advance()` now means) and returns its last entry, if any. */
function write(storage: MemoryStorage, raft: RaftNode): Ready {
  const rd = raft.ready();
  if (rd.snapshot) storage.applySnapshot(rd.snapshot);
  storage.append(rd.entries);
  if (rd.hardState) storage.setHardState(rd.hardState);
  raft.advance();
  return rd;
}

function last(rd: Ready): Entry {
  return rd.entries[rd.entries.length - 1]!;
}

describe('asynchronous storage writes', () => {
  it('a sole voter commits only what was reported durable, not what was written', () => {
    const { raft, storage } = node(1, [1]);
    raft.campaign();
    const rd1 = write(storage, raft);
    expect(raft.currentRole).toBe(StateRole.Leader);
    const noop = last(rd1);
    expect(raft.commitIndex).toBe(0);
    expect(raft.durableIndex).toBe(0);
    raft.durableTo(noop.index, noop.term);
    expect(raft.commitIndex).toBe(noop.index);

    raft.propose(new Uint8Array(10));
    const rd2 = write(storage, raft);
    raft.propose(new Uint8Array(10));
    const rd3 = write(storage, raft); // written while rd2's "fsync" runs
    expect(raft.commitIndex).toBe(noop.index);
    raft.durableTo(last(rd2).index, last(rd2).term);
    expect(raft.commitIndex).toBe(last(rd2).index);
    raft.durableTo(last(rd3).index, last(rd3).term);
    expect(raft.commitIndex).toBe(last(rd3).index);
    // A report behind the durable index, or of a term the entry does not have, changes nothing.
    raft.durableTo(last(rd2).index, last(rd2).term);
    raft.durableTo(last(rd3).index, 99 as Term);
    expect(raft.durableIndex).toBe(last(rd3).index);
  });

  it('without the option, advance() still means durable (the Ready contract)', () => {
    const { raft, storage } = node(1, [1], false);
    raft.campaign();
    const rd = write(storage, raft);
    expect(raft.commitIndex).toBe(last(rd).index);
  });

  it('a leader of three commits with two followers while its own write is not durable', () => {
    const { raft, storage } = node(1, [1, 2, 3]);
    raft.campaign();
    write(storage, raft);
    raft.step(
      message({ type: MessageType.VoteResp, from: 2 as NodeId, to: 1 as NodeId, term: 1 as Term }),
    );
    const rd = write(storage, raft);
    const noop = last(rd);
    const ack = (from: number) =>
      raft.step(
        message({
          type: MessageType.AppendResp,
          from: from as NodeId,
          to: 1 as NodeId,
          term: 1 as Term,
          index: noop.index,
        }),
      );
    ack(2);
    // One follower plus a leader copy that is only written: no quorum yet.
    expect(raft.commitIndex).toBe(0);
    ack(3);
    expect(raft.commitIndex).toBe(noop.index);
  });

  it('a truncation lowers the durable index; a report about the replaced entries is ignored', () => {
    const { raft, storage } = node(2, [1, 2, 3]);
    const entry = (index: number, term: number): Entry => ({
      index: index as LogIndex,
      term: term as Term,
      type: EntryType.Normal,
      data: new Uint8Array(1),
    });
    const append = (term: number, index: number, logTerm: number, entries: Entry[]) =>
      raft.step(
        message({
          type: MessageType.Append,
          from: 1 as NodeId,
          to: 2 as NodeId,
          term: term as Term,
          index: index as LogIndex,
          logTerm: logTerm as Term,
          entries,
        }),
      );
    append(1, 0, 0, [entry(1, 1), entry(2, 1), entry(3, 1)]);
    write(storage, raft);
    raft.durableTo(3 as LogIndex, 1 as Term);
    expect(raft.durableIndex).toBe(3);
    // A new leader of term 2 replaces entries 2 and 3.
    append(2, 1, 1, [entry(2, 2), entry(3, 2)]);
    expect(raft.durableIndex).toBe(1);
    write(storage, raft);
    // The fsync that covered the old entry 3 reports late: not about this log's entry 3.
    raft.durableTo(3 as LogIndex, 1 as Term);
    expect(raft.durableIndex).toBe(1);
    raft.durableTo(3 as LogIndex, 2 as Term);
    expect(raft.durableIndex).toBe(3);
  });

  it('entries not yet written (not advanced) cannot be reported durable', () => {
    const { raft, storage } = node(1, [1]);
    raft.campaign();
    const rd = raft.ready();
    storage.append(rd.entries);
    raft.durableTo(last(rd).index, last(rd).term);
    expect(raft.durableIndex).toBe(0);
    raft.advance();
    expect(raft.commitIndex).toBe(0);
  });
});
