import {
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  splitBatches,
  verifyBatchCrc,
} from '@streambus/protocol';
import {
  asNodeId,
  ConfChangeType,
  type LogIndex,
  MessageType,
  message,
  type Term,
} from '@streambus/raft';
import type { MemoryFileSystem } from '@streambus/storage';
import { afterEach, describe, expect, it } from 'vitest';
import { ByteBudget } from '../byte-budget.js';
import { NotLeaderError, type PartitionReplica, type ProduceResult } from './partition-replica.js';
import { batch, REPLICA_LOG_CONFIG, ReplicaCluster } from './replica-test-cluster.js';
import { gatedHandles, type HandleGate } from './replication-test-fs.js';

let cluster: ReplicaCluster | null = null;
afterEach(async () => {
  await cluster?.closeAll();
  cluster = null;
});

function open(options: ConstructorParameters<typeof ReplicaCluster>[0] = {}): ReplicaCluster {
  cluster = new ReplicaCluster(options);
  return cluster;
}

/** Every committed byte of a replica: [logStart, HW) read through its capped `read`. */
async function committedBytes(r: PartitionReplica): Promise<Buffer> {
  const parts: Buffer[] = [];
  let at = r.logStartOffset;
  while (at < r.highWatermark) {
    const { data, nextOffset } = await r.read(at, 64 * 1024);
    if (data.length === 0) break;
    parts.push(data);
    at = nextOffset;
  }
  return Buffer.concat(parts);
}

interface Walked {
  /** Record values of the data batches, in order ("r<tag>.<i>"). */
  values: string[];
  controlBatches: number;
  end: number;
}

/** Walks a log's bytes: offsets contiguous from `start`, CRCs good; data values, control count. */
function walk(bytes: Buffer, start: number): Walked {
  const out: Walked = { values: [], controlBatches: 0, end: start };
  for (const { position, size } of splitBatches(bytes)) {
    const b = bytes.subarray(position, position + size);
    expect(verifyBatchCrc(b, 0)).toBe(true);
    const decoded = decodeRecordBatch(b);
    expect(decoded.header.baseOffset).toBe(out.end);
    out.end = decoded.header.baseOffset + decoded.header.lastOffsetDelta + 1;
    if (decoded.isControl) {
      // What a consumer does: skip control batches (they occupy offsets, no data).
      out.controlBatches++;
      continue;
    }
    for (const rec of decoded.records) out.values.push(Buffer.from(rec.value!).toString());
  }
  return out;
}

function valuesOf(tag: number, count = 1 + (tag % 3)): string[] {
  return Array.from({ length: count }, (_, i) => `r${tag}.${i}`);
}

async function expectIdenticalCommitted(c: ReplicaCluster): Promise<Buffer> {
  const replicas = c.live();
  // Followers learn the commit index from the next append or heartbeat (lazyCommitBroadcast),
  // so give them the heartbeats (a few ticks) to reach the leader's high watermark.
  const leader = c.leader();
  for (let i = 0; i < 10 && leader; i++) {
    if (replicas.every((r) => r.highWatermark === leader.highWatermark)) break;
    await c.tick();
  }
  const hw = replicas[0]!.highWatermark;
  for (const r of replicas) expect(r.highWatermark).toBe(hw);
  const leaderBytes = await committedBytes(replicas[0]!);
  for (const r of replicas.slice(1))
    expect((await committedBytes(r)).equals(leaderBytes)).toBe(true);
  return leaderBytes;
}

/** Ticks until every live replica's HW reached the leader's log end. */
async function catchUp(c: ReplicaCluster, ticksMax = 100): Promise<void> {
  for (let i = 0; i < ticksMax; i++) {
    const l = c.leader();
    if (l && c.live().every((r) => r.highWatermark === l.logEndOffset)) return;
    await c.tick();
  }
  throw new Error('replicas did not catch up');
}

/**
 * acks=all with the leader's links cut (one follower's messages held, the other's dropped):
 * the checker records a violation when an answer comes while fewer than a quorum of replicas
 * hold the batch durably.
 */
async function ackAllScenario(
  unsafe: boolean,
): Promise<{ answeredWhileHeld: boolean; violations: string[] }> {
  const c = open(unsafe ? { replica: { unsafe: { ackAllOnLocalWrite: true } } } : {});
  await c.startAll();
  const l = await c.waitLeader();
  const [f1, f2] = c.live().filter((r) => r !== l);
  c.setLink(l.self, f1!.self, 'hold');
  c.setLink(l.self, f2!.self, 'drop');
  const violations: string[] = [];
  let answered = false;
  const p = l.propose(batch(1), -1).then((r) => {
    answered = true;
    const holders = c.live().filter((x) => x.durableEndOffset > r.lastOffset).length;
    if (holders < 2) violations.push(`acks=all answered with ${holders} durable copies`);
    return r;
  });
  await c.tick(3);
  const answeredWhileHeld = answered;
  // The leader's own copy is durable by now: only the quorum is missing.
  expect(l.durableEndOffset).toBeGreaterThan(l.highWatermark);
  c.release();
  await c.tick(3);
  await p;
  expect(answered).toBe(true);
  return { answeredWhileHeld, violations };
}

