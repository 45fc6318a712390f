// A small in-memory broker that speaks the native wire protocol, for the SDK's unit tests (and
// anyone testing code that uses the SDK without starting a real broker). It keeps whole batches
// in memory, assigns offsets with setBaseOffset, answers an idempotent producer's duplicate
// batch with its original offset, long-polls fetches, and can inject faults: drop a connection
// right after appending a produce (the ack is lost), or answer the next produce with an error.
// It is not the broker: no durability, no limits beyond the frame size, one node (id 0 unless
// `nodeId` says otherwise). `FakeCluster` runs several that share one set of topics and a
// leader per partition: the others answer that partition's produce, fetch, list-offsets and
// delete-records with NOT_LEADER_OR_FOLLOWER, and `moveLeader` hands it over (a new leader
// epoch), as a replicated cluster's leader change looks to a client. `leaderHints` makes those
// refusals of produce and fetch name a leader (`currentLeader`), `freezeMetadata` keeps Metadata
// naming the leaders of that moment (the lag of a real cluster's controller state).
import net from 'node:net';
import {
  API_VERSION_RANGES,
  ApiKey,
  type ApiKeyValue,
  checkApiVersion,
  decodeRequest,
  ErrorCode,
  encodeControlBatch,
  encodeErrorResponse,
  encodeResponse,
  type Frame,
  FrameFlag,
  FrameParser,
  OffsetSpec,
  type ResponseOf,
  readBatchHeader,
  StreamBusError,
  setBaseOffset,
  splitBatches,
  validateBatch,
} from '@streambus/protocol';
import { FakeGroupCoordinator, GROUP_API_KEYS, type GroupApiKey } from './fake-groups.js';

interface StoredBatch {
  readonly baseOffset: number;
  readonly lastOffset: number;
  readonly maxTimestamp: number;
  readonly bytes: Buffer;
}

interface FakePartition {
  batches: StoredBatch[];
  logStartOffset: number;
  nextOffset: number;
  /** producerId -> baseSequence -> baseOffset */
  readonly sequences: Map<number, Map<number, number>>;
  /** Per producer id, the base sequence its next new batch must carry (as the real broker). */
  readonly nextSequences: Map<number, number>;
}

interface FakeTopic {
  readonly partitions: FakePartition[];
  readonly configs: Map<string, string>;
}

/** What the brokers of a FakeCluster share. */
interface FakeClusterState {
  readonly id: string;
  readonly topics: Map<string, FakeTopic>;
  readonly brokers: FakeBroker[];
  /** `topic/partition` -> leader node id and epoch; absent: the first broker, epoch 0. */
  readonly leaders: Map<string, { nodeId: number; epoch: number }>;
  readonly groups: FakeGroupCoordinator;
  /** The broker that coordinates every group (FindCoordinator); the others answer NOT_COORDINATOR. */
  coordinatorId: number;
  /** The leader a produce/fetch refusal names (`currentLeader`); null: none (an older broker). */
  hint: LeaderHintSource | null;
  /** Leaders Metadata answers with while frozen (`freezeMetadata`); null: the current ones. */
  metadataLeaders: Map<string, { nodeId: number; epoch: number }> | null;
}

/** What a refusal of `topic`/`partition` names as its leader (null: nothing). */
export type LeaderHintSource = (
  topic: string,
  partition: number,
  leader: { readonly nodeId: number; readonly epoch: number },
) => { leaderId: number; leaderEpoch: number } | null;

export interface FakeBrokerOptions {
  readonly defaultPartitions?: number;
  /** This broker's node id (default 0). */
  readonly nodeId?: number;
  /** APIs this broker does not advertise nor answer, as a broker older than them. */
  readonly withoutApis?: readonly ApiKeyValue[];
}

export class FakeBroker {
  readonly topics: Map<string, FakeTopic>;
  readonly nodeId: number;
  /** Produce requests received (after faults), for assertions. */
  produceRequests = 0;
  /** Metadata requests received, for assertions. */
  metadataRequests = 0;
  /** Produce request frames that arrived (held or not). */
  produceFramesReceived = 0;
  /** Partitions answered NOT_LEADER_OR_FOLLOWER (another broker of the cluster leads them). */
  notLeaderAnswers = 0;
  private produceGate: { promise: Promise<void>; open: () => void } | null = null;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly waiters = new Set<() => void>();
  private dropAfterNextProduce = 0;
  private failNextProduceCodes: number[] = [];
  /** Until this time (ms), every fetched partition answers NOT_LEADER_OR_FOLLOWER. */
  failFetchesUntilMs = 0;
  private nextProducerId = 1000;
  port = 0;
  private readonly shared: FakeClusterState | null;
  /** The consumer-group coordinator (shared by a FakeCluster's brokers; see fake-groups.ts). */
  readonly groups: FakeGroupCoordinator;

