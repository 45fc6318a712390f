// The broker's server shell: the TCP listener, the HTTP admin port, connection accept and
// sweep, the periodic maintenance timer, start-up and shutdown. The parts it wires together
// (docs/broker.md "Layout"):
//   topic-registry.ts   which topics exist (metadata.json today, the controller's state later)
//   replica-manager.ts  the partitions this broker holds: open/close, lookup, long-poll parking
//   admin-queue.ts      topic changes and repairs, one at a time
//   handlers/           the request handlers by API family, dispatched from one table
//
// Startup: the data directory, then the topic registry (metadata.json, orphan topic
// directories removed, every partition opened: storage recovery runs here), then listen. A
// partition that cannot be opened (damage, EMFILE) is kept offline and the broker starts anyway
// (partition.ts, offline-log.ts); RepairPartition brings it back. Shutdown (`close`): stop
// accepting, answer or time out in-flight requests, wake parked fetches, close the logs
// (flush + producer-state snapshot), close the ports.
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { FileSystem } from '@streambus/storage';
import pino, { type Logger } from 'pino';
import { AdminQueue } from './admin-queue.js';
import { type BrokerBudgets, brokerBudgets, registerBudgetGauges } from './byte-budget.js';
import { isPeerPreamble } from './cluster/peer-links.js';
import { ClusterNode, checkDataDirKind } from './cluster-node.js';
import { type BrokerConfig, checkRelations, type HostPort } from './config.js';
import { Connection } from './connection.js';
import { prepareDataDir } from './data-dir.js';
import { FirstBytesRouter } from './first-bytes.js';
import type { BrokerContext } from './handlers/context.js';
import { handleRequest } from './handlers/dispatch.js';
import { createAdminServer, type Readiness } from './http-server.js';
import { BrokerMetrics, registerClusterMetrics } from './metrics.js';
import type { OpenPartitionLog, RepairPartitionLog } from './partition.js';
import { ReplicaManager } from './replica-manager.js';
import { brokerFileSystem, openPartitionLogOn, repairPartitionLogOn } from './storage-log.js';
import { TopicRegistry } from './topic-registry.js';

export { BROKER_VERSION } from './version.js';

/** How often connections are checked for request timeouts and idleness. */
const SWEEP_INTERVAL_MS_MAX = 1000;

export interface BrokerOptions {
  logger?: Logger;
  /** Replaces the storage package's PartitionLog (tests, and later the Raft-backed log). */
  openLog?: OpenPartitionLog;
  /** Replaces the storage package's repairPartitionLog (with `openLog`). */
  repairLog?: RepairPartitionLog;
  /**
   * The file system under every file the broker writes (tests: a MemoryFileSystem or a
   * FaultyFileSystem). Default: the real one. Either way it is wrapped in the descriptor bound.
   */
  fileSystem?: FileSystem;
  /**
   * Run as a member of a replicated cluster (controller quorum, Raft-replicated partitions) even
   * without `peers`: a cluster of one on the cluster path. Default: the cluster path exactly when
   * `config.peers` is not empty (see docs/broker.md "Cluster mode").
   */
  cluster?: boolean;
}

/** Offline partitions listed by /ready at most (the count is always complete). */
const READY_OFFLINE_LISTED_MAX = 1000;

export class Broker {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  private readonly connections = new Set<Connection>();
  /** Broker-wide inbound-frame and outbound-response byte budgets (connection.ts). */
  private readonly budgets: BrokerBudgets;
  /** The broker's one FileSystem (storage-log.ts): logs, metadata.json, snapshots, topic dirs. */
  private readonly fs: FileSystem;
  /** Whether `fs` is the real disk (the data directory is then checked with node:fs first). */
  private readonly realDisk: boolean;
  private readonly replicas: ReplicaManager;
  private readonly admin = new AdminQueue();
  private topics: TopicRegistry | null = null;
  private cluster: ClusterNode | null = null;
  private readonly clusterMode: boolean;
  private router: FirstBytesRouter | null = null;
  private server: Server | null = null;
  private httpServer: ReturnType<typeof createAdminServer> | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private ready = false;
  /** A controlled shutdown began (shutdownControlled): not ready from then on. */
  private draining = false;
  private shutdownPhase = 'not started';
  private closing: Promise<void> | null = null;
  private _address: HostPort = { host: '', port: 0 };
  private _httpAddress: HostPort | null = null;

