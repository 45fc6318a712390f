// OffsetsPartition over a scripted replica (an in-memory log whose commits, role and term the
// test decides) and the LSM store on a MemoryFileSystem: answers wait for their commit, a
// parked join fails with NOT_COORDINATOR when leadership goes, a failed proposal unloads and
// the next load rebuilds from the log, a load waits for the log of the election to commit, and
// the store is caught up to the log (a stale checkpoint is discarded, not trusted).
import {
  ErrorCode,
  isStreamBusError,
  readBatchHeader,
  StreamBusError,
  setBaseOffset,
  splitBatches,
} from '@streambus/protocol';
import { MemoryFileSystem } from '@streambus/storage';
import pino from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import type {
  PartitionReplica,
  ProduceResult,
  ReplicaChange,
} from '../replication/partition-replica.js';
import { OffsetsPartition } from './coordinator-partition.js';
import { GroupStateStore } from './group-store.js';
import { DEFAULT_GROUP_LIMITS, type GroupResponse } from './types.js';

const silent = pino({ level: 'silent' });

/** The parts of PartitionReplica the coordinator uses, scripted. */
class ScriptedReplica {
  role: PartitionReplica['role'] = 'leader';
  leaderEpoch = 1;
  highWatermark = 0;
  logStartOffset = 0;
  /** Commit proposals at once (else they wait for `commit()`). */
  autoCommit = true;
  /** The next proposal fails with this. */
  failNext: StreamBusError | null = null;
  private readonly batches: { base: number; bytes: Buffer }[] = [];
  private readonly listeners = new Set<(e: ReplicaChange) => void>();
  private readonly waiting: { last: number; resolve: (r: ProduceResult) => void }[] = [];

  get logEndOffset(): number {
    const b = this.batches.at(-1);
    return b === undefined ? 0 : b.base + readBatchHeader(b.bytes).lastOffsetDelta + 1;
  }

  onChange(l: (e: ReplicaChange) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  setRole(role: PartitionReplica['role'], epoch = this.leaderEpoch): void {
    this.role = role;
    this.leaderEpoch = epoch;
    for (const l of this.listeners)
      l({ kind: 'role', replica: this as unknown as PartitionReplica });
  }

  propose(batches: Buffer, acks: number): Promise<ProduceResult> {
    expect(acks).toBe(-1);
    if (this.failNext !== null) {
      const err = this.failNext;
      this.failNext = null;
      return Promise.reject(err);
    }
    let last = -1;
    for (const { position, size } of splitBatches(batches)) {
      const bytes = Buffer.from(batches.subarray(position, position + size));
      const base = this.logEndOffset;
      setBaseOffset(bytes, 0, base);
      this.batches.push({ base, bytes });
      last = base + readBatchHeader(bytes).lastOffsetDelta;
    }
    return new Promise((resolve) => {
      this.waiting.push({ last, resolve });
      if (this.autoCommit) this.commit();
    });
  }

  /** Everything proposed so far is committed. */
  commit(): void {
    this.highWatermark = this.logEndOffset;
    for (const w of this.waiting.splice(0)) {
      w.resolve({ baseOffset: w.last, lastOffset: w.last, logAppendTimeMs: 0 });
    }
  }

  async read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }> {
    const out: Buffer[] = [];
    let next = offset;
    let bytes = 0;
    for (const b of this.batches) {
      const end = b.base + readBatchHeader(b.bytes).lastOffsetDelta + 1;
      if (end <= offset || end > this.highWatermark) continue;
      if (bytes > 0 && bytes + b.bytes.length > maxBytes) break;
      out.push(b.bytes);
      bytes += b.bytes.length;
      next = end;
    }
    return { data: Buffer.concat(out), nextOffset: next };
  }
}

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let requestId = 1;

