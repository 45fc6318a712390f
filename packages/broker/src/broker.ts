// The broker's server shell: the TCP listener, the HTTP admin port, connection accept and
// sweep, the periodic maintenance timer, start-up and shutdown. There is one code path: a broker
// without --peers is a cluster of one (its own controller voter, id `nodeId`, its peer address its
// own native listener). The parts it wires together (docs/broker.md "Layout"):
//   cluster-node.ts     the controller quorum, peer links and the replicas the metadata names
//   replica-manager.ts  the partitions this broker holds, as requests see them: lookup, parking
//   admin-queue.ts      reactions to applied metadata and repairs, one at a time
//   handlers/           the request handlers by API family, dispatched from one table
//
// Startup: the data directory, then the cluster node (the metadata log opens), then listen, then
// the node starts (registration; every held replica opens: storage recovery runs here). A cluster
// of one answers `start` once registered and its replicas are open. A replica that cannot be
// opened (damage, EMFILE) is kept offline and the broker starts anyway (replicated-partition.ts);
// RepairPartition brings it back. Shutdown (`close`): stop accepting, answer or time out
// in-flight requests, wake parked fetches, close the replicas and the metadata log, close the
// ports.
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { FileSystem } from '@streambus/storage';
import pino, { type Logger } from 'pino';
import { AdminQueue } from './admin-queue.js';
import { type BrokerBudgets, brokerBudgets, registerBudgetGauges } from './byte-budget.js';
import { isPeerPreamble } from './cluster/peer-links.js';
import { ClusterNode } from './cluster-node.js';
import { type BrokerConfig, checkRelations, type HostPort } from './config.js';
import { Connection } from './connection.js';
import { prepareDataDir } from './data-dir.js';
import { FirstBytesRouter } from './first-bytes.js';
import type { BrokerContext } from './handlers/context.js';
import { handleRequest } from './handlers/dispatch.js';
import { createAdminServer, type Readiness } from './http-server.js';
import { KafkaListener } from './kafka/listener.js';
import { LogCompaction } from './log-compaction.js';
import { BrokerMetrics, registerClusterMetrics } from './metrics.js';
import { ReplicaManager } from './replica-manager.js';
import type { RepairPartitionLog } from './served-partition.js';
import { brokerFileSystem, repairPartitionLogOn } from './storage-log.js';

export { BROKER_VERSION } from './version.js';

/** How often connections are checked for request timeouts and idleness. */
const SWEEP_INTERVAL_MS_MAX = 1000;

export interface BrokerOptions {
  logger?: Logger;
  /** Replaces the storage package's repairPartitionLog (tests). */
  repairLog?: RepairPartitionLog;
  /**
   * The file system under every file the broker writes (tests: a MemoryFileSystem or a
   * FaultyFileSystem). Default: the real one. Either way it is wrapped in the descriptor bound.
   */
  fileSystem?: FileSystem;
}

/** Offline partitions listed by /ready at most (the count is always complete). */
const READY_OFFLINE_LISTED_MAX = 1000;

