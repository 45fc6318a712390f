// The log cleaner's scheduler on partition replicas (log-compaction.ts):
//   - replicas compact independently; a new follower catches up from a compacted leader (served
//     the cleaned batches from disk) and reads match; a compacted replica restarts (its offset
//     translator and term runs agree with the cleaned log) and leads;
//   - without keepEveryBatch the replica's recovery refuses the log (why the option exists);
//   - the property (issue 10): after compaction, reading the partition gives the latest value of
//     every live key, against a Map model, across power cuts in the middle of a clean
//     (MemoryFileSystem, a cut at a random file operation), on a replica with the scheduler;
//   - scheduling: policy, dirty ratio, one at a time, abort on remove, the pure bound.
import {
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  splitBatches,
  validateBatch,
} from '@streambus/protocol';
import { type NodeId, seededRandom } from '@streambus/raft';
import {
  CleanerKeyIndex,
  type CrashMode,
  FaultyFileSystem,
  type FileSystem,
  LogCleaner,
  LsmStore,
  MemoryFileSystem,
  type PartitionLogConfig,
} from '@streambus/storage';
import fc from 'fast-check';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { type GroupHost, MemoryTransportHub } from './cluster/contract.js';
import { defaultConfig } from './config.js';
import {
  type CompactionTarget,
  cleanBound,
  LogCompaction,
  type LogCompactionOptions,
  loopPauseMs,
} from './log-compaction.js';
import { ReplicatedPartition } from './replicated-partition.js';
import { PartitionReplica } from './replication/partition-replica.js';
import { KEY, ReplicaCluster } from './replication/replica-test-cluster.js';
import { resolveTopicConfig, type TopicConfig } from './topic-config.js';

const silent = pino({ level: 'silent' });
const DATA = '/data';
const DIR = '/data/t-7-0';
const NOW = 10_000_000;
const LOG_CONFIG: PartitionLogConfig = {
  segmentBytesMax: 1024,
  segmentAgeMsMax: 60 * 60 * 1000,
  indexIntervalBytes: 128,
  retentionBytesMax: -1,
  retentionMs: -1,
  durability: 'always',
  flushIntervalMs: 5,
};

function topicConfig(overrides: Record<string, string> = {}): TopicConfig {
  return resolveTopicConfig(
    defaultConfig().defaults,
    {
      'cleanup.policy': 'compact',
      'delete.retention.ms': '100',
      'min.cleanable.dirty.ratio': '0.01',
      ...overrides,
    },
    16 * 1024 * 1024,
  );
}

function compactionOn(
  fs: FileSystem,
  registry: Registry | null = null,
  overrides: Partial<LogCompactionOptions> = {},
): LogCompaction {
  return new LogCompaction({
    fs,
    dataDir: DATA,
    bytesPerSecond: 1e12,
    intervalMs: 60_000,
    logger: silent,
    registry,
    nowMs: () => NOW,
    readBytesMax: 512,
    loopShareMax: 1,
    ...overrides,
  });
}

function targetOf(
  replica: PartitionReplica,
  config: () => TopicConfig = () => topicConfig(),
  name = '7/0',
): CompactionTarget {
  return {
    name,
    topic: 't',
    partition: 0,
    dir: DIR,
    indexIntervalBytes: LOG_CONFIG.indexIntervalBytes,
    log: () => (replica.offlineError === null ? replica.partitionLog : null),
    commitPoint: () => replica.highWatermark,
    config,
  };
}

/** A batch of keyed records: [key, value] (value null: a tombstone), timestamp `ts`. */
function keyed(records: ReadonlyArray<readonly [string, string | null]>, ts = 1000): Buffer {
  return encodeRecordBatch(
    records.map(([k, v]) => ({
      key: Buffer.from(k),
      value: v === null ? null : Buffer.from(v),
      timestamp: ts,
    })),
    { timestamp: ts },
  );
}

interface Rec {
  offset: number;
  key: string;
  value: string | null;
}

