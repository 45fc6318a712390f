// The group coordinator of one broker (docs/groups.md "The coordinator"): GroupCoordinatorService
// over the `__consumer_offsets` partitions this broker holds (coordinator-partition.ts hosts
// each). The cluster node attaches a partition's replica when it opens it and detaches it when
// it closes it, ticks the coordinator from its one housekeeping tick, and gives it the applied
// metadata: where each group's partition and its leader are, and the partition counts commits
// are checked against. `locate` creates the topic through the controller on first use.
import { join } from 'node:path';
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';
import type { FileSystem } from '@streambus/storage';
import type { Logger } from 'pino';
import type { GroupsConfig } from '../config.js';
import { type MetadataState, topicByName } from '../controller/metadata-state.js';
import type { PartitionReplica } from '../replication/partition-replica.js';
import { OffsetsPartition } from './coordinator-partition.js';
import {
  type CoordinatorLocation,
  GROUP_TICK_MS,
  type GroupCoordinatorService,
  type GroupRequest,
  type GroupResponseFor,
  groupTicks,
} from './coordinator-service.js';
import { GroupStateStore } from './group-store.js';
import { groupPartition, OFFSETS_TOPIC, OFFSETS_TOPIC_CONFIGS } from './offsets-topic.js';
import { DEFAULT_GROUP_LIMITS, type GroupLimits } from './types.js';

/** The store's directory under the data directory. */
export const GROUP_STATE_DIR = 'groups-state';
/** Group requests parked or awaiting their commit per partition, at most. */
const REQUESTS_PENDING_MAX = 100_000;
const GROUP_ID_BYTES_MAX = 255;

/** What the coordinator needs of the cluster node. */
export interface CoordinatorHost {
  readonly nodeId: number;
  /** The applied metadata state on this broker. */
  metadata(): MetadataState;
  /** Creates a topic through the controller (resolves once applied here). */
  createTopic(
    name: string,
    partitions: number,
    replicationFactor: number,
    configs: Readonly<Record<string, string>>,
  ): Promise<void>;
}

export interface GroupCoordinatorOptions {
  readonly host: CoordinatorHost;
  readonly config: GroupsConfig;
  readonly dataDir: string;
  readonly fs: FileSystem;
  readonly logger: Logger;
  readonly nowMs?: () => number;
  /** Overrides of the state machine's bounds (tests). */
  readonly limits?: Partial<GroupLimits>;
}

export interface AttachedPartition {
  readonly partition: number;
  readonly topicId: number;
  readonly replica: PartitionReplica;
  /** The topic's delete.retention.ms now. */
  readonly deleteRetentionMs: () => number;
}

export class GroupCoordinator implements GroupCoordinatorService {
  private readonly partitions = new Map<number, OffsetsPartition>();
  /** Partitions attached and not detached since (an attach waits for the store to open). */
  private readonly attached = new Map<number, AttachedPartition>();
  private readonly limits: GroupLimits;
  private readonly nowMs: () => number;
  private store: Promise<GroupStateStore> | null = null;
  private creating: Promise<void> | null = null;
  private nextRequestId = 1;
  private countsOf: MetadataState['topics'] | null = null;
  private counts: ReadonlyMap<string, number> = new Map();
  private closed = false;

  constructor(private readonly o: GroupCoordinatorOptions) {
    this.nowMs = o.nowMs ?? Date.now;
    this.limits = {
      ...DEFAULT_GROUP_LIMITS,
      offsetsRetentionTicks: groupTicks(o.config.offsetsRetentionMs),
      initialRebalanceDelayTicks: groupTicks(o.config.initialRebalanceDelayMs),
      sessionTimeoutTicksMin: groupTicks(o.config.sessionTimeoutMsMin),
      sessionTimeoutTicksMax: groupTicks(o.config.sessionTimeoutMsMax),
      ...o.limits,
    };
  }

  private openStore(): Promise<GroupStateStore> {
    this.store ??= GroupStateStore.open(this.o.fs, join(this.o.dataDir, GROUP_STATE_DIR));
    return this.store;
  }

  /**
   * The longest the state machine may park a JoinGroup or SyncGroup: the initial rebalance delay
   * plus the largest rebalance timeout a member may ask for (a group's join and sync phases last
   * at most the largest of its members' rebalance timeouts). Finite.
   */
  get parkedRequestMsMax(): number {
    return (
      (this.limits.initialRebalanceDelayTicks + this.limits.rebalanceTimeoutTicksMax) *
      GROUP_TICK_MS
    );
  }

  /** A `__consumer_offsets` replica opened on this broker: it coordinates while it leads. */
  async attach(a: AttachedPartition): Promise<void> {
    if (this.closed) return;
    this.attached.set(a.partition, a);
    const store = await this.openStore();
    // Detached while the store opened: the replica is gone.
    if (this.closed || this.attached.get(a.partition) !== a || this.partitions.has(a.partition)) {
      return;
    }
    const p = new OffsetsPartition({
      index: a.partition,
      topicId: a.topicId,
      replica: a.replica,
      store,
      limits: this.limits,
      requestsPendingMax: REQUESTS_PENDING_MAX,
      deleteRetentionMs: a.deleteRetentionMs,
      partitionCounts: () => this.partitionCounts(),
      logger: this.o.logger,
      nowMs: this.nowMs,
    });
    this.partitions.set(a.partition, p);
    p.reconcile();
  }

  /** The replica closes here (moved away, or the broker stops). */
  async detach(partition: number): Promise<void> {
    this.attached.delete(partition);
    const p = this.partitions.get(partition);
    this.partitions.delete(partition);
    await p?.close();
  }