  constructor(
    private readonly options: FakeBrokerOptions = {},
    shared?: FakeClusterState,
  ) {
    this.nodeId = options.nodeId ?? 0;
    this.shared = shared ?? null;
    this.topics = shared?.topics ?? new Map();
    this.groups =
      shared?.groups ?? new FakeGroupCoordinator((t) => this.topics.get(t)?.partitions.length ?? 0);
  }

  /** The node id of the broker coordinating groups (this one outside a FakeCluster). */
  private coordinatorId(): number {
    return this.shared?.coordinatorId ?? this.nodeId;
  }

  /** Listening (not closed). */
  get isLive(): boolean {
    return this.server !== null;
  }

  static async start(options: FakeBrokerOptions = {}): Promise<FakeBroker> {
    const b = new FakeBroker(options);
    await b.listen();
    return b;
  }

  get bootstrap(): string {
    return `127.0.0.1:${this.port}`;
  }

  /** The next `count` produce requests are appended, then their connection is dropped unanswered. */
  dropConnectionAfterProduce(count = 1): void {
    this.dropAfterNextProduce = count;
  }

  /** The next produce requests are answered with these error codes (nothing appended). */
  failNextProduce(...codes: number[]): void {
    this.failNextProduceCodes.push(...codes);
  }

  /** Produce requests wait (unanswered, in order) until releaseProduce(). */
  holdProduce(): void {
    if (this.produceGate !== null) return;
    let open!: () => void;
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.produceGate = { promise, open };
  }

  releaseProduce(): void {
    this.produceGate?.open();
    this.produceGate = null;
  }

  /** Drops the error codes queued by failNextProduce that were not used yet. */
  clearProduceFailures(): void {
    this.failNextProduceCodes = [];
  }

  /** The leader of a partition and its epoch (this broker, epoch 0, outside a FakeCluster). */
  leaderOf(topic: string, partition: number): { nodeId: number; epoch: number } {
    if (this.shared === null) return { nodeId: this.nodeId, epoch: 0 };
    return (
      this.shared.leaders.get(`${topic}/${partition}`) ?? {
        nodeId: this.shared.brokers[0]!.nodeId,
        epoch: 0,
      }
    );
  }

  private brokersInCluster(): readonly FakeBroker[] {
    return this.shared?.brokers ?? [this];
  }

  /** NOT_LEADER_OR_FOLLOWER's answer when another broker leads the partition, else null. */
  private notLeader(
    topic: string,
    partition: number,
    withHint = false,
  ): {
    errorCode: number;
    errorMessage: string;
    currentLeader?: { leaderId: number; leaderEpoch: number };
  } | null {
    if (!this.topics.get(topic)?.partitions[partition]) return null;
    const current = this.leaderOf(topic, partition);
    const leader = current.nodeId;
    if (leader === this.nodeId) return null;
    this.notLeaderAnswers++;
    const hint = withHint ? (this.shared?.hint?.(topic, partition, current) ?? null) : null;
    return {
      errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER,
      errorMessage: `broker ${this.nodeId} is not the leader of ${topic}/${partition} (broker ${leader} is)`,
      ...(hint === null ? {} : { currentLeader: hint }),
    };
  }

  createTopic(name: string, partitions: number, configs: Record<string, string> = {}): void {
    const parts: FakePartition[] = [];
    for (let i = 0; i < partitions; i++) {
      parts.push({
        batches: [],
        logStartOffset: 0,
        nextOffset: 0,
        sequences: new Map(),
        nextSequences: new Map(),
      });
    }
    this.topics.set(name, { partitions: parts, configs: new Map(Object.entries(configs)) });
  }

