// The adaptive batching policy (batch-policy.ts), pure: given a partition's flow, when its open
// batch closes. A model of one turn's burst (a publish loop's window appended in one turn) shows
// it leaves as overlapping requests, never more than inflightMax, and that a window settles on
// two overlapping halves round after round.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AdaptiveBatchPolicy, type PartitionFlow } from './batch-policy.js';

const policy = new AdaptiveBatchPolicy(5, 64);
const flow = (f: Partial<PartitionFlow>): PartitionFlow => ({
  inflightRequests: 0,
  inflightRecords: 0,
  recentRecords: 0,
  blocked: false,
  openRecords: 0,
  idle: (f.inflightRequests ?? 0) === 0,
  ...f,
});

interface Model {
  inflight: number[];
  recent: number;
  open: number;
  blocked: boolean;
}

const flowOf = (m: Model): PartitionFlow => ({
  inflightRequests: m.inflight.length,
  inflightRecords: m.inflight.reduce((a, b) => a + b, 0),
  recentRecords: m.recent,
  blocked: m.blocked,
  openRecords: m.open,
  idle: m.inflight.length === 0,
});

/** Closes the open batch and sends it (as producer.ts closeBatch; `split`: within a turn). */
function close(p: AdaptiveBatchPolicy, m: Model, sent: number[], split = false): void {
  m.inflight.push(m.open);
  m.recent = p.observe(m.recent, flowOf(m).inflightRecords, split);
  sent.push(m.open);
  m.open = 0;
}

/** Appends `records` in one turn, then the turn ends: returns the sizes of the batches sent. */
function turn(p: AdaptiveBatchPolicy, m: Model, records: number): number[] {
  const sent: number[] = [];
  for (let i = 0; i < records; i++) {
    m.open++;
    if (p.closeOnAppend(flowOf(m))) close(p, m, sent, true);
  }
  if (p.closeWhenDue(flowOf(m))) close(p, m, sent);
  return sent;
}

/** The oldest request is answered; a batch waiting for that goes (closeIfDue). */
function answer(p: AdaptiveBatchPolicy, m: Model, sent: number[]): number {
  const n = m.inflight.shift()!;
  if (p.closeWhenDue(flowOf(m))) close(p, m, sent);
  return n;
}

