// The records of the controller's metadata log (issue 9; ARCHITECTURE.md §4) and their binary
// codec. A record is one committed entry of the metadata Raft group; every broker applies the
// committed records, in order, to the pure state machine in metadata-state.ts. This module only
// defines and (de)serializes records and checks each one on its own (field ranges, distinct
// replicas, ISR within replicas); whether a record makes sense against the state (a duplicate
// topic, a stale broker epoch) is decided by `applyRecord`, which turns such a record into a
// no-op. It does no I/O and knows nothing of Raft.
//
// Grammar (version 1). uvarint = unsigned LEB128, canonical (minimal) form, at most 2^53 - 1;
// svarint = zigzag uvarint; string = uvarint byte length (<= 1024) + UTF-8; bool = 0x00 | 0x01;
// T[] = uvarint count + items.
//
//   record          := version:u8 (=1) tag:u8 body            (no trailing bytes)
//   tag 1 cluster-bootstrap   clusterId:string
//   tag 2 register-broker     brokerId:uvarint host:string port:uvarint incarnation:string
//                             brokerEpoch:uvarint
//   tag 3 broker-heartbeat    brokerId:uvarint brokerEpoch:uvarint tick:uvarint
//   tag 4 fence-broker        brokerId:uvarint brokerEpoch:uvarint
//   tag 5 unfence-broker      brokerId:uvarint brokerEpoch:uvarint
//   tag 6 create-topic        topicId:uvarint name:string partitions:assignment[] configs:entry[]
//        assignment          := replicas:uvarint[]      (leader = replicas[0], ISR = replicas)
//        entry               := key:string value:string (keys strictly ascending)
//   tag 7 delete-topic        topicId:uvarint
//   tag 8 alter-topic-config  topicId:uvarint changes:change[]
//        change              := key:string set:bool [value:string if set]  (keys ascending)
//   tag 9 partition-change    topicId:uvarint partition:uvarint leader:svarint (-1 = none)
//                             leaderEpoch:uvarint replicas:uvarint[] isr:uvarint[]
//   tag 10 allocate-producer-ids  brokerId:uvarint firstProducerId:uvarint count:uvarint
//   tag 11 reassign-partition  topicId:uvarint partition:uvarint replicas:uvarint[]
//                             target:uvarint[] adding:uvarint[]
//        (a reassignment starts: replicas = target then the replicas leaving; adding = the
//        target members that were not replicas; both within replicas; issue 12)
//   tag 12 complete-reassignment  topicId:uvarint partition:uvarint
//        (the partition's Raft group now has exactly the target as voters: replicas = target)
//   tag 13 unregister-broker  brokerId:uvarint brokerEpoch:uvarint
//        (a decommissioned broker leaves the registry once no partition lists it)
//   tag 14 alter-broker-config  brokerId:svarint (-1 = every broker) changes:change[]
//        (dynamic broker settings, ops/dynamic-config.ts; keys ascending)
//   tag 15 add-partitions     topicId:uvarint count:uvarint partitions:assignment[]
//        (CreatePartitions, issue 11: the topic grows to `count` partitions; `partitions` are
//        the new ones, count - their number = the partitions it had, so a replay is a no-op)
//   tag 16 set-controller-voters  voters:uvarint[]  (ascending, 1..REPLICAS_MAX distinct ids)
//        (the controller quorum wanted, controller-voters.ts; the leader moves the metadata Raft
//        group there one voter at a time)
//   tag 17 cancel-reassignment  topicId:uvarint partition:uvarint
//        (the replicas being added leave; the target becomes the replicas before the move)
//
// Version 2 (issue 11) differs in one place: a register-broker record ends with the broker's
// advertised Kafka address, `kafkaHost:string kafkaPort:uvarint`. A record is encoded at the
// lowest version that can hold it (a broker without a Kafka listener registers at version 1, as
// before), so every version-1 record still decodes and encodes to the same bytes.
//
// Field rules (checked on encode and on decode, so a record that passes one passes the other):
//   1. broker ids are 0..2^31-1; ports 1..65535; hosts and incarnation non-empty; a cluster id is
//      1..64 of [A-Za-z0-9_-] (a UUID fits).
//   2. a topic name is legal (Kafka's rules, topic-config.ts checkTopicName); 1..PARTITIONS_MAX
//      partitions; each replica list has 1..REPLICAS_MAX distinct ids.
//   3. a partition change has leader -1 or a member of a non-empty ISR, ISR within replicas.
//   4. a producer-id block has 1..PRODUCER_ID_BLOCK_MAX ids and ends at or below 2^53 - 1.
// Decoding garbage throws CORRUPT_DATA, never anything else; encoding an invalid record throws
// INVALID_ARGUMENT (a bug in the planner that built it).
//
// Time is in ticks (the controller quorum's logical clock): a heartbeat carries the tick at which
// the controller leader accepted it, never a wall-clock reading.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { checkTopicName } from '../topic-config.js';
import { ByteReader, ByteWriter, corruptData } from './byte-codec.js';

