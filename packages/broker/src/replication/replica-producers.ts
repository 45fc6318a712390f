// Idempotent-producer state of a partition replica (idempotence.ts's ProducerStateTable), kept
// on EVERY replica as batches are appended to its log, so a new leader has it at once.
//
//   - appended: each data batch written to the log is observed (its producer id, epoch and
//     sequences) right after `tail.append`; follower and leader alike.
//   - truncated with the log: a follower whose log loses a suffix rebuilds the table from the
//     snapshot's table plus a header scan of what its log still holds (truncation is rare: only
//     uncommitted entries of a deposed leader are ever cut).
//   - in the snapshot: the table as of the snapshot point (`producersAt`); replaying the
//     batches after that point on top of it gives the table of the whole log.
//   - the leader checks sequences before proposing, against a copy of the table taken when its
//     log was placed (everything it holds is then on disk) plus its own proposals recorded as it
//     makes them; that copy is dropped when it stops leading.
import { BatchField, ErrorCode, StreamBusError } from '@streambus/protocol';
import { lastSequence, type ProducerStateSnapshot, ProducerStateTable } from '../idempotence.js';

const EMPTY = new Uint8Array(0);

export interface BatchProducer {
  readonly producerId: number;
  readonly epoch: number;
  readonly baseSequence: number;
  readonly lastOffsetDelta: number;
}

/** The idempotence fields of the batch at `pos` (producerId -1 for a plain batch). */
export function batchProducer(buf: Buffer, pos = 0): BatchProducer {
  const hi = buf.readInt32BE(pos + BatchField.PRODUCER_ID);
  const lo = buf.readUInt32BE(pos + BatchField.PRODUCER_ID + 4);
  return {
    producerId: hi * 2 ** 32 + lo,
    epoch: buf.readInt16BE(pos + BatchField.PRODUCER_EPOCH),
    baseSequence: buf.readInt32BE(pos + BatchField.BASE_SEQUENCE),
    lastOffsetDelta: buf.readInt32BE(pos + BatchField.LAST_OFFSET_DELTA),
  };
}

export function isIdempotent(p: BatchProducer): boolean {
  return p.producerId >= 0 && p.baseSequence >= 0;
}

/** Records a batch the log now holds at `baseOffset` (non-idempotent batches are ignored). */
export function observeBatch(
  table: ProducerStateTable,
  p: BatchProducer,
  baseOffset: number,
): void {
  table.observe(p.producerId, p.epoch, p.baseSequence, p.lastOffsetDelta, baseOffset);
}

export function lastSequenceOf(p: BatchProducer): number {
  return lastSequence(p.baseSequence, p.lastOffsetDelta);
}

/**
 * The table as of `startOffset` for a snapshot there: each producer's kept batches below it.
 * Batches at or after it are in the log after the snapshot and are replayed on top, which gives
 * back exactly the last batches of each producer (the table keeps the newest ones).
 */
export function producersAt(table: ProducerStateTable, startOffset: number): Uint8Array {
  const all = table.toJSON();
  const producers: ProducerStateSnapshot['producers'] = [];
  for (const p of all.producers) {
    const batches = p.batches.filter(([, , base]) => base < startOffset);
    if (batches.length > 0) producers.push({ id: p.id, epoch: p.epoch, batches });
  }
  if (producers.length === 0) return EMPTY;
  return Buffer.from(JSON.stringify({ producers }));
}

/** The table a snapshot carries (empty bytes: no producers). */
export function producersFrom(bytes: Uint8Array): ProducerStateTable {
  if (bytes.length === 0) return new ProducerStateTable();
  try {
    const parsed = JSON.parse(Buffer.from(bytes).toString('utf8')) as ProducerStateSnapshot;
    return ProducerStateTable.fromJSON(parsed);
  } catch (err) {
    throw new StreamBusError(
      ErrorCode.CORRUPT_DATA,
      `replica snapshot: producer state is not readable: ${(err as Error).message}`,
    );
  }
}

/** A copy (the leader's working table). */
export function copyProducers(table: ProducerStateTable): ProducerStateTable {
  return ProducerStateTable.fromJSON(table.toJSON(), table.producersMax, table.batchesMax);
}
