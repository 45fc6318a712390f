// Importing a data directory written by the single-node broker (metadata.json, before issue 9)
// into a cluster of one, in place: the segment files stay where they are and become the
// partitions' Raft logs; no record byte is copied. Offsets (log start, log end, every record's),
// topic ids, partition counts, topic configs, the cluster id, the producer-id high-water mark
// and the idempotent-producer state are kept.
//
// DESIGN DECISION: how the existing batches relate to the Raft log. Every existing batch becomes
// one Raft entry of TERM 0, from index 2 on; the replica snapshot is at index 1, term 0, with
// start offset = the log start and no data of its own (only the producer state of producers whose
// batches are all below the log start). Why this and not "the imported log is a snapshot base"
// (Raft log starting after it, the translator mapping index I0 to the log end):
//   - the replica code needs no change and no special case: an imported partition is exactly a
//     replicated log whose entries all have term 0. Recovery, the offset translator (rebuilt
//     from the scan), the term runs (one run of term 0), reads, retention through the group and
//     truncation all treat it as any other log;
//   - followers added later catch up by the ordinary paths: a new replica (empty log, snapshot
//     index 0) is behind the leader's first index 2, so it gets the snapshot (InstallSnapshot:
//     its log restarts at the imported log start, which may be above 0) and then every imported
//     entry by append, read from the segment log behind the tail (prefetch). (The snapshot is at
//     index 1, not 0, for this: at index 0 a fresh replica would look as if it had the same
//     snapshot, and would place entry 1 at offset 0, not at the log start.) With a snapshot base,
//     a follower would get a snapshot whose data holds no records and would start its log at the
//     old log end: every imported record would be missing on it, and lost once it leads;
//   - term 0 is below every term the group ever elects (the first election is term 1), so the
//     imported entries are committed history that no leader can contradict.
// The price: `partitionLeaderEpoch` is the term, and the single-node broker stored whatever the
// producer sent there (0 from our SDK, -1 from Kafka clients). It is set to 0 in place (a chunk
// of the segment file at a time; the field is outside the batch CRC: records and CRC are
// untouched; a chunk with every epoch at 0 is not written). The imported entries are marked
// committed (the partition's hard state has
// commit = last imported index), so the high watermark is the log end at once.
//
// The metadata: the controller's metadata log is written with one snapshot (index 1, term 1,
// voters [this node]) holding the state the old metadata.json describes: the cluster id, this
// broker (registered, fenced until it registers with its real address at start), every topic with
// its id, partitions (replicas [this node]) and config overrides, `topicIdNext` and
// `producerIdNext` past every id the old broker handed out. Index 1, not 0: a broker that joins
// later has an empty metadata log and so gets this snapshot through InstallSnapshot.
//
// Steps, each idempotent; the commit point is step 5 (until then metadata.json is what the
// directory is, and the next start does the import again from it):
//   1. the marker file `single-node-import.inprogress` (names that an import owns the directory
//      state between here and step 6);
//   2. topic directories no topic of metadata.json owns are removed (what the old broker's start
//      did: an interrupted delete or create);
//   3. per partition: the old producer-state snapshot `topics/<id>/<p>.producers.json` is moved
//      into the partition directory (`single-node-producers.json`); the epochs are zeroed in
//      every segment file (fsync); the log is opened (storage recovery, as the old broker would);
//      a log start inside a batch is moved down to that batch's base offset (partition.meta; the
//      replicated log moves its start only at batch boundaries, as its delete-records rounds
//      down); `raft-snapshot` is written (start offset, the producer state of producers whose
//      batches are all below the log start); the replica store is opened on it, which scans and
//      checks the whole log (contiguous offsets, no foreign control batch, every term 0) and
//      writes the term-run table; the hard state gets commit = the last imported index;
//   4. `__cluster_metadata` is removed if an earlier attempt left one, and written afresh;
//   5. metadata.json is renamed to `metadata.json.imported` and the rename made durable: COMMIT;
//   6. the marker is removed.
// A crash before 5 leaves metadata.json: the next start repeats 1-6 (each step gives the same
// result again). A crash after 5 leaves a cluster directory (and maybe the marker, removed at the
// next start). The old broker can still read everything the import leaves: metadata.json only
// changes its name, the segment files keep their records (epochs aside, which it ignores), the
// extra files are ignored by it: docs/replication.md "Upgrading a single-node data directory"
// says how to go back.
import { join } from 'node:path';
import {
  BatchField,
  ErrorCode,
  RECORD_BATCH_MAGIC,
  RECORD_BATCH_MIN_LENGTH,
  readBatchHeader,
  StreamBusError,
} from '@streambus/protocol';
import type { ConfState, LogIndex, NodeId, Snapshot, Term } from '@streambus/raft';
import {
  decodePartitionMeta,
  type FileSystem,
  isNotFound,
  joinPath,
  PARTITION_META_FILE,
  PartitionLog,
  readFully,
  removeTree,
  writePartitionMeta,
} from '@streambus/storage';
import type { Logger } from 'pino';
import type { BrokerConfig, HostPort } from '../config.js';
import { MetadataLogStore } from '../controller/metadata-log.js';
import type { ConfigEntry, MetadataRecord } from '../controller/metadata-records.js';
import {
  applyRecord,
  decodeSnapshot,
  EMPTY_METADATA_STATE,
  encodeSnapshot,
  type MetadataState,
} from '../controller/metadata-state.js';
import { type ProducerStateSnapshot, ProducerStateTable } from '../idempotence.js';
import { partitionLogConfig } from '../storage-log.js';
import { resolveTopicConfig } from '../topic-config.js';
import { encodeSnapshotData, SNAPSHOT_FILE, saveSnapshot } from './replica-files.js';
import { producersAt } from './replica-producers.js';
import { ReplicaStore } from './replica-store.js';

