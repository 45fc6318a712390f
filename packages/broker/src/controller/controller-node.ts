// The controller quorum on one broker (issue 9): the metadata Raft group (`METADATA_GROUP`) as a
// `HostedGroup`, over the durable metadata log (metadata-log.ts). Every broker runs one: the
// `--peers` ids are its voters ([self] for a cluster of one, which elects itself at once), any
// other broker is added as a learner when it registers, so every broker receives the log and
// applies it to its own `MetadataState`. The leader of the group is the controller.
//
// Public API (stable; additive changes only):
//
//   const node = await ControllerNode.open({ nodeId, voters, fs, dir, transport, random, notify });
//   host.add(node);                                   // ticks, steps and process() come from the host
//   node.onApplied((state, records) => ...);          // every broker: react to applied records
//   node.state; node.isLeader; node.leaderId; node.ready   // ready: leader that may serve
//   await node.registerBroker({ brokerId, host, port, incarnation })  -> { brokerEpoch }
//   await node.heartbeat({ brokerId, brokerEpoch })                    -> { fenced }
//   await node.createTopic({ name, partitions, replicationFactor, configs }) -> TopicState
//   await node.deleteTopic(name); await node.alterTopicConfig(name, { key: value | null })
//   await node.allocateProducerIds(brokerId, count)   -> { firstProducerId, count }
//   await node.changeIsr({ topicId, partition, leader, leaderEpoch, isr }) -> PartitionState
//   await node.controlledShutdown({ brokerId, brokerEpoch })   fenced now (SIGTERM)
//   await node.alterControllerVoters({ op: 'add' | 'remove', brokerId })  controller-voters.ts
//   await node.cancelReassignment({ topic, partition }) -> PartitionState
//   node.transferLeadership(voterId) -> boolean          hands the controller role over
//   await node.close()
//
// Requests are served by the leader only; anywhere else they reject with `NotControllerError`
// (NOT_CONTROLLER, 41, retriable) carrying the leader's id when known (controller-rpc.ts forwards
// them from other brokers). A request is planned (controller-planner.ts; its typed errors reach
// the caller unchanged), proposed as one entry (metadata-entry.ts), and resolved when that entry
// is committed AND applied here, with a result read from the applied state.
//
// Rules:
//   1. One plan is one entry: atomic. Plans are made against `planState` = the applied state plus
//      every plan this leader proposed and has not applied yet, so two requests in flight see
//      each other. A refusal is answered only once the plans before it applied and it still
//      holds (a second create of one name fails TOPIC_ALREADY_EXISTS once the first committed).
//   2. A new leader serves only once it has applied everything up to its own first entry (so
//      `planState` includes every earlier leader's committed plans) and the cluster has an id:
//      the leader of an empty log proposes the cluster-bootstrap record first (id from the
//      injected RandomSource). Requests arriving before that wait (bounded, `requestsPendingMax`).
//   3. Leaving leadership (or a new term) fails every pending request with NOT_CONTROLLER: its
//      entry may still commit under the next leader (the caller's retry then sees, say,
//      TOPIC_ALREADY_EXISTS), as in Kafka. A request not resolved within `requestTimeoutTicks`
//      fails REQUEST_TIMED_OUT (a safety net: check-quorum steps an isolated leader down first).
//   4. The controller clock is in ticks. Only the leader advances it, one per tick, from the
//      applied state's `tickLast` when it takes over, so broker sessions survive a failover
//      (a new leader's clock never starts ahead of what the log recorded). Each tick the leader
//      fences brokers whose last heartbeat is more than `sessionTicks` old (planFenceExpired), at
//      most one fence plan in flight.
//   4a. Liveness is the leader's memory (as in KRaft): a heartbeat from a registered, unfenced
//      broker with its current epoch is answered from `heardAt` without a log entry; only
//      registration, unfence (the heartbeat of a fenced broker) and fence are records. A leader
//      that starts serving counts every broker as heard at its first tick, so a failover gives
//      each a full session instead of fencing them all. (A heartbeat entry per broker per second
//      cost a commit, and its fsyncs, on every voter.)
//   5. A registered broker that is neither voter nor learner is added as a learner
//      (proposeConfChange), one change at a time, retried on later ticks while Raft says a change
//      is in progress. While the group has fewer than `votersTarget` voters (default 3), a
//      learner that is live (registered, unfenced) and caught up (its match reached the commit
//      index) is promoted to voter, one at a time, lowest id first: a controller quorum started
//      with one or two `--peers` becomes fault tolerant as brokers join. Once the state records
//      a voter set (`cluster voters add|remove`, controller-voters.ts), that replaces the
//      promotion: the leader adds the set's caught-up live learners as voters, then removes the
//      voters outside it, itself last after handing the role over, one change at a time.
//      Brokers that left the registry (the state's `departed`, kept in snapshots) leave the
//      group: a learner at once, a voter while the others still make the quorum.
//   6. The log is bounded: after applying, once `snapshotEveryEntries` entries or
//      `snapshotEveryBytes` bytes follow the latest snapshot, the state is snapshotted
//      (`encodeSnapshot`) and the log compacted. A follower behind the compaction point gets the
//      snapshot through Raft's InstallSnapshot; installing it replaces the state (listeners get
//      `records = []` and reconcile against the state).
//   7. A disk error while persisting takes this group offline (`offline` says why): pending
//      requests fail CONTROLLER_OFFLINE (retriable), nothing more is persisted, the broker's other
//      groups go on. Every `recoveryTicks` the offline group reopens the log from disk (recovery
//      cuts what was not durable; nothing was sent or applied for the failed write, since a Ready
//      is persisted before it is sent or applied) and starts a new Raft node over it, as a
//      restart would, but keeps its applied state: committed entries the new node hands out
//      again (at or below the applied index: they were durable here) are skipped. Until a reopen
//      succeeds (the disk has room again) the group stays offline and tries again.

