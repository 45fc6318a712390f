// Control batches and records: Kafka's transaction markers (kafka-protocol.md §5.5).
//
// A control batch has attributes isControl (0x20) and isTransactional (0x10), the transaction's
// producerId and producerEpoch, baseSequence −1, and one record:
//   key   (4 bytes, plain big-endian): version int16 = 0 | type int16 (0 ABORT, 1 COMMIT;
//         2–6 are KRaft-internal and never appear in user topics)
//   value (6 bytes, end-transaction marker): version int16 = 0 | coordinatorEpoch int32
// Readers accept a higher version with trailing bytes (Kafka does the same), and refuse a key
// or value that is too short as INVALID_RECORD. This module builds and reads markers; it does
// not decide which records a read_committed consumer sees.

import { checkInt16, checkInt32, readInt16, readInt32 } from './bytes.js';
import { ErrorCode, StreamBusError } from './errors.js';
import { type DecodedRecord, encodeRecordBatch } from './record-batch.js';

export const ControlRecordType = { ABORT: 0, COMMIT: 1 } as const;
export type ControlRecordTypeValue = (typeof ControlRecordType)[keyof typeof ControlRecordType];

const CONTROL_KEY_BYTES = 4;
const END_TXN_MARKER_BYTES = 6;

export interface ControlRecord {
  /** Control record key version (0 today). */
  version: number;
  /** 0 ABORT, 1 COMMIT; other values are returned as read. */
  type: number;
  /** The end-transaction marker's coordinator epoch; −1 when the value is absent (null). */
  coordinatorEpoch: number;
}

export interface ControlBatchOptions {
  type: ControlRecordTypeValue;
  producerId: number;
  producerEpoch: number;
  coordinatorEpoch: number;
  baseOffset?: number;
  partitionLeaderEpoch?: number;
  timestamp?: number;
}

/** One control batch holding one end-transaction marker. */
export function encodeControlBatch(options: ControlBatchOptions): Buffer {
  checkInt16(options.type, 'control type');
  checkInt32(options.coordinatorEpoch, 'coordinatorEpoch');
  const key = Buffer.alloc(CONTROL_KEY_BYTES);
  key.writeInt16BE(0, 0);
  key.writeInt16BE(options.type, 2);
  const value = Buffer.alloc(END_TXN_MARKER_BYTES);
  value.writeInt16BE(0, 0);
  value.writeInt32BE(options.coordinatorEpoch, 2);
  return encodeRecordBatch([{ key, value }], {
    baseOffset: options.baseOffset ?? 0,
    producerId: options.producerId,
    producerEpoch: options.producerEpoch,
    baseSequence: -1,
    partitionLeaderEpoch: options.partitionLeaderEpoch ?? 0,
    isTransactional: true,
    isControl: true,
    ...(options.timestamp === undefined ? {} : { timestamp: options.timestamp }),
  });
}

/** Reads a record of a control batch. INVALID_RECORD if the key or value is malformed. */
export function decodeControlRecord(record: DecodedRecord): ControlRecord {
  const key = record.key;
  if (key === null || key.length < CONTROL_KEY_BYTES) {
    throw new StreamBusError(ErrorCode.INVALID_RECORD, 'control record key shorter than 4 bytes');
  }
  const version = readInt16(key, 0);
  if (version < 0) {
    throw new StreamBusError(ErrorCode.INVALID_RECORD, `control key version ${version}`);
  }
  const type = readInt16(key, 2);
  const value = record.value;
  if (value === null) return { version, type, coordinatorEpoch: -1 };
  if (value.length < END_TXN_MARKER_BYTES || readInt16(value, 0) < 0) {
    throw new StreamBusError(ErrorCode.INVALID_RECORD, 'malformed end-transaction marker');
  }
  return { version, type, coordinatorEpoch: readInt32(value, 2) };
}
