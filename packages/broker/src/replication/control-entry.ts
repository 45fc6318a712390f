// Raft entries <-> RecordBatches on disk, for one partition replica (docs/replication.md).
//
// One entry is one batch. A Normal entry with data IS a RecordBatch: its bytes are stored
// unchanged. The two kinds of entry the Raft core makes itself are stored as CONTROL batches of
// one record, so they occupy one offset each (offset-translator.ts explains why) and consumers
// skip them by the control attribute, as they skip Kafka's transaction markers:
//   - the leader's no-op (an empty Normal entry): key type RAFT_NOOP, value null;
//   - a configuration entry (Conf): key type RAFT_CONF, value = the entry's data (the encoded
//     ConfState); read back from disk it is a Conf entry with that data again.
// The control record key is Kafka's layout (version int16 = 0 | type int16); the types are
// StreamBus's own, far from Kafka's (0/1 transaction markers, 2-6 KRaft-internal).
// A third kind is proposed by the leader itself as ordinary entry data: the log-start entry
// (RAFT_LOG_START, value = index u64 | offset u64), by which retention and delete-records move
// every replica's log start to the same committed point (partition-replica.ts). Its bytes are
// the entry's data, stored unchanged like a data batch's, and read back as a Normal entry.
//
// Determinism: the bytes depend only on (offset, term, type, payload): timestamp 0, no producer,
// no compression. Every replica that writes the control batch of an entry writes the same bytes,
// which is what keeps the replicas' logs byte-identical although each one encodes it locally.
import {
  BatchAttributes,
  BatchField,
  batchSizeAt,
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  readBatchHeader,
  StreamBusError,
} from '@streambus/protocol';
import { type Entry, EntryType, type LogIndex, type Term } from '@streambus/raft';
import type { SourceBatch } from './raft-log-tail.js';
import type { LogPosition } from './term-runs.js';

export const RAFT_NOOP_CONTROL_TYPE = 100;
export const RAFT_CONF_CONTROL_TYPE = 101;
export const RAFT_LOG_START_CONTROL_TYPE = 102;

const EMPTY = new Uint8Array(0);

/** The control batch that stores a no-op or configuration entry at `offset`. Pure. */
export function encodeControlEntry(offset: number, term: Term, entry: Entry): Buffer {
  const conf = entry.type === EntryType.Conf;
  const key = controlKey(conf ? RAFT_CONF_CONTROL_TYPE : RAFT_NOOP_CONTROL_TYPE);
  return encodeRecordBatch([{ key, value: conf ? entry.data : null, timestamp: 0 }], {
    baseOffset: offset,
    partitionLeaderEpoch: term,
    isControl: true,
    timestamp: 0,
  });
}

function controlKey(type: number): Buffer {
  const key = Buffer.alloc(4);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(type, 2);
  return key;
}

/** A log-start entry's batch (offset and epoch are stamped by the leader when it proposes). */
export function encodeLogStartBatch(start: LogPosition): Buffer {
  const value = Buffer.alloc(16);
  value.writeBigUInt64BE(BigInt(start.index), 0);
  value.writeBigUInt64BE(BigInt(start.offset), 8);
  return encodeRecordBatch(
    [{ key: controlKey(RAFT_LOG_START_CONTROL_TYPE), value, timestamp: 0 }],
    {
      isControl: true,
      timestamp: 0,
    },
  );
}

/** The position a log-start entry's data names, or null for any other entry data. */
export function logStartOf(data: Uint8Array): LogPosition | null {
  if (data.byteLength < 61 || !isControlBatch(data)) return null;
  const buf = Buffer.isBuffer(data)
    ? data
    : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const rec = decodeRecordBatch(buf).records[0];
  if (!rec?.key || rec.key.length < 4 || !rec.value || rec.value.length < 16) return null;
  const key = Buffer.from(rec.key.buffer, rec.key.byteOffset, rec.key.byteLength);
  if (key.readInt16BE(2) !== RAFT_LOG_START_CONTROL_TYPE) return null;
  const v = Buffer.from(rec.value.buffer, rec.value.byteOffset, rec.value.byteLength);
  return {
    index: Number(v.readBigUInt64BE(0)) as LogIndex,
    offset: Number(v.readBigUInt64BE(8)),
  };
}

/** True for an entry the replica stores as a control batch (no-op or configuration). */
export function isControlEntry(entry: Entry): boolean {
  return entry.type === EntryType.Conf || entry.data.byteLength === 0;
}

export function isControlBatch(buf: Uint8Array, pos = 0): boolean {
  return (buf[pos + BatchField.ATTRIBUTES + 1]! & BatchAttributes.CONTROL) !== 0;
}

function corrupt(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_DATA, `replica log: ${message}`);
}

/**
 * One batch read from the partition log in the Raft core's entry form: a data batch is a Normal
 * entry over the same bytes (a view, no copy); a replica control batch is the no-op (empty
 * Normal) or a Conf entry. Any other control batch in a replicated log is CORRUPT_DATA.
 */
export function batchToSource(buf: Buffer, pos: number): SourceBatch {
  const size = batchSizeAt(buf, pos);
  if (pos + size > buf.length) throw corrupt(`batch at ${pos} is incomplete`);
  const h = readBatchHeader(buf, pos);
  const recordCount = h.lastOffsetDelta + 1;
  const view = buf.subarray(pos, pos + size);
  const source = (type: EntryType, data: Uint8Array): SourceBatch => ({
    baseOffset: h.baseOffset,
    recordCount,
    term: h.partitionLeaderEpoch as Term,
    type,
    data,
  });
  if (!isControlBatch(buf, pos)) return source(EntryType.Normal, view);
  const decoded = decodeRecordBatch(view);
  const rec = decoded.records[0];
  if (decoded.records.length !== 1 || !rec || !rec.key || rec.key.length < 4) {
    throw corrupt(`control batch at offset ${h.baseOffset} is not a replica control entry`);
  }
  const type = Buffer.from(rec.key.buffer, rec.key.byteOffset, rec.key.byteLength).readInt16BE(2);
  if (type === RAFT_NOOP_CONTROL_TYPE) return source(EntryType.Normal, EMPTY);
  if (type === RAFT_CONF_CONTROL_TYPE && rec.value) return source(EntryType.Conf, rec.value);
  if (type === RAFT_LOG_START_CONTROL_TYPE) return source(EntryType.Normal, view);
  throw corrupt(`control batch at offset ${h.baseOffset} has control type ${type}`);
}

/** Whole batches of `buf` (a partition log read), as source batches, in order. */
export function batchesToSources(buf: Buffer): SourceBatch[] {
  const out: SourceBatch[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const b = batchToSource(buf, pos);
    out.push(b);
    pos += batchSizeAt(buf, pos);
  }
  return out;
}