describe('PartitionReplica: three replicas on one in-process hub', () => {
  it('elects a leader; acks=all is answered only once a quorum holds the batch durably', async () => {
    const ok = await ackAllScenario(false);
    expect(ok.answeredWhileHeld).toBe(false);
    expect(ok.violations).toEqual([]);
    await cluster!.closeAll();
    // The deliberately broken variant (answer after the leader's own write) is caught.
    const broken = await ackAllScenario(true);
    expect(broken.answeredWhileHeld).toBe(true);
    expect(broken.violations.length).toBeGreaterThan(0);
  });

  it('replicates byte-identical logs with contiguous offsets; control batches are skipped', async () => {
    const c = open();
    await c.startAll();
    const l = await c.waitLeader();
    const acks: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 20; tag++) acks.push(l.propose(batch(tag), tag % 2 === 0 ? -1 : 1));
    await c.tick(2);
    const results = await Promise.all(acks);
    for (let k = 1; k < results.length; k++) {
      expect(results[k]!.baseOffset).toBe(results[k - 1]!.lastOffset + 1);
    }
    // Followers learn the commit index with the next heartbeat.
    await catchUp(c);
    const bytes = await expectIdenticalCommitted(c);
    const w = walk(bytes, 0);
    expect(w.controlBatches).toBe(1); // the leader's no-op of term 1
    expect(w.values).toEqual(Array.from({ length: 20 }, (_, t) => valuesOf(t)).flat());
    expect(w.end).toBe(l.highWatermark);
    expect(results[0]!.baseOffset).toBe(1); // offset 0 is the no-op
    // The high watermark caps reads: a follower serves nothing past it.
    const f = c.live().find((r) => r !== l)!;
    expect((await f.read(f.highWatermark, 1024)).data.length).toBe(0);
    expect(l.inSyncReplicas()).toEqual([1, 2, 3]);
  });

  it('refuses produce on a follower with NOT_LEADER_OR_FOLLOWER and the leader hint', async () => {
    const c = open();
    await c.startAll();
    const l = await c.waitLeader();
    const f = c.live().find((r) => r !== l)!;
    const err = await f.propose(batch(1), -1).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NotLeaderError);
    expect((err as NotLeaderError).code).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect((err as NotLeaderError).leaderHint).toBe(l.self);
    const bad = await l.propose(Buffer.from('not a batch at all, no'), -1).catch((e: unknown) => e);
    expect((bad as { code: number }).code).toBe(ErrorCode.CORRUPT_MESSAGE);
    const flipped = batch(4);
    flipped.writeUInt8(flipped.readUInt8(flipped.length - 1) ^ 1, flipped.length - 1);
    const crc = await l.propose(flipped, -1).catch((e: unknown) => e);
    expect((crc as { code: number }).code).toBe(ErrorCode.CORRUPT_MESSAGE);
    const control = encodeRecordBatch([{ value: Buffer.from('x') }], { isControl: true });
    const ctl = await l.propose(control, -1).catch((e: unknown) => e);
    expect((ctl as { code: number }).code).toBe(ErrorCode.INVALID_RECORD);
    expect(l.stats().pendingRequests).toBe(0);
  });

  it('loses nothing acknowledged when the leader crashes; a new leader takes over', async () => {
    const c = open({ seed: 3 });
    await c.startAll();
    const l = await c.waitLeader();
    const acked: number[] = [];
    const track = (tag: number, p: Promise<ProduceResult>) =>
      p.then(
        () => acked.push(tag),
        () => undefined,
      );
    const first: Array<Promise<unknown>> = [];
    for (let tag = 0; tag < 10; tag++) first.push(track(tag, l.propose(batch(tag), -1)));
    await c.tick(2);
    await Promise.all(first);
    expect(acked.length).toBe(10);
    // More in flight, then power loss on the leader before they settle.
    for (let tag = 10; tag < 15; tag++) void track(tag, l.propose(batch(tag), -1));
    const old = l.self;
    await c.crash(old);
    const rest = [1, 2, 3].filter((id) => id !== old);
    const l2 = await c.waitLeader(300, rest);
    expect(l2.self).not.toBe(old);
    expect(l2.leaderEpoch).toBeGreaterThan(l.leaderEpoch);
    const second: Array<Promise<unknown>> = [];
    for (let tag = 20; tag < 25; tag++) second.push(track(tag, l2.propose(batch(tag), -1)));
    await c.tick(2);
    await Promise.all(second);
    await c.start(old);
    await catchUp(c, 300);
    const w = walk(await expectIdenticalCommitted(c), 0);
    for (const tag of acked) {
      const want = valuesOf(tag);
      const at = w.values.indexOf(want[0]!);
      expect(at).toBeGreaterThanOrEqual(0);
      expect(w.values.slice(at, at + want.length)).toEqual(want);
      expect(w.values.lastIndexOf(want[0]!)).toBe(at); // exactly once
    }
  });

  it('fails pending produce requests with NOT_LEADER_OR_FOLLOWER when the leader steps down', async () => {
    const c = open({ seed: 5 });
    await c.startAll();
    const l = await c.waitLeader();
    c.isolate(l.self);
    const p = l.propose(batch(1), -1).catch((e: unknown) => e);
    // Check-quorum: cut off from its majority, the leader steps down; it acknowledged nothing.
    await c.tick(40);
    const err = await p;
    expect(err).toBeInstanceOf(NotLeaderError);
    expect(l.role).not.toBe('leader');
  });

  it('serves a lagging follower from disk (prefetch behind the in-memory tail)', async () => {
    const c = open({ seed: 7, replica: { tailLimits: { tailEntriesMax: 4, tailBytesMax: 2048 } } });
    await c.startAll();
    const l = await c.waitLeader();
    const lag = c.live().find((r) => r !== l)!;
    c.isolate(lag.self);
    const acks: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 30; tag++) acks.push(l.propose(batch(tag), -1));
    await c.tick(2);
    await Promise.all(acks);
    // What the lagging follower needs next is behind the leader's in-memory tail.
    expect(l.stats().tailStart).toBeGreaterThan(5);
    expect(lag.logEndOffset).toBeLessThan(5);
    c.heal();
    await catchUp(c, 300);
    expect(l.stats().prefetches).toBeGreaterThan(0);
    const w = walk(await expectIdenticalCommitted(c), 0);
    expect(w.values).toEqual(Array.from({ length: 30 }, (_, t) => valuesOf(t)).flat());
  });

  it('restarts all three (after a crash of every node, then cleanly) and keeps every acknowledged record', async () => {
    const c = open({ seed: 11, replica: { tailLimits: { tailEntriesMax: 3 } } });
    await c.startAll();
    let l = await c.waitLeader();
    const acks: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 12; tag++) acks.push(l.propose(batch(tag), -1));
    await c.tick(2);
    await Promise.all(acks);
    for (const id of [1, 2, 3]) await c.crash(id);
    await c.startAll();
    l = await c.waitLeader(300);
    const more: Array<Promise<ProduceResult>> = [];
    for (let tag = 12; tag < 16; tag++) more.push(l.propose(batch(tag), -1));
    await c.tick(2);
    await Promise.all(more);
    await catchUp(c, 300);
    await c.closeAll();
    await c.startAll();
    l = await c.waitLeader(300);
    await catchUp(c, 300);
    const w = walk(await expectIdenticalCommitted(c), 0);
    expect(w.values).toEqual(Array.from({ length: 16 }, (_, t) => valuesOf(t)).flat());
    // One no-op per term that led: at least the first, and one after each restart.
    expect(w.controlBatches).toBeGreaterThanOrEqual(3);
  });
});

