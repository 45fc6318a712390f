// RaftConfig.sendPaused: flow control from outside the core. While it says a follower's link is
// backed up, the leader sends that follower no appends (heartbeats still go), so nothing piles up
// behind a slow link; once it clears, the next heartbeat response resumes the catch-up.
import { describe, expect, it } from 'vitest';
import { syncGroup } from './sync-group.js';
import { type Message, MessageType, type NodeId } from './types.js';

const voters = [1, 2, 3] as NodeId[];

function group(paused: Set<NodeId>) {
  return syncGroup(voters, () => ({
    electionTicks: 10,
    heartbeatTicks: 1,
    sendPaused: (to) => paused.has(to),
  }));
}

const appendsTo = (ms: readonly Message[], to: NodeId) =>
  ms.filter((m) => m.type === MessageType.Append && m.to === to && m.entries.length > 0);

describe('sendPaused', () => {
  it('holds appends to a paused follower (heartbeats go on) and resumes on the next heartbeat', () => {
    const paused = new Set<NodeId>();
    const g = group(paused);
    const l = g.leader();
    for (let i = 0; i < 3; i++) g.tick();
    const slow = voters.find((id) => id !== l.id)!;
    const other = voters.find((id) => id !== l.id && id !== slow)!;
    paused.add(slow);
    const start = l.commitIndex;
    let toSlow = 0;
    for (let i = 0; i < 20; i++) {
      const ms = g.propose(`r${i}`);
      expect(appendsTo(ms, other).length).toBeGreaterThan(0);
      toSlow += appendsTo(ms, slow).length;
      const tickMs = g.tick();
      toSlow += appendsTo(tickMs, slow).length;
      expect(tickMs.some((m) => m.type === MessageType.Heartbeat && m.to === slow)).toBe(true);
    }
    // The majority (leader and the other follower) commits everything; the paused one got none.
    expect(l.commitIndex).toBe(start + 20);
    expect(toSlow).toBe(0);
    expect(g.lastIndex(slow)).toBeLessThan(g.lastIndex(l.id));
    paused.delete(slow);
    g.tick();
    g.tick();
    expect(g.lastIndex(slow)).toBe(g.lastIndex(l.id));
  });

  it('never paused by default: the same proposals reach every follower at once', () => {
    const g = group(new Set());
    const l = g.leader();
    for (let i = 0; i < 3; i++) g.tick();
    for (const id of voters) {
      if (id === l.id) continue;
      expect(appendsTo(g.propose(`x${id}`), id).length).toBeGreaterThan(0);
    }
  });
});