import { ErrorCode, StreamBusError } from '@streambus/protocol';
import {
  type ConfChange,
  type ConfState,
  type Entry,
  EntryType,
  type LogIndex,
  type Message,
  type NodeId,
  RaftError,
  RaftErrorCode,
  RaftNode,
  type RandomSource,
  StateRole,
  type Term,
} from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import type { Logger } from 'pino';
import {
  type GroupKey,
  type HostedGroup,
  METADATA_GROUP,
  type RaftTransport,
} from '../cluster/contract.js';
import { type AddPartitionsRequest, planAddPartitions } from './add-partitions.js';
import { planAlterBrokerConfig } from './broker-config.js';
import {
  type CreateTopicRequest,
  DEFAULT_PLANNER_LIMITS,
  type HeartbeatRequest,
  type IsrReport,
  type PlannerLimits,
  planAllocateProducerIds,
  planAlterTopicConfig,
  planBootstrap,
  planControlledShutdown,
  planCreateTopic,
  planDeleteTopic,
  planFenceExpired,
  planHeartbeat,
  planIsrChange,
  planRegisterBroker,
  type RegisterBrokerRequest,
} from './controller-planner.js';
import { nextVoterStep, planControllerVoters, type VoterChange } from './controller-voters.js';
import { decodePlan, encodePlan } from './metadata-entry.js';
import {
  DEFAULT_METADATA_LOG_LIMITS,
  METADATA_ENTRY_BYTES_MAX,
  type MetadataLogLimits,
  MetadataLogStore,
} from './metadata-log.js';
import type { KafkaAddress, MetadataRecord } from './metadata-records.js';
import {
  applyRecord,
  type BrokerState,
  decodeSnapshot,
  EMPTY_METADATA_STATE,
  encodeSnapshot,
  type MetadataState,
  type PartitionState,
  type TopicState,
  topicByName,
} from './metadata-state.js';
import {
  planCancelReassignment,
  planCompleteReassignment,
  planDecommission,
  planReassignPartition,
  planUnregisterBroker,
  type ReassignRequest,
} from './reassignment.js';

export interface ControllerLimits extends MetadataLogLimits {
  /** A broker not heard from for more than this many ticks is fenced. */
  readonly sessionTicks: number;
  /** Requests waiting for a leader to load or for their entry to apply. */
  readonly requestsPendingMax: number;
  /** A request not applied within this many ticks fails REQUEST_TIMED_OUT. */
  readonly requestTimeoutTicks: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** Learners are promoted to voters while there are fewer voters than this (rule 5). */
  readonly votersTarget: number;
  /** An offline metadata log is reopened from disk this many ticks after it failed (rule 7). */
  readonly recoveryTicks: number;
}

export const DEFAULT_CONTROLLER_LIMITS: ControllerLimits = {
  ...DEFAULT_METADATA_LOG_LIMITS,
  sessionTicks: 90,
  requestsPendingMax: 4096,
  requestTimeoutTicks: 300,
  electionTicks: 10,
  heartbeatTicks: 1,
  votersTarget: 3,
  recoveryTicks: 10,
};

export interface ControllerNodeOptions {
  readonly nodeId: number;
  /** The `--peers` ids (the initial voters); empty means [nodeId], a cluster of one. */
  readonly voters: readonly number[];
  readonly fs: FileSystem;
  /** Directory of the metadata log (e.g. `<dataDir>/__cluster_metadata`). */
  readonly dir: string;
  /** Only `send` is used here: RPCs go through controller-rpc.ts. */
  readonly transport: Pick<RaftTransport, 'send'>;
  /** Election timeouts and the cluster id. */
  readonly random: RandomSource;
  /** Called when the group has new work outside a tick or step (the host's `notify`). */
  readonly notify?: () => void;
  readonly limits?: Partial<ControllerLimits>;
  readonly plannerLimits?: PlannerLimits;
  readonly logger?: Pick<Logger, 'warn' | 'info' | 'error'>;
}

/** NOT_CONTROLLER with the controller leader's id, when known (0 = unknown). */
export class NotControllerError extends StreamBusError {
  constructor(
    readonly leaderId: number,
    message?: string,
  ) {
    super(
      ErrorCode.NOT_CONTROLLER,
      message ??
        (leaderId > 0 ? `the controller is node ${leaderId}` : 'no controller leader is known'),
    );
  }
}

export type AppliedListener = (state: MetadataState, records: readonly MetadataRecord[]) => void;

interface Waiter {
  /** The entry whose application resolves this waiter (its index and term). */
  readonly index: number;
  readonly term: number;
  readonly deadlineTick: number;
  /** Called with the state right after that entry applied (later entries may follow at once). */
  readonly resolve: (state: MetadataState) => void;
  readonly reject: (err: Error) => void;
}

