// The native protocol's APIs: keys, supported versions, and the schema of every request and
// response body. Types are inferred from the schemas, so what TypeScript sees is what the wire
// check enforces. Versions start at 0; a new field is added as `optional` within a version, a
// changed meaning takes a new version (and a range bump in API_VERSION_RANGES).
//
// Conventions shared by all messages:
// - Offsets and timestamps are int64 restricted to safe integers; -1 means "none".
// - Per-partition results carry their own `errorCode` (0 = success) and an optional
//   `errorMessage`; a whole-request failure is an ERROR frame with an ErrorBody instead.
// - Record batches travel as `bytes`: one or more RecordBatch v2 back to back, untouched.
import {
  array,
  bool,
  bytes,
  dict,
  INT32_MAX,
  type Infer,
  int,
  int16,
  int32,
  int64,
  literal,
  nullable,
  object,
  optional,
  type Schema,
  string,
} from './schema.js';

export const ApiKey = {
  API_VERSIONS: 0,
  METADATA: 1,
  CREATE_TOPICS: 2,
  DELETE_TOPICS: 3,
  DESCRIBE_CONFIGS: 4,
  ALTER_CONFIGS: 5,
  PRODUCE: 6,
  FETCH: 7,
  LIST_OFFSETS: 8,
  DELETE_RECORDS: 9,
  INIT_PRODUCER_ID: 10,
  REPAIR_PARTITION: 11,
  DESCRIBE_CLUSTER: 12,
  FIND_COORDINATOR: 13,
  JOIN_GROUP: 14,
  SYNC_GROUP: 15,
  HEARTBEAT: 16,
  LEAVE_GROUP: 17,
  OFFSET_COMMIT: 18,
  OFFSET_FETCH: 19,
  LIST_GROUPS: 20,
  DESCRIBE_GROUPS: 21,
  DELETE_GROUPS: 22,
  OFFSET_DELETE: 23,
  REBALANCE_LEADERS: 30,
  REASSIGN_PARTITION: 31,
  DESCRIBE_BROKER_CONFIG: 32,
  ALTER_BROKER_CONFIG: 33,
  DESCRIBE_REPLICA: 34,
  DECOMMISSION_BROKER: 35,
  CREATE_PARTITIONS: 40,
  ALTER_CONTROLLER_VOTERS: 36,
  CANCEL_REASSIGNMENT: 37,
} as const;
export type ApiKeyName = keyof typeof ApiKey;
export type ApiKeyValue = (typeof ApiKey)[ApiKeyName];

export const API_NAMES: Readonly<Record<number, string>> = Object.fromEntries(
  Object.entries(ApiKey).map(([name, key]) => [key, name.toLowerCase()]),
);

/** The versions this build implements for each API, as both ends advertise them. */
export const API_VERSION_RANGES: Readonly<
  Record<ApiKeyValue, { readonly min: number; readonly max: number }>
> = {
  [ApiKey.API_VERSIONS]: { min: 0, max: 0 },
  [ApiKey.METADATA]: { min: 0, max: 0 },
  [ApiKey.CREATE_TOPICS]: { min: 0, max: 0 },
  [ApiKey.DELETE_TOPICS]: { min: 0, max: 0 },
  [ApiKey.DESCRIBE_CONFIGS]: { min: 0, max: 0 },
  [ApiKey.ALTER_CONFIGS]: { min: 0, max: 0 },
  [ApiKey.PRODUCE]: { min: 0, max: 0 },
  [ApiKey.FETCH]: { min: 0, max: 0 },
  [ApiKey.LIST_OFFSETS]: { min: 0, max: 0 },
  [ApiKey.DELETE_RECORDS]: { min: 0, max: 0 },
  [ApiKey.INIT_PRODUCER_ID]: { min: 0, max: 0 },
  [ApiKey.REPAIR_PARTITION]: { min: 0, max: 0 },
  [ApiKey.DESCRIBE_CLUSTER]: { min: 0, max: 0 },
  [ApiKey.FIND_COORDINATOR]: { min: 0, max: 0 },
  [ApiKey.JOIN_GROUP]: { min: 0, max: 0 },
  [ApiKey.SYNC_GROUP]: { min: 0, max: 0 },
  [ApiKey.HEARTBEAT]: { min: 0, max: 0 },
  [ApiKey.LEAVE_GROUP]: { min: 0, max: 0 },
  [ApiKey.OFFSET_COMMIT]: { min: 0, max: 0 },
  [ApiKey.OFFSET_FETCH]: { min: 0, max: 0 },
  [ApiKey.LIST_GROUPS]: { min: 0, max: 0 },
  [ApiKey.DESCRIBE_GROUPS]: { min: 0, max: 0 },
  [ApiKey.DELETE_GROUPS]: { min: 0, max: 0 },
  [ApiKey.OFFSET_DELETE]: { min: 0, max: 0 },
  [ApiKey.REBALANCE_LEADERS]: { min: 0, max: 0 },
  [ApiKey.REASSIGN_PARTITION]: { min: 0, max: 0 },
  [ApiKey.DESCRIBE_BROKER_CONFIG]: { min: 0, max: 0 },
  [ApiKey.ALTER_BROKER_CONFIG]: { min: 0, max: 0 },
  [ApiKey.DESCRIBE_REPLICA]: { min: 0, max: 0 },
  [ApiKey.DECOMMISSION_BROKER]: { min: 0, max: 0 },
  [ApiKey.CREATE_PARTITIONS]: { min: 0, max: 0 },
  [ApiKey.ALTER_CONTROLLER_VOTERS]: { min: 0, max: 0 },
  [ApiKey.CANCEL_REASSIGNMENT]: { min: 0, max: 0 },
};

