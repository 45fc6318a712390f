// The single-node import (single-node-import.ts) over the storage MemoryFileSystem: a directory
// in the old layout (metadata.json, topics/<id>/<p> segment logs written with assigned offsets,
// <p>.producers.json snapshots, an orphan topic directory) is imported; then every record is at
// its offset with its bytes (only partitionLeaderEpoch zeroed), the metadata log holds the old
// topics, ids, configs and counters, idempotent-producer state survives (also of a producer whose
// batches retention removed), and the power is cut before every file-system step of the import
// (both crash modes): the next start imports completely or finds it imported, never a half state.
import { BatchField, ErrorCode, encodeRecordBatch, readBatchHeader } from '@streambus/protocol';
import { asNodeId, ConfChangeType, type NodeId } from '@streambus/raft';
import {
  type CrashMode,
  type FileSystem,
  MemoryFileSystem,
  PartitionLog,
  type PartitionLogConfig,
} from '@streambus/storage';
import { describe, expect, it } from 'vitest';
import { type BrokerConfig, defaultConfig } from '../config.js';
import { MetadataLogStore } from '../controller/metadata-log.js';
import { decodeSnapshot, type MetadataState } from '../controller/metadata-state.js';
import { ProducerStateTable } from '../idempotence.js';
import type { PartitionReplica } from './partition-replica.js';
import { ReplicaStore } from './replica-store.js';
import { ReplicaCluster } from './replica-test-cluster.js';
import { CrashAtStepFileSystem, PowerCutError } from './replication-test-fs.js';
import {
  IMPORT_MARKER_FILE,
  IMPORTED_METADATA_FILE,
  importedMetadataState,
  importSingleNodeStore,
  isClusterOfOne,
  parseSingleNodeMetadata,
} from './single-node-import.js';

const DATA = '/data';
const BATCHES = 8;
const SELF = 4;
const CLUSTER_ID = '0b5e43c1-7d3a-4a55-9a3e-2f1c0d9e8a77';
const LOG_CONFIG: PartitionLogConfig = {
  segmentBytesMax: 1024,
  segmentAgeMsMax: 3_600_000,
  indexIntervalBytes: 256,
  retentionBytesMax: -1,
  retentionMs: -1,
  durability: 'always',
  flushIntervalMs: 1000,
};

function brokerConfig(peers: BrokerConfig['peers'] = []): BrokerConfig {
  return {
    ...defaultConfig(),
    nodeId: SELF,
    peers,
    dataDir: DATA,
    listen: { host: '127.0.0.1', port: 0 },
    http: null,
    logLevel: 'silent',
  };
}

/** One batch as written: its offset, its bytes (as appended), and its record values. */
interface Written {
  readonly baseOffset: number;
  readonly bytes: Buffer;
}

interface Fixture {
  /** Per `<id>/<p>`: the batches appended (before any delete), the log start after deletes. */
  readonly logs: Map<string, { batches: Written[]; logStart: number; logEnd: number }>;
}

const TOPICS = [
  {
    name: 'orders',
    id: 3,
    partitions: 2,
    overrides: { 'retention.ms': '86400000', 'max.message.bytes': '65536' },
  },
  { name: 'events', id: 5, partitions: 1, overrides: {} },
];

/**
 * The old layout on `fs`: every batch appended by a PartitionLog with offsets assigned (as the
 * single-node broker did), producers 1001 (idempotent, still in the log) and 1002 (idempotent,
 * its batches all deleted below the log start of orders-1, known only from the snapshot).
 */