interface LoadWaiter {
  readonly deadlineTick: number;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

const CLUSTER_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

/** A 22-character cluster id (132 bits) from the injected randomness. */
export function newClusterId(random: RandomSource): string {
  let id = '';
  for (let i = 0; i < 22; i++) id += CLUSTER_ID_ALPHABET[random.int(64)];
  return id;
}

/** A broker's registration: its native address and incarnation, and its Kafka address. */
export interface BrokerRegistration extends RegisterBrokerRequest {
  /** The advertised Kafka listener address; null (or absent, an older broker): none. */
  readonly kafka?: KafkaAddress | null;
}

export class ControllerNode implements HostedGroup {
  readonly key: GroupKey = METADATA_GROUP;
  readonly nodeId: number;
  private raft: RaftNode;
  private readonly limits: ControllerLimits;
  private readonly plannerLimits: PlannerLimits;
  private appliedState: MetadataState;
  private appliedIndex: number;
  /** Applied state + this leader's unapplied plans (rule 1); null when not serving. */
  private planState: MetadataState | null = null;
  /** The term this node leads in, 0 when not leader. */
  private leaderTerm = 0;
  /** This leader's first entry (its no-op): served once applied (rule 2). */
  private leaderStartIndex = 0;
  private readonly waiters: Waiter[] = [];
  private readonly loadWaiters: LoadWaiter[] = [];
  private readonly listeners = new Set<AppliedListener>();
  private clock = 0;
  private ticks = 0;
  private fencePending = false;
  private caughtUpOnce = false;
  /** Rule 4a: the controller clock at each broker's last heartbeat (serving leader only). */
  private readonly heardAt = new Map<number, number>();
  /** The controller clock of the last controller hand-over for a voter change (rule 5). */
  private voterTransferAt = -1;
  private bootstrapPending = false;
  private failure: Error | null = null;
  /** Rule 7: the tick of the last failure (or failed reopen), and the reopen in flight. */
  private failedAtTick = 0;
  private recovering: Promise<void> | null = null;
  private closed = false;
  private processing: Promise<void> | null = null;
  private readonly counters = {
    snapshotsInstalled: 0,
    snapshotsTaken: 0,
    recordsNoop: 0,
    recoveries: 0,
  };

  private constructor(
    private readonly options: ControllerNodeOptions,
    private store: MetadataLogStore,
    private readonly initialConf: ConfState,
  ) {
    this.nodeId = options.nodeId;
    this.limits = { ...DEFAULT_CONTROLLER_LIMITS, ...options.limits };
    this.plannerLimits = options.plannerLimits ?? DEFAULT_PLANNER_LIMITS;
    const snap = store.snapshot();
    this.appliedState = snap.data.length === 0 ? EMPTY_METADATA_STATE : decodeSnapshot(snap.data);
    this.appliedIndex = snap.meta.index;
    this.clock = this.appliedState.tickLast;
    this.raft = this.newRaft(store);
  }

  /** The Raft node over `store`; a sole voter campaigns at once (no election timeout to wait). */
  private newRaft(store: MetadataLogStore): RaftNode {
    const raft = new RaftNode(
      {
        id: this.options.nodeId as NodeId,
        random: this.options.random,
        electionTicks: this.limits.electionTicks,
        heartbeatTicks: this.limits.heartbeatTicks,
      },
      store,
    );
    const own = raft.status().conf;
    if (own.voters.length === 1 && own.voters[0] === this.options.nodeId) raft.campaign();
    return raft;
  }

