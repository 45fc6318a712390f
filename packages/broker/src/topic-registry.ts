// The topic registry: which topics exist, with which partitions and config, and where that is
// recorded. Today the record is metadata.json (metadata-store.ts); with the controller (issue 9)
// it becomes the applied metadata state, and the registry one of its consumers.
//
// Every change has two halves, kept apart on purpose:
//   - the durable state: the topic record (name, id, partition count, overrides) written to the
//     store. Today the registry writes it itself; with the controller, the applied metadata log
//     is that state and the registry only reads it.
//   - materializing it on this broker: `materialize` opens the partitions a record says exist and
//     makes them visible to requests, `dematerialize` hides, closes and removes them. These are
//     what "the state says topic T exists with these partitions here" will call.
// Creation is atomic: limits checked up front, partitions opened (not yet visible), the record
// written last, then the partitions attached; on any failure everything made so far is closed
// and removed, and a crash part-way leaves a directory no topic owns, removed at the next start.
// Callers run the changes one at a time (admin-queue.ts).
import { join } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { type FileSystem, removeTree } from '@streambus/storage';
import type { Logger } from 'pino';
import type { BrokerConfig } from './config.js';
import { MetadataStore, type TopicRecord } from './metadata-store.js';
import type { Partition } from './partition.js';
import { checkPartitionLimits } from './partition-limits.js';
import type { ReplicaManager } from './replica-manager.js';
import {
  compactionApplies,
  mergeOverrides,
  resolveTopicConfig,
  type TopicConfig,
  type TopicOverrides,
} from './topic-config.js';

export interface TopicEntry {
  readonly record: TopicRecord;
  readonly config: TopicConfig;
}

/** Config fields a partition log only takes when it is opened. */
const LOG_FIELDS: ReadonlyArray<keyof TopicConfig> = [
  'retentionBytes',
  'retentionMs',
  'segmentBytes',
  'segmentMs',
  'durability',
  'flushIntervalMs',
];

export class TopicRegistry {
  private readonly topics = new Map<string, TopicEntry>();

  private constructor(
    private readonly config: BrokerConfig,
    private readonly logger: Logger,
    private readonly fs: FileSystem,
    private readonly store: MetadataStore,
    private readonly replicas: ReplicaManager,
  ) {}

  /**
   * Reads metadata.json, removes topic directories no topic owns (a delete interrupted by a
   * crash, or a create that did not finish), and materializes every topic; a partition that
   * cannot be opened is kept offline (storage recovery runs here).
   */
  static async open(
    config: BrokerConfig,
    logger: Logger,
    fs: FileSystem,
    replicas: ReplicaManager,
  ): Promise<TopicRegistry> {
    const store = await MetadataStore.open(fs, config.dataDir);
    const registry = new TopicRegistry(config, logger, fs, store, replicas);
    await registry.removeOrphanTopicDirs();
    for (const record of store.topics) {
      await registry.materialize(record, registry.resolve(record.overrides), true);
    }
    return registry;
  }

  get clusterId(): string {
    return this.store.clusterId;
  }

  get size(): number {
    return this.topics.size;
  }

  get(name: string): TopicEntry | undefined {
    return this.topics.get(name);
  }

  has(name: string): boolean {
    return this.topics.has(name);
  }

  names(): string[] {
    return [...this.topics.keys()];
  }

  /** Partitions of every topic. */
  partitionCount(): number {
    let n = 0;
    for (const t of this.topics.values()) n += t.record.partitions;
    return n;
  }

  /** The topic config `overrides` give over the broker's defaults (throws INVALID_CONFIG). */
  resolve(overrides: TopicOverrides): TopicConfig {
    const config = resolveTopicConfig(
      this.config.defaults,
      overrides,
      this.config.limits.frameBytesMax,
    );
    // Refused rather than accepted and ignored: the cleaner is scheduled on the cluster path
    // only (log-compaction.ts), and a topic that claims to be compacted while keeping every
    // record would mislead its users.
    if (compactionApplies(config.cleanupPolicy)) {
      throw new StreamBusError(
        ErrorCode.INVALID_CONFIG,
        `cleanup.policy: '${config.cleanupPolicy}' is served on the cluster path only (start the broker with --peers, or as a cluster of one); use delete here`,
      );
    }
    return config;
  }

