// The broker's part in a replicated cluster (issue 9): it wires the pieces built in cluster/,
// controller/ and replication/ into one broker and keeps the partitions this broker holds in step
// with the controller's applied metadata state.
//
//   PeerLinks         one TCP link per broker pair (sockets handed over by the native listener)
//   RaftGroupHost     one tick timer for the metadata group and every partition replica
//   ControllerNode    the metadata Raft group: voters = the `--peers` ids, or [self] (a cluster
//                     of one runs this same code); every broker applies the log
//   ControllerClient  admin requests from any broker go to the controller leader (forwarded)
//   BrokerLifecycle   registration and heartbeats, on the host's tick (one timer per broker)
//
// Reactions to applied records (never inline in an admin request): each applied step of the
// metadata log schedules one reconciliation in the admin queue, which diffs the last reconciled
// state against the newest (cluster-view.ts `planReplicas`) and opens, closes (deleting the data
// of) or reconfigures this broker's replicas. Steps that arrive while one is queued are folded
// into it, so the queue holds at most one reconciliation.
//
// Leadership: a partition's leader is its Raft group's leader. A replica that becomes leader,
// or whose in-sync set changes, reports it to the controller (IsrChange, one report in flight
// per partition), so Metadata answers, which come from the applied state on every broker, name
// the new leader; clients that reach a stale leader get NOT_LEADER_OR_FOLLOWER and refresh.
//
// Data directory: `<dataDir>/__cluster_metadata` (the metadata log), `<dataDir>/topics/<topic
// id>/<partition>` (one replica: its segment log and Raft files), `node-identity.properties`
// (which cluster and node the directory belongs to: checked before anything opens, recorded once
// the cluster id is known). A directory holding the single-node store (`metadata.json`) is
// imported in place first when this broker is a cluster of one, refused otherwise
// (replication/single-node-import.ts). A broker without --peers runs this same code as a cluster
// of one: it is the only voter, and its replicas have one voter each.
import { randomInt, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  type DescribeClusterResponse,
  ErrorCode,
  type MetadataResponse,
  StreamBusError,
} from '@streambus/protocol';
import { type NodeId, seededRandom } from '@streambus/raft';
import { type FileSystem, removeTree } from '@streambus/storage';
import type { Logger } from 'pino';
import type { AdminQueue } from './admin-queue.js';
import { ByteBudget } from './byte-budget.js';
import { type GroupKey, METADATA_GROUP, type RaftTransport } from './cluster/contract.js';
import { RaftGroupHost } from './cluster/group-host.js';
import { type PeerAddress, PeerLinks } from './cluster/peer-links.js';
import {
  describeClusterFromState,
  type HeldReplica,
  heldReplicas,
  metadataFromState,
  planReplicas,
  type RaftLeaderView,
  withRaftLeaders,
} from './cluster-view.js';
import type { BrokerConfig, HostPort } from './config.js';
import { BrokerLifecycle } from './controller/broker-lifecycle.js';
import { ControllerNode } from './controller/controller-node.js';
import type { PreferredLeaderMove } from './controller/controller-planner.js';
import {
  ControllerClient,
  ControllerRpcServer,
  isControllerRpcKind,
} from './controller/controller-rpc.js';
import type { ConfigEntry } from './controller/metadata-records.js';
import {
  EMPTY_METADATA_STATE,
  type MetadataState,
  partitionsListing,
  partitionsOfBroker,
  topicByName,
} from './controller/metadata-state.js';
import { bindNodeIdentity, ensureNodeIdentity } from './controller/node-identity.js';
import { nextReassignmentStep } from './controller/reassignment.js';
import { GroupCoordinator } from './groups/coordinator.js';
import { isInternalTopic, OFFSETS_TOPIC } from './groups/offsets-topic.js';
import { LeaderReports, REPORT_RETRY_TICKS, reportKeysTouched } from './leader-reports.js';
import { removeDeletedTopicDirs } from './leftover-replica-dirs.js';
import type { LogCompaction } from './log-compaction.js';
import type { ClusterMetricsView } from './metrics.js';
import {
  ALL_BROKERS,
  applyDynamicConfig,
  type EffectiveEntry,
  effectiveDynamicConfig,
  staticDynamicValues,
} from './ops/dynamic-config.js';
import {
  BALANCE_LEADERS_KIND,
  type HandOffResult,
  type HeldLeadership,
  LeadershipOps,
} from './ops/leadership.js';
import { setProcessLogLevel } from './ops/log-level.js';
import { type ClusterReadiness, clusterReadiness } from './ops/readiness.js';
import { ReassignmentThrottle, throttledTransport } from './ops/reassignment-throttle.js';
import type { ReplicaManager } from './replica-manager.js';
import {
  logConfigChanged,
  type ReplicaSource,
  ReplicatedPartition,
} from './replicated-partition.js';
import { PartitionReplica } from './replication/partition-replica.js';
import { importSingleNodeStore } from './replication/single-node-import.js';
import { partitionLogConfig } from './storage-log.js';
import { resolveTopicConfig, type TopicConfig } from './topic-config.js';

/** Milliseconds per Raft tick (election after ~10 ticks, heartbeats every tick). */
export const CLUSTER_TICK_MS = 100;
/** Producer ids taken from the controller at once. */
const PRODUCER_ID_BLOCK = 1000;
/** How long an admin request waits for this broker to apply what the controller committed. */
const APPLY_WAIT_MS_MAX = 10_000;
/** How long a topic create waits for its partitions' first elected leaders. */
const ELECTED_WAIT_MS_MAX = 5_000;
/**
 * House ticks after a new partition's preferred replica opened before it campaigns: its peers
 * have opened the group by then (they apply the same metadata record), and the election
 * timeout (10+ ticks) of the others has not run out.
 */
const FRESH_CAMPAIGN_TICKS = 2;
/** How long one broker may take to answer a balance-leaders request. */
const BALANCE_CALL_MS_MAX = 5_000;
export const METADATA_DIR = '__cluster_metadata';

export interface ClusterNodeOptions {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly fs: FileSystem;
  readonly replicas: ReplicaManager;
  readonly admin: AdminQueue;
  readonly tickMs?: number;
  /** The log cleaner's scheduler: every held replica is registered with it (log-compaction.ts). */
  readonly compaction?: LogCompaction | null;
}

/** The voter ids: `--peers`, or this broker alone. */
export function votersOf(config: BrokerConfig): number[] {
  return config.peers.length === 0 ? [config.nodeId] : config.peers.map((p) => p.id);
}

/**
 * Which store a data directory holds decides whether this broker may open it. A single-node
 * directory (metadata.json, written by brokers before the single code path) reaches here only
 * when it was not imported (`importSingleNodeStore` runs first for a cluster of one and renames
 * metadata.json), so here it is refused, naming the way out (INVALID_CONFIG). Every broker opens
 * with `clusterMode` true (there is one code path); the other branch refuses a cluster directory
 * to a caller that cannot serve it.
 */
