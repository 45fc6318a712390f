// The producer: per-partition batching (linger and size), compression, partitioning (murmur2 by
// key, sticky without a key, or an explicit partition), acks 0/1/all, idempotence (on by
// default), bounded retries through the one retry function, and a bounded buffer.
//
// Data path: send() picks a partition and encodes the record straight into that partition's
// open batch (batch-builder.ts). A batch closes when full (batchBytesMax); by default
// (adaptive, batch-policy.ts) at the end of an event-loop turn when nothing is in flight (the
// partition's; the topic's, for its sticky partition), or the batch holds a quarter of the
// recent outstanding volume (else it keeps filling, looked at again at the end of each turn in
// which a request was answered, with the records that answer freed), and within a turn as soon as it holds half of that volume (at
// least 64 records), so a publish loop's window leaves as two overlapping requests, the first
// written while the rest of the window is still being appended; with an explicit lingerMs, after lingerMs (or, if the partition cannot send it
// then, once it can: it keeps filling meanwhile). It then joins the partition's queue. Each
// partition has one sender loop that sends its queued batches in order, up to 5 requests in
// flight (idempotent; 1 without); different partitions send concurrently, and the connection
// bounds requests in flight (inflightRequestsMax). A failed first attempt stops the pipeline
// until recover() has resent every unacknowledged batch in order, one at a time, byte for byte
// with its original sequence, so the broker answers a duplicate with the original offset
// (kafka-protocol.md §4.11). While the partition cannot send, the open batch keeps filling, so
// batches grow with latency.
//
// Idempotence: the producer id and epoch come from INIT_PRODUCER_ID; a batch gets its base
// sequence (the partition's next sequence, advanced by its record count) when it is first sent.
// On OUT_OF_ORDER_SEQUENCE_NUMBER, UNKNOWN_PRODUCER_ID or INVALID_PRODUCER_EPOCH the batch fails
// and the producer asks for a new producer id; sequences restart at 0 under it. Behind a batch
// that failed for good (see recover) such an error re-sequences instead of failing.
//
// Delivery timeout: a batch is retried (retriable errors, backoff with jitter) until
// deliveryTimeoutMs after its first record's send(); then it fails with REQUEST_TIMED_OUT.
//
// Promises: one per batch; send() maps it to the record's offset, sendBatch() resolves once for
// many records. Nothing here retries except through ClientContext.run / runUntil (one layer).
import assert from 'node:assert/strict';
import {
  ApiKey,
  Compression,
  type CompressionCodec,
  compress,
  ErrorCode,
  partitionForKey,
  StreamBusError,
} from '@streambus/protocol';
import {
  BatchBuilder,
  BufferPool,
  type Bytes,
  type HeaderInput,
  stampBatch,
} from './batch-builder.js';
import { AdaptiveBatchPolicy, type PartitionFlow } from './batch-policy.js';
import { partitionRefused } from './cluster.js';
import type { BrokerConnection } from './connection.js';
import type { ClientContext } from './context.js';
import { ProducerDefaults } from './limits.js';
import { encodeProduceChunks } from './produce-frame.js';

export type Acks = 0 | 1 | -1 | 'all';
export type CompressionName = 'none' | 'gzip' | 'snappy' | 'lz4' | 'zstd';

export interface ProducerOptions {
  /** 0: fire and forget; 1: leader append; 'all' (-1): durable (default). */
  readonly acks?: Acks;
  /** Default true (false with acks=0, which cannot be idempotent). */
  readonly idempotent?: boolean;
  readonly compression?: CompressionName | CompressionCodec;
  readonly lingerMs?: number;
  readonly batchBytesMax?: number;
  readonly bufferBytesMax?: number;
  readonly bufferWaitTimeoutMs?: number;
  readonly recordBytesMax?: number;
  /** Broker-side wait for acks=all. */
  readonly ackTimeoutMs?: number;
  /**
   * How long a record may take from send() to its acknowledgement, retries included (Kafka's
   * delivery.timeout.ms; default 120 s). Produce retries are bounded by this, not by the
   * client's `retry.retriesMax` / `retry.totalTimeoutMs`.
   */
  readonly deliveryTimeoutMs?: number;
}

export interface ProducerRecord {
  readonly topic: string;
  readonly key?: Bytes;
  readonly value: Bytes;
  /** As an object ({ name: value }) or a list (repeated keys allowed). */
  readonly headers?: Readonly<Record<string, Bytes>> | readonly HeaderInput[];
  readonly partition?: number;
  /**
   * Milliseconds since the epoch; default now (one clock read serves up to 64 sends in the same
   * turn of the event loop).
   */
  readonly timestamp?: number;
}

export interface RecordMetadata {
  readonly topic: string;
  readonly partition: number;
  /** -1 with acks=0 (the broker does not answer). */
  readonly offset: number;
}

const COMPRESSION_BY_NAME: Readonly<Record<CompressionName, CompressionCodec>> = {
  none: Compression.NONE,
  gzip: Compression.GZIP,
  snappy: Compression.SNAPPY,
  lz4: Compression.LZ4,
  zstd: Compression.ZSTD,
};

const SEQUENCE_MODULO = 0x80000000;
/**
 * Default record timestamps: appends within one turn of the event loop share a clock read, up
 * to this many (Date.now() costs ~70-140 ns here, as much as encoding a 100 B record).
 */
const TIMESTAMP_REUSE_MAX = 64;
/** Partitions stickyPartition() looks at when the sticky one is busy. */
const STICKY_SCAN_MAX = 8;
const PRODUCER_FATAL_CODES: ReadonlySet<number> = new Set([
  ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
  ErrorCode.UNKNOWN_PRODUCER_ID,
  ErrorCode.INVALID_PRODUCER_EPOCH,
]);

