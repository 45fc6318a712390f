// The replica manager: owns this broker's partitions (today each is the partition's only copy;
// with issue 9 each becomes a `PartitionReplica` of the partition's Raft group). It opens and
// closes them, finds the one a request names, parks long-polling fetches on them, runs their
// periodic maintenance, and turns their storage events into log lines and counters.
//
// It knows nothing about topic records beyond what opening a partition needs: the topic
// registry (topic-registry.ts) decides which partitions exist, this file keeps them running.
// Partitions of a topic become visible to requests only once `attach`ed (after the registry has
// made the topic durable), and stop being visible at `detach`, before they are closed.
import { join } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { type FileSystem, type LogEvent, removeTree } from '@streambus/storage';
import type { Logger } from 'pino';
import type { BrokerConfig } from './config.js';
import type { TopicRecord } from './metadata-store.js';
import type { BrokerMetrics } from './metrics.js';
import { type OfflineState, REPAIRING_REASON } from './offline-log.js';
import {
  type OpenPartitionLog,
  Partition,
  type PartitionHooks,
  type RepairPartitionLog,
} from './partition.js';
import type { ServedPartition } from './served-partition.js';
import { settleBounded } from './settle-bounded.js';
import { isDiskFull } from './storage-errors.js';
import type { TopicConfig } from './topic-config.js';

/** Partitions closed at once (each close needs a few file descriptors for a moment). */
export const PARTITION_CLOSES_MAX = 16;

export interface OfflinePartition {
  topic: string;
  partition: number;
  reason: string;
  sinceMs: number;
}

export interface ReplicaManagerOptions {
  config: BrokerConfig;
  logger: Logger;
  metrics: BrokerMetrics;
  /** The broker's one FileSystem (storage-log.ts). */
  fs: FileSystem;
  openLog: OpenPartitionLog;
  repairLog: RepairPartitionLog;
}

export class ReplicaManager {
  readonly openLog: OpenPartitionLog;
  readonly repairLog: RepairPartitionLog;
  private readonly config: BrokerConfig;
  private readonly logger: Logger;
  private readonly metrics: BrokerMetrics;
  private readonly fs: FileSystem;
  /**
   * Attached partitions by topic name, indexed by partition number (sparse on a cluster broker:
   * it holds only the partitions assigned to it).
   */
  private readonly byTopic = new Map<string, Array<ServedPartition | undefined>>();
  private readonly hooks: PartitionHooks;

  constructor(options: ReplicaManagerOptions) {
    this.config = options.config;
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.fs = options.fs;
    this.openLog = options.openLog;
    this.repairLog = options.repairLog;
    this.hooks = {
      // Storage failures of partitions: one log line per change of state, a count per failure.
      onStorageError: (p, err, bytes, first) => {
        const reason = isDiskFull(err) ? 'disk_full' : 'storage_error';
        this.metrics.appendStorageErrors.inc({ reason });
        if (first) {
          this.logger.error(
            { topic: p.topic, partition: p.index, bytes, reason, error: err.message },
            reason === 'disk_full'
              ? 'disk full: appends to this partition are refused (retriable) until space is freed'
              : 'storage error: appends to this partition are refused (retriable)',
          );
        }
      },
      onStorageRecovered: (p, downMs) => {
        this.logger.info(
          { topic: p.topic, partition: p.index, downMs },
          'storage recovered: appends to this partition land again',
        );
      },
      onLogRecovered: (p, cutTo) => {
        this.metrics.logsRecovered.inc();
        this.logger.warn(
          { topic: p.topic, partition: p.index, cutTo },
          'partition log reopened from disk after a storage failure (cut back to its durable end)',
        );
      },
      onLogEvent: (p, e) => this.onLogEvent(p, e),
      onOffline: (p, state) => this.onPartitionOffline(p, state),
    };
  }

  topicDir(id: number): string {
    return join(this.config.dataDir, 'topics', String(id));
  }