export async function checkDataDirKind(
  fs: FileSystem,
  dataDir: string,
  clusterMode: boolean,
): Promise<void> {
  const names = await fs.readdir(dataDir);
  if (clusterMode && names.includes('metadata.json') && !names.includes(METADATA_DIR)) {
    throw new StreamBusError(
      ErrorCode.INVALID_CONFIG,
      `data directory ${dataDir} holds a single-node StreamBus store (metadata.json) that was ` +
        'not imported; start this broker alone (no --peers) once to import it in place',
    );
  }
  if (!clusterMode && names.includes(METADATA_DIR)) {
    throw new StreamBusError(
      ErrorCode.INVALID_CONFIG,
      `data directory ${dataDir} belongs to a replicated cluster (${METADATA_DIR}); start this ` +
        'broker with its --node-id and the same --peers as before',
    );
  }
}

function overridesOf(configs: readonly ConfigEntry[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of configs) out[e.key] = e.value;
  return out;
}

export class ClusterNode {
  readonly voters: number[];
  private readonly o: ClusterNodeOptions;
  private readonly self: number;
  readonly links: PeerLinks;
  readonly host: RaftGroupHost;
  /** The group coordinator on the `__consumer_offsets` partitions this broker leads. */
  readonly groups: GroupCoordinator;
  /** Bytes proposed on this broker's leaders and not yet committed (partition-replica.ts). */
  readonly uncommittedBudget: ByteBudget;
  private controller!: ControllerNode;
  private server!: ControllerRpcServer;
  private client!: ControllerClient;
  private lifecycle: BrokerLifecycle | null = null;
  private housekeeping: (() => void) | null = null;
  /** Brokers seen fenced (and this broker's own view) at the last house tick: see `wakeOnFence`. */
  private fencedSeen = new Set<number>();
  private selfFencedSeen = true;
  private reconciled: MetadataState = EMPTY_METADATA_STATE;
  /** The topic ids and count of the last sweep of deleted topics' directories (null: none). */
  private leftoversSwept: { topicIdNext: number; topics: number } | null = null;
  private reconcileQueued = false;
  private readonly held = new Map<string, ReplicatedPartition>();
  /** The partition leaders' reports to the controller (leader-reports.ts). */
  private readonly reports: LeaderReports;
  private houseTicks = 0;
  /** The house tick of the next periodic balance round (0: not yet set). */
  private nextBalanceTick = 0;
  /** Partitions whose reassignment step is in flight here (at most one each). */
  private readonly reassignSteps = new Set<string>();
  /** Partitions whose leader asked for a reassignment hand-over, and the house tick it did. */
  private readonly reassignTransferTick = new Map<string, number>();
  /** Each open partition replica's key in `held` (the host names groups, not keys: onActive). */
  private readonly replicaKeys = new WeakMap<object, string>();
  /** Held partitions the applied state lists a reassignment for; null: recompute (a change). */
  private reassigning: string[] | null = null;
  /**
   * New partitions' preferred replicas (replicas[0]) opened here, and the house tick they opened
   * at: each campaigns `FRESH_CAMPAIGN_TICKS` later unless an election began meanwhile.
   */
  private readonly freshPreferred = new Map<PartitionReplica, number>();
  /** Per held partition, the term in which its replica here last became leader, and when. */
  private readonly leaderSince = new Map<string, { term: number; atMs: number }>();
  /** Times a replica here became leader (metrics). */
  private leaderElections = 0;
  /** A controlled shutdown began: no balancing, /ready false. */
  private draining = false;
  private producerIds = { next: 0, end: 0 };
  private producerIdsRefill: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private identity: Promise<unknown> | null = null;
  private closed = false;
  private readonly random = seededRandom(randomInt(2 ** 31));
  /** Leadership hand-over (controlled shutdown) and preferred-leader balancing (ops/). */
  private readonly leadership: LeadershipOps;
  /** Catch-up traffic to replicas joining by reassignment, under its bytes/s budget. */
  readonly reassignmentThrottle: ReassignmentThrottle;
  private readonly replicaTransport: RaftTransport;
  /** The dynamic settings' values this process started with (ops/dynamic-config.ts). */
  private readonly staticDynamic: ReadonlyMap<string, unknown>;

  private constructor(o: ClusterNodeOptions) {
    this.o = o;
    this.self = o.config.nodeId;
    this.voters = votersOf(o.config);
    const peers = new Map<NodeId, PeerAddress>();
    for (const p of o.config.peers) peers.set(p.id as NodeId, { host: p.host, port: p.port });
    this.links = new PeerLinks({
      self: this.self as NodeId,
      peers,
      logger: o.logger,
      // A broker that is not a voter joins by registering: its link must be accepted first.
      admitUnknownPeer: () => true,
    });
    this.uncommittedBudget = new ByteBudget(
      'uncommitted replication',
      o.config.limits.replicationUncommittedBytesMax,
    );
    this.staticDynamic = staticDynamicValues(o.config);
    this.reassignmentThrottle = new ReassignmentThrottle({
      bytesPerSecond: () => this.o.config.reassignmentBytesPerSecond,
      throttled: (group, to) =>
        this.state.topics
          .get(group.topicId)
          ?.partitions[group.partition]?.reassignment?.adding.includes(to) === true,
      send: (group, messages) => this.links.send(group, messages),
      nowMs: () => Date.now(),
    });
    this.replicaTransport = throttledTransport(this.links, this.reassignmentThrottle);
    this.host = new RaftGroupHost({
      transport: this.links,
      tickIntervalMs: o.tickMs ?? CLUSTER_TICK_MS,
      logger: o.logger,
    });
    this.groups = new GroupCoordinator({
      host: {
        nodeId: this.self,
        metadata: () => this.state,
        createTopic: (name, partitions, rf, configs) =>
          this.createTopic(name, partitions, rf, configs),
      },
      config: o.config.groups,
      dataDir: o.config.dataDir,
      fs: o.fs,
      logger: o.logger,
    });
    this.reports = new LeaderReports({
      self: this.self,
      state: () => this.state,
      changeIsr: (report) => this.client.changeIsr(report),
      onFailed: (topic, partition, err) =>
        o.logger.debug({ err, topic, partition }, 'ISR report failed'),
    });
    // Idle cost (leader-reports.ts rule 7): only replicas whose group has work, changed or was
    // opened are evaluated on a house tick, not every replica held.
    this.host.onActive((g) => {
      const k = this.replicaKeys.get(g);
      if (k !== undefined) this.reports.markDirty(k);
    });
    this.leadership = new LeadershipOps({
      self: this.self,
      state: () => this.state,
      held: () => this.heldLeaderships(),
      controller: () => ({
        isLeader: this.controller.isLeader,
        // Only voters a link reaches: one that has stopped is live in the state until its
        // session ends, and a hand-over to it waits out the whole shutdown deadline.
        voters: this.controller.conf.voters.filter(
          (id) => id === this.self || this.links.isConnected(id as NodeId),
        ),
        transferLeadership: (to) => this.controller.transferLeadership(to),
      }),
      balanceOn: (id) =>
        this.links
          .request(id as NodeId, BALANCE_LEADERS_KIND, new Uint8Array(0), BALANCE_CALL_MS_MAX)
          .then((b) => (b.length === 4 ? Buffer.from(b).readUInt32BE(0) : 0)),
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      now: () => Date.now(),
    });
  }