  /**
   * Appends a control batch (as a new Raft leader's no-op takes an offset) and wakes fetches
   * waiting at the log end.
   */
  appendControlBatch(topic: string, partition: number): void {
    const part = this.topics.get(topic)?.partitions[partition];
    if (part === undefined) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `no fake partition ${topic}/${partition}`,
      );
    }
    const bytes = encodeControlBatch({
      type: 1,
      producerId: -1,
      producerEpoch: -1,
      coordinatorEpoch: 0,
      baseOffset: part.nextOffset,
    });
    const h = readBatchHeader(bytes);
    part.batches.push({
      baseOffset: part.nextOffset,
      lastOffset: part.nextOffset,
      maxTimestamp: h.maxTimestamp,
      bytes,
    });
    part.nextOffset += 1;
    for (const w of [...this.waiters]) w();
  }

  /** Disconnects every client (the server keeps listening). */
  dropAllConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    if (this.shared === null) this.groups.close();
    this.releaseProduce();
    for (const s of this.sockets) s.destroy();
    for (const w of this.waiters) w();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.server = null;
  }

  /** Starts listening on a free 127.0.0.1 port (start() and FakeCluster.start() call it). */
  listen(): Promise<void> {
    return new Promise((resolve, reject) => {
      const server = net.createServer((socket) => this.accept(socket));
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => {
        this.port = (server.address() as net.AddressInfo).port;
        this.server = server;
        resolve();
      });
    });
  }

  private accept(socket: net.Socket): void {
    this.sockets.add(socket);
    const parser = new FrameParser();
    // Responses go out in request order even when a fetch long-polls.
    let chain: Promise<void> = Promise.resolve();
    socket.on('close', () => this.sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = parser.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        if (frame.apiKey === ApiKey.PRODUCE) this.produceFramesReceived++;
        chain = chain.then(async () => {
          if (socket.destroyed) return;
          let out: Buffer | null;
          try {
            out = await this.handle(frame, socket);
          } catch (err) {
            const e =
              err instanceof StreamBusError
                ? err
                : new StreamBusError(ErrorCode.UNKNOWN_SERVER_ERROR, String(err));
            out = encodeErrorResponse(frame, e);
          }
          if (out !== null && (frame.flags & FrameFlag.NO_RESPONSE) === 0 && !socket.destroyed) {
            socket.write(out);
          }
        });
      }
    });
  }

  private async handle(frame: Frame, socket: net.Socket): Promise<Buffer | null> {
    checkApiVersion(frame.apiKey, frame.apiVersion);
    const key = frame.apiKey as ApiKeyValue;
    if (this.options.withoutApis?.includes(key)) {
      throw new StreamBusError(ErrorCode.UNKNOWN_API_KEY, `unknown API key ${key}`);
    }
    const reply = <K extends ApiKeyValue>(k: K, body: ResponseOf<K>): Buffer =>
      encodeResponse({ ...frame, apiKey: k }, body);
    if (GROUP_API_KEYS.has(key)) {
      if (this.coordinatorId() !== this.nodeId) {
        throw new StreamBusError(
          ErrorCode.NOT_COORDINATOR,
          `broker ${this.nodeId} is not the group coordinator (broker ${this.coordinatorId()} is)`,
        );
      }
      const k = key as GroupApiKey;
      return reply(k, await this.groups.handle(k, decodeRequest(k, frame)));
    }
    switch (key) {
      case ApiKey.FIND_COORDINATOR: {
        const req = decodeRequest(ApiKey.FIND_COORDINATOR, frame);
        const c = this.brokersInCluster().find((b) => b.nodeId === this.coordinatorId());
        return reply(ApiKey.FIND_COORDINATOR, {
          coordinators: req.groupIds.map((groupId) =>
            c === undefined || !c.isLive
              ? {
                  groupId,
                  errorCode: ErrorCode.COORDINATOR_NOT_AVAILABLE,
                  nodeId: -1,
                  host: '',
                  port: 0,
                }
              : { groupId, errorCode: 0, nodeId: c.nodeId, host: '127.0.0.1', port: c.port },
          ),
        });
      }
      case ApiKey.API_VERSIONS:
        decodeRequest(ApiKey.API_VERSIONS, frame);
        return reply(ApiKey.API_VERSIONS, {
          errorCode: 0,
          apis: Object.entries(API_VERSION_RANGES)
            .filter(([k]) => !this.options.withoutApis?.includes(Number(k) as ApiKeyValue))
            .map(([k, r]) => ({ apiKey: Number(k), minVersion: r.min, maxVersion: r.max })),
          brokerVersion: 'fake',
          nodeId: this.nodeId,
        });
      case ApiKey.METADATA: {
        const req = decodeRequest(ApiKey.METADATA, frame);
        this.metadataRequests++;
        const names = req.topics ?? [...this.topics.keys()];
        const live = this.brokersInCluster().filter((b) => b.isLive);
        const ids = this.brokersInCluster().map((b) => b.nodeId);
        return reply(ApiKey.METADATA, {
          clusterId: this.shared?.id ?? 'fake-cluster',
          controllerId: this.controllerId(),
          brokers: live.map((b) => ({
            nodeId: b.nodeId,
            host: '127.0.0.1',
            port: b.port,
            rack: null,
          })),
          topics: names.map((name) => {
            const t = this.topics.get(name);
            if (!t)
              return { name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, partitions: [] };
            return {
              name,
              errorCode: 0,
              partitions: t.partitions.map((_, partition) => {
                const leader =
                  this.shared?.metadataLeaders?.get(`${name}/${partition}`) ??
                  this.leaderOf(name, partition);
                return {
                  partition,
                  errorCode: 0,
                  leaderId: leader.nodeId,
                  leaderEpoch: leader.epoch,
                  replicas: ids,
                  isr: live.map((b) => b.nodeId),
                };
              }),
            };
          }),
        });
      }
      case ApiKey.DESCRIBE_CLUSTER: {
        decodeRequest(ApiKey.DESCRIBE_CLUSTER, frame);
        const all = this.brokersInCluster();
        const partitions = [...this.topics].flatMap(([name, t]) =>
          t.partitions.map((_, p) => this.leaderOf(name, p).nodeId),
        );
        return reply(ApiKey.DESCRIBE_CLUSTER, {
          errorCode: 0,
          clusterId: this.shared?.id ?? 'fake-cluster',
          controllerId: this.controllerId(),
          brokers: all.map((b) => ({
            nodeId: b.nodeId,
            host: '127.0.0.1',
            port: b.port,
            rack: null,
            live: b.isLive,
            fenced: !b.isLive,
            isVoter: true,
            replicaCount: partitions.length,
            leaderCount: partitions.filter((id) => id === b.nodeId).length,
          })),
        });
      }
      case ApiKey.CREATE_TOPICS: {
        const req = decodeRequest(ApiKey.CREATE_TOPICS, frame);
        return reply(ApiKey.CREATE_TOPICS, {
          topics: req.topics.map((t) => {
            if (this.topics.has(t.name)) {
              return {
                name: t.name,
                errorCode: ErrorCode.TOPIC_ALREADY_EXISTS,
                errorMessage: `topic '${t.name}' already exists`,
              };
            }
            const brokers = this.brokersInCluster().length;
            if (t.replicationFactor > brokers || t.replicationFactor === 0) {
              return {
                name: t.name,
                errorCode: ErrorCode.INVALID_REPLICATION_FACTOR,
                errorMessage: `replication factor ${t.replicationFactor}: this cluster has ${brokers} broker${brokers === 1 ? '' : 's'}`,
              };
            }
            const n = t.partitions < 0 ? (this.options.defaultPartitions ?? 1) : t.partitions;
            if (n < 1) return { name: t.name, errorCode: ErrorCode.INVALID_PARTITIONS };
            this.createTopic(t.name, n, t.configs);
            return { name: t.name, errorCode: 0 };
          }),
        });
      }
      case ApiKey.DELETE_TOPICS: {
        const req = decodeRequest(ApiKey.DELETE_TOPICS, frame);
        return reply(ApiKey.DELETE_TOPICS, {
          topics: req.topics.map((name) => ({
            name,
            errorCode: this.topics.delete(name) ? 0 : ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          })),
        });
      }
      case ApiKey.DESCRIBE_CONFIGS: {
        const req = decodeRequest(ApiKey.DESCRIBE_CONFIGS, frame);
        return reply(ApiKey.DESCRIBE_CONFIGS, {
          topics: req.topics.map((name) => {
            const t = this.topics.get(name);
            if (!t) return { name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, configs: [] };
            return {
              name,
              errorCode: 0,
              configs: [...t.configs].map(([k, v]) => ({
                name: k,
                value: v,
                isDefault: false,
                readOnly: false,
              })),
            };
          }),
        });
      }
      case ApiKey.ALTER_CONFIGS: {
        const req = decodeRequest(ApiKey.ALTER_CONFIGS, frame);
        return reply(ApiKey.ALTER_CONFIGS, {
          topics: req.topics.map((t) => {
            const topic = this.topics.get(t.name);
            if (!topic) return { name: t.name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
            for (const [k, v] of Object.entries(t.configs)) {
              if (v === null) topic.configs.delete(k);
              else topic.configs.set(k, v);
            }
            return { name: t.name, errorCode: 0 };
          }),
        });
      }
      case ApiKey.INIT_PRODUCER_ID:
        decodeRequest(ApiKey.INIT_PRODUCER_ID, frame);
        return reply(ApiKey.INIT_PRODUCER_ID, {
          errorCode: 0,
          producerId: this.nextProducerId++,
          producerEpoch: 0,
        });
      case ApiKey.PRODUCE:
        while (this.produceGate !== null) await this.produceGate.promise;
        return this.produce(frame, socket);
      case ApiKey.FETCH:
        return this.fetch(frame);
      case ApiKey.LIST_OFFSETS: {
        const req = decodeRequest(ApiKey.LIST_OFFSETS, frame);
        return reply(ApiKey.LIST_OFFSETS, {
          topics: this.eachPartition(req.topics, { offset: -1, timestamp: -1 }, (part, p) => {
            let offset: number;
            if (p.timestamp === OffsetSpec.LATEST) offset = part.nextOffset;
            else if (p.timestamp === OffsetSpec.EARLIEST) offset = part.logStartOffset;
            else offset = part.batches.find((b) => b.maxTimestamp >= p.timestamp)?.baseOffset ?? -1;
            return { errorCode: 0, offset, timestamp: -1 };
          }),
        });
      }
      case ApiKey.DELETE_RECORDS: {
        const req = decodeRequest(ApiKey.DELETE_RECORDS, frame);
        return reply(ApiKey.DELETE_RECORDS, {
          topics: this.eachPartition(req.topics, { lowWatermark: -1 }, (part, p) => {
            const to = p.offset < 0 ? part.nextOffset : Math.min(p.offset, part.nextOffset);
            part.logStartOffset = Math.max(part.logStartOffset, to);
            part.batches = part.batches.filter((b) => b.lastOffset >= part.logStartOffset);
            return { errorCode: 0, lowWatermark: part.logStartOffset };
          }),
        });
      }
      default:
        throw new StreamBusError(ErrorCode.UNKNOWN_API_KEY, `api ${key}`);
    }
  }

  /** The first live broker of the cluster (this one outside a FakeCluster); -1 when none. */
  private controllerId(): number {
    return this.brokersInCluster().find((b) => b.isLive)?.nodeId ?? -1;
  }

  /**
   * Answers every requested partition with `answer(part, p)`, or with `unknown` and
   * UNKNOWN_TOPIC_OR_PARTITION when its topic or partition does not exist, or
   * NOT_LEADER_OR_FOLLOWER when another broker of the cluster leads it.
   */
  private eachPartition<P extends { partition: number }, R extends object>(
    topics: readonly { name: string; partitions: readonly P[] }[],
    unknown: R,
    answer: (part: FakePartition, p: P) => R & { errorCode: number },
  ): { name: string; partitions: (R & { partition: number; errorCode: number })[] }[] {
    return topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        const part = this.topics.get(t.name)?.partitions[p.partition];
        if (!part) {
          return {
            ...unknown,
            partition: p.partition,
            errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          };
        }
        const moved = this.notLeader(t.name, p.partition);
        if (moved !== null) return { ...unknown, ...moved, partition: p.partition };
        return { ...answer(part, p), partition: p.partition };
      }),
    }));
  }

  private produce(frame: Frame, socket: net.Socket): Buffer | null {
    const req = decodeRequest(ApiKey.PRODUCE, frame);
    this.produceRequests++;
    const failCode = this.failNextProduceCodes.shift();
    const topics = req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => {
        const base = { partition: p.partition, logAppendTimeMs: -1, logStartOffset: 0 };
        if (failCode !== undefined) return { ...base, errorCode: failCode, baseOffset: -1 };
        const part = this.topics.get(t.name)?.partitions[p.partition];
        if (!part)
          return { ...base, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, baseOffset: -1 };
        const moved = this.notLeader(t.name, p.partition, true);
        if (moved !== null) return { ...base, ...moved, baseOffset: -1 };
        let first = -1;
        for (const { position, size } of splitBatches(p.records)) {
          const header = validateBatch(p.records, position);
          if (header.producerId >= 0) {
            const seen = part.sequences.get(header.producerId)?.get(header.baseSequence);
            if (seen !== undefined) {
              if (first < 0) first = seen;
              continue;
            }
            const expected = part.nextSequences.get(header.producerId);
            if (expected !== undefined && header.baseSequence !== expected) {
              return {
                ...base,
                errorCode: ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                baseOffset: -1,
                errorMessage: `expected sequence ${expected}, got ${header.baseSequence}`,
              };
            }
          }
          const bytes = Buffer.from(p.records.subarray(position, position + size));
          setBaseOffset(bytes, 0, part.nextOffset);
          const h = readBatchHeader(bytes);
          part.batches.push({
            baseOffset: part.nextOffset,
            lastOffset: part.nextOffset + h.lastOffsetDelta,
            maxTimestamp: h.maxTimestamp,
            bytes,
          });
          if (h.producerId >= 0) {
            let m = part.sequences.get(h.producerId);
            if (!m) {
              m = new Map();
              part.sequences.set(h.producerId, m);
            }
            m.set(h.baseSequence, part.nextOffset);
            part.nextSequences.set(h.producerId, h.baseSequence + h.lastOffsetDelta + 1);
          }
          if (first < 0) first = part.nextOffset;
          part.nextOffset += h.lastOffsetDelta + 1;
        }
        return { ...base, errorCode: 0, baseOffset: first, logStartOffset: part.logStartOffset };
      }),
    }));
    for (const w of [...this.waiters]) w();
    if (this.dropAfterNextProduce > 0) {
      this.dropAfterNextProduce--;
      socket.destroy();
      return null;
    }
    return encodeResponse({ ...frame, apiKey: ApiKey.PRODUCE }, { topics });
  }

  private async fetch(frame: Frame): Promise<Buffer> {
    const req = decodeRequest(ApiKey.FETCH, frame);
    let errors = 0;
    const collect = (): { body: ResponseOf<typeof ApiKey.FETCH>; bytes: number } => {
      let total = 0;
      errors = 0;
      const topics = req.topics.map((t) => ({
        name: t.name,
        partitions: t.partitions.map((p) => {
          const part = this.topics.get(t.name)?.partitions[p.partition];
          const empty = {
            partition: p.partition,
            highWatermark: -1,
            logStartOffset: -1,
            lastStableOffset: -1,
            records: Buffer.alloc(0),
          };
          if (!part) {
            errors++;
            return { ...empty, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
          }
          const moved = this.notLeader(t.name, p.partition, true);
          if (moved !== null) {
            errors++;
            return { ...empty, ...moved };
          }
          if (Date.now() < this.failFetchesUntilMs) {
            errors++;
            return { ...empty, errorCode: ErrorCode.NOT_LEADER_OR_FOLLOWER };
          }
          const meta = {
            highWatermark: part.nextOffset,
            logStartOffset: part.logStartOffset,
            lastStableOffset: part.nextOffset,
          };
          if (p.fetchOffset < part.logStartOffset || p.fetchOffset > part.nextOffset) {
            errors++;
            return { ...empty, ...meta, errorCode: ErrorCode.OFFSET_OUT_OF_RANGE };
          }
          const chosen: Buffer[] = [];
          let bytes = 0;
          for (const b of part.batches) {
            if (b.lastOffset < p.fetchOffset) continue;
            if (
              chosen.length > 0 &&
              bytes + b.bytes.length > Math.min(p.partitionMaxBytes, req.maxBytes - total)
            )
              break;
            chosen.push(b.bytes);
            bytes += b.bytes.length;
          }
          total += bytes;
          return { ...empty, ...meta, errorCode: 0, records: Buffer.concat(chosen) };
        }),
      }));
      return { body: { topics }, bytes: total };
    };
    let result = collect();
    if (errors === 0 && result.bytes < Math.max(1, req.minBytes) && req.maxWaitMs > 0) {
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          this.waiters.delete(done);
          resolve();
        };
        const timer = setTimeout(done, req.maxWaitMs);
        this.waiters.add(done);
      });
      result = collect();
    }
    return encodeResponse({ ...frame, apiKey: ApiKey.FETCH }, result.body);
  }
}