async function writeOldDir(fs: FileSystem): Promise<Fixture> {
  const logs: Fixture['logs'] = new Map();
  await fs.mkdir(`${DATA}/topics`);
  for (const t of TOPICS) {
    for (let p = 0; p < t.partitions; p++) {
      const dir = `${DATA}/topics/${t.id}/${p}`;
      const log = await PartitionLog.open(fs, dir, LOG_CONFIG);
      const batches: Written[] = [];
      const table = new ProducerStateTable();
      let seq1002 = 0;
      let seq1001 = 0;
      for (let b = 0; b < BATCHES; b++) {
        const records = Array.from({ length: 1 + ((b * 7 + p) % 4) }, (_, r) => ({
          key: Buffer.from(`k${b}`),
          value: Buffer.from(`${t.name}-${p}-${b}-${r}-${'x'.repeat(40)}`),
          timestamp: 1_700_000_000_000 + b,
        }));
        const idem1002 = t.id === 3 && p === 1 && b < 3;
        const idem1001 = !idem1002 && b % 3 === 0;
        const producerId = idem1002 ? 1002 : idem1001 ? 1001 : -1;
        const baseSequence = idem1002 ? seq1002 : idem1001 ? seq1001 : -1;
        const bytes = encodeRecordBatch(records, {
          producerId,
          producerEpoch: producerId < 0 ? -1 : 0,
          baseSequence,
          // Kafka clients send -1, our SDK 0: the old broker kept what it got.
          partitionLeaderEpoch: b % 2 === 0 ? -1 : 0,
          timestamp: 1_700_000_000_000 + b,
        });
        if (idem1002) seq1002 += records.length;
        if (idem1001) seq1001 += records.length;
        const copy = Buffer.from(bytes);
        const r = await log.append(bytes);
        batches.push({ baseOffset: r.baseOffset, bytes: copy });
        if (producerId >= 0) {
          table.observe(producerId, 0, baseSequence, records.length - 1, r.baseOffset);
        }
      }
      if (t.id === 3 && p === 1) {
        // delete-records inside a batch, past every batch of producer 1002.
        await log.deleteRecordsBefore(batches[4]!.baseOffset + 1);
      }
      const logStart = log.logStartOffset;
      const logEnd = log.logEndOffset;
      await log.close();
      const snapshot = JSON.stringify({ offset: logEnd, ...table.toJSON() });
      const h = await fs.open(`${DATA}/topics/${t.id}/${p}.producers.json`, 'create');
      await h.write(Buffer.from(snapshot), 0);
      await h.sync();
      await h.close();
      await fs.syncDir(`${DATA}/topics/${t.id}`);
      logs.set(`${t.id}/${p}`, { batches, logStart, logEnd });
    }
  }
  // An orphan: a topic create the old broker did not finish.
  const orphan = await PartitionLog.open(fs, `${DATA}/topics/9/0`, LOG_CONFIG);
  await orphan.append(encodeRecordBatch([{ value: Buffer.from('orphan') }]));
  await orphan.close();
  const metadata = {
    version: 1,
    clusterId: CLUSTER_ID,
    nextTopicId: 7,
    producerIdsReservedUntil: 2000,
    topics: TOPICS,
  };
  const h = await fs.open(`${DATA}/metadata.json`, 'create');
  await h.write(Buffer.from(JSON.stringify(metadata, null, 1)), 0);
  await h.sync();
  await h.close();
  await fs.syncDir(DATA);
  return { logs };
}

async function freshOldDir(seed = 1): Promise<{ fs: MemoryFileSystem; fixture: Fixture }> {
  const fs = new MemoryFileSystem({ seed });
  const fixture = await writeOldDir(fs);
  // Only what is durable: the import starts from a disk, not from the writer's page cache.
  return { fs: fs.crash('drop-unsynced'), fixture };
}

async function metadataStateOn(fs: FileSystem): Promise<MetadataState> {
  const store = await MetadataLogStore.open(fs, `${DATA}/__cluster_metadata`, {
    voters: [SELF as NodeId],
    learners: [],
  });
  try {
    expect(store.snapshotMeta().index).toBe(1);
    expect(store.snapshotMeta().conf.voters).toEqual([SELF]);
    expect(store.hardState().commit).toBe(1);
    return decodeSnapshot(store.snapshot().data);
  } finally {
    await store.close();
  }
}