  /** Opens the metadata log and the controller; nothing is served until `start`. */
  static async open(o: ClusterNodeOptions): Promise<ClusterNode> {
    await importSingleNodeStore({ fs: o.fs, config: o.config, logger: o.logger });
    await checkDataDirKind(o.fs, o.config.dataDir, true);
    // A directory of another node id is refused before anything in it is read.
    await ensureNodeIdentity(o.fs, o.config.dataDir, { clusterId: null, nodeId: o.config.nodeId });
    const node = new ClusterNode(o);
    try {
      node.controller = await ControllerNode.open({
        nodeId: node.self,
        voters: node.voters,
        fs: o.fs,
        dir: join(o.config.dataDir, METADATA_DIR),
        transport: node.links,
        random: node.random,
        notify: () => node.host.notify(METADATA_GROUP),
        logger: o.logger,
      });
    } catch (err) {
      await node.host.close();
      await node.links.close();
      throw err;
    }
    node.server = new ControllerRpcServer(node.controller);
    node.client = new ControllerClient({
      self: node.self,
      voters: node.voters,
      transport: node.links,
      local: node.server,
      random: node.random,
      // Learners promoted to voters (controller-node.ts rule 5) are asked too.
      votersNow: () => node.controller.conf.voters,
    });
    node.links.setRequestHandler((from, kind, body) => {
      if (kind === BALANCE_LEADERS_KIND) {
        const out = Buffer.alloc(4);
        // A broker shutting down hands leaderships away, never takes part in balancing.
        out.writeUInt32BE(node.closed || node.draining ? 0 : node.leadership.balance());
        return Promise.resolve(new Uint8Array(out));
      }
      if (!isControllerRpcKind(kind)) {
        return Promise.reject(
          new StreamBusError(ErrorCode.INVALID_REQUEST, `unknown peer request kind ${kind}`),
        );
      }
      return node.server.handle(from, kind, body);
    });
    return node;
  }

  get state(): MetadataState {
    return this.controller.state;
  }

  get controllerId(): number {
    return this.controller.leaderId;
  }

  /**
   * Serving: the native listener is up at `address` (and the Kafka one advertises `kafka`, null
   * for none). Registers both addresses, opens held replicas.
   */
  async start(address: HostPort, kafka: HostPort | null = null): Promise<void> {
    const { config, logger } = this.o;
    this.identity = bindNodeIdentity(this.controller, this.o.fs, config.dataDir, this.self).then(
      (id) => this.links.setClusterId(id.clusterId),
      (err: unknown) => {
        logger.error({ err }, 'this data directory belongs to another cluster or node');
        throw err;
      },
    );
    this.identity.catch(() => undefined);
    this.applyBrokerConfig();
    this.unsubscribe = this.controller.onApplied((_, records) => {
      this.scheduleReconcile();
      // Leader reports look again where the state changed (leader-reports.ts rule 7).
      const touched = reportKeysTouched(records);
      if (touched === 'all') {
        this.reports.markAllDirty();
        this.reassigning = null;
      } else {
        for (const k of touched) this.reports.markDirty(k);
        if (touched.length > 0) this.reassigning = null;
      }
      // records = [] after a snapshot install: anything may have changed.
      if (records.length === 0 || records.some((r) => r.type === 'alter-broker-config')) {
        this.applyBrokerConfig();
      }
      if (records.some((r) => r.type === 'unregister-broker' && r.brokerId === this.self)) {
        this.onDecommissioned();
      }
    });
    this.host.add(this.controller);
    this.scheduleReconcile();
    this.lifecycle = new BrokerLifecycle({
      brokerId: this.self,
      host: address.host,
      port: address.port,
      kafka,
      incarnation: randomUUID(),
      client: this.client,
      onError: (err) => logger.debug({ err }, 'broker registration or heartbeat failed'),
    });
    this.housekeeping = this.host.onTick(() => this.houseTick());
    void this.lifecycle.start();
  }