describe('AdaptiveBatchPolicy', () => {
  it('an idle partition sends a small turn as one batch at the end of the turn', () => {
    expect(policy.closeOnAppend(flow({ openRecords: 10 }))).toBe(false);
    expect(policy.closeWhenDue(flow({ openRecords: 10 }))).toBe(true);
    expect(policy.closeWhenDue(flow({ openRecords: 0 }))).toBe(false);
    expect(turn(policy, { inflight: [], recent: 0, open: 0, blocked: false }, 10)).toEqual([10]);
  });

  it('splits a turn at half the recent volume (at least splitRecordsMin)', () => {
    expect(policy.splitRecords(flow({}))).toBe(64);
    expect(policy.splitRecords(flow({ recentRecords: 1000 }))).toBe(500);
    const m: Model = { inflight: [], recent: 1000, open: 0, blocked: false };
    // The first half goes at 500 (a split within the turn does not decay the recent volume), so
    // the second closes at 500 too and nothing is left to go as a third, tiny request.
    expect(turn(policy, m, 1000)).toEqual([500, 500]);
    expect(m.open).toBe(0);
    expect(m.recent).toBe(1000);
    // A first burst, no history: splits at 64, then at half the volume seen so far, up to the
    // in-flight bound; the rest waits for an answer.
    const first: Model = { inflight: [], recent: 0, open: 0, blocked: false };
    expect(turn(policy, first, 1000)).toEqual([64, 64, 64, 96, 144]);
    expect(first.open).toBe(568);
  });

  it('a window of 1,000 settles on two overlapping halves, round after round', () => {
    const m: Model = { inflight: [], recent: 0, open: 0, blocked: false };
    turn(policy, m, 1000);
    const perRound: number[] = [];
    for (let round = 0; round < 20; round++) {
      let freed = 0;
      let requests = 0;
      while (freed < 1000) {
        const sent: number[] = [];
        const n = answer(policy, m, sent);
        freed += n;
        requests += sent.length + turn(policy, m, n).length;
      }
      perRound.push(requests);
      // Never more outstanding than the window.
      expect(m.inflight.reduce((a, b) => a + b, 0) + m.open).toBe(1000);
    }
    for (const r of perRound.slice(5)) expect(r).toBe(2);
    expect(m.recent).toBe(1000);
  });

  it('a paced sender (10 records a turn, a request or two out) sends every turn', () => {
    const m: Model = { inflight: [], recent: 0, open: 0, blocked: false };
    for (let i = 0; i < 50; i++) {
      expect(turn(policy, m, 10)).toEqual([10]);
      if (m.inflight.length > 1) answer(policy, m, []);
    }
  });

  it('while requests are out, a small turn waits for an answer instead of fraying the halves', () => {
    const waiting = flow({ inflightRequests: 1, inflightRecords: 500, recentRecords: 1000 });
    expect(policy.closeWhenDue({ ...waiting, openRecords: 100 })).toBe(false);
    expect(policy.closeWhenDue({ ...waiting, openRecords: 250 })).toBe(true);
    expect(
      policy.closeWhenDue({ ...waiting, inflightRequests: 0, openRecords: 1, idle: true }),
    ).toBe(true);
    // The topic's sticky partition with nothing of its own out, while the topic has: it waits.
    expect(policy.closeWhenDue({ ...waiting, inflightRequests: 0, openRecords: 1 })).toBe(false);
  });

  it('accumulates while it cannot send: at the in-flight bound or during a recovery', () => {
    const full = flow({ inflightRequests: 5, inflightRecords: 500, openRecords: 100_000 });
    expect(policy.canSendNow(full)).toBe(false);
    expect(policy.splitRecords(full)).toBe(Number.POSITIVE_INFINITY);
    expect(policy.closeOnAppend(full)).toBe(false);
    expect(policy.closeWhenDue(full)).toBe(false);
    const recovering = flow({ blocked: true, openRecords: 100_000 });
    expect(policy.closeOnAppend(recovering)).toBe(false);
    expect(policy.closeWhenDue(recovering)).toBe(false);
  });

  it('recentRecords follows the outstanding volume up at once and down by a 64th per close', () => {
    expect(policy.observe(0, 1000)).toBe(1000);
    expect(policy.observe(1000, 10)).toBe(984);
    expect(policy.observe(1000, 990)).toBe(990);
    // Not at a split within a turn: the rest of the turn is not appended yet.
    expect(policy.observe(1000, 500, true)).toBe(1000);
    expect(policy.observe(100, 500, true)).toBe(500);
  });

  it('any turn: batches in order cover it, at most inflightMax are out, splits are no smaller than splitRecordsMin', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 5 }),
        fc.integer({ min: 1, max: 200 }),
        fc.array(fc.integer({ min: 1, max: 2000 }), { maxLength: 5 }),
        fc.integer({ min: 0, max: 20_000 }),
        fc.integer({ min: 1, max: 20_000 }),
        (inflightMax, splitMin, out, recent, records) => {
          const p = new AdaptiveBatchPolicy(inflightMax, splitMin);
          const m: Model = { inflight: out.slice(0, inflightMax), recent, open: 0, blocked: false };
          const before = m.inflight.length;
          const sizes = turn(p, m, records);
          expect(before + sizes.length).toBeLessThanOrEqual(inflightMax);
          const sent = sizes.reduce((a, b) => a + b, 0);
          expect(sent + m.open).toBe(records);
          for (const [i, n] of sizes.entries()) {
            expect(n).toBeGreaterThan(0);
            if (i < sizes.length - 1) expect(n).toBeGreaterThanOrEqual(splitMin);
          }
          // Left open only behind requests in flight (an answer lets it go).
          if (m.open > 0) expect(m.inflight.length).toBeGreaterThan(0);
        },
      ),
    );
  });

  it('with one request in flight (no idempotence) a turn is never split: a half could not overlap', () => {
    const one = new AdaptiveBatchPolicy(1, 64);
    expect(one.splitRecords(flow({ recentRecords: 1000 }))).toBe(Number.POSITIVE_INFINITY);
    expect(turn(one, { inflight: [], recent: 1000, open: 0, blocked: false }, 1000)).toEqual([
      1000,
    ]);
  });

  it('refuses a bound that is not a positive integer', () => {
    expect(() => new AdaptiveBatchPolicy(0, 64)).toThrow(/inflightMax/);
    expect(() => new AdaptiveBatchPolicy(5, 0.5)).toThrow(/splitRecordsMin/);
  });
});
