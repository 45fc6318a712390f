// The single-node broker: the TCP listener, the HTTP admin port, the topic registry and the
// request handlers for every native API. Handlers are thin: they decode a request, call the pure
// cores (topic-config, produce-validation, idempotence via Partition) and the partition logs, and
// encode a response. Errors scoped to a topic or partition are answered in that entry; a request
// that fails as a whole gets an ERROR frame (connection.ts).
//
// Startup: open metadata.json, remove topic directories no topic owns (a delete interrupted by a
// crash, or a create that did not finish), open every partition (storage recovery runs here),
// then listen. A partition that cannot be opened (damage, EMFILE) is kept offline and the broker
// starts anyway (partition.ts, offline-log.ts); RepairPartition brings it back. Topic creation is
// atomic: limits checked up front, partition directories made and opened, metadata.json written
// last; on any failure everything made so far is closed and removed. Shutdown (`close`):
// stop accepting, answer or time out in-flight requests, wake parked fetches, close the logs
// (flush + producer-state snapshot), close the ports.
import type { AddressInfo } from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import {
  type AlterConfigsRequest,
  type AlterConfigsResponse,
  API_VERSION_RANGES,
  ApiKey,
  type ApiKeyValue,
  type CreateTopicsRequest,
  type CreateTopicsResponse,
  checkApiVersion,
  type DeleteRecordsRequest,
  type DeleteRecordsResponse,
  type DeleteTopicsRequest,
  type DeleteTopicsResponse,
  type DescribeConfigsRequest,
  type DescribeConfigsResponse,
  decodeRequest,
  ErrorCode,
  encodeResponse,
  encodeResponseParts,
  type FetchRequest,
  type FetchResponse,
  type Frame,
  FrameFlag,
  type InitProducerIdRequest,
  type InitProducerIdResponse,
  isStreamBusError,
  type ListOffsetsRequest,
  type ListOffsetsResponse,
  type MetadataRequest,
  type MetadataResponse,
  OffsetSpec,
  type ProduceRequest,
  type ProduceResponse,
  REPAIR_ITEMS_MAX,
  type RepairPartitionRequest,
  type RepairPartitionResponse,
  StreamBusError,
} from '@streambus/protocol';
import { type FileSystem, type LogEvent, removeTree } from '@streambus/storage';
import pino, { type Logger } from 'pino';
import { type BrokerBudgets, brokerBudgets, registerBudgetGauges } from './byte-budget.js';
import { type BrokerConfig, checkRelations, type HostPort } from './config.js';
import { Connection, type RequestContext, type Response } from './connection.js';
import { prepareDataDir } from './data-dir.js';
import { describeClusterOfOne } from './describe-cluster.js';
import { refuseDuplicatePartitions } from './fetch-request.js';
import { createAdminServer, type Readiness } from './http-server.js';
import { MetadataStore, type TopicRecord } from './metadata-store.js';
import { BrokerMetrics } from './metrics.js';
import { type OfflineState, REPAIRING_REASON } from './offline-log.js';
import {
  type Acks,
  type OpenPartitionLog,
  Partition,
  type PartitionHooks,
  type RepairPartitionLog,
} from './partition.js';
import { checkPartitionLimits } from './partition-limits.js';
import { validateProduceRecords } from './produce-validation.js';
import { settleBounded } from './settle-bounded.js';
import { isDiskFull, systemStorageError } from './storage-errors.js';
import { brokerFileSystem, openPartitionLogOn, repairPartitionLogOn } from './storage-log.js';
import {
  checkTopicName,
  describeTopicConfig,
  mergeOverrides,
  resolveTopicConfig,
  type TopicConfig,
  type TopicOverrides,
} from './topic-config.js';

export const BROKER_VERSION = '0.1.0';
/** How often connections are checked for request timeouts and idleness. */
const SWEEP_INTERVAL_MS_MAX = 1000;
const ERROR_MESSAGE_LENGTH_MAX = 4096;
const PRODUCER_EPOCH_MAX = 32767;
/** Partitions closed at once (each close needs a few file descriptors for a moment). */
const PARTITION_CLOSES_MAX = 16;

interface TopicState {
  record: TopicRecord;
  config: TopicConfig;
  partitions: Partition[];
}

interface PartitionError {
  errorCode: number;
  errorMessage?: string;
}

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
}

