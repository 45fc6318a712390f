// The controller's metadata state machine (issue 9; ARCHITECTURE.md §4): the state every broker
// holds, `applyRecord(state, record)` that advances it by one committed metadata record, the
// snapshot codec that bounds the metadata log, and the queries metadata answers are built from.
// Pure and deterministic: no I/O, no clock, no randomness, no iteration over anything whose order
// is not fixed by the records. It does not decide what to propose (controller-planner.ts does)
// and does not open or close replicas (the broker reacts to applied records; not wired yet).
//
// A committed record is applied by every replica, so applying never throws: a record that does
// not fit the state (a duplicate topic name, a stale broker epoch, a partition of an unknown
// topic) leaves the state unchanged and returns the reason as `noop`. The rules, numbered:
//   1. Before `cluster-bootstrap`, every other record is a no-op; a second bootstrap is a no-op.
//   2. `register-broker` needs brokerEpoch >= brokerEpochNext (epochs only grow, cluster-wide);
//      it (re)places the broker, fenced, with its last heartbeat at tickLast and the Kafka
//      address it carries (none when it carries none: a restart without a Kafka listener).
//   3. heartbeat, fence and unfence need the broker's current epoch; a heartbeat's tick must not
//      go below the broker's last one; fence needs an unfenced broker, unfence a fenced one.
//   4. `create-topic` needs an unused name, topicId >= topicIdNext (ids are never reused) and
//      registered replicas; partition p starts with leader replicas[0], ISR = replicas, epoch 0.
//   5. `partition-change` needs the partition to exist, registered replicas, a leader epoch not
//      below the current one and, when the leader changes from one broker to another, above it
//      (a leader lost keeps its epoch, -1; the next one recorded in that epoch ends the -1).
//      Every applied change bumps the partition epoch.
//   6. `allocate-producer-ids` needs a registered broker and firstProducerId == producerIdNext:
//      blocks are contiguous and never overlap.
//   7. Any record that breaks a field rule of metadata-records.ts is a no-op.
//   8. `reassign-partition` (issue 12) needs the partition, no reassignment in progress,
//      registered replicas, replicas = the target then the current replicas not in it, adding =
//      the target members not among the current replicas; leader and ISR stay. A
//      `partition-change` keeps a reassignment in progress. `complete-reassignment` needs one:
//      replicas become the target, the ISR keeps its target members (a no-op if none would
//      stay), a leader outside the target is lost at the same epoch.
//   9. `unregister-broker` needs the broker's current epoch and no partition listing it (as a
//      replica or in a reassignment's target): the broker leaves the registry.
//  10. `alter-broker-config` needs broker id -1 (every broker) or a registered broker; changes
//      merge like a topic's (a null value removes the key), at most CONFIG_ENTRIES_MAX keys.
//  11. `add-partitions` (issue 11) needs the topic, count = its partitions + the new ones (so a
//      replayed or stale record is a no-op) and registered replicas; each new partition starts
//      as a created topic's do (leader replicas[0], ISR = replicas, epochs 0). A snapshot holds
//      the grown topic like any other: no section of its own.
//  12. `set-controller-voters` (issue 12) needs every voter registered: `controllerVoters` is the
//      quorum wanted (controller-voters.ts). `unregister-broker` takes the broker out of it and
//      adds it to `departed` (ids that left the registry, so a controller that learned the state
//      from a snapshot still removes them from the metadata group); registering again takes it
//      out of `departed`.
//  13. `cancel-reassignment` needs a reassignment adding at least one replica: replicas and the
//      target become the replicas before the move, in their order then (`original`, kept by
//      `reassign-partition`; a state without it keeps the staying replicas in their present
//      order), the adding ones leave at once, adding = [],
//      the ISR keeps the staying members (a no-op if none would stay), a leader leaving is lost
//      at the same epoch. The partition's leader then completes it as any reassignment.
//
// Immutability: a state is never mutated; apply copies the maps it changes (copy-on-write, so a
// topic change costs O(topics) here: fine for a metadata log, revisit past ~100k topics).
//
// Snapshot (version 1 or 2), all integers as in metadata-records.ts:
//   snapshot  := "SBMS" version:u8 crc32c:u32 (big-endian, of body) body
//   body      := hasCluster:bool [clusterId:string] topicIdNext brokerEpochNext producerIdNext
//                tickLast brokers:broker[] topics:topic[]          (ids strictly ascending)
//   broker    := id host:string port incarnation:string brokerEpoch fenced:bool lastHeartbeatTick
//                hasKafka:bool [kafkaHost:string kafkaPort]        (version 1: neither field)
// A snapshot is written at version 2 only when some broker has a Kafka address (as records are,
// metadata-records.ts), so a cluster without Kafka listeners writes what older code reads; a
// version-2 snapshot without any Kafka address is refused as non-canonical.
//   topic     := id name:string partitions:partition[] configs:entry[]
//   partition := leader:svarint leaderEpoch partitionEpoch replicas:uvarint[] isr:uvarint[]
//   then optional sections, each only when it has something (so a state without any encodes
//   as before), tags strictly ascending:
//   section := 0x01 reassignments:reassignment[] (count >= 1, by topic id then partition)
//            | 0x02 brokerConfigs:(brokerId:svarint entries:entry[])[] (count >= 1, ids
//              ascending, -1 = every broker, entries non-empty)
//            | 0x10 controllerVoters:uvarint[] (ascending, registered brokers)
//            | 0x11 departed:uvarint[] (ascending, count >= 1, none registered)
//            | 0x12 originals:original[] (count >= 1, by topic id then partition)
//   reassignment := topicId partition target:uvarint[] adding:uvarint[]
//   original  := topicId partition replicas:uvarint[] (a reassignment's replicas before the move,
//                in their order: the replicas less the ones being added)
// Canonical: equal states encode to equal bytes, and decoding re-checks every invariant above.
import { crc32c } from '@streambus/protocol';
import { ByteReader, ByteWriter, corruptData } from './byte-codec.js';
import {
  BROKER_ID_MAX,
  type CancelReassignmentRecord,
  CONFIG_ENTRIES_MAX,
  type CompleteReassignmentRecord,
  type ConfigChange,
  type ConfigEntry,
  isLegalTopicName,
  isValidClusterId,
  type KafkaAddress,
  type MetadataRecord,
  PARTITIONS_MAX,
  type ReassignPartitionRecord,
  readConfigEntries,
  readIdList,
  recordProblem,
  replicaListProblem,
  writeConfigEntries,
  writeIdList,
} from './metadata-records.js';