/** Every data record a replica serves (below its high watermark), with contiguous batch headers. */
async function readAll(r: PartitionReplica): Promise<{ records: Rec[]; headers: string[] }> {
  const records: Rec[] = [];
  const headers: string[] = [];
  let at = r.logStartOffset;
  let expected = at;
  while (at < r.highWatermark) {
    const { data, nextOffset } = await r.read(at, 4096);
    if (data.length === 0) break;
    for (const { position, size } of splitBatches(data)) {
      const h = validateBatch(data, position);
      expect(h.baseOffset, 'batches contiguous').toBe(expected);
      expected = h.baseOffset + h.lastOffsetDelta + 1;
      headers.push(`${h.baseOffset}+${h.lastOffsetDelta}@${h.partitionLeaderEpoch}`);
      const d = decodeRecordBatch(data.subarray(position, position + size));
      if (d.isControl) continue;
      for (const rec of d.records) {
        records.push({
          offset: rec.offset,
          key: Buffer.from(rec.key!).toString(),
          value: rec.value === null ? null : Buffer.from(rec.value).toString(),
        });
      }
    }
    at = nextOffset;
  }
  return { records, headers };
}

/** The model: every acknowledged record by offset, and the latest per key. */
class Model {
  readonly byOffset = new Map<number, Rec>();
  readonly latest = new Map<string, Rec>();
  add(r: Rec): void {
    this.byOffset.set(r.offset, r);
    this.latest.set(r.key, r);
  }
  addBatch(baseOffset: number, records: ReadonlyArray<readonly [string, string | null]>): void {
    records.forEach(([key, value], i) => {
      this.add({ offset: baseOffset + i, key, value });
    });
  }
}

/**
 * What a reader sees is the model compacted: each record read is the one acknowledged at its
 * offset; every live key's latest value is read at its offset, and is the last read for its key;
 * a deleted key is absent or last read as its tombstone.
 */
function checkAgainstModel(read: readonly Rec[], model: Model): void {
  const last = new Map<string, Rec>();
  for (const r of read) {
    expect(r, `record at ${r.offset}`).toEqual(model.byOffset.get(r.offset));
    last.set(r.key, r);
  }
  for (const [key, latest] of model.latest) {
    const got = last.get(key);
    if (latest.value !== null) expect(got, `live key ${key}`).toEqual(latest);
    else if (got !== undefined) expect(got, `deleted key ${key}`).toEqual(latest);
  }
}

let cluster: ReplicaCluster | null = null;
const compactions: LogCompaction[] = [];
afterEach(async () => {
  for (const c of compactions.splice(0)) await c.close();
  await cluster?.closeAll();
  cluster = null;
});

async function catchUp(c: ReplicaCluster, ticksMax = 400): Promise<void> {
  for (let i = 0; i < ticksMax; i++) {
    const l = c.leader();
    if (l && c.live().every((r) => r.highWatermark === l.logEndOffset)) return;
    await c.tick();
  }
  throw new Error(
    `replicas did not catch up: ${c
      .live()
      .map(
        (r) =>
          `${r.self} ${r.role} hw ${r.highWatermark} end ${r.logEndOffset} ${r.offlineError?.message ?? ''}`,
      )
      .join('; ')}`,
  );
}

/** Proposes `count` batches over 6 keys (a tombstone now and then) on the leader; acks=all. */
async function produceKeyed(
  c: ReplicaCluster,
  model: Model,
  from: number,
  count: number,
): Promise<void> {
  const l = c.leader()!;
  const acks: Array<Promise<void>> = [];
  for (let i = from; i < from + count; i++) {
    const recs: Array<[string, string | null]> = [
      [`k${i % 6}`, i % 17 === 5 ? null : `v${i}-${'x'.repeat(i % 23)}`],
      [`k${(i * 5 + 1) % 6}`, `w${i}`],
    ];
    acks.push(l.propose(keyed(recs), -1).then((r) => model.addBatch(r.baseOffset, recs)));
    if (acks.length % 10 === 0) await c.tick();
  }
  await c.tick(2);
  await Promise.all(acks);
}

/** A cluster of one (LOG_CONFIG) holding `count` keyed batches, as the test's cluster. */
async function oneReplica(seed: number, count: number): Promise<ReplicaCluster> {
  const c = new ReplicaCluster({ ids: [1], seed, logConfig: LOG_CONFIG });
  cluster = c;
  await c.startAll();
  await c.waitLeader();
  await produceKeyed(c, new Model(), 0, count);
  return c;
}

