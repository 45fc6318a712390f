// Admin operations: topics (create, delete, list, describe), configs (describe, alter), offsets
// (list by earliest/latest/timestamp, delete records below an offset) and the cluster
// description (DescribeCluster; from Metadata on a broker older than that API). Each call is one request (or two for describeTopic) through the retry layer;
// per-topic errors in a response become a StreamBusError thrown after the retries, so a missing
// topic fails at once instead of being retried as a stale-metadata hint.
import {
  ApiKey,
  type DescribeClusterResponse,
  ErrorCode,
  type MetadataResponse,
  OffsetSpec,
  type RepairPartitionResponse,
  StreamBusError,
} from '@streambus/protocol';
import {
  GroupAdmin,
  type GroupDescription,
  type GroupListing,
  type OffsetReset,
  type ResetOffsetsOptions,
} from './admin-groups.js';
import { type PartitionInfo, topicNotFound } from './cluster.js';
import type { BrokerConnection } from './connection.js';
import type { ClientContext } from './context.js';
import { checkOptionNames, OptionNames } from './options.js';

/** The wire field is an int16. */
const REPLICATION_FACTOR_MAX = 0x7fff;

export interface NewTopic {
  readonly name: string;
  /** Default: the broker's default partition count. */
  readonly partitions?: number;
  /** Replicas per partition, 1..32767. Default: the cluster's, min(3, live brokers). */
  readonly replicationFactor?: number;
  readonly configs?: Readonly<Record<string, string>>;
}

/** `admin.createPartitions(...)`: grow `topic` to `count` partitions. */
export interface CreatePartitionsOptions {
  readonly topic: string;
  /** The partition count wanted (more than the topic has). */
  readonly count: number;
  /** One replica list (broker ids, preferred leader first) per new partition. */
  readonly assignments?: readonly (readonly number[])[];
  readonly validateOnly?: boolean;
  readonly timeoutMs?: number;
}

export interface ConfigEntry {
  readonly name: string;
  readonly value: string | null;
  readonly isDefault: boolean;
  readonly readOnly: boolean;
}

export interface PartitionDescription extends PartitionInfo {
  /** Earliest and next offsets (log start and end); -1 for an offline partition. */
  readonly earliestOffset: number;
  readonly latestOffset: number;
  /** Why the partition is offline (the broker's metadata error), or null when it serves. */
  readonly offlineReason: string | null;
}

/** The outcome of `repairPartition` (see the RepairPartition API in the protocol docs). */
export type RepairResult = Omit<RepairPartitionResponse, 'errorCode' | 'errorMessage'>;

export interface TopicDescription {
  readonly name: string;
  readonly partitions: readonly PartitionDescription[];
  readonly configs: readonly ConfigEntry[];
}

export interface BrokerDescription {
  readonly nodeId: number;
  readonly host: string;
  readonly port: number;
  readonly rack: string | null;
  /** Heartbeating to the controller. */
  readonly live: boolean;
  /** Fenced by the controller: leads nothing, takes no new replicas. */
  readonly fenced: boolean;
  /** A voter of the controller quorum. */
  readonly isVoter: boolean;
  /** The controller quorum's current leader. */
  readonly isController: boolean;
  /** Partition replicas on this broker, and how many of them it leads. */
  readonly replicaCount: number;
  readonly leaderCount: number;
}

export interface RebalanceLeadersResult {
  readonly transfersStarted: number;
  /** Partitions whose live, in-sync preferred replica does not lead yet (at most 1000 listed). */
  readonly remainingCount: number;
  readonly remaining: ReadonlyArray<{
    readonly topic: string;
    readonly partition: number;
    readonly leaderId: number;
    readonly preferredId: number;
  }>;
}

/** One replica of a partition, as its own broker reports it (`describePartition`). */
export interface ReplicaDescription {
  readonly nodeId: number;
  /** leader, voter (a follower that votes), learner (catching up), leaving (out of the Raft group, until the reassignment completes), offline, candidate, unreachable. */
  readonly role: string;
  /** -1 when unreachable. */
  readonly logEndOffset: number;
  /** The leader's high watermark minus this replica's log end (0 at or above it); -1 unknown. */
  readonly commitLag: number;
}

