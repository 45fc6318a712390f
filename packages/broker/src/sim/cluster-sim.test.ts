import { encodeRecordBatch } from '@streambus/protocol';
import { asNodeId, asTerm, MessageType, message, seededRandom } from '@streambus/raft';
import { MemoryFileSystem } from '@streambus/storage';
import { describe, expect, it } from 'vitest';
import { runClusterSeed } from './cluster-sim.js';
import { checkPartition, PartitionObservations } from './partition-checker.js';
import { DEFAULT_REPLICA, replicaFactory } from './replicas.js';
import { clusterReplayCommand, runClusterSeeds } from './run.js';
import { SimDisk } from './sim-disk.js';
import { SimLoop } from './sim-loop.js';
import { SimNetwork } from './sim-network.js';
import type { SimReplicaFactory } from './sim-replica.js';
import { standInReplicaFactory } from './stand-in-replica.js';

const replica = replicaFactory(DEFAULT_REPLICA);
/** Sized so 200 seeds of the real replica and controller take well under a minute here. */
const FAULT_PHASE_MS = 800;

describe('cluster simulation', () => {
  it('a final check that throws fails its seed with the seed named, it does not escape the batch', async () => {
    // The run is deterministic: count the replicas' reads of one seed, then fail the last one
    // (the final check reads every replica back after the run).
    let reads = 0;
    let failAt = -1;
    const counting = (): SimReplicaFactory => ({
      name: standInReplicaFactory.name,
      idempotent: standInReplicaFactory.idempotent,
      async open(ctx) {
        const r = await standInReplicaFactory.open(ctx);
        const read = r.read.bind(r);
        r.read = (offset, bytesMax) => {
          if (++reads === failAt) return Promise.reject(new Error('read-back refused'));
          return read(offset, bytesMax);
        };
        return r;
      },
    });
    const options = { faultPhaseMs: 300, controller: false } as const;
    const clean = await runClusterSeeds(3, 1, { replica: counting(), ...options });
    expect(clean.failures).toEqual([]);
    failAt = reads;
    reads = 0;
    const s = await runClusterSeeds(3, 1, { replica: counting(), ...options });
    expect(s.seedsRun).toBe(1);
    expect(s.failures.map((f) => f.seed)).toEqual([3]);
    expect(s.failures[0]!.violations[0]).toMatchObject({ kind: 'exception' });
    expect(s.failures[0]!.violations[0]!.detail).toMatch(/final check: .*read-back refused/s);
  });

  it('200 seeds of faults keep every checker clean and every partition live', async () => {
    const s = await runClusterSeeds(1, 200, { replica, faultPhaseMs: FAULT_PHASE_MS });
    const summary = s.failures.slice(0, 3).map((f) => {
      const replay = clusterReplayCommand(f.seed, {
        replica: replica.name,
        faultPhaseMs: FAULT_PHASE_MS,
      });
      return `seed ${f.seed}: ${f.violations.map((v) => `${v.kind}: ${v.detail}`).join('; ')} (replay: ${replay})`;
    });
    expect(summary).toEqual([]);
    expect(s.seedsRun).toBe(200);
    // The faults the issue names were all injected, and the workload did real work.
    for (const kind of [
      'crash',
      'crash-during-fsync',
      'restart',
      'partition',
      'one-way-cut',
      'links-healed',
      'leader-transfer',
      'slow-disk',
      'weather-change',
      'message-lost',
      'message-duplicated',
      'idempotent-retry',
      // Quiescence (real replicas; idle spells on odd seeds): quiet groups, quiesced leaders crashed.
      'quiesced-leader-tick',
      'crash-quiesced-leader',
      // Pipelined persistence: crashes with entries written and their fsync not landed.
      'crash-write-unsynced',
      'crash-all',
      // A rack's power failing: fsyncs slow on every broker, then cut right after an acks=all
      // acknowledgement, then back (the fault that catches unsafeDurableAtWrite).
      'rack-brownout',
      'rack-power-cut',
      'rack-power-restored',
    ]) {
      expect(s.faults[kind] ?? 0, kind).toBeGreaterThan(0);
    }
    expect(s.ackedAll).toBeGreaterThan(1000);
    expect(s.ackedLeader).toBeGreaterThan(500);
    expect(s.consumed).toBeGreaterThan(1000);
    expect(s.topicsCreated).toBeGreaterThan(200);
  }, 120_000);

  it('seeds that once found a follower serving uncommitted records below its high watermark stay clean', async () => {
    // A follower's commit index covered entries it held only in memory while its log still had
    // the deposed leader's batches at those indexes; the high watermark now follows the
    // committed entries a Ready handed out (partition-replica.ts, `committedDurable`).
    for (const seed of [2255, 3070]) {
      // The chaos these seeds had when they failed: before rack power cuts existed.
      const r = await runClusterSeed({ seed, replica, rackPowerCuts: false });
      expect(
        r.violations.map((v) => `${v.kind}: ${v.detail}`),
        `seed ${seed}`,
      ).toEqual([]);
    }
  }, 60_000);

  it('a seed replays exactly', async () => {
    const run = async () => {
      const lines: string[] = [];
      const r = await runClusterSeed({
        seed: 7,
        replica,
        faultPhaseMs: FAULT_PHASE_MS,
        trace: (l) => lines.push(l),
      });
      return { lines, r: { ...r, faults: { ...r.faults } } };
    };
    const a = await run();
    const b = await run();
    expect(a.lines.length).toBeGreaterThan(5);
    expect(b.lines).toEqual(a.lines);
    expect(b.r).toEqual(a.r);
  });

  /**
   * Runs a broken variant; it must be caught as a lost acknowledgement (or a read below one, or
   * a consumed record lost later: the same lost durability, seen by a consumer first).
   */
  async function expectAckLossCaught(
    seeds: number,
    unsafe: { unsafeAckOnLeaderWrite?: boolean; unsafeDurableAtWrite?: boolean },
    seedStart = 1,
  ): Promise<void> {
    const s = await runClusterSeeds(seedStart, seeds, {
      replica,
      faultPhaseMs: FAULT_PHASE_MS,
      ...unsafe,
      controller: false,
    });
    const kinds = new Set(s.failures.flatMap((f) => f.violations.map((v) => v.kind)));
    expect(s.failures.length).toBeGreaterThan(0);
    // Caught as a lost acknowledgement at the end, or earlier by the leader-read checker (a
    // leader's high watermark below an "acknowledged" offset stops the seed first), or as a
    // record a consumer read below that high watermark and the final log lost.
    expect(
      kinds.has('acked-record-lost') ||
        kinds.has('leader-read-below-acked') ||
        kinds.has('consumed-record-lost'),
    ).toBe(true);
  }

  /** A seed that lost an acknowledged record, seen at the end, by a leader read or a consumer. */
  const lostDurability = (f: { violations: readonly { kind: string }[] }) =>
    f.violations.some(
      (v) =>
        v.kind === 'acked-record-lost' ||
        v.kind === 'consumed-record-lost' ||
        v.kind === 'leader-read-below-acked',
    );

  it('the broken variant (acks=all answered at the leader write) is caught', async () => {
    await expectAckLossCaught(30, { unsafeAckOnLeaderWrite: true });
  });

  it('the broken variant counting entries durable at write (no fsync report) is caught', async () => {
    // A loss needs a majority to lose an acknowledged entry between its write and its fsync:
    // the rack power cut (slow fsyncs, then the power goes right after an acknowledgement)
    // does that; about 1 seed in 5 catches it (7 of seeds 1-25; without rack power cuts, 1 in 80
    // and none of seeds 1-25).
    const s = await runClusterSeeds(1, 25, {
      replica,
      faultPhaseMs: FAULT_PHASE_MS,
      unsafeDurableAtWrite: true,
      controller: false,
    });
    const lost = s.failures.filter(lostDurability);
    expect(lost.length).toBeGreaterThanOrEqual(3);
    expect(s.faults['rack-power-cut'] ?? 0).toBeGreaterThan(0);
  });

  it('the broken variant without leader read-gating is caught (a new leader served below an acknowledged offset)', async () => {
    // Rare: a new leader elected before it heard the commit index and read at once. 2 of seeds
    // 1-160 catch it (143, 157) since a candidate's vote requests leave before its hard state is
    // saved (elections end sooner); before that 4 of 1-200 did (8, 134, 143, 147), so 60 seeds
    // were enough then.
    const s = await runClusterSeeds(1, 160, {
      replica,
      faultPhaseMs: FAULT_PHASE_MS,
      unsafeUngatedLeaderReads: true,
      controller: false,
    });
    const kinds = new Set(s.failures.flatMap((f) => f.violations.map((v) => v.kind)));
    expect(kinds.has('leader-read-below-acked')).toBe(true);
  });

  it('the duplicate checker catches retried batches appended twice (the stand-in does not dedupe)', async () => {
    const s = await runClusterSeeds(1, 30, {
      replica: { ...standInReplicaFactory, idempotent: true },
      faultPhaseMs: FAULT_PHASE_MS,
      controller: false,
      // A test of the checker: the chaos these seeds were chosen with (few of them retry into a
      // duplicate; with rack power cuts the stand-in spends more of the run down).
      rackPowerCuts: false,
    });
    const kinds = new Set(s.failures.flatMap((f) => f.violations.map((v) => v.kind)));
    expect(kinds.has('idempotent-duplicate')).toBe(true);
  });

  it('the stand-in test double passes the same checks (harness vs replica)', async () => {
    const s = await runClusterSeeds(1000, 20, {
      replica: standInReplicaFactory,
      faultPhaseMs: FAULT_PHASE_MS,
      controller: false,
    });
    expect(s.failures.map((f) => f.violations[0])).toEqual([]);
  });
});

