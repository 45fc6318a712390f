import {
  type Entry,
  EntryType,
  type LogIndex,
  type Message,
  MessageType,
  message,
  type NodeId,
  type Term,
} from '@streambus/raft';
import { describe, expect, it } from 'vitest';
import type { GroupKey } from '../cluster/contract.js';
import { ReassignmentThrottle } from './reassignment-throttle.js';

const G: GroupKey = { topicId: 1, partition: 0 };
const H: GroupKey = { topicId: 1, partition: 1 };

function append(to: number, bytes: number, seq: number): Message {
  const e: Entry = {
    term: 1 as Term,
    index: seq as LogIndex,
    type: EntryType.Normal,
    data: new Uint8Array(bytes),
  };
  return message({
    type: MessageType.Append,
    from: 1 as NodeId,
    to: to as NodeId,
    term: 1 as Term,
    index: seq as LogIndex,
    entries: [e],
  });
}

function setup(
  rate: number,
  options: { queuedBytesMax?: number; queuedMessagesMax?: number } = {},
) {
  let now = 0;
  let budget = rate;
  const sent: Array<{ group: GroupKey; m: Message; at: number }> = [];
  const throttle = new ReassignmentThrottle({
    bytesPerSecond: () => budget,
    // Broker 4 joins partition 0 by reassignment.
    throttled: (group, to) => group.partition === 0 && to === 4,
    send: (group, messages) => {
      for (const m of messages) sent.push({ group, m, at: now });
    },
    nowMs: () => now,
    ...options,
  });
  return {
    throttle,
    sent,
    advance(ms: number) {
      now += ms;
      throttle.pump();
    },
    setBudget(b: number) {
      budget = b;
    },
  };
}

describe('the reassignment throttle', () => {
  it('holds catch-up traffic to the budget, in order, and lets everything else through', () => {
    const t = setup(10_000);
    for (let i = 1; i <= 50; i++) t.throttle.send(G, [append(4, 1000, i)]);
    // Other peers and other partitions are not throttled.
    t.throttle.send(G, [append(2, 1000, 1)]);
    t.throttle.send(H, [append(4, 1000, 1)]);
    expect(t.sent.filter((s) => s.m.to === 2 || s.group === H)).toHaveLength(2);
    for (let ms = 0; ms < 3000; ms += 100) t.advance(100);
    const to4 = t.sent.filter((s) => s.group === G && s.m.to === 4);
    // 3 s at 10 kB/s: about 30 messages of 1 kB (one more may leave on credit).
    expect(to4.length).toBeGreaterThanOrEqual(28);
    expect(to4.length).toBeLessThanOrEqual(32);
    expect(to4.map((s) => s.m.index)).toEqual(to4.map((_, i) => i + 1));
    const bytesInFirstSecond = to4.filter((s) => s.at <= 1000).length * 1000;
    expect(bytesInFirstSecond).toBeLessThanOrEqual(11_000);
    expect(t.throttle.waitingBytes).toBe((50 - to4.length) * 1000);
  });

  it('a heartbeat behind queued appends waits its turn; budget 0 flushes everything', () => {
    const t = setup(1000);
    t.throttle.send(G, [append(4, 5000, 1)]);
    t.throttle.send(G, [append(4, 5000, 2)]);
    const hb = message({
      type: MessageType.Heartbeat,
      from: 1 as NodeId,
      to: 4 as NodeId,
      term: 1 as Term,
    });
    t.throttle.send(G, [hb]);
    // The first append leaves on 100 ms of credit (a message may overdraw it once), then the
    // next waits until the 5 kB overdraft is paid back, and the heartbeat waits behind it.
    t.advance(100);
    t.advance(100);
    expect(t.sent.map((s) => s.m.type)).toEqual(['append']);
    t.setBudget(0);
    t.advance(1);
    expect(t.sent.map((s) => s.m.type)).toEqual(['append', 'append', 'heartbeat']);
    expect(t.throttle.waitingBytes).toBe(0);
  });

  it('drops past its bounds (Raft resends) and counts it', () => {
    const t = setup(1, { queuedBytesMax: 3000, queuedMessagesMax: 100 });
    for (let i = 1; i <= 5; i++) t.throttle.send(G, [append(4, 1000, i)]);
    expect(t.throttle.waitingBytes).toBeLessThanOrEqual(3000);
    expect(t.throttle.stats.droppedMessages).toBeGreaterThanOrEqual(2);
  });
});