  private constructor(config: BrokerConfig, options: BrokerOptions) {
    this.config = config;
    this.logger = (options.logger ?? pino({ level: config.logLevel })).child({
      nodeId: config.nodeId,
    });
    this.metrics = new BrokerMetrics(() => this.replicas.all());
    this.budgets = brokerBudgets(config.limits);
    registerBudgetGauges(this.metrics.registry, this.budgets);
    this.fs = brokerFileSystem(this.metrics, {
      openFilesMax: config.limits.openFilesMax,
      logger: this.logger,
      ...(options.fileSystem ? { fileSystem: options.fileSystem } : {}),
    });
    this.realDisk = options.fileSystem === undefined;
    this.clusterMode = options.cluster ?? config.peers.length > 0;
    this.replicas = new ReplicaManager({
      config,
      logger: this.logger,
      metrics: this.metrics,
      fs: this.fs,
      openLog:
        options.openLog ??
        openPartitionLogOn(this.fs, { unsyncedBytesMax: config.limits.unsyncedBytesMax }),
      repairLog: options.repairLog ?? repairPartitionLogOn(this.fs),
    });
  }

  private readiness(): Readiness {
    const offline = this.replicas.offline(READY_OFFLINE_LISTED_MAX);
    // The cluster path's conditions (registered, metadata caught up, replicas open; ops/readiness.ts).
    const cluster = this.cluster?.readiness();
    return {
      ready: this.ready && !this.draining && this.closing === null && cluster?.ready !== false,
      offlinePartitionCount: offline.count,
      offlinePartitions: offline.listed,
      ...(cluster === undefined ? {} : { cluster }),
    };
  }

  /**
   * A controlled shutdown (SIGTERM, SIGINT; run.ts): /ready turns false at once; on the cluster
   * path every leadership this broker holds (and the controller role) is handed to an in-sync
   * replica and the controller is told, within half of `shutdown.timeoutMs`; then `close()`
   * finishes in-flight requests, flushes and closes. Resolves with what the hand-over left.
   */
  async shutdownControlled(): Promise<{ partitionsLeft: string[]; controllerLeft: boolean }> {
    this.draining = true;
    let left = { partitionsLeft: [] as string[], controllerLeft: false };
    if (this.cluster !== null && this.closing === null) {
      this.shutdownPhase = 'handing over leaderships';
      const r = await this.cluster.prepareShutdown(Date.now() + this.config.shutdown.timeoutMs / 2);
      this.logger.info(r, 'controlled shutdown: leaderships handed over');
      left = { partitionsLeft: r.partitionsLeft, controllerLeft: r.controllerLeft };
    }
    this.shutdownPhase = 'finishing in-flight requests, flushing, closing';
    await this.close();
    return left;
  }

  /** What a controlled shutdown has not finished yet (logged when it overruns its timeout). */
  shutdownLeft(): { phase: string; partitionsLed: string[]; connections: number } {
    return {
      phase: this.shutdownPhase,
      partitionsLed: this.cluster?.ledPartitions() ?? [],
      connections: this.connections.size,
    };
  }

  static async start(config: BrokerConfig, options: BrokerOptions = {}): Promise<Broker> {
    checkRelations(config);
    const broker = new Broker(config, options);
    try {
      await broker.startUp();
    } catch (err) {
      await broker.close().catch(() => {});
      throw err;
    }
    return broker;
  }

  get address(): HostPort {
    return this._address;
  }

  get httpAddress(): HostPort | null {
    return this._httpAddress;
  }