/** Limits on message shapes (the frame size bounds the bytes). */
export const TOPIC_NAME_LENGTH_MAX = 249;
const TOPICS_MAX = 10_000;
const PARTITIONS_MAX = 100_000;
const CONFIG_VALUE_LENGTH_MAX = 4096;

const topicName = string(TOPIC_NAME_LENGTH_MAX);
const partitionIndex = int(0, PARTITIONS_MAX - 1);
const errorFields = { errorCode: int32(), errorMessage: optional(string(4096)) };

/**
 * `[{ name, partitions: [{ partition, ...fields }] }]`: the per-topic, per-partition list that every
 * partition-level request and response carries. `perPartitionResult` adds the error fields.
 */
function perPartition<S extends Record<string, Schema<unknown>>>(fields: S) {
  return array(
    object({
      name: topicName,
      partitions: array(object({ partition: partitionIndex, ...fields }), PARTITIONS_MAX),
    }),
    TOPICS_MAX,
  );
}
function perPartitionResult<S extends Record<string, Schema<unknown>>>(fields: S) {
  return perPartition({ ...errorFields, ...fields });
}

/** Special ListOffsets timestamps, as in Kafka. */
export const OffsetSpec = { LATEST: -1, EARLIEST: -2 } as const;

/** Body of a frame flagged ERROR: the whole request failed. */
export const ErrorBodySchema = object({ errorCode: int32(), errorMessage: string(4096) });
export type ErrorBody = Infer<typeof ErrorBodySchema>;

// --- ApiVersions --------------------------------------------------------------------------------
export const ApiVersionsRequestSchema = object({
  clientSoftwareName: optional(string(256)),
  clientSoftwareVersion: optional(string(256)),
});
export const ApiVersionsResponseSchema = object({
  ...errorFields,
  apis: array(object({ apiKey: int(0, 0xffff), minVersion: int16(), maxVersion: int16() }), 1024),
  brokerVersion: string(256),
  nodeId: int32(),
});

// --- Metadata -----------------------------------------------------------------------------------
export const MetadataRequestSchema = object({
  /** null = every topic. */
  topics: nullable(array(topicName, TOPICS_MAX)),
  /**
   * false: never create a named topic, even on a broker with autoCreateTopics (the admin client's
   * describe must not create what it looks up). Default true, as Kafka's
   * allow_auto_topic_creation.
   */
  allowAutoTopicCreation: optional(bool()),
});
const PartitionMetadataSchema = object({
  ...errorFields,
  partition: partitionIndex,
  leaderId: int32(),
  leaderEpoch: int32(),
  replicas: array(int32(), 1024),
  isr: array(int32(), 1024),
});
export const MetadataResponseSchema = object({
  clusterId: string(256),
  controllerId: int32(),
  brokers: array(
    object({
      nodeId: int32(),
      host: string(1024),
      port: int(0, 65535),
      rack: nullable(string(256)),
    }),
    10_000,
  ),
  topics: array(
    object({
      ...errorFields,
      name: topicName,
      partitions: array(PartitionMetadataSchema, PARTITIONS_MAX),
    }),
    TOPICS_MAX,
  ),
});

// --- CreateTopics / DeleteTopics ------------------------------------------------------------------
export const CreateTopicsRequestSchema = object({
  topics: array(
    object({
      name: topicName,
      /** -1 = the broker's default. */
      partitions: int(-1, PARTITIONS_MAX),
      /** -1 = the cluster's default: min(3, live brokers). */
      replicationFactor: int16(),
      configs: dict(string(CONFIG_VALUE_LENGTH_MAX), 1000),
    }),
    TOPICS_MAX,
  ),
  timeoutMs: int32(),
  validateOnly: optional(bool()),
});
const TopicResultSchema = object({ ...errorFields, name: topicName });
export const CreateTopicsResponseSchema = object({ topics: array(TopicResultSchema, TOPICS_MAX) });

export const DeleteTopicsRequestSchema = object({
  topics: array(topicName, TOPICS_MAX),
  timeoutMs: int32(),
});
export const DeleteTopicsResponseSchema = object({ topics: array(TopicResultSchema, TOPICS_MAX) });

// --- DescribeConfigs / AlterConfigs ---------------------------------------------------------------
export const DescribeConfigsRequestSchema = object({ topics: array(topicName, TOPICS_MAX) });
export const ConfigEntrySchema = object({
  name: string(256),
  value: nullable(string(CONFIG_VALUE_LENGTH_MAX)),
  isDefault: bool(),
  readOnly: bool(),
});
export const DescribeConfigsResponseSchema = object({
  topics: array(
    object({ ...errorFields, name: topicName, configs: array(ConfigEntrySchema, 1000) }),
    TOPICS_MAX,
  ),
});
export const AlterConfigsRequestSchema = object({
  topics: array(
    object({
      name: topicName,
      /** A null value resets the key to its default. */
      configs: dict(nullable(string(CONFIG_VALUE_LENGTH_MAX)), 1000),
    }),
    TOPICS_MAX,
  ),
  validateOnly: optional(bool()),
});
export const AlterConfigsResponseSchema = object({ topics: array(TopicResultSchema, TOPICS_MAX) });

