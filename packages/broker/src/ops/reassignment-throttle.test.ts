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

/** One append of `count` entries of `bytes` each, after entry `prev` (term 1). */
function appendMany(to: number, bytes: number, prev: number, count: number): Message {
  const entries: Entry[] = [];
  for (let i = 1; i <= count; i++) {
    entries.push({
      term: 1 as Term,
      index: (prev + i) as LogIndex,
      type: EntryType.Normal,
      data: new Uint8Array(bytes),
    });
  }
  return message({
    type: MessageType.Append,
    from: 1 as NodeId,
    to: to as NodeId,
    term: 1 as Term,
    index: prev as LogIndex,
    logTerm: 1 as Term,
    commit: (prev + count) as LogIndex,
    entries,
  });
}

/** One append of a single entry, index `seq`. */
function append(to: number, bytes: number, seq: number): Message {
  return appendMany(to, bytes, seq - 1, 1);
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
    expect(to4.map((s) => s.m.entries[0]!.index)).toEqual(to4.map((_, i) => i + 1));
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

  it('is backlogged from a second of budget queued until it drains (back-pressure on Raft)', () => {
    const t = setup(10_000);
    expect(t.throttle.backlogged(G, 4)).toBe(false);
    // The first second's credit starts at zero: 1 kB appends queue.
    for (let i = 1; i <= 9; i++) t.throttle.send(G, [append(4, 1000, i)]);
    expect(t.throttle.backlogged(G, 4)).toBe(false);
    for (let i = 10; i <= 12; i++) t.throttle.send(G, [append(4, 1000, i)]);
    expect(t.throttle.waitingBytes).toBeGreaterThanOrEqual(10_000);
    expect(t.throttle.backlogged(G, 4)).toBe(true);
    // Only that pair: another peer or partition is never backlogged.
    expect(t.throttle.backlogged(G, 2)).toBe(false);
    expect(t.throttle.backlogged(H, 4)).toBe(false);
    // 300 ms at 10 kB/s sends about 3 kB: below a second's worth again.
    for (let ms = 0; ms < 300; ms += 100) t.advance(100);
    expect(t.throttle.waitingBytes).toBeLessThan(10_000);
    expect(t.throttle.backlogged(G, 4)).toBe(false);
    // A budget of 0 (unlimited) is never backlogged, whatever waits.
    for (let i = 13; i <= 30; i++) t.throttle.send(G, [append(4, 1000, i)]);
    expect(t.throttle.backlogged(G, 4)).toBe(true);
    t.setBudget(0);
    expect(t.throttle.backlogged(G, 4)).toBe(false);
  });

  it('drops past its bounds (Raft resends) and counts it', () => {
    const t = setup(1, { queuedBytesMax: 3000, queuedMessagesMax: 100 });
    for (let i = 1; i <= 5; i++) t.throttle.send(G, [append(4, 1000, i)]);
    expect(t.throttle.waitingBytes).toBeLessThanOrEqual(3000);
    expect(t.throttle.stats.droppedMessages).toBeGreaterThanOrEqual(2);
  });

  it('splits an append larger than the credit: a burst is at most the budget plus one entry', () => {
    // 1 MiB appends of 64 KiB entries at 100 kB/s: whole appends would leave 1 MiB at once.
    const rate = 100_000;
    const entryBytes = 64 * 1024;
    const t = setup(rate);
    for (let a = 0; a < 4; a++) t.throttle.send(G, [appendMany(4, entryBytes, a * 16, 16)]);
    for (let ms = 0; ms < 60_000 && t.throttle.waitingBytes > 0; ms += 10) t.advance(10);
    expect(t.throttle.waitingBytes).toBe(0);
    const to4 = t.sent.filter((s) => s.m.to === 4);
    expect(to4.length).toBeGreaterThan(4);
    // No message carries more than the credit a full bucket holds plus one entry.
    for (const s of to4) {
      const bytes = s.m.entries.reduce((n, e) => n + e.data.byteLength, 0);
      expect(bytes).toBeLessThanOrEqual(rate + entryBytes);
    }
    // In any window of w ms the bytes sent stay within w's budget plus one second's burst
    // plus one entry.
    for (const from of [0, 500, 2000, 5000]) {
      for (const w of [10, 100, 1000, 3000]) {
        const bytes = to4
          .filter((s) => s.at >= from && s.at < from + w)
          .reduce((n, s) => n + s.m.entries.reduce((k, e) => k + e.data.byteLength, 0), 0);
        expect(bytes).toBeLessThanOrEqual((w * rate) / 1000 + rate + entryBytes);
      }
    }
    // The parts chain: every entry once, in order, each part after the previous one's last
    // entry, and none claims a commit past its own last entry's reach (the follower takes
    // min(commit, last new)).
    const indexes = to4.flatMap((s) => s.m.entries.map((e) => e.index));
    expect(indexes).toEqual(Array.from({ length: 64 }, (_, i) => i + 1));
    let prev = 0;
    for (const s of to4) {
      expect(s.m.index).toBe(prev);
      expect(s.m.logTerm).toBe(1);
      prev = s.m.entries[s.m.entries.length - 1]!.index;
    }
    expect(t.throttle.stats.throttledBytes).toBe(64 * entryBytes);
  });

  it('an append whose first entry alone exceeds the credit still sends that one entry', () => {
    const t = setup(1000);
    t.throttle.send(G, [appendMany(4, 5000, 0, 3)]);
    t.advance(100);
    expect(t.sent).toHaveLength(1);
    expect(t.sent[0]!.m.entries.map((e) => e.index)).toEqual([1]);
    expect(t.throttle.waitingBytes).toBe(10_000);
    // The overdraft (5 kB less 100 ms of credit) is paid back before the next entry leaves.
    for (let i = 0; i < 40; i++) t.advance(100);
    expect(t.sent).toHaveLength(1);
    for (let i = 0; i < 20; i++) t.advance(100);
    expect(t.sent.length).toBeGreaterThanOrEqual(2);
    expect(t.sent[1]!.m.index).toBe(1);
  });
});
