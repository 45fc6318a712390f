// One `__consumer_offsets` partition as the coordinator hosts it on this broker (docs/groups.md
// "The coordinator"): the thin async shell around the pure state machine (group-state.ts).
//
//   idle     this broker does not lead the partition: NOT_COORDINATOR
//   loading  it became leader (term E): COORDINATOR_LOAD_IN_PROGRESS until the state is rebuilt:
//            first everything the log held at the election is committed (a new leader learns
//            the commit point only with its own term's first entry), then the LSM store's
//            records and the log from its checkpoint are replayed, and the tail is written to
//            the store
//   active   requests step the state machine; the step's records are proposed to the partition
//            (acks=all) at once, and the step's responses are released when that proposal is
//            committed, or, for a step that writes nothing, when every earlier proposal is (so
//            no answer reveals state that is not durable)
// Leaving leadership (a role or term change, seen on the replica's change events and every
// tick) or a failed proposal (the state here is then ahead of the log) unloads: every parked
// request fails with NOT_COORDINATOR and a leader loads again. Committed records are written to
// the LSM store in proposal order, behind the answers (the store is a cache of the log).
import { randomUUID } from 'node:crypto';
import {
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  isStreamBusError,
  type RecordInput,
  StreamBusError,
  splitBatches,
} from '@streambus/protocol';
import type { Logger } from 'pino';
import type { PartitionReplica, ProduceResult } from '../replication/partition-replica.js';
import { GROUP_TICK_MS } from './coordinator-service.js';
import { initialCoordinatorState, step } from './group-state.js';
import type { GroupStateStore } from './group-store.js';
import {
  decodeGroupRecord,
  type EncodedGroupRecord,
  encodeGroupRecord,
  replay,
} from './records.js';
import type {
  CoordinatorState,
  GroupEvent,
  GroupLimits,
  GroupRecord,
  GroupResponse,
} from './types.js';

/** Bytes of log read at once while loading. */
const LOAD_READ_BYTES = 1024 * 1024;
/** Bytes of records per batch proposed (a single larger record gets a batch of its own). */
const PROPOSE_BATCH_BYTES = 512 * 1024;
/** A load that failed is tried again after this long (while still leader). */
const LOAD_RETRY_MS = 1000;
/** How long a loading leader waits between looks at its commit point. */
const LOAD_POLL_MS = 20;

export interface OffsetsPartitionOptions {
  readonly index: number;
  readonly topicId: number;
  readonly replica: PartitionReplica;
  readonly store: GroupStateStore;
  readonly limits: GroupLimits;
  /** Requests parked or awaiting their commit, at most (more: COORDINATOR_REQUESTS_FULL). */
  readonly requestsPendingMax: number;
  /** The topic's delete.retention.ms: a store checkpoint older than it is not trusted. */
  readonly deleteRetentionMs: () => number;
  /** Partition counts of the cluster's topics (the same map until the metadata changes). */
  readonly partitionCounts: () => ReadonlyMap<string, number>;
  readonly logger: Logger;
  readonly nowMs: () => number;
}

interface Waiter {
  readonly resolve: (r: GroupResponse) => void;
  readonly reject: (err: unknown) => void;
}

type Phase =
  | { readonly kind: 'idle' }
  | { readonly kind: 'loading'; readonly epoch: number }
  | { readonly kind: 'active'; readonly epoch: number; state: CoordinatorState };

function notCoordinator(partition: number, why: string): StreamBusError {
  return new StreamBusError(
    ErrorCode.NOT_COORDINATOR,
    `this broker is not the coordinator of __consumer_offsets-${partition}: ${why}`,
  );
}