/** Offline partitions listed by /ready at most (the count is always complete). */
const READY_OFFLINE_LISTED_MAX = 1000;

/** Config fields a partition log only takes when it is opened. */
const LOG_FIELDS: ReadonlyArray<keyof TopicConfig> = [
  'retentionBytes',
  'retentionMs',
  'segmentBytes',
  'segmentMs',
  'durability',
  'flushIntervalMs',
];

export class Broker {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  private readonly topics = new Map<string, TopicState>();
  private readonly connections = new Set<Connection>();
  /** Broker-wide inbound-frame and outbound-response byte budgets (connection.ts). */
  private readonly budgets: BrokerBudgets;
  private readonly openLog: OpenPartitionLog;
  private readonly repairLog: RepairPartitionLog;
  /** The broker's one FileSystem (storage-log.ts): logs, metadata.json, snapshots, topic dirs. */
  private readonly fs: FileSystem;
  /** Whether `fs` is the real disk (the data directory is then checked with node:fs first). */
  private readonly realDisk: boolean;
  private readonly partitionHooks: PartitionHooks;
  private server: Server | null = null;
  private httpServer: ReturnType<typeof createAdminServer> | null = null;
  private sweepTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private metadata!: MetadataStore;
  private ready = false;
  private closing: Promise<void> | null = null;
  /** Topic creation, deletion and config changes run one at a time. */
  private adminChain: Promise<unknown> = Promise.resolve();
  private _address: HostPort = { host: '', port: 0 };
  private _httpAddress: HostPort | null = null;
  /** Storage failures of partitions: one log line per change of state, a count per failure. */
  private readonly partitionEvents: PartitionHooks = {
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
  };

