// @streambus/storage: public entry. The segmented partition log, the LSM key-value store and the
// file-system seam they do all their I/O through. See docs/storage.md.

export {
  BoundedFileSystem,
  type BoundedFileSystemOptions,
  type BoundedFileSystemStats,
} from './bounded-fs.js';
export {
  type Fault,
  type FaultInjector,
  type FaultOp,
  FaultyFileSystem,
} from './faulty-fs.js';
export { ForwardingFileSystem } from './forwarding-fs.js';
export {
  type FileHandle,
  type FileStat,
  type FileSystem,
  fsErrorCode,
  isNotFound,
  joinPath,
  type OpenMode,
  readFully,
  removeTree,
  writeFileAtomic,
} from './fs.js';
export { CleanerKeyIndex, type KeyIndexState } from './log/cleaner-key-index.js';
export { IoBudget, type IoBudgetOptions } from './log/io-budget.js';
export {
  type CleanOptions,
  type CleanReport,
  checkKeyedRecords,
  emptyBatchLike,
  LogCleaner,
  type LogCleanerOptions,
  type RecordVerdict,
  recordVerdict,
  rewriteBatch,
} from './log/log-cleaner.js';
export {
  isLogCorruptionError,
  LogCorruptionError,
  type LogDamage,
  type LogEvent,
  type LogEventListener,
} from './log/log-damage.js';
export {
  encodeGapBatches,
  type OffsetRange,
  type RepairMode,
  type RepairOptions,
  type RepairReport,
  repairPartitionLog,
} from './log/log-repair.js';
export {
  type AppendOptions,
  type AppendResult,
  DEFAULT_INLINE_WRITE_BYTES_MAX,
  DEFAULT_UNSYNCED_BYTES_MAX,
  type DurabilityPolicy,
  PartitionLog,
  type PartitionLogConfig,
  type PartitionLogOptions,
  type ReadResult,
  type RecoveryReport,
  validatePartitionLogConfig,
} from './log/partition-log.js';
export {
  decodePartitionMeta,
  PARTITION_META_FILE,
  type PartitionMeta,
  writePartitionMeta,
} from './log/partition-meta.js';
export {
  ReadBufferPool,
  type ReadBufferPoolOptions,
  type ReadBufferPoolStats,
  readBufferPool,
} from './log/read-buffers.js';
export { decodeKey, encodeKey, type KeyPart } from './lsm/keys.js';
export {
  type KeyValue,
  type LsmOptions,
  type LsmSnapshot,
  LsmStore,
  type ScanOptions,
  type ScanRange,
  WriteBatch,
  type WriteOptions,
} from './lsm/lsm-store.js';
export {
  type CrashMode,
  MemoryFileSystem,
  type MemoryFileSystemOptions,
  seededRandom,
} from './memory-fs.js';
export { NodeFileSystem } from './node-fs.js';
export { SlowSyncFileSystem, type SlowSyncOptions } from './slow-sync-fs.js';
export {
  quantileOf,
  StageProbe,
  StageSamples,
  type StageSummary,
  stageProbe,
} from './stage-probe.js';