export const SINGLE_NODE_METADATA_FILE = 'metadata.json';
export const IMPORTED_METADATA_FILE = 'metadata.json.imported';
export const IMPORT_MARKER_FILE = 'single-node-import.inprogress';
/** Where the old producer-state snapshot of a partition is kept after the import. */
export const IMPORTED_PRODUCERS_FILE = 'single-node-producers.json';
/** The metadata log directory (cluster-node.ts METADATA_DIR). */
const METADATA_DIR = '__cluster_metadata';
const SINGLE_NODE_METADATA_VERSION = 1;
/** The incarnation of the broker record the import writes (it re-registers at start). */
export const IMPORT_INCARNATION = 'single-node-import';
/** The replica snapshot of an imported partition (entries follow from index 2). */
export const IMPORTED_SNAPSHOT_INDEX = 1 as LogIndex;
const SEGMENT_LOG_RE = /^\d{20}\.log$/;
/** Bytes read per step of the epoch walk over a segment file. */
const EPOCH_WALK_CHUNK_BYTES = 1024 * 1024;
/** magic is the last header byte the walk needs. */
const WALK_HEADER_BYTES = BatchField.MAGIC + 1;

/** metadata.json (version 1) of the single-node broker, as it wrote it. */
export interface SingleNodeMetadata {
  readonly clusterId: string;
  readonly nextTopicId: number;
  readonly producerIdsReservedUntil: number;
  readonly topics: ReadonlyArray<{
    readonly name: string;
    readonly id: number;
    readonly partitions: number;
    readonly overrides: Readonly<Record<string, string>>;
  }>;
}

export interface ImportedPartition {
  readonly topic: string;
  readonly topicId: number;
  readonly partition: number;
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  /** Batches, now the entries 2..batches+1 of term 0. */
  readonly batches: number;
  /** Batches whose partitionLeaderEpoch was set to 0. */
  readonly epochsZeroed: number;
  /** The old log start when it was inside a batch (moved down to the batch base), else null. */
  readonly logStartMovedFrom: number | null;
}

export interface SingleNodeImportReport {
  readonly clusterId: string;
  readonly partitions: readonly ImportedPartition[];
  readonly topicIdNext: number;
  readonly producerIdNext: number;
  /** Topic directories no topic owned (removed, as the old broker's start did). */
  readonly orphansRemoved: readonly string[];
}

export interface SingleNodeImportOptions {
  readonly fs: FileSystem;
  readonly config: BrokerConfig;
  readonly logger?: Logger;
}

function importFailed(message: string, cause?: unknown): StreamBusError {
  return new StreamBusError(
    ErrorCode.SINGLE_NODE_IMPORT_FAILED,
    message,
    cause === undefined ? undefined : { cause },
  );
}