  /**
   * Opens every partition of `record` (not yet visible to requests: `attach` them).
   * `tolerant` (startup): a partition that cannot be opened is kept offline, not fatal; otherwise
   * the first failure closes what was opened and throws.
   */
  async open(record: TopicRecord, config: TopicConfig, tolerant = false): Promise<Partition[]> {
    const dir = this.topicDir(record.id);
    const partitions: Partition[] = [];
    try {
      // At startup a topic directory that cannot be made leaves its partitions offline (each
      // open fails on its own), not the broker down.
      await this.fs.mkdir(dir).catch((err: unknown) => {
        if (!tolerant) throw err;
      });
      for (let i = 0; i < record.partitions; i++) {
        partitions.push(
          await Partition.open(
            record.name,
            i,
            join(dir, String(i)),
            config,
            this.openLog,
            this.config.limits.fetchWaitersMax,
            this.hooks,
            tolerant ? 'offline' : 'throw',
            this.fs,
          ),
        );
      }
    } catch (err) {
      await Promise.allSettled(partitions.map((p) => p.close()));
      throw err;
    }
    return partitions;
  }

  /** Makes a topic's opened partitions visible to requests. */
  attach(topic: string, partitions: ServedPartition[]): void {
    this.byTopic.set(topic, partitions);
  }

  /** Hides a topic's partitions from requests and returns them (still open). */
  detach(topic: string): ServedPartition[] {
    const partitions = this.byTopic.get(topic) ?? [];
    this.byTopic.delete(topic);
    return partitions.filter((p) => p !== undefined);
  }

  /** Makes one opened partition visible (a cluster broker holds some partitions of a topic). */
  attachOne(p: ServedPartition): void {
    let list = this.byTopic.get(p.topic);
    if (list === undefined) {
      list = [];
      this.byTopic.set(p.topic, list);
    }
    list[p.index] = p;
  }

  /** Hides one partition and returns it (still open), or undefined. */
  detachOne(topic: string, index: number): ServedPartition | undefined {
    const list = this.byTopic.get(topic);
    const p = list?.[index];
    if (list === undefined || p === undefined) return undefined;
    list[index] = undefined;
    if (list.every((x) => x === undefined)) this.byTopic.delete(topic);
    return p;
  }

  /** Closes `partitions` (bounded concurrency); one result per partition. */
  close(partitions: ServedPartition[]): Promise<PromiseSettledResult<void>[]> {
    return settleBounded(partitions, (p) => p.close(), PARTITION_CLOSES_MAX);
  }

  /** Removes a topic's data directory (after its partitions are closed). */
  removeData(topicId: number): Promise<void> {
    return removeTree(this.fs, this.topicDir(topicId));
  }

  /** Closes and reopens a topic's logs with a changed log-level config. */
  async reopen(topic: string, config: TopicConfig): Promise<void> {
    for (const p of this.ofTopic(topic)) await p.reopen(config, this.openLog);
  }

  /** The attached partition, or undefined. */
  find(topic: string, index: number): ServedPartition | undefined {
    return this.byTopic.get(topic)?.[index];
  }

  /** The topic's attached partitions (empty when none). */
  ofTopic(topic: string): ServedPartition[] {
    return (this.byTopic.get(topic) ?? []).filter((p) => p !== undefined);
  }

  /** A partition that serves: UNKNOWN_TOPIC_OR_PARTITION, or its offline error. */
  partition(topic: string, index: number): ServedPartition {
    const p = this.knownPartition(topic, index);
    p.checkServing();
    return p;
  }

  /** `partition`, for a read: also LEADER_NOT_AVAILABLE while a new leader's term commits. */
  readablePartition(topic: string, index: number): ServedPartition {
    const p = this.partition(topic, index);
    p.checkReadable?.();
    return p;
  }

