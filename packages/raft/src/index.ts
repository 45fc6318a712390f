// @streambus/raft: Raft consensus as a pure, synchronous state machine (etcd-raft shape), its
// log-storage interface with an in-memory implementation, and the configuration codec. The
// deterministic simulator and the scenario driver are in the `./testing` entry.
export {
  applyConfChange,
  decodeConfState,
  EMPTY_CONF,
  encodeConfState,
  majority,
  quorumCommitIndex,
  tallyVotes,
  VoteResult,
} from './conf.js';
export { RAFT_DEFAULTS, type RaftConfig, type RaftConfigInput, resolveConfig } from './config.js';
export { AssertionError, RaftError, RaftErrorCode } from './errors.js';
export { ProgressState } from './progress.js';
export { type ProgressStatus, type Proposed, RaftNode, type Status } from './raft.js';
export { type RandomSource, type SeededRandom, seededRandom } from './rng.js';
export { type LogStorage, type LogStorageWriter, MemoryStorage } from './storage.js';
export {
  asIndex,
  asNodeId,
  asTerm,
  CAMPAIGN_TRANSFER,
  type ConfChange,
  ConfChangeType,
  type ConfState,
  type Entry,
  type EntryRange,
  EntryType,
  type HardState,
  HEARTBEAT_QUIESCE,
  type LogIndex,
  type Message,
  MessageType,
  message,
  NONE,
  type NodeId,
  type ReadState,
  type Ready,
  type Snapshot,
  type SnapshotMeta,
  type SoftState,
  StateRole,
  type Term,
} from './types.js';