/** A 127.0.0.1 address nothing listens on (a port bound, then released): a dead broker. */
export async function deadAddress(): Promise<string> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', resolve);
  });
  const { port } = s.address() as net.AddressInfo;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return `127.0.0.1:${port}`;
}

/**
 * Several FakeBrokers (node ids 1..count) sharing one set of topics, with a leader per
 * partition (broker 1 until `moveLeader`). Metadata from any of them names every live broker
 * and each partition's leader and epoch; DescribeCluster lists every broker, live or closed.
 */
export class FakeCluster {
  private constructor(
    readonly brokers: readonly FakeBroker[],
    private readonly state: FakeClusterState,
  ) {}

  static async start(count: number, options: FakeBrokerOptions = {}): Promise<FakeCluster> {
    if (!Number.isInteger(count) || count < 1) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `count: expected >= 1, got ${count}`);
    }
    const topics = new Map<string, FakeTopic>();
    const state: FakeClusterState = {
      id: 'fake-cluster',
      topics,
      brokers: [],
      leaders: new Map(),
      groups: new FakeGroupCoordinator((t) => topics.get(t)?.partitions.length ?? 0),
      coordinatorId: 1,
      hint: null,
      metadataLeaders: null,
    };
    for (let i = 1; i <= count; i++) {
      state.brokers.push(new FakeBroker({ ...options, nodeId: i }, state));
    }
    const cluster = new FakeCluster(state.brokers, state);
    try {
      for (const b of state.brokers) await b.listen();
    } catch (err) {
      await cluster.close();
      throw err;
    }
    return cluster;
  }

  /** Every broker's address, comma-separated (the SDK's and the CLI's bootstrap form). */
  get bootstrap(): string {
    return this.brokers.map((b) => b.bootstrap).join(',');
  }

  broker(nodeId: number): FakeBroker {
    const b = this.brokers.find((x) => x.nodeId === nodeId);
    if (b === undefined) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `no fake broker ${nodeId}`);
    }
    return b;
  }

  createTopic(name: string, partitions: number, configs: Record<string, string> = {}): void {
    this.brokers[0]!.createTopic(name, partitions, configs);
  }

  leaderOf(topic: string, partition: number): number {
    return this.brokers[0]!.leaderOf(topic, partition).nodeId;
  }

  /** Hands a partition's leadership to `nodeId`, with the next leader epoch. */
  moveLeader(topic: string, partition: number, nodeId: number): void {
    this.broker(nodeId);
    const epoch = this.brokers[0]!.leaderOf(topic, partition).epoch + 1;
    this.state.leaders.set(`${topic}/${partition}`, { nodeId, epoch });
  }

  /**
   * What produce and fetch refusals name as the partition's leader: 'current' (the leader and
   * epoch), a function of the partition and its leader, or null (no hint, the default).
   */
  leaderHints(source: 'current' | LeaderHintSource | null): void {
    this.state.hint =
      source === 'current'
        ? (_t, _p, leader) => ({ leaderId: leader.nodeId, leaderEpoch: leader.epoch })
        : source;
  }

  /** Metadata keeps naming the leaders of now (every partition of every topic) until `thaw`. */
  freezeMetadata(): void {
    const frozen = new Map<string, { nodeId: number; epoch: number }>();
    for (const [name, t] of this.state.topics) {
      for (let p = 0; p < t.partitions.length; p++) {
        frozen.set(`${name}/${p}`, this.brokers[0]!.leaderOf(name, p));
      }
    }
    this.state.metadataLeaders = frozen;
  }

  /** Metadata names the current leaders again. */
  thawMetadata(): void {
    this.state.metadataLeaders = null;
  }

  /** The shared group coordinator. */
  get groups(): FakeGroupCoordinator {
    return this.state.groups;
  }

  /** Makes `nodeId` the group coordinator (groups keep their state, as after a failover). */
  moveCoordinator(nodeId: number): void {
    this.broker(nodeId);
    this.state.coordinatorId = nodeId;
  }

  async close(): Promise<void> {
    this.state.groups.close();
    for (const b of this.brokers) await b.close();
  }
}