describe('log compaction on partition replicas', () => {
  it('a new follower catches up from a compacted leader; reads match; the compacted replica restarts and leads', async () => {
    const c = new ReplicaCluster({
      seed: 3,
      logConfig: LOG_CONFIG,
      replica: { tailLimits: { tailEntriesMax: 4, tailBytesMax: 2048 } },
    });
    cluster = c;
    // Node 3 has never run: it joins later with an empty log.
    const newcomer = 3;
    await c.start(1);
    await c.start(2);
    let l = await c.waitLeader(300, [1, 2]);
    const model = new Model();
    await produceKeyed(c, model, 0, 120);
    // Every live replica compacts its own log below its own commit point.
    const runs: number[] = [];
    for (const r of c.live()) {
      const comp = compactionOn(c.node(r.self).fs);
      compactions.push(comp);
      comp.add(targetOf(r));
      const run = await comp.runOnce();
      expect(run).not.toBeNull();
      expect(run!.bound).toBeLessThanOrEqual(r.highWatermark);
      expect(run!.report.cleanedSegments.length).toBeGreaterThan(2);
      runs.push(run!.report.recordsRemoved);
    }
    expect(Math.min(...runs)).toBeGreaterThan(50);
    const leaderView = await readAll(l);
    checkAgainstModel(leaderView.records, model);
    expect(leaderView.records.length).toBeLessThan(model.byOffset.size / 2);
    // The newcomer starts from an empty log and is served the cleaned batches from the
    // leader's disk (behind its 4-entry in-memory tail).
    const prefetchesBefore = l.stats().prefetches;
    await c.start(newcomer);
    await catchUp(c);
    expect(l.stats().prefetches).toBeGreaterThan(prefetchesBefore);
    const fresh = await readAll(c.replica(newcomer));
    checkAgainstModel(fresh.records, model);
    // Same batches (offsets, epochs) on every replica; the newcomer holds only what the
    // leader's cleaned log held below its bound.
    expect(fresh.headers).toEqual(leaderView.headers);
    const bound = Math.min(...c.live().map((r) => r.highWatermark));
    const belowBound = (v: { records: Rec[] }) => v.records.filter((r) => r.offset < bound);
    expect(belowBound(fresh).length).toBeLessThanOrEqual(belowBound(leaderView).length);
    // The compacted leader restarts: recovery's header scan agrees with its translator and
    // term runs; then the newcomer leads and more records go in on top of the gaps.
    await c.stop(l.self);
    await c.start(l.self);
    await catchUp(c);
    c.replica(c.leader()!.self).transferLeadership(newcomer as NodeId);
    for (let i = 0; i < 100 && c.leader()?.self !== newcomer; i++) await c.tick();
    l = await c.waitLeader(300);
    expect(l.self).toBe(newcomer);
    await produceKeyed(c, model, 120, 20);
    await catchUp(c);
    for (const r of c.live()) checkAgainstModel((await readAll(r)).records, model);
  }, 60_000);

  it('without keepEveryBatch a cleaned replica log no longer matches its Raft entries (recovery refuses it)', async () => {
    const c = await oneReplica(4, 80);
    const r = c.replica(1);
    const store = await LsmStore.open(c.node(1).fs, '/lsm');
    const cleaner = new LogCleaner(
      c.node(1).fs,
      DIR,
      r.partitionLog,
      new CleanerKeyIndex(store, 'x'),
      { indexIntervalBytes: LOG_CONFIG.indexIntervalBytes },
    );
    const report = await cleaner.clean({
      bound: r.highWatermark,
      deleteRetentionMs: 100,
      nowMs: NOW,
    });
    expect(report.cleanedSegments.length).toBeGreaterThan(0);
    await store.close();
    await c.stop(1);
    const err = await c.start(1).catch((e: unknown) => e);
    const offline = err instanceof Error ? err : c.replica(1).offlineError;
    expect(offline, 'a gap batch spanning several entries breaks the entry count').toBeTruthy();
  });

  it('schedules only compacted partitions, the dirtiest first, and aborts a clean whose partition closes', async () => {
    const c = await oneReplica(5, 60);
    const r = c.replica(1);
    const registry = new Registry();
    const comp = compactionOn(c.node(1).fs, registry);
    compactions.push(comp);
    let policy = 'delete';
    comp.add(targetOf(r, () => topicConfig({ 'cleanup.policy': policy })));
    expect(await comp.runOnce()).toBeNull();
    policy = 'compact,delete';
    const run = await comp.runOnce();
    expect(run?.report.cleanedSegments.length).toBeGreaterThan(0);
    expect(run?.dirtyRatio).toBe(1);
    // Nothing new below the bound: not due again.
    expect(await comp.runOnce()).toBeNull();
    const text = await registry.metrics();
    expect(text).toMatch(/streambus_log_cleaner_runs_total\{result="cleaned"\} 1/);
    expect(text).toMatch(/streambus_log_cleaner_bytes_written_total [1-9]/);
    expect(text).toMatch(/streambus_log_cleaner_records_removed_total [1-9]/);
    // A clean parked on its budget stops when its partition is removed.
    await produceKeyed(c, new Model(), 60, 60);
    let release: () => void = () => {};
    const parked = compactionOn(c.node(1).fs, null, {
      bytesPerSecond: 1,
      readBytesMax: 64 * 1024,
      sleep: () =>
        new Promise<void>((resolve) => {
          release = resolve;
        }),
    });
    compactions.push(parked);
    parked.add(targetOf(r));
    const running = parked.runOnce();
    await new Promise((res) => setTimeout(res, 20));
    const removed = parked.remove('7/0');
    release();
    await removed;
    expect(await running).toBeNull();
    expect(parked.runsTotal).toBe(1);
    expect((await c.node(1).fs.readdir(DIR)).some((n) => n.endsWith('.tmp'))).toBe(false);
  });

  it('close ends a clean that sleeps on its budget at once (its sleeps are woken, not sat out)', async () => {
    const c = await oneReplica(7, 60);
    // 1 KiB/s with a 1 KiB burst: the first 4 KiB slice waits about 3 s, and so on.
    const comp = compactionOn(c.node(1).fs, null, { bytesPerSecond: 1024, readBytesMax: 4096 });
    comp.add(targetOf(c.replica(1)));
    const running = comp.runOnce();
    for (let i = 0; i < 200 && comp.ioBudget.waitedMs === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(comp.ioBudget.waitedMs).toBeGreaterThan(0);
    const started = Date.now();
    await comp.close();
    expect(await running).toBeNull();
    expect(Date.now() - started).toBeLessThan(500);
  });

  it('cleans again when kept tombstones come due, without new writes', async () => {
    const c = await oneReplica(9, 40);
    const l = c.leader()!;
    // The last records of k0 and k1 are tombstones (timestamp 1000), then other keys roll
    // segments so they sit in sealed segments below the high watermark.
    const acks = [
      l.propose(
        keyed([
          ['k0', null],
          ['k1', null],
        ]),
        -1,
      ),
    ];
    for (let i = 0; i < 30; i++)
      acks.push(l.propose(keyed([[`z${i % 3}`, `z${i}-${'y'.repeat(40)}`]]), -1));
    await c.tick(3);
    await Promise.all(acks);
    let now = 1050;
    const comp = compactionOn(c.node(1).fs, null, { nowMs: () => now });
    compactions.push(comp);
    comp.add(targetOf(c.replica(1)));
    // delete.retention.ms 100: at 1050 the tombstones are kept.
    const first = await comp.runOnce();
    expect(first?.report.tombstonesRemoved).toBe(0);
    expect(first?.report.tombstoneKeptMinTimestamp).toBe(1000);
    // Nothing dirty and nothing due: no clean.
    now = 1100;
    expect(await comp.runOnce()).toBeNull();
    // Due (1000 + 100 < now): cleaned although the dirty ratio is 0.
    now = 1101;
    const due = await comp.runOnce();
    expect(due?.dirtyRatio).toBe(0);
    // k0, k1, and k3 (the fill's last tombstone, batch 39).
    expect(due?.report.tombstonesRemoved).toBe(3);
    expect(due?.report.tombstoneKeptMinTimestamp).toBeNull();
    const { records } = await readAll(c.replica(1));
    expect(records.filter((r) => ['k0', 'k1', 'k3'].includes(r.key))).toEqual([]);
    // And not again.
    now = 5000;
    expect(await comp.runOnce()).toBeNull();
  });

  it('a live change to cleanup.policy delete stops a clean in progress', async () => {
    const c = await oneReplica(8, 60);
    const registry = new Registry();
    // 1 KiB/s with a 1 KiB burst: the clean sleeps on its budget for seconds.
    const comp = compactionOn(c.node(1).fs, registry, { bytesPerSecond: 1024, readBytesMax: 4096 });
    compactions.push(comp);
    let policy = 'compact';
    comp.add(targetOf(c.replica(1), () => topicConfig({ 'cleanup.policy': policy })));
    const running = comp.runOnce();
    for (let i = 0; i < 200 && comp.ioBudget.waitedMs === 0; i++) {
      await new Promise((r) => setTimeout(r, 5));
    }
    expect(comp.ioBudget.waitedMs).toBeGreaterThan(0);
    const started = Date.now();
    policy = 'delete';
    expect(await running).toBeNull();
    expect(Date.now() - started).toBeLessThan(1000);
    expect(await registry.metrics()).toMatch(
      /streambus_log_cleaner_runs_total\{result="aborted"\} 1/,
    );
    expect((await c.node(1).fs.readdir(DIR)).some((n) => n.endsWith('.tmp'))).toBe(false);
    // Not scheduled again while the policy lacks compact.
    expect(await comp.runOnce()).toBeNull();
    expect(comp.runsTotal).toBe(1);
  });

  it('retention stops for a topic switched to compact live; compact,delete keeps it', async () => {
    const c = new ReplicaCluster({
      ids: [1],
      seed: 6,
      logConfig: { ...LOG_CONFIG, retentionMs: 1 },
    });
    cluster = c;
    await c.startAll();
    await c.waitLeader();
    await produceKeyed(c, new Model(), 0, 40);
    const r = c.replica(1);
    const served = await ReplicatedPartition.open(
      't',
      0,
      topicConfig(),
      { dir: '', open: async () => r, remove: () => undefined },
      10,
    );
    const retain = async () => {
      const done = served.enforceRetention();
      await c.tick(3);
      await done;
      await c.tick(3);
    };
    await retain();
    expect(r.logStartOffset).toBe(0);
    served.setConfig(topicConfig({ 'cleanup.policy': 'compact,delete' }));
    await retain();
    expect(r.logStartOffset).toBeGreaterThan(0);
  });

  it('loopPauseMs keeps the cleaner within its share of the event loop', () => {
    expect(loopPauseMs(10, 0.5)).toBe(10);
    expect(loopPauseMs(10, 0.25)).toBe(30);
    expect(loopPauseMs(10, 1)).toBe(0);
    expect(loopPauseMs(0, 0.5)).toBe(0);
    // ran / (ran + pause) is the share
    expect(6 / (6 + loopPauseMs(6, 0.2))).toBeCloseTo(0.2);
  });

  it('cleanBound is min(commit point, active segment base); cleanable only with a sealed segment below it', () => {
    const ext = [
      { baseOffset: 0, nextOffset: 10, sealed: true },
      { baseOffset: 10, nextOffset: 20, sealed: true },
      { baseOffset: 20, nextOffset: 25, sealed: false },
    ];
    expect(cleanBound(ext, 100)).toEqual({ bound: 20, cleanable: true });
    expect(cleanBound(ext, 15)).toEqual({ bound: 15, cleanable: true });
    expect(cleanBound(ext, 9)).toEqual({ bound: 9, cleanable: false });
    expect(cleanBound([{ baseOffset: 0, nextOffset: 5, sealed: false }], 5)).toEqual({
      bound: 0,
      cleanable: false,
    });
  });
});

// ---- the property, across power cuts ---------------------------------------------------------

class NoHost implements GroupHost {
  add(): void {}
  remove(): void {}
  notify(): void {}
}

interface Node {
  replica: PartitionReplica;
  compaction: LogCompaction;
}

/** Runs the replica until it has no work (bounded). */
async function settle(r: PartitionReplica): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    if (!r.hasWork()) {
      await new Promise<void>((resolve) => setImmediate(resolve));
      if (!r.hasWork()) return;
      continue;
    }
    await r.process();
  }
  throw new Error('replica did not settle');
}

