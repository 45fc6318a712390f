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
// refused (see `checkDataDirKind`).
import { randomInt, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import {
  type DescribeClusterResponse,
  ErrorCode,
  isStreamBusError,
  type MetadataResponse,
  StreamBusError,
} from '@streambus/protocol';
import { type NodeId, seededRandom } from '@streambus/raft';
import { type FileSystem, removeTree } from '@streambus/storage';
import type { Logger } from 'pino';
import type { AdminQueue } from './admin-queue.js';
import { ByteBudget } from './byte-budget.js';
import { type GroupKey, METADATA_GROUP } from './cluster/contract.js';
import { RaftGroupHost } from './cluster/group-host.js';
import { type PeerAddress, PeerLinks } from './cluster/peer-links.js';
import {
  describeClusterFromState,
  type HeldReplica,
  heldReplicas,
  metadataFromState,
  planReplicas,
} from './cluster-view.js';
import type { BrokerConfig, HostPort } from './config.js';
import { BrokerLifecycle } from './controller/broker-lifecycle.js';
import { ControllerNode } from './controller/controller-node.js';
import {
  ControllerClient,
  ControllerRpcServer,
  isControllerRpcKind,
} from './controller/controller-rpc.js';
import type { ConfigEntry } from './controller/metadata-records.js';
import {
  EMPTY_METADATA_STATE,
  type MetadataState,
  topicByName,
} from './controller/metadata-state.js';
import { bindNodeIdentity, ensureNodeIdentity } from './controller/node-identity.js';
import type { ReplicaManager } from './replica-manager.js';
import { ReplicatedPartition } from './replicated-partition.js';
import { PartitionReplica } from './replication/partition-replica.js';
import { partitionLogConfig } from './storage-log.js';
import { resolveTopicConfig, type TopicConfig } from './topic-config.js';

/** Milliseconds per Raft tick (election after ~10 ticks, heartbeats every tick). */
export const CLUSTER_TICK_MS = 100;
/** House ticks before the same leader/ISR report is sent again while the state disagrees. */
const REPORT_RETRY_TICKS = 10;
/** Producer ids taken from the controller at once. */
const PRODUCER_ID_BLOCK = 1000;
/** How long an admin request waits for this broker to apply what the controller committed. */
const APPLY_WAIT_MS_MAX = 10_000;
/** How long a topic create waits for its partitions' first elected leaders. */
const ELECTED_WAIT_MS_MAX = 5_000;
export const METADATA_DIR = '__cluster_metadata';

export interface ClusterNodeOptions {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly fs: FileSystem;
  readonly replicas: ReplicaManager;
  readonly admin: AdminQueue;
  readonly tickMs?: number;
}

/** The voter ids: `--peers`, or this broker alone. */
export function votersOf(config: BrokerConfig): number[] {
  return config.peers.length === 0 ? [config.nodeId] : config.peers.map((p) => p.id);
}

/**
 * Which store a data directory holds decides which path may open it. A single-node directory
 * (metadata.json, written by brokers before replication or without --peers) is not imported
 * into a cluster: its partition logs have no Raft state (term runs, hard state, offset
 * translation), and making them up could not be told from real history. A cluster directory
 * (the metadata log) is not opened by the single-node path, which would ignore its topics. Either
 * way the broker refuses to start, naming the way out (INVALID_CONFIG).
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
      `data directory ${dataDir} holds a single-node StreamBus store (metadata.json); it is not ` +
        'imported into a cluster. Start the cluster broker with an empty --data-dir and copy the ' +
        'topics over with a consumer and a producer, or keep serving this directory without --peers',
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
  private reconcileQueued = false;
  private readonly held = new Map<string, ReplicatedPartition>();
  private readonly reporting = new Set<string>();
  /**
   * Per partition, the last report sent (its signature) and the house tick it was sent at: the
   * same report is sent again only after REPORT_RETRY_TICKS while the state still disagrees.
   */
  private readonly reported = new Map<string, { sig: string; tick: number }>();
  private houseTicks = 0;
  private producerIds = { next: 0, end: 0 };
  private producerIdsRefill: Promise<void> | null = null;
  private unsubscribe: (() => void) | null = null;
  private identity: Promise<unknown> | null = null;
  private closed = false;
  private readonly random = seededRandom(randomInt(2 ** 31));

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
    this.host = new RaftGroupHost({
      transport: this.links,
      tickIntervalMs: o.tickMs ?? CLUSTER_TICK_MS,
      logger: o.logger,
    });
  }

  /** Opens the metadata log and the controller; nothing is served until `start`. */
  static async open(o: ClusterNodeOptions): Promise<ClusterNode> {
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
    });
    node.links.setRequestHandler((from, kind, body) => {
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

  /** Serving: the native listener is up at `address`. Registers, opens held replicas. */
  async start(address: HostPort): Promise<void> {
    const { config, logger } = this.o;
    this.identity = bindNodeIdentity(this.controller, this.o.fs, config.dataDir, this.self).then(
      (id) => this.links.setClusterId(id.clusterId),
      (err: unknown) => {
        logger.error({ err }, 'this data directory belongs to another cluster or node');
        throw err;
      },
    );
    this.identity.catch(() => undefined);
    this.unsubscribe = this.controller.onApplied(() => this.scheduleReconcile());
    this.host.add(this.controller);
    this.scheduleReconcile();
    this.lifecycle = new BrokerLifecycle({
      brokerId: this.self,
      host: address.host,
      port: address.port,
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

  private houseTick(): void {
    this.houseTicks++;
    this.lifecycle?.tick();
    this.links.keepalive();
    this.wakeOnFence();
    for (const [k, p] of this.held) this.maybeReportIsr(k, p);
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
    // Answer once every partition's Raft group has elected a leader and reported it (its epoch
    // leaves the creation's 0), so a describe or produce right after the create finds leaders
    // instead of a second of NOT_LEADER_OR_FOLLOWER. Bounded: the topic exists either way, and
    // a group without a live majority elects nobody (its clients then retry as usual).
    await this.waitApplied(
      (s) => topicByName(s, name)?.partitions.every((p) => p.leaderEpoch > 0) !== false,
      ELECTED_WAIT_MS_MAX,
    ).catch(() => undefined);
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
    return metadataFromState(this.state, names, this.controllerId > 0 ? this.controllerId : -1);
  }

  describeCluster(): DescribeClusterResponse {
    return describeClusterFromState(
      this.state,
      this.controllerId > 0 ? this.controllerId : -1,
      this.voters,
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
      for (const p of this.held.values()) if (p.topic === r.topic) p.setConfig(config);
    }
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
    const { config, fs, logger, replicas } = this.o;
    const topicConfig = this.topicConfig(h.configs);
    const key: GroupKey = { topicId: h.topicId, partition: h.partition };
    await fs.mkdir(this.dirOf(h));
    const replica = await PartitionReplica.open({
      key,
      self: this.self as NodeId,
      dir: this.dirOf(h),
      fs,
      logConfig: partitionLogConfig(topicConfig),
      initialVoters: h.replicas as NodeId[],
      transport: this.links,
      host: this.host,
      random: this.random,
      uncommittedBudget: this.uncommittedBudget,
      logger,
    });
    const served = new ReplicatedPartition(
      h.topic,
      h.partition,
      topicConfig,
      replica,
      config.limits.fetchWaitersMax,
      () => this.host.remove(key),
    );
    replica.onChange((e) => {
      // A leader reports once its term committed (it serves reads from then on: read-gating in
      // partition-replica.ts), so Metadata never names a leader that answers LEADER_NOT_AVAILABLE.
      if (e.kind === 'role' || !this.reported.has(k)) this.maybeReportIsr(k, served);
    });
    this.held.set(k, served);
    this.host.add(replica);
    replicas.attachOne(served);
  }

  private async closeReplica(h: HeldReplica, removeData: boolean): Promise<void> {
    const k = this.keyOf(h);
    const p = this.held.get(k);
    this.held.delete(k);
    this.reported.delete(k);
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

  /** The leader tells the controller who leads and who is in sync, when that changed. */
  private maybeReportIsr(k: string, p: ReplicatedPartition): void {
    const r = p.replica;
    if (!r.termCommitted || this.reporting.has(k) || this.closed) return;
    const t = topicByName(this.state, p.topic);
    const ps = t?.partitions[p.index];
    if (t === undefined || ps === undefined) return;
    const isr = [...new Set([this.self, ...r.inSyncReplicas()])].sort((a, b) => a - b);
    const leaderEpoch = r.leaderEpoch;
    const same =
      ps.leader === this.self &&
      ps.leaderEpoch === leaderEpoch &&
      ps.isr.length === isr.length &&
      [...ps.isr].sort((a, b) => a - b).every((id, i) => id === isr[i]);
    const sig = `${leaderEpoch}:${isr.join(',')}`;
    if (same) return;
    // The state can disagree again after a report was accepted (the controller moved the
    // leadership when it fenced or re-registered a broker, as every broker does after a full
    // restart), or a report can have been refused (this broker not live yet): so a report is
    // repeated while the state disagrees, at most every REPORT_RETRY_TICKS for the same one.
    const last = this.reported.get(k);
    if (
      last !== undefined &&
      last.sig === sig &&
      this.houseTicks - last.tick < REPORT_RETRY_TICKS
    ) {
      return;
    }
    this.reported.set(k, { sig, tick: this.houseTicks });
    this.reporting.add(k);
    this.client
      .changeIsr({ topicId: t.id, partition: p.index, leader: this.self, leaderEpoch, isr })
      .then(
        () => undefined,
        (err: unknown) => {
          this.o.logger.debug({ err, topic: p.topic, partition: p.index }, 'ISR report failed');
          // The state names another leader at an epoch not below this term (the controller
          // moved leadership when it fenced a broker): hand the group to that leader, whose
          // next term the controller then takes, so the state and the group agree again.
          const now = topicByName(this.state, p.topic)?.partitions[p.index];
          if (
            isStreamBusError(err, ErrorCode.NOT_LEADER_OR_FOLLOWER) &&
            now !== undefined &&
            now.leader > 0 &&
            now.leader !== this.self &&
            now.leaderEpoch >= r.leaderEpoch &&
            r.role === 'leader' &&
            r.inSyncReplicas().includes(now.leader as NodeId)
          ) {
            r.transferLeadership(now.leader as NodeId);
          }
        },
      )
      .finally(() => this.reporting.delete(k));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.housekeeping?.();
    this.unsubscribe?.();
    await this.lifecycle?.stop();
    this.client.close();
    await this.o.admin.idle();
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
