// The single-node broker: the TCP listener, the HTTP admin port, the topic registry and the
// request handlers for every native API. Handlers are thin: they decode a request, call the pure
// cores (topic-config, produce-validation, idempotence via Partition) and the partition logs, and
// encode a response. Errors scoped to a topic or partition are answered in that entry; a request
// that fails as a whole gets an ERROR frame (connection.ts).
//
// Startup: open metadata.json, remove topic directories no topic owns (a delete interrupted by a
// crash), open every partition (storage recovery runs here), then listen. Shutdown (`close`):
// stop accepting, answer or time out in-flight requests, wake parked fetches, close the logs
// (flush + producer-state snapshot), close the ports.
import { mkdir, readdir, rm } from 'node:fs/promises';
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
  StreamBusError,
} from '@streambus/protocol';
import pino, { type Logger } from 'pino';
import { type BrokerBudgets, brokerBudgets, registerBudgetGauges } from './byte-budget.js';
import { type BrokerConfig, checkRelations, type HostPort } from './config.js';
import { Connection, type RequestContext, type Response } from './connection.js';
import { refuseDuplicatePartitions } from './fetch-request.js';
import { createAdminServer } from './http-server.js';
import { MetadataStore, type TopicRecord } from './metadata-store.js';
import { BrokerMetrics } from './metrics.js';
import { type Acks, type OpenPartitionLog, Partition } from './partition.js';
import { validateProduceRecords } from './produce-validation.js';
import { openStoragePartitionLog } from './storage-log.js';
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

export class Broker {
  readonly config: BrokerConfig;
  readonly logger: Logger;
  readonly metrics: BrokerMetrics;
  private readonly topics = new Map<string, TopicState>();
  private readonly connections = new Set<Connection>();
  /** Broker-wide inbound-frame and outbound-response byte budgets (connection.ts). */
  private readonly budgets: BrokerBudgets;
  private readonly openLog: OpenPartitionLog;
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

  private constructor(config: BrokerConfig, options: BrokerOptions) {
    this.config = config;
    this.logger = (options.logger ?? pino({ level: config.logLevel })).child({
      nodeId: config.nodeId,
    });
    this.metrics = new BrokerMetrics(() => this.allPartitions());
    this.budgets = brokerBudgets(config.limits);
    registerBudgetGauges(this.metrics.registry, this.budgets);
    this.openLog = options.openLog ?? openStoragePartitionLog(this.metrics);
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
    await mkdir(join(this.config.dataDir, 'topics'), { recursive: true });
    this.metadata = await MetadataStore.open(this.config.dataDir);
    await this.removeOrphanTopicDirs();
    for (const record of this.metadata.topics) {
      const config = resolveTopicConfig(
        this.config.defaults,
        record.overrides,
        this.config.limits.frameBytesMax,
      );
      const partitions = await this.openPartitions(record, config);
      this.topics.set(record.name, { record, config, partitions });
    }
    this.server = createServer({ noDelay: true }, (socket) => this.accept(socket));
    this.server.maxConnections = this.config.limits.connectionsMax;
    this.server.on('drop', () => this.metrics.connectionsRejected.inc());
    this._address = await listen(this.server, this.config.listen);
    if (this.config.http !== null) {
      this.httpServer = createAdminServer(
        this.metrics.registry,
        () => this.ready && this.closing === null,
      );
      this._httpAddress = await listen(this.httpServer, this.config.http);
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
        startupMs: Date.now() - started,
      },
      'broker listening',
    );
  }

  private async removeOrphanTopicDirs(): Promise<void> {
    const owned = new Set(this.metadata.topics.map((t) => String(t.id)));
    for (const name of await readdir(join(this.config.dataDir, 'topics'))) {
      if (!owned.has(name)) {
        this.logger.info({ dir: name }, 'removing data of a deleted topic');
        await rm(join(this.config.dataDir, 'topics', name), { recursive: true, force: true });
      }
    }
  }

  private async openPartitions(record: TopicRecord, config: TopicConfig): Promise<Partition[]> {
    const dir = this.topicDir(record.id);
    await mkdir(dir, { recursive: true });
    const partitions: Partition[] = [];
    try {
      for (let i = 0; i < record.partitions; i++) {
        partitions.push(
          await Partition.open(
            record.name,
            i,
            join(dir, String(i)),
            config,
            this.openLog,
            this.config.limits.fetchWaitersMax,
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
    }
  }

  private partitionError(err: unknown, context: Record<string, unknown>): PartitionError {
    if (isStreamBusError(err)) {
      return { errorCode: err.code, errorMessage: err.message.slice(0, ERROR_MESSAGE_LENGTH_MAX) };
    }
    this.logger.error({ err, ...context }, 'unexpected error');
    return { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR, errorMessage: 'unexpected server error' };
  }

  private partition(topic: string, index: number): Partition {
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
      if (t === undefined && req.topics !== null && this.config.autoCreateTopics) {
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
          errorCode: 0,
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
    const record = await this.metadata.addTopic(name, partitions, overrides);
    const opened = await this.openPartitions(record, config);
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
          await Promise.allSettled(t.partitions.map((p) => p.close()));
          await rm(this.topicDir(t.record.id), { recursive: true, force: true });
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
              const validated = validateProduceRecords(records, p.topicConfig, now);
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
    const results = await Promise.allSettled([...this.allPartitions()].map((p) => p.close()));
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

function listen(
  server: Server | ReturnType<typeof createAdminServer>,
  at: HostPort,
): Promise<HostPort> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(
        new StreamBusError(
          ErrorCode.INVALID_CONFIG,
          `cannot listen on ${at.host}:${at.port}: ${err.message}`,
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