/**
 * Optional on a produce or fetch partition answered NOT_LEADER_OR_FOLLOWER: the partition's Raft
 * leader as the refusing broker knows it (its node id, and the leader epoch = Raft term), so a
 * client can go there at once instead of waiting for Metadata to name it (docs/protocol.md
 * "Leader hints", issue 12). Absent when the broker knows no leader; older clients ignore it.
 */
const currentLeaderField = {
  currentLeader: optional(object({ leaderId: int32(), leaderEpoch: int32() })),
};

// --- Produce --------------------------------------------------------------------------------------
export const ProduceRequestSchema = object({
  /** 0: no response (frame flag NO_RESPONSE), 1: leader append, -1: all (durable / committed). */
  acks: literal(-1, 0, 1),
  timeoutMs: int32(),
  topics: perPartition({ records: bytes() }),
});
export const ProduceResponseSchema = object({
  topics: perPartitionResult({
    baseOffset: int64(),
    logAppendTimeMs: int64(),
    logStartOffset: int64(),
    ...currentLeaderField,
  }),
});

// --- Fetch ----------------------------------------------------------------------------------------
export const FetchRequestSchema = object({
  /** Long-poll: wait up to this long for minBytes to become available. */
  maxWaitMs: int32(),
  minBytes: int32(),
  maxBytes: int32(),
  topics: perPartition({ fetchOffset: int64(), partitionMaxBytes: int32() }),
});
export const FetchResponseSchema = object({
  topics: perPartitionResult({
    highWatermark: int64(),
    logStartOffset: int64(),
    lastStableOffset: int64(),
    /** Whole batches; the first one is complete even when larger than partitionMaxBytes. */
    records: bytes(),
    ...currentLeaderField,
  }),
});

// --- ListOffsets ----------------------------------------------------------------------------------
export const ListOffsetsRequestSchema = object({
  /** timestamp: OffsetSpec.LATEST, OffsetSpec.EARLIEST, or a time in ms. */
  topics: perPartition({ timestamp: int64() }),
});
export const ListOffsetsResponseSchema = object({
  topics: perPartitionResult({ offset: int64(), timestamp: int64() }),
});

// --- DeleteRecords --------------------------------------------------------------------------------
export const DeleteRecordsRequestSchema = object({
  /** offset: delete everything below it; -1 = up to the high watermark. */
  topics: perPartition({ offset: int64() }),
  timeoutMs: int32(),
});
export const DeleteRecordsResponseSchema = object({
  topics: perPartitionResult({ lowWatermark: int64() }),
});

// --- InitProducerId -------------------------------------------------------------------------------
export const InitProducerIdRequestSchema = object({
  /** To bump the epoch of a known producer id; absent for a new producer. */
  producerId: optional(int64()),
  producerEpoch: optional(int16()),
});
export const InitProducerIdResponseSchema = object({
  ...errorFields,
  producerId: int64(),
  producerEpoch: int16(),
});

// --- RepairPartition (StreamBus admin) ------------------------------------------------------------
/** Items of the damages and lost lists a response carries at most (the counts say how many). */
export const REPAIR_ITEMS_MAX = 1000;
export const RepairPartitionRequestSchema = object({
  topic: topicName,
  partition: partitionIndex,
  /** truncate: cut the log at the first damage; skip: replace each damaged range by a gap. */
  mode: literal('truncate', 'skip'),
  /** Report what would be done without changing anything. */
  dryRun: bool(),
});
const OffsetRangeSchema = object({ fromOffset: int64(), toOffset: nullable(int64()) });
export const RepairPartitionResponseSchema = object({
  ...errorFields,
  mode: literal('truncate', 'skip'),
  dryRun: bool(),
  damages: array(
    object({
      segment: string(4096),
      position: int64(),
      bytes: int64(),
      fromOffset: int64(),
      toOffset: nullable(int64()),
      reason: string(4096),
    }),
    REPAIR_ITEMS_MAX,
  ),
  damageCount: int64(),
  /** Offsets no longer readable after the repair (cut, or covered by a gap batch). */
  lost: array(OffsetRangeSchema, REPAIR_ITEMS_MAX),
  /** null when a lost range's end is unknown (an unreadable tail). */
  offsetsLost: nullable(int64()),
  bytesRemoved: int64(),
  logEndOffsetBefore: int64(),
  logEndOffsetAfter: int64(),
  /** After the repair: serving again, or still offline (and why). */
  online: bool(),
  offlineReason: nullable(string(4096)),
});