/** An idempotent batch of one record "r<tag>.0" from producer `pid`, epoch 0. */
function idem(seq: number, tag: number, pid = 42): Buffer {
  return encodeRecordBatch([{ value: Buffer.from(`r${tag}.0`), timestamp: 1 }], {
    producerId: pid,
    producerEpoch: 0,
    baseSequence: seq,
    timestamp: 1,
  });
}

/** Hands leadership to `to` and ticks until it leads (with its term's entry committed). */
async function transfer(
  c: ReplicaCluster,
  from: PartitionReplica,
  to: number,
): Promise<PartitionReplica> {
  from.transferLeadership(to as PartitionReplica['self']);
  for (let i = 0; i < 100; i++) {
    await c.tick();
    const l = c.leader();
    if (l?.self === to && l.highWatermark >= l.logEndOffset) return l;
  }
  throw new Error(`leadership did not move to ${to}`);
}

function countOf(values: string[], v: string): number {
  return values.filter((x) => x === v).length;
}

/** `fs` whose fsyncs wait while `gate.held` (the rest passes through). */
function gatedSyncs(fs: MemoryFileSystem): { fs: MemoryFileSystem; gate: HandleGate } {
  return gatedHandles(fs, ['sync']);
}

/** Every node's fsyncs behind a gate (closed only when a test sets `held`). */
function gateEveryNode(
  c: ReplicaCluster,
): Map<number, { held: boolean; open(): void; logSyncs: number }> {
  const gates = new Map<number, { held: boolean; open(): void; logSyncs: number }>();
  for (const id of c.nodes.keys()) {
    const g = gatedSyncs(c.node(id).fs);
    c.node(id).fs = g.fs;
    gates.set(id, g.gate);
  }
  return gates;
}

/** A group of `ids` with every fsync behind a gate, its leader elected and every replica caught up. */
async function gatedGroup(
  ids: readonly number[],
  seed: number,
): Promise<{
  c: ReplicaCluster;
  gates: ReturnType<typeof gateEveryNode>;
  l: PartitionReplica;
}> {
  const c = open({ ids, seed });
  const gates = gateEveryNode(c);
  await c.startAll();
  if (ids.length === 1) c.replica(ids[0]!).campaignIfSoleVoter();
  await c.settle();
  const l = await c.waitLeader();
  await catchUp(c);
  return { c, gates, l };
}

describe('PartitionReplica: acknowledgement latency', () => {
  for (const ids of [[1], [1, 2, 3]]) {
    it(`answers acks=all as soon as the fsync (and the quorum) covers it, without another process() round (${ids.length} replica${ids.length > 1 ? 's' : ''})`, async () => {
      const { c, gates, l } = await gatedGroup(ids, 59);
      for (const g of gates.values()) g.held = true;
      let acked = false;
      const a = l.propose(batch(1), -1).then((r) => {
        acked = true;
        return r;
      });
      await c.settle(); // written everywhere, every fsync hangs
      expect(acked).toBe(false);
      for (const g of gates.values()) g.open();
      // No process() from here: the fsyncs end, the followers' acknowledgements arrive (step).
      for (let i = 0; i < 50 && !acked; i++) await new Promise((r) => setImmediate(r));
      expect(acked).toBe(true);
      expect(l.highWatermark).toBe((await a).lastOffset + 1);
      await c.settle();
      await expectIdenticalCommitted(c);
    });
  }
  it('answers acks=all for entries it already holds without waiting for the fsync of the next ones', async () => {
    const c = open({ seed: 41 });
    const gates = gateEveryNode(c);
    await c.startAll();
    const l = await c.waitLeader();
    const others = [1, 2, 3].filter((id) => id !== l.self);
    // B reaches every disk; the followers' acknowledgements are held back.
    for (const f of others) c.setLink(f, l.self, 'hold');
    let bAcked = false;
    const b = l.propose(batch(1), -1).then((r) => {
      bAcked = true;
      return r;
    });
    await c.settle();
    expect(bAcked).toBe(false);
    // C is proposed and its fsync on the leader hangs; then B's acknowledgements arrive.
    gates.get(l.self)!.held = true;
    const cAck = l.propose(batch(2), -1);
    c.release();
    await new Promise((r) => setImmediate(r));
    expect(l.hasWork()).toBe(true);
    const round = l.process();
    for (let i = 0; i < 5 && !bAcked; i++) await new Promise((r) => setImmediate(r));
    expect(bAcked).toBe(true);
    expect((await b).lastOffset).toBeLessThan(l.highWatermark);
    gates.get(l.self)!.open();
    await round;
    await c.tick(2);
    await cAck;
    await c.tick(1);
    expect(c.live().every((r) => r.highWatermark === l.highWatermark)).toBe(true);
  });
});