/** True when the broker's voters are itself alone (no --peers, or --peers naming only itself). */
export function isClusterOfOne(config: BrokerConfig): boolean {
  return (
    config.peers.length === 0 ||
    (config.peers.length === 1 && config.peers[0]!.id === config.nodeId)
  );
}

/** Parses metadata.json (version 1); SINGLE_NODE_IMPORT_FAILED naming what is wrong. */
export function parseSingleNodeMetadata(text: string, path: string): SingleNodeMetadata {
  const bad = (why: string): never => {
    throw importFailed(`${path}: ${why}; the single-node store cannot be imported`);
  };
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof doc !== 'object' || doc === null) return bad('not an object');
  const s = doc as Record<string, unknown>;
  if (s.version !== SINGLE_NODE_METADATA_VERSION) {
    return bad(`unsupported version ${String(s.version)}`);
  }
  if (typeof s.clusterId !== 'string') return bad('clusterId missing');
  const uint = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  if (!uint(s.nextTopicId)) return bad('nextTopicId missing');
  if (!uint(s.producerIdsReservedUntil)) return bad('producerIdsReservedUntil missing');
  if (!Array.isArray(s.topics)) return bad('topics missing');
  const topics: Array<SingleNodeMetadata['topics'][number]> = [];
  for (const t of s.topics as unknown[]) {
    const r = t as Record<string, unknown> | null;
    const overrides = r?.overrides as Record<string, unknown> | undefined;
    if (
      typeof r?.name !== 'string' ||
      !uint(r.id) ||
      !uint(r.partitions) ||
      r.partitions < 1 ||
      typeof overrides !== 'object' ||
      overrides === null ||
      Object.values(overrides).some((v) => typeof v !== 'string')
    ) {
      return bad(`topic entry ${JSON.stringify(t)} is malformed`);
    }
    topics.push({
      name: r.name,
      id: r.id,
      partitions: r.partitions,
      overrides: overrides as Record<string, string>,
    });
  }
  return {
    clusterId: s.clusterId,
    nextTopicId: s.nextTopicId,
    producerIdsReservedUntil: s.producerIdsReservedUntil,
    topics,
  };
}

/**
 * The metadata state of the cluster of one `old` becomes (pure): the records a fresh cluster
 * would have applied (bootstrap with the old cluster id, this broker's registration, one
 * create-topic per topic with its old id and replicas [self]), then the id counters past every
 * id the old broker handed out. SINGLE_NODE_IMPORT_FAILED when a record does not apply.
 */
export function importedMetadataState(
  old: SingleNodeMetadata,
  self: number,
  address: HostPort,
): MetadataState {
  let state = EMPTY_METADATA_STATE;
  const step = (record: MetadataRecord): void => {
    const r = applyRecord(state, record);
    if (r.noop !== null) throw importFailed(`metadata.json cannot be imported: ${r.noop}`);
    state = r.state;
  };
  step({ type: 'cluster-bootstrap', clusterId: old.clusterId });
  step({
    type: 'register-broker',
    brokerId: self,
    host: address.host,
    // A configured port 0 is chosen at start; the broker registers its real one then.
    port: address.port > 0 ? address.port : 1,
    incarnation: IMPORT_INCARNATION,
    brokerEpoch: 1,
  });
  for (const t of [...old.topics].sort((a, b) => a.id - b.id)) {
    const configs: ConfigEntry[] = Object.keys(t.overrides)
      .sort()
      .map((key) => ({ key, value: t.overrides[key]! }));
    step({
      type: 'create-topic',
      topicId: t.id,
      name: t.name,
      partitions: Array.from({ length: t.partitions }, () => ({ replicas: [self] })),
      configs,
    });
  }
  return {
    ...state,
    topicIdNext: Math.max(state.topicIdNext, old.nextTopicId),
    producerIdNext: Math.max(state.producerIdNext, old.producerIdsReservedUntil),
  };
}

/**
 * Imports the single-node store in `config.dataDir` if there is one (see the top of the file);
 * null when there is nothing to import. Finishes an import a crash interrupted. A broker whose
 * voters are not itself alone refuses a single-node store (INVALID_CONFIG, naming the way out).
 */