  /** The broker's housekeeping tick: a partition that throws is logged, never the timer's. */
  tick(): void {
    for (const p of this.partitions.values()) {
      try {
        p.tick();
      } catch (err) {
        this.o.logger.error({ err, partition: p.index }, 'group coordinator tick failed');
      }
    }
  }

  /** Partition counts of the applied topics (one map per metadata change). */
  private partitionCounts(): ReadonlyMap<string, number> {
    const topics = this.o.host.metadata().topics;
    if (topics !== this.countsOf) {
      const m = new Map<string, number>();
      for (const t of topics.values()) m.set(t.name, t.partitions.length);
      this.counts = m;
      this.countsOf = topics;
    }
    return this.counts;
  }

  private checkGroupId(groupId: string): void {
    if (groupId.length === 0 || Buffer.byteLength(groupId, 'utf8') > GROUP_ID_BYTES_MAX) {
      throw new StreamBusError(
        ErrorCode.INVALID_GROUP_ID,
        groupId.length === 0
          ? 'the group id is empty'
          : `the group id is longer than ${GROUP_ID_BYTES_MAX} bytes`,
      );
    }
  }

  /** Creates `__consumer_offsets` once (every caller waits for the same creation). */
  private ensureTopic(): Promise<void> {
    this.creating ??= (async () => {
      const live = [...this.o.host.metadata().brokers.values()].filter((b) => !b.fenced).length;
      const rf = Math.max(1, Math.min(this.o.config.offsetsTopicReplicationFactor, live));
      try {
        await this.o.host.createTopic(
          OFFSETS_TOPIC,
          this.o.config.offsetsTopicPartitions,
          rf,
          OFFSETS_TOPIC_CONFIGS,
        );
        this.o.logger.info(
          { partitions: this.o.config.offsetsTopicPartitions, replicationFactor: rf },
          `created ${OFFSETS_TOPIC}`,
        );
      } catch (err) {
        if (!isStreamBusError(err, ErrorCode.TOPIC_ALREADY_EXISTS)) throw err;
      }
    })().finally(() => {
      this.creating = null;
    });
    return this.creating;
  }

  async locate(groupId: string): Promise<CoordinatorLocation> {
    this.checkGroupId(groupId);
    let t = topicByName(this.o.host.metadata(), OFFSETS_TOPIC);
    if (t === undefined) {
      try {
        await this.ensureTopic();
      } catch (err) {
        throw new StreamBusError(
          ErrorCode.COORDINATOR_NOT_AVAILABLE,
          `${OFFSETS_TOPIC} does not exist yet and creating it failed: ${String((err as Error)?.message ?? err)}`,
          { cause: err },
        );
      }
      t = topicByName(this.o.host.metadata(), OFFSETS_TOPIC);
      if (t === undefined) {
        throw new StreamBusError(
          ErrorCode.COORDINATOR_NOT_AVAILABLE,
          `${OFFSETS_TOPIC} is being created`,
        );
      }
    }
    const partition = groupPartition(groupId, t.partitions.length);
    const leader = t.partitions[partition]?.leader ?? -1;
    if (leader <= 0) {
      throw new StreamBusError(
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        `${OFFSETS_TOPIC}-${partition} (group ${groupId}) has no leader`,
      );
    }
    return { partition, nodeId: leader };
  }

  /** The hosted partition of a group, or NOT_COORDINATOR. */
  private partitionOf(groupId: string): OffsetsPartition {
    const t = topicByName(this.o.host.metadata(), OFFSETS_TOPIC);
    const p =
      t === undefined
        ? undefined
        : this.partitions.get(groupPartition(groupId, t.partitions.length));
    if (p === undefined) {
      throw new StreamBusError(
        ErrorCode.NOT_COORDINATOR,
        `broker ${this.o.host.nodeId} is not the coordinator of group ${groupId}`,
      );
    }
    return p;
  }

  request<T extends GroupRequest>(req: T): Promise<GroupResponseFor<T['type']>> {
    try {
      if (this.closed) {
        throw new StreamBusError(ErrorCode.NOT_COORDINATOR, 'the group coordinator is closed');
      }
      if (!('groupId' in req)) return this.listLocal() as Promise<GroupResponseFor<T['type']>>;
      this.checkGroupId(req.groupId);
      const p = this.partitionOf(req.groupId);
      const event = { ...req, requestId: this.nextRequestId++ };
      return p.submit(event) as Promise<GroupResponseFor<T['type']>>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  async listLocal(): Promise<GroupResponseFor<'list'>> {
    const requestId = this.nextRequestId++;
    const parts = [...this.partitions.values()].filter((p) => p.status !== 'idle');
    if (parts.some((p) => p.status === 'loading')) {
      throw new StreamBusError(
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
        `some ${OFFSETS_TOPIC} partitions are loading on broker ${this.o.host.nodeId}`,
      );
    }
    const lists = await Promise.all(
      parts.map((p) =>
        (
          p.submit({ type: 'list', requestId: this.nextRequestId++ }) as Promise<
            GroupResponseFor<'list'>
          >
        ).catch((err: unknown) => {
          // A partition that stopped leading meanwhile lists its groups on its new leader.
          if (isStreamBusError(err, ErrorCode.NOT_COORDINATOR)) return null;
          throw err;
        }),
      ),
    );
    return { kind: 'list', requestId, groups: lists.flatMap((l) => l?.groups ?? []) };
  }

  /** The hosted partitions (tests). */
  hosted(): ReadonlyMap<number, OffsetsPartition> {
    return this.partitions;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.partitions.values()]) await p.close();
    this.partitions.clear();
    if (this.store !== null) {
      const store = await this.store.catch(() => null);
      await store
        ?.close()
        .catch((err: unknown) =>
          this.o.logger.error({ err }, 'closing the group state store failed'),
        );
    }
  }
}