export interface BrokerState {
  readonly id: number;
  readonly host: string;
  readonly port: number;
  readonly incarnation: string;
  readonly brokerEpoch: number;
  /** A fenced broker leads nothing and is not offered to clients. */
  readonly fenced: boolean;
  readonly lastHeartbeatTick: number;
  /** Its advertised Kafka address, from its registration; null: no Kafka listener. */
  readonly kafka: KafkaAddress | null;
}

export interface PartitionState {
  /** -1 when no in-sync replica is live. */
  readonly leader: number;
  readonly leaderEpoch: number;
  /** Bumped by every applied change: lets a proposer detect a change it did not see. */
  readonly partitionEpoch: number;
  readonly replicas: readonly number[];
  readonly isr: readonly number[];
  /** A reassignment in progress (issue 12), absent otherwise. */
  readonly reassignment?: PartitionReassignment;
}

export interface PartitionReassignment {
  /** The replica set wanted, preferred leader first. */
  readonly target: readonly number[];
  /** Target members that were not replicas: they join the Raft group as learners first. */
  readonly adding: readonly number[];
  /**
   * The replicas before the move, in their order then (preferred leader first): what a cancel
   * restores. Absent once cancelled, and in a state read from a snapshot written without it.
   */
  readonly original?: readonly number[];
}

export interface TopicState {
  readonly id: number;
  readonly name: string;
  readonly partitions: readonly PartitionState[];
  /** Overrides, keys ascending. */
  readonly configs: readonly ConfigEntry[];
}

export interface MetadataState {
  readonly clusterId: string | null;
  readonly brokers: ReadonlyMap<number, BrokerState>;
  readonly topics: ReadonlyMap<number, TopicState>;
  readonly topicIdsByName: ReadonlyMap<string, number>;
  readonly topicIdNext: number;
  readonly brokerEpochNext: number;
  /** First producer id not yet handed out in a block. */
  readonly producerIdNext: number;
  /** The highest tick any applied record carried: the controller's clock resumes from here. */
  readonly tickLast: number;
  /** Dynamic broker settings by broker id (-1: every broker), keys ascending (issue 12). */
  readonly brokerConfigs?: ReadonlyMap<number, readonly ConfigEntry[]>;
  /** The controller voters wanted (rule 11), ascending; absent: as the group started. */
  readonly controllerVoters?: readonly number[];
  /** Brokers that left the registry (rule 11), ascending; absent when none. */
  readonly departed?: readonly number[];
}

export const EMPTY_METADATA_STATE: MetadataState = {
  clusterId: null,
  brokers: new Map(),
  topics: new Map(),
  topicIdsByName: new Map(),
  topicIdNext: 1,
  brokerEpochNext: 1,
  producerIdNext: 0,
  tickLast: 0,
};

export interface ApplyResult {
  readonly state: MetadataState;
  /** Why the record changed nothing, or null when it was applied. */
  readonly noop: string | null;
}