  /** Opens (recovering) the metadata log in `options.dir` and the Raft node over it. */
  static async open(options: ControllerNodeOptions): Promise<ControllerNode> {
    const voters = options.voters.length === 0 ? [options.nodeId] : options.voters;
    const conf: ConfState = {
      voters: [...new Set(voters)].sort((a, b) => a - b) as NodeId[],
      learners: [],
    };
    const store = await MetadataLogStore.open(options.fs, options.dir, conf);
    try {
      return new ControllerNode(options, store, conf);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  // ------------------------------------------------------------------ what every broker reads

  /** The applied metadata state (never mutated; a new object after every change). */
  get state(): MetadataState {
    return this.appliedState;
  }

  get isLeader(): boolean {
    return this.failure === null && this.raft.currentRole === StateRole.Leader;
  }

  /** The controller leader's node id, 0 when none is known. */
  get leaderId(): number {
    return this.raft.currentLead;
  }

  /** True on a leader that has loaded the log and may serve requests (rule 2). */
  get ready(): boolean {
    return this.servingTerm() !== 0 && this.planState !== null;
  }

  /**
   * This node has caught up with the metadata log since it opened: at some point a leader was
   * known and everything this node knew committed was applied (a follower learns the commit
   * index from the leader's messages). It stays true afterwards, as the log keeps growing (every
   * heartbeat is a record) and a follower is always a moment behind; false again only when the
   * group went offline. For /ready.
   */
  get caughtUp(): boolean {
    if (this.failure !== null) return false;
    if (!this.caughtUpOnce && this.raft.currentLead !== 0) {
      this.caughtUpOnce = this.appliedIndex >= this.raft.commitIndex;
    }
    return this.caughtUpOnce;
  }

  /** The index of the last applied entry. */
  get applied(): number {
    return this.appliedIndex;
  }

  /** The configuration of the metadata group (voters and learners). */
  get conf(): ConfState {
    return this.raft.status().conf;
  }

  /**
   * Snapshots installed from a leader and taken here; committed records that were no-ops;
   * reopens of the log after a failure (rule 7).
   */
  get stats(): {
    readonly snapshotsInstalled: number;
    readonly snapshotsTaken: number;
    readonly recordsNoop: number;
    readonly recoveries: number;
  } {
    return { ...this.counters };
  }

  /** Why this group went offline (rule 7), or null. */
  get offline(): Error | null {
    return this.failure;
  }

  /** Registers a listener for applied records; returns its removal. Listener errors are logged. */
  onApplied(listener: AppliedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  // ------------------------------------------------------------------ requests (leader only)

  async registerBroker(req: BrokerRegistration): Promise<{ brokerEpoch: number }> {
    // The planner copies every field of the request into the record: the Kafka address too.
    const state = await this.submit((s) => planRegisterBroker(s, req));
    const broker = state.brokers.get(req.brokerId);
    if (broker === undefined || broker.incarnation !== req.incarnation) {
      throw new StreamBusError(
        ErrorCode.STALE_BROKER_EPOCH,
        `broker ${req.brokerId} re-registered with another incarnation meanwhile`,
      );
    }
    return { brokerEpoch: broker.brokerEpoch };
  }

  async heartbeat(req: HeartbeatRequest): Promise<{ fenced: boolean }> {
    // Rule 4a: a live broker's heartbeat is answered from memory (planState includes every
    // plan in flight, so a fence being committed sends this heartbeat down the logged path).
    const known = this.servingTerm() !== 0 ? this.planState?.brokers.get(req.brokerId) : undefined;
    if (known !== undefined && known.brokerEpoch === req.brokerEpoch && !known.fenced) {
      this.heardAt.set(req.brokerId, this.clock);
      return { fenced: false };
    }
    const state = await this.submit((s, now) => planHeartbeat(s, req, now));
    this.heardAt.set(req.brokerId, this.clock);
    const broker = state.brokers.get(req.brokerId);
    if (broker === undefined || broker.brokerEpoch !== req.brokerEpoch) {
      throw new StreamBusError(
        ErrorCode.STALE_BROKER_EPOCH,
        `broker ${req.brokerId} epoch ${req.brokerEpoch} was replaced meanwhile`,
      );
    }
    return { fenced: broker.fenced };
  }

  async createTopic(req: CreateTopicRequest): Promise<TopicState> {
    const state = await this.submit((s) => planCreateTopic(s, req, this.plannerLimits));
    return requireTopic(state, req.name);
  }

  async deleteTopic(name: string): Promise<void> {
    await this.submit((s) => planDeleteTopic(s, name));
  }

  /** CreatePartitions (add-partitions.ts): the topic after it grew. */
  async addPartitions(req: AddPartitionsRequest): Promise<TopicState> {
    const state = await this.submit((s) => planAddPartitions(s, req, this.plannerLimits));
    return requireTopic(state, req.name);
  }

  async alterTopicConfig(
    name: string,
    changes: Readonly<Record<string, string | null>>,
  ): Promise<TopicState> {
    const state = await this.submit((s) => planAlterTopicConfig(s, name, changes));
    return requireTopic(state, name);
  }

  async allocateProducerIds(
    brokerId: number,
    count: number,
  ): Promise<{ firstProducerId: number; count: number }> {
    let first = -1;
    await this.submit((s) => {
      const records = planAllocateProducerIds(s, brokerId, count);
      const r = records[0];
      if (r?.type === 'allocate-producer-ids') first = r.firstProducerId;
      return records;
    });
    return { firstProducerId: first, count };
  }

  /** Starts a reassignment of one partition (reassignment.ts); the partition state after it. */
  async reassignPartition(req: ReassignRequest): Promise<PartitionState> {
    const state = await this.submit((s) => planReassignPartition(s, req));
    return requirePartition(state, req.topic, req.partition);
  }

  /** The partition's leader: its Raft voters are the target now (reassignment.ts). */
  async completeReassignment(req: {
    topicId: number;
    partition: number;
    voters: readonly number[];
  }): Promise<void> {
    await this.submit((s) => planCompleteReassignment(s, req));
  }

  /** Dynamic broker settings for `brokerId` (-1: every broker); broker-config.ts. */
  async alterBrokerConfig(
    brokerId: number,
    changes: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    await this.submit((s) => planAlterBrokerConfig(s, brokerId, changes));
  }

  /** One decommission round (reassignment.ts `planDecommission`): the partitions moved now. */
  async decommissionBroker(brokerId: number): Promise<number> {
    let moved = 0;
    await this.submit((s) => {
      const records = planDecommission(s, brokerId);
      moved = records.length;
      return records;
    });
    return moved;
  }

  /** A decommissioned broker that no partition lists any more leaves the registry. */
  async unregisterBroker(brokerId: number): Promise<void> {
    await this.submit((s) => planUnregisterBroker(s, brokerId));
  }

  /**
   * One controller voter more or less (controller-voters.ts): resolves once the new set is
   * recorded; the leader then moves the group there (rule 5). The voters now: `conf`.
   */
  async alterControllerVoters(change: VoterChange): Promise<void> {
    await this.submit((s) => planControllerVoters(s, this.raft.status().conf.voters, change));
  }

  /** Cancels the reassignment of one partition (reassignment.ts); the partition after it. */
  async cancelReassignment(req: { topic: string; partition: number }): Promise<PartitionState> {
    const state = await this.submit((s) => planCancelReassignment(s, req));
    return requirePartition(state, req.topic, req.partition);
  }

  /** A controlled shutdown of `brokerId`: fenced now and out of every ISR (planner rule 3). */
  async controlledShutdown(req: HeartbeatRequest): Promise<void> {
    await this.submit((s) => planControlledShutdown(s, req));
  }

  async changeIsr(report: IsrReport): Promise<PartitionState> {
    const state = await this.submit((s) => planIsrChange(s, report));
    const p = state.topics.get(report.topicId)?.partitions[report.partition];
    if (p === undefined) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `partition ${report.topicId}/${report.partition} was deleted meanwhile`,
      );
    }
    return p;
  }

  /** Plans on `planState`, proposes one entry, resolves once it is applied here (rules 1-3). */
  private async submit(
    plan: (state: MetadataState, nowTick: number) => MetadataRecord[],
  ): Promise<MetadataState> {
    this.checkServing();
    if (this.planState === null) await this.waitLoaded();
    this.checkServing();
    const planState = this.planState;
    if (planState === null) throw new NotControllerError(this.leaderId);
    let records: MetadataRecord[];
    try {
      records = plan(planState, this.clock);
    } catch (err) {
      // A refusal may rest on a plan not committed yet (TOPIC_ALREADY_EXISTS of a topic whose
      // create is still in flight): answered now, and that plan lost with this leader, the
      // caller would have been told of a topic that never existed (cluster simulator). So a
      // refusal waits until everything planned before it applied, and is answered only if it
      // still holds against the applied state (rule 1).
      const last = this.waiters[this.waiters.length - 1];
      if (last === undefined) throw err;
      if (this.waiters.length >= this.limits.requestsPendingMax) {
        throw new StreamBusError(
          ErrorCode.CONTROLLER_BUSY,
          `${this.waiters.length} controller requests are pending (requestsPendingMax)`,
        );
      }
      await this.waitFor(last.index, last.term);
      return this.submit(plan);
    }
    if (records.length === 0) {
      // Nothing to change (a retried request): answer once everything planned before applied.
      const last = this.waiters[this.waiters.length - 1];
      if (last === undefined) return this.appliedState;
      return this.waitFor(last.index, last.term);
    }
    const proposed = this.propose(records);
    return this.waitFor(proposed.index, proposed.term);
  }

  private propose(records: readonly MetadataRecord[]): { index: number; term: number } {
    if (this.waiters.length >= this.limits.requestsPendingMax) {
      throw new StreamBusError(
        ErrorCode.CONTROLLER_BUSY,
        `${this.waiters.length} controller requests are pending (requestsPendingMax)`,
      );
    }
    const data = encodePlan(records);
    if (data.length > METADATA_ENTRY_BYTES_MAX) {
      throw new StreamBusError(
        ErrorCode.POLICY_VIOLATION,
        `the plan of ${records.length} records takes ${data.length} bytes, above the metadata entry maximum ${METADATA_ENTRY_BYTES_MAX}`,
      );
    }
    let proposed: { index: LogIndex; term: Term };
    try {
      proposed = this.raft.propose(data);
    } catch (err) {
      throw this.mapRaftError(err);
    }
    let s = this.planState!;
    for (const r of records) s = applyRecord(s, r).state;
    this.planState = s;
    this.options.notify?.();
    return proposed;
  }

  private waitFor(index: number, term: number): Promise<MetadataState> {
    return new Promise<MetadataState>((resolve, reject) => {
      this.waiters.push({
        index,
        term,
        deadlineTick: this.ticks + this.limits.requestTimeoutTicks,
        resolve,
        reject,
      });
    });
  }

  private waitLoaded(): Promise<void> {
    if (this.loadWaiters.length >= this.limits.requestsPendingMax) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.CONTROLLER_BUSY,
          'too many requests wait for the controller to load',
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.loadWaiters.push({
        deadlineTick: this.ticks + this.limits.requestTimeoutTicks,
        resolve,
        reject,
      });
    });
  }

