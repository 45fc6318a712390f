// The replica manager: the partition replicas this broker holds, as requests see them
// (served-partition.ts). It finds the one a request names, parks long-polling fetches on them,
// runs their periodic maintenance, and turns their storage events into log lines and counters.
//
// Which replicas exist is the cluster node's to decide (cluster-node.ts: it opens and closes them
// as the applied metadata says); a replica is visible to requests once `attachOne`d and stops
// being visible at `detachOne`, before it is closed.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { LogEvent } from '@streambus/storage';
import type { Logger } from 'pino';
import type { BrokerMetrics } from './metrics.js';
import { type OfflineState, REPAIRING_REASON } from './offline-log.js';
import type { RepairPartitionLog, ServedPartition } from './served-partition.js';
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

/** Which partition a report is about. */
export interface PartitionName {
  readonly topic: string;
  readonly index: number;
}

export interface ReplicaManagerOptions {
  logger: Logger;
  metrics: BrokerMetrics;
  repairLog: RepairPartitionLog;
}

export class ReplicaManager {
  readonly repairLog: RepairPartitionLog;
  private readonly logger: Logger;
  private readonly metrics: BrokerMetrics;
  /**
   * Attached partitions by topic name, indexed by partition number (sparse: a broker holds only
   * the partitions assigned to it).
   */
  private readonly byTopic = new Map<string, Array<ServedPartition | undefined>>();

  constructor(options: ReplicaManagerOptions) {
    this.logger = options.logger;
    this.metrics = options.metrics;
    this.repairLog = options.repairLog;
  }

  /** Makes one opened partition visible (a broker holds some partitions of a topic). */
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
  reportLogEvent(p: PartitionName & { readonly topicConfig: TopicConfig }, e: LogEvent): void {
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

  /** A replica's storage failed while it served: a count and one error line. */
  reportStorageFailure(p: PartitionName, err: StreamBusError): void {
    const reason = isDiskFull(err) || isDiskFull(err.cause) ? 'disk_full' : 'storage_error';
    this.metrics.appendStorageErrors.inc({ reason });
    this.logger.error(
      { topic: p.topic, partition: p.index, reason, error: err.message },
      reason === 'disk_full'
        ? 'disk full: this partition answers a retriable storage error and reopens from disk by itself'
        : 'storage error: this partition answers a retriable storage error and reopens from disk by itself',
    );
  }

  /** A partition went offline: one error line (not while it is being repaired). */
  reportOffline(p: PartitionName, state: OfflineState): void {
    if (state.reason === REPAIRING_REASON) return;
    this.logger.error(
      { topic: p.topic, partition: p.index, reason: state.reason, damage: state.damage },
      'partition offline: it answers KAFKA_STORAGE_ERROR until repaired (streambus partition repair)',
    );
  }
}