/** Applies one committed record (see the rules above). Never throws on a record. */
export function applyRecord(state: MetadataState, record: MetadataRecord): ApplyResult {
  const problem = recordProblem(record);
  if (problem !== null) return noop(state, `malformed ${record.type}: ${problem}`);
  if (record.type === 'cluster-bootstrap') {
    if (state.clusterId !== null) {
      return noop(state, `cluster already bootstrapped as ${state.clusterId}`);
    }
    return ok({ ...state, clusterId: record.clusterId });
  }
  if (state.clusterId === null) return noop(state, 'cluster not bootstrapped yet');
  switch (record.type) {
    case 'register-broker': {
      if (record.brokerEpoch < state.brokerEpochNext) {
        return noop(
          state,
          `broker epoch ${record.brokerEpoch} is below the next epoch ${state.brokerEpochNext}`,
        );
      }
      const broker: BrokerState = {
        id: record.brokerId,
        host: record.host,
        port: record.port,
        incarnation: record.incarnation,
        brokerEpoch: record.brokerEpoch,
        fenced: true,
        lastHeartbeatTick: state.tickLast,
        kafka: record.kafka ?? null,
      };
      return ok(
        withDeparted(
          {
            ...state,
            brokers: new Map(state.brokers).set(broker.id, broker),
            brokerEpochNext: record.brokerEpoch + 1,
          },
          (ids) => ids.filter((id) => id !== broker.id),
        ),
      );
    }
    case 'broker-heartbeat':
    case 'fence-broker':
    case 'unfence-broker': {
      const broker = state.brokers.get(record.brokerId);
      if (broker === undefined) return noop(state, `broker ${record.brokerId} is not registered`);
      if (broker.brokerEpoch !== record.brokerEpoch) {
        return noop(
          state,
          `broker ${broker.id} epoch ${record.brokerEpoch} is not the registered ${broker.brokerEpoch}`,
        );
      }
      let next: BrokerState;
      let tickLast = state.tickLast;
      if (record.type === 'broker-heartbeat') {
        if (record.tick < broker.lastHeartbeatTick) {
          return noop(
            state,
            `heartbeat tick ${record.tick} is before broker ${broker.id}'s last ${broker.lastHeartbeatTick}`,
          );
        }
        next = { ...broker, lastHeartbeatTick: record.tick };
        tickLast = Math.max(tickLast, record.tick);
      } else {
        const fence = record.type === 'fence-broker';
        if (broker.fenced === fence) {
          return noop(state, `broker ${broker.id} is already ${fence ? 'fenced' : 'unfenced'}`);
        }
        next = { ...broker, fenced: fence };
      }
      return ok({ ...state, brokers: new Map(state.brokers).set(broker.id, next), tickLast });
    }
    case 'create-topic': {
      if (state.topicIdsByName.has(record.name)) {
        return noop(state, `topic ${record.name} already exists`);
      }
      if (record.topicId < state.topicIdNext) {
        return noop(state, `topic id ${record.topicId} is below the next id ${state.topicIdNext}`);
      }
      const partitions: PartitionState[] = [];
      for (const a of record.partitions) {
        const unknown = unregistered(state, a.replicas);
        if (unknown !== null) return noop(state, `replica broker ${unknown} is not registered`);
        partitions.push(newPartition(a.replicas));
      }
      const topic: TopicState = {
        id: record.topicId,
        name: record.name,
        partitions,
        configs: record.configs,
      };
      return ok({
        ...state,
        topics: new Map(state.topics).set(topic.id, topic),
        topicIdsByName: new Map(state.topicIdsByName).set(topic.name, topic.id),
        topicIdNext: record.topicId + 1,
      });
    }
    case 'delete-topic': {
      const topic = state.topics.get(record.topicId);
      if (topic === undefined) return noop(state, `topic id ${record.topicId} does not exist`);
      const topics = new Map(state.topics);
      topics.delete(topic.id);
      const byName = new Map(state.topicIdsByName);
      byName.delete(topic.name);
      return ok({ ...state, topics, topicIdsByName: byName });
    }
    case 'alter-topic-config': {
      const topic = state.topics.get(record.topicId);
      if (topic === undefined) return noop(state, `topic id ${record.topicId} does not exist`);
      const configs = mergeConfigs(topic.configs, record.changes);
      if (configs === null) {
        return noop(
          state,
          `topic ${topic.name} would have more than ${CONFIG_ENTRIES_MAX} configs`,
        );
      }
      return ok(withTopic(state, { ...topic, configs }));
    }
    case 'partition-change': {
      const topic = state.topics.get(record.topicId);
      if (topic === undefined) return noop(state, `topic id ${record.topicId} does not exist`);
      const current = topic.partitions[record.partition];
      if (current === undefined) {
        return noop(state, `topic ${topic.name} has no partition ${record.partition}`);
      }
      const unknown = unregistered(state, record.replicas);
      if (unknown !== null) return noop(state, `replica broker ${unknown} is not registered`);
      if (record.leaderEpoch < current.leaderEpoch) {
        return noop(
          state,
          `leader epoch ${record.leaderEpoch} is below the current ${current.leaderEpoch}`,
        );
      }
      if (
        record.leader !== current.leader &&
        record.leader !== -1 &&
        current.leader !== -1 &&
        record.leaderEpoch === current.leaderEpoch
      ) {
        return noop(state, `leader changes to ${record.leader} without a new leader epoch`);
      }
      const partitions = topic.partitions.slice();
      partitions[record.partition] = {
        leader: record.leader,
        leaderEpoch: record.leaderEpoch,
        partitionEpoch: current.partitionEpoch + 1,
        replicas: record.replicas,
        isr: record.isr,
        ...(current.reassignment !== undefined ? { reassignment: current.reassignment } : {}),
      };
      return ok(withTopic(state, { ...topic, partitions }));
    }
    case 'reassign-partition':
    case 'complete-reassignment':
      return applyReassignment(state, record);
    case 'cancel-reassignment':
      return applyCancelReassignment(state, record);
    case 'set-controller-voters': {
      const unknown = unregistered(state, record.voters);
      if (unknown !== null) return noop(state, `voter ${unknown} is not a registered broker`);
      return ok({ ...state, controllerVoters: record.voters });
    }
    case 'alter-broker-config': {
      if (record.brokerId !== -1 && !state.brokers.has(record.brokerId)) {
        return noop(state, `broker ${record.brokerId} is not registered`);
      }
      const merged = mergeConfigs(state.brokerConfigs?.get(record.brokerId) ?? [], record.changes);
      if (merged === null) {
        return noop(
          state,
          `broker ${record.brokerId} would have more than ${CONFIG_ENTRIES_MAX} configs`,
        );
      }
      const configs = new Map(state.brokerConfigs ?? []);
      if (merged.length === 0) configs.delete(record.brokerId);
      else configs.set(record.brokerId, merged);
      const next: MetadataState = { ...state, brokerConfigs: configs };
      if (configs.size === 0) delete (next as { brokerConfigs?: unknown }).brokerConfigs;
      return ok(next);
    }
    case 'unregister-broker': {
      const b = state.brokers.get(record.brokerId);
      if (b === undefined || b.brokerEpoch !== record.brokerEpoch) {
        return noop(
          state,
          `broker ${record.brokerId} epoch ${record.brokerEpoch} is not registered`,
        );
      }
      const holds = partitionsListing(state, record.brokerId);
      if (holds !== null) return noop(state, `broker ${record.brokerId} still holds ${holds}`);
      const brokers = new Map(state.brokers);
      brokers.delete(record.brokerId);
      const next: MetadataState = withoutVoter(
        withDeparted({ ...state, brokers }, (ids) =>
          [...ids, record.brokerId].sort((a, b) => a - b),
        ),
        record.brokerId,
      );
      // Its dynamic settings go with it (a snapshot lists only registered brokers' settings).
      if (state.brokerConfigs?.has(record.brokerId) === true) {
        const configs = new Map(state.brokerConfigs);
        configs.delete(record.brokerId);
        if (configs.size === 0) delete (next as { brokerConfigs?: unknown }).brokerConfigs;
        else return ok({ ...next, brokerConfigs: configs });
      }
      return ok(next);
    }
    case 'add-partitions': {
      const topic = state.topics.get(record.topicId);
      if (topic === undefined) return noop(state, `topic id ${record.topicId} does not exist`);
      if (topic.partitions.length + record.partitions.length !== record.count) {
        return noop(
          state,
          `topic ${topic.name} has ${topic.partitions.length} partitions: ${record.partitions.length} more do not make ${record.count}`,
        );
      }
      const partitions = topic.partitions.slice();
      for (const a of record.partitions) {
        const unknown = unregistered(state, a.replicas);
        if (unknown !== null) return noop(state, `replica broker ${unknown} is not registered`);
        partitions.push(newPartition(a.replicas));
      }
      return ok(withTopic(state, { ...topic, partitions }));
    }
    case 'allocate-producer-ids': {
      if (!state.brokers.has(record.brokerId)) {
        return noop(state, `broker ${record.brokerId} is not registered`);
      }
      if (record.firstProducerId !== state.producerIdNext) {
        return noop(
          state,
          `producer-id block starts at ${record.firstProducerId}, not at the next free id ${state.producerIdNext}`,
        );
      }
      return ok({ ...state, producerIdNext: record.firstProducerId + record.count });
    }
  }
}