  private checkServing(): void {
    if (this.failure !== null) throw this.offlineError();
    if (this.closed) throw new StreamBusError(ErrorCode.SHUTTING_DOWN, 'the controller is closing');
    if (this.servingTerm() === 0) throw new NotControllerError(this.leaderId);
  }

  /** The term this node leads in as seen by the core now, 0 when it does not lead. */
  private servingTerm(): number {
    if (this.raft.currentRole !== StateRole.Leader) return 0;
    return this.raft.currentTerm === this.leaderTerm ? this.leaderTerm : 0;
  }

  private mapRaftError(err: unknown): Error {
    if (!(err instanceof RaftError)) return err as Error;
    if (err.code === RaftErrorCode.NOT_LEADER_OR_FOLLOWER) {
      return new NotControllerError(err.leaderHint);
    }
    if (
      err.code === RaftErrorCode.PROPOSAL_DROPPED ||
      err.code === RaftErrorCode.CONF_CHANGE_IN_PROGRESS
    ) {
      return new StreamBusError(ErrorCode.CONTROLLER_BUSY, err.message, { cause: err });
    }
    return new StreamBusError(ErrorCode.INVALID_REQUEST, err.message, { cause: err });
  }

  private offlineError(): StreamBusError {
    return new StreamBusError(
      ErrorCode.CONTROLLER_OFFLINE,
      `the metadata log of node ${this.nodeId} is offline: ${this.failure?.message}`,
      { cause: this.failure },
    );
  }

