// The consumer (no groups yet): assign topics or partitions, start at earliest, latest, an
// offset or a timestamp, then iterate with `for await` over records or over batches. Fetches
// long-poll (maxWaitMs, minBytes); each fetch asks every assigned, unpaused partition of one
// leader. A fetched round stays raw bytes and is handed out by poll() in slices of whole batches
// of about maxPollRecords records (so few decoded records are alive at once: decoding a whole
// 4 MiB round of small records at once measured much slower, from garbage collection). Prefetch:
// when poll() takes a round it issues the next one at once (from the end of the data received),
// so the network and the broker work while the application consumes; one consumer therefore
// holds at most two fetch responses per broker (the one being delivered and the one prefetched:
// the bound on its buffer). Data only moves a position when poll() delivers it: data for a
// partition that was seeked, paused or unassigned after its fetch was issued is dropped then
// (with the undelivered rest of the round), and that partition is fetched again from its
// (possibly new) position.
//
// Batches are decoded with @streambus/protocol's decodeRecordBatch (decompression included);
// records below the position are skipped (a batch can start before it) and control batches are
// never surfaced, but advance the position. Keys, values and header values are views into the
// fetch response: copy them to keep them past the next iteration step if memory matters.
import {
  ApiKey,
  BatchAttributes,
  BatchCursor,
  BatchField,
  type DecodedRecord,
  decodeRecordBatch,
  ErrorCode,
  type FetchResponse,
  OffsetSpec,
  type RecordHeader,
  readBatchHeader,
  StreamBusError,
  validateBatch,
} from '@streambus/protocol';
import { partitionRefused } from './cluster.js';
import type { BrokerConnection } from './connection.js';
import type { ClientContext } from './context.js';
import { ConsumerDefaults } from './limits.js';
import { checkOptionNames, OptionNames } from './options.js';

export type StartFrom =
  | 'earliest'
  | 'latest'
  | { readonly offset: number }
  | { readonly timestamp: number };
export type OffsetResetPolicy = 'earliest' | 'latest' | 'none';

export interface ConsumerOptions {
  readonly maxWaitMs?: number;
  readonly minBytes?: number;
  readonly maxBytes?: number;
  readonly partitionMaxBytes?: number;
  /**
   * Where a partition starts when no position is given, and where it goes when its position is
   * outside the log (default 'earliest'): the start of assign() without `from` (as Kafka's
   * auto.offset.reset for a consumer without a committed offset), and the reset after
   * OFFSET_OUT_OF_RANGE. 'none': assign() needs `from`, and an out-of-range position fails poll().
   */
  readonly autoOffsetReset?: OffsetResetPolicy;
  /**
   * Records one poll() hands over, at whole-batch granularity (at least one batch): a fetched
   * round larger than this is delivered over several polls, without waiting on the network.
   */
  readonly maxPollRecords?: number;
}

export interface AssignOptions {
  readonly topic: string;
  /** Default: every partition of the topic. */
  readonly partitions?: readonly number[];
  /**
   * Where to start: 'earliest' (the oldest record kept), 'latest' (only records produced from
   * now on), an offset or a timestamp. Default: the consumer's `autoOffsetReset`, 'earliest'
   * unless set, so a consumer that does not say reads the topic from its start.
   */
  readonly from?: StartFrom;
}

export interface ConsumerRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: number;
  readonly timestamp: number;
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
  readonly headers: readonly RecordHeader[];
}

export interface ConsumerBatch {
  readonly topic: string;
  readonly partition: number;
  readonly highWatermark: number;
  /** At least one record, in offset order. */
  readonly records: readonly DecodedRecord[];
  /**
   * The partition's position once this batch is consumed: past its last record and past any
   * control batch (a leader's no-op or a transaction marker) that follows it in the same fetch.
   * This, not the last record's offset + 1, is the offset to commit.
   */
  readonly nextOffset: number;
}

/**
 * For the group consumer only: deliver a partition's control-only data as a batch without
 * records, so its commits move past control batches too (poll() users never see one).
 */
export interface ConsumerInternals {
  readonly emptyBatches?: boolean;
}