/** `entries` with `changes` applied (a null value removes), keys ascending; null past the max. */
function mergeConfigs(
  entries: readonly ConfigEntry[],
  changes: readonly ConfigChange[],
): ConfigEntry[] | null {
  const merged = new Map(entries.map((e) => [e.key, e.value]));
  for (const c of changes) {
    if (c.value === null) merged.delete(c.key);
    else merged.set(c.key, c.value);
  }
  if (merged.size > CONFIG_ENTRIES_MAX) return null;
  return [...merged.keys()].sort().map((key) => ({ key, value: merged.get(key)! }));
}

/** Rule 8. */
function applyReassignment(
  state: MetadataState,
  record: ReassignPartitionRecord | CompleteReassignmentRecord,
): ApplyResult {
  const topic = state.topics.get(record.topicId);
  if (topic === undefined) return noop(state, `topic id ${record.topicId} does not exist`);
  const current = topic.partitions[record.partition];
  if (current === undefined) {
    return noop(state, `topic ${topic.name} has no partition ${record.partition}`);
  }
  const partitions = topic.partitions.slice();
  if (record.type === 'reassign-partition') {
    if (current.reassignment !== undefined) {
      return noop(state, `${topic.name}/${record.partition} is already being reassigned`);
    }
    const unknown = unregistered(state, record.replicas);
    if (unknown !== null) return noop(state, `replica broker ${unknown} is not registered`);
    const union = [
      ...record.target,
      ...current.replicas.filter((id) => !record.target.includes(id)),
    ];
    const adding = record.target.filter((id) => !current.replicas.includes(id));
    if (!sameList(union, record.replicas) || !sameList(adding, record.adding)) {
      return noop(state, 'replicas or adding do not follow from the target and the replicas');
    }
    partitions[record.partition] = {
      ...current,
      partitionEpoch: current.partitionEpoch + 1,
      replicas: record.replicas,
      reassignment: { target: record.target, adding: record.adding, original: current.replicas },
    };
    return ok(withTopic(state, { ...topic, partitions }));
  }
  const ra = current.reassignment;
  if (ra === undefined) {
    return noop(state, `${topic.name}/${record.partition} is not being reassigned`);
  }
  const isr = current.isr.filter((id) => ra.target.includes(id));
  if (isr.length === 0) return noop(state, 'no in-sync replica would stay');
  partitions[record.partition] = {
    leader: ra.target.includes(current.leader) ? current.leader : -1,
    leaderEpoch: current.leaderEpoch,
    partitionEpoch: current.partitionEpoch + 1,
    replicas: ra.target,
    isr,
  };
  return ok(withTopic(state, { ...topic, partitions }));
}

/** Rule 12. */
function applyCancelReassignment(
  state: MetadataState,
  record: CancelReassignmentRecord,
): ApplyResult {
  const topic = state.topics.get(record.topicId);
  const current = topic?.partitions[record.partition];
  if (topic === undefined || current === undefined) {
    return noop(state, `partition ${record.topicId}/${record.partition} does not exist`);
  }
  const ra = current.reassignment;
  if (ra === undefined || ra.adding.length === 0) {
    return noop(state, `${topic.name}/${record.partition} is not adding any replica`);
  }
  const staying = current.replicas.filter((id) => !ra.adding.includes(id));
  // The order before the move when it still names the staying replicas (it always does unless a
  // partition change replaced a replica meanwhile).
  const original = ra.original;
  const restored =
    original !== undefined &&
    original.length === staying.length &&
    original.every((id) => staying.includes(id))
      ? original
      : staying;
  const isr = current.isr.filter((id) => restored.includes(id));
  if (restored.length === 0 || isr.length === 0) {
    return noop(state, 'no in-sync replica would stay');
  }
  const partitions = topic.partitions.slice();
  partitions[record.partition] = {
    leader: restored.includes(current.leader) ? current.leader : -1,
    leaderEpoch: current.leaderEpoch,
    partitionEpoch: current.partitionEpoch + 1,
    replicas: restored,
    isr,
    reassignment: { target: restored, adding: [] },
  };
  return ok(withTopic(state, { ...topic, partitions }));
}

/** `state` with `departed` changed by `change` (absent when empty: rule 11). */
function withDeparted(
  state: MetadataState,
  change: (ids: readonly number[]) => number[],
): MetadataState {
  const ids = change(state.departed ?? []);
  if (
    ids.length === (state.departed?.length ?? 0) &&
    ids.every((id, i) => state.departed?.[i] === id)
  ) {
    return state;
  }
  const next: MetadataState = { ...state, departed: ids };
  if (ids.length === 0) delete (next as { departed?: unknown }).departed;
  return next;
}