/** A batch from first append to acknowledgement (exported for its unit test only). */
export class PendingBatch {
  readonly builder: BatchBuilder;
  /** When its first record was appended plus deliveryTimeoutMs: no retry starts after it. */
  readonly deadlineMs: number;
  bytes: Buffer | null = null;
  poolBuffer: Buffer | null = null;
  stamped = false;
  /** The first attempt's result (pipelined sends); null while it is in flight or not sent. */
  outcome: { readonly base: number } | { readonly error: unknown } | null = null;
  readonly promise: Promise<number>;
  resolve!: (baseOffset: number) => void;
  reject!: (err: unknown) => void;
  /** metadataOf(): the first index mapped by `toMetadata`, how many were, how many it mapped. */
  private mappedFirst = 0;
  private mappedCount = 0;
  private mappedDone = 0;
  private toMetadata: ((base: number) => RecordMetadata) | null = null;

  constructor(
    builder: BatchBuilder,
    deadlineMs: number,
    readonly topic: string,
    readonly partition: number,
  ) {
    this.builder = builder;
    this.deadlineMs = deadlineMs;
    this.promise = new Promise<number>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    // A batch nobody awaits (sendBatch callers who stopped listening) must not crash the process.
    this.promise.catch(() => undefined);
  }

  /**
   * The metadata promise of the batch's record at `index` (send()). Reactions to one promise run
   * in the order they were registered, so records asking in index order (send() asks right after
   * appending) share one function that counts the calls, instead of a closure per record; a
   * record asking out of that order gets its own closure.
   */
  metadataOf(index: number): Promise<RecordMetadata> {
    if (this.mappedCount === 0) {
      this.mappedFirst = index;
      this.toMetadata = (base) => {
        const i = this.mappedFirst + this.mappedDone++;
        return { topic: this.topic, partition: this.partition, offset: base < 0 ? -1 : base + i };
      };
    }
    if (index === this.mappedFirst + this.mappedCount) {
      this.mappedCount++;
      return this.promise.then(this.toMetadata);
    }
    return this.promise.then((base) => ({
      topic: this.topic,
      partition: this.partition,
      offset: base < 0 ? -1 : base + index,
    }));
  }
}

class PartitionState implements PartitionFlow {
  open: PendingBatch | null = null;
  /** Closed batches in order; the first `sent` have been sent at least once. */
  readonly queue: PendingBatch[] = [];
  sent = 0;
  /** First attempts in flight (at most inflightBatchesPerPartitionMax). */
  inflight = 0;
  /**
   * Closed batches whose first attempt has not been answered (in flight, or queued to go as
   * soon as the sender loop has a connection or a slot), and their records: what adaptive
   * batching (batch-policy.ts) counts as in flight.
   */
  inflightRequests = 0;
  inflightRecords = 0;
  /**
   * Adaptive batching's recent outstanding volume (AdaptiveBatchPolicy.observe) of the batches
   * it closed while it was not the topic's sticky partition (keyed or explicit records).
   */
  ownRecentRecords = 0;
  /** A first attempt failed: pipelining stops until recover() has resent in order. */
  failed = false;
  /**
   * A stamped batch failed without an acknowledgement (delivery timeout, or refused): whether
   * the broker holds it is unknown, so the next batches' sequences may leave a gap. Cleared by
   * the next acknowledgement (it was appended) or by re-sequencing after OUT_OF_ORDER (it was not).
   */
  unresolved = false;
  recovering = false;
  /** pumpLoop is running (at most one per partition, so sends start in queue order). */
  pumping = false;
  /**
   * The leader connection the last first attempts went to: while it is open and nothing failed,
   * pumpLoop sends on it synchronously, so a batch closed mid-burst is written at once.
   */
  conn: BrokerConnection | null = null;
  nextSequence = 0;
  sequenceGeneration = 0;
  /**
   * The open batch's close: a lingerMs timer, or an immediate (lingerMs 0, where a 0 ms timer
   * would wait ~1 ms; adaptive batching on an idle partition); none while adaptive batching
   * accumulates behind requests in flight.
   */
  lingerTimer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  lingerImmediate = false;
  /**
   * With lingerMs: the open batch's linger passed while the partition could not send it (at its
   * in-flight bound, or earlier batches still unsent), so it keeps filling until it can go.
   */
  lingerDone = false;
  constructor(
    readonly topic: string,
    readonly partition: number,
    /** What the topic's partitions share: the sticky partition, the records in flight. */
    readonly topicFlow: TopicFlow,
  ) {}

  /**
   * PartitionFlow: the sticky partition's batches are a share of the topic's keyless volume,
   * which stickyPartition() spreads over the partitions, so its volume is the topic's.
   */
  get recentRecords(): number {
    const t = this.topicFlow;
    return t.sticky === this.partition ? t.recentRecords : this.ownRecentRecords;
  }

  /** PartitionFlow: nothing in flight of what recentRecords counts (the topic's, if sticky). */
  get idle(): boolean {
    const t = this.topicFlow;
    return t.sticky === this.partition ? t.inflightRecords === 0 : this.inflightRequests === 0;
  }

  /** PartitionFlow: a batch closed now waits for a recovery to end. */
  get blocked(): boolean {
    return this.failed || this.recovering;
  }

  get openRecords(): number {
    return this.open === null ? 0 : this.open.builder.recordCount;
  }
}

/** What a topic's partitions share (kept when the topic grows). */
class TopicFlow {
  /**
   * Where keyless records go (stickyPartition) until a full batch's worth of them
   * (batchBytesMax) went there, or it is busy; -1 until the first.
   */
  sticky = -1;
  /** Batch bytes closed on the sticky partition since it was chosen. */
  stickyBytes = 0;
  /** The partitions' inflightRecords, summed. */
  inflightRecords = 0;
  /** Adaptive batching's recent outstanding volume of the topic, observed at sticky closes. */
  recentRecords = 0;
}

/**
 * A loaded topic: its partitions and what they share. A topic that grows (CreatePartitions)
 * gets a new TopicState with the same PartitionStates plus the new ones (`growTopic`).
 */
class TopicState {
  constructor(
    readonly name: string,
    readonly partitions: readonly PartitionState[],
    readonly flow: TopicFlow,
  ) {}
}

interface SpaceWaiter {
  readonly resume: () => void;
  readonly timer: NodeJS.Timeout;
  readonly reject: (err: unknown) => void;
}

