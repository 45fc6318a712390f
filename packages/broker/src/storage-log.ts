// The default partition log: the storage package's PartitionLog over the real file system, with
// every fsync timed into `streambus_fsync_duration_seconds`. The broker's topic configs map onto
// PartitionLogConfig here and nowhere else. Every log of a broker shares one BoundedFileSystem,
// so storage holds at most `limits.openFilesMax` descriptors (see open-files.ts) whatever the
// number of partitions; TOO_MANY_OPEN_FILES failures are logged (at most one line a second).
import {
  BoundedFileSystem,
  type FileHandle,
  type FileSystem,
  ForwardingFileSystem,
  NodeFileSystem,
  type OpenMode,
  PartitionLog,
  type PartitionLogConfig,
  repairPartitionLog,
} from '@streambus/storage';
import type { Logger } from 'pino';
import type { BrokerMetrics } from './metrics.js';
import { processOpenFilesLimit, storageOpenFilesMax } from './open-files.js';
import type { OpenPartitionLog, RepairPartitionLog } from './partition.js';
import { retentionApplies, type TopicConfig } from './topic-config.js';

/** Sparse offset-index entry every this many bytes of batches. */
export const INDEX_INTERVAL_BYTES = 4096;

export function partitionLogConfig(config: TopicConfig): PartitionLogConfig {
  return {
    segmentBytesMax: config.segmentBytes,
    segmentAgeMsMax: config.segmentMs,
    indexIntervalBytes: INDEX_INTERVAL_BYTES,
    // cleanup.policy=compact: the cleaner alone removes records (no retention by time or size).
    retentionBytesMax: retentionApplies(config.cleanupPolicy) ? config.retentionBytes : -1,
    retentionMs: retentionApplies(config.cleanupPolicy) ? config.retentionMs : -1,
    durability: config.durability,
    flushIntervalMs: config.flushIntervalMs,
  };
}

/** A FileSystem whose handles time their `sync` calls. */
class TimedFileSystem extends ForwardingFileSystem {
  constructor(
    inner: FileSystem,
    private readonly observe: (seconds: number) => void,
  ) {
    super(inner);
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const handle = await this.inner.open(path, mode);
    const observe = this.observe;
    const sync = handle.sync.bind(handle);
    return Object.assign(Object.create(handle) as FileHandle, {
      async sync(): Promise<void> {
        const start = process.hrtime.bigint();
        await sync();
        observe(Number(process.hrtime.bigint() - start) / 1e9);
      },
    });
  }
}

/** Logs storage descriptor shortages, at most one line per second (with how many were not). */
function exhaustionLogger(logger: Logger | undefined): (err: Error) => void {
  let lastMs = Number.NEGATIVE_INFINITY;
  let suppressed = 0;
  return (err) => {
    const now = Date.now();
    if (now - lastMs < 1000) {
      suppressed++;
      return;
    }
    lastMs = now;
    logger?.warn({ err, suppressed }, 'partition storage has no file descriptor free');
    suppressed = 0;
  };
}

export interface StorageOptions {
  /** limits.openFilesMax (default 1024). */
  openFilesMax?: number;
  logger?: Logger;
  /** The process's open-file limit (default: read from /proc/self/limits). */
  processOpenFilesLimit?: number | null;
  /** The file system under the bound (default: the real one; tests pass a MemoryFileSystem). */
  fileSystem?: FileSystem;
}

export function openStoragePartitionLog(
  metrics: BrokerMetrics,
  options: StorageOptions = {},
): OpenPartitionLog {
  return openPartitionLogOn(brokerFileSystem(metrics, options));
}

/**
 * The broker's one FileSystem: fsyncs timed, descriptors bounded by `limits.openFilesMax`. The
 * partition logs, metadata.json and the producer-state snapshots all go through it.
 */
export function brokerFileSystem(metrics: BrokerMetrics, options: StorageOptions = {}): FileSystem {
  const processLimit =
    options.processOpenFilesLimit === undefined
      ? processOpenFilesLimit()
      : options.processOpenFilesLimit;
  const configured = options.openFilesMax ?? 1024;
  const { openFilesMax, lowered } = storageOpenFilesMax(configured, processLimit);
  if (lowered) {
    options.logger?.warn(
      { configured, openFilesMax, processOpenFilesLimit: processLimit },
      'limits.openFilesMax lowered to half of the process open-file limit (ulimit -n)',
    );
  }
  const timed = new TimedFileSystem(options.fileSystem ?? new NodeFileSystem(), (s) =>
    metrics.fsyncSeconds.observe(s),
  );
  const fs = new BoundedFileSystem(timed, {
    openFilesMax,
    onExhausted: exhaustionLogger(options.logger),
  });
  metrics.registerStorageFiles(() => fs.stats, openFilesMax);
  return fs;
}

/** Broker limits every partition log is opened with. */
export interface PartitionLogLimits {
  /** limits.unsyncedBytesMax (default: the storage package's). */
  unsyncedBytesMax?: number;
}

/** The storage package's PartitionLog over `fs`. */
export function openPartitionLogOn(
  fs: FileSystem,
  limits: PartitionLogLimits = {},
): OpenPartitionLog {
  return (dir, config, openOptions) =>
    PartitionLog.open(fs, dir, partitionLogConfig(config), {
      ...(limits.unsyncedBytesMax !== undefined
        ? { unsyncedBytesMax: limits.unsyncedBytesMax }
        : {}),
      ...(openOptions?.onEvent ? { onEvent: openOptions.onEvent } : {}),
    });
}

/** The storage package's repair over `fs`, the broker's own (the partition's log is closed). */
export function repairPartitionLogOn(fs: FileSystem): RepairPartitionLog {
  return (dir, options) => repairPartitionLog(fs, dir, options);
}