/** Everything the import promises, checked on a directory after it. */
async function expectImported(fs: FileSystem, fixture: Fixture): Promise<void> {
  const names = await fs.readdir(DATA);
  expect(names).toContain(IMPORTED_METADATA_FILE);
  expect(names).not.toContain('metadata.json');
  expect(names).not.toContain(IMPORT_MARKER_FILE);
  expect(await fs.readdir(`${DATA}/topics`)).toEqual(['3', '5']);

  const state = await metadataStateOn(fs);
  expect(state.clusterId).toBe(CLUSTER_ID);
  expect(state.topicIdNext).toBe(7);
  expect(state.producerIdNext).toBe(2000);
  expect([...state.brokers.keys()]).toEqual([SELF]);
  expect([...state.topics.values()].map((t) => [t.id, t.name, t.partitions.length])).toEqual([
    [3, 'orders', 2],
    [5, 'events', 1],
  ]);
  expect(state.topics.get(3)!.configs).toEqual([
    { key: 'max.message.bytes', value: '65536' },
    { key: 'retention.ms', value: '86400000' },
  ]);
  for (const p of state.topics.get(3)!.partitions) expect(p.replicas).toEqual([SELF]);

  for (const [key, want] of fixture.logs) {
    const dir = `${DATA}/topics/${key}`;
    const store = await ReplicaStore.open({
      fs,
      dir,
      logConfig: LOG_CONFIG,
      initialConf: { voters: [99 as NodeId], learners: [] },
    });
    try {
      // The old log start 81 of orders-1 was inside a batch: moved down to its base.
      const kept = want.batches.filter((b) => {
        const h = readBatchHeader(b.bytes, 0);
        return b.baseOffset + h.lastOffsetDelta >= want.logStart;
      });
      expect(store.log.logStartOffset, key).toBe(kept[0]!.baseOffset);
      expect(store.log.logEndOffset, key).toBe(want.logEnd);
      // Snapshot at index 1, then one entry of term 0 per batch, all committed.
      expect(store.tail.snapshot().meta.index, key).toBe(1);
      expect(store.tail.lastIndex(), key).toBe(kept.length + 1);
      expect(store.hardState.commit, key).toBe(kept.length + 1);
      expect(store.tail.snapshot().meta.conf.voters, key).toEqual([SELF]);
      for (let i = 1; i <= kept.length + 1; i++) expect(store.tail.term(i as never), key).toBe(0);
      // Every batch: same offset, same bytes except partitionLeaderEpoch, which is 0.
      const read = await store.log.read(store.log.logStartOffset, 1 << 20);
      let pos = 0;
      for (const b of kept) {
        const got = read.data.subarray(pos, pos + b.bytes.length);
        expect(readBatchHeader(got, 0).baseOffset, key).toBe(b.baseOffset);
        const expected = Buffer.from(b.bytes);
        expected.writeUInt32BE(b.baseOffset >>> 0, BatchField.BASE_OFFSET + 4);
        expected.writeInt32BE(0, BatchField.PARTITION_LEADER_EPOCH);
        expect(Buffer.compare(got, expected), `${key} at ${b.baseOffset}`).toBe(0);
        pos += b.bytes.length;
      }
      expect(pos).toBe(read.data.length);
      // Idempotent producers: a retry of producer 1001's last batch is a duplicate; so is one
      // of 1002 on orders-1, whose batches are all below the log start now.
      const last1001 = kept.filter((b) => readBatchHeader(b.bytes, 0).producerId === 1001).pop()!;
      const h = readBatchHeader(last1001.bytes, 0);
      const decision = store.producers.check(
        1001,
        0,
        h.baseSequence,
        h.baseSequence + h.lastOffsetDelta,
      );
      expect(decision.kind, key).toBe('duplicate');
      if (key === '3/1') {
        const first1002 = want.batches[2]!;
        const h2 = readBatchHeader(first1002.bytes, 0);
        const d2 = store.producers.check(
          1002,
          0,
          h2.baseSequence,
          h2.baseSequence + h2.lastOffsetDelta,
        );
        expect(d2).toEqual({
          kind: 'duplicate',
          entry: expect.objectContaining({ baseOffset: first1002.baseOffset }),
        });
      }
    } finally {
      await store.close();
    }
  }
}

/** Every batch a replica serves from its log start to its high watermark: [baseOffset, bytes]. */
async function servedBatches(r: PartitionReplica): Promise<Array<[number, string]>> {
  const out: Array<[number, string]> = [];
  let offset = r.logStartOffset;
  while (offset < r.highWatermark) {
    const { data, nextOffset } = await r.read(offset, 1 << 20);
    for (let pos = 0; pos < data.length; ) {
      const h = readBatchHeader(data, pos);
      const size = 12 + data.readInt32BE(pos + BatchField.BATCH_LENGTH);
      out.push([h.baseOffset, data.subarray(pos, pos + size).toString('base64')]);
      pos += size;
    }
    if (nextOffset <= offset) throw new Error(`no progress at ${offset}`);
    offset = nextOffset;
  }
  return out;
}