export class Broker {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  // biome-ignore lint/suspicious/noExplicitAny: native and Kafka connections (connection.ts rule 10)
  private readonly connections = new Set<Connection<any>>();
  /** Broker-wide inbound-frame and outbound-response byte budgets (connection.ts). */
  private readonly budgets: BrokerBudgets;
  /** The broker's one FileSystem (storage-log.ts): replica logs, Raft files, the metadata log. */
  private readonly fs: FileSystem;
  /** Whether `fs` is the real disk (the data directory is then checked with node:fs first). */
  private readonly realDisk: boolean;
  private readonly replicas: ReplicaManager;
  private readonly admin = new AdminQueue();
  private cluster: ClusterNode | null = null;
  /** The log cleaner's scheduler for compacted topics (log-compaction.ts). */
  private compaction: LogCompaction | null = null;
  private router: FirstBytesRouter | null = null;
  private server: Server | null = null;
  private httpServer: ReturnType<typeof createAdminServer> | null = null;
  private kafka: KafkaListener | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private ready = false;
  /**
   * Client sockets accepted before the broker is ready (a cluster of one still registering and
   * opening its replicas): served once it is, so no client reads an empty metadata state (and,
   * say, gives up on a topic as missing). Bounded by `limits.connectionsMax` (the listener's).
   */
  private early: Array<{ socket: Socket; context: BrokerContext }> | null = [];
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
    this.replicas = new ReplicaManager({
      logger: this.logger,
      metrics: this.metrics,
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
  /** Records dynamic settings for this broker (SIGHUP, run.ts; ops/dynamic-config.ts). */
  async alterOwnConfig(changes: Readonly<Record<string, string>>): Promise<void> {
    if (this.cluster === null) {
      throw new StreamBusError(ErrorCode.REQUEST_TIMED_OUT, 'the broker is not serving yet');
    }
    await this.cluster.alterBrokerConfig(this.config.nodeId, changes);
  }

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

  /** The Kafka listener's bound address; null when `kafka.listen` is not configured. */
  get kafkaAddress(): HostPort | null {
    return this.kafka?.address ?? null;
  }

  private async startUp(): Promise<void> {
    const started = Date.now();
    if (this.realDisk) await prepareDataDir(this.config.dataDir);
    else await this.fs.mkdir(join(this.config.dataDir, 'topics'));
    this.compaction = new LogCompaction({
      fs: this.fs,
      dataDir: this.config.dataDir,
      bytesPerSecond: this.config.logCleanerBytesPerSecond,
      intervalMs: this.config.logCleanerIntervalMs,
      logger: this.logger,
      registry: this.metrics.registry,
    });
    const cluster = await ClusterNode.open({
      config: this.config,
      logger: this.logger,
      fs: this.fs,
      replicas: this.replicas,
      admin: this.admin,
      compaction: this.compaction,
    });
    this.cluster = cluster;
    registerClusterMetrics(this.metrics.registry, () => cluster.metricsView());
    const context = this.handlerContext(cluster);
    const links = cluster.links;
    const router = new FirstBytesRouter({
      isPeer: isPeerPreamble,
      onPeer: (socket, first) => links.adopt(socket, first),
      onClient: (socket) => this.accept(socket, context),
      timeoutMs: this.config.limits.idleTimeoutMs,
    });
    this.router = router;
    this.server = createServer({ noDelay: true }, (socket) => {
      if (this.closing !== null) socket.destroy();
      else router.accept(socket);
    });
    this.server.maxConnections = this.config.limits.connectionsMax;
    this.server.on('drop', () => this.metrics.connectionsRejected.inc());
    this._address = await listen(this.server, this.config.listen, LISTENER_NAMES.native);
    const kafkaListen = this.config.kafka?.listen ?? null;
    if (kafkaListen !== null) {
      const options = {
        b: context,
        budgets: this.budgets,
        connections: this.connections,
        accepting: () => this.closing === null,
      };
      this.kafka = await KafkaListener.start(options, kafkaListen);
    }
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
    // Re-armed after each check with the interval then in force: retentionCheckIntervalMs is a
    // dynamic setting (ops/dynamic-config.ts).
    const armRetention = (): void => {
      this.retentionTimer = setTimeout(() => {
        if (this.closing !== null) return;
        void this.replicas.maintain();
        armRetention();
      }, this.config.retentionCheckIntervalMs);
      this.retentionTimer.unref();
    };
    armRetention();
    await cluster.start(context.advertised(), this.kafka?.advertised ?? null);
    // A cluster of one is its own majority: it answers once it is registered (a few ms) and
    // has opened the replicas its metadata names, so a topic created right after start has a
    // live broker to be placed on and a request right after a restart finds its partition.
    // Brokers of a larger cluster register once a majority of voters is up, which a start must
    // not wait for.
    if (cluster.voters.length === 1) {
      if (!(await cluster.waitRegistered(this.config.limits.requestTimeoutMs))) {
        throw new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          `this broker (a cluster of one) did not register with its own controller within ${this.config.limits.requestTimeoutMs} ms`,
        );
      }
      await this.admin.idle();
      // Its replicas elect themselves at once; their reports reach the metadata a moment later.
      await cluster.waitLeading(LEADING_WAIT_MS_MAX);
    }
    this.compaction?.start();
    this.ready = true;
    const early = this.early ?? [];
    this.early = null;
    for (const e of early) this.accept(e.socket, e.context);
    this.logger.info(
      {
        port: this._address.port,
        httpPort: this._httpAddress?.port ?? null,
        kafkaPort: this.kafka?.address.port ?? null,
        topics: cluster.state.topics.size,
        cluster: { voters: cluster.voters },
        offlinePartitions: this.readiness().offlinePartitionCount,
        startupMs: Date.now() - started,
      },
      'broker listening',
    );
  }

  /** What the request handlers see of this broker. */
  private handlerContext(cluster: ClusterNode): BrokerContext {
    return {
      config: this.config,
      logger: this.logger,
      metrics: this.metrics,
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
    if (this.early !== null) {
      this.early.push({ socket, context });
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
    if (this.retentionTimer) clearTimeout(this.retentionTimer);
    const serverClosed = Promise.all([
      this.server ? closeServer(this.server) : Promise.resolve(),
      this.kafka?.close(),
    ]);
    // Parked fetches answer now with what they have; acks=all produces waiting for a flush get it.
    this.replicas.wakeAll();
    await this.replicas.flushAll();
    await Promise.all(
      [...this.connections].map((c) => c.drain(this.config.limits.shutdownTimeoutMs)),
    );
    for (const c of this.connections) c.destroy();
    this.router?.destroyAll();
    for (const e of this.early ?? []) e.socket.destroy();
    this.early = null;
    // A running clean stops before the replicas close.
    await this.compaction?.close();
    // Before the listener can finish closing: the peer links hold sockets it accepted.
    await this.cluster?.close();
    await serverClosed;
    await this.admin.idle();
    await this.replicas.closeAll();
    if (this.httpServer) await closeServer(this.httpServer, true);
    this.logger.info('broker stopped');
  }
}

/** A cluster of one's start waits at most this long for its leaders to be named (then serves). */
const LEADING_WAIT_MS_MAX = 5000;

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
