// The replication storage bridge (issue 9 foundation, docs/replication.md): the pieces between
// the pure Raft core and the partition's segment log. Not wired into the broker yet.
export {
  type CheckpointRead,
  decodeCheckpoint,
  encodeCheckpoint,
  readCheckpoint,
  writeCheckpoint,
} from './checkpoint-file.js';
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
  type LogPosition,
  type RecoveredTermRuns,
  recoverTermRuns,
  type ScannedTerm,
  saveTermRuns,
  type TermRun,
  TermRuns,
} from './term-runs.js';