export async function importSingleNodeStore(
  o: SingleNodeImportOptions,
): Promise<SingleNodeImportReport | null> {
  const { fs, config } = o;
  const dataDir = config.dataDir;
  const names = await fs.readdir(dataDir);
  if (!names.includes(SINGLE_NODE_METADATA_FILE)) {
    if (names.includes(IMPORT_MARKER_FILE)) await removeMarker(fs, dataDir);
    return null;
  }
  if (!isClusterOfOne(config)) {
    throw new StreamBusError(
      ErrorCode.INVALID_CONFIG,
      `data directory ${dataDir} holds a single-node StreamBus store (metadata.json). It is ` +
        `imported in place when this broker starts alone: start it once with --node-id ` +
        `${config.nodeId} and no --peers (or --peers naming only itself), then start the other ` +
        `brokers with --peers naming this one, so that they join its cluster`,
    );
  }
  if (names.includes(METADATA_DIR) && !names.includes(IMPORT_MARKER_FILE)) {
    throw importFailed(
      `data directory ${dataDir} holds both a single-node store (metadata.json) and a cluster ` +
        `metadata log (${METADATA_DIR}) that no import wrote; move one of them away`,
    );
  }
  return runImport(o, names);
}

async function runImport(
  o: SingleNodeImportOptions,
  names: readonly string[],
): Promise<SingleNodeImportReport> {
  const { fs, config } = o;
  const logger = o.logger;
  const dataDir = config.dataDir;
  const metadataPath = join(dataDir, SINGLE_NODE_METADATA_FILE);
  const old = parseSingleNodeMetadata(
    (await fs.readFile(metadataPath)).toString('utf8'),
    metadataPath,
  );
  const self = config.nodeId;
  const state = importedMetadataState(old, self, config.listen);
  logger?.info(
    { dataDir, topics: old.topics.length, resumed: names.includes(IMPORT_MARKER_FILE) },
    'importing the single-node data directory into a cluster of one',
  );

  // 1. The marker.
  if (!names.includes(IMPORT_MARKER_FILE)) {
    const h = await fs.open(join(dataDir, IMPORT_MARKER_FILE), 'create');
    try {
      await h.write(Buffer.from(`node.id=${self}\n`), 0);
      await h.sync();
    } finally {
      await h.close();
    }
    await fs.syncDir(dataDir);
  }

  // 2. Topic directories no topic owns.
  const topicsDir = join(dataDir, 'topics');
  await fs.mkdir(topicsDir);
  const owned = new Set(old.topics.map((t) => String(t.id)));
  const orphansRemoved: string[] = [];
  for (const name of await fs.readdir(topicsDir)) {
    if (owned.has(name)) continue;
    logger?.info(
      { dir: name },
      'import: removing the data of a topic the single-node store no longer has',
    );
    await removeTree(fs, join(topicsDir, name));
    orphansRemoved.push(name);
  }

  // 3. The partitions.
  const conf: ConfState = { voters: [self as NodeId], learners: [] };
  const partitions: ImportedPartition[] = [];
  for (const t of [...old.topics].sort((a, b) => a.id - b.id)) {
    let topicConfig: ReturnType<typeof resolveTopicConfig>;
    try {
      topicConfig = resolveTopicConfig(config.defaults, t.overrides, config.limits.frameBytesMax);
    } catch (err) {
      throw importFailed(
        `topic ${t.name}: its config cannot be imported: ${(err as Error).message}`,
        err,
      );
    }
    const topicDir = join(topicsDir, String(t.id));
    await fs.mkdir(topicDir);
    for (let p = 0; p < t.partitions; p++) {
      const imported = await importPartition(
        fs,
        topicDir,
        p,
        partitionLogConfig(topicConfig),
        conf,
      ).catch((err: unknown) => {
        if (!(err instanceof StreamBusError)) throw err;
        throw importFailed(
          `partition ${t.name}-${p} (${join(topicDir, String(p))}) cannot be imported: ` +
            `${(err as Error)?.message ?? String(err)}. metadata.json is unchanged (the ` +
            'single-node broker still reads this directory); a damaged log can be repaired ' +
            'with the previous StreamBus version (RepairPartition) before starting this one again',
          err,
        );
      });
      const entry: ImportedPartition = { topic: t.name, topicId: t.id, partition: p, ...imported };
      partitions.push(entry);
      logger?.info(entry, 'import: partition log is now the Raft log of a cluster of one');
    }
  }

  // 4. The metadata log, written afresh.
  const metaDir = join(dataDir, METADATA_DIR);
  await removeTree(fs, metaDir);
  const store = await MetadataLogStore.open(fs, metaDir, conf);
  try {
    const snapshot: Snapshot = {
      meta: { index: 1 as LogIndex, term: 1 as Term, conf },
      data: encodeSnapshot(state),
    };
    decodeSnapshot(snapshot.data); // every invariant a reader checks, before it is committed
    await store.installSnapshot(snapshot);
    await store.setHardState({ term: 1 as Term, vote: 0 as NodeId, commit: 1 as LogIndex });
  } finally {
    await store.close();
  }

  // 5. COMMIT: the single-node store is renamed (kept for a downgrade).
  await fs.rename(metadataPath, join(dataDir, IMPORTED_METADATA_FILE));
  await fs.syncDir(dataDir);

  // 6. The marker.
  await removeMarker(fs, dataDir);
  const report: SingleNodeImportReport = {
    clusterId: state.clusterId!,
    partitions,
    topicIdNext: state.topicIdNext,
    producerIdNext: state.producerIdNext,
    orphansRemoved,
  };
  logger?.info(
    {
      clusterId: report.clusterId,
      topics: old.topics.map((t) => `${t.name}(id ${t.id}, ${t.partitions} partitions)`),
      partitions: partitions.length,
      records: partitions.reduce((n, p) => n + (p.logEndOffset - p.logStartOffset), 0),
      producerIdNext: report.producerIdNext,
      oldMetadata: IMPORTED_METADATA_FILE,
    },
    'imported the single-node data directory: it is now a cluster of one',
  );
  return report;
}