describe('single-node import', () => {
  it('imports in place: offsets, bytes, topics, configs, ids and producer state kept', async () => {
    const { fs, fixture } = await freshOldDir();
    const report = await importSingleNodeStore({ fs, config: brokerConfig() });
    expect(report).not.toBeNull();
    expect(report!.clusterId).toBe(CLUSTER_ID);
    expect(report!.orphansRemoved).toEqual(['9']);
    expect(report!.partitions.map((p) => [p.topic, p.partition])).toEqual([
      ['orders', 0],
      ['orders', 1],
      ['events', 0],
    ]);
    // Every other batch was written with epoch -1: half of them zeroed per partition (fewer on
    // orders-1, whose first segment delete-records removed).
    for (const p of report!.partitions) {
      if (p.topic === 'orders' && p.partition === 1) expect(p.epochsZeroed).toBeGreaterThan(0);
      else expect(p.epochsZeroed).toBe(BATCHES / 2);
    }
    const moved = report!.partitions.find((p) => p.topic === 'orders' && p.partition === 1)!;
    expect(moved.logStartMovedFrom).toBe(fixture.logs.get('3/1')!.logStart);
    expect(moved.logStartOffset).toBe(fixture.logs.get('3/1')!.batches[4]!.baseOffset);
    await expectImported(fs, fixture);
    // A second start finds it imported: nothing to do.
    expect(await importSingleNodeStore({ fs, config: brokerConfig() })).toBeNull();
    await expectImported(fs, fixture);
  });

  it('a power cut before any file-system step of the import: the next start finishes it', async () => {
    const counted = await freshOldDir();
    const counter = new CrashAtStepFileSystem(counted.fs, Number.POSITIVE_INFINITY);
    await importSingleNodeStore({ fs: counter, config: brokerConfig() });
    const total = counter.steps;
    expect(total).toBeGreaterThan(50);
    // Every step, alternating the two crash modes; with a seed-dependent torn prefix.
    for (let cutAt = 0; cutAt <= total; cutAt++) {
      const mode: CrashMode = cutAt % 2 === 0 ? 'drop-unsynced' : 'keep-prefix';
      const { fs, fixture } = await freshOldDir(cutAt + 1);
      const cut = new CrashAtStepFileSystem(fs, cutAt);
      const first = await importSingleNodeStore({ fs: cut, config: brokerConfig() }).then(
        () => null,
        (err: unknown) => err,
      );
      if (cutAt < total) expect(first, `cut at ${cutAt}`).toBeInstanceOf(PowerCutError);
      else expect(first).toBeNull();
      const restarted = fs.crash(mode);
      await importSingleNodeStore({ fs: restarted, config: brokerConfig() });
      await expectImported(restarted, fixture);
    }
  }, 120_000);

  it('a replica added later catches up: the snapshot at the imported log start, then every entry', async () => {
    // orders-1 starts above 0 (delete-records), events-0 at 0.
    for (const dir of [`${DATA}/topics/3/1`, `${DATA}/topics/5/0`]) {
      const c = new ReplicaCluster({ ids: [1], seed: 7, logConfig: LOG_CONFIG, replica: { dir } });
      const n1 = c.node(1);
      await writeOldDir(n1.fs);
      n1.fs = n1.fs.crash('drop-unsynced');
      await importSingleNodeStore({ fs: n1.fs, config: { ...brokerConfig(), nodeId: 1 } });
      c.addNode(2);
      await c.start(1);
      await c.start(2);
      const l = await c.waitLeader(200, [1]);
      const imported = await servedBatches(l);
      expect(imported.length).toBeGreaterThan(3);
      const adding = l.changeMembership({ type: ConfChangeType.AddVoter, node: asNodeId(2) });
      await c.tick(5);
      await adding;
      const more = l.propose(encodeRecordBatch([{ value: Buffer.from('after') }]), -1);
      await c.tick(3);
      const acked = await more;
      const f = c.replica(2);
      for (let i = 0; i < 200 && f.highWatermark < l.highWatermark; i++) await c.tick();
      expect(f.logStartOffset, dir).toBe(l.logStartOffset);
      const onLeader = await servedBatches(l);
      expect(onLeader.slice(0, imported.length)).toEqual(imported);
      expect(await servedBatches(f), dir).toEqual(onLeader);
      expect(onLeader.some(([base]) => base === acked.baseOffset)).toBe(true);
      await c.closeAll();
    }
  });

  it('a multi-voter cluster refuses the directory, naming the way out; nothing changes', async () => {
    const { fs } = await freshOldDir();
    const before = await fs.readFile(`${DATA}/metadata.json`);
    const peers = [SELF, 5, 6].map((id) => ({ id, host: '127.0.0.1', port: 9000 + id }));
    await expect(importSingleNodeStore({ fs, config: brokerConfig(peers) })).rejects.toMatchObject({
      code: ErrorCode.INVALID_CONFIG,
      message: expect.stringMatching(
        /start it once with --node-id 4 and no --peers .* join its cluster/,
      ),
    });
    expect(await fs.readFile(`${DATA}/metadata.json`)).toEqual(before);
    expect(await fs.readdir(DATA)).toEqual(['metadata.json', 'topics']);
    expect(isClusterOfOne(brokerConfig([{ id: SELF, host: 'h', port: 1 }]))).toBe(true);
    expect(isClusterOfOne(brokerConfig([{ id: 5, host: 'h', port: 1 }]))).toBe(false);
  });

  it('a log the replica cannot hold is refused, naming the partition; metadata.json stays', async () => {
    const { fs } = await freshOldDir();
    // A control batch (a transaction marker, say) in events-0: not a replica control entry.
    const log = await PartitionLog.open(fs, `${DATA}/topics/5/0`, LOG_CONFIG);
    await log.append(
      encodeRecordBatch([{ key: Buffer.from([0, 0, 0, 1]), value: null }], { isControl: true }),
    );
    await log.close();
    await expect(importSingleNodeStore({ fs, config: brokerConfig() })).rejects.toMatchObject({
      code: ErrorCode.SINGLE_NODE_IMPORT_FAILED,
      message: expect.stringMatching(/partition events-0 .* cannot be imported: .*control/),
    });
    expect(await fs.readdir(DATA)).toContain('metadata.json');
    expect(await fs.readdir(DATA)).not.toContain('__cluster_metadata');
  });

  it('a malformed metadata.json is a typed error naming the file', () => {
    expect(() => parseSingleNodeMetadata('{', '/d/metadata.json')).toThrow(
      /\/d\/metadata.json: not valid JSON/,
    );
    expect(() =>
      parseSingleNodeMetadata(JSON.stringify({ version: 2 }), '/d/metadata.json'),
    ).toThrow(expect.objectContaining({ code: ErrorCode.SINGLE_NODE_IMPORT_FAILED }));
    const bad = {
      version: 1,
      clusterId: 'c',
      nextTopicId: 1,
      producerIdsReservedUntil: 0,
      topics: [{ name: 't', id: 1, partitions: 0, overrides: {} }],
    };
    expect(() => parseSingleNodeMetadata(JSON.stringify(bad), 'm')).toThrow(
      /topic entry .* is malformed/,
    );
  });

  it('the metadata state: a record that does not apply is refused', () => {
    const old = parseSingleNodeMetadata(
      JSON.stringify({
        version: 1,
        clusterId: 'c1',
        nextTopicId: 3,
        producerIdsReservedUntil: 5000,
        topics: [
          { name: 'a', id: 1, partitions: 2, overrides: {} },
          { name: 'a', id: 2, partitions: 1, overrides: {} },
        ],
      }),
      'm',
    );
    expect(() => importedMetadataState(old, 1, { host: 'h', port: 9092 })).toThrow(
      /topic a already exists/,
    );
    const ok = importedMetadataState({ ...old, topics: old.topics.slice(0, 1) }, 1, {
      host: 'h',
      port: 9092,
    });
    expect(ok.topicIdNext).toBe(3);
    expect(ok.producerIdNext).toBe(5000);
    expect(ok.brokers.get(1)).toMatchObject({ host: 'h', port: 9092, fenced: true });
  });
});