interface Assigned {
  readonly topic: string;
  readonly partition: number;
  /** Next offset to deliver; null until `pendingStart` is resolved. */
  position: number | null;
  /**
   * Next offset to fetch: the end of the data received, delivered or not (equal to `position`
   * once everything received is delivered or dropped).
   */
  fetchPosition: number | null;
  pendingStart: StartFrom | null;
  paused: boolean;
  /** Bumped by seek, so an in-flight fetch's result for an old position is dropped. */
  generation: number;
  highWatermark: number;
}

/**
 * One partition's part of a fetch round, applied (or dropped) when poll() delivers it. The data
 * stays raw until then: only batch headers are read (for `to`), so poll() can issue the next
 * round before it spends time decoding this one.
 */
interface Fetched {
  readonly a: Assigned;
  readonly generation: number;
  /** The position the fetch asked from, and the one after its data. */
  readonly from: number;
  readonly to: number;
  readonly highWatermark: number;
  readonly records: Uint8Array;
}

function key(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export class Consumer {
  private readonly maxWaitMs: number;
  private readonly minBytes: number;
  private readonly maxBytes: number;
  private readonly partitionMaxBytes: number;
  private readonly autoOffsetReset: OffsetResetPolicy;
  private readonly maxPollRecords: number;
  private readonly assigned = new Map<string, Assigned>();
  private closed = false;
  private readonly wakeups = new Set<() => void>();
  private static lanes = 0;
  /** This consumer's own connections (see Cluster.connectionTo). */
  private readonly lane = `fetch-${++Consumer.lanes}`;
  /** The next fetch round, issued when the previous one was delivered (at most one). */
  private prefetched: Promise<Fetched[]> | null = null;
  /**
   * The undelivered rest of the last round taken (per partition, raw), handed out by the next
   * polls: at most one round, so the consumer's bound stays two rounds per broker.
   */
  private undelivered: Fetched[] = [];
  private readonly emptyBatches: boolean;

  constructor(
    private readonly ctx: ClientContext,
    options: ConsumerOptions = {},
    internals: ConsumerInternals = {},
  ) {
    this.emptyBatches = internals.emptyBatches === true;
    this.maxWaitMs = options.maxWaitMs ?? ConsumerDefaults.maxWaitMs;
    this.minBytes = options.minBytes ?? ConsumerDefaults.minBytes;
    this.maxBytes = options.maxBytes ?? ConsumerDefaults.maxBytes;
    this.partitionMaxBytes = options.partitionMaxBytes ?? ConsumerDefaults.partitionMaxBytes;
    this.autoOffsetReset = options.autoOffsetReset ?? 'earliest';
    this.maxPollRecords = options.maxPollRecords ?? ConsumerDefaults.maxPollRecords;
    if (
      !Number.isInteger(this.maxPollRecords) ||
      this.maxPollRecords < 1 ||
      this.maxPollRecords > 0x7fffffff
    ) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `maxPollRecords: expected an integer in 1..2^31-1, got ${this.maxPollRecords}`,
      );
    }
    for (const [name, v] of [
      ['maxWaitMs', this.maxWaitMs],
      ['minBytes', this.minBytes],
      ['maxBytes', this.maxBytes],
      ['partitionMaxBytes', this.partitionMaxBytes],
    ] as const) {
      if (!Number.isInteger(v) || v < 0 || v > 0x7fffffff) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `${name}: expected an integer in 0..2^31-1, got ${v}`,
        );
      }
    }
    if (!['earliest', 'latest', 'none'].includes(this.autoOffsetReset)) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `autoOffsetReset: expected one of earliest, latest, none, got '${String(this.autoOffsetReset)}'`,
      );
    }
  }

  /**
   * Gets ready before the first poll() (optional: poll() connects lazily otherwise): connects to
   * the cluster, loads its metadata and the assigned topics', resolves the start positions of the
   * partitions assigned so far (so `from: 'latest'` means "from now", not "from the first poll"),
   * and opens this consumer's fetch connections to their leaders. Fails under the retry policy
   * like any request (NETWORK_EXCEPTION when no broker answers).
   */
  async connect(): Promise<void> {
    this.checkOpen();
    const topics = [...new Set([...this.assigned.values()].map((a) => a.topic))];
    await this.ctx.run(() => this.ctx.cluster.refreshMetadata(topics));
    await this.resolveStarts();
    const leaders = new Set<number>();
    for (const a of this.assigned.values()) {
      const t = await this.ctx.run(() => this.ctx.cluster.topic(a.topic), a.topic);
      const leader = t.partitions[a.partition]?.leaderId ?? -1;
      if (leader >= 0) leaders.add(leader);
    }
    for (const id of leaders) {
      await this.ctx.run(() => this.ctx.cluster.connectionToNode(id, this.lane));
    }
  }

  /**
   * Adds partitions to the assignment (all of the topic's by default), starting at `from`
   * (default: `autoOffsetReset`, 'earliest' unless set). A topic that does not exist fails at
   * once with TOPIC_NOT_FOUND (not retriable) after one metadata request.
   */
  async assign(options: AssignOptions): Promise<void> {
    this.checkOpen();
    checkOptionNames('assign', options, OptionNames.assign);
    const from = checkStart('assign.from', options.from ?? this.defaultStart());
    const t = await this.ctx.run(() => this.ctx.cluster.topic(options.topic), options.topic);
    const count = t.partitions.length;
    const partitions = options.partitions ?? t.partitions.map((p) => p.partition);
    for (const p of partitions) {
      if (!Number.isInteger(p) || p < 0 || p >= count) {
        throw new StreamBusError(
          ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
          `topic '${options.topic}' has no partition ${p} (it has ${count})`,
        );
      }
    }
    for (const p of partitions) {
      const a: Assigned = {
        topic: options.topic,
        partition: p,
        position: null,
        fetchPosition: null,
        pendingStart: from,
        paused: false,
        generation: 0,
        highWatermark: -1,
      };
      if (typeof from === 'object' && 'offset' in from) {
        a.position = from.offset;
        a.fetchPosition = from.offset;
        a.pendingStart = null;
      }
      this.assigned.set(key(options.topic, p), a);
    }
    this.dropPrefetch();
    this.wake();
  }

  /** Removes partitions (all of the topic's by default) from the assignment. */
  unassign(topic: string, partitions?: readonly number[]): void {
    for (const a of [...this.assigned.values()]) {
      if (a.topic === topic && (partitions === undefined || partitions.includes(a.partition))) {
        this.assigned.delete(key(a.topic, a.partition));
      }
    }
    this.dropPrefetch();
  }

  /** The partitions assigned, with their next offsets (null: start not resolved yet). */
  assignment(): Array<{
    topic: string;
    partition: number;
    position: number | null;
    paused: boolean;
  }> {
    return [...this.assigned.values()].map((a) => ({
      topic: a.topic,
      partition: a.partition,
      position: a.position,
      paused: a.paused,
    }));
  }

  /** Moves a partition's position; takes effect at the next fetch. */
  seek(topic: string, partition: number, to: number | StartFrom): void {
    const a = this.get(topic, partition);
    if (typeof to === 'number') checkOffset(to);
    else checkStart('seek', to);
    a.generation++;
    if (typeof to === 'number' || (typeof to === 'object' && 'offset' in to)) {
      const offset = typeof to === 'number' ? to : to.offset;
      a.position = offset;
      a.fetchPosition = offset;
      a.pendingStart = null;
    } else {
      a.position = null;
      a.fetchPosition = null;
      a.pendingStart = to;
    }
    this.dropPrefetch();
    this.wake();
  }

  pause(topic: string, partitions?: readonly number[]): void {
    this.setPaused(topic, partitions, true);
  }

  resume(topic: string, partitions?: readonly number[]): void {
    this.setPaused(topic, partitions, false);
    this.wake();
  }

  /** Lag of a partition as of the last fetch: high watermark - position (null if unknown). */
  lag(topic: string, partition: number): number | null {
    const a = this.get(topic, partition);
    if (a.position === null || a.highWatermark < 0) return null;
    return Math.max(0, a.highWatermark - a.position);
  }

  /** Ends the iterators (within maxWaitMs) and refuses further use. */
  async close(): Promise<void> {
    this.closed = true;
    this.wake();
  }

  /** `for await (const record of consumer)`: same as records(). */
  [Symbol.asyncIterator](): AsyncIterator<ConsumerRecord> {
    return this.records();
  }

  /**
   * Records one at a time, in offset order per partition, until close(). Records of batches
   * already polled are handed out at once (one resolved promise each, no generator machinery);
   * poll() runs only when they are used up.
   */
  records(): AsyncGenerator<ConsumerRecord, void, undefined> {
    return new RecordIterator(
      () => this.isOpen(),
      () => this.poll(),
    );
  }

  /** Batches of records (the fast way to consume), until close(). */
  async *batches(): AsyncGenerator<ConsumerBatch, void, undefined> {
    while (!this.closed && !this.ctx.signal.aborted) {
      const batches = await this.poll();
      for (const b of batches) yield b;
    }
  }

  /**
   * Delivers up to maxPollRecords records (whole batches): from the undelivered rest of the last
   * round if there is one, without waiting; otherwise from the next round (the prefetched one, or
   * a new one: pending start positions resolved, then every leader of an active partition
   * long-polled), issuing the round after it at once. Resolves with the batches (possibly none,
   * after maxWaitMs).
   */
  async poll(): Promise<ConsumerBatch[]> {
    this.checkOpen();
    if (this.undelivered.length === 0) await this.takeRound();
    return this.deliver();
  }

  /** Awaits the next round and keeps its current data (from each partition's position). */
  private async takeRound(): Promise<void> {
    const round = this.prefetched ?? this.fetchRound();
    this.prefetched = null;
    const fetched = await round;
    for (const f of fetched) {
      // A seek, pause or unassign since the fetch was issued voids its data.
      if (!this.isCurrent(f)) continue;
      if (f.to > f.from) {
        this.undelivered.push(f);
        f.a.fetchPosition = f.to;
      }
    }
    // Issue the next round now (from the end of this one), so the broker works while these
    // records are decoded and consumed. Only after data: at the log's end the next round would be
    // a long-poll that a seek made meanwhile would have to wait out.
    if (this.undelivered.length > 0 && !this.closed && !this.ctx.signal.aborted) {
      const next = this.fetchRound();
      // Its failure surfaces at the poll() that takes it.
      next.catch(() => undefined);
      this.prefetched = next;
    }
  }

  /** Whether fetched data still continues its partition's position (no seek/pause/unassign). */
  private isCurrent(f: Fetched): boolean {
    const a = f.a;
    return (
      a.generation === f.generation &&
      !a.paused &&
      this.assigned.get(key(a.topic, a.partition)) === a &&
      a.position === f.from
    );
  }

  /** Decodes whole batches from the undelivered data, up to maxPollRecords; moves positions. */
  private deliver(): ConsumerBatch[] {
    const out: ConsumerBatch[] = [];
    let budget = this.maxPollRecords;
    while (budget > 0 && this.undelivered.length > 0) {
      const f = this.undelivered[0]!;
      if (!this.isCurrent(f)) {
        this.undelivered.shift();
        continue;
      }
      const { bytes, to } = takeBatches(f.from, f.records, budget);
      if (to >= f.to) {
        this.undelivered.shift();
      } else {
        this.undelivered[0] = { ...f, from: to, records: f.records.subarray(bytes) };
      }
      f.a.position = to;
      const records = decodeFrom(f.from, f.records.subarray(0, bytes));
      budget -= Math.max(1, records.length);
      if (records.length > 0 || this.emptyBatches) {
        out.push({
          topic: f.a.topic,
          partition: f.a.partition,
          highWatermark: f.highWatermark,
          records,
          nextOffset: to,
        });
      }
    }
    return out;
  }

  /**
   * One fetch round: resolves pending start positions, then long-polls every leader of an
   * active partition. Positions are not moved here (poll() does that on delivery).
   */
  private async fetchRound(): Promise<Fetched[]> {
    await this.resolveStarts();
    const active = [...this.assigned.values()].filter((a) => !a.paused && a.fetchPosition !== null);
    if (active.length === 0) {
      await this.idle(this.maxWaitMs);
      return [];
    }
    const byLeader = new Map<number, Assigned[]>();
    for (const a of active) {
      const t = await this.ctx.run(() => this.ctx.cluster.topic(a.topic), a.topic);
      const leader = t.partitions[a.partition]?.leaderId ?? -1;
      const list = byLeader.get(leader) ?? [];
      list.push(a);
      byLeader.set(leader, list);
    }
    const results = await Promise.all(
      [...byLeader.values()].map((list) =>
        this.ctx.run(async () => {
          const first = list[0]!;
          const conn = await this.ctx.cluster.leaderFor(first.topic, first.partition, this.lane);
          return this.fetchFrom(conn, list);
        }),
      ),
    );
    return results.flat();
  }

  private async fetchFrom(conn: BrokerConnection, list: Assigned[]): Promise<Fetched[]> {
    const asked = list.map((a) => ({ a, offset: a.fetchPosition!, generation: a.generation }));
    const topics = new Map<
      string,
      Array<{ partition: number; fetchOffset: number; partitionMaxBytes: number }>
    >();
    for (const { a, offset } of asked) {
      const parts = topics.get(a.topic) ?? [];
      parts.push({
        partition: a.partition,
        fetchOffset: offset,
        partitionMaxBytes: this.partitionMaxBytes,
      });
      topics.set(a.topic, parts);
    }
    const res: FetchResponse = await conn.request(
      ApiKey.FETCH,
      {
        maxWaitMs: this.maxWaitMs,
        minBytes: this.minBytes,
        maxBytes: this.maxBytes,
        topics: [...topics].map(([name, partitions]) => ({ name, partitions })),
      },
      this.maxWaitMs,
    );
    const out: Fetched[] = [];
    let retriable: StreamBusError | null = null;
    for (const t of res.topics) {
      for (const p of t.partitions) {
        const entry = asked.find((x) => x.a.topic === t.name && x.a.partition === p.partition);
        if (entry === undefined) continue;
        const a = entry.a;
        // Re-check after the await: a seek, pause or unassign since the request voids its data.
        if (
          a.generation !== entry.generation ||
          a.paused ||
          this.assigned.get(key(a.topic, a.partition)) !== a ||
          a.fetchPosition !== entry.offset
        ) {
          continue;
        }
        if (p.errorCode !== 0) {
          // With the leader the refusing broker named, if any (cluster.ts applyHint).
          const err = partitionRefused(conn, t.name, p, 'fetch');
          if (p.errorCode === ErrorCode.OFFSET_OUT_OF_RANGE && this.autoOffsetReset !== 'none') {
            // Undelivered data before this offset is dropped with it (position moves).
            a.position = null;
            a.fetchPosition = null;
            a.pendingStart = this.autoOffsetReset;
            continue;
          }
          if (err.retriable) {
            this.ctx.cluster.handleRetriableError(err, t.name);
            retriable = err;
            continue;
          }
          throw err;
        }
        a.highWatermark = p.highWatermark;
        out.push({
          a,
          generation: entry.generation,
          from: entry.offset,
          to: endOffset(entry.offset, p.records),
          highWatermark: p.highWatermark,
          records: p.records,
        });
      }
    }
    if (retriable !== null && !out.some((f) => f.to > f.from)) throw retriable;
    return out;
  }

  private async resolveStarts(): Promise<void> {
    const pending = [...this.assigned.values()].filter((a) => a.pendingStart !== null);
    if (pending.length === 0) return;
    // One ListOffsets per topic and partition leader (cluster.toLeaders).
    const byTopic = new Map<string, Assigned[]>();
    for (const a of pending) {
      const list = byTopic.get(a.topic) ?? [];
      list.push(a);
      byTopic.set(a.topic, list);
    }
    for (const [topic, list] of byTopic) {
      const asked = list.map((a) => ({ a, start: a.pendingStart!, generation: a.generation }));
      const answers = await this.ctx.run(async () => {
        const all = await this.ctx.cluster.toLeaders(
          topic,
          asked.map(({ a, start }) => ({
            partition: a.partition,
            timestamp: startTimestamp(start),
          })),
          async (conn, partitions) =>
            (await conn.request(ApiKey.LIST_OFFSETS, { topics: [{ name: topic, partitions }] }))
              .topics[0]?.partitions ?? [],
        );
        for (const p of all) {
          if (p.errorCode !== 0)
            throw new StreamBusError(
              p.errorCode,
              p.errorMessage ?? `list offsets ${topic}/${p.partition}`,
            );
        }
        return all;
      }, topic);
      for (const p of answers) {
        const entry = asked.find((x) => x.a.partition === p.partition);
        if (!entry || entry.a.generation !== entry.generation || entry.a.pendingStart === null)
          continue;
        let offset = p.offset;
        if (offset < 0) {
          // No record at or after the timestamp: start at the end.
          offset = await this.latestOffset(topic, p.partition);
        }
        entry.a.position = offset;
        entry.a.fetchPosition = offset;
        entry.a.pendingStart = null;
      }
    }
  }

  private async latestOffset(topic: string, partition: number): Promise<number> {
    return this.ctx.run(async () => {
      const conn = await this.ctx.cluster.leaderFor(topic, partition);
      const r = await conn.request(ApiKey.LIST_OFFSETS, {
        topics: [{ name: topic, partitions: [{ partition, timestamp: OffsetSpec.LATEST }] }],
      });
      const p = r.topics[0]?.partitions[0];
      if (p?.errorCode !== 0) {
        throw new StreamBusError(
          p?.errorCode ?? ErrorCode.UNKNOWN_SERVER_ERROR,
          `list offsets ${topic}/${partition}`,
        );
      }
      return p.offset;
    }, topic);
  }

  private idle(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeups.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeups.add(done);
    });
  }

  private wake(): void {
    for (const w of [...this.wakeups]) w();
  }

  private get(topic: string, partition: number): Assigned {
    const a = this.assigned.get(key(topic, partition));
    if (!a) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `${topic}/${partition} is not assigned to this consumer`,
      );
    }
    return a;
  }

  private setPaused(
    topic: string,
    partitions: readonly number[] | undefined,
    paused: boolean,
  ): void {
    for (const a of this.assigned.values()) {
      if (a.topic === topic && (partitions === undefined || partitions.includes(a.partition))) {
        if (a.paused !== paused) a.generation++;
        a.paused = paused;
      }
    }
    this.dropPrefetch();
  }

  /**
   * Forgets the prefetched round after an assignment change, so the next poll() fetches what is
   * assigned now (the dropped round never moves a position; its request just runs out).
   */
  private dropPrefetch(): void {
    this.prefetched = null;
    this.undelivered = [];
    for (const a of this.assigned.values()) a.fetchPosition = a.position;
  }

  /** assign() without `from`: the autoOffsetReset policy (there are no committed offsets yet). */
  private defaultStart(): StartFrom {
    if (this.autoOffsetReset === 'none') {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        "assign.from: required when autoOffsetReset is 'none' (no default start position)",
      );
    }
    return this.autoOffsetReset;
  }

  private isOpen(): boolean {
    return !this.closed && !this.ctx.signal.aborted;
  }

  private checkOpen(): void {
    if (this.closed || this.ctx.signal.aborted) {
      throw new StreamBusError(ErrorCode.CLIENT_CLOSED, 'consumer closed');
    }
  }
}

