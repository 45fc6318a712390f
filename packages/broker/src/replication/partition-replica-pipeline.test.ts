// Placed before written (replica-store.ts, "Placed before written"; issue 9 latency): a Ready's
// entries go to the tail at once and their write is queued in the segment log, so the next
// Ready is taken while that write is still out. Asserted on the test cluster's manual driving
// (no ticks, no clock): with the leader's segment writes hung, a second proposal's appends leave
// for the followers before the first write returned.
import { MessageType } from '@streambus/raft';
import { afterEach, describe, expect, it } from 'vitest';
import { batch, ReplicaCluster } from './replica-test-cluster.js';
import { gatedHandles, type HandleGate } from './replication-test-fs.js';

let cluster: ReplicaCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('PartitionReplica: the next Ready does not wait for the previous write', () => {
  it("a leader's second proposal leaves for the followers while its first write is hung", async () => {
    const c = new ReplicaCluster({ seed: 71 });
    cluster = c;
    const gates = new Map<number, HandleGate>();
    for (const id of c.nodes.keys()) {
      const g = gatedHandles(c.node(id).fs, ['write', 'writev'], (p) => p.endsWith('.log'));
      c.node(id).fs = g.fs;
      gates.set(id, g.gate);
    }
    await c.startAll();
    const l = await c.waitLeader();
    await c.tick(3);
    const followers = [...c.nodes.keys()].filter((id) => id !== l.self);
    for (const f of followers) c.setLink(l.self, f, 'hold');
    gates.get(l.self)!.held = true;
    const acks = [l.propose(batch(1), -1), l.propose(batch(2), -1)];
    // The host of the test cluster is manual: drive the leader's rounds by hand, boundedly.
    void l.process();
    await turns(20);
    const b = l.propose(batch(3), -1);
    acks.push(b);
    void l.process();
    await turns(20);
    const appended = (to: number): number[] =>
      c.held
        .filter((h) => h.m.to === to && h.m.type === MessageType.Append)
        .flatMap((h) => h.m.entries.map((e) => e.index));
    // Placed: the tail ends at the third batch's entry; nothing of the three is written yet.
    const st = l.stats();
    const thirdIndex = st.tailStart + st.tailEntries - 1;
    const written = l.partitionLog.writtenEndOffset;
    expect(written).toBe(l.highWatermark);
    for (const f of followers) {
      // Both rounds' appends left, the second one's while the first write had not returned.
      const idx = appended(f);
      expect(idx).toContain(thirdIndex);
      expect(idx).toContain(thirdIndex - 2);
      expect(new Set(idx).size).toBe(idx.length);
    }
    gates.get(l.self)!.open();
    c.release();
    await c.settle();
    await c.tick(2);
    const results = await Promise.all(acks);
    expect(results.map((r) => r.baseOffset)).toEqual(
      [...results.map((r) => r.baseOffset)].sort((x, y) => x - y),
    );
    for (const r of c.live()) expect(r.highWatermark).toBe(l.highWatermark);
  });
});