/** A cluster of one on `fs` with the scheduler, leading with its term's entry committed. */
async function openNode(fs: FileSystem, seed: number): Promise<Node> {
  const hub = new MemoryTransportHub();
  const replica = await PartitionReplica.open({
    key: KEY,
    self: 1 as NodeId,
    dir: DIR,
    fs,
    logConfig: LOG_CONFIG,
    initialVoters: [1 as NodeId],
    transport: hub.transport(1 as NodeId),
    host: new NoHost(),
    random: seededRandom(seed),
    nowMs: () => 1_000,
    tailLimits: { tailEntriesMax: 8 },
  });
  for (let i = 0; i < 300; i++) {
    if (replica.role === 'leader' && replica.highWatermark >= replica.logEndOffset) break;
    replica.tick();
    await settle(replica);
  }
  expect(replica.role).toBe('leader');
  const compaction = compactionOn(fs);
  compaction.add(targetOf(replica));
  return { replica, compaction };
}

async function propose(
  node: Node,
  records: ReadonlyArray<readonly [string, string | null]>,
): Promise<number> {
  let out: number | null = null;
  const p = node.replica.propose(keyed(records), -1).then((r) => {
    out = r.baseOffset;
  });
  for (let i = 0; i < 100 && out === null; i++) {
    await settle(node.replica);
    if (out === null) node.replica.tick();
  }
  await p;
  return out!;
}