  knownPartition(topic: string, index: number): ServedPartition {
    const p = this.find(topic, index);
    if (p === undefined) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `unknown topic or partition ${topic}-${index}`,
      );
    }
    return p;
  }

  *all(): Iterable<ServedPartition> {
    for (const partitions of this.byTopic.values()) {
      for (const p of partitions) if (p !== undefined) yield p;
    }
  }

  count(): number {
    let n = 0;
    for (const _ of this.all()) n++;
    return n;
  }

  /** Offline partitions: the complete count, and at most `listedMax` of them. */
  offline(listedMax: number): { count: number; listed: OfflinePartition[] } {
    const listed: OfflinePartition[] = [];
    let count = 0;
    for (const p of this.all()) {
      const o = p.offline;
      if (o === null) continue;
      count++;
      if (listed.length < listedMax) {
        listed.push({ topic: p.topic, partition: p.index, reason: o.reason, sinceMs: o.sinceMs });
      }
    }
    return { count, listed };
  }

  /** Waits for an append to any of `partitions`, the timeout, or the connection closing. */
  park(partitions: ServedPartition[], timeoutMs: number, signal: AbortSignal): Promise<boolean> {
    return new Promise((resolve) => {
      let settled = false;
      const finish = (value: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
        for (const p of partitions) p.unpark(waiter);
        resolve(value);
      };
      const waiter = { wake: () => finish(true) };
      const onAbort = (): void => finish(false);
      const timer = setTimeout(() => finish(true), timeoutMs);
      signal.addEventListener('abort', onAbort);
      for (const p of partitions) {
        if (!p.park(waiter)) {
          finish(false);
          return;
        }
      }
    });
  }

  /** Wakes every parked fetch (shutdown: they answer with what they have). */
  wakeAll(): void {
    for (const p of this.all()) p.waiters.wakeAll();
  }

  /** Periodic: retention on every partition, then a producer-state snapshot. */
  async maintain(): Promise<void> {
    for (const p of this.all()) {
      try {
        await p.enforceRetention();
        await p.saveProducerState();
      } catch (err) {
        this.logger.warn(
          { err, topic: p.topic, partition: p.index },
          'partition maintenance failed',
        );
      }
    }
  }

  /** Flushes every partition; a failure is logged, not thrown. */
  async flushAll(): Promise<void> {
    const flushed = await Promise.allSettled([...this.all()].map((p) => p.flush()));
    for (const r of flushed) {
      if (r.status === 'rejected')
        this.logger.error({ err: r.reason }, 'flushing a partition failed');
    }
  }

  /** Closes every partition and forgets them; failures are logged, not thrown. */
  async closeAll(): Promise<void> {
    const results = await this.close([...this.all()]);
    this.byTopic.clear();
    for (const r of results) {
      if (r.status === 'rejected')
        this.logger.error({ err: r.reason }, 'closing a partition failed');
    }
  }

  /** Every cut and every damaged batch a log reports: a warn line and the damage counters. */
  private onLogEvent(p: Partition, e: LogEvent): void {
    this.metrics.logDamageEvents.inc({ kind: e.kind });
    this.metrics.logDamageBytes.inc({ kind: e.kind }, e.bytes);
    const where = { topic: p.topic, partition: p.index, segment: e.segment, position: e.position };
    const offsets = { fromOffset: e.fromOffset, toOffset: e.toOffset, bytes: e.bytes };
    if (e.kind === 'truncated') {
      const durability = p.topicConfig.durability;
      this.logger.warn(
        {
          ...where,
          ...offsets,
          reason: e.reason,
          durability,
          // Under 'always' the cut offsets were never acknowledged nor served (the high
          // watermark is the durable end); otherwise consumers may have seen them.
          mayHaveBeenServed: durability !== 'always',
        },
        'log recovery truncated the log: the offsets from fromOffset on are gone and will be assigned again',
      );
    } else {
      this.logger.warn(
        { ...where, ...offsets, reason: e.reason, detectedBy: e.detectedBy },
        'corrupt data in a partition log',
      );
    }
  }

  private onPartitionOffline(p: Partition, state: OfflineState): void {
    if (state.reason === REPAIRING_REASON) return;
    this.logger.error(
      { topic: p.topic, partition: p.index, reason: state.reason, damage: state.damage },
      'partition offline: it answers KAFKA_STORAGE_ERROR until repaired (streambus partition repair)',
    );
  }
}
