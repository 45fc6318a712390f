// RaftConfig.lazyCommitBroadcast: a commit advance sends no append by itself; followers learn
// the commit index from the next append or heartbeat. Compared with the default (an append to
// every follower at once), a lone proposal costs half the messages, and nothing else changes.
import { describe, expect, it } from 'vitest';
import { syncGroup } from './sync-group.js';
import { type Message, MessageType, type NodeId } from './types.js';

const voters = [1, 2, 3] as NodeId[];

/** Three nodes delivering messages at once (in order), each Ready persisted synchronously. */
function group(options: { lazy: boolean; quiesce?: boolean }) {
  return syncGroup(voters, () => ({
    electionTicks: 10,
    heartbeatTicks: 2,
    quiesce: options.quiesce ?? false,
    lazyCommitBroadcast: options.lazy,
  }));
}

const appends = (ms: readonly Message[]) => ms.filter((m) => m.type === MessageType.Append);

describe('lazyCommitBroadcast', () => {
  it('default: a committed proposal is followed by an empty append to each follower', () => {
    const g = group({ lazy: false });
    const l = g.leader();
    g.tick(3);
    const ms = g.propose('a');
    // Entries out, then the commit index out: 4 appends and 4 answers.
    expect(appends(ms).filter((m) => m.entries.length > 0)).toHaveLength(2);
    expect(appends(ms).filter((m) => m.entries.length === 0)).toHaveLength(2);
    expect(ms).toHaveLength(8);
    for (const f of g.followers()) expect(f.commitIndex).toBe(l.commitIndex);
  });

  it('lazy: only the entries and their answers; followers learn the commit at the next heartbeat', () => {
    const g = group({ lazy: true });
    const l = g.leader();
    g.tick(3);
    const before = l.commitIndex;
    const ms = g.propose('a');
    expect(l.commitIndex).toBe(before + 1);
    expect(ms.map((m) => m.type).sort()).toEqual([
      MessageType.Append,
      MessageType.Append,
      MessageType.AppendResp,
      MessageType.AppendResp,
    ]);
    expect(appends(ms).every((m) => m.entries.length === 1)).toBe(true);
    for (const f of g.followers()) expect(f.commitIndex).toBe(before);
    // heartbeatTicks 2: within two ticks every follower holds the commit index.
    g.tick(2);
    for (const f of g.followers()) expect(f.commitIndex).toBe(l.commitIndex);
  });

  it('lazy: the next append carries the commit index of the previous proposal', () => {
    const g = group({ lazy: true });
    const l = g.leader();
    g.tick(3);
    g.propose('a');
    const committedA = l.commitIndex;
    const ms = g.propose('b');
    for (const m of appends(ms)) expect(m.commit).toBe(committedA);
    for (const f of g.followers()) expect(f.commitIndex).toBe(committedA);
    expect(l.commitIndex).toBe(committedA + 1);
  });

  it('lazy with quiescence: the group still goes quiet with every follower at the commit index', () => {
    const g = group({ lazy: true, quiesce: true });
    const l = g.leader();
    g.tick(3);
    g.propose('a');
    g.tick(10);
    expect(l.isQuiesced).toBe(true);
    for (const f of g.followers()) {
      expect(f.isQuiesced).toBe(true);
      expect(f.commitIndex).toBe(l.commitIndex);
    }
  });
});