describe('PartitionReplica: group commit', () => {
  // Requests that arrive one by one while an fsync runs are each written at once, and the next
  // single fsync covers all of them: N acks=all appends to one partition cost 2 fsyncs per
  // replica here, not N, and all N are answered together when that fsync ends.
  const N = 5;
  for (const ids of [[1], [1, 2, 3]]) {
    it(`${N} acks=all produces arriving during one fsync take 2 fsyncs per replica, not ${N} (${ids.length} replica${ids.length > 1 ? 's' : ''})`, async () => {
      const { c, gates, l } = await gatedGroup(ids, 53);
      for (const g of gates.values()) g.logSyncs = 0;
      for (const g of gates.values()) g.held = true;
      const answered: number[] = [];
      const acks: Array<Promise<unknown>> = [];
      for (let i = 0; i < N; i++) {
        acks.push(l.propose(batch(10 + i), -1).then(() => answered.push(i)));
        await c.tick(); // each one alone: replicated and written while the first fsync hangs
      }
      expect(answered).toEqual([]);
      for (const r of c.live()) expect(r.partitionLog.writtenEndOffset).toBe(l.logEndOffset);
      for (const g of gates.values()) g.open();
      await c.settle();
      await c.tick(2);
      await Promise.all(acks);
      expect(answered.sort()).toEqual([0, 1, 2, 3, 4]);
      for (const [id, g] of gates) {
        expect({ id, syncs: g.logSyncs }).toEqual({ id, syncs: 2 });
      }
    });
  }
});

describe('PartitionReplica: pipelined persistence', () => {
  it('a cluster of one writes the next Ready while an fsync runs; only durable entries commit; a power cut loses only unacknowledged ones', async () => {
    const c = open({ ids: [1], seed: 43 });
    const g = gatedSyncs(c.node(1).fs);
    c.node(1).fs = g.fs;
    await c.startAll();
    c.replica(1).campaignIfSoleVoter();
    await c.settle();
    const l = await c.waitLeader();
    const hw = l.highWatermark;
    expect(hw).toBe(1); // the term's no-op
    g.gate.held = true;
    let aAcked = false;
    const a = l.propose(batch(1), -1).then((r) => {
      aAcked = true;
      return r;
    });
    await c.settle();
    // A is written (readable by the log) but its fsync hangs: not committed, not answered.
    expect(l.partitionLog.writtenEndOffset).toBe(l.logEndOffset);
    expect(l.logEndOffset).toBeGreaterThan(hw);
    expect(l.highWatermark).toBe(hw);
    expect(aAcked).toBe(false);
    // B (acks=1) is written while A's fsync still runs, and answered at its write.
    const bAck = l.propose(batch(2), 1);
    await c.settle();
    const b = await bAck;
    expect(l.partitionLog.writtenEndOffset).toBeGreaterThan(b.lastOffset);
    expect(l.durableEndOffset).toBeLessThanOrEqual(hw);
    expect(l.highWatermark).toBe(hw);
    expect(aAcked).toBe(false);
    const cAck = l.propose(batch(3), -1);
    await c.settle();
    g.gate.open();
    await c.settle();
    const [ra, rc] = await Promise.all([a, cAck]);
    await c.settle();
    expect(l.highWatermark).toBe(rc.lastOffset + 1);
    expect(l.durableEndOffset).toBeGreaterThanOrEqual(l.highWatermark);
    expect(ra.lastOffset).toBeLessThan(b.baseOffset);

    // Again with the fsync held, then a power cut: the written, unsynced entries are gone, and
    // nothing acknowledged as acks=all is.
    const acked = l.highWatermark;
    g.gate.held = true;
    let lostAcked = false;
    void l.propose(batch(4), -1).then(
      () => {
        lostAcked = true;
      },
      () => undefined,
    );
    await c.settle();
    expect(l.partitionLog.writtenEndOffset).toBeGreaterThan(acked);
    await c.crash(1);
    expect(lostAcked).toBe(false);
    const again = await c.start(1);
    expect(again.logEndOffset).toBe(acked);
    again.campaignIfSoleVoter();
    await c.settle();
    const l2 = await c.waitLeader();
    const dAck = l2.propose(batch(5), -1);
    await c.settle();
    const d = await dAck;
    expect(d.baseOffset).toBe(acked + 1); // after the new term's no-op
  });

  it('a follower acknowledges entries only once its fsync covers them, not at its write', async () => {
    const c = open({ seed: 47 });
    const gates = gateEveryNode(c);
    await c.startAll();
    const l = await c.waitLeader();
    const [f1, f2] = [1, 2, 3].filter((id) => id !== l.self) as [number, number];
    // f2's answers never reach the leader; f1's disk holds its fsyncs.
    c.setLink(f2, l.self, 'drop');
    gates.get(f1)!.held = true;
    let acked = false;
    const p = l.propose(batch(1), -1).then((r) => {
      acked = true;
      return r;
    });
    await c.tick(3);
    const follower = c.replica(f1);
    expect(follower.partitionLog.writtenEndOffset).toBe(l.logEndOffset);
    expect(follower.durableEndOffset).toBeLessThan(l.logEndOffset);
    expect(acked).toBe(false);
    gates.get(f1)!.open();
    await c.tick(3);
    const r = await p;
    expect(acked).toBe(true);
    expect(l.highWatermark).toBeGreaterThan(r.lastOffset);
  });
});

describe('PartitionReplica: quiescence', () => {
  it('an idle group quiesces on every replica; a produce wakes it, is acknowledged, and it quiesces again', async () => {
    const c = open({ seed: 11 });
    await c.startAll();
    const l = await c.waitLeader();
    await c.tick(10);
    expect(c.live().every((r) => r.quiesced)).toBe(true);
    expect(l.inSyncReplicas()).toEqual([1, 2, 3]);
    const p = l.propose(batch(1), -1);
    await c.tick(2);
    await p;
    await c.tick(10);
    expect(c.live().every((r) => r.quiesced)).toBe(true);
    expect(c.live().every((r) => r.highWatermark === l.highWatermark)).toBe(true);
  });

  it('the leader crashes while quiesced: the others, told of the lost link, elect a new leader; nothing acknowledged is lost', async () => {
    const c = open({ seed: 12 });
    await c.startAll();
    const l = await c.waitLeader();
    const acked = l.propose(batch(1), -1);
    await c.tick(2);
    await acked;
    await c.tick(10);
    expect(c.live().every((r) => r.quiesced)).toBe(true);
    const old = l.self;
    await c.crash(old);
    const rest = [1, 2, 3].filter((id) => id !== old);
    const l2 = await c.waitLeader(100, rest);
    expect(l2.leaderEpoch).toBeGreaterThan(l.leaderEpoch);
    const p = l2.propose(batch(2), -1);
    await c.tick(2);
    await p;
    await c.start(old);
    await catchUp(c, 300);
    const w = walk(await expectIdenticalCommitted(c), 0);
    expect(w.values).toEqual([...valuesOf(1), ...valuesOf(2)]);
  });
});