export interface PartitionReplicasDescription {
  readonly topic: string;
  readonly partition: number;
  readonly leaderId: number;
  readonly highWatermark: number;
  readonly replicas: readonly ReplicaDescription[];
  /** The reassignment in progress: its target replica set; null when none. */
  readonly reassignmentTarget: readonly number[] | null;
}

export interface ClusterDescription {
  readonly clusterId: string;
  /** -1 while no controller is known. */
  readonly controllerId: number;
  /** By node id. */
  readonly brokers: readonly BrokerDescription[];
}

export type OffsetQuery = 'earliest' | 'latest' | { readonly timestamp: number };

/**
 * DescribeCluster's answer derived from Metadata, for a broker older than that API. Such a
 * broker is a cluster of one: the brokers it lists are live, and it is its own controller's only
 * voter. The counts come from the partitions' replicas and leaders.
 */
function clusterFromMetadata(md: MetadataResponse): DescribeClusterResponse {
  const replicas = new Map<number, number>();
  const leaders = new Map<number, number>();
  for (const t of md.topics) {
    for (const p of t.partitions) {
      for (const r of p.replicas) replicas.set(r, (replicas.get(r) ?? 0) + 1);
      leaders.set(p.leaderId, (leaders.get(p.leaderId) ?? 0) + 1);
    }
  }
  return {
    errorCode: 0,
    clusterId: md.clusterId,
    controllerId: md.controllerId,
    brokers: md.brokers.map((b) => ({
      ...b,
      live: true,
      fenced: false,
      isVoter: b.nodeId === md.controllerId,
      replicaCount: replicas.get(b.nodeId) ?? 0,
      leaderCount: leaders.get(b.nodeId) ?? 0,
    })),
  };
}

interface PartitionAnswer {
  readonly partition: number;
  readonly errorCode: number;
  readonly errorMessage?: string;
}

/** Per-partition answers that mean "ask the partition's new leader" (retried). */
const LEADERSHIP_ERRORS: ReadonlySet<number> = new Set([
  ErrorCode.NOT_LEADER_OR_FOLLOWER,
  ErrorCode.LEADER_NOT_AVAILABLE,
]);

function check(errorCode: number, errorMessage: string | undefined, what: string): void {
  if (errorCode !== 0) throw new StreamBusError(errorCode, errorMessage ?? what);
}

/** A topic-level result: a missing topic is TOPIC_NOT_FOUND, as everywhere in the client. */
function checkTopic(t: { name: string; errorCode: number; errorMessage?: string }, what: string) {
  if (t.errorCode === ErrorCode.UNKNOWN_TOPIC_OR_PARTITION) throw topicNotFound(t.name);
  check(t.errorCode, t.errorMessage, what);
}

/** Runs an operation whose per-item errors are returned rather than thrown, then throws them. */
async function settle<T>(ctx: ClientContext, fn: () => Promise<T>, topic?: string): Promise<T> {
  return ctx.run(fn, topic);
}

export class Admin {
  /** The consumer-group calls (admin-groups.ts). */
  private readonly groups: GroupAdmin;

  constructor(private readonly ctx: ClientContext) {
    this.groups = new GroupAdmin(ctx, (topic, query, partitions) =>
      this.listOffsets(topic, query, partitions),
    );
  }

  /** Every consumer group of the cluster (each broker lists the groups it coordinates). */
  listGroups(): Promise<GroupListing[]> {
    return this.groups.listGroups();
  }

  /** State, protocol, members with their assignments, and committed offset, log end and lag per partition. */
  describeGroup(groupId: string): Promise<GroupDescription> {
    return this.groups.describeGroup(groupId);
  }

  /** Resets a group's committed offsets of a topic (the group must have no members); `dryRun` only reports. */
  resetOffsets(groupId: string, options: ResetOffsetsOptions): Promise<OffsetReset[]> {
    return this.groups.resetOffsets(groupId, options);
  }

  /** Deletes a group without members, with its committed offsets. */
  deleteGroup(groupId: string): Promise<void> {
    return this.groups.deleteGroup(groupId);
  }