export const METADATA_RECORD_VERSION = 1;
/** The newest record grammar this code reads (see "Version 2" above). */
export const METADATA_RECORD_VERSION_MAX = 2;

/** Bounds every record obeys; the planner refuses requests beyond them. */
export const BROKER_ID_MAX = 2 ** 31 - 1;
export const PARTITIONS_MAX = 100_000;
export const REPLICAS_MAX = 64;
export const CONFIG_ENTRIES_MAX = 64;
export const PRODUCER_ID_BLOCK_MAX = 1_000_000;

export const MetadataRecordType = {
  ClusterBootstrap: 'cluster-bootstrap',
  RegisterBroker: 'register-broker',
  BrokerHeartbeat: 'broker-heartbeat',
  FenceBroker: 'fence-broker',
  UnfenceBroker: 'unfence-broker',
  CreateTopic: 'create-topic',
  DeleteTopic: 'delete-topic',
  AlterTopicConfig: 'alter-topic-config',
  PartitionChange: 'partition-change',
  AllocateProducerIds: 'allocate-producer-ids',
  ReassignPartition: 'reassign-partition',
  CompleteReassignment: 'complete-reassignment',
  UnregisterBroker: 'unregister-broker',
  AlterBrokerConfig: 'alter-broker-config',
  AddPartitions: 'add-partitions',
  SetControllerVoters: 'set-controller-voters',
  CancelReassignment: 'cancel-reassignment',
} as const;

export type MetadataRecordTypeValue = (typeof MetadataRecordType)[keyof typeof MetadataRecordType];

/** Wire tags; never renumber (committed logs and snapshots hold them). */
const TAG: Readonly<Record<MetadataRecordTypeValue, number>> = {
  'cluster-bootstrap': 1,
  'register-broker': 2,
  'broker-heartbeat': 3,
  'fence-broker': 4,
  'unfence-broker': 5,
  'create-topic': 6,
  'delete-topic': 7,
  'alter-topic-config': 8,
  'partition-change': 9,
  'allocate-producer-ids': 10,
  'reassign-partition': 11,
  'complete-reassignment': 12,
  'unregister-broker': 13,
  'alter-broker-config': 14,
  'add-partitions': 15,
  'set-controller-voters': 16,
  'cancel-reassignment': 17,
};
const TYPE_BY_TAG: ReadonlyMap<number, MetadataRecordTypeValue> = new Map(
  Object.entries(TAG).map(([type, tag]) => [tag, type as MetadataRecordTypeValue]),
);

export interface ConfigEntry {
  readonly key: string;
  readonly value: string;
}

export interface ConfigChange {
  readonly key: string;
  /** null removes the override (back to the broker default). */
  readonly value: string | null;
}

export interface ClusterBootstrapRecord {
  readonly type: typeof MetadataRecordType.ClusterBootstrap;
  readonly clusterId: string;
}

/** A broker's advertised Kafka listener address (what Kafka Metadata gives clients). */
export interface KafkaAddress {
  readonly host: string;
  readonly port: number;
}

export interface RegisterBrokerRecord {
  readonly type: typeof MetadataRecordType.RegisterBroker;
  readonly brokerId: number;
  /** The native-protocol listener clients and peers reach the broker at. */
  readonly host: string;
  readonly port: number;
  /** Chosen by the broker process at start (a UUID): tells a restart from a duplicate request. */
  readonly incarnation: string;
  /** Chosen by the controller, increasing over the whole cluster; fences older incarnations. */
  readonly brokerEpoch: number;
  /** Its advertised Kafka address (version 2); absent or null: no Kafka listener. */
  readonly kafka?: KafkaAddress | null;
}