/** `state` without `id` among the controller voters wanted (rule 11). */
function withoutVoter(state: MetadataState, id: number): MetadataState {
  const voters = state.controllerVoters;
  if (voters === undefined || !voters.includes(id)) return state;
  const rest = voters.filter((v) => v !== id);
  const next: MetadataState = { ...state, controllerVoters: rest };
  if (rest.length === 0) delete (next as { controllerVoters?: unknown }).controllerVoters;
  return next;
}

/** The first partition whose replicas or reassignment target list `brokerId` ("t/p"), or null. */
export function partitionsListing(state: MetadataState, brokerId: number): string | null {
  for (const t of topicsInOrder(state)) {
    for (let i = 0; i < t.partitions.length; i++) {
      const p = t.partitions[i]!;
      if (p.replicas.includes(brokerId) || p.reassignment?.target.includes(brokerId) === true) {
        return `${t.name}/${i}`;
      }
    }
  }
  return null;
}

function sameList(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => b[i] === id);
}

/** `applyRecord` without the reason: `apply(state, record) -> state` of issue 9. */
export function apply(state: MetadataState, record: MetadataRecord): MetadataState {
  return applyRecord(state, record).state;
}

function ok(state: MetadataState): ApplyResult {
  return { state, noop: null };
}

function noop(state: MetadataState, reason: string): ApplyResult {
  return { state, noop: reason };
}

function unregistered(state: MetadataState, ids: readonly number[]): number | null {
  for (const id of ids) if (!state.brokers.has(id)) return id;
  return null;
}

/** A partition as created: its preferred leader leads, every replica in sync (rules 4, 11). */
function newPartition(replicas: readonly number[]): PartitionState {
  return { leader: replicas[0]!, leaderEpoch: 0, partitionEpoch: 0, replicas, isr: replicas };
}

function withTopic(state: MetadataState, topic: TopicState): MetadataState {
  return { ...state, topics: new Map(state.topics).set(topic.id, topic) };
}

// ---- queries ----

export function topicByName(state: MetadataState, name: string): TopicState | undefined {
  const id = state.topicIdsByName.get(name);
  return id === undefined ? undefined : state.topics.get(id);
}

/** Topics by ascending id. */
export function topicsInOrder(state: MetadataState): TopicState[] {
  return [...state.topics.values()].sort((a, b) => a.id - b.id);
}

/** Registered brokers by ascending id. */
export function brokersInOrder(state: MetadataState): BrokerState[] {
  return [...state.brokers.values()].sort((a, b) => a.id - b.id);
}

/** Registered, unfenced brokers by ascending id: the ones that may lead and take new replicas. */
export function liveBrokers(state: MetadataState): BrokerState[] {
  return brokersInOrder(state).filter((b) => !b.fenced);
}

export function isLive(state: MetadataState, brokerId: number): boolean {
  const b = state.brokers.get(brokerId);
  return b !== undefined && !b.fenced;
}

export interface BrokerPartition {
  readonly topicId: number;
  readonly topic: string;
  readonly partition: number;
  readonly isLeader: boolean;
}

/** Every partition with a replica on `brokerId`, by topic id then partition. */
export function partitionsOfBroker(state: MetadataState, brokerId: number): BrokerPartition[] {
  const out: BrokerPartition[] = [];
  for (const t of topicsInOrder(state)) {
    t.partitions.forEach((p, i) => {
      if (p.replicas.includes(brokerId)) {
        out.push({ topicId: t.id, topic: t.name, partition: i, isLeader: p.leader === brokerId });
      }
    });
  }
  return out;
}

/** Partitions led by each registered broker (0 for none). */
export function leaderCounts(state: MetadataState): Map<number, number> {
  return countBy(state, (p) => (p.leader === -1 ? [] : [p.leader]));
}

/** Replicas held by each registered broker (0 for none). */
export function replicaCounts(state: MetadataState): Map<number, number> {
  return countBy(state, (p) => p.replicas);
}

function countBy(
  state: MetadataState,
  pick: (p: PartitionState) => readonly number[],
): Map<number, number> {
  const counts = new Map<number, number>();
  for (const b of brokersInOrder(state)) counts.set(b.id, 0);
  for (const t of state.topics.values()) {
    for (const p of t.partitions) {
      for (const id of pick(p)) counts.set(id, (counts.get(id) ?? 0) + 1);
    }
  }
  return counts;
}

export function partitionCount(state: MetadataState): number {
  let n = 0;
  for (const t of state.topics.values()) n += t.partitions.length;
  return n;
}

// ---- snapshot ----

const SNAPSHOT_MAGIC = [0x53, 0x42, 0x4d, 0x53]; // "SBMS"
export const METADATA_SNAPSHOT_VERSION = 2;
/** The oldest snapshot version still decoded and written (no Kafka addresses). */
const METADATA_SNAPSHOT_VERSION_MIN = 1;

/** The lowest snapshot version that holds `brokers`. */
function snapshotVersion(brokers: readonly BrokerState[]): number {
  return brokers.some((b) => b.kafka !== null)
    ? METADATA_SNAPSHOT_VERSION
    : METADATA_SNAPSHOT_VERSION_MIN;
}
const SNAPSHOT_HEADER_BYTES = 9;
const SECTION_REASSIGNMENTS = 1;
const SECTION_BROKER_CONFIGS = 2;
const SECTION_CONTROLLER_VOTERS = 0x10;
const SECTION_DEPARTED = 0x11;
const SECTION_REASSIGNMENT_ORIGINALS = 0x12;
export const BROKERS_MAX = 65_536;
export const TOPICS_MAX = 1_000_000;