describe('PartitionReplica: leader read-gating', () => {
  /**
   * The followers get the entries but not the commit (the leader's commit broadcast is dropped),
   * then the leader crashes: the new leader's high watermark starts below the acknowledged end.
   * Returns what the new leader answered at the moment it took over, and the acknowledged end.
   */
  async function takeOverBelowAcked(unsafe: boolean) {
    const c = open({
      seed: 21,
      ...(unsafe ? { replica: { unsafe: { ungatedLeaderReads: true } } } : {}),
    });
    await c.startAll();
    const l = await c.waitLeader();
    const others = [1, 2, 3].filter((id) => id !== l.self);
    for (const f of others) c.setLink(l.self, f, 'hold');
    const acked = l.propose(batch(1), -1);
    await c.settle();
    c.release();
    for (const f of others) c.setLink(l.self, f, 'drop');
    await c.settle();
    const end = (await acked).lastOffset + 1;
    expect(l.highWatermark).toBe(end);
    const seen: Array<{ hw: number; code: number | null; readCode: number | null }> = [];
    for (const f of others) {
      const r = c.replica(f);
      expect(r.highWatermark).toBeLessThan(end);
      r.onChange((e) => {
        if (e.kind !== 'role' || r.role !== 'leader' || seen.length > 0) return;
        let code: number | null = null;
        try {
          r.checkReadable();
        } catch (err) {
          code = (err as { code: number }).code;
        }
        const entry = { hw: r.highWatermark, code, readCode: null as number | null };
        seen.push(entry);
        r.read(0, 1 << 20).then(
          () => undefined,
          (err: { code: number }) => {
            entry.readCode = err.code;
          },
        );
      });
    }
    await c.crash(l.self);
    const l2 = await c.waitLeader(200, others);
    return { c, l2, end, seen };
  }

  it('a new leader refuses reads (LEADER_NOT_AVAILABLE) until its term commits; then its high watermark covers every acknowledgement', async () => {
    const { l2, end, seen } = await takeOverBelowAcked(false);
    expect(seen.length).toBe(1);
    expect(seen[0]!.hw).toBeLessThan(end);
    expect(seen[0]!.code).toBe(ErrorCode.LEADER_NOT_AVAILABLE);
    expect(seen[0]!.readCode).toBe(ErrorCode.LEADER_NOT_AVAILABLE);
    expect(l2.highWatermark).toBeGreaterThanOrEqual(end);
    expect(() => l2.checkReadable()).not.toThrow();
    const { data } = await l2.read(0, 1 << 20);
    expect(walk(data, 0).values).toEqual(valuesOf(1));
  });

  it('without the gate (test-only switch) the new leader would serve a high watermark below an acknowledged offset', async () => {
    const { seen, end } = await takeOverBelowAcked(true);
    expect(seen.length).toBe(1);
    expect(seen[0]!.hw).toBeLessThan(end);
    expect(seen[0]!.code).toBe(null);
  });
});

