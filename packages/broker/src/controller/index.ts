// The controller's metadata foundation (issue 9; docs/controller.md): the metadata log's records
// and codec, the pure state machine every broker applies, the controller leader's planner, and
// the data directory's identity file. Exported from the broker package as the `controller`
// namespace. The metadata Raft group (ControllerNode), its durable log, the controller RPCs and
// the broker's registration are built on it; the broker does not run them yet.

export {
  BROKER_LIFECYCLE_DEFAULTS,
  BrokerLifecycle,
  type BrokerLifecycleOptions,
} from './broker-lifecycle.js';
export {
  type AppliedListener,
  type ControllerLimits,
  ControllerNode,
  type ControllerNodeOptions,
  DEFAULT_CONTROLLER_LIMITS,
  NotControllerError,
  newClusterId,
} from './controller-node.js';
export {
  assignReplicas,
  type CreateTopicRequest,
  DEFAULT_PLANNER_LIMITS,
  DEFAULT_REPLICATION_FACTOR_MAX,
  type HeartbeatRequest,
  type IsrReport,
  type PlannerLimits,
  planAllocateProducerIds,
  planAlterTopicConfig,
  planBootstrap,
  planCreateTopic,
  planDeleteTopic,
  planFenceExpired,
  planHeartbeat,
  planIsrChange,
  planPreferredLeaders,
  planRegisterBroker,
  type RegisterBrokerRequest,
} from './controller-planner.js';
export {
  CONTROLLER_CLIENT_DEFAULTS,
  ControllerClient,
  type ControllerClientOptions,
  ControllerRpcKind,
  ControllerRpcServer,
  decodeResponse,
  encodeError,
  encodeOk,
  encodeRequest,
  isControllerRpcKind,
} from './controller-rpc.js';
export { decodePlan, encodePlan, PLAN_RECORDS_MAX } from './metadata-entry.js';
export {
  DEFAULT_METADATA_LOG_LIMITS,
  METADATA_ENTRY_BYTES_MAX,
  METADATA_HARDSTATE_FILE,
  METADATA_LOG_FILE,
  METADATA_SNAPSHOT_FILE,
  type MetadataLogLimits,
  type MetadataLogRecovery,
  MetadataLogStore,
  type ReadyWrites,
} from './metadata-log.js';
export {
  BROKER_ID_MAX,
  CONFIG_ENTRIES_MAX,
  type ConfigChange,
  type ConfigEntry,
  decodeRecord,
  encodeRecord,
  formatRecord,
  METADATA_RECORD_VERSION,
  type MetadataRecord,
  MetadataRecordType,
  type MetadataRecordTypeValue,
  PARTITIONS_MAX,
  type PartitionAssignment,
  PRODUCER_ID_BLOCK_MAX,
  REPLICAS_MAX,
  recordProblem,
} from './metadata-records.js';
export {
  type ApplyResult,
  apply,
  applyRecord,
  type BrokerPartition,
  type BrokerState,
  brokersInOrder,
  decodeSnapshot,
  EMPTY_METADATA_STATE,
  encodeSnapshot,
  formatState,
  isLive,
  leaderCounts,
  liveBrokers,
  METADATA_SNAPSHOT_VERSION,
  type MetadataState,
  type PartitionState,
  partitionCount,
  partitionsOfBroker,
  replicaCounts,
  type TopicState,
  topicByName,
  topicsInOrder,
} from './metadata-state.js';
export {
  bindNodeIdentity,
  type ClusterIdSource,
  decodeNodeIdentity,
  encodeNodeIdentity,
  ensureNodeIdentity,
  NODE_IDENTITY_FILE,
  type NodeIdentity,
  readNodeIdentity,
  verifyNodeIdentity,
  writeNodeIdentity,
} from './node-identity.js';