// --- DescribeCluster (StreamBus admin) -----------------------------------------------------------
// The cluster as the controller's applied metadata sees it: every registered broker, live or
// not. Metadata lists only the brokers a client can route to; this is the operator's view
// (`streambus cluster describe`). A broker that does not implement it (older than this API) is
// told apart by ApiVersions, and the SDK falls back to Metadata.
export const DescribeClusterRequestSchema = object({});
export const DescribeClusterBrokerSchema = object({
  nodeId: int32(),
  host: string(1024),
  port: int(0, 65535),
  rack: nullable(string(256)),
  /** Heartbeating (registered and not timed out). */
  live: bool(),
  /** Fenced by the controller: holds no leadership and takes no new replicas. */
  fenced: bool(),
  /** A voter of the controller quorum (one of the `--peers`). */
  isVoter: bool(),
  /** Partition replicas assigned to this broker, and how many of them it leads. */
  replicaCount: int(0, INT32_MAX),
  leaderCount: int(0, INT32_MAX),
});
export const DescribeClusterResponseSchema = object({
  ...errorFields,
  clusterId: string(256),
  /** The controller quorum's leader; -1 while none is known (an election in progress). */
  controllerId: int32(),
  brokers: array(DescribeClusterBrokerSchema, 10_000),
});

// --- Consumer groups (issue 10; docs/groups.md) --------------------------------------------------
// The classic group protocol as Kafka has it (JoinGroup/SyncGroup/Heartbeat/LeaveGroup and the
// offset APIs), so that both front ends map onto one coordinator state machine: protocol
// metadata and assignments are opaque bytes here (for protocolType "consumer" they are Kafka's
// ConsumerProtocolSubscription / ConsumerProtocolAssignment encodings, so native and Kafka
// members can share a group); the assignor runs in the members' leader. Requests go to the
// group's coordinator (FindCoordinator); any other broker answers NOT_COORDINATOR, and
// COORDINATOR_NOT_AVAILABLE / COORDINATOR_LOAD_IN_PROGRESS while the group's partition of
// `__consumer_offsets` has no leader or is loading. Timeouts travel in milliseconds.
export const GROUP_ID_LENGTH_MAX = 255;
const GROUPS_PER_REQUEST_MAX = 1000;
const GROUP_METADATA_BYTES_MAX = 1024 * 1024;
const groupId = string(GROUP_ID_LENGTH_MAX);
const memberId = string(1024);
const instanceId = nullable(string(GROUP_ID_LENGTH_MAX));

export const FindCoordinatorRequestSchema = object({
  groupIds: array(groupId, GROUPS_PER_REQUEST_MAX),
});
export const FindCoordinatorResponseSchema = object({
  coordinators: array(
    object({
      ...errorFields,
      groupId,
      /** -1 with an error. */
      nodeId: int32(),
      host: string(1024),
      port: int(0, 65535),
    }),
    GROUPS_PER_REQUEST_MAX,
  ),
});

export const JoinGroupRequestSchema = object({
  groupId,
  /**
   * '' for a member joining for the first time: a dynamic member is answered
   * MEMBER_ID_REQUIRED with its id in `memberId` and joins again with it (KIP-394, always on
   * for the native protocol); a static member (groupInstanceId set) gets its id at once.
   */
  memberId,
  groupInstanceId: instanceId,
  protocolType: string(256),
  protocols: array(object({ name: string(256), metadata: bytes(GROUP_METADATA_BYTES_MAX) }), 64),
  sessionTimeoutMs: int32(),
  rebalanceTimeoutMs: int32(),
  reason: optional(string(4096)),
  /** The member id's prefix (Kafka's client.id); 'streambus' when absent. */
  clientId: optional(string(255)),
});
export const JoinGroupResponseSchema = object({
  ...errorFields,
  generation: int32(),
  protocolType: string(256),
  protocolName: string(256),
  leaderId: memberId,
  memberId,
  /** KIP-814: a static leader rejoined a Stable group and must not compute new assignments. */
  skipAssignment: bool(),
  /** Every member with its metadata for the chosen protocol: for the leader only. */
  members: array(
    object({
      memberId,
      groupInstanceId: instanceId,
      metadata: bytes(GROUP_METADATA_BYTES_MAX),
    }),
    10_000,
  ),
});

export const SyncGroupRequestSchema = object({
  groupId,
  generation: int32(),
  memberId,
  groupInstanceId: instanceId,
  protocolType: optional(string(256)),
  protocolName: optional(string(256)),
  /** The leader's assignments; empty from the other members. */
  assignments: array(object({ memberId, assignment: bytes(GROUP_METADATA_BYTES_MAX) }), 10_000),
});
export const SyncGroupResponseSchema = object({
  ...errorFields,
  protocolType: string(256),
  protocolName: string(256),
  assignment: bytes(GROUP_METADATA_BYTES_MAX),
});

export const HeartbeatRequestSchema = object({
  groupId,
  generation: int32(),
  memberId,
  groupInstanceId: instanceId,
});
export const HeartbeatResponseSchema = object({ ...errorFields });

export const LeaveGroupRequestSchema = object({
  groupId,
  /** memberId '' with a groupInstanceId removes that static member (admin removal, KIP-345). */
  members: array(
    object({ memberId, groupInstanceId: instanceId, reason: optional(string(4096)) }),
    10_000,
  ),
});
export const LeaveGroupResponseSchema = object({
  ...errorFields,
  members: array(object({ ...errorFields, memberId, groupInstanceId: instanceId }), 10_000),
});

