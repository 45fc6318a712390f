// A small in-memory broker that speaks the native wire protocol, for the SDK's unit tests (and
// anyone testing code that uses the SDK without starting a real broker). It keeps whole batches
// in memory, assigns offsets with setBaseOffset, answers an idempotent producer's duplicate
// batch with its original offset, long-polls fetches, and can inject faults: drop a connection
// right after appending a produce (the ack is lost), or answer the next produce with an error.
// It is not the broker: no durability, no limits beyond the frame size, one node (id 0).
import net from 'node:net';
import {
  API_VERSION_RANGES,
  ApiKey,
  type ApiKeyValue,
  checkApiVersion,
  decodeRequest,
  ErrorCode,
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

export interface FakeBrokerOptions {
  readonly defaultPartitions?: number;
}

export class FakeBroker {
  readonly topics = new Map<string, FakeTopic>();
  /** Produce requests received (after faults), for assertions. */
  produceRequests = 0;
  /** Metadata requests received, for assertions. */
  metadataRequests = 0;
  /** Produce request frames that arrived (held or not). */
  produceFramesReceived = 0;
  private produceGate: { promise: Promise<void>; open: () => void } | null = null;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly waiters = new Set<() => void>();
  private dropAfterNextProduce = 0;
  private failNextProduceCodes: number[] = [];
  private nextProducerId = 1000;
  port = 0;

  constructor(private readonly options: FakeBrokerOptions = {}) {}

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

  /** Disconnects every client (the server keeps listening). */
  dropAllConnections(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.releaseProduce();
    for (const s of this.sockets) s.destroy();
    for (const w of this.waiters) w();
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.server = null;
  }

  private listen(): Promise<void> {
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
    const reply = <K extends ApiKeyValue>(k: K, body: ResponseOf<K>): Buffer =>
      encodeResponse({ ...frame, apiKey: k }, body);
    switch (key) {
      case ApiKey.API_VERSIONS:
        decodeRequest(ApiKey.API_VERSIONS, frame);
        return reply(ApiKey.API_VERSIONS, {
          errorCode: 0,
          apis: Object.entries(API_VERSION_RANGES).map(([k, r]) => ({
            apiKey: Number(k),
            minVersion: r.min,
            maxVersion: r.max,
          })),
          brokerVersion: 'fake',
          nodeId: 0,
        });
      case ApiKey.METADATA: {
        const req = decodeRequest(ApiKey.METADATA, frame);
        this.metadataRequests++;
        const names = req.topics ?? [...this.topics.keys()];
        return reply(ApiKey.METADATA, {
          clusterId: 'fake-cluster',
          controllerId: 0,
          brokers: [{ nodeId: 0, host: '127.0.0.1', port: this.port, rack: null }],
          topics: names.map((name) => {
            const t = this.topics.get(name);
            if (!t)
              return { name, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, partitions: [] };
            return {
              name,
              errorCode: 0,
              partitions: t.partitions.map((_, partition) => ({
                partition,
                errorCode: 0,
                leaderId: 0,
                leaderEpoch: 0,
                replicas: [0],
                isr: [0],
              })),
            };
          }),
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

  /**
   * Answers every requested partition with `answer(part, p)`, or with `unknown` and
   * UNKNOWN_TOPIC_OR_PARTITION when its topic or partition does not exist.
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
