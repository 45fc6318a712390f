// Placed before written (replica-store.ts, "Placed before written"; issue 9 latency): a Ready's
// entries go to the tail at once and their write is queued in the segment log, so the next
// Ready is taken while that write is still out. Asserted on the test cluster's manual driving
// (no ticks, no clock): with the leader's segment writes hung, a second proposal's appends leave
// for the followers before the first write returned.
import { MessageType } from '@streambus/raft';
import type { FileHandle, MemoryFileSystem, OpenMode } from '@streambus/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { batch, ReplicaCluster } from './replica-test-cluster.js';

let cluster: ReplicaCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

interface WriteGate {
  held: boolean;
  open(): void;
}

/** A file system whose segment-file writes wait while `gate.held`. */
function gatedWrites(fs: MemoryFileSystem): { fs: MemoryFileSystem; gate: WriteGate } {
  const waiting: Array<() => void> = [];
  const gate: WriteGate = {
    held: false,
    open() {
      gate.held = false;
      for (const w of waiting.splice(0)) w();
    },
  };
  const wrapHandle = (h: FileHandle, path: string): FileHandle =>
    new Proxy(h, {
      get(target, key) {
        const v = Reflect.get(target, key);
        if ((key === 'write' || key === 'writev') && path.endsWith('.log')) {
          return async (...args: unknown[]) => {
            if (gate.held) await new Promise<void>((r) => waiting.push(r));
            return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  const wrapped = new Proxy(fs, {
    get(target, key) {
      if (key === 'open') {
        return async (path: string, mode: OpenMode) =>
          wrapHandle(await target.open(path, mode), path);
      }
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { fs: wrapped, gate };
}

const turns = async (n: number): Promise<void> => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

describe('PartitionReplica: the next Ready does not wait for the previous write', () => {
  it("a leader's second proposal leaves for the followers while its first write is hung", async () => {
    const c = new ReplicaCluster({ seed: 71 });
    cluster = c;
    const gates = new Map<number, WriteGate>();
    for (const id of c.nodes.keys()) {
      const g = gatedWrites(c.node(id).fs);
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