export const OffsetCommitRequestSchema = object({
  groupId,
  /** -1 with memberId '': a commit from outside the group (admin reset; Empty groups only). */
  generation: int32(),
  memberId,
  groupInstanceId: instanceId,
  topics: perPartition({ offset: int64(), metadata: nullable(string(4096)) }),
});
export const OffsetCommitResponseSchema = object({ topics: perPartitionResult({}) });

export const OffsetFetchRequestSchema = object({
  groupId,
  /** null: every committed offset of the group. */
  topics: nullable(perPartition({})),
});
export const OffsetFetchResponseSchema = object({
  ...errorFields,
  /** offset -1 and metadata null where nothing is committed. */
  topics: perPartitionResult({ offset: int64(), metadata: nullable(string(4096)) }),
});

/**
 * The groups this broker coordinates (as Kafka's ListGroups: a client lists a cluster's groups
 * by asking every broker).
 */
export const ListGroupsRequestSchema = object({
  /** Only groups in these states (Empty, PreparingRebalance, CompletingRebalance, Stable). */
  statesFilter: optional(array(string(64), 16)),
});
export const ListGroupsResponseSchema = object({
  ...errorFields,
  groups: array(object({ groupId, state: string(64), protocolType: string(256) }), 100_000),
});

export const DescribeGroupsRequestSchema = object({
  groupIds: array(groupId, GROUPS_PER_REQUEST_MAX),
});
export const DescribeGroupsResponseSchema = object({
  groups: array(
    object({
      ...errorFields,
      groupId,
      /** Dead for a group that does not exist (as Kafka answers). */
      state: string(64),
      protocolType: string(256),
      protocolName: string(256),
      generation: int32(),
      leaderId: memberId,
      members: array(
        object({
          memberId,
          groupInstanceId: instanceId,
          clientId: string(256),
          metadata: bytes(GROUP_METADATA_BYTES_MAX),
          assignment: bytes(GROUP_METADATA_BYTES_MAX),
        }),
        10_000,
      ),
    }),
    GROUPS_PER_REQUEST_MAX,
  ),
});

export const DeleteGroupsRequestSchema = object({
  groupIds: array(groupId, GROUPS_PER_REQUEST_MAX),
});
export const DeleteGroupsResponseSchema = object({
  groups: array(object({ ...errorFields, groupId }), GROUPS_PER_REQUEST_MAX),
});

export const OffsetDeleteRequestSchema = object({ groupId, topics: perPartition({}) });
export const OffsetDeleteResponseSchema = object({
  ...errorFields,
  topics: perPartitionResult({}),
});

// --- RebalanceLeaders (StreamBus admin) ----------------------------------------------------------
// Preferred-leader balancing on demand (`streambus cluster rebalance-leaders`): every live broker
// hands the partitions it leads back to their preferred replica (the first of the assignment)
// where that one is live and in sync; the answer comes once the metadata shows the moves or
// after `timeoutMs`. `remaining` lists the partitions whose preferred replica is live and in
// the ISR but does not lead yet (at most 1000; `remainingCount` has them all).
export const RebalanceLeadersRequestSchema = object({
  timeoutMs: int(0, 600_000),
});
export const RebalanceLeadersResponseSchema = object({
  ...errorFields,
  transfersStarted: int(0, INT32_MAX),
  remainingCount: int(0, INT32_MAX),
  remaining: array(
    object({
      topic: topicName,
      partition: partitionIndex,
      leaderId: int32(),
      preferredId: int32(),
    }),
    1000,
  ),
});

// --- ReassignPartition, DescribeReplica (StreamBus admin, issue 12) ------------------------------
// ReassignPartition (`streambus partition reassign T P --replicas 1,2,4`): the controller records
// the target; the partition's leader moves its Raft group there (learner, catch up, voter, then
// the leaving replicas removed). Answered once the controller recorded it, not when it is done.
// DescribeReplica: one broker's own replica of a partition (`streambus partition describe` asks
// every replica's broker): its role, log end, high watermark, the Raft voters and learners it
// knows, and the metadata's replicas and reassignment target.
export const ReassignPartitionRequestSchema = object({
  topic: topicName,
  partition: partitionIndex,
  replicas: array(int(0, INT32_MAX), 64),
});
export const ReassignPartitionResponseSchema = object({ ...errorFields });
export const DescribeReplicaRequestSchema = object({
  topic: topicName,
  partition: partitionIndex,
});
export const DescribeReplicaResponseSchema = object({
  ...errorFields,
  nodeId: int32(),
  /** leader, follower, candidate, offline; "none" when this broker holds no open replica. */
  role: string(32),
  logEndOffset: int64(),
  highWatermark: int64(),
  leaderId: int32(),
  leaderEpoch: int64(),
  voters: array(int32(), 64),
  learners: array(int32(), 64),
  replicas: array(int32(), 64),
  target: nullable(array(int32(), 64)),
});

// DecommissionBroker (`streambus cluster decommission ID`): the broker's replicas move off it
// (reassignments), then it leaves the registry and the controller quorum. Answered when it left,
// or REQUEST_TIMED_OUT after timeoutMs (the moves go on; ask again).
export const DecommissionBrokerRequestSchema = object({
  brokerId: int(0, INT32_MAX),
  timeoutMs: int(0, 3_600_000),
});
export const DecommissionBrokerResponseSchema = object({
  ...errorFields,
  partitionsMoved: int(0, INT32_MAX),
});