  // ------------------------------------------------------------------ HostedGroup

  tick(): void {
    if (this.closed) return;
    if (this.failure !== null) {
      this.ticks++;
      if (this.recovering === null && this.ticks - this.failedAtTick >= this.limits.recoveryTicks) {
        this.recover();
      }
      return;
    }
    this.ticks++;
    this.raft.tick();
    if (this.servingTerm() !== 0 && this.planState !== null) {
      this.clock++;
      this.maybeFence();
      this.maybeAddLearner();
    }
    this.expireWaiters();
  }

  step(message: Message): void {
    if (this.failure !== null || this.closed) return;
    try {
      this.raft.step(message);
    } catch (err) {
      // A malformed message is the sender's problem: drop it, keep the group.
      if (err instanceof RaftError) {
        this.options.logger?.warn({ err, from: message.from }, 'metadata group: message dropped');
        return;
      }
      throw err;
    }
  }

  reportUnreachable(peer: NodeId): void {
    if (this.failure === null && !this.closed) this.raft.reportUnreachable(peer);
  }

  hasWork(): boolean {
    return (
      this.failure === null && !this.closed && this.processing === null && this.raft.hasReady()
    );
  }

  async process(): Promise<void> {
    if (!this.hasWork()) return;
    const round = this.processOnce().then(
      () => {},
      (err: Error) => this.goOffline(err),
    );
    this.processing = round;
    await round;
    this.processing = null;
    // Work that arrived during the round (a proposal, a step) is the host's to schedule.
    if (this.hasWork()) this.options.notify?.();
  }

  private async processOnce(): Promise<void> {
    const rd = this.raft.ready();
    // 1. Persist (snapshot, entries, hard state), durably.
    await this.store.write(rd);
    if (this.closed) return;
    // 2. Send, install, apply.
    if (rd.messages.length > 0) this.options.transport.send(METADATA_GROUP, rd.messages);
    if (rd.snapshot) this.installSnapshot(rd.snapshot.data, rd.snapshot.meta.index);
    for (const e of rd.committedEntries) this.applyEntry(e);
    // 3. Advance, then see whether leadership changed and whether to snapshot.
    this.raft.advance();
    this.observeRole();
    await this.maybeSnapshot();
  }

  private installSnapshot(data: Uint8Array, index: number): void {
    this.appliedState = data.length === 0 ? EMPTY_METADATA_STATE : decodeSnapshot(data);
    this.appliedIndex = index;
    this.counters.snapshotsInstalled++;
    this.clock = Math.max(this.clock, this.appliedState.tickLast);
    this.emit([]);
  }

  private applyEntry(e: Entry): void {
    // Rule 7: after a reopen the new Raft node hands out committed entries applied already.
    if (e.index <= this.appliedIndex) return;
    this.appliedIndex = e.index;
    const applied: MetadataRecord[] = [];
    if (e.type === EntryType.Normal && e.data.length > 0) {
      let records: MetadataRecord[] = [];
      try {
        records = decodePlan(e.data);
      } catch (err) {
        // Every broker decodes the same committed bytes, so every broker skips it alike.
        this.options.logger?.error({ err, index: e.index }, 'metadata entry does not decode');
      }
      let s = this.appliedState;
      for (const r of records) {
        const result = applyRecord(s, r);
        if (result.noop === null) applied.push(r);
        else this.counters.recordsNoop++;
        s = result.state;
      }
      this.appliedState = s;
      // Rule 4: the clock never runs behind what the log recorded.
      this.clock = Math.max(this.clock, s.tickLast);
    }
    if (applied.length > 0) this.emit(applied);
    this.resolveWaiters(e.index, e.term);
    if (this.waiters.length === 0 && this.planState !== null) this.planState = this.appliedState;
  }

  private emit(records: readonly MetadataRecord[]): void {
    for (const listener of this.listeners) {
      try {
        listener(this.appliedState, records);
      } catch (err) {
        this.options.logger?.error({ err }, 'metadata listener failed');
      }
    }
  }

  private resolveWaiters(index: number, term: number): void {
    while (this.waiters.length > 0 && this.waiters[0]!.index <= index) {
      const w = this.waiters.shift()!;
      if (w.index === index && w.term === term) w.resolve(this.appliedState);
      else
        w.reject(
          new NotControllerError(this.leaderId, 'the request was replaced by another leader'),
        );
    }
  }

  /** Leadership gained or lost since the last round (rules 2, 3). */
  private observeRole(): void {
    const role = this.raft.currentRole;
    const term = this.raft.currentTerm;
    if (this.leaderTerm !== 0 && (role !== StateRole.Leader || term !== this.leaderTerm)) {
      this.leaderTerm = 0;
      this.planState = null;
      this.failAll(new NotControllerError(this.leaderId, 'the controller leader changed'));
    }
    if (role === StateRole.Leader && this.leaderTerm === 0) {
      this.leaderTerm = term;
      this.leaderStartIndex = this.raft.status().lastIndex;
      this.fencePending = false;
      this.bootstrapPending = false;
      this.options.logger?.info({ node: this.nodeId, term }, 'controller leader');
    }
    if (
      this.leaderTerm !== 0 &&
      this.planState === null &&
      this.appliedIndex >= this.leaderStartIndex
    ) {
      if (this.appliedState.clusterId === null) {
        this.maybeBootstrap();
        return;
      }
      this.planState = this.appliedState;
      // Rule 4a: every broker gets a full session from this leader's start.
      this.heardAt.clear();
      for (const id of this.appliedState.brokers.keys()) this.heardAt.set(id, this.clock);
      for (const w of this.loadWaiters.splice(0)) w.resolve();
    }
  }