  /** Deletes a group's committed offsets of a topic (all its partitions by default). */
  deleteOffsets(groupId: string, topic: string, partitions?: readonly number[]): Promise<void> {
    return this.groups.deleteOffsets(groupId, topic, partitions);
  }

  async createTopics(
    topics: readonly NewTopic[],
    options: { timeoutMs?: number } = {},
  ): Promise<void> {
    checkOptionNames('createTopics', options, OptionNames.createTopics);
    for (const [i, t] of topics.entries()) {
      checkOptionNames(`topics[${i}]`, t, OptionNames.newTopic);
      const rf = t.replicationFactor;
      if (rf !== undefined && (!Number.isInteger(rf) || rf < 1 || rf > REPLICATION_FACTOR_MAX)) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `topics[${i}].replicationFactor: expected an integer in 1..${REPLICATION_FACTOR_MAX}, got ${rf}`,
        );
      }
    }
    const res = await settle(this.ctx, async () => {
      const conn = await this.ctx.cluster.anyConnection();
      return conn.request(ApiKey.CREATE_TOPICS, {
        topics: topics.map((t) => ({
          name: t.name,
          partitions: t.partitions ?? -1,
          replicationFactor: t.replicationFactor ?? -1,
          configs: { ...(t.configs ?? {}) },
        })),
        timeoutMs: options.timeoutMs ?? 30_000,
      });
    });
    for (const t of res.topics) check(t.errorCode, t.errorMessage, `create topic '${t.name}'`);
  }

  createTopic(topic: NewTopic): Promise<void> {
    return this.createTopics([topic]);
  }

  async deleteTopics(names: readonly string[]): Promise<void> {
    const res = await settle(this.ctx, async () => {
      const conn = await this.ctx.cluster.anyConnection();
      return conn.request(ApiKey.DELETE_TOPICS, { topics: [...names], timeoutMs: 30_000 });
    });
    for (const t of res.topics) checkTopic(t, `delete topic '${t.name}'`);
    for (const n of names)
      this.ctx.cluster.handleRetriableError(
        new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION),
        n,
      );
  }

  deleteTopic(name: string): Promise<void> {
    return this.deleteTopics([name]);
  }

  /**
   * Grows `topic` to `count` partitions (CreatePartitions; the count only grows:
   * INVALID_PARTITIONS otherwise). `assignments`: one replica list per new partition, preferred
   * leader first (INVALID_REPLICA_ASSIGNMENT when it does not fit); without it the controller
   * places them. `validateOnly` checks and changes nothing. Resolves once the new partitions
   * exist and (bounded) have leaders; producers and group consumers of this client see them at
   * once, other clients on their next metadata refresh.
   */
  async createPartitions(options: CreatePartitionsOptions): Promise<void> {
    checkOptionNames('createPartitions', options, OptionNames.createPartitions);
    const { topic, count } = options;
    if (!Number.isInteger(count) || count < 1) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `count: expected a positive integer, got ${count}`,
      );
    }
    const res = await settle(
      this.ctx,
      async () => {
        const conn = await this.ctx.cluster.anyConnection();
        if (!conn.supports(ApiKey.CREATE_PARTITIONS)) {
          throw new StreamBusError(
            ErrorCode.UNSUPPORTED_VERSION,
            'the broker does not support CreatePartitions (older than this API)',
          );
        }
        return conn.request(ApiKey.CREATE_PARTITIONS, {
          topics: [
            {
              name: topic,
              count,
              assignments: options.assignments?.map((a) => [...a]) ?? null,
            },
          ],
          timeoutMs: options.timeoutMs ?? 30_000,
          validateOnly: options.validateOnly ?? false,
        });
      },
      topic,
    );
    for (const t of res.topics) checkTopic(t, `add partitions to '${t.name}'`);
    if (options.validateOnly !== true) await this.ctx.cluster.refreshMetadata([topic]);
  }

  /** Topic names, sorted. */
  async listTopics(): Promise<string[]> {
    const res = await this.metadata(null);
    return res.topics
      .filter((t) => t.errorCode === 0)
      .map((t) => t.name)
      .sort();
  }

  /** Partitions (leaders, replicas, offsets) and configs of one topic. */
  async describeTopic(name: string): Promise<TopicDescription> {
    const res = await this.metadata([name]);
    const t = res.topics.find((x) => x.name === name);
    if (!t) throw topicNotFound(name);
    checkTopic(t, `topic '${name}'`);
    const partitions = [...t.partitions].sort((a, b) => a.partition - b.partition);
    // Offline partitions have no offsets to ask for; the others are described as usual.
    const ids = partitions.filter((p) => p.errorCode === 0).map((p) => p.partition);
    const none = Promise.resolve([]);
    const [earliest, latest, configs] = await Promise.all([
      ids.length > 0 ? this.listOffsets(name, 'earliest', ids) : none,
      ids.length > 0 ? this.listOffsets(name, 'latest', ids) : none,
      this.describeConfigs(name),
    ]);
    const offsetOf = (list: Array<{ partition: number; offset: number }>, partition: number) =>
      list.find((o) => o.partition === partition)?.offset ?? -1;
    return {
      name,
      partitions: partitions.map((p) => ({
        partition: p.partition,
        leaderId: p.leaderId,
        leaderEpoch: p.leaderEpoch,
        replicas: p.replicas,
        isr: p.isr,
        errorCode: p.errorCode,
        earliestOffset: offsetOf(earliest, p.partition),
        latestOffset: offsetOf(latest, p.partition),
        offlineReason: p.errorCode === 0 ? null : (p.errorMessage ?? `error ${p.errorCode}`),
      })),
      configs,
    };
  }

  async describeConfigs(topic: string): Promise<ConfigEntry[]> {
    const res = await settle(this.ctx, async () => {
      const conn = await this.ctx.cluster.anyConnection();
      return conn.request(ApiKey.DESCRIBE_CONFIGS, { topics: [topic] });
    });
    const t = res.topics.find((x) => x.name === topic);
    if (!t) throw topicNotFound(topic);
    checkTopic(t, `configs of '${topic}'`);
    return [...t.configs].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Sets (or, with null, resets to default) topic configs. */
  async alterConfigs(
    topic: string,
    configs: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    const res = await settle(this.ctx, async () => {
      const conn = await this.ctx.cluster.anyConnection();
      return conn.request(ApiKey.ALTER_CONFIGS, {
        topics: [{ name: topic, configs: { ...configs } }],
      });
    });
    for (const t of res.topics) checkTopic(t, `alter configs of '${t.name}'`);
  }

  /** Offsets of partitions (all by default) for earliest, latest or a timestamp (-1 if none). */
  async listOffsets(
    topic: string,
    query: OffsetQuery,
    partitions?: readonly number[],
  ): Promise<Array<{ partition: number; offset: number; timestamp: number }>> {
    const ids =
      partitions ??
      (await this.ctx.run(() => this.ctx.cluster.topic(topic, false), topic)).partitions.map(
        (p) => p.partition,
      );
    const timestamp =
      query === 'earliest'
        ? OffsetSpec.EARLIEST
        : query === 'latest'
          ? OffsetSpec.LATEST
          : query.timestamp;
    const answers = await this.toLeaders(
      topic,
      ids.map((partition) => ({ partition, timestamp })),
      async (conn, partitions) =>
        (await conn.request(ApiKey.LIST_OFFSETS, { topics: [{ name: topic, partitions }] }))
          .topics[0]?.partitions ?? [],
    );
    const out = answers.map((p) => {
      check(p.errorCode, p.errorMessage, `offsets of ${topic}/${p.partition}`);
      return { partition: p.partition, offset: p.offset, timestamp: p.timestamp };
    });
    return out.sort((a, b) => a.partition - b.partition);
  }

  /** Deletes records below `offset` (-1: everything up to the high watermark); returns the new low watermarks. */
  async deleteRecords(
    topic: string,
    partitions: ReadonlyArray<{ partition: number; offset: number }>,
  ): Promise<Array<{ partition: number; lowWatermark: number }>> {
    const answers = await this.toLeaders(
      topic,
      partitions.map((p) => ({ partition: p.partition, offset: p.offset })),
      async (conn, list) =>
        (
          await conn.request(ApiKey.DELETE_RECORDS, {
            topics: [{ name: topic, partitions: list }],
            timeoutMs: 30_000,
          })
        ).topics[0]?.partitions ?? [],
    );
    return answers.map((p) => {
      check(p.errorCode, p.errorMessage, `delete records of ${topic}/${p.partition}`);
      return { partition: p.partition, lowWatermark: p.lowWatermark };
    });
  }

  /**
   * Repairs a damaged (offline) partition on its broker while it runs: 'truncate' cuts the log at
   * the first damage, 'skip' replaces each damaged range by an empty gap batch so later offsets
   * keep their values. `dryRun` reports what would be lost without changing anything.
   */
  async repairPartition(
    topic: string,
    partition: number,
    options: { mode: 'truncate' | 'skip'; dryRun?: boolean },
  ): Promise<RepairResult> {
    const res = await settle(
      this.ctx,
      async () => {
        const conn = await this.ctx.cluster.replicaHolderFor(topic, partition);
        return conn.request(ApiKey.REPAIR_PARTITION, {
          topic,
          partition,
          mode: options.mode,
          dryRun: options.dryRun === true,
        });
      },
      topic,
    );
    check(res.errorCode, res.errorMessage, `repair of ${topic}/${partition}`);
    const { errorCode: _code, errorMessage: _message, ...result } = res;
    return result;
  }

  /**
   * Every broker of the cluster (live or not) with its controller role and replica and leader
   * counts, as the broker asked sees the controller's metadata.
   */
  async describeCluster(): Promise<ClusterDescription> {
    const res = await settle(this.ctx, async () => {
      const conn = await this.ctx.cluster.anyConnection();
      if (!conn.supports(ApiKey.DESCRIBE_CLUSTER)) return null;
      return conn.request(ApiKey.DESCRIBE_CLUSTER, {});
    });
    const d = res ?? clusterFromMetadata(await this.metadata(null));
    check(d.errorCode, d.errorMessage, 'describe cluster');
    return {
      clusterId: d.clusterId,
      controllerId: d.controllerId,
      brokers: d.brokers
        .map((b) => ({ ...b, isController: b.nodeId === d.controllerId }))
        .sort((a, b) => a.nodeId - b.nodeId),
    };
  }

  /**
   * Starts moving a partition's replicas to `replicas` (ReassignPartition; preferred leader
   * first): resolves once the controller recorded it. The move itself (learner, catch-up,
   * promotion, removal) runs in the cluster; `describePartition` shows its progress.
   * INVALID_REPLICA_ASSIGNMENT for a broker that is not live, REASSIGNMENT_IN_PROGRESS while one
   * runs. Not retried.
   */
  async reassignPartition(
    topic: string,
    partition: number,
    replicas: readonly number[],
  ): Promise<void> {
    const conn = await this.ctx.cluster.anyConnection();
    if (!conn.supports(ApiKey.REASSIGN_PARTITION)) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        'the broker does not support ReassignPartition (older than this API)',
      );
    }
    const res = await conn.request(ApiKey.REASSIGN_PARTITION, {
      topic,
      partition,
      replicas: [...replicas],
    });
    check(res.errorCode, res.errorMessage, 'reassign partition');
  }

  /**
   * The dynamic settings in force on broker `brokerId` (DescribeBrokerConfig, asked of it):
   * key, value, and source (static = flags, environment, file or default; dynamic-cluster;
   * dynamic-broker).
   */
  async describeBrokerConfig(
    brokerId: number,
  ): Promise<Array<{ key: string; value: string; source: string }>> {
    const conn = await this.ctx.cluster.connectionToNode(brokerId);
    const res = await conn.request(ApiKey.DESCRIBE_BROKER_CONFIG, {});
    check(res.errorCode, res.errorMessage, 'describe broker config');
    return res.entries;
  }

  /**
   * Changes dynamic broker settings at runtime (AlterBrokerConfig) for broker `brokerId`, or
   * every broker with -1: recorded in the controller's log, applied without a restart. A null
   * value goes back to the broker's own (static or cluster-wide) value. INVALID_CONFIG naming
   * a key that is unknown, not dynamic, or given a bad value.
   */
  async alterBrokerConfig(
    brokerId: number,
    configs: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    const conn = await this.ctx.cluster.anyConnection();
    const res = await conn.request(ApiKey.ALTER_BROKER_CONFIG, {
      brokerId,
      configs: { ...configs },
    });
    check(res.errorCode, res.errorMessage, 'alter broker config');
  }

  /**
   * Decommissions broker `brokerId` (DecommissionBroker): its replicas move to other live
   * brokers (reassignments), then it leaves the registry and the controller quorum; the
   * process can be stopped after. Resolves with the partitions moved; REQUEST_TIMED_OUT past
   * `timeoutMs` (default 120 s; the moves go on, call again). Not retried.
   */
  async decommissionBroker(
    brokerId: number,
    options: { timeoutMs?: number } = {},
  ): Promise<{ partitionsMoved: number }> {
    const timeoutMs = options.timeoutMs ?? 120_000;
    const conn = await this.ctx.cluster.anyConnection();
    if (!conn.supports(ApiKey.DECOMMISSION_BROKER)) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        'the broker does not support DecommissionBroker (older than this API)',
      );
    }
    const res = await conn.request(ApiKey.DECOMMISSION_BROKER, { brokerId, timeoutMs }, timeoutMs);
    check(res.errorCode, res.errorMessage, 'decommission broker');
    return { partitionsMoved: res.partitionsMoved };
  }

  /**
   * The controller quorum's voters and learners as the broker asked knows them
   * (AlterControllerVoters with no change).
   */
  async controllerVoters(): Promise<{ voters: number[]; learners: number[] }> {
    return this.voterRequest(0, -1, 10_000);
  }

  /**
   * One controller voter more (`add`: a registered, live broker; it becomes a voter once caught
   * up) or less (`remove`; refused when it would leave no voter or no majority of live voters),
   * a Raft membership change of the metadata group (AlterControllerVoters). Resolves once the
   * group's voters are the new set, with the voters and learners then; REQUEST_TIMED_OUT past
   * `timeoutMs` (default 60 s; the change goes on). Not retried.
   */
  async alterControllerVoters(
    op: 'add' | 'remove',
    brokerId: number,
    options: { timeoutMs?: number } = {},
  ): Promise<{ voters: number[]; learners: number[] }> {
    return this.voterRequest(op === 'add' ? 1 : 2, brokerId, options.timeoutMs ?? 60_000);
  }

  private async voterRequest(
    op: number,
    brokerId: number,
    timeoutMs: number,
  ): Promise<{ voters: number[]; learners: number[] }> {
    const conn = await this.ctx.cluster.anyConnection();
    if (!conn.supports(ApiKey.ALTER_CONTROLLER_VOTERS)) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        'the broker does not support AlterControllerVoters (older than this API)',
      );
    }
    const res = await conn.request(
      ApiKey.ALTER_CONTROLLER_VOTERS,
      { op, brokerId, timeoutMs },
      timeoutMs + 5_000,
    );
    check(res.errorCode, res.errorMessage, 'alter controller voters');
    return { voters: res.voters, learners: res.learners };
  }

  /**
   * Cancels the reassignment of a partition (CancelReassignment): the replicas being added
   * leave, the partition goes back to its replicas before the move. Resolves with them once the
   * controller recorded it (the partition's leader then finishes the move back).
   */
  async cancelReassignment(topic: string, partition: number): Promise<{ replicas: number[] }> {
    const conn = await this.ctx.cluster.anyConnection();
    if (!conn.supports(ApiKey.CANCEL_REASSIGNMENT)) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        'the broker does not support CancelReassignment (older than this API)',
      );
    }
    const res = await conn.request(ApiKey.CANCEL_REASSIGNMENT, { topic, partition });
    check(res.errorCode, res.errorMessage, 'cancel reassignment');
    return { replicas: res.replicas };
  }

  /**
   * Every replica of a partition as its own broker reports it (DescribeReplica to each):
   * role, log end and commit lag, and the reassignment in progress. A broker that does not
   * answer is listed as unreachable.
   */
  async describePartition(topic: string, partition: number): Promise<PartitionReplicasDescription> {
    const ask = async (nodeId: number) => {
      const conn =
        nodeId < 0
          ? await this.ctx.cluster.anyConnection()
          : await this.ctx.cluster.connectionToNode(nodeId);
      const res = await conn.request(ApiKey.DESCRIBE_REPLICA, { topic, partition });
      check(res.errorCode, res.errorMessage, 'describe replica');
      return res;
    };
    await this.ctx.cluster.refreshMetadata(null);
    const first = await ask(-1);
    if (first.replicas.length === 0) throw topicNotFound(`${topic}/${partition}`);
    const answers = await Promise.all(
      first.replicas.map((id) => (id === first.nodeId ? first : ask(id).catch(() => null))),
    );
    const leader = answers.find((a) => a !== null && a.role === 'leader') ?? null;
    const hw = leader?.highWatermark ?? -1;
    return {
      topic,
      partition,
      leaderId: leader?.nodeId ?? -1,
      highWatermark: hw,
      reassignmentTarget: first.target,
      replicas: first.replicas.map((id, i) => {
        const a = answers[i] ?? null;
        if (a === null) return { nodeId: id, role: 'unreachable', logEndOffset: -1, commitLag: -1 };
        let role = a.role;
        if (leader !== null && role !== 'leader' && role !== 'offline') {
          role = leader.learners.includes(id)
            ? 'learner'
            : leader.voters.includes(id)
              ? 'voter'
              : 'leaving';
        }
        return {
          nodeId: id,
          role,
          logEndOffset: a.logEndOffset,
          commitLag: hw < 0 ? -1 : Math.max(0, hw - a.logEndOffset),
        };
      }),
    };
  }

  /**
   * Preferred-leader balancing now (RebalanceLeaders): every live broker hands the partitions
   * it leads back to their preferred replica (the first of the assignment) where that one is
   * live and in sync; resolves once the metadata shows it or after `timeoutMs` (default 10 s),
   * with the transfers started and the moves still wanted. Not retried (a repeat is harmless
   * but would only start the same transfers again).
   */
  async rebalanceLeaders(options: { timeoutMs?: number } = {}): Promise<RebalanceLeadersResult> {
    const timeoutMs = options.timeoutMs ?? 10_000;
    const conn = await this.ctx.cluster.anyConnection();
    if (!conn.supports(ApiKey.REBALANCE_LEADERS)) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_VERSION,
        'the broker does not support RebalanceLeaders (older than this API)',
      );
    }
    const res = await conn.request(ApiKey.REBALANCE_LEADERS, { timeoutMs });
    check(res.errorCode, res.errorMessage, 'rebalance leaders');
    return {
      transfersStarted: res.transfersStarted,
      remainingCount: res.remainingCount,
      remaining: res.remaining,
    };
  }

  /**
   * Sends the partitions of `topic` to their leaders, one request per leader at once, in one
   * attempt of the retry layer. When a leader says it no longer leads (a leader change), the
   * attempt fails with that retriable error, metadata is dropped and the whole set is sent
   * again (both users, ListOffsets and DeleteRecords, may repeat). Other per-partition errors
   * are returned, for the caller to throw after the retries.
   */
  private toLeaders<I extends { partition: number }, R extends PartitionAnswer>(
    topic: string,
    items: readonly I[],
    send: (conn: BrokerConnection, items: I[]) => Promise<R[]>,
  ): Promise<R[]> {
    return settle(
      this.ctx,
      async () => {
        const answers = await this.ctx.cluster.toLeaders(topic, items, send, false);
        const moved = answers.find((a) => LEADERSHIP_ERRORS.has(a.errorCode));
        if (moved !== undefined) {
          throw new StreamBusError(
            moved.errorCode,
            moved.errorMessage ?? `${topic}/${moved.partition}`,
          );
        }
        return answers;
      },
      topic,
    );
  }

  /** Never creates a topic, even on a broker with autoCreateTopics (a lookup must not). */
  private metadata(topics: string[] | null): Promise<MetadataResponse> {
    return settle(this.ctx, () => this.ctx.cluster.refreshMetadata(topics, false));
  }
}