// CreatePartitions (`streambus topic add-partitions`, issue 11): each topic grows to `count`
// partitions; `assignments` (null: the controller places them) has one replica list per new
// partition, preferred leader first. validateOnly checks everything and changes nothing.
export const CreatePartitionsRequestSchema = object({
  topics: array(
    object({
      name: topicName,
      count: int(1, PARTITIONS_MAX),
      assignments: nullable(array(array(int(0, INT32_MAX), 64), PARTITIONS_MAX)),
    }),
    TOPICS_MAX,
  ),
  timeoutMs: int32(),
  validateOnly: optional(bool()),
});
export const CreatePartitionsResponseSchema = object({
  topics: array(TopicResultSchema, TOPICS_MAX),
});

// AlterControllerVoters (`streambus cluster voters add|remove ID`, issue 12): one voter more or
// less in the controller quorum (a Raft membership change of the metadata group, one voter at a
// time; controller/controller-voters.ts). op 0 = describe (no change), 1 = add, 2 = remove.
// Answered once the group's voters are the new set, or REQUEST_TIMED_OUT after timeoutMs (the
// change goes on). The response lists the voters and learners in force.
export const AlterControllerVotersRequestSchema = object({
  op: int(0, 2),
  brokerId: int(-1, INT32_MAX),
  timeoutMs: int(0, 3_600_000),
});
export const AlterControllerVotersResponseSchema = object({
  ...errorFields,
  voters: array(int32(), 64),
  learners: array(int32(), 10_000),
});

// CancelReassignment (`streambus partition reassign T P --cancel`): the replicas being added that
// are not yet promoted leave, and the partition goes back to its replicas before the move.
// Answered once the controller recorded the cancel.
export const CancelReassignmentRequestSchema = object({
  topic: topicName,
  partition: partitionIndex,
});
export const CancelReassignmentResponseSchema = object({
  ...errorFields,
  replicas: array(int32(), 64),
});

// DescribeBrokerConfig / AlterBrokerConfig (`streambus config describe|set|unset`, issue 12): the
// dynamic broker settings. Describe is answered by the broker asked, for itself: each dynamic
// key's value in force and its source (static = flags, environment, file or default;
// dynamic-cluster; dynamic-broker). Alter (any broker) records the changes for one broker or,
// with brokerId -1, for every broker; a null value removes the dynamic value.
export const DescribeBrokerConfigRequestSchema = object({});
export const DescribeBrokerConfigResponseSchema = object({
  ...errorFields,
  nodeId: int32(),
  entries: array(
    object({ key: string(256), value: string(CONFIG_VALUE_LENGTH_MAX), source: string(32) }),
    64,
  ),
});
export const AlterBrokerConfigRequestSchema = object({
  brokerId: int(-1, INT32_MAX),
  configs: dict(nullable(string(CONFIG_VALUE_LENGTH_MAX)), 64),
});
export const AlterBrokerConfigResponseSchema = object({ ...errorFields });

