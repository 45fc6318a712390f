// The replication storage bridge (issue 9 foundation, docs/replication.md): the pieces between
// the pure Raft core and the partition's segment log, and the partition replica built on them.
export {
  type CheckpointRead,
  decodeCheckpoint,
  encodeCheckpoint,
  readCheckpoint,
  writeCheckpoint,
} from './checkpoint-file.js';
export {
  batchToSource,
  encodeControlEntry,
  encodeLogStartBatch,
  isControlBatch,
  logStartOf,
  RAFT_CONF_CONTROL_TYPE,
  RAFT_LOG_START_CONTROL_TYPE,
  RAFT_NOOP_CONTROL_TYPE,
} from './control-entry.js';
export {
  type BatchPlacement,
  OFFSET_TRANSLATOR_DEFAULTS,
  OffsetTranslator,
  type OffsetTranslatorLimits,
  type RecoveredOffsetTranslator,
  recoverOffsetTranslator,
  saveOffsetTranslator,
} from './offset-translator.js';
export {
  NotLeaderError,
  PARTITION_REPLICA_DEFAULTS,
  PartitionReplica,
  type PartitionReplicaOptions,
  type ProduceResult,
  type ReplicaChange,
  type ReplicaLogger,
  type ReplicaRaftConfig,
  type ReplicaRole,
} from './partition-replica.js';
export {
  EntriesUnavailableError,
  type PrefetchResult,
  RAFT_LOG_TAIL_DEFAULTS,
  RaftLogTail,
  type RaftLogTailLimits,
  type RaftLogTailOptions,
  type ReplicaLogSource,
  type SourceBatch,
} from './raft-log-tail.js';
export {
  decodeSnapshotData,
  encodeSnapshotData,
  HARD_STATE_FILE,
  loadHardState,
  loadSnapshot,
  OFFSETS_FILE,
  type ReplicaSnapshotData,
  SNAPSHOT_FILE,
  type SnapshotKind,
  saveHardState,
  saveSnapshot,
  TERM_RUNS_FILE,
} from './replica-files.js';
export {
  batchProducer,
  copyProducers,
  producersAt,
  producersFrom,
} from './replica-producers.js';
export { ReplicaStore, type ReplicaStoreOptions, type ScannedBatch } from './replica-store.js';
export {
  IMPORTED_METADATA_FILE,
  type ImportedPartition,
  importSingleNodeStore,
  isClusterOfOne,
  type SingleNodeImportOptions,
  type SingleNodeImportReport,
} from './single-node-import.js';
export {
  type LogPosition,
  type RecoveredTermRuns,
  recoverTermRuns,
  type ScannedTerm,
  saveTermRuns,
  type TermRun,
  TermRuns,
} from './term-runs.js';