async function removeMarker(fs: FileSystem, dataDir: string): Promise<void> {
  try {
    await fs.unlink(join(dataDir, IMPORT_MARKER_FILE));
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  await fs.syncDir(dataDir);
}

async function importPartition(
  fs: FileSystem,
  topicDir: string,
  partition: number,
  logConfig: ReturnType<typeof partitionLogConfig>,
  conf: ConfState,
): Promise<Omit<ImportedPartition, 'topic' | 'topicId' | 'partition'>> {
  const dir = join(topicDir, String(partition));
  await fs.mkdir(dir);
  // The old producer-state snapshot goes into the partition directory (removed with it).
  const producersPath = join(dir, IMPORTED_PRODUCERS_FILE);
  try {
    await fs.rename(join(topicDir, `${partition}.producers.json`), producersPath);
    await fs.syncDir(dir);
    await fs.syncDir(topicDir);
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  const epochsZeroed = await zeroLeaderEpochs(fs, dir);

  // The log as storage recovery leaves it, and its start moved down to a batch boundary.
  let logStartMovedFrom: number | null = null;
  let start: number;
  let end: number;
  {
    const log = await PartitionLog.open(fs, dir, logConfig);
    try {
      start = log.logStartOffset;
      end = log.logEndOffset;
      if (start < end) {
        const r = await log.read(start, 1);
        const base = r.data.length > 0 ? readBatchHeader(r.data, 0).baseOffset : start;
        if (base < start) {
          logStartMovedFrom = start;
          start = base;
        }
      }
    } finally {
      await log.close();
    }
  }
  if (logStartMovedFrom !== null) {
    const metaPath = joinPath(dir, PARTITION_META_FILE);
    const meta = decodePartitionMeta(await fs.readFile(metaPath));
    if (typeof meta === 'string') {
      throw new StreamBusError(ErrorCode.CORRUPT_DATA, `${metaPath}: ${meta}`);
    }
    await writePartitionMeta(fs, metaPath, {
      logStartOffset: start,
      recoveryPoint: meta.recoveryPoint,
    });
  }

  // The replica snapshot: index 1, term 0, at this log start, with the producers below it.
  const producers = await oldProducers(fs, producersPath, start, end);
  const snapshot: Snapshot = {
    meta: { index: IMPORTED_SNAPSHOT_INDEX, term: 0 as Term, conf },
    data: encodeSnapshotData({ startOffset: start, producers }),
  };
  await saveSnapshot(fs, joinPath(dir, SNAPSHOT_FILE), snapshot, 'compaction');

  // The replica store checks the whole log and writes its tables; all of it is committed.
  const store = await ReplicaStore.open({ fs, dir, logConfig, initialConf: conf });
  let batches: number;
  try {
    if (store.log.logStartOffset !== start || store.log.logEndOffset !== end) {
      throw new StreamBusError(
        ErrorCode.CORRUPT_DATA,
        `the log spans [${store.log.logStartOffset}, ${store.log.logEndOffset}) as a replica, [${start}, ${end}) before`,
      );
    }
    batches = store.tail.lastIndex() - IMPORTED_SNAPSHOT_INDEX;
    store.tail.setHardState({ term: 0 as Term, vote: 0 as NodeId, commit: store.tail.lastIndex() });
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
  await store.close(); // saves the hard state and the offset translator
  return { logStartOffset: start, logEndOffset: end, batches, epochsZeroed, logStartMovedFrom };
}

/**
 * Sets partitionLeaderEpoch to 0 in every batch of every segment file of `dir` that has another
 * value, in place (outside the CRC), then fsyncs the file. Stops at the first header that is not
 * a batch (a torn tail: recovery cuts it). Returns the batches changed.
 */
export async function zeroLeaderEpochs(fs: FileSystem, dir: string): Promise<number> {
  let changed = 0;
  for (const name of (await fs.readdir(dir)).filter((n) => SEGMENT_LOG_RE.test(n))) {
    const h = await fs.open(joinPath(dir, name), 'readwrite');
    try {
      const size = await h.size();
      let changedHere = 0;
      let pos = 0;
      let stop = false;
      while (!stop && pos + WALK_HEADER_BYTES <= size) {
        // One chunk at a time: its epochs are zeroed in the buffer, and the span from the first
        // to the last one changed is written back (the same bytes elsewhere), so memory and
        // writes are bounded by the chunk, not by the batches in the file.
        const chunk = await readFully(h, pos, Math.min(EPOCH_WALK_CHUNK_BYTES, size - pos));
        let first = -1;
        let last = -1;
        let at = 0;
        while (at + WALK_HEADER_BYTES <= chunk.length) {
          const length = chunk.readInt32BE(at + BatchField.BATCH_LENGTH);
          if (
            length < RECORD_BATCH_MIN_LENGTH ||
            chunk[at + BatchField.MAGIC] !== RECORD_BATCH_MAGIC
          ) {
            stop = true; // a torn tail: recovery cuts it
            break;
          }
          const epochAt = at + BatchField.PARTITION_LEADER_EPOCH;
          if (chunk.readInt32BE(epochAt) !== 0) {
            chunk.writeInt32BE(0, epochAt);
            if (first < 0) first = epochAt;
            last = epochAt + 4;
            changedHere++;
          }
          at += 12 + length;
        }
        if (first >= 0) await h.write(chunk.subarray(first, last), pos + first);
        if (at === 0) break; // a short read: nothing more to walk
        pos += at;
      }
      if (changedHere > 0) await h.sync();
      changed += changedHere;
    } finally {
      await h.close();
    }
  }
  return changed;
}

/**
 * The old producer-state snapshot as the replica snapshot's table: only producers' batches
 * below `start` (the log from `start` is replayed on top at open). Used only when it covers a
 * point inside the log, as the old broker used it; otherwise empty (the log replay alone, which
 * is what the old broker did then too).
 */
async function oldProducers(
  fs: FileSystem,
  path: string,
  start: number,
  end: number,
): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    if (isNotFound(err)) return new Uint8Array(0);
    throw err;
  }
  let parsed: ProducerStateSnapshot & { offset: number };
  try {
    parsed = JSON.parse(bytes.toString('utf8')) as ProducerStateSnapshot & { offset: number };
    if (!Number.isSafeInteger(parsed.offset) || !Array.isArray(parsed.producers)) {
      return new Uint8Array(0);
    }
  } catch {
    return new Uint8Array(0); // damaged: the old broker rebuilt from the log too
  }
  if (parsed.offset < start || parsed.offset > end) return new Uint8Array(0);
  return producersAt(ProducerStateTable.fromJSON(parsed), start);
}
