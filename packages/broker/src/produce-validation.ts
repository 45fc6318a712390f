// Validation of the record bytes a producer sends for one partition, before anything is appended.
// The bytes are one or more RecordBatch v2 back to back; each is checked from its header and CRC
// alone (no record is decoded, kafka-protocol.md §5.2):
//   - every batch complete, magic 2, CRC-32C correct, codec known       CORRUPT_MESSAGE / UNSUPPORTED_COMPRESSION_TYPE
//   - batch size <= max.message.bytes                                     MESSAGE_TOO_LARGE
//   - the whole set <= segment.bytes                                      RECORD_LIST_TOO_LARGE
//   - recordCount >= 1 and lastOffsetDelta == recordCount - 1             INVALID_RECORD
//   - no control or transactional batches (transactions are not served)  INVALID_RECORD
//   - idempotence fields consistent (producerId >= 0 needs epoch >= 0 and sequence >= 0)
//                                                                         INVALID_RECORD
//   - baseTimestamp <= maxTimestamp, both >= 0; maxTimestamp within the
//     topic's skew of the broker clock when the check is on               INVALID_TIMESTAMP
//   - every record's framing (lengths, offset deltas, recordCount records and no more), walked
//     without decoding, compressed batches inflated within decompressedBytesMax
//     (validateBatchRecords in the protocol package)                      INVALID_RECORD /
//                                                                          CORRUPT_COMPRESSED_DATA
// A failure rejects the partition's whole set: nothing of it is appended. Pure and synchronous.
import {
  BatchAttributes,
  DEFAULT_MAX_UNCOMPRESSED_BYTES,
  ErrorCode,
  type RecordBatchHeader,
  StreamBusError,
  splitBatches,
  validateBatch,
  validateBatchRecords,
} from '@streambus/protocol';

export interface ProduceLimits {
  readonly maxMessageBytes: number;
  readonly segmentBytes: number;
  /** -1 = no clock-skew check. */
  readonly timestampSkewMsMax: number;
}

export interface ValidatedBatch {
  readonly position: number;
  readonly size: number;
  readonly header: RecordBatchHeader;
}

export interface ValidatedRecords {
  readonly batches: ValidatedBatch[];
  readonly recordCount: number;
}

function fail(code: number, message: string): never {
  throw new StreamBusError(code, message);
}

export function validateProduceRecords(
  records: Uint8Array,
  limits: ProduceLimits,
  nowMs: number,
  decompressedBytesMax = DEFAULT_MAX_UNCOMPRESSED_BYTES,
): ValidatedRecords {
  if (records.length === 0) fail(ErrorCode.INVALID_RECORD, 'produce carried no record batch');
  if (records.length > limits.segmentBytes) {
    fail(
      ErrorCode.RECORD_LIST_TOO_LARGE,
      `${records.length} bytes of batches exceed segment.bytes (${limits.segmentBytes})`,
    );
  }
  const spans = splitBatches(records);
  const batches: ValidatedBatch[] = [];
  let recordCount = 0;
  for (const { position, size } of spans) {
    if (size > limits.maxMessageBytes) {
      fail(
        ErrorCode.MESSAGE_TOO_LARGE,
        `batch of ${size} bytes exceeds max.message.bytes (${limits.maxMessageBytes})`,
      );
    }
    const h = validateBatch(records, position);
    checkHeader(h, limits, nowMs);
    try {
      validateBatchRecords(records, position, h, decompressedBytesMax);
    } catch (err) {
      throw inBatch(err, batches.length);
    }
    batches.push({ position, size, header: h });
    recordCount += h.recordCount;
  }
  return { batches, recordCount };
}

/** The same error, its message naming the batch of the set (counted from 0). */
function inBatch(err: unknown, index: number): unknown {
  if (!(err instanceof StreamBusError)) return err;
  return new StreamBusError(err.code, `batch ${index}: ${err.message}`, { cause: err });
}

function checkHeader(h: RecordBatchHeader, limits: ProduceLimits, nowMs: number): void {
  if (h.recordCount < 1) fail(ErrorCode.INVALID_RECORD, 'batch holds no records');
  if (h.lastOffsetDelta !== h.recordCount - 1) {
    fail(
      ErrorCode.INVALID_RECORD,
      `lastOffsetDelta ${h.lastOffsetDelta} does not match recordCount ${h.recordCount}`,
    );
  }
  if ((h.attributes & BatchAttributes.CONTROL) !== 0) {
    fail(ErrorCode.INVALID_RECORD, 'producers may not send control batches');
  }
  if ((h.attributes & BatchAttributes.TRANSACTIONAL) !== 0) {
    fail(ErrorCode.INVALID_RECORD, 'transactional batches are not supported');
  }
  if (h.producerId >= 0 && (h.producerEpoch < 0 || h.baseSequence < 0)) {
    fail(
      ErrorCode.INVALID_RECORD,
      `idempotent batch of producer ${h.producerId} has epoch ${h.producerEpoch} and sequence ${h.baseSequence}`,
    );
  }
  if (h.producerId < -1) fail(ErrorCode.INVALID_RECORD, `producer id ${h.producerId} is negative`);
  if ((h.attributes & BatchAttributes.DELETE_HORIZON) !== 0) {
    fail(ErrorCode.INVALID_RECORD, 'producers may not set the delete-horizon flag');
  }
  if (h.baseTimestamp < 0 || h.maxTimestamp < 0) {
    fail(
      ErrorCode.INVALID_TIMESTAMP,
      `batch timestamps must be >= 0 (base ${h.baseTimestamp}, max ${h.maxTimestamp})`,
    );
  }
  if (h.maxTimestamp < h.baseTimestamp) {
    fail(
      ErrorCode.INVALID_TIMESTAMP,
      `maxTimestamp ${h.maxTimestamp} is below baseTimestamp ${h.baseTimestamp}`,
    );
  }
  if (
    limits.timestampSkewMsMax >= 0 &&
    Math.abs(h.maxTimestamp - nowMs) > limits.timestampSkewMsMax
  ) {
    fail(
      ErrorCode.INVALID_TIMESTAMP,
      `maxTimestamp ${h.maxTimestamp} is more than ${limits.timestampSkewMsMax} ms from the broker clock (${nowMs})`,
    );
  }
}