export interface BrokerHeartbeatRecord {
  readonly type: typeof MetadataRecordType.BrokerHeartbeat;
  readonly brokerId: number;
  readonly brokerEpoch: number;
  readonly tick: number;
}

export interface FenceBrokerRecord {
  readonly type: typeof MetadataRecordType.FenceBroker;
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface UnfenceBrokerRecord {
  readonly type: typeof MetadataRecordType.UnfenceBroker;
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

export interface PartitionAssignment {
  /** Preferred leader first. */
  readonly replicas: readonly number[];
}

export interface CreateTopicRecord {
  readonly type: typeof MetadataRecordType.CreateTopic;
  readonly topicId: number;
  readonly name: string;
  readonly partitions: readonly PartitionAssignment[];
  /** Overrides only, keys ascending. */
  readonly configs: readonly ConfigEntry[];
}

export interface DeleteTopicRecord {
  readonly type: typeof MetadataRecordType.DeleteTopic;
  readonly topicId: number;
}

export interface AlterTopicConfigRecord {
  readonly type: typeof MetadataRecordType.AlterTopicConfig;
  readonly topicId: number;
  /** Keys ascending. */
  readonly changes: readonly ConfigChange[];
}

export interface PartitionChangeRecord {
  readonly type: typeof MetadataRecordType.PartitionChange;
  readonly topicId: number;
  readonly partition: number;
  /** -1: no leader (every in-sync replica is fenced). */
  readonly leader: number;
  readonly leaderEpoch: number;
  readonly replicas: readonly number[];
  /** As reported by the partition leader (derived from Raft progress) or shrunk by fencing. */
  readonly isr: readonly number[];
}

export interface AllocateProducerIdsRecord {
  readonly type: typeof MetadataRecordType.AllocateProducerIds;
  readonly brokerId: number;
  readonly firstProducerId: number;
  readonly count: number;
}

/** A reassignment starts (issue 12): see the grammar above. */
export interface ReassignPartitionRecord {
  readonly type: typeof MetadataRecordType.ReassignPartition;
  readonly topicId: number;
  readonly partition: number;
  /** The target first (in its order), then the replicas leaving. */
  readonly replicas: readonly number[];
  readonly target: readonly number[];
  /** Target members that were not replicas: they join the partition's Raft group as learners. */
  readonly adding: readonly number[];
}

export interface CompleteReassignmentRecord {
  readonly type: typeof MetadataRecordType.CompleteReassignment;
  readonly topicId: number;
  readonly partition: number;
}

/** A decommissioned broker leaves the registry (issue 12). */
export interface UnregisterBrokerRecord {
  readonly type: typeof MetadataRecordType.UnregisterBroker;
  readonly brokerId: number;
  readonly brokerEpoch: number;
}

/** Dynamic broker settings (issue 12): for broker `brokerId`, or -1 for every broker. */
export interface AlterBrokerConfigRecord {
  readonly type: typeof MetadataRecordType.AlterBrokerConfig;
  readonly brokerId: number;
  /** Keys ascending; a null value removes the dynamic value. */
  readonly changes: readonly ConfigChange[];
}

/** A topic grows to `count` partitions (issue 11): `partitions` are the new ones, in order. */
export interface AddPartitionsRecord {
  readonly type: typeof MetadataRecordType.AddPartitions;
  readonly topicId: number;
  readonly count: number;
  readonly partitions: readonly PartitionAssignment[];
}

/** The controller voters wanted (issue 12), ascending: controller-voters.ts. */
export interface SetControllerVotersRecord {
  readonly type: typeof MetadataRecordType.SetControllerVoters;
  readonly voters: readonly number[];
}

/** A reassignment in progress is cancelled (issue 12): reassignment.ts. */
export interface CancelReassignmentRecord {
  readonly type: typeof MetadataRecordType.CancelReassignment;
  readonly topicId: number;
  readonly partition: number;
}

export type MetadataRecord =
  | ClusterBootstrapRecord
  | RegisterBrokerRecord
  | BrokerHeartbeatRecord
  | FenceBrokerRecord
  | UnfenceBrokerRecord
  | CreateTopicRecord
  | DeleteTopicRecord
  | AlterTopicConfigRecord
  | PartitionChangeRecord
  | AllocateProducerIdsRecord
  | ReassignPartitionRecord
  | CompleteReassignmentRecord
  | UnregisterBrokerRecord
  | AlterBrokerConfigRecord
  | AddPartitionsRecord
  | SetControllerVotersRecord
  | CancelReassignmentRecord;

// ---- validation (rules 1-4 above) ----

function isUint(v: number, max = Number.MAX_SAFE_INTEGER): boolean {
  return Number.isSafeInteger(v) && v >= 0 && v <= max;
}

const CLUSTER_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;

export function isValidClusterId(id: string): boolean {
  return CLUSTER_ID_RE.test(id);
}

export function isLegalTopicName(name: string): boolean {
  try {
    checkTopicName(name);
    return true;
  } catch {
    return false;
  }
}

/** Why a replica list is malformed, or null. */
export function replicaListProblem(replicas: readonly number[], what: string): string | null {
  if (replicas.length < 1 || replicas.length > REPLICAS_MAX) {
    return `${what}: ${replicas.length} replicas, expected 1..${REPLICAS_MAX}`;
  }
  const seen = new Set<number>();
  for (const id of replicas) {
    if (!isUint(id, BROKER_ID_MAX)) return `${what}: broker id ${id} is out of range`;
    if (seen.has(id)) return `${what}: broker ${id} appears twice`;
    seen.add(id);
  }
  return null;
}

function keysAscending(keys: readonly string[], what: string): string | null {
  if (keys.length > CONFIG_ENTRIES_MAX) {
    return `${what}: ${keys.length} entries, at most ${CONFIG_ENTRIES_MAX}`;
  }
  for (let i = 0; i < keys.length; i++) {
    if (keys[i]!.length === 0) return `${what}: empty config key`;
    if (i > 0 && !(keys[i - 1]! < keys[i]!)) return `${what}: keys not strictly ascending`;
  }
  return null;
}

/** Why `r` breaks a field rule, or null when it is well formed. */
export function recordProblem(r: MetadataRecord): string | null {
  switch (r.type) {
    case 'cluster-bootstrap':
      return isValidClusterId(r.clusterId) ? null : `cluster id '${r.clusterId}' is not valid`;
    case 'register-broker':
      if (!isUint(r.brokerId, BROKER_ID_MAX)) return `broker id ${r.brokerId} is out of range`;
      if (r.host.length === 0) return 'host is empty';
      if (!isUint(r.port, 65535) || r.port === 0) return `port ${r.port} is out of range`;
      if (r.incarnation.length === 0) return 'incarnation is empty';
      if (r.kafka != null) {
        if (r.kafka.host.length === 0) return 'Kafka host is empty';
        if (!isUint(r.kafka.port, 65535) || r.kafka.port === 0) {
          return `Kafka port ${r.kafka.port} is out of range`;
        }
      }
      return isUint(r.brokerEpoch) ? null : `broker epoch ${r.brokerEpoch} is out of range`;
    case 'broker-heartbeat':
      if (!isUint(r.tick)) return `tick ${r.tick} is out of range`;
      return brokerRefProblem(r.brokerId, r.brokerEpoch);
    case 'fence-broker':
    case 'unfence-broker':
    case 'unregister-broker':
      return brokerRefProblem(r.brokerId, r.brokerEpoch);
    case 'create-topic': {
      if (!isUint(r.topicId)) return `topic id ${r.topicId} is out of range`;
      if (!isLegalTopicName(r.name)) return `topic name '${r.name}' is not legal`;
      if (r.partitions.length < 1 || r.partitions.length > PARTITIONS_MAX) {
        return `${r.partitions.length} partitions, expected 1..${PARTITIONS_MAX}`;
      }
      for (let p = 0; p < r.partitions.length; p++) {
        const problem = replicaListProblem(r.partitions[p]!.replicas, `partition ${p}`);
        if (problem !== null) return problem;
      }
      return keysAscending(
        r.configs.map((e) => e.key),
        'configs',
      );
    }
    case 'delete-topic':
      return isUint(r.topicId) ? null : `topic id ${r.topicId} is out of range`;
    case 'alter-broker-config':
      if (r.brokerId !== -1 && !isUint(r.brokerId, BROKER_ID_MAX)) {
        return `broker id ${r.brokerId} is out of range`;
      }
      if (r.changes.length === 0) return 'no config changes';
      return keysAscending(
        r.changes.map((c) => c.key),
        'changes',
      );
    case 'alter-topic-config':
      if (!isUint(r.topicId)) return `topic id ${r.topicId} is out of range`;
      if (r.changes.length === 0) return 'no config changes';
      return keysAscending(
        r.changes.map((c) => c.key),
        'changes',
      );
    case 'partition-change': {
      if (!isUint(r.topicId)) return `topic id ${r.topicId} is out of range`;
      if (!isUint(r.partition, PARTITIONS_MAX - 1)) return `partition ${r.partition} out of range`;
      if (!isUint(r.leaderEpoch)) return `leader epoch ${r.leaderEpoch} is out of range`;
      const replicas = replicaListProblem(r.replicas, 'replicas');
      if (replicas !== null) return replicas;
      const isr = replicaListProblem(r.isr, 'isr');
      if (isr !== null) return isr;
      for (const id of r.isr) {
        if (!r.replicas.includes(id)) return `isr member ${id} is not a replica`;
      }
      if (r.leader !== -1 && !r.isr.includes(r.leader)) {
        return `leader ${r.leader} is not in the isr`;
      }
      return null;
    }
    case 'allocate-producer-ids':
      if (!isUint(r.brokerId, BROKER_ID_MAX)) return `broker id ${r.brokerId} is out of range`;
      if (!isUint(r.count, PRODUCER_ID_BLOCK_MAX) || r.count === 0) {
        return `block of ${r.count} producer ids, expected 1..${PRODUCER_ID_BLOCK_MAX}`;
      }
      // Compared without adding: firstProducerId + count may round above 2^53.
      if (!isUint(r.firstProducerId) || r.firstProducerId > Number.MAX_SAFE_INTEGER - r.count + 1) {
        return `producer-id block at ${r.firstProducerId} runs past 2^53 - 1`;
      }
      return null;
    case 'reassign-partition': {
      if (!isUint(r.topicId)) return `topic id ${r.topicId} is out of range`;
      if (!isUint(r.partition, PARTITIONS_MAX - 1)) return `partition ${r.partition} out of range`;
      const lists: Array<[readonly number[], string]> = [
        [r.replicas, 'replicas'],
        [r.target, 'target'],
      ];
      for (const [list, what] of lists) {
        const problem = replicaListProblem(list, what);
        if (problem !== null) return problem;
      }
      if (r.adding.length > 0) {
        const problem = replicaListProblem(r.adding, 'adding');
        if (problem !== null) return problem;
      }
      for (let i = 0; i < r.target.length; i++) {
        if (r.replicas[i] !== r.target[i]) return 'replicas do not start with the target';
      }
      for (const id of r.adding) {
        if (!r.target.includes(id)) return `adding member ${id} is not in the target`;
      }
      return null;
    }
    case 'complete-reassignment':
    case 'cancel-reassignment':
      if (!isUint(r.topicId)) return `topic id ${r.topicId} is out of range`;
      return isUint(r.partition, PARTITIONS_MAX - 1)
        ? null
        : `partition ${r.partition} out of range`;
    case 'add-partitions': {
      if (!isUint(r.topicId)) return `topic id ${r.topicId} is out of range`;
      if (!isUint(r.count, PARTITIONS_MAX) || r.count < 2) {
        return `count ${r.count}, expected 2..${PARTITIONS_MAX}`;
      }
      if (r.partitions.length < 1 || r.partitions.length >= r.count) {
        return `${r.partitions.length} new partitions, expected 1..${r.count - 1}`;
      }
      const first = r.count - r.partitions.length;
      for (let i = 0; i < r.partitions.length; i++) {
        const problem = replicaListProblem(r.partitions[i]!.replicas, `partition ${first + i}`);
        if (problem !== null) return problem;
      }
      return null;
    }
    case 'set-controller-voters': {
      const problem = replicaListProblem(r.voters, 'voters');
      if (problem !== null) return problem;
      if (r.voters.includes(0)) return 'voter id 0 is not a node id';
      for (let i = 1; i < r.voters.length; i++) {
        if (!(r.voters[i - 1]! < r.voters[i]!)) return 'voters are not ascending';
      }
      return null;
    }
  }
}

function brokerRefProblem(brokerId: number, brokerEpoch: number): string | null {
  if (!isUint(brokerId, BROKER_ID_MAX)) return `broker id ${brokerId} is out of range`;
  return isUint(brokerEpoch) ? null : `broker epoch ${brokerEpoch} is out of range`;
}

// ---- codec ----

export function writeIdList(w: ByteWriter, ids: readonly number[]): void {
  w.uvarint(ids.length);
  for (const id of ids) w.uvarint(id);
}

export function readIdList(r: ByteReader, what: string): number[] {
  const n = r.count(what, REPLICAS_MAX);
  const ids: number[] = [];
  for (let i = 0; i < n; i++) ids.push(r.uvarint(what, BROKER_ID_MAX));
  return ids;
}

export function writeConfigEntries(w: ByteWriter, entries: readonly ConfigEntry[]): void {
  w.uvarint(entries.length);
  for (const e of entries) {
    w.string(e.key);
    w.string(e.value);
  }
}

export function readConfigEntries(r: ByteReader, what: string): ConfigEntry[] {
  const n = r.count(what, CONFIG_ENTRIES_MAX);
  const entries: ConfigEntry[] = [];
  for (let i = 0; i < n; i++) entries.push({ key: r.string(what), value: r.string(what) });
  return entries;
}

export function encodeRecord(record: MetadataRecord): Uint8Array {
  const problem = recordProblem(record);
  if (problem !== null) {
    throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${record.type} record: ${problem}`);
  }
  const w = new ByteWriter();
  w.u8(recordVersion(record));
  w.u8(TAG[record.type]);
  switch (record.type) {
    case 'cluster-bootstrap':
      w.string(record.clusterId);
      break;
    case 'register-broker':
      w.uvarint(record.brokerId);
      w.string(record.host);
      w.uvarint(record.port);
      w.string(record.incarnation);
      w.uvarint(record.brokerEpoch);
      if (record.kafka != null) {
        w.string(record.kafka.host);
        w.uvarint(record.kafka.port);
      }
      break;
    case 'broker-heartbeat':
      w.uvarint(record.brokerId);
      w.uvarint(record.brokerEpoch);
      w.uvarint(record.tick);
      break;
    case 'fence-broker':
    case 'unfence-broker':
    case 'unregister-broker':
      w.uvarint(record.brokerId);
      w.uvarint(record.brokerEpoch);
      break;
    case 'create-topic':
      w.uvarint(record.topicId);
      w.string(record.name);
      w.uvarint(record.partitions.length);
      for (const p of record.partitions) writeIdList(w, p.replicas);
      writeConfigEntries(w, record.configs);
      break;
    case 'delete-topic':
      w.uvarint(record.topicId);
      break;
    case 'alter-topic-config':
    case 'alter-broker-config':
      if (record.type === 'alter-topic-config') w.uvarint(record.topicId);
      else w.svarint(record.brokerId);
      w.uvarint(record.changes.length);
      for (const c of record.changes) {
        w.string(c.key);
        w.bool(c.value !== null);
        if (c.value !== null) w.string(c.value);
      }
      break;
    case 'partition-change':
      w.uvarint(record.topicId);
      w.uvarint(record.partition);
      w.svarint(record.leader);
      w.uvarint(record.leaderEpoch);
      writeIdList(w, record.replicas);
      writeIdList(w, record.isr);
      break;
    case 'allocate-producer-ids':
      w.uvarint(record.brokerId);
      w.uvarint(record.firstProducerId);
      w.uvarint(record.count);
      break;
    case 'reassign-partition':
      w.uvarint(record.topicId);
      w.uvarint(record.partition);
      writeIdList(w, record.replicas);
      writeIdList(w, record.target);
      writeIdList(w, record.adding);
      break;
    case 'complete-reassignment':
    case 'cancel-reassignment':
      w.uvarint(record.topicId);
      w.uvarint(record.partition);
      break;
    case 'add-partitions':
      w.uvarint(record.topicId);
      w.uvarint(record.count);
      w.uvarint(record.partitions.length);
      for (const p of record.partitions) writeIdList(w, p.replicas);
      break;
    case 'set-controller-voters':
      writeIdList(w, record.voters);
      break;
  }
  return w.finish();
}

/** Decodes one record; CORRUPT_DATA naming the problem for anything but a valid encoding. */
export function decodeRecord(bytes: Uint8Array): MetadataRecord {
  const r = new ByteReader(bytes);
  const version = r.u8('record version');
  if (version < METADATA_RECORD_VERSION || version > METADATA_RECORD_VERSION_MAX) {
    throw corruptData(
      `metadata record version ${version} is not supported (expected ${METADATA_RECORD_VERSION}..${METADATA_RECORD_VERSION_MAX})`,
    );
  }
  const tag = r.u8('record tag');
  const type = TYPE_BY_TAG.get(tag);
  if (type === undefined) throw corruptData(`unknown metadata record tag ${tag}`);
  const record = readBody(r, type, version);
  r.expectEnd(`${type} record`);
  const problem = recordProblem(record);
  if (problem !== null) throw corruptData(`${type} record: ${problem}`);
  if (recordVersion(record) !== version) {
    throw corruptData(`${type} record at version ${version} is not in its canonical version`);
  }
  return record;
}

/** The lowest grammar version that holds `record` (canonical: one encoding per record). */
function recordVersion(record: MetadataRecord): number {
  return record.type === 'register-broker' && record.kafka != null ? 2 : METADATA_RECORD_VERSION;
}

function readBody(r: ByteReader, type: MetadataRecordTypeValue, version: number): MetadataRecord {
  switch (type) {
    case 'cluster-bootstrap':
      return { type, clusterId: r.string('cluster id') };
    case 'register-broker': {
      const registration = {
        type,
        brokerId: r.uvarint('broker id', BROKER_ID_MAX),
        host: r.string('host'),
        port: r.uvarint('port', 65535),
        incarnation: r.string('incarnation'),
        brokerEpoch: r.uvarint('broker epoch'),
      };
      if (version < 2) return registration;
      const kafka = { host: r.string('Kafka host'), port: r.uvarint('Kafka port', 65535) };
      return { ...registration, kafka };
    }
    case 'broker-heartbeat':
      return {
        type,
        brokerId: r.uvarint('broker id', BROKER_ID_MAX),
        brokerEpoch: r.uvarint('broker epoch'),
        tick: r.uvarint('tick'),
      };
    case 'fence-broker':
    case 'unfence-broker':
    case 'unregister-broker':
      return {
        type,
        brokerId: r.uvarint('broker id', BROKER_ID_MAX),
        brokerEpoch: r.uvarint('broker epoch'),
      };
    case 'create-topic': {
      const topicId = r.uvarint('topic id');
      const name = r.string('topic name');
      const n = r.count('partitions', PARTITIONS_MAX);
      const partitions: PartitionAssignment[] = [];
      for (let p = 0; p < n; p++) partitions.push({ replicas: readIdList(r, 'replicas') });
      return { type, topicId, name, partitions, configs: readConfigEntries(r, 'configs') };
    }
    case 'delete-topic':
      return { type, topicId: r.uvarint('topic id') };
    case 'alter-topic-config':
    case 'alter-broker-config': {
      const id =
        type === 'alter-topic-config'
          ? r.uvarint('topic id')
          : r.svarint('broker id', -1, BROKER_ID_MAX);
      const n = r.count('changes', CONFIG_ENTRIES_MAX);
      const changes: ConfigChange[] = [];
      for (let i = 0; i < n; i++) {
        const key = r.string('config key');
        changes.push({ key, value: r.bool('config set') ? r.string('config value') : null });
      }
      return type === 'alter-topic-config'
        ? { type, topicId: id, changes }
        : { type, brokerId: id, changes };
    }
    case 'partition-change':
      return {
        type,
        topicId: r.uvarint('topic id'),
        partition: r.uvarint('partition', PARTITIONS_MAX - 1),
        leader: r.svarint('leader', -1, BROKER_ID_MAX),
        leaderEpoch: r.uvarint('leader epoch'),
        replicas: readIdList(r, 'replicas'),
        isr: readIdList(r, 'isr'),
      };
    case 'allocate-producer-ids':
      return {
        type,
        brokerId: r.uvarint('broker id', BROKER_ID_MAX),
        firstProducerId: r.uvarint('first producer id'),
        count: r.uvarint('producer id count', PRODUCER_ID_BLOCK_MAX),
      };
    case 'reassign-partition':
      return {
        type,
        topicId: r.uvarint('topic id'),
        partition: r.uvarint('partition', PARTITIONS_MAX - 1),
        replicas: readIdList(r, 'replicas'),
        target: readIdList(r, 'target'),
        adding: readIdList(r, 'adding'),
      };
    case 'complete-reassignment':
    case 'cancel-reassignment':
      return {
        type,
        topicId: r.uvarint('topic id'),
        partition: r.uvarint('partition', PARTITIONS_MAX - 1),
      };
    case 'add-partitions': {
      const topicId = r.uvarint('topic id');
      const count = r.uvarint('partition count', PARTITIONS_MAX);
      const n = r.count('new partitions', PARTITIONS_MAX);
      const partitions: PartitionAssignment[] = [];
      for (let p = 0; p < n; p++) partitions.push({ replicas: readIdList(r, 'replicas') });
      return { type, topicId, count, partitions };
    }
    case 'set-controller-voters':
      return { type, voters: readIdList(r, 'voters') };
  }
}

// ---- canonical text (scenario tests, logs) ----

const ids = (list: readonly number[]): string => `[${list.join(',')}]`;

/** One line per record, stable across versions of this code: scenario files depend on it. */
export function formatRecord(r: MetadataRecord): string {
  switch (r.type) {
    case 'cluster-bootstrap':
      return `${r.type} cluster=${r.clusterId}`;
    case 'register-broker':
      return `${r.type} broker=${r.brokerId} addr=${r.host}:${r.port} incarnation=${r.incarnation} epoch=${r.brokerEpoch}${r.kafka != null ? ` kafka=${r.kafka.host}:${r.kafka.port}` : ''}`;
    case 'broker-heartbeat':
      return `${r.type} broker=${r.brokerId} epoch=${r.brokerEpoch} tick=${r.tick}`;
    case 'fence-broker':
    case 'unfence-broker':
    case 'unregister-broker':
      return `${r.type} broker=${r.brokerId} epoch=${r.brokerEpoch}`;
    case 'alter-broker-config':
      return `${r.type} broker=${r.brokerId}${r.changes.map((c) => ` ${c.key}=${c.value ?? '(default)'}`).join('')}`;
    case 'create-topic': {
      const configs = r.configs.map((e) => ` ${e.key}=${e.value}`).join('');
      return `${r.type} id=${r.topicId} name=${r.name} replicas=${r.partitions.map((p) => ids(p.replicas)).join('')}${configs}`;
    }
    case 'delete-topic':
      return `${r.type} id=${r.topicId}`;
    case 'alter-topic-config':
      return `${r.type} id=${r.topicId}${r.changes.map((c) => ` ${c.key}=${c.value ?? '(default)'}`).join('')}`;
    case 'partition-change':
      return `${r.type} ${r.topicId}/${r.partition} leader=${r.leader} epoch=${r.leaderEpoch} replicas=${ids(r.replicas)} isr=${ids(r.isr)}`;
    case 'allocate-producer-ids':
      return `${r.type} broker=${r.brokerId} first=${r.firstProducerId} count=${r.count}`;
    case 'reassign-partition':
      return `${r.type} ${r.topicId}/${r.partition} replicas=${ids(r.replicas)} target=${ids(r.target)} adding=${ids(r.adding)}`;
    case 'complete-reassignment':
    case 'cancel-reassignment':
      return `${r.type} ${r.topicId}/${r.partition}`;
    case 'add-partitions':
      return `${r.type} id=${r.topicId} count=${r.count} replicas=${r.partitions.map((p) => ids(p.replicas)).join('')}`;
    case 'set-controller-voters':
      return `${r.type} voters=${ids(r.voters)}`;
  }
}