export function encodeSnapshot(state: MetadataState): Uint8Array {
  const w = new ByteWriter();
  w.bool(state.clusterId !== null);
  if (state.clusterId !== null) w.string(state.clusterId);
  w.uvarint(state.topicIdNext);
  w.uvarint(state.brokerEpochNext);
  w.uvarint(state.producerIdNext);
  w.uvarint(state.tickLast);
  const brokers = brokersInOrder(state);
  w.uvarint(brokers.length);
  const version = snapshotVersion(brokers);
  for (const b of brokers) {
    w.uvarint(b.id);
    w.string(b.host);
    w.uvarint(b.port);
    w.string(b.incarnation);
    w.uvarint(b.brokerEpoch);
    w.bool(b.fenced);
    w.uvarint(b.lastHeartbeatTick);
    if (version >= 2) {
      w.bool(b.kafka !== null);
      if (b.kafka !== null) {
        w.string(b.kafka.host);
        w.uvarint(b.kafka.port);
      }
    }
  }
  const topics = topicsInOrder(state);
  w.uvarint(topics.length);
  for (const t of topics) {
    w.uvarint(t.id);
    w.string(t.name);
    w.uvarint(t.partitions.length);
    for (const p of t.partitions) {
      w.svarint(p.leader);
      w.uvarint(p.leaderEpoch);
      w.uvarint(p.partitionEpoch);
      writeIdList(w, p.replicas);
      writeIdList(w, p.isr);
    }
    writeConfigEntries(w, t.configs);
  }
  const moving = topics.flatMap((t) =>
    t.partitions.flatMap((p, i) =>
      p.reassignment === undefined ? [] : [{ topicId: t.id, partition: i, ra: p.reassignment }],
    ),
  );
  if (moving.length > 0) {
    w.u8(SECTION_REASSIGNMENTS);
    w.uvarint(moving.length);
    for (const m of moving) {
      w.uvarint(m.topicId);
      w.uvarint(m.partition);
      writeIdList(w, m.ra.target);
      writeIdList(w, m.ra.adding);
    }
  }
  const configs = [...(state.brokerConfigs ?? new Map<number, readonly ConfigEntry[]>())].sort(
    (a, b) => a[0] - b[0],
  );
  if (configs.length > 0) {
    w.u8(SECTION_BROKER_CONFIGS);
    w.uvarint(configs.length);
    for (const [id, entries] of configs) {
      w.svarint(id);
      writeConfigEntries(w, entries);
    }
  }
  if (state.controllerVoters !== undefined) {
    w.u8(SECTION_CONTROLLER_VOTERS);
    writeIdList(w, state.controllerVoters);
  }
  if (state.departed !== undefined && state.departed.length > 0) {
    w.u8(SECTION_DEPARTED);
    w.uvarint(state.departed.length);
    for (const id of state.departed) w.uvarint(id);
  }
  const originals = moving.filter((m) => m.ra.original !== undefined);
  if (originals.length > 0) {
    w.u8(SECTION_REASSIGNMENT_ORIGINALS);
    w.uvarint(originals.length);
    for (const m of originals) {
      w.uvarint(m.topicId);
      w.uvarint(m.partition);
      writeIdList(w, m.ra.original!);
    }
  }
  const body = w.finish();
  const out = new Uint8Array(SNAPSHOT_HEADER_BYTES + body.length);
  out.set(SNAPSHOT_MAGIC, 0);
  out[4] = version;
  new DataView(out.buffer).setUint32(5, crc32c(body), false);
  out.set(body, SNAPSHOT_HEADER_BYTES);
  return out;
}