describe('harness pieces', () => {
  it('the partition checker reports divergence, gaps, lost acknowledged and consumed records', () => {
    const batch = (base: number, ids: string[]) =>
      encodeRecordBatch(
        ids.map((id) => ({ value: Buffer.from(id) })),
        { baseOffset: base, timestamp: 1 },
      );
    const good = Buffer.concat([batch(0, ['a', 'b']), batch(2, ['c'])]);
    const obs = new PartitionObservations('p');
    obs.observeAck({ baseOffset: 2, ids: ['c'], atMs: 0 });
    obs.observeConsumed(1, 'b', 1);
    expect(
      checkPartition(
        obs,
        new Map([
          [1, good],
          [2, good.subarray(0, batch(0, ['a', 'b']).length)],
        ]),
        { idempotent: true },
      ),
    ).toEqual([]);
    const kinds = (logs: Map<number, Buffer>) =>
      checkPartition(obs, logs, { idempotent: true }).map((v) => v.kind);
    const other = Buffer.concat([batch(0, ['a', 'x']), batch(2, ['c'])]);
    expect(
      kinds(
        new Map([
          [1, good],
          [2, other],
        ]),
      ),
    ).toContain('replicas-diverge');
    const gap = Buffer.concat([batch(0, ['a', 'b']), batch(3, ['c'])]);
    expect(kinds(new Map([[1, gap]]))).toEqual(['offsets-not-contiguous', 'acked-record-lost']);
    const lost = Buffer.concat([batch(0, ['a', 'z']), batch(2, ['y'])]);
    expect(kinds(new Map([[1, lost]]))).toEqual(['acked-record-lost', 'consumed-record-lost']);
  });

  it('the network copies messages, cuts one way only, and keeps a link FIFO unless reordering', async () => {
    const loop = new SimLoop();
    const net = new SimNetwork(loop, seededRandom(3));
    net.weather = { delayMinMs: 1, delayMaxMs: 30, lossRate: 0, dupRate: 0, reorder: false };
    const a = net.transport(asNodeId(1));
    const b = net.transport(asNodeId(2));
    const got: Array<[number, number]> = [];
    a.setMessageHandler((_g, m) => got.push([m.from, m.index]));
    b.setMessageHandler((_g, m) => got.push([m.from, m.index]));
    const data = new Uint8Array([1, 2, 3]);
    const msg = (from: number, to: number, index: number) =>
      message({
        type: MessageType.Append,
        from: asNodeId(from),
        to: asNodeId(to),
        term: asTerm(1),
        index: index as never,
        entries: [{ term: asTerm(1), index: 1 as never, type: 0, data }],
      });
    const key = { topicId: 1, partition: 0 };
    a.send(
      key,
      [1, 2, 3, 4, 5].map((i) => msg(1, 2, i)),
    );
    net.cut(2, 1);
    b.send(key, [msg(2, 1, 9)]);
    let delivered: Uint8Array | null = null;
    b.setMessageHandler((_g, m) => {
      got.push([m.from, m.index]);
      delivered = m.entries[0]!.data;
    });
    await loop.run(
      () => false,
      (e) => {
        throw e;
      },
    );
    expect(got).toEqual([
      [1, 1],
      [1, 2],
      [1, 3],
      [1, 4],
      [1, 5],
    ]);
    expect(delivered).not.toBe(data);
    expect(Array.from(delivered!)).toEqual([1, 2, 3]);
    expect(net.counters.blocked).toBe(1);
  });

  it('a crash while an fsync is delayed loses the write, and the caller never hears back', async () => {
    const loop = new SimLoop();
    const disk = new SimDisk(loop, 1, () => 50);
    const seen: string[] = [];
    const scenario = async () => {
      const fs = disk.fs();
      const h = await fs.open('/f', 'create');
      await fs.syncDir('/');
      await h.write(Buffer.from('durable'), 0);
      await h.sync();
      seen.push(`synced at ${loop.now}`);
      await h.write(Buffer.from('-lost'), 7);
      loop.at(10, () => disk.crash('drop-unsynced'));
      await h.sync();
      seen.push('second sync answered');
    };
    loop.at(0, () => {
      void scenario();
    });
    await loop.run(
      () => false,
      (e) => {
        throw e;
      },
    );
    expect(seen).toEqual(['synced at 100']);
    expect(disk.syncsLostInCrash).toBe(1);
    expect(disk.memory).toBeInstanceOf(MemoryFileSystem);
    expect((await disk.memory.readFile('/f')).toString()).toBe('durable');
  });
});