const DONE: IteratorReturnResult<void> = Object.freeze({ done: true, value: undefined });

/**
 * Consumer.records(): an async iterator over polled batches that answers next() from the records
 * in hand without awaiting anything, and calls poll() only when they run out. After return(),
 * throw() or close() it is done.
 */
class RecordIterator implements AsyncGenerator<ConsumerRecord, void, undefined> {
  private batches: ConsumerBatch[] = [];
  private batchIndex = 0;
  private records: readonly DecodedRecord[] = [];
  private recordIndex = 0;
  private topic = '';
  private partition = 0;
  private finished = false;

  constructor(
    private readonly isOpen: () => boolean,
    private readonly poll: () => Promise<ConsumerBatch[]>,
  ) {}

  /** The poll in progress: a next() called meanwhile waits for it (calls resolve in order). */
  private refilling: Promise<IteratorResult<ConsumerRecord, void>> | null = null;

  next(): Promise<IteratorResult<ConsumerRecord, void>> {
    if (this.refilling !== null) return this.refilling.then(() => this.next());
    const value = this.take();
    if (value !== null) return Promise.resolve({ done: false, value });
    const refilling = this.refill().finally(() => {
      this.refilling = null;
    });
    this.refilling = refilling;
    return refilling;
  }

  return(): Promise<IteratorResult<ConsumerRecord, void>> {
    this.finish();
    return Promise.resolve(DONE);
  }