  private async startUp(): Promise<void> {
    const started = Date.now();
    if (this.realDisk) await prepareDataDir(this.config.dataDir);
    else await this.fs.mkdir(join(this.config.dataDir, 'topics'));
    let topics: TopicRegistry | null = null;
    let cluster: ClusterNode | null = null;
    if (this.clusterMode) {
      cluster = await ClusterNode.open({
        config: this.config,
        logger: this.logger,
        fs: this.fs,
        replicas: this.replicas,
        admin: this.admin,
      });
      this.cluster = cluster;
      registerClusterMetrics(this.metrics.registry, () => cluster!.metricsView());
    } else {
      await checkDataDirKind(this.fs, this.config.dataDir, false);
      topics = await TopicRegistry.open(this.config, this.logger, this.fs, this.replicas);
      this.topics = topics;
    }
    const context = this.handlerContext(topics, cluster);
    const links = cluster?.links ?? null;
    const router =
      links === null
        ? null
        : new FirstBytesRouter({
            isPeer: isPeerPreamble,
            onPeer: (socket, first) => links.adopt(socket, first),
            onClient: (socket) => this.accept(socket, context),
            timeoutMs: this.config.limits.idleTimeoutMs,
          });
    this.router = router;
    this.server = createServer({ noDelay: true }, (socket) => {
      if (this.closing !== null) socket.destroy();
      else if (router !== null) router.accept(socket);
      else this.accept(socket, context);
    });
    this.server.maxConnections = this.config.limits.connectionsMax;
    this.server.on('drop', () => this.metrics.connectionsRejected.inc());
    this._address = await listen(this.server, this.config.listen, LISTENER_NAMES.native);
    if (this.config.http !== null) {
      this.httpServer = createAdminServer(this.metrics.registry, () => this.readiness());
      this._httpAddress = await listen(this.httpServer, this.config.http, LISTENER_NAMES.http);
    }
    const sweepMs = Math.max(
      10,
      Math.min(
        SWEEP_INTERVAL_MS_MAX,
        this.config.limits.requestTimeoutMs / 4,
        this.config.limits.idleTimeoutMs / 4,
        this.config.limits.frameStallTimeoutMs / 4,
      ),
    );
    this.sweepTimer = setInterval(() => this.sweep(), sweepMs);
    this.sweepTimer.unref();
    this.retentionTimer = setInterval(
      () => void this.replicas.maintain(),
      this.config.retentionCheckIntervalMs,
    );
    this.retentionTimer.unref();
    if (cluster !== null) await cluster.start(context.advertised());
    this.ready = true;
    this.logger.info(
      {
        port: this._address.port,
        httpPort: this._httpAddress?.port ?? null,
        topics: topics?.size ?? cluster?.state.topics.size ?? 0,
        cluster: cluster === null ? null : { voters: cluster.voters },
        offlinePartitions: this.readiness().offlinePartitionCount,
        startupMs: Date.now() - started,
      },
      'broker listening',
    );
  }

  /** What the request handlers see of this broker. */
  private handlerContext(topics: TopicRegistry | null, cluster: ClusterNode | null): BrokerContext {
    return {
      config: this.config,
      logger: this.logger,
      metrics: this.metrics,
      topics,
      cluster,
      replicas: this.replicas,
      admin: this.admin,
      closing: () => this.closing !== null,
      advertised: () => {
        const h = this._address.host;
        return { host: h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h, port: this._address.port };
      },
    };
  }

  private accept(socket: Socket, context: BrokerContext): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    this.metrics.connectionsTotal.inc();
    this.metrics.connections.inc();
    const conn = new Connection(
      socket,
      this.config.limits,
      (frame, ctx) => handleRequest(context, frame, ctx),
      this.metrics,
      this.logger,
      (c) => {
        this.connections.delete(c);
        this.metrics.connections.dec();
      },
      this.budgets,
    );
    this.connections.add(conn);
  }

  private sweep(): void {
    const now = Date.now();
    for (const conn of this.connections) conn.sweep(now);
  }

  // ---- shutdown -------------------------------------------------------------------------------

  close(): Promise<void> {
    this.closing ??= this.shutDown();
    return this.closing;
  }

  private async shutDown(): Promise<void> {
    this.ready = false;
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    const serverClosed = this.server ? closeServer(this.server) : Promise.resolve();
    // Parked fetches answer now with what they have; acks=all produces waiting for a flush get it.
    this.replicas.wakeAll();
    await this.replicas.flushAll();
    await Promise.all(
      [...this.connections].map((c) => c.drain(this.config.limits.shutdownTimeoutMs)),
    );
    for (const c of this.connections) c.destroy();
    this.router?.destroyAll();
    // Before the listener can finish closing: the peer links hold sockets it accepted.
    await this.cluster?.close();
    await serverClosed;
    await this.admin.idle();
    await this.replicas.closeAll();
    this.topics?.clear();
    if (this.httpServer) await closeServer(this.httpServer, true);
    this.logger.info('broker stopped');
  }
}

/** Which port a listen error is about, as the message names it. */
const LISTENER_NAMES = {
  native: 'the native listener (--listen)',
  http: 'the HTTP admin port (--http)',
} as const;

const LISTEN_REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'unknown host',
};

function listen(
  server: Server | ReturnType<typeof createAdminServer>,
  at: HostPort,
  what: string,
): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      const reason = LISTEN_REASONS[err.code ?? ''] ?? err.message;
      reject(
        new StreamBusError(
          ErrorCode.INVALID_CONFIG,
          `cannot listen on ${at.host}:${at.port} for ${what}: ${reason}`,
          {
            cause: err,
          },
        ),
      );
    };
    server.once('error', onError);
    server.listen(at.port, at.host, () => {
      server.off('error', onError);
      const addr = server.address() as AddressInfo;
      resolve({ host: at.host, port: addr.port });
    });
  });
}

function closeServer(
  server: Server | ReturnType<typeof createAdminServer>,
  force = false,
): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
    if (force && 'closeAllConnections' in server) server.closeAllConnections();
  });
}