/** Records into RecordBatch v2 bytes, batches of about PROPOSE_BATCH_BYTES. */
export function encodeRecordBatches(records: readonly EncodedGroupRecord[], nowMs: number): Buffer {
  const out: Buffer[] = [];
  let batch: RecordInput[] = [];
  let bytes = 0;
  for (const r of records) {
    const size = r.key.length + (r.value?.length ?? 0);
    if (batch.length > 0 && bytes + size > PROPOSE_BATCH_BYTES) {
      out.push(encodeRecordBatch(batch, { timestamp: nowMs }));
      batch = [];
      bytes = 0;
    }
    batch.push({ key: r.key, value: r.value });
    bytes += size;
  }
  if (batch.length > 0) out.push(encodeRecordBatch(batch, { timestamp: nowMs }));
  return Buffer.concat(out);
}

export class OffsetsPartition {
  private phase: Phase = { kind: 'idle' };
  /** Bumped by every load and unload: work of an older incarnation is dropped. */
  private incarnation = 0;
  private readonly waiting = new Map<number, Waiter>();
  /** Settles when every proposal so far is committed (rejects if one failed). */
  private lastWrite: Promise<unknown> = Promise.resolve();
  /** The store writes, in proposal order (never rejects). */
  private storeChain: Promise<void> = Promise.resolve();
  private storeBroken = false;
  /** The incarnation whose writes stopped reaching the store at a failed proposal. */
  private storeGapAt = -1;
  private topicsSeen: ReadonlyMap<string, number> | null = null;
  private loadNotBeforeMs = 0;
  private closed = false;
  private readonly unsubscribe: () => void;

  constructor(private readonly o: OffsetsPartitionOptions) {
    this.unsubscribe = o.replica.onChange((e) => {
      if (e.kind === 'role') this.reconcile();
    });
  }

  get index(): number {
    return this.o.index;
  }

  get status(): Phase['kind'] {
    return this.phase.kind;
  }

  /** The state while active (tests, listing). */
  get state(): CoordinatorState | null {
    return this.phase.kind === 'active' ? this.phase.state : null;
  }

  private nowTick(): number {
    return Math.floor(this.o.nowMs() / GROUP_TICK_MS);
  }

  /** Follows the replica's role: load as a new leader, unload otherwise. */
  reconcile(): void {
    if (this.closed) return;
    const r = this.o.replica;
    const leading = r.role === 'leader';
    if (this.phase.kind !== 'idle' && (!leading || this.phase.epoch !== r.leaderEpoch)) {
      this.unload(notCoordinator(this.o.index, 'it lost the partition leadership'));
    }
    if (leading && this.phase.kind === 'idle' && this.o.nowMs() >= this.loadNotBeforeMs) {
      this.load(r.leaderEpoch);
    }
  }

  /** One tick of the broker: the role check, then the state machine's timers. */
  tick(): void {
    this.reconcile();
    if (this.phase.kind === 'active' && this.phase.state.groups.size > 0) {
      this.run({ type: 'tick' });
    }
  }