async function setup(replica = new ScriptedReplica(), fs = new MemoryFileSystem()) {
  const store = await GroupStateStore.open(fs, '/state');
  let now = 1_000_000;
  const p = new OffsetsPartition({
    index: 0,
    topicId: 7,
    replica: replica as unknown as PartitionReplica,
    store,
    limits: { ...DEFAULT_GROUP_LIMITS, initialRebalanceDelayTicks: 0 },
    requestsPendingMax: 3,
    deleteRetentionMs: () => 24 * 3600_000,
    partitionCounts: () => new Map([['t', 4]]),
    logger: silent,
    nowMs: () => now,
  });
  cleanups.push(async () => {
    await p.close();
    await store.close();
  });
  return {
    p,
    replica,
    store,
    fs,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

async function active(p: OffsetsPartition): Promise<void> {
  for (let i = 0; i < 200 && p.status !== 'active'; i++) {
    p.tick();
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(p.status).toBe('active');
}

const simpleCommit = (offset: number, groupId = 'g') =>
  ({
    type: 'commit',
    requestId: requestId++,
    groupId,
    generation: -1,
    memberId: '',
    groupInstanceId: null,
    offsets: [{ topic: 't', partition: 1, offset, metadata: `m${offset}` }],
  }) as const;

const fetchAll = (groupId = 'g') =>
  ({ type: 'fetch', requestId: requestId++, groupId, partitions: null }) as const;

const join = (memberId: string | null) =>
  ({
    type: 'join',
    requestId: requestId++,
    groupId: 'j',
    memberId,
    groupInstanceId: null,
    clientId: 'c',
    protocolType: 'consumer',
    protocols: [{ name: 'range', metadata: new Uint8Array([1]) }],
    sessionTimeoutTicks: 100,
    rebalanceTimeoutTicks: 100,
    requireKnownMemberId: false,
  }) as const;

function offsetsOf(r: GroupResponse): unknown {
  expect(r.kind).toBe('fetch');
  return r.kind === 'fetch' ? r.partitions.map((p) => [p.partition, p.offset, p.metadata]) : null;
}

describe('OffsetsPartition', () => {
  it('answers a commit only once it is committed, and a later read after it', async () => {
    const { p, replica } = await setup();
    await active(p);
    replica.autoCommit = false;
    let committed = false;
    let fetched = false;
    const c = p.submit(simpleCommit(5)).then((r) => {
      committed = true;
      return r;
    });
    const f = p.submit(fetchAll()).then((r) => {
      fetched = true;
      return r;
    });
    await new Promise((r) => setTimeout(r, 20));
    expect([committed, fetched]).toEqual([false, false]);
    replica.commit();
    expect((await c).kind).toBe('commit');
    expect(offsetsOf(await f)).toEqual([[1, 5, 'm5']]);
  });

  it('is COORDINATOR_LOAD_IN_PROGRESS until the log of its election is committed', async () => {
    const { p, replica } = await setup();
    await active(p);
    await p.submit(simpleCommit(1));
    replica.autoCommit = false;
    void p.submit(simpleCommit(2)).catch(() => undefined);
    // A new term: the entry of the old one is in the log but not yet committed.
    replica.setRole('follower', 2);
    replica.setRole('leader', 3);
    p.tick();
    await expect(p.submit(fetchAll())).rejects.toMatchObject({
      code: ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    });
    await new Promise((r) => setTimeout(r, 60));
    expect(p.status).toBe('loading');
    replica.commit();
    await active(p);
    expect(offsetsOf(await p.submit(fetchAll()))).toEqual([[1, 2, 'm2']]);
  });

  it('fails a parked join with NOT_COORDINATOR when the leadership goes, and refuses meanwhile', async () => {
    const { p, replica } = await setup();
    await active(p);
    const a = await p.submit(join(null));
    expect(a).toMatchObject({ kind: 'join', error: 0 });
    // A second member's join waits for the first member to rejoin: parked.
    const parked = p.submit(join(null));
    await new Promise((r) => setTimeout(r, 20));
    replica.setRole('follower', 2);
    await expect(parked).rejects.toMatchObject({ code: ErrorCode.NOT_COORDINATOR });
    await expect(p.submit(fetchAll())).rejects.toMatchObject({ code: ErrorCode.NOT_COORDINATOR });
  });

  it('bounds the requests it holds (COORDINATOR_REQUESTS_FULL, retriable)', async () => {
    const { p, replica } = await setup();
    await active(p);
    replica.autoCommit = false;
    const held = [p.submit(simpleCommit(1)), p.submit(simpleCommit(2)), p.submit(simpleCommit(3))];
    const refused = await p.submit(simpleCommit(4)).catch((e: unknown) => e);
    expect(isStreamBusError(refused, ErrorCode.COORDINATOR_REQUESTS_FULL)).toBe(true);
    replica.commit();
    await Promise.all(held);
    expect(offsetsOf(await p.submit(fetchAll()))).toEqual([[1, 3, 'm3']]);
  });

  it('unloads on a failed proposal and loads the log again: what was not written is gone', async () => {
    const { p, replica } = await setup();
    await active(p);
    await p.submit(simpleCommit(1));
    replica.failNext = new StreamBusError(ErrorCode.REPLICA_PROPOSALS_FULL, 'full');
    await expect(p.submit(simpleCommit(2))).rejects.toMatchObject({
      code: ErrorCode.COORDINATOR_NOT_AVAILABLE,
    });
    await active(p);
    expect(offsetsOf(await p.submit(fetchAll()))).toEqual([[1, 1, 'm1']]);
  });

  it('keeps the store caught up to the log, and discards a checkpoint the log does not back', async () => {
    const { p, replica, store, fs } = await setup();
    await active(p);
    for (let i = 1; i <= 5; i++) await p.submit(simpleCommit(i, `g${i}`));
    await p.close();
    expect(await store.checkpoint(7, 0)).toMatchObject({ offset: replica.logEndOffset });
    const stored = [];
    for await (const chunk of store.records(7, 0)) stored.push(...chunk);
    expect(stored.map((r) => r.groupId).sort()).toEqual(['g1', 'g2', 'g3', 'g4', 'g5']);

    // A checkpoint beyond the log (say, a store of another life of the partition): not trusted.
    await store.save(7, 0, [], replica.logEndOffset + 100, 1_000_000);
    await store.close();
    const again = await setup(replica, fs);
    await active(again.p);
    for (let i = 1; i <= 5; i++) {
      expect(offsetsOf(await again.p.submit(fetchAll(`g${i}`)))).toEqual([[1, i, `m${i}`]]);
    }
    expect(await again.store.checkpoint(7, 0)).toMatchObject({ offset: replica.logEndOffset });
  });

  it('expires the offsets of an empty group after the retention, from its tick', async () => {
    const { p, advance } = await setup();
    await active(p);
    await p.submit(simpleCommit(9));
    advance(DEFAULT_GROUP_LIMITS.offsetsRetentionTicks * 100 + 1000);
    p.tick();
    expect(offsetsOf(await p.submit(fetchAll()))).toEqual([]);
  });
});