type Step =
  | { kind: 'produce'; records: Array<[number, boolean]> }
  | { kind: 'clean' }
  | { kind: 'restart' }
  | { kind: 'cut'; at: number; mode: CrashMode };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 10,
    arbitrary: fc.record({
      kind: fc.constant('produce' as const),
      records: fc.array(fc.tuple(fc.integer({ min: 0, max: 9 }), fc.boolean()), {
        minLength: 1,
        maxLength: 4,
      }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('clean' as const) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('restart' as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('cut' as const),
      at: fc.integer({ min: 1, max: 150 }),
      mode: fc.constantFrom<CrashMode>('drop-unsynced', 'keep-prefix'),
    }),
  },
);

describe('compacted partition property (issue 10)', () => {
  it('reads give the latest value of every live key (Map model), across power cuts in the middle of a clean', async () => {
    let cutsInClean = 0;
    let removed = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(stepArb, { minLength: 20, maxLength: 80 }), async (steps) => {
        let mem = new MemoryFileSystem({ seed: 1 });
        let faulty = new FaultyFileSystem(mem);
        let node = await openNode(faulty, 1);
        const model = new Model();
        let n = 0;
        /** The bound of the latest clean that skipped nothing: below it the log is compact. */
        let fullBound = 0;
        try {
          for (const step of [...steps, { kind: 'clean' } as const]) {
            if (step.kind === 'produce') {
              const recs = step.records.map(([k, tomb], i): [string, string | null] => [
                `key-${k}`,
                tomb && k % 2 === 0 ? null : `v${n}.${i}-${'y'.repeat((n * 37 + i * 11) % 120)}`,
              ]);
              n++;
              model.addBatch(await propose(node, recs), recs);
            } else if (step.kind === 'clean') {
              const run = await node.compaction.runOnce();
              removed += run?.report.recordsRemoved ?? 0;
              if (run !== null && run.report.skippedSegments.length === 0) {
                fullBound = Math.max(fullBound, run.bound);
              }
              checkAgainstModel((await readAll(node.replica)).records, model);
            } else if (step.kind === 'restart') {
              await node.compaction.close();
              await node.replica.close();
              node = await openNode(faulty, 2 + n);
              checkAgainstModel((await readAll(node.replica)).records, model);
            } else {
              // A power cut at the clean's `at`-th file operation (if it gets that far), then
              // the broker's replica and scheduler start again from what the disk kept.
              let ops = 0;
              let after: MemoryFileSystem | null = null;
              const crashed = mem;
              faulty.inject = () => {
                if (++ops === step.at && after === null) after = crashed.crash(step.mode);
                return null;
              };
              await node.compaction.runOnce();
              faulty.inject = null;
              if (after === null) continue;
              cutsInClean++;
              await node.compaction.close();
              mem = after;
              faulty = new FaultyFileSystem(mem);
              node = await openNode(faulty, 2 + n);
              checkAgainstModel((await readAll(node.replica)).records, model);
            }
          }
          const final = (await readAll(node.replica)).records;
          checkAgainstModel(final, model);
          // The cleaner did its job below that bound: no superseded record, no tombstone.
          const below = final.filter((r) => r.offset < fullBound);
          const lastBelow = new Map(below.map((r) => [r.key, r.offset]));
          for (const r of below) {
            expect(lastBelow.get(r.key), `superseded ${r.key}@${r.offset} left`).toBe(r.offset);
            expect(r.value, `tombstone ${r.key}@${r.offset} left`).not.toBeNull();
          }
        } finally {
          await node.compaction.close();
          await node.replica.close().catch(() => undefined);
        }
      }),
      { numRuns: 25, seed: 20261201 },
    );
    // The property was exercised: cuts landed inside cleans, and cleans removed records.
    expect(cutsInClean).toBeGreaterThan(5);
    expect(removed).toBeGreaterThan(100);
  }, 120_000);
});

// The error is typed: a closing partition's clean ends LOG_CLEAN_ABORTED (retriable).
it('LOG_CLEAN_ABORTED is in the error table as retriable', async () => {
  const { errorInfo } = await import('@streambus/protocol');
  expect(errorInfo(ErrorCode.LOG_CLEAN_ABORTED)).toMatchObject({
    name: 'LOG_CLEAN_ABORTED',
    retriable: true,
  });
});