  /** The config and limit checks of a creation (INVALID_CONFIG, INVALID_PARTITIONS, ...). */
  checkNew(name: string, partitions: number, overrides: TopicOverrides): void {
    this.resolve(overrides);
    checkPartitionLimits(this.config.limits, name, partitions, this.partitionCount());
  }

  async create(name: string, partitions: number, overrides: TopicOverrides): Promise<void> {
    if (this.topics.has(name)) {
      throw new StreamBusError(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${name} already exists`);
    }
    const config = this.resolve(overrides);
    checkPartitionLimits(this.config.limits, name, partitions, this.partitionCount());
    const record: TopicRecord = { name, id: this.store.reserveTopicId(), partitions, overrides };
    let opened: Partition[] = [];
    try {
      opened = await this.replicas.open(record, config);
      await this.store.addTopic(name, partitions, overrides, record.id);
    } catch (err) {
      await Promise.allSettled(opened.map((p) => p.close()));
      await this.replicas
        .removeData(record.id)
        .catch((e: unknown) =>
          this.logger.error({ err: e, topic: name }, 'removing a half-made topic failed'),
        );
      this.logger.warn({ err, topic: name, partitions }, 'topic creation failed; nothing kept');
      throw err;
    }
    this.attach(record, config, opened);
    this.logger.info({ topic: name, partitions, overrides }, 'topic created');
  }

  async delete(name: string): Promise<void> {
    const t = this.topics.get(name);
    if (t === undefined) {
      throw new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic ${name}`);
    }
    await this.store.removeTopic(name);
    await this.dematerialize(t.record);
    this.logger.info({ topic: name }, 'topic deleted');
  }

  /** Merges `changes` into the topic's overrides; a changed log-level key reopens its logs. */
  async alterConfigs(
    name: string,
    changes: Record<string, string | null>,
    validateOnly: boolean,
  ): Promise<void> {
    const t = this.topics.get(name);
    if (t === undefined) {
      throw new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic ${name}`);
    }
    const overrides = mergeOverrides(t.record.overrides, changes);
    const config = this.resolve(overrides);
    if (validateOnly) return;
    await this.store.setOverrides(name, overrides);
    const reopen = LOG_FIELDS.some((f) => t.config[f] !== config[f]);
    this.topics.set(name, { record: { ...t.record, overrides }, config });
    if (reopen) await this.replicas.reopen(name, config);
  }

  allocateProducerId(): Promise<number> {
    return this.store.allocateProducerId();
  }

  /** Forgets every topic (shutdown, after the replica manager closed the partitions). */
  clear(): void {
    this.topics.clear();
  }

  /** Opens the partitions `record` says exist and makes the topic visible. */
  private async materialize(
    record: TopicRecord,
    config: TopicConfig,
    tolerant: boolean,
  ): Promise<void> {
    this.attach(record, config, await this.replicas.open(record, config, tolerant));
  }

  private attach(record: TopicRecord, config: TopicConfig, partitions: Partition[]): void {
    this.topics.set(record.name, { record, config });
    this.replicas.attach(record.name, partitions);
  }

  /** Hides the topic, closes its partitions and removes its data. */
  private async dematerialize(record: TopicRecord): Promise<void> {
    this.topics.delete(record.name);
    await this.replicas.close(this.replicas.detach(record.name));
    await this.replicas.removeData(record.id);
  }

  private async removeOrphanTopicDirs(): Promise<void> {
    const owned = new Set(this.store.topics.map((t) => String(t.id)));
    const topicsDir = join(this.config.dataDir, 'topics');
    for (const name of await this.fs.readdir(topicsDir)) {
      if (!owned.has(name)) {
        this.logger.info({ dir: name }, 'removing data of a deleted topic');
        await removeTree(this.fs, join(topicsDir, name));
      }
    }
  }
}