  private constructor(config: BrokerConfig, options: BrokerOptions) {
    this.config = config;
    this.logger = (options.logger ?? pino({ level: config.logLevel })).child({
      nodeId: config.nodeId,
    });
    this.metrics = new BrokerMetrics(() => this.allPartitions());
    this.budgets = brokerBudgets(config.limits);
    registerBudgetGauges(this.metrics.registry, this.budgets);
    this.fs = brokerFileSystem(this.metrics, {
      openFilesMax: config.limits.openFilesMax,
      logger: this.logger,
      ...(options.fileSystem ? { fileSystem: options.fileSystem } : {}),
    });
    this.realDisk = options.fileSystem === undefined;
    this.openLog =
      options.openLog ??
      openPartitionLogOn(this.fs, { unsyncedBytesMax: config.limits.unsyncedBytesMax });
    this.repairLog = options.repairLog ?? repairPartitionLogOn(this.fs);
    this.partitionHooks = {
      ...this.partitionEvents,
      onLogEvent: (p, e) => this.onLogEvent(p, e),
      onOffline: (p, state) => this.onPartitionOffline(p, state),
    };
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

  private readiness(): Readiness {
    const offline: Array<Readiness['offlinePartitions'][number]> = [];
    let count = 0;
    for (const p of this.allPartitions()) {
      const o = p.offline;
      if (o === null) continue;
      count++;
      if (offline.length < READY_OFFLINE_LISTED_MAX) {
        offline.push({ topic: p.topic, partition: p.index, reason: o.reason, sinceMs: o.sinceMs });
      }
    }
    return {
      ready: this.ready && this.closing === null,
      offlinePartitionCount: count,
      offlinePartitions: offline,
    };
  }

  private partitionCount(): number {
    let n = 0;
    for (const t of this.topics.values()) n += t.partitions.length;
    return n;
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

  private *allPartitions(): Iterable<Partition> {
    for (const t of this.topics.values()) yield* t.partitions;
  }

  private topicDir(id: number): string {
    return join(this.config.dataDir, 'topics', String(id));
  }

  private async startUp(): Promise<void> {
    const started = Date.now();
    if (this.realDisk) await prepareDataDir(this.config.dataDir);
    else await this.fs.mkdir(join(this.config.dataDir, 'topics'));
    this.metadata = await MetadataStore.open(this.fs, this.config.dataDir);
    await this.removeOrphanTopicDirs();
    for (const record of this.metadata.topics) {
      const config = resolveTopicConfig(
        this.config.defaults,
        record.overrides,
        this.config.limits.frameBytesMax,
      );
      const partitions = await this.openPartitions(record, config, true);
      this.topics.set(record.name, { record, config, partitions });
    }
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
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
      () => void this.maintain(),
      this.config.retentionCheckIntervalMs,
    );
    this.retentionTimer.unref();
    this.ready = true;
    this.logger.info(
      {
        port: this._address.port,
        httpPort: this._httpAddress?.port ?? null,
        topics: this.topics.size,
        offlinePartitions: this.readiness().offlinePartitionCount,
        startupMs: Date.now() - started,
      },
      'broker listening',
    );
  }

  private async removeOrphanTopicDirs(): Promise<void> {
    const owned = new Set(this.metadata.topics.map((t) => String(t.id)));
    for (const name of await this.fs.readdir(join(this.config.dataDir, 'topics'))) {
      if (!owned.has(name)) {
        this.logger.info({ dir: name }, 'removing data of a deleted topic');
        await removeTree(this.fs, join(this.config.dataDir, 'topics', name));
      }
    }
  }

  /** `tolerant` (startup): a partition that cannot be opened is kept offline, not fatal. */
  private async openPartitions(
    record: TopicRecord,
    config: TopicConfig,
    tolerant = false,
  ): Promise<Partition[]> {
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
            this.partitionHooks,
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

  private accept(socket: Socket): void {
    if (this.closing !== null) {
      socket.destroy();
      return;
    }
    this.metrics.connectionsTotal.inc();
    this.metrics.connections.inc();
    const conn = new Connection(
      socket,
      this.config.limits,
      (frame, ctx) => this.handleRequest(frame, ctx),
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

  /** Periodic: retention on every partition, then a producer-state snapshot. */
  private async maintain(): Promise<void> {
    for (const p of this.allPartitions()) {
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

  // ---- dispatch -------------------------------------------------------------------------------

  private handleRequest(
    frame: Frame,
    ctx: RequestContext,
  ): Response | null | Promise<Response | null> {
    if (this.closing !== null) {
      throw new StreamBusError(ErrorCode.SHUTTING_DOWN, 'broker is shutting down');
    }
    checkApiVersion(frame.apiKey, frame.apiVersion);
    const key: ApiKeyValue = frame.apiKey;
    switch (key) {
      case ApiKey.API_VERSIONS:
        decodeRequest(key, frame);
        return encodeResponse({ ...frame, apiKey: key }, this.apiVersions());
      case ApiKey.METADATA:
        return this.metadataRequest(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.CREATE_TOPICS:
        return this.createTopics(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.DELETE_TOPICS:
        return this.deleteTopics(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.DESCRIBE_CONFIGS:
        return encodeResponse(
          { ...frame, apiKey: key },
          this.describeConfigs(decodeRequest(key, frame)),
        );
      case ApiKey.ALTER_CONFIGS:
        return this.alterConfigs(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.PRODUCE: {
        const req = decodeRequest(key, frame);
        const noResponse = (frame.flags & FrameFlag.NO_RESPONSE) !== 0;
        if (req.acks === 0 && !noResponse) {
          throw new StreamBusError(
            ErrorCode.INVALID_REQUEST,
            'produce with acks=0 must set NO_RESPONSE',
          );
        }
        return this.produce(req).then((b) =>
          noResponse ? null : encodeResponse({ ...frame, apiKey: key }, b),
        );
      }
      case ApiKey.FETCH:
        // Header and body leave as two buffers: the record bytes are copied once (by msgpack).
        return this.fetch(decodeRequest(key, frame), ctx).then((b) =>
          encodeResponseParts({ ...frame, apiKey: key }, b),
        );
      case ApiKey.LIST_OFFSETS:
        return this.listOffsets(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.DELETE_RECORDS:
        return this.deleteRecords(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.INIT_PRODUCER_ID:
        return this.initProducerId(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.REPAIR_PARTITION:
        return this.repairPartition(decodeRequest(key, frame)).then((b) =>
          encodeResponse({ ...frame, apiKey: key }, b),
        );
      case ApiKey.DESCRIBE_CLUSTER:
        decodeRequest(key, frame);
        return encodeResponse(
          { ...frame, apiKey: key },
          describeClusterOfOne({
            clusterId: this.metadata.clusterId,
            nodeId: this.config.nodeId,
            host: this.advertisedHost(),
            port: this._address.port,
            partitions: [...this.allPartitions()].length,
          }),
        );
    }
  }

  private partitionError(err: unknown, context: Record<string, unknown>): PartitionError {
    // An OS error from the broker's own files (a full disk creating a topic) is a storage error.
    err = systemStorageError(err) ?? err;
    if (isStreamBusError(err)) {
      return { errorCode: err.code, errorMessage: err.message.slice(0, ERROR_MESSAGE_LENGTH_MAX) };
    }
    this.logger.error({ err, ...context }, 'unexpected error');
    return { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR, errorMessage: 'unexpected server error' };
  }

  /** A partition that serves: UNKNOWN_TOPIC_OR_PARTITION, or its offline error. */
  private partition(topic: string, index: number): Partition {
    const p = this.knownPartition(topic, index);
    p.checkServing();
    return p;
  }

  private knownPartition(topic: string, index: number): Partition {
    const p = this.topics.get(topic)?.partitions[index];
    if (p === undefined) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `unknown topic or partition ${topic}-${index}`,
      );
    }
    return p;
  }

  private admin<T>(work: () => Promise<T>): Promise<T> {
    const next = this.adminChain.then(work, work);
    this.adminChain = next.catch(() => {});
    return next;
  }

  // ---- APIs -----------------------------------------------------------------------------------

  private apiVersions() {
    return {
      errorCode: 0,
      apis: Object.entries(API_VERSION_RANGES).map(([k, r]) => ({
        apiKey: Number(k),
        minVersion: r.min,
        maxVersion: r.max,
      })),
      brokerVersion: BROKER_VERSION,
      nodeId: this.config.nodeId,
    };
  }

  private advertisedHost(): string {
    const h = this._address.host;
    return h === '0.0.0.0' || h === '::' ? '127.0.0.1' : h;
  }

  private async metadataRequest(req: MetadataRequest): Promise<MetadataResponse> {
    const names = req.topics ?? [...this.topics.keys()];
    const topics: MetadataResponse['topics'] = [];
    for (const name of names) {
      let t = this.topics.get(name);
      if (
        t === undefined &&
        req.topics !== null &&
        this.config.autoCreateTopics &&
        req.allowAutoTopicCreation !== false
      ) {
        try {
          checkTopicName(name);
          await this.admin(() => this.createTopic(name, this.config.defaults.partitions, {}));
        } catch (err) {
          if (!isStreamBusError(err, ErrorCode.TOPIC_ALREADY_EXISTS)) {
            topics.push({ ...this.partitionError(err, { topic: name }), name, partitions: [] });
            continue;
          }
        }
        t = this.topics.get(name);
      }
      if (t === undefined) {
        topics.push({
          errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          errorMessage: `unknown topic ${name}`,
          name,
          partitions: [],
        });
        continue;
      }
      const id = this.config.nodeId;
      topics.push({
        errorCode: 0,
        name,
        partitions: t.partitions.map((p) => ({
          ...(p.offline === null
            ? { errorCode: 0 }
            : {
                errorCode: ErrorCode.KAFKA_STORAGE_ERROR,
                errorMessage: `offline: ${p.offline.reason}`.slice(0, ERROR_MESSAGE_LENGTH_MAX),
              }),
          partition: p.index,
          leaderId: id,
          leaderEpoch: 0,
          replicas: [id],
          isr: [id],
        })),
      });
    }
    return {
      clusterId: this.metadata.clusterId,
      controllerId: this.config.nodeId,
      brokers: [
        {
          nodeId: this.config.nodeId,
          host: this.advertisedHost(),
          port: this._address.port,
          rack: null,
        },
      ],
      topics,
    };
  }

  private async createTopic(
    name: string,
    partitions: number,
    overrides: TopicOverrides,
  ): Promise<void> {
    if (this.topics.has(name)) {
      throw new StreamBusError(ErrorCode.TOPIC_ALREADY_EXISTS, `topic ${name} already exists`);
    }
    const config = resolveTopicConfig(
      this.config.defaults,
      overrides,
      this.config.limits.frameBytesMax,
    );
    checkPartitionLimits(this.config.limits, name, partitions, this.partitionCount());
    // Atomic: the data first, metadata.json last; a failure removes what was made, and a crash
    // part-way leaves a directory no topic owns, which the next startup removes.
    const record: TopicRecord = { name, id: this.metadata.reserveTopicId(), partitions, overrides };
    let opened: Partition[] = [];
    try {
      opened = await this.openPartitions(record, config);
      await this.metadata.addTopic(name, partitions, overrides, record.id);
    } catch (err) {
      await Promise.allSettled(opened.map((p) => p.close()));
      await removeTree(this.fs, this.topicDir(record.id)).catch((e: unknown) =>
        this.logger.error({ err: e, topic: name }, 'removing a half-made topic failed'),
      );
      this.logger.warn({ err, topic: name, partitions }, 'topic creation failed; nothing kept');
      throw err;
    }
    this.topics.set(name, { record, config, partitions: opened });
    this.logger.info({ topic: name, partitions, overrides }, 'topic created');
  }

  private async createTopics(req: CreateTopicsRequest): Promise<CreateTopicsResponse> {
    const topics: CreateTopicsResponse['topics'] = [];
    for (const t of req.topics) {
      try {
        checkTopicName(t.name);
        const partitions = t.partitions === -1 ? this.config.defaults.partitions : t.partitions;
        if (partitions < 1) {
          throw new StreamBusError(
            ErrorCode.INVALID_PARTITIONS,
            `partitions must be at least 1, got ${partitions}`,
          );
        }
        if (t.replicationFactor !== -1 && t.replicationFactor !== 1) {
          throw new StreamBusError(
            ErrorCode.INVALID_REPLICATION_FACTOR,
            `replication factor ${t.replicationFactor} needs more brokers: this cluster has 1 (use 1 or -1)`,
          );
        }
        resolveTopicConfig(this.config.defaults, t.configs, this.config.limits.frameBytesMax);
        checkPartitionLimits(this.config.limits, t.name, partitions, this.partitionCount());
        if (req.validateOnly) {
          if (this.topics.has(t.name)) {
            throw new StreamBusError(
              ErrorCode.TOPIC_ALREADY_EXISTS,
              `topic ${t.name} already exists`,
            );
          }
        } else {
          await this.admin(() => this.createTopic(t.name, partitions, t.configs));
        }
        topics.push({ errorCode: 0, name: t.name });
      } catch (err) {
        topics.push({ ...this.partitionError(err, { topic: t.name }), name: t.name });
      }
    }
    return { topics };
  }

  private async deleteTopics(req: DeleteTopicsRequest): Promise<DeleteTopicsResponse> {
    const topics: DeleteTopicsResponse['topics'] = [];
    for (const name of req.topics) {
      try {
        await this.admin(async () => {
          const t = this.topics.get(name);
          if (t === undefined) {
            throw new StreamBusError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, `unknown topic ${name}`);
          }
          await this.metadata.removeTopic(name);
          this.topics.delete(name);
          await settleBounded(t.partitions, (p) => p.close(), PARTITION_CLOSES_MAX);
          await removeTree(this.fs, this.topicDir(t.record.id));
          this.logger.info({ topic: name }, 'topic deleted');
        });
        topics.push({ errorCode: 0, name });
      } catch (err) {
        topics.push({ ...this.partitionError(err, { topic: name }), name });
      }
    }
    return { topics };
  }

  private describeConfigs(req: DescribeConfigsRequest): DescribeConfigsResponse {
    return {
      topics: req.topics.map((name) => {
        const t = this.topics.get(name);
        if (t === undefined) {
          return {
            errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            errorMessage: `unknown topic ${name}`,
            name,
            configs: [],
          };
        }
        const configs = [
          {
            name: 'partitions',
            value: String(t.partitions.length),
            isDefault: false,
            readOnly: true,
          },
          ...describeTopicConfig(t.config, t.record.overrides),
        ];
        return { errorCode: 0, name, configs };
      }),
    };
  }

  private async alterConfigs(req: AlterConfigsRequest): Promise<AlterConfigsResponse> {
    const topics: AlterConfigsResponse['topics'] = [];
    for (const change of req.topics) {
      try {
        await this.admin(async () => {
          const t = this.topics.get(change.name);
          if (t === undefined) {
            throw new StreamBusError(
              ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
              `unknown topic ${change.name}`,
            );
          }
          const overrides = mergeOverrides(t.record.overrides, change.configs);
          const config = resolveTopicConfig(
            this.config.defaults,
            overrides,
            this.config.limits.frameBytesMax,
          );
          if (req.validateOnly) return;
          await this.metadata.setOverrides(change.name, overrides);
          const reopen = LOG_FIELDS.some((f) => t.config[f] !== config[f]);
          t.record = { ...t.record, overrides };
          t.config = config;
          if (reopen) {
            for (const p of t.partitions) await p.reopen(config, this.openLog);
          }
        });
        topics.push({ errorCode: 0, name: change.name });
      } catch (err) {
        topics.push({ ...this.partitionError(err, { topic: change.name }), name: change.name });
      }
    }
    return { topics };
  }

  private async produce(req: ProduceRequest): Promise<ProduceResponse> {
    const acks = req.acks as Acks;
    const now = Date.now();
    const topics = await Promise.all(
      req.topics.map(async (t) => ({
        name: t.name,
        partitions: await Promise.all(
          t.partitions.map(async ({ partition, records }) => {
            try {
              const p = this.partition(t.name, partition);
              const validated = validateProduceRecords(
                records,
                p.topicConfig,
                now,
                this.config.limits.decompressedBytesMax,
              );
              const out = await p.produce(records, validated, acks);
              if (!out.duplicate) this.metrics.recordsIn.inc(validated.recordCount);
              return {
                errorCode: 0,
                partition,
                baseOffset: out.baseOffset,
                logAppendTimeMs: out.appendTimeMs,
                logStartOffset: p.logStartOffset,
              };
            } catch (err) {
              this.countPartitionError('produce', err);
              return {
                ...this.partitionError(err, { topic: t.name, partition }),
                partition,
                baseOffset: -1,
                logAppendTimeMs: -1,
                logStartOffset: -1,
              };
            }
          }),
        ),
      })),
    );
    return { topics };
  }

  private countPartitionError(api: string, err: unknown): void {
    const code = isStreamBusError(err) ? err.code : ErrorCode.UNKNOWN_SERVER_ERROR;
    this.metrics.requestErrors.inc({ api, code });
  }

  private async fetch(req: FetchRequest, ctx: RequestContext): Promise<FetchResponse> {
    refuseDuplicatePartitions(req);
    const waitMs = Math.max(0, Math.min(req.maxWaitMs, this.config.limits.requestTimeoutMs - 100));
    const deadline = Date.now() + waitMs;
    let heldBytes = 0;
    for (;;) {
      const endsBefore = this.requestedPartitions(req).map((p) => p?.highWatermark ?? -1);
      // A round that parks again drops its (too small) data: give its reservation back first.
      ctx.releaseResponseBytes(heldBytes);
      const { response, bytes, failed } = await this.fetchOnce(req, ctx);
      heldBytes = bytes;
      const remainingMs = deadline - Date.now();
      if (
        bytes >= req.minBytes ||
        failed ||
        remainingMs <= 0 ||
        ctx.signal.aborted ||
        this.closing !== null
      ) {
        return response;
      }
      const partitions = this.requestedPartitions(req);
      if (partitions.some((p, i) => (p?.highWatermark ?? -1) !== endsBefore[i])) continue;
      const parked = await this.park(partitions as Partition[], remainingMs, ctx.signal);
      if (!parked) return response;
    }
  }

  private requestedPartitions(req: FetchRequest): Array<Partition | undefined> {
    const out: Array<Partition | undefined> = [];
    for (const t of req.topics) {
      const topic = this.topics.get(t.name);
      for (const p of t.partitions) out.push(topic?.partitions[p.partition]);
    }
    return out;
  }

  /** Waits for an append to any of `partitions`, the timeout, or the connection closing. */
  private park(partitions: Partition[], timeoutMs: number, signal: AbortSignal): Promise<boolean> {
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

  /**
   * One pass over the requested partitions. The record bytes are capped by `maxBytes` and the
   * broker's `limits.fetchBytesMax` (only a first batch larger than the cap may pass it, as in
   * Kafka, so a consumer can always make progress); each read is reserved in advance against
   * the connection's and the broker's outbound budgets (`ctx.reserveResponseBytes`) for the
   * most it can return, and the unused part given back. When a reservation is refused, that
   * partition and the rest are answered without records (errorCode 0): the consumer asks again.
   * Returns with `bytes` still reserved (released as the response is written).
   */
  private async fetchOnce(
    req: FetchRequest,
    ctx: RequestContext,
  ): Promise<{ response: FetchResponse; bytes: number; failed: boolean }> {
    const cap = Math.min(Math.max(0, req.maxBytes), this.config.limits.fetchBytesMax);
    let budget = cap;
    let outOfBudget = false;
    let bytes = 0;
    let failed = false;
    const topics: FetchResponse['topics'] = [];
    for (const t of req.topics) {
      const partitions: FetchResponse['topics'][number]['partitions'] = [];
      for (const { partition, fetchOffset, partitionMaxBytes } of t.partitions) {
        try {
          const p = this.partition(t.name, partition);
          const limit = Math.min(partitionMaxBytes, budget);
          const hw = p.highWatermark;
          let data: Buffer = EMPTY;
          // A read returns at least one whole batch: reserve for the larger of the two.
          const reserve = Math.max(limit, p.topicConfig.maxMessageBytes);
          if ((limit > 0 || bytes === 0) && !outOfBudget && fetchOffset < hw) {
            if (!ctx.reserveResponseBytes(reserve)) {
              outOfBudget = true;
            } else {
              try {
                const result = await p.read(fetchOffset, Math.max(1, limit));
                // Past the cap only as the response's first batch (Kafka KIP-74).
                if (bytes === 0 || bytes + result.data.length <= cap) data = result.data;
                else budget = 0;
              } finally {
                ctx.releaseResponseBytes(reserve - data.length);
              }
            }
          } else if (fetchOffset < p.logStartOffset || fetchOffset > hw) {
            throw new StreamBusError(
              ErrorCode.OFFSET_OUT_OF_RANGE,
              `offset ${fetchOffset} is outside [${p.logStartOffset}, ${hw}]`,
            );
          }
          budget -= data.length;
          bytes += data.length;
          partitions.push({
            errorCode: 0,
            partition,
            highWatermark: p.highWatermark,
            logStartOffset: p.logStartOffset,
            lastStableOffset: p.highWatermark,
            records: data,
          });
        } catch (err) {
          failed = true;
          this.metrics.requestErrors.inc({
            api: 'fetch',
            code: isStreamBusError(err) ? err.code : -1,
          });
          const known = this.topics.get(t.name)?.partitions[partition];
          partitions.push({
            ...this.partitionError(err, { topic: t.name, partition }),
            partition,
            highWatermark: known?.highWatermark ?? -1,
            logStartOffset: known?.logStartOffset ?? -1,
            lastStableOffset: known?.highWatermark ?? -1,
            records: EMPTY,
          });
        }
      }
      topics.push({ name: t.name, partitions });
    }
    return { response: { topics }, bytes, failed };
  }

  private async listOffsets(req: ListOffsetsRequest): Promise<ListOffsetsResponse> {
    const topics: ListOffsetsResponse['topics'] = [];
    for (const t of req.topics) {
      const partitions: ListOffsetsResponse['topics'][number]['partitions'] = [];
      for (const { partition, timestamp } of t.partitions) {
        try {
          const p = this.partition(t.name, partition);
          let offset: number;
          let found = -1;
          if (timestamp === OffsetSpec.LATEST) offset = p.highWatermark;
          else if (timestamp === OffsetSpec.EARLIEST) offset = p.logStartOffset;
          else if (timestamp >= 0) {
            // Kafka's answer: the first record at or after T (below the high watermark) and its
            // timestamp; -1 and -1 when there is none.
            const hit = await p.findOffsetByTimestamp(timestamp);
            offset = hit?.offset ?? -1;
            found = hit?.timestamp ?? -1;
          } else {
            throw new StreamBusError(
              ErrorCode.INVALID_REQUEST,
              `timestamp ${timestamp}: use -1 (latest), -2 (earliest) or a time in ms`,
            );
          }
          partitions.push({ errorCode: 0, partition, offset, timestamp: found });
        } catch (err) {
          partitions.push({
            ...this.partitionError(err, { topic: t.name, partition }),
            partition,
            offset: -1,
            timestamp: -1,
          });
        }
      }
      topics.push({ name: t.name, partitions });
    }
    return { topics };
  }

  private async deleteRecords(req: DeleteRecordsRequest): Promise<DeleteRecordsResponse> {
    const topics: DeleteRecordsResponse['topics'] = [];
    for (const t of req.topics) {
      const partitions: DeleteRecordsResponse['topics'][number]['partitions'] = [];
      for (const { partition, offset } of t.partitions) {
        try {
          const p = this.partition(t.name, partition);
          const target = offset === -1 ? p.highWatermark : offset;
          const lowWatermark = await p.deleteRecordsBefore(target);
          partitions.push({ errorCode: 0, partition, lowWatermark });
        } catch (err) {
          partitions.push({
            ...this.partitionError(err, { topic: t.name, partition }),
            partition,
            lowWatermark: -1,
          });
        }
      }
      topics.push({ name: t.name, partitions });
    }
    return { topics };
  }

  private async initProducerId(req: InitProducerIdRequest): Promise<InitProducerIdResponse> {
    if (req.producerId !== undefined && req.producerId >= 0) {
      const epoch = req.producerEpoch ?? -1;
      if (epoch >= 0 && epoch < PRODUCER_EPOCH_MAX) {
        return { errorCode: 0, producerId: req.producerId, producerEpoch: epoch + 1 };
      }
    }
    const producerId = await this.metadata.allocateProducerId();
    return { errorCode: 0, producerId, producerEpoch: 0 };
  }

  /**
   * Repairs one partition while the broker runs (partition.ts `repair`): the partition stops
   * serving, its log directory is repaired (truncate at the damage, or skip the damaged ranges),
   * and it opens again. The answer states the offsets lost and whether it serves again.
   */
  private async repairPartition(req: RepairPartitionRequest): Promise<RepairPartitionResponse> {
    const empty = {
      mode: req.mode,
      dryRun: req.dryRun,
      damages: [],
      damageCount: 0,
      lost: [],
      offsetsLost: null,
      bytesRemoved: 0,
      logEndOffsetBefore: -1,
      logEndOffsetAfter: -1,
      online: false,
      offlineReason: null,
    };
    try {
      const p = this.knownPartition(req.topic, req.partition);
      const r = await this.admin(() =>
        p.repair({ mode: req.mode, dryRun: req.dryRun }, this.repairLog, this.openLog),
      );
      const offline = p.offline;
      this.logger.warn(
        {
          topic: p.topic,
          partition: p.index,
          mode: r.mode,
          dryRun: r.dryRun,
          lost: r.lost,
          offsetsLost: r.offsetsLost,
          bytesRemoved: r.bytesRemoved,
          logEndOffsetBefore: r.logEndOffsetBefore,
          logEndOffsetAfter: r.logEndOffsetAfter,
          online: offline === null,
        },
        r.dryRun ? 'partition repair dry run' : 'partition repaired',
      );
      return {
        errorCode: 0,
        mode: r.mode,
        dryRun: r.dryRun,
        damages: r.damages.slice(0, REPAIR_ITEMS_MAX).map((d) => ({
          segment: d.segment,
          position: d.position,
          bytes: d.bytes,
          fromOffset: d.fromOffset,
          toOffset: d.toOffset,
          reason: d.reason.slice(0, ERROR_MESSAGE_LENGTH_MAX),
        })),
        damageCount: r.damages.length,
        lost: r.lost.slice(0, REPAIR_ITEMS_MAX).map((l) => ({ ...l })),
        offsetsLost: r.offsetsLost,
        bytesRemoved: r.bytesRemoved,
        logEndOffsetBefore: r.logEndOffsetBefore,
        logEndOffsetAfter: r.logEndOffsetAfter,
        online: offline === null,
        offlineReason: offline?.reason.slice(0, ERROR_MESSAGE_LENGTH_MAX) ?? null,
      };
    } catch (err) {
      return {
        ...empty,
        ...this.partitionError(err, { topic: req.topic, partition: req.partition }),
      };
    }
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
    for (const p of this.allPartitions()) p.waiters.wakeAll();
    const flushed = await Promise.allSettled([...this.allPartitions()].map((p) => p.flush()));
    for (const r of flushed) {
      if (r.status === 'rejected')
        this.logger.error({ err: r.reason }, 'flushing a partition failed');
    }
    await Promise.all(
      [...this.connections].map((c) => c.drain(this.config.limits.shutdownTimeoutMs)),
    );
    for (const c of this.connections) c.destroy();
    await serverClosed;
    await this.adminChain;
    const results = await settleBounded(
      [...this.allPartitions()],
      (p) => p.close(),
      PARTITION_CLOSES_MAX,
    );
    this.topics.clear();
    if (this.httpServer) await closeServer(this.httpServer, true);
    for (const r of results) {
      if (r.status === 'rejected')
        this.logger.error({ err: r.reason }, 'closing a partition failed');
    }
    this.logger.info('broker stopped');
  }
}

const EMPTY = Buffer.alloc(0);

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
