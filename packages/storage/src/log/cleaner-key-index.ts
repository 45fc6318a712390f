// The log cleaner's key index: key -> offset of the latest record with that key, for one
// partition log, kept in an LSM store (one store may hold many partitions: every key carries the
// partition's name as a prefix). Rebuilt from the log when it is missing or behind.
//
// Layout (tuple keys, lsm/keys.ts):
//   ('cleaner', partition, 'k', key bytes)  -> f64 offset of the latest record with that key
//   ('cleaner', partition, 'state')         -> JSON { indexedUpTo, cleanedUpTo }
// `indexedUpTo` is written in the same atomic WriteBatch as the entries it covers, so after a
// crash (unsynced LSM writes lost) the index is exactly the log's records below `indexedUpTo`,
// and catching up from there restores it. Entries are only ever added for offsets below the
// cleaner's bound (at or below the commit point), which a Raft truncation never takes back; a
// reset of the log (`truncateFullyAndStartAt`, a snapshot install) must be followed by `clear()`
// (an index found past the log's end is cleared by `catchUp` on its own).
import {
  BatchAttributes,
  BatchCursor,
  BatchField,
  decodeRecordBatch,
  ErrorCode,
  isStreamBusError,
} from '@streambus/protocol';
import { encodeKey } from '../lsm/keys.js';
import { type LsmStore, WriteBatch } from '../lsm/lsm-store.js';
import type { IoBudget } from './io-budget.js';
import { throwIfCleanAborted } from './log-cleaner.js';
import { batchBaseOffset, batchLastOffsetDelta } from './log-segment.js';
import type { PartitionLog } from './partition-log.js';

export interface KeyIndexState {
  /** Every record below this offset is indexed. */
  indexedUpTo: number;
  /** The bound of the last clean that finished (for the dirty-ratio trigger). */
  cleanedUpTo: number;
}

/** Entries per LSM WriteBatch while catching up or clearing (bounds one write). */
const WRITE_BATCH_ENTRIES_MAX = 4096;

export class CleanerKeyIndex {
  private readonly stateKey: Buffer;

  constructor(
    private readonly store: LsmStore,
    /** The partition's name in the store (for instance "topic/3"). */
    readonly partition: string,
  ) {
    this.stateKey = encodeKey('cleaner', partition, 'state');
  }

  private entryKey(key: Uint8Array): Buffer {
    return encodeKey('cleaner', this.partition, 'k', key);
  }

  async state(): Promise<KeyIndexState> {
    const raw = await this.store.get(this.stateKey);
    if (raw === undefined) return { indexedUpTo: 0, cleanedUpTo: 0 };
    const s = JSON.parse(raw.toString('utf8')) as KeyIndexState;
    return { indexedUpTo: s.indexedUpTo, cleanedUpTo: s.cleanedUpTo };
  }

  private encodeState(s: KeyIndexState): string {
    return JSON.stringify({ indexedUpTo: s.indexedUpTo, cleanedUpTo: s.cleanedUpTo });
  }

  /** The offset of the latest indexed record with `key`, or undefined. */
  async latest(key: Uint8Array): Promise<number | undefined> {
    const raw = await this.store.get(this.entryKey(key));
    return raw === undefined ? undefined : raw.readDoubleBE(0);
  }

  /** Removes every entry and the state of this partition. */
  async clear(): Promise<void> {
    let batch = new WriteBatch();
    for await (const { key } of this.store.scan({ prefix: encodeKey('cleaner', this.partition) })) {
      batch.delete(key);
      if (batch.length >= WRITE_BATCH_ENTRIES_MAX) {
        await this.store.write(batch);
        batch = new WriteBatch();
      }
    }
    if (batch.length > 0) await this.store.write(batch);
  }

  /** Removes the entries of keys whose last record (a tombstone) the cleaner dropped. */
  async forget(keys: readonly Uint8Array[]): Promise<void> {
    for (let i = 0; i < keys.length; i += WRITE_BATCH_ENTRIES_MAX) {
      const batch = new WriteBatch();
      for (const k of keys.slice(i, i + WRITE_BATCH_ENTRIES_MAX)) batch.delete(this.entryKey(k));
      await this.store.write(batch);
    }
  }

  /** Records that a clean up to `bound` finished. */
  async markCleaned(bound: number): Promise<void> {
    const s = await this.state();
    s.cleanedUpTo = Math.max(s.cleanedUpTo, bound);
    await this.store.put(this.stateKey, this.encodeState(s));
  }

  /**
   * Indexes the log's records from `indexedUpTo` up to `bound` (whole batches whose last offset is
   * below it), reading `readBytesMax` at a time within `budget`. An index past the log's end (the
   * log was reset or lost its tail) is cleared and rebuilt from the log start. Returns the new
   * `indexedUpTo` (at least the log start). Corruption met by a read is thrown
   * (LogCorruptionError) with the index consistent up to where it got.
   */
  async catchUp(
    log: PartitionLog,
    bound: number,
    readBytesMax: number,
    budget: IoBudget | null,
    signal?: AbortSignal,
  ): Promise<number> {
    let state = await this.state();
    if (state.indexedUpTo > log.logEndOffset) {
      await this.clear();
      state = { indexedUpTo: 0, cleanedUpTo: 0 };
    }
    let offset = Math.max(state.indexedUpTo, log.logStartOffset);
    while (offset < bound) {
      throwIfCleanAborted(signal, this.partition);
      // Retention or delete-records may move the log start past us meanwhile: go on from there.
      offset = Math.max(offset, log.logStartOffset);
      let r: Awaited<ReturnType<PartitionLog['read']>>;
      try {
        r = await log.read(offset, readBytesMax);
      } catch (err) {
        if (isStreamBusError(err) && err.code === ErrorCode.OFFSET_OUT_OF_RANGE) {
          if (offset < log.logStartOffset) continue;
        }
        throw err;
      }
      await budget?.spend(r.data.length);
      if (r.data.length === 0) break;
      const batch = new WriteBatch();
      let next = offset;
      const cursor = new BatchCursor(r.data);
      while (cursor.next()) {
        const p = cursor.position;
        const last = batchBaseOffset(r.data, p) + batchLastOffsetDelta(r.data, p);
        if (last >= bound) break;
        next = last + 1;
        const attributes = r.data.readInt16BE(p + BatchField.ATTRIBUTES);
        if ((attributes & BatchAttributes.CONTROL) !== 0) continue;
        let records: ReturnType<typeof decodeRecordBatch>['records'];
        try {
          records = decodeRecordBatch(r.data.subarray(p, p + cursor.size)).records;
        } catch {
          // A batch the log accepted but whose records do not decode: the cleaner keeps it as
          // it is, so it needs no entries.
          continue;
        }
        for (const rec of records) {
          if (rec.key !== null) batch.put(this.entryKey(rec.key), offsetValue(rec.offset));
        }
      }
      if (next === offset) break;
      state.indexedUpTo = next;
      batch.put(this.stateKey, this.encodeState(state));
      await this.store.write(batch);
      offset = next;
    }
    return Math.max(state.indexedUpTo, offset);
  }
}

function offsetValue(offset: number): Buffer {
  const b = Buffer.allocUnsafe(8);
  b.writeDoubleBE(offset, 0);
  return b;
}
