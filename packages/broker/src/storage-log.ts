// The default partition log: the storage package's PartitionLog over the real file system, with
// every fsync timed into `streambus_fsync_duration_seconds`. The broker's topic configs map onto
// PartitionLogConfig here and nowhere else.
import {
  type FileHandle,
  type FileSystem,
  NodeFileSystem,
  type OpenMode,
  PartitionLog,
  type PartitionLogConfig,
  repairPartitionLog,
} from '@streambus/storage';
import type { BrokerMetrics } from './metrics.js';
import type { OpenPartitionLog, RepairPartitionLog } from './partition.js';
import type { TopicConfig } from './topic-config.js';

/** Sparse offset-index entry every this many bytes of batches. */
export const INDEX_INTERVAL_BYTES = 4096;

export function partitionLogConfig(config: TopicConfig): PartitionLogConfig {
  return {
    segmentBytesMax: config.segmentBytes,
    segmentAgeMsMax: config.segmentMs,
    indexIntervalBytes: INDEX_INTERVAL_BYTES,
    retentionBytesMax: config.retentionBytes,
    retentionMs: config.retentionMs,
    durability: config.durability,
    flushIntervalMs: config.flushIntervalMs,
  };
}

/** A FileSystem whose handles time their `sync` calls. */
class TimedFileSystem implements FileSystem {
  constructor(
    private readonly inner: FileSystem,
    private readonly observe: (seconds: number) => void,
  ) {}

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
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
  readFile(path: string) {
    return this.inner.readFile(path);
  }
  rename(from: string, to: string) {
    return this.inner.rename(from, to);
  }
  unlink(path: string) {
    return this.inner.unlink(path);
  }
  readdir(dir: string) {
    return this.inner.readdir(dir);
  }
  mkdir(dir: string) {
    return this.inner.mkdir(dir);
  }
  stat(path: string) {
    return this.inner.stat(path);
  }
  truncate(path: string, size: number) {
    return this.inner.truncate(path, size);
  }
  syncDir(dir: string) {
    return this.inner.syncDir(dir);
  }
}

export function openStoragePartitionLog(metrics: BrokerMetrics): OpenPartitionLog {
  const fs = new TimedFileSystem(new NodeFileSystem(), (s) => metrics.fsyncSeconds.observe(s));
  return (dir, config, options) =>
    PartitionLog.open(
      fs,
      dir,
      partitionLogConfig(config),
      options?.onEvent ? { onEvent: options.onEvent } : {},
    );
}

/** The storage package's repair over the real file system (the partition's log is closed). */
export const repairStoragePartitionLog: RepairPartitionLog = (dir, options) =>
  repairPartitionLog(new NodeFileSystem(), dir, options);