/** Decodes and re-validates a snapshot; CORRUPT_DATA naming the first problem found. */
export function decodeSnapshot(bytes: Uint8Array): MetadataState {
  if (bytes.length < SNAPSHOT_HEADER_BYTES) {
    throw corruptData(`metadata snapshot of ${bytes.length} bytes is shorter than its header`);
  }
  for (let i = 0; i < 4; i++) {
    if (bytes[i] !== SNAPSHOT_MAGIC[i]) throw corruptData('not a metadata snapshot (bad magic)');
  }
  const version = bytes[4]!;
  if (version < METADATA_SNAPSHOT_VERSION_MIN || version > METADATA_SNAPSHOT_VERSION) {
    throw corruptData(
      `metadata snapshot version ${version} is not supported (expected ${METADATA_SNAPSHOT_VERSION_MIN}..${METADATA_SNAPSHOT_VERSION})`,
    );
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const stored = view.getUint32(5, false);
  const actual = crc32c(bytes, 0, SNAPSHOT_HEADER_BYTES, bytes.length);
  if (stored !== actual) {
    throw corruptData(
      `metadata snapshot checksum mismatch: stored ${stored.toString(16)}, computed ${actual.toString(16)}`,
    );
  }
  const r = new ByteReader(bytes, SNAPSHOT_HEADER_BYTES);
  const clusterId = r.bool('has cluster') ? r.string('cluster id') : null;
  if (clusterId !== null && !isValidClusterId(clusterId)) {
    throw corruptData(`snapshot cluster id '${clusterId}' is not valid`);
  }
  const topicIdNext = r.uvarint('topic id next');
  const brokerEpochNext = r.uvarint('broker epoch next');
  const producerIdNext = r.uvarint('producer id next');
  const tickLast = r.uvarint('tick last');
  const brokers = new Map<number, BrokerState>();
  const brokerCount = r.count('brokers', BROKERS_MAX);
  let lastId = -1;
  for (let i = 0; i < brokerCount; i++) {
    const b: BrokerState = {
      id: r.uvarint('broker id', BROKER_ID_MAX),
      host: r.string('host'),
      port: r.uvarint('port', 65535),
      incarnation: r.string('incarnation'),
      brokerEpoch: r.uvarint('broker epoch'),
      fenced: r.bool('fenced'),
      lastHeartbeatTick: r.uvarint('last heartbeat tick'),
      kafka:
        version >= 2 && r.bool('has Kafka address')
          ? { host: r.string('Kafka host'), port: r.uvarint('Kafka port', 65535) }
          : null,
    };
    if (b.id <= lastId) throw corruptData(`snapshot broker ${b.id} is out of order`);
    if (b.host === '' || b.incarnation === '' || b.port === 0) {
      throw corruptData(`snapshot broker ${b.id} has an empty address or incarnation`);
    }
    if (b.kafka !== null && (b.kafka.host === '' || b.kafka.port === 0)) {
      throw corruptData(`snapshot broker ${b.id} has an empty Kafka address`);
    }
    if (b.brokerEpoch >= brokerEpochNext) {
      throw corruptData(`snapshot broker ${b.id} epoch ${b.brokerEpoch} is not below the next`);
    }
    if (b.lastHeartbeatTick > tickLast) {
      throw corruptData(`snapshot broker ${b.id} heartbeat tick is after the last tick`);
    }
    lastId = b.id;
    brokers.set(b.id, b);
  }
  const topics = new Map<number, TopicState>();
  const byName = new Map<string, number>();
  const topicCount = r.count('topics', TOPICS_MAX);
  lastId = -1;
  for (let i = 0; i < topicCount; i++) {
    const id = r.uvarint('topic id');
    const name = r.string('topic name');
    if (id <= lastId || id >= topicIdNext) throw corruptData(`snapshot topic id ${id} is invalid`);
    if (!isLegalTopicName(name) || byName.has(name)) {
      throw corruptData(`snapshot topic name '${name}' is illegal or repeated`);
    }
    const n = r.count('partitions', PARTITIONS_MAX);
    if (n === 0) throw corruptData(`snapshot topic ${name} has no partitions`);
    const partitions: PartitionState[] = [];
    for (let p = 0; p < n; p++) {
      const part: PartitionState = {
        leader: r.svarint('leader', -1, BROKER_ID_MAX),
        leaderEpoch: r.uvarint('leader epoch'),
        partitionEpoch: r.uvarint('partition epoch'),
        replicas: readIdList(r, 'replicas'),
        isr: readIdList(r, 'isr'),
      };
      const problem = partitionProblem(part, brokers);
      if (problem !== null) throw corruptData(`snapshot partition ${name}/${p}: ${problem}`);
      partitions.push(part);
    }
    const configs = readConfigEntries(r, 'configs');
    for (let k = 1; k < configs.length; k++) {
      if (!(configs[k - 1]!.key < configs[k]!.key)) {
        throw corruptData(`snapshot topic ${name} config keys are not ascending`);
      }
    }
    topics.set(id, { id, name, partitions, configs });
    byName.set(name, id);
    lastId = id;
  }
  let brokerConfigs: Map<number, readonly ConfigEntry[]> | null = null;
  let controllerVoters: number[] | null = null;
  let departed: number[] | null = null;
  let lastSection = 0;
  while (r.remaining > 0) {
    const tag = r.u8('snapshot section');
    if (tag <= lastSection) throw corruptData(`snapshot section ${tag} out of order`);
    lastSection = tag;
    if (tag === SECTION_REASSIGNMENTS) readReassignments(r, topics);
    else if (tag === SECTION_BROKER_CONFIGS) brokerConfigs = readBrokerConfigs(r, brokers);
    else if (tag === SECTION_CONTROLLER_VOTERS) controllerVoters = readVoters(r, brokers);
    else if (tag === SECTION_DEPARTED) departed = readDeparted(r, brokers);
    else if (tag === SECTION_REASSIGNMENT_ORIGINALS) readReassignmentOriginals(r, topics);
    else throw corruptData(`unknown snapshot section ${tag}`);
  }
  r.expectEnd('metadata snapshot');
  if (snapshotVersion([...brokers.values()]) !== version) {
    throw corruptData(`metadata snapshot version ${version} is not its canonical version`);
  }
  if (clusterId === null && (brokers.size > 0 || topics.size > 0)) {
    throw corruptData('snapshot has brokers or topics but no cluster id');
  }
  return {
    clusterId,
    brokers,
    topics,
    topicIdsByName: byName,
    topicIdNext,
    brokerEpochNext,
    producerIdNext,
    tickLast,
    ...(brokerConfigs === null ? {} : { brokerConfigs }),
    ...(controllerVoters === null ? {} : { controllerVoters }),
    ...(departed === null ? {} : { departed }),
  };
}

/** The snapshot's controller voters (rule 11): ascending registered brokers. */
function readVoters(r: ByteReader, brokers: ReadonlyMap<number, BrokerState>): number[] {
  const voters = readIdList(r, 'controller voters');
  const problem = recordProblem({ type: 'set-controller-voters', voters });
  if (problem !== null) throw corruptData(`snapshot controller voters: ${problem}`);
  const unknown = voters.find((id) => !brokers.has(id));
  if (unknown !== undefined)
    throw corruptData(`snapshot controller voter ${unknown} is not registered`);
  return voters;
}

/** The snapshot's departed brokers (rule 11): ascending, none registered, count >= 1. */
function readDeparted(r: ByteReader, brokers: ReadonlyMap<number, BrokerState>): number[] {
  const n = r.count('departed brokers', BROKERS_MAX);
  if (n === 0) throw corruptData('snapshot has an empty departed section');
  const ids: number[] = [];
  for (let i = 0; i < n; i++) {
    const id = r.uvarint('departed broker', BROKER_ID_MAX);
    if ((i > 0 && id <= ids[i - 1]!) || brokers.has(id)) {
      throw corruptData(`snapshot departed broker ${id} is out of order or registered`);
    }
    ids.push(id);
  }
  return ids;
}

function readBrokerConfigs(
  r: ByteReader,
  brokers: ReadonlyMap<number, BrokerState>,
): Map<number, readonly ConfigEntry[]> {
  const n = r.count('broker configs', BROKERS_MAX + 1);
  if (n === 0) throw corruptData('snapshot has an empty broker config section');
  const out = new Map<number, readonly ConfigEntry[]>();
  let last = -2;
  for (let i = 0; i < n; i++) {
    const id = r.svarint('broker id', -1, BROKER_ID_MAX);
    const entries = readConfigEntries(r, 'broker configs');
    if (id <= last || (id !== -1 && !brokers.has(id)) || entries.length === 0) {
      throw corruptData(`snapshot broker config of ${id} is out of order, unknown or empty`);
    }
    for (let k = 1; k < entries.length; k++) {
      if (!(entries[k - 1]!.key < entries[k]!.key)) {
        throw corruptData(`snapshot broker ${id} config keys are not ascending`);
      }
    }
    last = id;
    out.set(id, entries);
  }
  return out;
}

/** The snapshot's reassignment section (count >= 1, ascending), into `topics`. */
function readReassignments(r: ByteReader, topics: Map<number, TopicState>): void {
  const n = r.count('reassignments', PARTITIONS_MAX);
  if (n === 0) throw corruptData('snapshot has an empty reassignment section');
  let last = -1;
  for (let i = 0; i < n; i++) {
    const topicId = r.uvarint('topic id');
    const partition = r.uvarint('partition', PARTITIONS_MAX - 1);
    const target = readIdList(r, 'target');
    const adding = readIdList(r, 'adding');
    const t = topics.get(topicId);
    const p = t?.partitions[partition];
    const order = topicId * PARTITIONS_MAX + partition;
    if (t === undefined || p === undefined || order <= last) {
      throw corruptData(
        `snapshot reassignment of ${topicId}/${partition} is unknown or out of order`,
      );
    }
    last = order;
    const problem = recordProblem({
      type: 'reassign-partition',
      topicId,
      partition,
      replicas: p.replicas,
      target,
      adding,
    });
    if (problem !== null)
      throw corruptData(`snapshot reassignment of ${t.name}/${partition}: ${problem}`);
    const partitions = t.partitions.slice();
    partitions[partition] = { ...p, reassignment: { target, adding } };
    topics.set(topicId, { ...t, partitions });
  }
}

/**
 * The snapshot's section of original replica orders (count >= 1, ascending), into the
 * reassignments of `topics`: each names a reassignment read before, and holds exactly its
 * replicas less the ones being added.
 */
function readReassignmentOriginals(r: ByteReader, topics: Map<number, TopicState>): void {
  const n = r.count('reassignment originals', PARTITIONS_MAX);
  if (n === 0) throw corruptData('snapshot has an empty reassignment originals section');
  let last = -1;
  for (let i = 0; i < n; i++) {
    const topicId = r.uvarint('topic id');
    const partition = r.uvarint('partition', PARTITIONS_MAX - 1);
    const original = readIdList(r, 'original replicas');
    const t = topics.get(topicId);
    const p = t?.partitions[partition];
    const ra = p?.reassignment;
    const order = topicId * PARTITIONS_MAX + partition;
    if (t === undefined || p === undefined || ra === undefined || order <= last) {
      throw corruptData(
        `snapshot original replicas of ${topicId}/${partition}: no such reassignment, or out of order`,
      );
    }
    last = order;
    const staying = p.replicas.filter((id) => !ra.adding.includes(id));
    if (
      replicaListProblem(original, 'original replicas') !== null ||
      original.length !== staying.length ||
      original.some((id) => !staying.includes(id))
    ) {
      throw corruptData(
        `snapshot original replicas [${original.join(',')}] of ${t.name}/${partition} are not its replicas less the ones being added`,
      );
    }
    const partitions = t.partitions.slice();
    partitions[partition] = { ...p, reassignment: { ...ra, original } };
    topics.set(topicId, { ...t, partitions });
  }
}

function partitionProblem(p: PartitionState, brokers: ReadonlyMap<number, unknown>): string | null {
  const replicas = replicaListProblem(p.replicas, 'replicas');
  if (replicas !== null) return replicas;
  const isr = replicaListProblem(p.isr, 'isr');
  if (isr !== null) return isr;
  for (const id of p.replicas) if (!brokers.has(id)) return `replica ${id} is not registered`;
  for (const id of p.isr) if (!p.replicas.includes(id)) return `isr member ${id} is not a replica`;
  if (p.leader !== -1 && !p.isr.includes(p.leader)) return `leader ${p.leader} is not in the isr`;
  return null;
}

// ---- canonical text (scenario tests) ----

/** The whole state as sorted lines; equal states print the same. */
export function formatState(state: MetadataState): string[] {
  const lines = [
    `cluster=${state.clusterId ?? '(none)'} topicIdNext=${state.topicIdNext} brokerEpochNext=${state.brokerEpochNext} producerIdNext=${state.producerIdNext} tickLast=${state.tickLast}`,
  ];
  const leaders = leaderCounts(state);
  const replicas = replicaCounts(state);
  for (const b of brokersInOrder(state)) {
    lines.push(
      `broker ${b.id} ${b.host}:${b.port} epoch=${b.brokerEpoch} ${b.fenced ? 'fenced' : 'live'} heartbeat=${b.lastHeartbeatTick} leaders=${leaders.get(b.id)} replicas=${replicas.get(b.id)}${b.kafka !== null ? ` kafka=${b.kafka.host}:${b.kafka.port}` : ''}`,
    );
  }
  for (const t of topicsInOrder(state)) {
    const configs = t.configs.map((e) => ` ${e.key}=${e.value}`).join('');
    lines.push(`topic ${t.name} id=${t.id}${configs}`);
    t.partitions.forEach((p, i) => {
      lines.push(
        `  ${i}: leader=${p.leader} epoch=${p.leaderEpoch}/${p.partitionEpoch} replicas=[${p.replicas.join(',')}] isr=[${p.isr.join(',')}]${p.reassignment === undefined ? '' : ` target=[${p.reassignment.target.join(',')}] adding=[${p.reassignment.adding.join(',')}]${p.reassignment.original === undefined ? '' : ` original=[${p.reassignment.original.join(',')}]`}`}`,
      );
    });
  }
  return lines;
}