describe('PartitionReplica: idempotent producers and the log start', () => {
  it('does not duplicate an idempotent retry across a leader change', async () => {
    const c = open({ seed: 13 });
    await c.startAll();
    const l = await c.waitLeader();
    const r0 = l.propose(idem(0, 100), -1);
    const r1 = l.propose(idem(1, 101), -1);
    await c.tick(2);
    const [a0, a1] = await Promise.all([r0, r1]);
    // A retry on the same leader: its original offsets.
    const dup = l.propose(idem(1, 101), -1);
    await c.tick(1);
    expect((await dup).baseOffset).toBe(a1.baseOffset);
    // Seq 2 reaches the followers but no answer comes back: then the leader loses power.
    for (const f of c.live()) if (f !== l) c.setLink(f.self, l.self, 'drop');
    const lost = l.propose(idem(2, 102), -1).catch((e: unknown) => e);
    await c.tick(1);
    const old = l.self;
    await c.crash(old);
    c.heal();
    const rest = [1, 2, 3].filter((id) => id !== old);
    const l2 = await c.waitLeader(300, rest);
    void lost;
    const retries = [
      l2.propose(idem(0, 100), -1),
      l2.propose(idem(2, 102), -1),
      l2.propose(idem(3, 103), -1),
    ];
    await c.tick(2);
    const [b0, b2, b3] = await Promise.all(retries);
    expect(b0!.baseOffset).toBe(a0.baseOffset);
    expect(b3!.baseOffset).toBeGreaterThan(b2!.baseOffset);
    // A sequence gap is refused, typed.
    const gap = await l2.propose(idem(9, 109), -1).catch((e: unknown) => e);
    expect((gap as { code: number }).code).toBe(ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER);
    await c.start(old);
    await catchUp(c, 300);
    const w = walk(await expectIdenticalCommitted(c), 0);
    for (const tag of [100, 101, 102, 103]) expect(countOf(w.values, `r${tag}.0`)).toBe(1);
    expect(countOf(w.values, 'r109.0')).toBe(0);
  });

  it('forgets the producer state of entries truncated from a deposed leader', async () => {
    const c = open({ seed: 17 });
    await c.startAll();
    const l = await c.waitLeader();
    c.isolate(l.self);
    // acks=1: written on the isolated leader only; never committed.
    const written = l.propose(idem(0, 200), 1);
    await c.tick(1);
    expect((await written).baseOffset).toBeGreaterThan(0);
    const rest = [1, 2, 3].filter((id) => id !== l.self);
    const l2 = await c.waitLeader(300, rest);
    const plain: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 3; tag++) plain.push(l2.propose(batch(tag), -1));
    await c.tick(2);
    await Promise.all(plain);
    c.heal();
    await catchUp(c, 300);
    // The old leader's log lost its uncommitted batch; now it leads again.
    const back = await transfer(c, l2, l.self);
    const retry = back.propose(idem(0, 200), -1);
    await c.tick(2);
    const r = await retry;
    await catchUp(c, 300);
    const bytes = await expectIdenticalCommitted(c);
    const w = walk(bytes, 0);
    expect(countOf(w.values, 'r200.0')).toBe(1);
    // The answer points at the retried batch itself, not at what replaced the lost one.
    const { data } = await back.read(r.baseOffset, 1);
    expect(Buffer.from(decodeRecordBatch(data).records[0]!.value!).toString()).toBe('r200.0');
  });

  it('moves every log start through the group; a follower behind it gets the snapshot', async () => {
    const c = open({ seed: 19 });
    await c.startAll();
    const l = await c.waitLeader();
    const behind = c.live().find((r) => r !== l)!;
    c.isolate(behind.self);
    const acks: Array<Promise<ProduceResult>> = [];
    for (let s = 0; s < 3; s++) acks.push(l.propose(idem(s, 300 + s), -1));
    for (let tag = 0; tag < 10; tag++) acks.push(l.propose(batch(tag), -1));
    await c.tick(2);
    const results = await Promise.all(acks);
    const cut = results[results.length - 2]!.baseOffset; // batch(8): three records
    const moving = l.deleteRecordsBefore(cut + 1); // inside the last batch: rounds down to it
    await c.tick(2);
    expect(await moving).toBe(cut);
    await c.tick(2);
    for (const r of c.live()) if (r !== behind) expect(r.logStartOffset).toBe(cut);
    expect(behind.logStartOffset).toBe(0);
    c.heal();
    await catchUp(c, 300);
    expect(behind.logStartOffset).toBe(cut);
    await expectIdenticalCommitted(c);
    // The producer state came with the snapshot: a retry of seq 2 is a duplicate there too.
    const nl = await transfer(c, l, behind.self);
    const retry = nl.propose(idem(2, 302), -1);
    const next = nl.propose(idem(3, 303), -1);
    await c.tick(2);
    expect((await retry).baseOffset).toBe(results[2]!.baseOffset);
    expect((await next).baseOffset).toBeGreaterThan(cut);
    // Restart of every node keeps the log start and the producer state.
    await c.closeAll();
    await c.startAll();
    const again = await c.waitLeader(300);
    for (const r of c.live()) expect(r.logStartOffset).toBe(cut);
    const dup = again.propose(idem(3, 303), -1);
    await c.tick(2);
    expect((await dup).baseOffset).toBe((await next).baseOffset);
  });

  it('applies retention through the group: every replica cuts at the same segment boundary', async () => {
    const c = open({
      seed: 23,
      logConfig: { ...REPLICA_LOG_CONFIG, segmentBytesMax: 1024, retentionBytesMax: 2048 },
    });
    await c.startAll();
    const l = await c.waitLeader();
    const acks: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 80; tag++) acks.push(l.propose(batch(tag, 2), -1));
    await c.tick(3);
    await Promise.all(acks);
    const start = l.enforceRetention();
    await c.tick(3);
    const s = await start;
    expect(s).toBeGreaterThan(0);
    await catchUp(c, 100);
    for (const r of c.live()) expect(r.logStartOffset).toBe(s);
    const w = walk(await expectIdenticalCommitted(c), s);
    expect(w.end).toBe(l.highWatermark);
  });
});

describe('PartitionReplica: faults', () => {
  it('drops an append whose batch arrives damaged and stays online; the resend converges', async () => {
    const c = open({ seed: 29 });
    await c.startAll();
    const l = await c.waitLeader();
    const f = c.live().find((r) => r !== l)!;
    c.setLink(l.self, f.self, 'corrupt');
    const acks: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 5; tag++) acks.push(l.propose(batch(tag), -1));
    await c.tick(3);
    await Promise.all(acks); // the third replica makes the quorum
    expect(c.corrupted).toBeGreaterThan(0);
    expect(f.role).toBe('follower');
    expect(f.logEndOffset).toBeLessThan(l.logEndOffset);
    c.heal();
    await catchUp(c, 200);
    expect(f.offlineError).toBeNull();
    const w = walk(await expectIdenticalCommitted(c), 0);
    expect(w.values).toEqual(Array.from({ length: 5 }, (_, t) => valuesOf(t)).flat());
  });

  it('drops a snapshot message whose data is unreadable', async () => {
    const c = open({ seed: 37 });
    await c.startAll();
    const l = await c.waitLeader();
    const f = c.live().find((r) => r !== l)!;
    const conf = { voters: [1, 2, 3] as PartitionReplica['self'][], learners: [] };
    f.step(
      message({
        type: MessageType.Snapshot,
        from: l.self,
        to: f.self,
        term: l.leaderEpoch as Term,
        snapshot: {
          meta: { index: 50 as LogIndex, term: l.leaderEpoch as Term, conf },
          data: Buffer.from('{not a replica snapshot'),
        },
      }),
    );
    await c.tick(3);
    expect(f.offlineError).toBeNull();
    expect(f.logStartOffset).toBe(0);
    const ok = l.propose(batch(1), -1);
    await c.tick(2);
    await ok;
    await catchUp(c);
  });

  it('keeps every acknowledged record through power cuts that keep a random unsynced prefix', async () => {
    for (let seed = 1; seed <= 6; seed++) {
      const c = open({ seed: 100 + seed });
      await c.startAll();
      const acked: number[] = [];
      let tag = 0;
      for (let round = 0; round < 4; round++) {
        const l = await c.waitLeader(400);
        const inflight: Array<Promise<unknown>> = [];
        for (let k = 0; k < 4; k++) {
          const t = tag++;
          inflight.push(
            l.propose(batch(t), -1).then(
              () => acked.push(t),
              () => undefined,
            ),
          );
        }
        await c.tick(1 + (seed % 2));
        // Power cut on a node chosen by the seed (the leader every other round), mid-flight.
        const victim = round % 2 === 0 ? l.self : ((l.self + seed) % 3) + 1;
        await c.crash(victim, 'keep-prefix');
        await c.tick(2);
        await c.start(victim);
      }
      await c.waitLeader(400);
      await catchUp(c, 400);
      const w = walk(await expectIdenticalCommitted(c), 0);
      for (const t of acked) expect(countOf(w.values, valuesOf(t)[0]!)).toBe(1);
      await c.closeAll();
      cluster = null;
    }
  });
});

