// The coordinator's materialized state in the LSM store (docs/groups.md "LSM layout"): per
// `__consumer_offsets` partition, the latest value of every record key below a checkpoint
// offset, so a broker that becomes the partition's leader replays the store and then only the
// log from the checkpoint on, instead of the whole partition.
//
// Keys (one store per broker, `<dataDir>/groups-state`):
//   g/<topicId>/<partition>/c              checkpoint: JSON { offset, savedAtMs }
//   g/<topicId>/<partition>/r/<record key> the record's value (a tombstone deletes the key)
// Only committed records are written, in log order, the checkpoint after its records (the same
// write batch, or the last of several), so the store always holds the latest value of every key
// of some committed prefix of the log, plus possibly some later values; replaying the log from
// the checkpoint over it gives the state of the whole log (the latest record of a key wins, and
// a group's deletion writes a tombstone per offset as well as for the group, so the order of
// different keys does not matter). Writes are not fsynced: the log is the truth, and a store that
// lost its tail after a crash only means a longer replay.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { type FileSystem, LsmStore, WriteBatch } from '@streambus/storage';
import { decodeGroupRecord, type EncodedGroupRecord } from './records.js';
import type { GroupRecord } from './types.js';

export interface GroupCheckpoint {
  /** Every committed record below this log offset is in the store. */
  readonly offset: number;
  /** When it was written (a store older than the topic's delete.retention.ms is not trusted). */
  readonly savedAtMs: number;
}

/** Bytes of one write batch at most (a larger save is split; the checkpoint goes last). */
const WRITE_BATCH_BYTES_MAX = 4 * 1024 * 1024;
/** Keys deleted per write batch when a partition's state is discarded. */
const DISCARD_BATCH_KEYS = 10_000;

function prefixOf(topicId: number, partition: number): string {
  return `g/${topicId}/${partition}/`;
}

function recordKey(prefix: string, key: Uint8Array): Buffer {
  return Buffer.concat([Buffer.from(`${prefix}r/`, 'latin1'), key]);
}

export class GroupStateStore {
  private constructor(private readonly lsm: LsmStore) {}

  static async open(fs: FileSystem, dir: string): Promise<GroupStateStore> {
    return new GroupStateStore(await LsmStore.open(fs, dir, { syncWrites: false }));
  }

  async checkpoint(topicId: number, partition: number): Promise<GroupCheckpoint | null> {
    const raw = await this.lsm.get(`${prefixOf(topicId, partition)}c`);
    if (raw === undefined) return null;
    try {
      const c = JSON.parse(raw.toString('utf8')) as Partial<GroupCheckpoint>;
      if (
        Number.isSafeInteger(c.offset) &&
        (c.offset as number) >= 0 &&
        Number.isSafeInteger(c.savedAtMs)
      ) {
        return { offset: c.offset as number, savedAtMs: c.savedAtMs as number };
      }
    } catch {
      // fall through: a damaged checkpoint is no checkpoint
    }
    throw new StreamBusError(
      ErrorCode.CORRUPT_DATA,
      `group state checkpoint of partition ${partition} is damaged`,
    );
  }

  /** Every record of the partition's state, in key order, `chunk` records at a time. */
  async *records(topicId: number, partition: number, chunk = 1000): AsyncGenerator<GroupRecord[]> {
    const prefix = `${prefixOf(topicId, partition)}r/`;
    const skip = Buffer.byteLength(prefix, 'latin1');
    let out: GroupRecord[] = [];
    for await (const kv of this.lsm.scan({ prefix })) {
      out.push(decodeGroupRecord(kv.key.subarray(skip), kv.value));
      if (out.length >= chunk) {
        yield out;
        out = [];
      }
    }
    if (out.length > 0) yield out;
  }

  /** Applies committed records (in log order) and moves the checkpoint to `offset`. */
  async save(
    topicId: number,
    partition: number,
    records: readonly EncodedGroupRecord[],
    offset: number,
    savedAtMs: number,
  ): Promise<void> {
    const prefix = prefixOf(topicId, partition);
    let batch = new WriteBatch();
    for (const r of records) {
      if (r.value === null) batch.delete(recordKey(prefix, r.key));
      else batch.put(recordKey(prefix, r.key), r.value);
      if (batch.bytes >= WRITE_BATCH_BYTES_MAX) {
        await this.lsm.write(batch);
        batch = new WriteBatch();
      }
    }
    batch.put(`${prefix}c`, JSON.stringify({ offset, savedAtMs }));
    await this.lsm.write(batch);
  }

  /** Forgets the partition's state (its checkpoint first, so a crash midway leaves none). */
  async discard(topicId: number, partition: number): Promise<void> {
    const prefix = prefixOf(topicId, partition);
    await this.lsm.delete(`${prefix}c`);
    for (;;) {
      const batch = new WriteBatch();
      for await (const kv of this.lsm.scan({ prefix }, { limit: DISCARD_BATCH_KEYS })) {
        batch.delete(kv.key);
      }
      if (batch.length === 0) return;
      await this.lsm.write(batch);
    }
  }

  close(): Promise<void> {
    return this.lsm.close();
  }
}