  /** Runs one request event (its requestId assigned by the caller, unique on this broker). */
  submit(
    event: Exclude<GroupEvent, { type: 'tick' } | { type: 'topics' }>,
  ): Promise<GroupResponse> {
    if (this.phase.kind === 'idle') {
      return Promise.reject(notCoordinator(this.o.index, 'it does not lead the partition'));
    }
    if (this.phase.kind === 'loading') {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
          `__consumer_offsets-${this.o.index} is loading on this broker`,
        ),
      );
    }
    if (this.waiting.size >= this.o.requestsPendingMax) {
      return Promise.reject(
        new StreamBusError(
          ErrorCode.COORDINATOR_REQUESTS_FULL,
          `__consumer_offsets-${this.o.index}: ${this.waiting.size} group requests pending (requestsPendingMax ${this.o.requestsPendingMax})`,
        ),
      );
    }
    return new Promise<GroupResponse>((resolve, reject) => {
      this.waiting.set(event.requestId, { resolve, reject });
      try {
        this.run(event);
      } catch (err) {
        this.waiting.delete(event.requestId);
        reject(err);
      }
    });
  }

  private run(event: GroupEvent): void {
    const phase = this.phase;
    if (phase.kind !== 'active') return;
    const counts = this.o.partitionCounts();
    if (counts !== this.topicsSeen) {
      phase.state = step(
        phase.state,
        { type: 'topics', partitionCounts: counts },
        this.nowTick(),
      ).state;
      this.topicsSeen = counts;
    }
    const r = step(phase.state, event, this.nowTick());
    phase.state = r.state;
    const inc = this.incarnation;
    let gate = this.lastWrite;
    if (r.records.length > 0) {
      gate = this.write(inc, r.records);
      this.lastWrite = gate;
    }
    if (r.responses.length === 0) return;
    gate.then(
      () => this.deliver(inc, r.responses),
      (err: unknown) => this.failResponses(r.responses, err),
    );
  }

  /** Proposes records (acks=all); the store follows in proposal order once committed. */
  private write(inc: number, records: readonly GroupRecord[]): Promise<unknown> {
    let encoded: EncodedGroupRecord[] = [];
    let write: Promise<ProduceResult>;
    try {
      encoded = records.map(encodeGroupRecord);
      write = this.o.replica.propose(encodeRecordBatches(encoded, this.o.nowMs()), -1);
    } catch (err) {
      write = Promise.reject(err);
    }
    write.catch((err: unknown) => {
      if (inc !== this.incarnation) return;
      this.o.logger.warn(
        { err, partition: this.o.index },
        'writing group records failed; the coordinator reloads the partition',
      );
      this.unload(
        isStreamBusError(err, ErrorCode.NOT_LEADER_OR_FOLLOWER)
          ? notCoordinator(this.o.index, 'it lost the partition leadership')
          : new StreamBusError(
              ErrorCode.COORDINATOR_NOT_AVAILABLE,
              `writing to __consumer_offsets-${this.o.index} failed: ${String((err as Error)?.message ?? err)}`,
            ),
      );
      this.reconcile();
    });
    // A committed write is saved even after an unload (the load waits for the chain); after a
    // failed one, nothing more of its incarnation is (the store must not skip over its records).
    this.storeChain = this.storeChain.then(async () => {
      const res = await write.catch(() => null);
      if (res === null) this.storeGapAt = inc;
      if (res === null || this.storeGapAt === inc || this.storeBroken) return;
      await this.save(encoded, res.lastOffset + 1);
    });
    return write;
  }

  private async save(encoded: readonly EncodedGroupRecord[], offset: number): Promise<void> {
    try {
      await this.o.store.save(this.o.topicId, this.o.index, encoded, offset, this.o.nowMs());
    } catch (err) {
      // Its checkpoint stays where it was: the next load replays more of the log.
      this.storeBroken = true;
      this.o.logger.error(
        { err, partition: this.o.index },
        'writing the group state store failed; it is caught up at the next load',
      );
    }
  }

  private deliver(inc: number, responses: readonly GroupResponse[]): void {
    if (inc !== this.incarnation) {
      this.failResponses(responses, notCoordinator(this.o.index, 'it reloaded the partition'));
      return;
    }
    for (const res of responses) {
      const w = this.waiting.get(res.requestId);
      if (w === undefined) continue;
      this.waiting.delete(res.requestId);
      w.resolve(res);
    }
  }

  private failResponses(responses: readonly GroupResponse[], err: unknown): void {
    for (const res of responses) {
      const w = this.waiting.get(res.requestId);
      if (w === undefined) continue;
      this.waiting.delete(res.requestId);
      w.reject(err);
    }
  }

  private unload(err: StreamBusError): void {
    this.incarnation++;
    this.phase = { kind: 'idle' };
    this.lastWrite = Promise.resolve();
    this.topicsSeen = null;
    const waiting = [...this.waiting.values()];
    this.waiting.clear();
    for (const w of waiting) w.reject(err);
  }

  private load(epoch: number): void {
    const inc = ++this.incarnation;
    this.phase = { kind: 'loading', epoch };
    this.loadState(inc).then(
      (state) => {
        if (inc !== this.incarnation) return;
        this.storeBroken = false;
        this.phase = { kind: 'active', epoch, state };
        this.o.logger.info(
          { partition: this.o.index, epoch, groups: state.groups.size },
          'group coordinator loaded',
        );
      },
      (err: unknown) => {
        if (inc !== this.incarnation) return;
        this.phase = { kind: 'idle' };
        this.loadNotBeforeMs = this.o.nowMs() + LOAD_RETRY_MS;
        if (!isStreamBusError(err, ErrorCode.NOT_COORDINATOR)) {
          this.o.logger.error(
            { err, partition: this.o.index },
            'loading the group coordinator failed; retrying',
          );
        }
      },
    );
  }

  private checkCurrent(inc: number): void {
    if (inc !== this.incarnation || this.closed) {
      throw notCoordinator(this.o.index, 'it left the partition leadership while loading');
    }
  }

  private async loadState(inc: number): Promise<CoordinatorState> {
    const { replica, store, topicId, index } = this.o;
    // Writes of an earlier incarnation land in the store first.
    await this.storeChain;
    // Everything in the log at the election is committed before it is read.
    const end = replica.logEndOffset;
    while (replica.highWatermark < end) {
      this.checkCurrent(inc);
      await new Promise((r) => setTimeout(r, LOAD_POLL_MS));
    }
    this.checkCurrent(inc);
    const hw = replica.highWatermark;
    const loadTick = this.nowTick();
    let state = initialCoordinatorState(randomUUID().slice(0, 8), this.o.limits);
    let from = replica.logStartOffset;
    const saved = await store.checkpoint(topicId, index).catch((err: unknown) => {
      this.o.logger.warn({ err, partition: index }, 'group state checkpoint unreadable');
      return 'damaged' as const;
    });
    const usable =
      saved !== null &&
      saved !== 'damaged' &&
      saved.offset >= from &&
      saved.offset <= hw &&
      this.o.nowMs() - saved.savedAtMs <= this.o.deleteRetentionMs();
    if (usable) {
      for await (const chunk of store.records(topicId, index)) {
        this.checkCurrent(inc);
        state = replay(state, chunk, loadTick);
      }
      from = saved.offset;
    } else if (saved !== null) {
      this.o.logger.warn(
        { partition: index, saved, logStart: from, highWatermark: hw },
        'group state store does not match the log; replaying the whole partition',
      );
      await store.discard(topicId, index);
    }
    let offset = from;
    while (offset < hw) {
      this.checkCurrent(inc);
      const { data, nextOffset } = await replica.read(offset, LOAD_READ_BYTES);
      if (nextOffset <= offset) break;
      const records: GroupRecord[] = [];
      const encoded: EncodedGroupRecord[] = [];
      for (const { position } of splitBatches(data)) {
        const batch = decodeRecordBatch(data, position, { minOffset: offset });
        if (batch.isControl) continue;
        for (const rec of batch.records) {
          if (rec.key === null) continue;
          try {
            records.push(decodeGroupRecord(rec.key, rec.value));
            encoded.push({ key: rec.key, value: rec.value });
          } catch (err) {
            this.o.logger.error(
              { err, partition: index, offset: rec.offset },
              'skipping an undecodable group record',
            );
          }
        }
      }
      state = replay(state, records, loadTick);
      offset = nextOffset;
      this.checkCurrent(inc);
      await store.save(topicId, index, encoded, offset, this.o.nowMs());
    }
    return state;
  }

  /** Stops: parked requests fail with NOT_COORDINATOR; store writes in flight finish. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.unload(notCoordinator(this.o.index, 'the partition closed here'));
    await this.storeChain;
  }
}