describe('PartitionReplica: a leadership transfer', () => {
  /** A leader whose follower `f` is behind (its appends held) and a transfer to it begun. */
  async function transferring(seed: number) {
    const c = open({ seed });
    await c.startAll();
    const l = await c.waitLeader();
    const f = c.live().find((r) => r !== l)!;
    c.setLink(l.self, f.self, 'hold');
    const first = l.propose(batch(1), -1);
    await c.tick(2);
    await first; // committed by the leader and the third replica
    l.transferLeadership(f.self);
    let settled: 'no' | 'resolved' | number = 'no';
    let refusal: NotLeaderError | null = null;
    const term = l.leaderEpoch;
    const during = l.propose(batch(2), -1).then(
      () => {
        settled = 'resolved';
      },
      (err: { code: number }) => {
        settled = err.code;
        if (err instanceof NotLeaderError) refusal = err;
      },
    );
    await c.tick(1);
    return { c, l, f, term, during, settled: () => settled, refusal: () => refusal };
  }

  it('holds a produce that arrives during it, then answers NOT_LEADER once the target leads', async () => {
    const t = await transferring(41);
    // Not refused with REPLICA_PROPOSALS_FULL (a client would back off, then find it moved).
    expect(t.settled()).toBe('no');
    t.c.release();
    for (let i = 0; i < 50 && t.c.leader()?.self !== t.f.self; i++) await t.c.tick();
    expect(t.c.leader()?.self).toBe(t.f.self);
    await t.during;
    expect(t.settled()).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    // The refusal names the target and its term (the broker puts it on the wire, issue 12),
    // even when the old leader stepped down on the target's vote request, before any append
    // of the new term named the leader.
    const refusal = t.refusal() as NotLeaderError | null;
    expect(refusal?.leaderHint).toBe(t.f.self);
    expect(refusal?.leaderEpoch).toBe(t.term + 1);
  });

  it('proposes what it held when Raft abandons the transfer', async () => {
    const t = await transferring(43);
    expect(t.settled()).toBe('no');
    // The target never catches up: the transfer is abandoned after an election timeout and the
    // leader, still leading, proposes the held produce (committed with the third replica).
    for (let i = 0; i < 100 && t.settled() === 'no'; i++) await t.c.tick();
    await t.during;
    expect(t.settled()).toBe('resolved');
    expect(t.c.leader()?.self).toBe(t.l.self);
    t.c.release();
  });
});

describe('PartitionReplica: an election while the candidate saves its hard state', () => {
  /**
   * One round of `process()` on every replica with work, without waiting for `stuck` (its
   * process is held on a gated fsync; `settle()` would wait for it forever).
   */
  async function drive(c: ReplicaCluster, stuck: PartitionReplica): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
    for (const r of c.live()) {
      if (!r.hasWork()) continue;
      if (r === stuck) void r.process();
      else await r.process();
    }
  }

  it("sends a transfer target's vote requests before its hard state is saved, and nothing of its leadership until it is", async () => {
    const c = open({ seed: 47 });
    const gates = new Map<number, HandleGate>();
    for (const id of c.nodes.keys()) {
      // Only the hard-state file's fsync (raft-hard-state.tmp, before its rename) is gated.
      const g = gatedHandles(c.node(id).fs, ['sync'], (path) => path.includes('raft-hard-state'));
      c.node(id).fs = g.fs;
      gates.set(id, g.gate);
    }
    await c.startAll();
    const l = await c.waitLeader();
    await catchUp(c);
    const f = c.live().find((r) => r !== l)!;
    const others = [...c.nodes.keys()].filter((id) => id !== f.self).sort();
    const term = l.leaderEpoch;
    for (const id of others) c.setLink(f.self, id, 'hold');
    const fromF = () => c.held.filter((h) => h.m.from === f.self).map((h) => h.m);
    const gate = gates.get(f.self)!;
    gate.held = true;
    try {
      l.transferLeadership(f.self);
      for (let i = 0; i < 50 && fromF().length < others.length; i++) await drive(c, f);
      // The requests left while the target's save of (term + 1, vote for itself) still waits on
      // its fsync: the voters' saves run in parallel with it, not after it.
      expect(fromF().map((m) => [m.type, m.to, m.term])).toEqual(
        others.map((id) => [MessageType.Vote, id, term + 1]),
      );
      // The voters answer (their own saves are not gated) and the target's core counts a quorum,
      // but no append or heartbeat of its term leaves while its own vote is not durable.
      for (const h of c.held.splice(0)) h.transport.send(h.group, [h.m]);
      for (let i = 0; i < 20; i++) await drive(c, f);
      expect(f.role).toBe('leader');
      expect(fromF().filter((m) => m.type !== MessageType.Vote)).toEqual([]);
    } finally {
      // Once saved (also when an expectation failed: the close must not wait on the gate).
      gate.open();
    }
    // Then it leads the new term and commits in it.
    c.release();
    for (let i = 0; i < 50 && c.leader()?.self !== f.self; i++) await c.tick();
    const now = await c.waitLeader();
    expect(now.self).toBe(f.self);
    expect(now.leaderEpoch).toBe(term + 1);
    const acked = now.propose(batch(9), -1);
    await c.tick(3);
    await expect(acked).resolves.toMatchObject({ baseOffset: expect.any(Number) });
  });
});