  throw(err: unknown): Promise<IteratorResult<ConsumerRecord, void>> {
    this.finish();
    return Promise.reject(err);
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private finish(): void {
    this.finished = true;
    this.batches = [];
    this.records = [];
  }

  /** The next record in hand, or null when every polled batch is used up. */
  private take(): ConsumerRecord | null {
    for (;;) {
      if (this.recordIndex < this.records.length) {
        const r = this.records[this.recordIndex++]!;
        return {
          topic: this.topic,
          partition: this.partition,
          offset: r.offset,
          timestamp: r.timestamp,
          key: r.key,
          value: r.value,
          headers: r.headers,
        };
      }
      if (this.batchIndex >= this.batches.length) return null;
      const b = this.batches[this.batchIndex++]!;
      this.records = b.records;
      this.recordIndex = 0;
      this.topic = b.topic;
      this.partition = b.partition;
    }
  }

  private async refill(): Promise<IteratorResult<ConsumerRecord, void>> {
    while (!this.finished && this.isOpen()) {
      let batches: ConsumerBatch[];
      try {
        batches = await this.poll();
      } catch (err) {
        // As a generator: the error ends the iteration.
        this.finish();
        throw err;
      }
      if (this.finished) break;
      this.batches = batches;
      this.batchIndex = 0;
      const value = this.take();
      if (value !== null) return { done: false, value };
    }
    this.finish();
    return DONE;
  }
}

/** The position after the whole batches in `buf` (headers only; a partial trailing batch is left). */
function endOffset(position: number, buf: Uint8Array): number {
  let next = position;
  // A partial trailing batch is fetched again next time.
  const batch = new BatchCursor(buf, 0, buf.length, true);
  while (batch.next()) {
    const header = readBatchHeader(buf, batch.position);
    const end = header.baseOffset + header.lastOffsetDelta + 1;
    if (end > next) next = end;
  }
  return next;
}

/**
 * The whole batches at the start of `buf` holding about `budget` records (at least one batch):
 * their byte length and the offset after them.
 */
function takeBatches(from: number, buf: Uint8Array, budget: number): { bytes: number; to: number } {
  let to = from;
  let taken = 0;
  const batch = new BatchCursor(buf, 0, buf.length, true);
  while (taken < budget && batch.next()) {
    const header = readBatchHeader(buf, batch.position);
    const end = header.baseOffset + header.lastOffsetDelta + 1;
    if (end > to) {
      taken += Math.min(header.recordCount, end - to);
      to = end;
    }
  }
  return { bytes: batch.wholeEnd, to };
}

/**
 * Decodes the whole batches of a fetched partition, skips records below `position` and control
 * batches.
 */
function decodeFrom(position: number, buf: Uint8Array): DecodedRecord[] {
  const records: DecodedRecord[] = [];
  const options = { appendTo: records, minOffset: position };
  const batch = new BatchCursor(buf, 0, buf.length, true);
  while (batch.next()) {
    const pos = batch.position;
    // The control bit is in the low byte of the big-endian attributes field.
    if ((buf[pos + BatchField.ATTRIBUTES + 1]! & BatchAttributes.CONTROL) !== 0) {
      // A control batch (transaction marker): checked like any batch, never surfaced.
      validateBatch(buf, pos);
    } else {
      decodeRecordBatch(buf, pos, options);
    }
  }
  return records;
}

function startTimestamp(start: StartFrom): number {
  if (start === 'earliest') return OffsetSpec.EARLIEST;
  if (start === 'latest') return OffsetSpec.LATEST;
  if ('timestamp' in start) return start.timestamp;
  throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'an offset start needs no lookup');
}

/** A start position given by the caller: 'earliest', 'latest', { offset } or { timestamp }. */
function checkStart(path: string, from: unknown): StartFrom {
  if (from === 'earliest' || from === 'latest') return from;
  if (typeof from === 'object' && from !== null && !Array.isArray(from)) {
    checkOptionNames(path, from, OptionNames.start);
    const o = from as { offset?: unknown; timestamp?: unknown };
    if (Object.keys(o).length === 1 && o.offset !== undefined) {
      checkOffset(o.offset as number);
      return from as StartFrom;
    }
    if (Object.keys(o).length === 1 && o.timestamp !== undefined) {
      const ts = o.timestamp;
      if (!Number.isSafeInteger(ts) || (ts as number) < 0) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `${path}.timestamp: expected milliseconds since the epoch (>= 0), got ${String(ts)}`,
        );
      }
      return from as StartFrom;
    }
  }
  throw new StreamBusError(
    ErrorCode.INVALID_ARGUMENT,
    `${path}: expected 'earliest', 'latest', { offset } or { timestamp }, got ${describeValue(from)}`,
  );
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'object' && v !== null) return JSON.stringify(v) ?? String(v);
  return String(v);
}

function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `offset: expected a non-negative integer, got ${offset}`,
    );
  }
}
