import { describe, expect, it } from 'vitest';
import { ReplicaStageProbe, StageTrace } from './stage-trace.js';

describe('stage trace (SBDIAG_REPLICA_STAGES)', () => {
  it('times each stage of a leader round once, and a follower acknowledgement per Ready', () => {
    const trace = new StageTrace();
    const leader = new ReplicaStageProbe(trace);
    leader.proposed();
    leader.proposed(); // the round's first proposal counts
    const at = leader.readyTaken(true, 5);
    leader.readyTaken(true, 9);
    const written = leader.written(true, at);
    leader.durable(true, written, 5);
    leader.acked(9); // covers both Readys
    leader.acked(9); // a repeat counts nothing
    leader.committed(5);
    leader.committed(9);
    const s = trace.summary();
    expect(s['L.toReady']!.n).toBe(1);
    expect(s['L.write']!.n).toBe(1);
    expect(s['L.fsync']!.n).toBe(1);
    expect(s['L.ownDurable']!.n).toBe(1);
    expect(s['L.firstAck']!.n).toBe(2);
    expect(s['L.commit']!.n).toBe(2);
    expect(s['L.commit']!.p99).toBeGreaterThanOrEqual(s['L.commit']!.p50);
    const follower = new ReplicaStageProbe(trace);
    follower.appendStepped();
    follower.readyTaken(false, 3);
    expect(trace.summary()['F.toReady']!.n).toBe(1);
  });

  it('keeps a bounded ring per stage and a bounded number of stages', () => {
    const trace = new StageTrace();
    for (let i = 0; i < 30_000; i++) trace.record('x', i);
    const x = trace.summary().x!;
    expect(x.n).toBe(30_000);
    expect(x.max).toBe(29_999);
    expect(x.p50).toBeGreaterThanOrEqual(10_000); // the oldest samples were overwritten
    for (let i = 0; i < 40; i++) trace.record(`s${i}`, 1);
    expect(Object.keys(trace.summary()).length).toBe(32);
  });
});