/** Request and response schemas by API key. */
export const MESSAGE_SCHEMAS = {
  [ApiKey.API_VERSIONS]: { request: ApiVersionsRequestSchema, response: ApiVersionsResponseSchema },
  [ApiKey.METADATA]: { request: MetadataRequestSchema, response: MetadataResponseSchema },
  [ApiKey.CREATE_TOPICS]: {
    request: CreateTopicsRequestSchema,
    response: CreateTopicsResponseSchema,
  },
  [ApiKey.DELETE_TOPICS]: {
    request: DeleteTopicsRequestSchema,
    response: DeleteTopicsResponseSchema,
  },
  [ApiKey.DESCRIBE_CONFIGS]: {
    request: DescribeConfigsRequestSchema,
    response: DescribeConfigsResponseSchema,
  },
  [ApiKey.ALTER_CONFIGS]: {
    request: AlterConfigsRequestSchema,
    response: AlterConfigsResponseSchema,
  },
  [ApiKey.PRODUCE]: { request: ProduceRequestSchema, response: ProduceResponseSchema },
  [ApiKey.FETCH]: { request: FetchRequestSchema, response: FetchResponseSchema },
  [ApiKey.LIST_OFFSETS]: { request: ListOffsetsRequestSchema, response: ListOffsetsResponseSchema },
  [ApiKey.DELETE_RECORDS]: {
    request: DeleteRecordsRequestSchema,
    response: DeleteRecordsResponseSchema,
  },
  [ApiKey.INIT_PRODUCER_ID]: {
    request: InitProducerIdRequestSchema,
    response: InitProducerIdResponseSchema,
  },
  [ApiKey.REPAIR_PARTITION]: {
    request: RepairPartitionRequestSchema,
    response: RepairPartitionResponseSchema,
  },
  [ApiKey.DESCRIBE_CLUSTER]: {
    request: DescribeClusterRequestSchema,
    response: DescribeClusterResponseSchema,
  },
  [ApiKey.FIND_COORDINATOR]: {
    request: FindCoordinatorRequestSchema,
    response: FindCoordinatorResponseSchema,
  },
  [ApiKey.JOIN_GROUP]: {
    request: JoinGroupRequestSchema,
    response: JoinGroupResponseSchema,
  },
  [ApiKey.SYNC_GROUP]: {
    request: SyncGroupRequestSchema,
    response: SyncGroupResponseSchema,
  },
  [ApiKey.HEARTBEAT]: {
    request: HeartbeatRequestSchema,
    response: HeartbeatResponseSchema,
  },
  [ApiKey.LEAVE_GROUP]: {
    request: LeaveGroupRequestSchema,
    response: LeaveGroupResponseSchema,
  },
  [ApiKey.OFFSET_COMMIT]: {
    request: OffsetCommitRequestSchema,
    response: OffsetCommitResponseSchema,
  },
  [ApiKey.OFFSET_FETCH]: {
    request: OffsetFetchRequestSchema,
    response: OffsetFetchResponseSchema,
  },
  [ApiKey.LIST_GROUPS]: {
    request: ListGroupsRequestSchema,
    response: ListGroupsResponseSchema,
  },
  [ApiKey.DESCRIBE_GROUPS]: {
    request: DescribeGroupsRequestSchema,
    response: DescribeGroupsResponseSchema,
  },
  [ApiKey.DELETE_GROUPS]: {
    request: DeleteGroupsRequestSchema,
    response: DeleteGroupsResponseSchema,
  },
  [ApiKey.OFFSET_DELETE]: {
    request: OffsetDeleteRequestSchema,
    response: OffsetDeleteResponseSchema,
  },
  [ApiKey.REBALANCE_LEADERS]: {
    request: RebalanceLeadersRequestSchema,
    response: RebalanceLeadersResponseSchema,
  },
  [ApiKey.DESCRIBE_BROKER_CONFIG]: {
    request: DescribeBrokerConfigRequestSchema,
    response: DescribeBrokerConfigResponseSchema,
  },
  [ApiKey.ALTER_BROKER_CONFIG]: {
    request: AlterBrokerConfigRequestSchema,
    response: AlterBrokerConfigResponseSchema,
  },
  [ApiKey.REASSIGN_PARTITION]: {
    request: ReassignPartitionRequestSchema,
    response: ReassignPartitionResponseSchema,
  },
  [ApiKey.DESCRIBE_REPLICA]: {
    request: DescribeReplicaRequestSchema,
    response: DescribeReplicaResponseSchema,
  },
  [ApiKey.DECOMMISSION_BROKER]: {
    request: DecommissionBrokerRequestSchema,
    response: DecommissionBrokerResponseSchema,
  },
  [ApiKey.CREATE_PARTITIONS]: {
    request: CreatePartitionsRequestSchema,
    response: CreatePartitionsResponseSchema,
  },
  [ApiKey.ALTER_CONTROLLER_VOTERS]: {
    request: AlterControllerVotersRequestSchema,
    response: AlterControllerVotersResponseSchema,
  },
  [ApiKey.CANCEL_REASSIGNMENT]: {
    request: CancelReassignmentRequestSchema,
    response: CancelReassignmentResponseSchema,
  },
} as const;

type Schemas = typeof MESSAGE_SCHEMAS;
/** The request body type of an API: `RequestOf<typeof ApiKey.PRODUCE>`. */
export type RequestOf<K extends ApiKeyValue> = Infer<Schemas[K]['request']>;
export type ResponseOf<K extends ApiKeyValue> = Infer<Schemas[K]['response']>;