  private maybeBootstrap(): void {
    if (this.bootstrapPending) return;
    try {
      const proposed = this.raft.propose(
        encodePlan(planBootstrap(this.appliedState, newClusterId(this.options.random))),
      );
      this.bootstrapPending = true;
      this.options.logger?.info({ index: proposed.index }, 'bootstrapping the cluster');
      this.options.notify?.();
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      // Not leader any more, or a transfer: the next leader bootstraps.
    }
  }

  private maybeFence(): void {
    if (this.fencePending || this.planState === null) return;
    const records = planFenceExpired(
      this.withHeartbeatsHeard(this.planState),
      this.clock,
      this.limits.sessionTicks,
    );
    if (records.length === 0) return;
    let proposed: { index: number; term: number };
    try {
      proposed = this.propose(records);
    } catch {
      return; // busy or not leader: the next tick tries again
    }
    this.fencePending = true;
    this.waitFor(proposed.index, proposed.term).then(
      () => {
        this.fencePending = false;
      },
      () => {
        this.fencePending = false;
      },
    );
  }

  /** `state` with each broker's last heartbeat as this leader heard it (rule 4a). */
  private withHeartbeatsHeard(state: MetadataState): MetadataState {
    let brokers: Map<number, BrokerState> | null = null;
    for (const b of state.brokers.values()) {
      const heard = this.heardAt.get(b.id);
      if (heard === undefined || heard <= b.lastHeartbeatTick) continue;
      brokers ??= new Map(state.brokers);
      brokers.set(b.id, { ...b, lastHeartbeatTick: heard });
    }
    return brokers === null ? state : { ...state, brokers };
  }

  /**
   * Rule 5: one registered broker outside the group's configuration becomes a learner; else,
   * below `votersTarget` voters, one live caught-up learner becomes a voter.
   */
  private maybeAddLearner(): void {
    const status = this.raft.status();
    const conf = status.conf;
    // A member decommissioned (an `unregister-broker` applied here) leaves the group: a learner
    // at once, a voter while the others still make the quorum the group needs now; never this
    // leader (it hands over first: cluster-node.ts). Only those: a voter of --peers that has
    // not registered yet is not in the registry either.
    // `departed` is in the state (and its snapshots), so a leader that learned the state from a
    // snapshot removes them too.
    const quorum = Math.floor(conf.voters.length / 2) + 1;
    const departed = this.appliedState.departed ?? [];
    if (departed.includes(this.nodeId) && !this.appliedState.brokers.has(this.nodeId)) {
      // This leader left the registry itself (it may have learned so from a snapshot): it hands
      // the role to a caught-up voter, which then removes it.
      const to = conf.voters.find(
        (id) => id !== this.nodeId && (status.progress.get(id)?.match ?? 0) >= status.commit,
      );
      if (to !== undefined) this.handOver(to, 'controller leader left the registry');
      return;
    }
    for (const id of [...conf.learners, ...conf.voters]) {
      if (!departed.includes(id) || this.appliedState.brokers.has(id)) continue;
      if (id === this.options.nodeId) continue;
      if (conf.voters.includes(id) && conf.voters.length - 1 < quorum) continue;
      this.proposeMembership({ type: 'remove', node: id }, '(removed: it left the registry)');
      return;
    }
    for (const id of this.appliedState.brokers.keys()) {
      if (conf.voters.includes(id as NodeId) || conf.learners.includes(id as NodeId)) continue;
      this.proposeMembership({ type: 'add-learner', node: id as NodeId }, 'as a learner');
      return;
    }
    const target = this.appliedState.controllerVoters;
    if (target !== undefined) {
      this.stepVoters(target, status);
      return;
    }
    if (conf.voters.length >= this.limits.votersTarget) return;
    for (const id of [...conf.learners].sort((a, b) => a - b)) {
      const broker = this.appliedState.brokers.get(id);
      const match = status.progress.get(id)?.match ?? 0;
      if (broker === undefined || broker.fenced || match < status.commit) continue;
      this.proposeMembership({ type: 'add-voter', node: id }, 'as a voter (a caught-up learner)');
      return;
    }
  }

  /** Rule 5: one step of moving the voters to the set recorded (controller-voters.ts). */
  private stepVoters(target: readonly number[], status: ReturnType<RaftNode['status']>): void {
    const step = nextVoterStep({
      self: this.nodeId,
      target,
      voters: status.conf.voters,
      learners: status.conf.learners,
      live: (id) => {
        const b = this.appliedState.brokers.get(id);
        return b !== undefined && !b.fenced;
      },
      caughtUp: (id) => (status.progress.get(id as NodeId)?.match ?? 0) >= status.commit,
    });
    switch (step.kind) {
      case 'none':
      case 'wait':
        return;
      case 'add-voter':
        this.proposeMembership(
          { type: 'add-voter', node: step.node as NodeId },
          'as a voter (the voters set)',
        );
        return;
      case 'remove':
        this.proposeMembership(
          { type: 'remove', node: step.node as NodeId },
          '(not in the voters set)',
        );
        return;
      case 'transfer':
        this.handOver(step.to, 'controller leader outside the voters set');
        return;
    }
  }

