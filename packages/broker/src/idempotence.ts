// Idempotent-producer state of one partition: per producer id, its current epoch and the last
// `batchesMax` (5) batches' (firstSeq, lastSeq, baseOffset). `check` decides what to do with an
// incoming batch (kafka-protocol.md §4.11, after Kafka's ProducerAppendInfo.checkSequence):
//
//   | condition                                   | answer                                      |
//   | no state for the producer id                | append, start tracking (never 45 or 59)     |
//   | epoch < stored epoch                        | INVALID_PRODUCER_EPOCH (47)                 |
//   | epoch > stored epoch                        | baseSequence must be 0 (else 45); new epoch |
//   | same first and last seq as a kept batch     | duplicate: answer its original baseOffset   |
//   | baseSequence == last lastSeq + 1 (wrapping) | append                                      |
//   | anything else                               | OUT_OF_ORDER_SEQUENCE_NUMBER (45)           |
//
// Sequences wrap at 2^31 - 1 -> 0. Pure and synchronous: the partition shell calls `check` and
// `record` in the same tick, before it awaits the append, so pipelined batches of one producer see
// each other. An entry's baseOffset is null while its append is in flight. Snapshots (`toJSON`,
// `fromJSON`) and `observe` (replay of stored batch headers) let the state survive a restart.
// Bounded: at most `producersMax` producers; the least recently used one is forgotten first
// (a forgotten producer is "no state", which accepts any sequence, as Kafka does on expiry).
import { ErrorCode, StreamBusError } from '@streambus/protocol';

export const SEQUENCE_MAX = 2 ** 31 - 1;
export const PRODUCER_BATCHES_MAX = 5;

export interface BatchEntry {
  readonly firstSeq: number;
  readonly lastSeq: number;
  /** Null while the append that assigns it is in flight. */
  baseOffset: number | null;
}

interface ProducerEntry {
  epoch: number;
  /** Oldest first; at most batchesMax. */
  batches: BatchEntry[];
}

export type SequenceDecision = { kind: 'append' } | { kind: 'duplicate'; entry: BatchEntry };

export interface ProducerStateSnapshot {
  producers: Array<{ id: number; epoch: number; batches: Array<[number, number, number]> }>;
}

/** The sequence of the last record of a batch starting at `firstSeq` with `lastOffsetDelta`. */
export function lastSequence(firstSeq: number, lastOffsetDelta: number): number {
  const last = firstSeq + lastOffsetDelta;
  return last > SEQUENCE_MAX ? last - SEQUENCE_MAX - 1 : last;
}

function nextSequence(seq: number): number {
  return seq === SEQUENCE_MAX ? 0 : seq + 1;
}

export class ProducerStateTable {
  private readonly producers = new Map<number, ProducerEntry>();

  constructor(
    readonly producersMax = 10_000,
    readonly batchesMax = PRODUCER_BATCHES_MAX,
  ) {}

  get size(): number {
    return this.producers.size;
  }

  /** Decides what to do with a batch; throws INVALID_PRODUCER_EPOCH or OUT_OF_ORDER_SEQUENCE_NUMBER. */
  check(producerId: number, epoch: number, firstSeq: number, lastSeq: number): SequenceDecision {
    const p = this.producers.get(producerId);
    if (p === undefined) return { kind: 'append' };
    if (epoch < p.epoch) {
      throw new StreamBusError(
        ErrorCode.INVALID_PRODUCER_EPOCH,
        `producer ${producerId}: epoch ${epoch} is older than the current epoch ${p.epoch}`,
      );
    }
    if (epoch > p.epoch) {
      if (firstSeq !== 0) {
        throw new StreamBusError(
          ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
          `producer ${producerId}: first batch of new epoch ${epoch} has sequence ${firstSeq}, expected 0`,
        );
      }
      return { kind: 'append' };
    }
    for (const entry of p.batches) {
      if (entry.firstSeq === firstSeq && entry.lastSeq === lastSeq)
        return { kind: 'duplicate', entry };
    }
    const last = p.batches[p.batches.length - 1];
    if (last === undefined || firstSeq === nextSequence(last.lastSeq)) return { kind: 'append' };
    throw new StreamBusError(
      ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
      `producer ${producerId} epoch ${epoch}: sequence ${firstSeq} does not follow ${last.lastSeq} ` +
        `(expected ${nextSequence(last.lastSeq)})`,
    );
  }

  /** Records a batch accepted by `check` (kind 'append'); returns its entry to fill in baseOffset. */
  record(
    producerId: number,
    epoch: number,
    firstSeq: number,
    lastSeq: number,
    baseOffset: number | null,
  ): BatchEntry {
    let p = this.producers.get(producerId);
    if (p === undefined || epoch > p.epoch) {
      p = { epoch, batches: [] };
    }
    // Re-insert: Map order is the LRU order.
    this.producers.delete(producerId);
    this.producers.set(producerId, p);
    const entry: BatchEntry = { firstSeq, lastSeq, baseOffset };
    p.batches.push(entry);
    if (p.batches.length > this.batchesMax) p.batches.shift();
    while (this.producers.size > this.producersMax) {
      const oldest = this.producers.keys().next().value as number;
      this.producers.delete(oldest);
    }
    return entry;
  }

  /** Undoes `record` after a failed append (only the newest entry of the producer). */
  forget(producerId: number, entry: BatchEntry): void {
    const p = this.producers.get(producerId);
    if (p === undefined) return;
    const i = p.batches.lastIndexOf(entry);
    if (i >= 0) p.batches.splice(i, 1);
    if (p.batches.length === 0) this.producers.delete(producerId);
  }

  /** Replays a stored batch header (rebuild at open). Non-idempotent batches are ignored. */
  observe(
    producerId: number,
    epoch: number,
    baseSequence: number,
    lastOffsetDelta: number,
    baseOffset: number,
  ): void {
    if (producerId < 0 || baseSequence < 0) return;
    const p = this.producers.get(producerId);
    if (p !== undefined && epoch < p.epoch) return;
    this.record(
      producerId,
      epoch,
      baseSequence,
      lastSequence(baseSequence, lastOffsetDelta),
      baseOffset,
    );
  }

  /** Drops every producer (the log was truncated below what the state describes). */
  clear(): void {
    this.producers.clear();
  }

  /** Only settled entries: an in-flight append is not yet part of the log. */
  toJSON(): ProducerStateSnapshot {
    const producers: ProducerStateSnapshot['producers'] = [];
    for (const [id, p] of this.producers) {
      const batches = p.batches
        .filter((b) => b.baseOffset !== null)
        .map((b): [number, number, number] => [b.firstSeq, b.lastSeq, b.baseOffset as number]);
      if (batches.length > 0) producers.push({ id, epoch: p.epoch, batches });
    }
    return { producers };
  }

  static fromJSON(
    snapshot: ProducerStateSnapshot,
    producersMax?: number,
    batchesMax?: number,
  ): ProducerStateTable {
    const table = new ProducerStateTable(producersMax, batchesMax);
    for (const p of snapshot.producers) {
      for (const [firstSeq, lastSeq, baseOffset] of p.batches) {
        table.record(p.id, p.epoch, firstSeq, lastSeq, baseOffset);
      }
    }
    return table;
  }
}