export type ApiVersionsRequest = RequestOf<typeof ApiKey.API_VERSIONS>;
export type ApiVersionsResponse = ResponseOf<typeof ApiKey.API_VERSIONS>;
export type MetadataRequest = RequestOf<typeof ApiKey.METADATA>;
export type MetadataResponse = ResponseOf<typeof ApiKey.METADATA>;
export type CreateTopicsRequest = RequestOf<typeof ApiKey.CREATE_TOPICS>;
export type CreateTopicsResponse = ResponseOf<typeof ApiKey.CREATE_TOPICS>;
export type DeleteTopicsRequest = RequestOf<typeof ApiKey.DELETE_TOPICS>;
export type DeleteTopicsResponse = ResponseOf<typeof ApiKey.DELETE_TOPICS>;
export type DescribeConfigsRequest = RequestOf<typeof ApiKey.DESCRIBE_CONFIGS>;
export type DescribeConfigsResponse = ResponseOf<typeof ApiKey.DESCRIBE_CONFIGS>;
export type AlterConfigsRequest = RequestOf<typeof ApiKey.ALTER_CONFIGS>;
export type AlterConfigsResponse = ResponseOf<typeof ApiKey.ALTER_CONFIGS>;
export type ProduceRequest = RequestOf<typeof ApiKey.PRODUCE>;
export type ProduceResponse = ResponseOf<typeof ApiKey.PRODUCE>;
export type FetchRequest = RequestOf<typeof ApiKey.FETCH>;
export type FetchResponse = ResponseOf<typeof ApiKey.FETCH>;
export type ListOffsetsRequest = RequestOf<typeof ApiKey.LIST_OFFSETS>;
export type ListOffsetsResponse = ResponseOf<typeof ApiKey.LIST_OFFSETS>;
export type DeleteRecordsRequest = RequestOf<typeof ApiKey.DELETE_RECORDS>;
export type DeleteRecordsResponse = ResponseOf<typeof ApiKey.DELETE_RECORDS>;
export type InitProducerIdRequest = RequestOf<typeof ApiKey.INIT_PRODUCER_ID>;
export type InitProducerIdResponse = ResponseOf<typeof ApiKey.INIT_PRODUCER_ID>;
export type RepairPartitionRequest = RequestOf<typeof ApiKey.REPAIR_PARTITION>;
export type RepairPartitionResponse = ResponseOf<typeof ApiKey.REPAIR_PARTITION>;
export type DescribeClusterRequest = RequestOf<typeof ApiKey.DESCRIBE_CLUSTER>;
export type DescribeClusterResponse = ResponseOf<typeof ApiKey.DESCRIBE_CLUSTER>;
export type FindCoordinatorRequest = RequestOf<typeof ApiKey.FIND_COORDINATOR>;
export type FindCoordinatorResponse = ResponseOf<typeof ApiKey.FIND_COORDINATOR>;
export type JoinGroupRequest = RequestOf<typeof ApiKey.JOIN_GROUP>;
export type JoinGroupResponse = ResponseOf<typeof ApiKey.JOIN_GROUP>;
export type SyncGroupRequest = RequestOf<typeof ApiKey.SYNC_GROUP>;
export type SyncGroupResponse = ResponseOf<typeof ApiKey.SYNC_GROUP>;
export type HeartbeatRequest = RequestOf<typeof ApiKey.HEARTBEAT>;
export type HeartbeatResponse = ResponseOf<typeof ApiKey.HEARTBEAT>;
export type LeaveGroupRequest = RequestOf<typeof ApiKey.LEAVE_GROUP>;
export type LeaveGroupResponse = ResponseOf<typeof ApiKey.LEAVE_GROUP>;
export type OffsetCommitRequest = RequestOf<typeof ApiKey.OFFSET_COMMIT>;
export type OffsetCommitResponse = ResponseOf<typeof ApiKey.OFFSET_COMMIT>;
export type OffsetFetchRequest = RequestOf<typeof ApiKey.OFFSET_FETCH>;
export type OffsetFetchResponse = ResponseOf<typeof ApiKey.OFFSET_FETCH>;
export type ListGroupsRequest = RequestOf<typeof ApiKey.LIST_GROUPS>;
export type ListGroupsResponse = ResponseOf<typeof ApiKey.LIST_GROUPS>;
export type DescribeGroupsRequest = RequestOf<typeof ApiKey.DESCRIBE_GROUPS>;
export type DescribeGroupsResponse = ResponseOf<typeof ApiKey.DESCRIBE_GROUPS>;
export type DeleteGroupsRequest = RequestOf<typeof ApiKey.DELETE_GROUPS>;
export type DeleteGroupsResponse = ResponseOf<typeof ApiKey.DELETE_GROUPS>;
export type OffsetDeleteRequest = RequestOf<typeof ApiKey.OFFSET_DELETE>;
export type OffsetDeleteResponse = ResponseOf<typeof ApiKey.OFFSET_DELETE>;
export type RebalanceLeadersRequest = RequestOf<typeof ApiKey.REBALANCE_LEADERS>;
export type RebalanceLeadersResponse = ResponseOf<typeof ApiKey.REBALANCE_LEADERS>;
export type ReassignPartitionRequest = RequestOf<typeof ApiKey.REASSIGN_PARTITION>;
export type ReassignPartitionResponse = ResponseOf<typeof ApiKey.REASSIGN_PARTITION>;
export type DescribeReplicaRequest = RequestOf<typeof ApiKey.DESCRIBE_REPLICA>;
export type DescribeReplicaResponse = ResponseOf<typeof ApiKey.DESCRIBE_REPLICA>;
export type DescribeBrokerConfigRequest = RequestOf<typeof ApiKey.DESCRIBE_BROKER_CONFIG>;
export type DescribeBrokerConfigResponse = ResponseOf<typeof ApiKey.DESCRIBE_BROKER_CONFIG>;
export type AlterBrokerConfigRequest = RequestOf<typeof ApiKey.ALTER_BROKER_CONFIG>;
export type AlterBrokerConfigResponse = ResponseOf<typeof ApiKey.ALTER_BROKER_CONFIG>;
export type DecommissionBrokerRequest = RequestOf<typeof ApiKey.DECOMMISSION_BROKER>;
export type DecommissionBrokerResponse = ResponseOf<typeof ApiKey.DECOMMISSION_BROKER>;
export type CreatePartitionsRequest = RequestOf<typeof ApiKey.CREATE_PARTITIONS>;
export type CreatePartitionsResponse = ResponseOf<typeof ApiKey.CREATE_PARTITIONS>;
export type AlterControllerVotersRequest = RequestOf<typeof ApiKey.ALTER_CONTROLLER_VOTERS>;
export type AlterControllerVotersResponse = ResponseOf<typeof ApiKey.ALTER_CONTROLLER_VOTERS>;
export type CancelReassignmentRequest = RequestOf<typeof ApiKey.CANCEL_REASSIGNMENT>;
export type CancelReassignmentResponse = ResponseOf<typeof ApiKey.CANCEL_REASSIGNMENT>;

export function isApiKey(key: number): key is ApiKeyValue {
  return Object.hasOwn(MESSAGE_SCHEMAS, key);
}