  /** Hands the controller role to `to`, once per election timeout (Raft abandons a stuck one). */
  private handOver(to: number, why: string): void {
    if (
      this.voterTransferAt >= 0 &&
      this.clock - this.voterTransferAt < this.limits.electionTicks
    ) {
      return;
    }
    this.voterTransferAt = this.clock;
    this.options.logger?.info({ to }, `${why}: handing the controller role over`);
    this.transferLeadership(to);
  }

  private proposeMembership(change: ConfChange, what: string): void {
    try {
      this.raft.proposeConfChange(change);
      this.options.logger?.info(
        { node: change.node },
        `metadata group membership: ${change.type} broker ${what}`,
      );
      this.options.notify?.();
    } catch (err) {
      // A change in progress (or leadership lost): a later tick tries again.
      if (!(err instanceof RaftError)) throw err;
    }
  }

  /** Hands the controller role to voter `to` (a Raft leader transfer); false when not leader. */
  transferLeadership(to: number): boolean {
    if (this.failure !== null || this.closed || !this.isLeader) return false;
    try {
      this.raft.transferLeadership(to as NodeId);
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      return false;
    }
    this.options.notify?.();
    return true;
  }

  private expireWaiters(): void {
    const timedOut = (deadline: number) => deadline <= this.ticks;
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const w = this.waiters[i]!;
      if (!timedOut(w.deadlineTick)) continue;
      this.waiters.splice(i, 1);
      w.reject(
        new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          'the controller request was not applied in time',
        ),
      );
    }
    for (let i = this.loadWaiters.length - 1; i >= 0; i--) {
      const w = this.loadWaiters[i]!;
      if (!timedOut(w.deadlineTick)) continue;
      this.loadWaiters.splice(i, 1);
      w.reject(
        new StreamBusError(ErrorCode.REQUEST_TIMED_OUT, 'the controller did not load in time'),
      );
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const { snapshotEveryEntries, snapshotEveryBytes } = this.limits;
    const pendingEntries = this.appliedIndex - this.store.snapshotMeta().index;
    if (pendingEntries <= 0) return;
    if (pendingEntries < snapshotEveryEntries && this.store.entryBytes < snapshotEveryBytes) return;
    // After a reopen (rule 7), not until the new node is past the entries it hands out again:
    // compacting them away would leave it asking the store for entries it no longer has.
    if (this.raft.status().applied < this.appliedIndex) return;
    const index = this.appliedIndex as LogIndex;
    this.counters.snapshotsTaken++;
    await this.store.createSnapshot(
      index,
      this.raft.confStateAt(index),
      encodeSnapshot(this.appliedState),
    );
  }

  private failAll(err: Error): void {
    for (const w of this.waiters.splice(0)) w.reject(err);
    for (const w of this.loadWaiters.splice(0)) w.reject(err);
  }

  private goOffline(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    this.failedAtTick = this.ticks;
    this.options.logger?.error(
      { err },
      `metadata log failed: the controller group is offline, reopening it every ${this.limits.recoveryTicks} ticks`,
    );
    this.planState = null;
    this.leaderTerm = 0;
    this.failAll(this.offlineError());
  }

  /**
   * Rule 7: reopens the log from disk and starts a new Raft node over it; on failure the group
   * stays offline (with the new reason) and a later tick tries again.
   */
  private recover(): void {
    const round = this.reopen().then(
      () => {},
      (err: Error) => {
        this.failure = err;
        this.failedAtTick = this.ticks;
        this.options.logger?.warn({ err }, 'metadata log still offline: the reopen failed');
      },
    );
    this.recovering = round.finally(() => {
      this.recovering = null;
    });
  }

  private async reopen(): Promise<void> {
    // A process() round in flight when the write failed has ended (goOffline ran in it).
    await this.store.abandon();
    const store = await MetadataLogStore.open(this.options.fs, this.options.dir, this.initialConf);
    if (this.closed) {
      await store.close();
      return;
    }
    this.store = store;
    this.raft = this.newRaft(store);
    const snap = store.snapshotMeta();
    // A leader's snapshot installed durably by the round that then failed was not applied.
    if (snap.index > this.appliedIndex) this.installSnapshot(store.snapshot().data, snap.index);
    this.failure = null;
    this.counters.recoveries++;
    this.options.logger?.info(
      { applied: this.appliedIndex, lastIndex: store.lastIndex() },
      'metadata log reopened after its failure: the controller group is back',
    );
    this.options.notify?.();
  }

  /** Stops the group: pending requests fail SHUTTING_DOWN; the log is closed. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new StreamBusError(ErrorCode.SHUTTING_DOWN, 'the controller is closing'));
    // A process() in flight finishes its write first (it checks `closed` after it).
    if (this.processing !== null) await this.processing;
    if (this.recovering !== null) await this.recovering;
    if (this.failure !== null) await this.store.abandon();
    else await this.store.close();
  }
}

function requirePartition(state: MetadataState, topic: string, partition: number): PartitionState {
  const p = topicByName(state, topic)?.partitions[partition];
  if (p === undefined) {
    throw new StreamBusError(
      ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
      `partition ${topic}/${partition} was deleted meanwhile`,
    );
  }
  return p;
}

function requireTopic(state: MetadataState, name: string): TopicState {
  const t = topicByName(state, name);
  if (t === undefined) {
    throw new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `topic ${name} is gone`);
  }
  return t;
}