  /** Resolves once this broker is registered and unfenced, or after `timeoutMs` (false). */
  async waitRegistered(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.closed) {
      if (this.lifecycle !== null && !this.lifecycle.fenced) return true;
      await new Promise((r) => setTimeout(r, 20));
    }
    return false;
  }

  /**
   * A cluster of one at start: waits (bounded) until the metadata names this broker leader of
   * every partition whose replica here is open, so Metadata right after a start or restart
   * routes clients to it rather than answering LEADER_NOT_AVAILABLE for a second. False on
   * timeout (the partitions then serve once their reports apply, as on a larger cluster).
   */
  async waitLeading(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !this.closed) {
      const pending = [...this.held.values()].some((p) => {
        if (p.replica === null || p.offline !== null) return false;
        const t = topicByName(this.state, p.topic);
        return t !== undefined && t.partitions[p.index]?.leader !== this.self;
      });
      if (!pending) return true;
      await new Promise((r) => setTimeout(r, 10));
    }
    return false;
  }

  private houseTick(): void {
    this.houseTicks++;
    this.reports.tick();
    this.lifecycle?.tick();
    this.links.keepalive();
    this.wakeOnFence();
    this.reports.reportDirty(
      (k) => {
        const p = this.held.get(k);
        const r = p?.replica;
        return p === undefined || r === null || r === undefined
          ? undefined
          : { topic: p.topic, partition: p.index, replica: r };
      },
      () => this.held.keys(),
    );
    for (const [r, at] of this.freshPreferred) {
      if (this.houseTicks - at < FRESH_CAMPAIGN_TICKS) continue;
      this.freshPreferred.delete(r);
      r.campaignIfUnelected();
    }
    for (const k of this.reassigningHeld()) {
      const p = this.held.get(k);
      if (p !== undefined) this.driveReassignment(k, p);
    }
    this.reassignmentThrottle.pump();
    this.groups.tick();
    // Preferred-leader balancing (leaderBalance.intervalMs, 0 = off), not while shutting down.
    const balanceTicks = Math.ceil(
      this.o.config.leaderBalance.intervalMs / (this.o.tickMs ?? CLUSTER_TICK_MS),
    );
    // A shorter interval set at run time (dynamic config) takes effect at once.
    if (balanceTicks > 0) {
      this.nextBalanceTick = Math.min(
        this.nextBalanceTick === 0 ? balanceTicks : this.nextBalanceTick,
        this.houseTicks + balanceTicks,
      );
    }
    if (balanceTicks > 0 && !this.draining && this.houseTicks >= this.nextBalanceTick) {
      const n = this.leadership.balance(true);
      // ops/leadership.ts rule 5: moves left for later get a round soon, not a whole interval on.
      const soonTicks = Math.ceil(
        this.leadership.balanceLedForMsMin / (this.o.tickMs ?? CLUSTER_TICK_MS),
      );
      this.nextBalanceTick =
        this.houseTicks +
        (this.leadership.lastRoundDeferred ? Math.min(balanceTicks, soonTicks) : balanceTicks);
      if (n > 0) this.o.logger.info({ transfers: n }, 'preferred-leader balancing');
    }
  }

  // ---- operations: controlled shutdown, leader balancing, readiness (ops/) --------------------

  /**
   * The held partitions with a reassignment in the applied state, recomputed only after the
   * state or the held set changed (an idle house tick scans nothing: issue 9).
   */
  private reassigningHeld(): readonly string[] {
    if (this.reassigning !== null) return this.reassigning;
    const out: string[] = [];
    for (const [k, p] of this.held) {
      if (topicByName(this.state, p.topic)?.partitions[p.index]?.reassignment !== undefined) {
        out.push(k);
      }
    }
    this.reassigning = out;
    return out;
  }

  /** How long the replica of `k` has led in its current term (ms), undefined when unknown. */
  private ledForMs(k: string, r: PartitionReplica): number | undefined {
    const since = this.leaderSince.get(k);
    if (r.role !== 'leader' || since === undefined || since.term !== r.leaderEpoch)
      return undefined;
    return Date.now() - since.atMs;
  }

  private heldLeaderships(): HeldLeadership[] {
    // A partition offline for want of a replica (or reopening) leads nothing: not listed.
    return [...this.held]
      .flatMap(([k, p]) => {
        const r = p.replica;
        return r === null ? [] : [{ k, p, r }];
      })
      .map(({ k, p, r }) => ({
        topic: p.topic,
        partition: p.index,
        isLeader: r.role === 'leader',
        inSync: r.role === 'leader' ? r.inSyncReplicas() : [],
        // A getter: only a hand-over reads it (replicaLag copies the Raft progress).
        get caughtUp() {
          return r
            .replicaLag()
            .filter((l) => l.ticksBehind === 0)
            .map((l) => l.id);
        },
        ledForMs: this.ledForMs(k, r),
        // A replica that stopped leading, closed or went offline meanwhile refuses: skipped (the
        // hand-over and the balancer look again on their next round).
        transferLeadership: (to) => {
          try {
            r.transferLeadership(to);
          } catch (err) {
            this.o.logger.debug(
              { err, topic: p.topic, partition: p.index, to },
              'leader transfer refused',
            );
          }
        },
      }));
  }

  /**
   * A controlled shutdown's cluster part (SIGTERM): no more balancing; every partition this
   * broker leads, and the controller role, handed to in-sync replicas (at most until
   * `deadlineMs`, Date.now clock); heartbeats stopped; the controller told, so it fences this
   * broker now rather than after its session. A broker with no live peer (a cluster of one)
   * skips the last step. Never rejects: what could not be done is in the result.
   */
  async prepareShutdown(
    deadlineMs: number,
  ): Promise<HandOffResult & { readonly deregistered: boolean }> {
    this.draining = true;
    const handed = await this.leadership.handOff(deadlineMs);
    // Live: registered, not fenced, and its peer link up. The last broker of a cluster that is
    // stopping has none: it neither waits for a registration or heartbeat in flight (the
    // controller client retries one for some 15 s) nor tells a controller quorum that has gone.
    const others = [...this.state.brokers.values()].some(
      (b) => b.id !== this.self && !b.fenced && this.links.isConnected(b.id as NodeId),
    );
    const stopping = this.lifecycle?.stop();
    if (others) await stopping;
    const epoch = this.lifecycle?.brokerEpoch ?? null;
    let deregistered = false;
    if (epoch !== null && others && !this.closed) {
      const left = Math.max(0, deadlineMs - Date.now());
      let timer: NodeJS.Timeout | undefined;
      deregistered = await Promise.race([
        this.client.controlledShutdown({ brokerId: this.self, brokerEpoch: epoch }).then(
          () => true,
          (err: unknown) => {
            this.o.logger.warn({ err }, 'controlled shutdown: the controller was not told');
            return false;
          },
        ),
        new Promise<boolean>((r) => {
          timer = setTimeout(() => r(false), left);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return { ...handed, deregistered };
  }

  /** `topic/partition` of every partition this broker's replica leads now. */
  ledPartitions(): string[] {
    return this.heldLeaderships()
      .filter((h) => h.isLeader)
      .map((h) => `${h.topic}/${h.partition}`);
  }

  /** On demand (RebalanceLeaders): a balance round on every live broker, then the outcome. */
  rebalanceLeaders(
    waitMs: number,
  ): Promise<{ transfersStarted: number; remaining: PreferredLeaderMove[] }> {
    return this.leadership.balanceCluster(waitMs);
  }

  /** What the cluster metrics read at scrape time (metrics.ts registerClusterMetrics). */
  metricsView(): ClusterMetricsView {
    const tickSeconds = (this.o.tickMs ?? CLUSTER_TICK_MS) / 1000;
    const state = this.state;
    let leaderless = 0;
    for (const t of state.topics.values())
      for (const p of t.partitions) if (p.leader === -1) leaderless++;
    let fenced = 0;
    for (const b of state.brokers.values()) if (b.fenced) fenced++;
    return {
      replicas: [...this.held.values()].flatMap((p) => {
        const r = p.replica;
        if (r === null) return [];
        const leading = r.role === 'leader';
        return [
          {
            topic: p.topic,
            partition: p.index,
            role: r.role,
            uncommittedRecords: Math.max(0, r.logEndOffset - r.highWatermark),
            isrSize: leading ? r.inSyncReplicas().length : 0,
            replicaCount: topicByName(state, p.topic)?.partitions[p.index]?.replicas.length ?? 0,
            lag: r.replicaLag().map((l) => ({
              id: l.id,
              entries: l.entriesBehind,
              seconds: l.ticksBehind * tickSeconds,
            })),
            fsyncs: r.partitionLog.syncCount,
          },
        ];
      }),
      leaderElections: this.leaderElections,
      leaderlessPartitions: leaderless,
      controllerId: this.controllerId > 0 ? this.controllerId : -1,
      isController: this.controller.isLeader,
      metadataAppliedIndex: this.controller.applied,
      metadataCaughtUp: this.controller.caughtUp,
      brokersLive: state.brokers.size - fenced,
      brokersFenced: fenced,
      peers: [...this.links.peerTraffic()].map(([peer, t]) => ({ peer, ...t })),
    };
  }

  /**
   * Per-tick work counters (issue 9: an idle broker's house tick must cost O(changed), not
   * O(replicas held)): house ticks so far, partitions the leader reports evaluated so far, Raft
   * group ticks so far (group-host.ts rule 5), the replicas held and how many are quiesced now.
   */
  idleCost(): {
    houseTicks: number;
    reportsEvaluated: number;
    groupTicks: number;
    held: number;
    quiesced: number;
  } {
    let quiesced = 0;
    for (const p of this.held.values()) if (p.replica?.quiesced === true) quiesced++;
    return {
      houseTicks: this.houseTicks,
      groupTicks: this.host.stats().groupTicks,
      reportsEvaluated: this.reports.evaluated,
      held: this.held.size,
      quiesced,
    };
  }

  /** The conditions of /ready on the cluster path (ops/readiness.ts). */
  readiness(): ClusterReadiness {
    return clusterReadiness({
      self: this.self,
      state: this.state,
      registered: this.lifecycle !== null && !this.lifecycle.fenced,
      metadataCaughtUp: this.controller.caughtUp,
      metadataLogOffline: this.controller.offline?.message ?? null,
      assignedOpen: partitionsOfBroker(this.state, this.self).filter((b) =>
        this.held.has(this.keyOf({ topicId: b.topicId, partition: b.partition })),
      ).length,
      held: [...this.held.values()].flatMap((p) =>
        p.replica === null ? [] : [{ role: p.replica.role }],
      ),
      draining: this.draining,
    });
  }

  /**
   * Quiesced groups (docs/raft.md) wake when a peer's broker loses its liveness: a broker the
   * controller fenced is reported unreachable to every group (a quiesced follower whose leader
   * it was then campaigns), and when this broker counts itself fenced every peer is (its
   * leaders resume heartbeats, so check-quorum steps down a leader cut off from its majority).
   */
  private wakeOnFence(): void {
    const fenced = new Set<number>();
    for (const b of this.state.brokers.values()) if (b.fenced) fenced.add(b.id);
    for (const id of fenced) {
      if (!this.fencedSeen.has(id) && id !== this.self) this.host.reportUnreachable(id as NodeId);
    }
    this.fencedSeen = fenced;
    const selfFenced = this.lifecycle?.fenced ?? true;
    if (selfFenced && !this.selfFencedSeen) {
      for (const b of this.state.brokers.values()) {
        if (b.id !== this.self) this.host.reportUnreachable(b.id as NodeId);
      }
    }
    this.selfFencedSeen = selfFenced;
  }

  // ---- admin, forwarded to the controller leader ----------------------------------------------

  async createTopic(
    name: string,
    partitions: number,
    replicationFactor: number,
    configs: Readonly<Record<string, string>>,
  ): Promise<void> {
    await this.client.createTopic({ name, partitions, replicationFactor, configs });
    await this.waitApplied((s) => topicByName(s, name) !== undefined);
    // This broker's reaction (opening the replicas it holds) runs in the admin queue: once it
    // is done, a request here right after the create finds its partitions.
    await this.o.admin.idle();
    // Answer once every partition's Raft group has elected a leader and reported it (its epoch
    // leaves the creation's 0), so a describe or produce right after the create finds leaders
    // instead of a second of NOT_LEADER_OR_FOLLOWER. Bounded: the topic exists either way, and
    // a group without a live majority elects nobody (its clients then retry as usual).
    // A partition whose replica here is offline elects nobody: not waited for.
    await this.waitApplied((s) => {
      const t = topicByName(s, name);
      return (
        t?.partitions.every(
          (p, i) =>
            p.leaderEpoch > 0 ||
            this.held.get(this.keyOf({ topicId: t.id, partition: i }))?.offline != null,
        ) !== false
      );
    }, ELECTED_WAIT_MS_MAX).catch(() => undefined);
  }

  /**
   * CreatePartitions (controller/add-partitions.ts): `name` grows to `count` partitions. Answers
   * as createTopic does: once this broker applied it and opened the replicas it holds, and the
   * new partitions elected leaders (bounded).
   */
  async addPartitions(
    name: string,
    count: number,
    assignments: readonly (readonly number[])[] | null,
  ): Promise<void> {
    const topicId = (await this.client.addPartitions({ name, count, assignments })).id;
    const grown = (s: MetadataState) => {
      const t = s.topics.get(topicId);
      return t === undefined || t.partitions.length >= count;
    };
    await this.waitApplied(grown);
    await this.o.admin.idle();
    await this.waitApplied((s) => {
      const t = s.topics.get(topicId);
      return (
        t?.partitions.every(
          (p, i) =>
            p.leaderEpoch > 0 ||
            this.held.get(this.keyOf({ topicId, partition: i }))?.offline != null,
        ) !== false
      );
    }, ELECTED_WAIT_MS_MAX).catch(() => undefined);
  }

  async deleteTopic(name: string): Promise<void> {
    if (topicByName(this.state, name) === undefined) {
      throw new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic ${name}`);
    }
    await this.client.deleteTopic(name);
    await this.waitApplied((s) => topicByName(s, name) === undefined);
  }

  async alterTopicConfig(
    name: string,
    changes: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    const after = JSON.stringify((await this.client.alterTopicConfig(name, changes)).configs);
    await this.waitApplied((s) => JSON.stringify(topicByName(s, name)?.configs) === after);
  }

  /** One producer id from this broker's block (a new block from the controller when spent). */
  async allocateProducerId(): Promise<number> {
    while (this.producerIds.next >= this.producerIds.end) {
      this.producerIdsRefill ??= this.client
        .allocateProducerIds(PRODUCER_ID_BLOCK)
        .then((b) => {
          this.producerIds = { next: b.firstProducerId, end: b.firstProducerId + b.count };
        })
        .finally(() => {
          this.producerIdsRefill = null;
        });
      await this.producerIdsRefill;
    }
    return this.producerIds.next++;
  }

  /** The topic config a topic of the state has on this broker (broker defaults + overrides). */
  topicConfig(configs: readonly ConfigEntry[]): TopicConfig {
    const { config } = this.o;
    return resolveTopicConfig(config.defaults, overridesOf(configs), config.limits.frameBytesMax);
  }

  metadata(names: readonly string[] | null): MetadataResponse {
    const answer = withRaftLeaders(
      metadataFromState(this.state, names, this.controllerId > 0 ? this.controllerId : -1),
      this.state,
      (topicId, partition) => this.raftLeaderHere(topicId, partition),
    );
    // Internal topics (the group coordinator's) are listed only when asked for by name.
    if (names !== null) return answer;
    return { ...answer, topics: answer.topics.filter((t) => !isInternalTopic(t.name)) };
  }

  /** What the replica here knows of a partition's Raft leader (cluster-view.ts withRaftLeaders). */
  private raftLeaderHere(topicId: number, partition: number): RaftLeaderView | null {
    const p = this.held.get(this.keyOf({ topicId, partition }));
    const r = p?.replica ?? null;
    if (r === null || p?.offline !== null || r.offlineError !== null) return null;
    if (r.role === 'leader') {
      return r.termCommitted ? { leaderId: this.self, leaderEpoch: r.leaderEpoch } : null;
    }
    return r.leaderId > 0 ? { leaderId: r.leaderId, leaderEpoch: r.leaderEpoch } : null;
  }

  describeCluster(): DescribeClusterResponse {
    return describeClusterFromState(
      this.state,
      this.controllerId > 0 ? this.controllerId : -1,
      this.controller.conf.voters,
    );
  }

  /** Waits until the applied state here satisfies `done` (bounded). */
  private waitApplied(
    done: (s: MetadataState) => boolean,
    waitMs: number = APPLY_WAIT_MS_MAX,
  ): Promise<void> {
    if (done(this.state)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(
          new StreamBusError(
            ErrorCode.REQUEST_TIMED_OUT,
            `the controller committed the change but this broker did not apply it within ${waitMs} ms`,
          ),
        );
      }, waitMs);
      const off = this.controller.onApplied((s) => {
        if (!done(s)) return;
        clearTimeout(timer);
        off();
        resolve();
      });
    });
  }

  // ---- reactions to the applied state ---------------------------------------------------------

  private scheduleReconcile(): void {
    if (this.reconcileQueued || this.closed) return;
    this.reconcileQueued = true;
    this.o.admin
      .run(() => {
        this.reconcileQueued = false;
        return this.reconcile();
      })
      .catch((err: unknown) =>
        this.o.logger.error({ err }, 'applying metadata to replicas failed'),
      );
  }

  private async reconcile(): Promise<void> {
    if (this.closed) return;
    const next = this.state;
    const prev = this.reconciled;
    const plan =
      prev === EMPTY_METADATA_STATE
        ? { open: heldReplicas(next, this.self), close: [], reconfigure: [] }
        : planReplicas(prev, next, this.self);
    this.reconciled = next;
    // A broker that joined (not in --peers) is reachable at the address it registered.
    if (prev.brokers !== next.brokers) {
      for (const b of next.brokers.values()) {
        if (b.id !== this.self) this.links.addPeer(b.id as NodeId, { host: b.host, port: b.port });
      }
    }
    for (const h of plan.close) await this.closeReplica(h, true);
    // The directories of deleted topics, also those a crash left (leftover-replica-dirs.ts):
    // at start and whenever a topic came or went (a restarted broker's state may lag at first).
    const swept = this.leftoversSwept;
    if (swept?.topicIdNext !== next.topicIdNext || swept.topics !== next.topics.size) {
      this.leftoversSwept = { topicIdNext: next.topicIdNext, topics: next.topics.size };
      await this.sweepDeletedTopicDirs(next);
    }
    for (const h of plan.open) {
      try {
        await this.openReplica(h);
      } catch (err) {
        this.o.logger.error(
          { err, topic: h.topic, partition: h.partition },
          'opening a partition replica failed; it stays closed on this broker',
        );
      }
    }
    for (const r of plan.reconfigure) {
      const config = this.topicConfig(r.configs);
      for (const p of this.held.values()) {
        if (p.topic !== r.topic) continue;
        // Log-level fields are taken by the segment log only when it opens (replicated-partition.ts).
        if (logConfigChanged(p.topicConfig, config)) await this.reopenReplica(p, config);
        else p.setConfig(config);
      }
    }
  }

  private async sweepDeletedTopicDirs(state: MetadataState): Promise<void> {
    const held = new Set<number>();
    for (const k of this.held.keys()) held.add(Number(k.split('/')[0]));
    await removeDeletedTopicDirs(
      this.o.fs,
      join(this.o.config.dataDir, 'topics'),
      state,
      (id) => held.has(id),
      this.o.logger,
    ).catch((err: unknown) =>
      this.o.logger.warn({ err }, 'removing directories of deleted topics failed'),
    );
  }

  private keyOf(h: { topicId: number; partition: number }): string {
    return `${h.topicId}/${h.partition}`;
  }

  private dirOf(h: { topicId: number; partition: number }): string {
    return join(this.o.config.dataDir, 'topics', String(h.topicId), String(h.partition));
  }

  private async openReplica(h: HeldReplica): Promise<void> {
    const k = this.keyOf(h);
    if (this.held.has(k)) return;
    const { config, fs, replicas } = this.o;
    const key: GroupKey = { topicId: h.topicId, partition: h.partition };
    const dir = this.dirOf(h);
    await fs.mkdir(dir);
    let served: ReplicatedPartition | null = null;
    const source: ReplicaSource = {
      dir,
      open: (topicConfig) => this.openPartitionReplica(h, key, dir, topicConfig, () => served),
      remove: () => this.host.remove(key),
    };
    served = await ReplicatedPartition.open(
      h.topic,
      h.partition,
      this.topicConfig(h.configs),
      source,
      config.limits.fetchWaitersMax,
      {
        onReplica: (replica) => {
          this.replicaKeys.set(replica, k);
          this.reports.markDirty(k);
          replica.onChange((e) => {
            this.reports.markDirty(k);
            if (e.kind === 'role' && replica.role === 'leader') {
              this.leaderElections++;
              this.leaderSince.set(k, { term: replica.leaderEpoch, atMs: Date.now() });
            }
            // A leader reports once its term committed (it serves reads from then on:
            // read-gating in partition-replica.ts), so Metadata never names a leader that
            // answers LEADER_NOT_AVAILABLE.
            if ((e.kind === 'role' || !this.reports.hasReported(k)) && served !== null) {
              this.maybeReportIsr(k, served);
            }
          });
          // Each open (first, or again after a repair or a config reopen) hands the
          // coordinator the replica that now serves the partition.
          if (h.topic === OFFSETS_TOPIC) this.attachCoordinator(h, replica, () => served);
        },
        onOffline: (p, state) => replicas.reportOffline(p, state),
        onStorageFailure: (p, err) => replicas.reportStorageFailure(p, err),
        onCloseFailed: (p, err) =>
          this.o.logger.error(
            { err, topic: p.topic, partition: p.index },
            'closing a replica failed',
          ),
      },
    );
    this.held.set(k, served);
    this.reassigning = null;
    this.reports.markDirty(k);
    replicas.attachOne(served);
    const current = served;
    this.o.compaction?.add({
      name: k,
      topic: h.topic,
      partition: h.partition,
      dir,
      indexIntervalBytes: partitionLogConfig(current.topicConfig).indexIntervalBytes,
      log: () => {
        const r = current.replica;
        return r !== null && r.offlineError === null ? r.partitionLog : null;
      },
      commitPoint: () => current.highWatermark,
      config: () => current.topicConfig,
    });
  }

  /** Hosts the group coordinator of a `__consumer_offsets` replica (again, after a reopen). */
  private attachCoordinator(
    h: HeldReplica,
    replica: PartitionReplica,
    served: () => ReplicatedPartition | null,
  ): void {
    const { logger } = this.o;
    this.groups
      .detach(h.partition)
      .then(() =>
        this.groups.attach({
          partition: h.partition,
          topicId: h.topicId,
          replica,
          deleteRetentionMs: () =>
            served()?.topicConfig.deleteRetentionMs ??
            this.topicConfig(h.configs).deleteRetentionMs,
        }),
      )
      .catch((err: unknown) =>
        logger.error({ err, partition: h.partition }, 'the group coordinator cannot host it'),
      );
  }

  /** Opens one replica of `h` under `topicConfig` and hosts it (ReplicaSource.open). */
  private async openPartitionReplica(
    h: HeldReplica,
    key: GroupKey,
    dir: string,
    topicConfig: TopicConfig,
    served: () => ReplicatedPartition | null,
  ): Promise<PartitionReplica> {
    const { config, fs, logger, replicas } = this.o;
    const replica = await PartitionReplica.open({
      key,
      self: this.self as NodeId,
      dir,
      fs,
      logConfig: partitionLogConfig(topicConfig),
      logOptions: {
        unsyncedBytesMax: config.limits.unsyncedBytesMax,
        onEvent: (e) =>
          replicas.reportLogEvent(
            {
              topic: h.topic,
              index: h.partition,
              topicConfig: served()?.topicConfig ?? topicConfig,
            },
            e,
          ),
      },
      initialVoters: h.replicas as NodeId[],
      transport: this.replicaTransport,
      // Back-pressure from the reassignment throttle: no appends pile up behind its budget.
      raft: { sendPaused: (to) => this.reassignmentThrottle.backlogged(key, to) },
      host: this.host,
      random: this.random,
      uncommittedBudget: this.uncommittedBudget,
      logger,
    });
    try {
      this.host.add(replica);
    } catch (err) {
      await replica.close().catch(() => undefined);
      throw err;
    }
    replica.campaignIfSoleVoter();
    // A new group's preferred replica campaigns first, a few ticks on (its peers open the
    // group too by then), so balancing has no leadership to move (issue 9: idle CPU).
    if (h.replicas.length > 1 && h.replicas[0] === this.self && replica.leaderEpoch === 0) {
      this.freshPreferred.set(replica, this.houseTicks);
    }
    return replica;
  }

  /** A changed log-level config: the replica reopens under it (a failure leaves it offline). */
  private async reopenReplica(p: ReplicatedPartition, config: TopicConfig): Promise<void> {
    await p
      .reopen(config)
      .catch((err: unknown) =>
        this.o.logger.error(
          { err, topic: p.topic, partition: p.index },
          'reopening a replica for a config change failed',
        ),
      );
  }

  private async closeReplica(h: HeldReplica, removeData: boolean): Promise<void> {
    const k = this.keyOf(h);
    const p = this.held.get(k);
    this.held.delete(k);
    this.reassigning = null;
    this.reports.forget(k);
    this.leaderSince.delete(k);
    this.reassignTransferTick.delete(k);
    if (h.topic === OFFSETS_TOPIC) await this.groups.detach(h.partition);
    // A running clean of this replica stops before its directory is closed or removed.
    await this.o.compaction?.remove(k, removeData);
    if (p !== undefined) {
      this.o.replicas.detachOne(h.topic, h.partition);
      await p
        .close()
        .catch((err: unknown) =>
          this.o.logger.error(
            { err, topic: h.topic, partition: h.partition },
            'closing a replica failed',
          ),
        );
    }
    if (removeData) await removeTree(this.o.fs, this.dirOf(h));
  }

  /**
   * Partition reassignment on this partition's leader: one step of controller/reassignment.ts
   * at a time (a configuration change, a hand-over, or the completion report), at most one in
   * flight per partition; a refused step is tried again on a later house tick.
   */
  private driveReassignment(k: string, p: ReplicatedPartition): void {
    const r = p.replica;
    if (r === null || r.role !== 'leader' || !r.termCommitted || this.closed) return;
    if (this.reassignSteps.has(k)) return;
    const t = topicByName(this.state, p.topic);
    const ra = t?.partitions[p.index]?.reassignment;
    if (t === undefined || ra === undefined) return;
    const last = this.reassignTransferTick.get(k);
    if (last !== undefined && this.houseTicks - last < REPORT_RETRY_TICKS) return;
    this.reassignTransferTick.delete(k);
    const conf = r.configuration;
    const lag = new Map(r.replicaLag().map((l) => [l.id as number, l]));
    const step = nextReassignmentStep({
      self: this.self,
      target: ra.target,
      voters: conf.voters,
      learners: conf.learners,
      changePending: false,
      caughtUp: (id) => lag.get(id)?.ticksBehind === 0,
      inSync: r.inSyncReplicas(),
    });
    const log = this.o.logger;
    let work: Promise<void>;
    switch (step.kind) {
      case 'wait':
        return;
      case 'transfer':
        this.reassignTransferTick.set(k, this.houseTicks);
        try {
          r.transferLeadership(step.to as NodeId);
        } catch (err) {
          log.debug({ err, topic: p.topic, partition: p.index }, 'reassignment hand-over refused');
        }
        return;
      case 'complete':
        work = this.client.completeReassignment({
          topicId: t.id,
          partition: p.index,
          voters: conf.voters,
        });
        break;
      default: {
        const type =
          step.kind === 'promote' ? 'add-voter' : step.kind === 'remove' ? 'remove' : 'add-learner';
        log.info({ topic: p.topic, partition: p.index, step }, 'reassignment step');
        work = r.changeMembership({ type, node: step.node as NodeId });
      }
    }
    this.reassignSteps.add(k);
    work
      .catch((err: unknown) =>
        log.debug({ err, topic: p.topic, partition: p.index, step }, 'reassignment step failed'),
      )
      .finally(() => this.reassignSteps.delete(k));
  }

  /** Starts moving `topic`/`partition` to `replicas` (controller/reassignment.ts). */
  async reassignPartition(
    topic: string,
    partition: number,
    replicas: readonly number[],
  ): Promise<void> {
    await this.client.reassignPartition({ topic, partition, replicas });
    const same = (a: readonly number[]) =>
      a.length === replicas.length && a.every((id, i) => replicas[i] === id);
    await this.waitApplied((s) => {
      const ps = topicByName(s, topic)?.partitions[partition];
      return ps !== undefined && (ps.reassignment !== undefined || same(ps.replicas));
    });
  }

  /**
   * `cluster decommission ID`: moves every replica of `brokerId` off it (reassignment rounds,
   * repeated while some are still moving), then takes it out of the registry (and the
   * controller quorum, controller-node.ts rule 5). Bounded by `timeoutMs` (REQUEST_TIMED_OUT,
   * naming what still lists it; the moves started go on).
   */
  async decommissionBroker(brokerId: number, timeoutMs: number): Promise<{ moved: number }> {
    const deadline = Date.now() + timeoutMs;
    let moved = 0;
    for (;;) {
      moved += await this.client.decommissionBroker(brokerId);
      if (partitionsListing(this.state, brokerId) === null) break;
      if (Date.now() > deadline) {
        throw new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          `broker ${brokerId} still holds a replica of ${partitionsListing(this.state, brokerId)} after ${timeoutMs} ms; its moves go on, ask again`,
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await this.client.unregisterBroker(brokerId);
    await this.waitApplied((s) => !s.brokers.has(brokerId));
    return { moved };
  }

  /**
   * `cluster voters add|remove ID` (controller/controller-voters.ts): records the new voter set,
   * then waits until this broker's view of the metadata group has exactly those voters, at most
   * `timeoutMs` (REQUEST_TIMED_OUT naming both sets; the change goes on). `op` null: no change.
   * Returns the group's voters and learners as this broker knows them.
   */
  async alterControllerVoters(
    op: 'add' | 'remove' | null,
    brokerId: number,
    timeoutMs: number,
  ): Promise<{ voters: number[]; learners: number[] }> {
    const conf = () => ({
      voters: [...this.controller.conf.voters],
      learners: [...this.controller.conf.learners],
    });
    if (op === null) return conf();
    await this.client.alterControllerVoters({ op, brokerId });
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const now = [...this.controller.conf.voters].sort((a, b) => a - b);
      // No set recorded (yet, here, or at all: a no-op change plans nothing): the group's voters.
      const target = this.state.controllerVoters ?? now;
      const applied = op === 'add' ? target.includes(brokerId) : !target.includes(brokerId);
      if (applied && now.length === target.length && now.every((id, i) => target[i] === id)) {
        return conf();
      }
      if (Date.now() > deadline) {
        throw new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          `the controller voters are [${now.join(',')}], still moving to [${target.join(',')}] after ${timeoutMs} ms; the change goes on`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  /** `partition reassign T P --cancel` (controller/reassignment.ts): the replicas restored. */
  async cancelReassignment(topic: string, partition: number): Promise<number[]> {
    const p = await this.client.cancelReassignment({ topic, partition });
    await this.waitApplied((s) => {
      const ps = topicByName(s, topic)?.partitions[partition];
      return (
        ps === undefined || ps.reassignment === undefined || ps.reassignment.adding.length === 0
      );
    });
    return [...p.replicas];
  }

  // ---- dynamic broker settings (ops/dynamic-config.ts) -----------------------------------------

  /** The dynamic settings in force here and where each comes from. */
  brokerConfig(): EffectiveEntry[] {
    const configs = this.state.brokerConfigs;
    return effectiveDynamicConfig(
      this.staticDynamic,
      configs?.get(ALL_BROKERS) ?? [],
      configs?.get(this.self) ?? [],
    );
  }

  /** Applies the recorded dynamic settings onto the live config (on every applied change). */
  private applyBrokerConfig(): void {
    const entries = this.brokerConfig();
    const changed = applyDynamicConfig(this.o.config, entries);
    if (changed.length === 0) return;
    if (changed.includes('logLevel')) setProcessLogLevel(this.o.config.logLevel);
    this.o.logger.info(
      { changed: entries.filter((e) => changed.includes(e.key)) },
      'dynamic broker settings applied',
    );
  }

  /**
   * Records dynamic settings for `brokerId` (-1: every broker) in the controller's log and
   * waits until this broker applied them (INVALID_CONFIG naming a key that is unknown, not
   * dynamic or given a bad value; BROKER_ID_NOT_REGISTERED).
   */
  async alterBrokerConfig(
    brokerId: number,
    changes: Readonly<Record<string, string | null>>,
  ): Promise<void> {
    await this.client.alterBrokerConfig(brokerId, changes);
    await this.waitApplied((s) => {
      const entries = s.brokerConfigs?.get(brokerId) ?? [];
      return Object.entries(changes).every(
        ([key, value]) => (entries.find((e) => e.key === key)?.value ?? null) === value,
      );
    });
  }

  /** This broker, decommissioned: no more heartbeats (they would register it again). */
  private onDecommissioned(): void {
    this.o.logger.warn(
      'this broker was decommissioned: it holds no replica and left the registry; stop the process',
    );
    void this.lifecycle?.stop();
    this.lifecycle = null;
    if (this.controller.isLeader) {
      const to = this.controller.conf.voters.find((id) => id !== this.self);
      if (to !== undefined) this.controller.transferLeadership(to);
    }
  }

  /** This broker's replica of `topic`/`partition` as it sees it (DescribeReplica), or null. */
  describeReplica(
    topic: string,
    partition: number,
  ): {
    role: string;
    logEndOffset: number;
    highWatermark: number;
    leaderId: number;
    leaderEpoch: number;
    voters: number[];
    learners: number[];
  } | null {
    const t = topicByName(this.state, topic);
    if (t === undefined) return null;
    const r = this.held.get(this.keyOf({ topicId: t.id, partition }))?.replica ?? null;
    if (r === null) return null;
    const conf = r.configuration;
    return {
      role: r.role,
      logEndOffset: r.logEndOffset,
      highWatermark: r.highWatermark,
      leaderId: r.leaderId,
      leaderEpoch: r.leaderEpoch,
      voters: [...conf.voters],
      learners: [...conf.learners],
    };
  }

  /** The leader tells the controller who leads and who is in sync, when that changed. */
  private maybeReportIsr(k: string, p: ReplicatedPartition): void {
    const r = p.replica;
    if (r !== null) this.reports.report(k, p.topic, p.index, r);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.reports.close();
    this.housekeeping?.();
    this.unsubscribe?.();
    // A registration or heartbeat in flight is not waited for: its controller may have gone
    // (the client retries one for some 15 s). The closed client and links end it; its failure
    // is only logged (debug), and stop() never rejects.
    void this.lifecycle?.stop();
    this.client.close();
    await this.o.admin.idle();
    await this.groups.close();
    for (const p of [...this.held.values()]) {
      this.o.replicas.detachOne(p.topic, p.index);
      await p.close().catch(() => undefined);
    }
    this.held.clear();
    this.host.remove(METADATA_GROUP);
    await this.host.close();
    await this.controller.close().catch(() => undefined);
    await this.links.close();
  }
}