function normalizeHeaders(h: ProducerRecord['headers']): readonly HeaderInput[] | null {
  if (h === undefined) return null;
  if (Array.isArray(h)) return h as readonly HeaderInput[];
  const out: HeaderInput[] = [];
  for (const [key, value] of Object.entries(h as Record<string, Bytes>)) out.push({ key, value });
  return out;
}

export class Producer {
  readonly acks: -1 | 0 | 1;
  readonly idempotent: boolean;
  readonly compression: CompressionCodec;
  /** null: adaptive batching (the default), decided by `policy`. */
  private readonly lingerMs: number | null;
  private readonly policy: AdaptiveBatchPolicy | null;
  private readonly batchBytesMax: number;
  private readonly bufferBytesMax: number;
  private readonly bufferWaitTimeoutMs: number;
  private readonly recordBytesMax: number;
  private readonly ackTimeoutMs: number;
  private readonly deliveryTimeoutMs: number;
  /** First attempts in flight per partition: 1 without idempotence, so order never depends on a retry. */
  private readonly inflightMax: number;
  private readonly pool: BufferPool;
  private readonly topics = new Map<string, TopicState>();
  /** The topic of the last append: a publish loop sends to one topic, so most skip the map. */
  private lastTopic: TopicState | null = null;
  private readonly topicLoads = new Map<string, Promise<void>>();
  private readonly spaceWaiters: SpaceWaiter[] = [];
  private bufferedBytes = 0;
  private producerId = -1;
  private producerEpoch = -1;
  private producerGeneration = 0;
  private producerInit: Promise<void> | null = null;
  private closed = false;
  /** Stops the cluster's partition-count notifications (close). */
  private readonly stopPartitionCounts: () => void;