describe('PartitionReplica: acks=1 and the pending bound', () => {
  it('answers acks=1 once the leader wrote the batch, before any follower has it', async () => {
    const c = open({ seed: 31, replica: { pendingBytesMax: 180 } });
    await c.startAll();
    const l = await c.waitLeader();
    for (const f of c.live()) if (f !== l) c.setLink(l.self, f.self, 'hold');
    const hw = l.highWatermark;
    const one = l.propose(batch(1), 1);
    const all = l.propose(batch(2), -1);
    let allAnswered = false;
    void all.then(() => {
      allAnswered = true;
    });
    await c.tick(1);
    const r = await one;
    expect(l.logEndOffset).toBeGreaterThan(r.lastOffset);
    expect(l.highWatermark).toBe(hw);
    expect(allAnswered).toBe(false);
    // Bytes waiting beyond pendingBytesMax: a retriable, typed refusal.
    const full = await l.propose(batch(3, 20), -1).catch((e: unknown) => e);
    expect((full as { code: number }).code).toBe(ErrorCode.REPLICA_PROPOSALS_FULL);
    expect((full as { retriable: boolean }).retriable).toBe(true);
    c.release();
    await c.tick(2);
    await all;
    expect(l.highWatermark).toBeGreaterThan(r.lastOffset);
  });
});

describe('PartitionReplica: the broker-wide uncommitted budget', () => {
  it('refuses produce (REPLICA_PROPOSALS_FULL, retriable) across partitions once the broker holds its budget uncommitted, and frees it at commit', async () => {
    const budget = new ByteBudget('uncommitted replication', 3 * batch(0).length);
    const a = open({ seed: 31, replica: { uncommittedBudget: budget } });
    await a.startAll();
    const la = await a.waitLeader();
    // A second partition whose leader shares the broker's budget.
    const b = new ReplicaCluster({ seed: 32, replica: { uncommittedBudget: budget } });
    try {
      await b.startAll();
      const lb = await b.waitLeader();
      // Nothing commits on partition a while its leader's appends are held.
      for (const f of [1, 2, 3]) if (f !== la.self) a.setLink(la.self, f, 'hold');
      const first = [la.propose(batch(0), -1), la.propose(batch(0), 1)];
      await a.settle();
      expect(budget.used).toBe(2 * batch(0).length);
      // acks=1 was answered at the leader's write, yet its bytes stay reserved until commit.
      await first[1];
      expect(budget.used).toBe(2 * batch(0).length);
      const third = lb.propose(batch(0), -1);
      let refused: unknown = null;
      await lb.propose(batch(0), -1).catch((err: unknown) => {
        refused = err;
      });
      expect((refused as { code: number }).code).toBe(ErrorCode.REPLICA_PROPOSALS_FULL);
      expect((refused as { retriable: boolean }).retriable).toBe(true);
      expect(budget.used).toBe(3 * batch(0).length);
      await b.tick(2);
      await third;
      expect(budget.used).toBe(2 * batch(0).length);
      a.release();
      await a.tick(2);
      await Promise.all(first);
      expect(budget.used).toBe(0);
      const again = lb.propose(batch(0), -1);
      await b.tick(2);
      await again;
      expect(budget.used).toBe(0);
    } finally {
      await b.closeAll();
    }
  });

  it('gives the reservations back when the leader loses its role or closes', async () => {
    const budget = new ByteBudget('uncommitted replication', 1 << 20);
    const c = open({ seed: 33, replica: { uncommittedBudget: budget } });
    await c.startAll();
    const l = await c.waitLeader();
    c.isolate(l.self);
    const p = l.propose(batch(0), -1).catch((err: unknown) => err);
    await c.settle();
    expect(budget.used).toBe(batch(0).length);
    await c.stop(l.self);
    expect(((await p) as { code: number }).code).toBe(ErrorCode.NOT_LEADER_OR_FOLLOWER);
    expect(budget.used).toBe(0);
  });
});

describe('PartitionReplica: membership', () => {
  it('adds and removes a voter through configuration entries stored as control batches', async () => {
    const c = open({ seed: 41 });
    c.addNode(4);
    await c.startAll();
    const l = await c.waitLeader(200, [1, 2, 3]);
    const acks: Array<Promise<ProduceResult>> = [];
    for (let tag = 0; tag < 4; tag++) acks.push(l.propose(batch(tag), -1));
    await c.tick(2);
    await Promise.all(acks);
    const adding = l.changeMembership({ type: ConfChangeType.AddVoter, node: asNodeId(4) });
    await c.tick(3);
    await adding;
    expect(l.configuration.voters).toEqual([1, 2, 3, 4]);
    await catchUp(c, 200);
    const w = walk(await expectIdenticalCommitted(c), 0);
    expect(w.controlBatches).toBe(2); // the no-op and the configuration entry
    expect(l.inSyncReplicas()).toEqual([1, 2, 3, 4]);
    // Node 4 restarts: its configuration comes back from the control batch on disk.
    await c.crash(4);
    await c.start(4);
    expect(c.replica(4).configuration.voters).toEqual([1, 2, 3, 4]);
    await catchUp(c, 200);
    const removing = l.changeMembership({ type: ConfChangeType.Remove, node: asNodeId(4) });
    // A second change while the first is pending: refused, retriable.
    const second = await l
      .changeMembership({ type: ConfChangeType.AddLearner, node: asNodeId(5) })
      .catch((e: unknown) => e);
    expect((second as { code: number }).code).toBe(ErrorCode.REPLICA_CONF_CHANGE_IN_PROGRESS);
    expect((second as { retriable: boolean }).retriable).toBe(true);
    await c.tick(3);
    await removing;
    expect(l.configuration.voters).toEqual([1, 2, 3]);
    const more = l.propose(batch(9), -1);
    await c.tick(2);
    await more;
  });
});