  constructor(
    private readonly ctx: ClientContext,
    options: ProducerOptions = {},
  ) {
    const acks = options.acks ?? 'all';
    if (acks !== 0 && acks !== 1 && acks !== -1 && acks !== 'all') {
      throw new StreamBusError(
        ErrorCode.INVALID_REQUIRED_ACKS,
        `acks: expected 0, 1 or 'all', got ${String(acks)}`,
      );
    }
    this.acks = acks === 'all' ? -1 : acks;
    this.idempotent = options.idempotent ?? this.acks !== 0;
    if (this.idempotent && this.acks === 0) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        'idempotent: an idempotent producer needs acks 1 or all',
      );
    }
    const c = options.compression ?? 'none';
    const codec = typeof c === 'string' ? COMPRESSION_BY_NAME[c] : c;
    if (codec === undefined || !Object.values(Compression).includes(codec)) {
      throw new StreamBusError(
        ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
        `compression: expected one of ${Object.keys(COMPRESSION_BY_NAME).join(', ')}, got '${String(c)}'`,
      );
    }
    // Fail now, not at the first batch, if this runtime cannot encode the codec (zstd on Node < 22.15).
    if (codec !== Compression.NONE) compress(codec, Buffer.from('probe'));
    this.compression = codec;
    this.lingerMs =
      options.lingerMs === undefined ? null : positive('lingerMs', options.lingerMs, true);
    this.batchBytesMax = positive(
      'batchBytesMax',
      options.batchBytesMax ?? ProducerDefaults.batchBytesMax,
    );
    this.bufferBytesMax = positive(
      'bufferBytesMax',
      options.bufferBytesMax ?? ProducerDefaults.bufferBytesMax,
    );
    this.bufferWaitTimeoutMs = positive(
      'bufferWaitTimeoutMs',
      options.bufferWaitTimeoutMs ?? ProducerDefaults.bufferWaitTimeoutMs,
    );
    this.recordBytesMax = positive(
      'recordBytesMax',
      options.recordBytesMax ?? ProducerDefaults.recordBytesMax,
    );
    this.ackTimeoutMs = positive('ackTimeoutMs', options.ackTimeoutMs ?? 30_000);
    this.deliveryTimeoutMs = positive(
      'deliveryTimeoutMs',
      options.deliveryTimeoutMs ?? ProducerDefaults.deliveryTimeoutMs,
    );
    this.inflightMax = this.idempotent ? ProducerDefaults.inflightBatchesPerPartitionMax : 1;
    this.policy =
      this.lingerMs === null
        ? new AdaptiveBatchPolicy(this.inflightMax, ProducerDefaults.splitRecordsMin)
        : null;
    this.pool = new BufferPool(
      ProducerDefaults.bufferPoolMax,
      ProducerDefaults.batchBufferInitialBytes,
    );
    this.stopPartitionCounts = ctx.cluster.onPartitionCount((topic, count) =>
      this.growTopic(topic, count),
    );
  }

  /**
   * A loaded topic whose metadata now shows more partitions (CreatePartitions): the new ones take
   * records from here on (keyed records may map elsewhere, as in Kafka). Never shrinks.
   */
  private growTopic(topic: string, count: number): void {
    const ts = this.topics.get(topic);
    if (ts === undefined || count <= ts.partitions.length) return;
    const partitions = [...ts.partitions];
    for (let p = ts.partitions.length; p < count; p++)
      partitions.push(new PartitionState(topic, p, ts.flow));
    const grown = new TopicState(topic, partitions, ts.flow);
    this.topics.set(topic, grown);
    if (this.lastTopic === ts) this.lastTopic = grown;
  }

  /**
   * Gets ready before the first send: takes the producer id (idempotent producers) and loads
   * the metadata of `topics` (with none given, the cluster's brokers), retrying retriable
   * errors under the client's retry policy. Optional: the first send() connects lazily.
   * Unknown topics fail with TOPIC_NOT_FOUND, an unreachable cluster with
   * NETWORK_EXCEPTION, a closed producer with CLIENT_CLOSED.
   */
  async connect(topics: readonly string[] = []): Promise<void> {
    if (this.closed || this.ctx.signal.aborted) {
      throw new StreamBusError(ErrorCode.CLIENT_CLOSED, 'producer closed');
    }
    if (this.idempotent && this.producerId < 0) await this.initProducerId();
    if (topics.length === 0) {
      await this.ctx.run(() => this.ctx.cluster.refreshMetadata([]));
      return;
    }
    await Promise.all(topics.map((t) => this.loadTopic(t)));
  }

  /** Bytes held in open, queued and in-flight batches. */
  get bufferedBytesNow(): number {
    return this.bufferedBytes;
  }

  /**
   * Sends one record; resolves with its partition and offset once acknowledged (per `acks`).
   * Rejects with a StreamBusError: non-retriable codes at once, retriable ones after the retry
   * policy gives up.
   */
  send(record: ProducerRecord): Promise<RecordMetadata> {
    let batch: PendingBatch | null;
    try {
      batch = this.tryAppend(record, false, false);
    } catch (err) {
      return Promise.reject(err);
    }
    if (batch === null) return this.appendSlow(record).then((a) => a.batch.metadataOf(a.index));
    return batch.metadataOf(this.lastIndex);
  }

  /**
   * Sends many records with one promise: cheaper than many send() calls (no promise per
   * record). Resolves with each record's metadata, in input order.
   */
  async sendBatch(records: readonly ProducerRecord[]): Promise<RecordMetadata[]> {
    const batches: PendingBatch[] = new Array(records.length);
    const partitions = new Int32Array(records.length);
    const indexes = new Int32Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      const b = this.tryAppend(r, false, false);
      if (b === null) {
        const a = await this.appendSlow(r);
        batches[i] = a.batch;
        partitions[i] = a.partition;
        indexes[i] = a.index;
      } else {
        batches[i] = b;
        partitions[i] = this.lastPartition;
        indexes[i] = this.lastIndex;
      }
    }
    const unique = [...new Set(batches)];
    const bases = new Map<PendingBatch, number>();
    await Promise.all(unique.map((b) => b.promise.then((base) => bases.set(b, base))));
    const out: RecordMetadata[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const base = bases.get(batches[i]!)!;
      out[i] = {
        topic: records[i]!.topic,
        partition: partitions[i]!,
        offset: base < 0 ? -1 : base + indexes[i]!,
      };
    }
    return out;
  }

  /** Closes every open batch and waits until everything sent so far is settled. */
  async flush(): Promise<void> {
    // Records still on the slow path (metadata, buffer space) belong to this flush too.
    while (this.slowAppends.size > 0) await Promise.allSettled([...this.slowAppends]);
    const pending: Promise<number>[] = [];
    for (const t of this.topics.values()) {
      for (const ps of t.partitions) {
        if (ps.open) this.closeBatch(ps);
        for (const b of ps.queue) pending.push(b.promise);
      }
    }
    await Promise.allSettled(pending);
  }

  /** Flushes, then refuses further sends. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    this.stopPartitionCounts();
    for (const w of this.spaceWaiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(new StreamBusError(ErrorCode.CLIENT_CLOSED, 'producer closed'));
    }
  }

  // --- appending --------------------------------------------------------------------------

  private lastPartition = 0;
  private lastIndex = 0;
  private readonly slowAppends = new Set<Promise<unknown>>();
  private slowTail: Promise<unknown> = Promise.resolve();

  /** The fast path: appends synchronously, or returns null when metadata, the producer id or buffer space is missing. */
  private tryAppend(record: ProducerRecord, resumed: boolean, slow: boolean): PendingBatch | null {
    if (this.closed || this.ctx.signal.aborted) {
      throw new StreamBusError(ErrorCode.CLIENT_CLOSED, 'producer closed');
    }
    const topic = record.topic;
    let ts = this.lastTopic;
    if (ts === null || ts.name !== topic) {
      ts = this.topics.get(topic) ?? null;
      if (ts === null) return null;
      this.lastTopic = ts;
    }
    const count = ts.partitions.length;
    if (this.idempotent && this.producerId < 0) return null;
    if (this.bufferedBytes >= this.bufferBytesMax) return null;
    if (!resumed && this.spaceWaiters.length > 0) return null;
    // Records on the slow path were sent earlier: a new record queues behind them.
    if (!slow && this.slowAppends.size > 0) return null;
    const key = record.key ?? null;
    let partition: number;
    if (record.partition !== undefined) {
      partition = record.partition;
      if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
        throw new StreamBusError(
          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          `topic '${topic}' has no partition ${partition} (it has ${count})`,
        );
      }
    } else if (key !== null) {
      partition = partitionForKey(key, count);
    } else {
      partition = this.stickyPartition(ts);
    }
    const ps = ts.partitions[partition]!;
    let batch = ps.open;
    if (batch === null) {
      batch = this.openBatch(ps);
    }
    const before = batch.builder.sizeBytes;
    const timestamp = record.timestamp ?? this.now();
    const headers = normalizeHeaders(record.headers);
    if (!batch.builder.tryAppend(key, record.value, headers, timestamp)) {
      this.closeBatch(ps);
      batch = this.openBatch(ps);
      const emptySize = batch.builder.sizeBytes;
      batch.builder.tryAppend(key, record.value, headers, timestamp);
      this.bufferedBytes += batch.builder.sizeBytes - emptySize;
    } else {
      this.bufferedBytes += batch.builder.sizeBytes - before;
    }
    this.lastPartition = partition;
    this.lastIndex = batch.builder.recordCount - 1;
    if (this.policy === null) {
      if (batch.builder.sizeBytes >= this.batchBytesMax) this.closeBatch(ps);
    } else if (batch.builder.sizeBytes >= this.batchBytesMax) {
      this.closeBatch(ps);
    } else if (this.policy.closeOnAppend(ps)) {
      this.closeBatch(ps, true);
    } else if (ps.lingerTimer === null) {
      // The batch waited past its first turn: look at it again at the end of this one.
      this.atTurnEnd(ps, batch);
    }
    return batch;
  }

  /**
   * Where a keyless record goes: the topic's sticky partition. When that partition has no open
   * batch and already carries a batch's worth in flight (splitRecordsMin records), the new
   * batch opens on the partition with the fewest records in flight instead (Kafka's adaptive
   * partitioning, KIP-794): a publish loop's window then spreads over the topic's partitions,
   * whose logs the broker writes and fsyncs in parallel, instead of queueing behind one
   * partition's fsync. A low rate (a few records in flight) stays on one partition.
   */
  private stickyPartition(ts: TopicState): number {
    const n = ts.partitions.length;
    const flow = ts.flow;
    let p = flow.sticky;
    if (p < 0 || p >= n) {
      p = Math.floor(Math.random() * n);
      flow.sticky = p;
    }
    const ps = ts.partitions[p]!;
    if (n === 1 || ps.open !== null || ps.inflightRecords < ProducerDefaults.splitRecordsMin) {
      return p;
    }
    // The next partitions after it, at most STICKY_SCAN_MAX of them (a bound per batch opened).
    let best = p;
    let bestRecords = ps.inflightRecords;
    const scan = Math.min(n - 1, STICKY_SCAN_MAX);
    for (let i = 1; i <= scan && bestRecords > 0; i++) {
      const q = (p + i) % n;
      const records = ts.partitions[q]!.inflightRecords;
      if (records < bestRecords) {
        best = q;
        bestRecords = records;
      }
    }
    if (best !== p) {
      flow.sticky = best;
      flow.stickyBytes = 0;
    }
    return best;
  }

  private clockMs = 0;
  /** Appends that used clockMs (0: read the clock at the next one). */
  private clockUses = 0;
  private clockResetPending = false;
  private readonly clockReset = (): void => {
    this.clockResetPending = false;
    this.clockUses = 0;
  };

  /**
   * A default record timestamp: Date.now(), read once for up to TIMESTAMP_REUSE_MAX appends in
   * the same turn of the event loop (a turn of a publish loop appends hundreds within well
   * under a millisecond); the next turn reads it again.
   */
  private now(): number {
    if (this.clockUses === 0) {
      this.clockMs = Date.now();
      if (!this.clockResetPending) {
        this.clockResetPending = true;
        setImmediate(this.clockReset);
      }
    }
    this.clockUses = (this.clockUses + 1) % TIMESTAMP_REUSE_MAX;
    return this.clockMs;
  }

  /** The slow path: loads metadata and the producer id, waits for buffer space, appends. */
  private appendSlow(
    record: ProducerRecord,
  ): Promise<{ batch: PendingBatch; partition: number; index: number }> {
    if (this.slowAppends.size >= ProducerDefaults.bufferWaitersMax) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          `producer buffer full: ${this.slowAppends.size} records already wait for space`,
        ),
      );
    }
    // Slow appends run one after another, in send order, so records keep their order.
    const p = this.slowTail.then(() => this.appendSlowInner(record));
    this.slowTail = p.catch(() => undefined);
    this.slowAppends.add(p);
    const forget = (): void => void this.slowAppends.delete(p);
    p.then(forget, forget);
    return p;
  }

  private async appendSlowInner(
    record: ProducerRecord,
  ): Promise<{ batch: PendingBatch; partition: number; index: number }> {
    await this.prepare(record.topic);
    let resumed = await this.waitForSpace();
    for (;;) {
      let batch: PendingBatch | null;
      try {
        batch = this.tryAppend(record, resumed, true);
      } catch (err) {
        if (resumed) this.wakeWaiters();
        throw err;
      }
      if (batch !== null) {
        const out = { batch, partition: this.lastPartition, index: this.lastIndex };
        if (resumed) this.wakeWaiters();
        return out;
      }
      if (this.idempotent && this.producerId < 0) await this.initProducerId();
      resumed = await this.waitForSpace();
    }
  }

  /** Loads the topic's partition count and the producer id. */
  private async prepare(topic: string): Promise<void> {
    if (this.idempotent && this.producerId < 0) await this.initProducerId();
    await this.loadTopic(topic);
  }

  /** Loads a topic's partition count (once; concurrent callers share the load). */
  private async loadTopic(topic: string): Promise<void> {
    if (this.topics.has(topic)) return;
    let load = this.topicLoads.get(topic);
    if (load === undefined) {
      load = this.ctx
        .run(() => this.ctx.cluster.topic(topic), topic)
        .then((t) => {
          const states: PartitionState[] = [];
          const flow = new TopicFlow();
          for (let p = 0; p < t.partitions.length; p++) {
            states.push(new PartitionState(topic, p, flow));
          }
          this.topics.set(topic, new TopicState(topic, states, flow));
        })
        .finally(() => this.topicLoads.delete(topic));
      this.topicLoads.set(topic, load);
    }
    await load;
  }

  /**
   * One INIT_PRODUCER_ID attempt, shared by concurrent callers. It does not retry: callers run
   * it inside their own retry (produceOnce) or through initProducerId (one retry layer).
   */
  private initProducerIdOnce(): Promise<void> {
    if (this.producerInit === null) {
      this.producerInit = this.ctx.cluster
        .anyConnection()
        .then((conn) => conn.request(ApiKey.INIT_PRODUCER_ID, {}))
        .then((res) => {
          if (res.errorCode !== 0) {
            throw new StreamBusError(res.errorCode, res.errorMessage ?? 'init producer id');
          }
          this.producerId = res.producerId;
          this.producerEpoch = res.producerEpoch;
          this.producerGeneration++;
        })
        .finally(() => {
          this.producerInit = null;
        });
    }
    return this.producerInit;
  }

  /**
   * The producer id for callers outside a retry loop (the slow append path, connect()), under
   * the client's retry policy like topic metadata: the delivery timeout bounds batches once
   * appended, not this wait before (Kafka's max.block.ms is separate too), so a send to an
   * unreachable cluster fails in seconds.
   */
  private initProducerId(): Promise<void> {
    return this.ctx.run(() => this.initProducerIdOnce());
  }

  /** Resolves true when woken as a waiter (which then may append ahead of the queue). */
  private waitForSpace(): Promise<boolean> {
    if (this.bufferedBytes < this.bufferBytesMax && this.spaceWaiters.length === 0) {
      return Promise.resolve(false);
    }
    if (this.spaceWaiters.length >= ProducerDefaults.bufferWaitersMax) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.REQUEST_TIMED_OUT,
          `producer buffer full: ${this.spaceWaiters.length} records already wait for space`,
        ),
      );
    }
    return new Promise<boolean>((resolve, reject) => {
      const waiter: SpaceWaiter = {
        resume: () => resolve(true),
        reject,
        timer: setTimeout(() => {
          const i = this.spaceWaiters.indexOf(waiter);
          if (i >= 0) this.spaceWaiters.splice(i, 1);
          reject(
            new StreamBusError(
              ErrorCode.REQUEST_TIMED_OUT,
              `producer buffer (${this.bufferBytesMax} bytes) stayed full for ${this.bufferWaitTimeoutMs} ms`,
            ),
          );
        }, this.bufferWaitTimeoutMs),
      };
      this.spaceWaiters.push(waiter);
      queueMicrotask(() => this.wakeWaiters());
      // Nothing may be left open while records wait: the open batches are what must drain.
      for (const t of this.topics.values()) {
        for (const ps of t.partitions) if (ps.open) this.closeBatch(ps);
      }
    });
  }

  /**
   * Wakes the oldest waiter when there is space. It appends and then wakes the next one, so
   * waiters append one at a time, in order, and the buffer overshoots by at most one record.
   */
  private wakeWaiters(): void {
    if (this.spaceWaiters.length > 0 && this.bufferedBytes < this.bufferBytesMax) {
      const w = this.spaceWaiters.shift()!;
      clearTimeout(w.timer);
      w.resume();
    }
  }

  private openBatch(ps: PartitionState): PendingBatch {
    const b = new PendingBatch(
      new BatchBuilder(this.pool, this.batchBytesMax, this.recordBytesMax),
      Date.now() + this.deliveryTimeoutMs,
      ps.topic,
      ps.partition,
    );
    ps.open = b;
    this.bufferedBytes += b.builder.sizeBytes;
    // Adaptive batching and lingerMs 0 look at the batch at the end of this turn of the event
    // loop (a 0 ms timer would wait ~1 ms); adaptive batching also splits a turn (closeOnAppend).
    if (this.lingerMs === null || this.lingerMs === 0) this.atTurnEnd(ps, b);
    else {
      ps.lingerImmediate = false;
      ps.lingerTimer = setTimeout(() => this.lingerExpired(ps, b), this.lingerMs);
    }
    return b;
  }

  private atTurnEnd(ps: PartitionState, b: PendingBatch): void {
    ps.lingerImmediate = true;
    ps.lingerTimer = setImmediate(() => this.lingerExpired(ps, b));
  }

  /**
   * lingerMs is the time before a batch is ready, as Kafka's linger.ms: a partition that cannot
   * send it now keeps adding records to it until it can (closeIfDue), instead of queueing a
   * string of small batches behind the requests in flight. Adaptive batching is the same at the
   * end of each turn that appended to the batch (batch-policy.ts decides).
   */
  private lingerExpired(ps: PartitionState, b: PendingBatch): void {
    ps.lingerTimer = null;
    if (ps.open !== b) return;
    if (this.isDue(ps)) {
      this.closeBatch(ps);
      return;
    }
    ps.lingerDone = true;
    if (this.policy !== null) {
      // The turn is over, so what it left open is known: the volume outstanding now is the
      // records in flight plus this batch (a split within the turn saw only the part appended
      // by then). Without this, a window of 1,000 that once settled on 486 + 486 kept 28
      // records riding in the open batch from turn to turn.
      const flow = ps.topicFlow;
      const open = b.builder.recordCount;
      if (flow.sticky === ps.partition) {
        flow.recentRecords = this.policy.observe(
          flow.recentRecords,
          flow.inflightRecords + open,
          true,
        );
      } else {
        ps.ownRecentRecords = this.policy.observe(
          ps.ownRecentRecords,
          ps.inflightRecords + open,
          true,
        );
      }
    }
  }

  /** The open batch, past its linger (or its first turn), may close now. */
  private isDue(ps: PartitionState): boolean {
    return this.policy === null ? this.canSendNow(ps) : this.policy.closeWhenDue(ps);
  }

  /** A batch closed now would be sent at once: nothing queued unsent, room in flight. */
  private canSendNow(ps: PartitionState): boolean {
    return (
      !ps.failed && !ps.recovering && ps.inflight < this.inflightMax && ps.sent === ps.queue.length
    );
  }

  /**
   * The batch that accumulated while the partition could not send goes now if it can: a batch
   * past its lingerMs once it may close (isDue). Adaptive batching looks again at the end of
   * this turn instead: an answer frees records of the application's window, which it sends
   * again in this same turn (its reactions run before the turn ends), and those join the
   * waiting batch instead of following it as another request, so a window that frayed into
   * small pieces merges back into halves.
   */
  private closeIfDue(ps: PartitionState): void {
    if (ps.open === null || ps.lingerTimer !== null) return;
    if (!ps.lingerDone || !this.isDue(ps)) return;
    if (this.policy === null) this.closeBatch(ps);
    else this.atTurnEnd(ps, ps.open);
  }

  /** `split`: adaptive batching closes it within a turn (batch-policy.ts closeOnAppend). */
  private closeBatch(ps: PartitionState, split = false): void {
    const b = ps.open;
    if (b === null) return;
    ps.open = null;
    ps.lingerDone = false;
    if (ps.lingerTimer !== null) {
      if (ps.lingerImmediate) clearImmediate(ps.lingerTimer as NodeJS.Immediate);
      else clearTimeout(ps.lingerTimer as NodeJS.Timeout);
      ps.lingerTimer = null;
    }
    const ts = this.topics.get(ps.topic)!;
    const flow = ts.flow;
    const sticky = flow.sticky === ps.partition;
    if (sticky) {
      // Move on to another partition once this one took a full batch's worth (Kafka's KIP-794),
      // not at every close: a batch closed small because its partition was idle would otherwise
      // send the next keyless records to another idle partition, one tiny request each, and at
      // high rates most requests carried one record.
      flow.stickyBytes += b.builder.sizeBytes;
      if (flow.stickyBytes >= this.batchBytesMax) {
        const n = ts.partitions.length;
        flow.sticky = n > 1 ? (ps.partition + 1 + Math.floor(Math.random() * (n - 1))) % n : 0;
        flow.stickyBytes = 0;
      }
    }
    if (b.builder.recordCount === 0) {
      // Its only record was refused (too large): nothing to send.
      this.bufferedBytes -= b.builder.sizeBytes;
      this.pool.release(b.builder.discard());
      b.resolve(-1);
      return;
    }
    // An idempotent producer stamps (and checksums) the batch at its first send.
    const { batch, poolBuffer } = b.builder.build(this.compression, !this.idempotent);
    this.bufferedBytes += batch.length - b.builder.sizeBytes;
    b.bytes = batch;
    b.poolBuffer = poolBuffer;
    ps.queue.push(b);
    ps.inflightRequests++;
    ps.inflightRecords += b.builder.recordCount;
    flow.inflightRecords += b.builder.recordCount;
    if (this.policy !== null) {
      // The sticky partition's batches are a share of the topic's keyless volume (recentRecords).
      if (sticky)
        flow.recentRecords = this.policy.observe(flow.recentRecords, flow.inflightRecords, split);
      else
        ps.ownRecentRecords = this.policy.observe(ps.ownRecentRecords, ps.inflightRecords, split);
    }
    this.pump(ps);
  }

  // --- sending ----------------------------------------------------------------------------

  /**
   * Sends the partition's next batches, up to the in-flight bound (1 without idempotence, so
   * order never depends on a retry). Each is sent once, without retries; results settle in order.
   */
  private pump(ps: PartitionState): void {
    if (!ps.pumping) void this.pumpLoop(ps);
  }

  private async pumpLoop(ps: PartitionState): Promise<void> {
    const canSend = (): boolean =>
      !ps.failed && !ps.recovering && ps.inflight < this.inflightMax && ps.sent < ps.queue.length;
    ps.pumping = true;
    try {
      while (canSend()) {
        // A batch that waited out its delivery timeout before its first send fails unsent (at
        // the head only, so results still settle in order; unstamped, it used no sequence).
        const head = ps.queue[0]!;
        if (ps.sent === 0 && !head.stamped && Date.now() >= head.deadlineMs) {
          ps.sent++;
          this.firstAttemptSettled(ps, head);
          this.finish(ps, -1, this.deliveryTimeout(head, null));
          continue;
        }
        let conn = ps.conn;
        try {
          if (conn === null || conn.isClosed || (this.idempotent && this.producerId < 0)) {
            ps.conn = null;
            if (this.idempotent && this.producerId < 0) await this.initProducerIdOnce();
            conn = await this.ctx.cluster.leaderFor(ps.topic, ps.partition);
            ps.conn = conn;
          }
        } catch (error) {
          // No connection: the next batch's first attempt failed; recover() retries it.
          const b = ps.queue[ps.sent]!;
          ps.sent++;
          ps.inflight++;
          b.outcome = { error };
          ps.failed = true;
          this.afterAttempt(ps, b);
          return;
        }
        // Started synchronously, in queue order, so they are written in that order.
        while (canSend() && !(this.idempotent && this.producerId < 0)) {
          const b = ps.queue[ps.sent]!;
          ps.sent++;
          ps.inflight++;
          this.attempt(ps, b, conn).then(
            (base) => {
              b.outcome = { base };
              this.afterAttempt(ps, b);
            },
            (error: unknown) => {
              b.outcome = { error };
              ps.failed = true;
              // The leader may have moved: the next sends ask the cluster's metadata again.
              ps.conn = null;
              this.afterAttempt(ps, b);
            },
          );
        }
      }
    } finally {
      ps.pumping = false;
    }
    // Everything queued went: a batch that passed its linger meanwhile can follow.
    this.closeIfDue(ps);
  }

  /** The batch's first attempt is over (answered, failed, or never sent). */
  private firstAttemptSettled(ps: PartitionState, b: PendingBatch): void {
    ps.inflightRequests--;
    ps.inflightRecords -= b.builder.recordCount;
    const flow = ps.topicFlow;
    flow.inflightRecords -= b.builder.recordCount;
    // Adaptive batching: the topic's sticky partition counts the topic's records in flight, so
    // its waiting batch may be due now that another partition's request was answered.
    if (this.policy !== null && flow.sticky >= 0 && flow.sticky !== ps.partition) {
      const sticky = this.topics.get(ps.topic)?.partitions[flow.sticky];
      if (sticky !== undefined) this.closeIfDue(sticky);
    }
  }

  private afterAttempt(ps: PartitionState, b: PendingBatch): void {
    ps.inflight--;
    this.firstAttemptSettled(ps, b);
    // Settle acknowledged batches at the head, in order; stop at a failed or unanswered one.
    for (;;) {
      const head = ps.queue[0];
      if (
        head === undefined ||
        ps.sent === 0 ||
        head.outcome === null ||
        !('base' in head.outcome)
      ) {
        break;
      }
      this.finish(ps, head.outcome.base, null);
    }
    this.closeIfDue(ps);
    if (!ps.failed) this.pump(ps);
    else if (ps.inflight === 0 && !ps.recovering) void this.recover(ps);
  }

  /**
   * After a failed first attempt, once nothing of the partition is in flight: every sent batch
   * that was not acknowledged is resent in order, one at a time, with its stamped bytes (so the
   * broker answers a duplicate with its original offset), retrying retriable errors with backoff
   * until the batch's delivery timeout. Batches after a failed one usually failed because of it
   * (connection closed, OUT_OF_ORDER_SEQUENCE_NUMBER) and now succeed.
   *
   * When a batch fails for good its sequence may be missing on the broker (refused, or timed out
   * unappended): the partition is `unresolved`. If a later batch then meets OUT_OF_ORDER, the
   * failed one was not appended, so neither was this one: it and every later unacknowledged batch
   * are stamped afresh under a new producer id and resent, never failed for the gap.
   */
  private async recover(ps: PartitionState): Promise<void> {
    ps.recovering = true;
    try {
      while (ps.sent > 0) {
        const b = ps.queue[0]!;
        if (b.outcome !== null && 'base' in b.outcome) {
          ps.unresolved = false;
          this.finish(ps, b.outcome.base, null);
          continue;
        }
        // A first attempt refused for the batch itself fails it without a resend; sequence
        // errors are usually an earlier batch's doing, so such batches are resent.
        const first = b.outcome !== null && 'error' in b.outcome ? b.outcome.error : null;
        b.outcome = null;
        try {
          if (first !== null && !isRetriable(first) && !isSequenceError(first)) throw first;
          // The first attempt's error says what is stale (a moved leader, which a hint may
          // name): the resend goes by what it says, not to the broker that refused.
          if (first instanceof StreamBusError && first.retriable) {
            this.ctx.cluster.handleRetriableError(first, ps.topic);
          }
          const base = await this.ctx.runUntil(
            () => this.produceOnce(ps, b),
            b.deadlineMs,
            ps.topic,
          );
          ps.unresolved = false;
          this.finish(ps, base, null);
        } catch (err) {
          if (isSequenceError(err)) {
            // Start over under a new producer id (sequences restart at 0); the batches sent
            // after this one were refused with it (or never appended), so they are stamped afresh.
            const retryThis = ps.unresolved && b.stamped;
            this.producerId = -1;
            for (let i = retryThis ? 0 : 1; i < ps.sent; i++) {
              const later = ps.queue[i]!;
              if (later.outcome === null || !('base' in later.outcome)) later.stamped = false;
            }
            ps.unresolved = false;
            if (retryThis) continue;
            this.finish(ps, -1, err);
            continue;
          }
          if (b.stamped) ps.unresolved = true;
          this.finish(ps, -1, isRetriable(err) ? this.deliveryTimeout(b, err) : err);
        }
      }
    } finally {
      ps.failed = false;
      ps.recovering = false;
      this.closeIfDue(ps);
      this.pump(ps);
    }
  }

  /** The error of a batch whose delivery timeout passed (Kafka: a TimeoutException). */
  private deliveryTimeout(b: PendingBatch, last: unknown): StreamBusError {
    const why = last instanceof Error ? `; last error: ${last.message}` : '';
    return new StreamBusError(
      ErrorCode.REQUEST_TIMED_OUT,
      `delivery timeout: ${b.builder.recordCount} record(s) not acknowledged within deliveryTimeoutMs ${this.deliveryTimeoutMs} ms${why}`,
      last === null ? undefined : { cause: last },
    );
  }

  /** Pops the head batch: resolves or rejects it and frees its buffer. */
  private finish(ps: PartitionState, base: number, error: unknown): void {
    const b = ps.queue.shift()!;
    ps.sent--;
    if (error === null) b.resolve(base);
    else b.reject(error);
    this.bufferedBytes -= b.bytes!.length;
    if (b.poolBuffer !== null) this.pool.release(b.poolBuffer);
    b.bytes = null;
    b.poolBuffer = null;
    this.wakeWaiters();
  }

  /** One full attempt: producer id, leader connection, then send (used with the retry policy). */
  private async produceOnce(ps: PartitionState, b: PendingBatch): Promise<number> {
    if (this.idempotent && !b.stamped && this.producerId < 0) await this.initProducerIdOnce();
    const conn = await this.ctx.cluster.leaderFor(ps.topic, ps.partition);
    return this.attempt(ps, b, conn);
  }

  /**
   * Stamps the batch on its first send and writes the request synchronously (so batches started
   * in order are written in order); resolves with the base offset. Needs a producer id when
   * idempotent and the batch is unstamped.
   */
  private attempt(ps: PartitionState, b: PendingBatch, conn: BrokerConnection): Promise<number> {
    const bytes = b.bytes!;
    if (!b.stamped) {
      if (this.idempotent) {
        assert.ok(this.producerId >= 0, 'stamping without a producer id');
        if (ps.sequenceGeneration !== this.producerGeneration) {
          ps.sequenceGeneration = this.producerGeneration;
          ps.nextSequence = 0;
        }
        const count = b.builder.recordCount;
        stampBatch(bytes, {
          producerId: this.producerId,
          producerEpoch: this.producerEpoch,
          baseSequence: ps.nextSequence,
        });
        ps.nextSequence = (ps.nextSequence + count) % SEQUENCE_MODULO;
      }
      b.stamped = true;
    }
    const body = {
      acks: this.acks,
      timeoutMs: this.ackTimeoutMs,
      topics: [{ name: ps.topic, partitions: [{ partition: ps.partition, records: bytes }] }],
    };
    if (this.acks === 0) return conn.sendNoResponse(ApiKey.PRODUCE, body).then(() => -1);
    const acks = this.acks;
    return conn
      .requestEncoded(
        ApiKey.PRODUCE,
        (correlationId, apiVersion) =>
          encodeProduceChunks(correlationId, apiVersion, acks, body.timeoutMs, body.topics),
        acks === -1 ? this.ackTimeoutMs : 0,
      )
      .then((res) => {
        const p = res.topics
          .find((t) => t.name === ps.topic)
          ?.partitions.find((x) => x.partition === ps.partition);
        if (p === undefined) {
          throw new StreamBusError(
            ErrorCode.INVALID_REQUEST,
            `produce response lacks ${ps.topic}/${ps.partition}`,
          );
        }
        // With the leader the refusing broker named, if any (cluster.ts applyHint).
        if (p.errorCode !== 0) throw partitionRefused(conn, ps.topic, p, 'produce to');
        return p.baseOffset;
      });
  }
}

function isRetriable(err: unknown): boolean {
  return err instanceof StreamBusError && err.retriable;
}

function isSequenceError(err: unknown): boolean {
  return err instanceof StreamBusError && PRODUCER_FATAL_CODES.has(err.code);
}

function positive(name: string, value: number, allowZero = false): number {
  if (!Number.isInteger(value) || value < 0 || (!allowZero && value === 0)) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `${name}: expected a ${allowZero ? 'non-negative' : 'positive'} integer, got ${value}`,
    );
  }
  return value;
}
