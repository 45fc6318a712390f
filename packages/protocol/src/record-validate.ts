// Record framing validation: walks every record of a RecordBatch v2 without decoding it, so a
// broker can refuse, before appending, a batch whose CRC is right but whose records contradict
// its header (Kafka's broker does the same walk in LogValidator, decompressing compressed
// batches; kafka-protocol.md §5.5).
//
// What is checked, per record (layout in record-batch.ts):
//   - the length varint fits in what is left of the records section, and is at least 6
//   - timestampDelta is a varlong inside the record and baseTimestamp + delta is a safe integer
//   - offsetDelta is in [0, lastOffsetDelta] and strictly above the previous record's (so a
//     batch with lastOffsetDelta == recordCount - 1 has offsetDelta == index for every record)
//   - key and value lengths are -1 (null) or 0..bytes left in the record; other negatives refused
//   - header count 0..what can fit; each header key length 0..left, value length -1 or 0..left
//   - each record ends exactly at its declared length
// and per batch: exactly recordCount records, no bytes after the last one. Compressed batches
// are decompressed first within `maxUncompressedBytes`, a bound the codec checks while inflating
// (zlib maxOutputLength for gzip, declared block/content sizes for lz4, snappy and zstd), so a
// bomb is refused after at most that many bytes out.
//
// It accepts exactly what decodeRecordBatch decodes, except that it also refuses offset deltas
// that do not increase (the decoder returns them as they are); header keys are not checked as
// UTF-8 (neither does the decoder, nor Kafka). It does not check the header (validateBatch
// does; call that first) and does not allocate per record: varints of one byte are read inline,
// longer ones by bytes.ts `varintAt` (no cursor object; Kafka's 2-byte lengths and deltas of 100 B+
// records are common), timestamp deltas of more than one byte through one Reader per batch.
// Failures are StreamBusErrors: INVALID_RECORD naming
// the record and what is wrong, or the codec's CORRUPT_COMPRESSED_DATA /
// UNSUPPORTED_COMPRESSION_TYPE.

import { Reader, varintAt, varintEnd } from './bytes.js';
import { DEFAULT_MAX_UNCOMPRESSED_BYTES, decompress } from './compression.js';
import { ErrorCode, isStreamBusError, StreamBusError } from './errors.js';
import {
  BatchAttributes,
  RECORD_BATCH_HEADER_BYTES,
  type RecordBatchHeader,
} from './record-batch.js';

/** Smallest record body after its length varint: attributes and five one-byte varints. */
const MIN_RECORD_BODY_BYTES = 6;
/** Smallest record including its length varint. */
const MIN_RECORD_BYTES = MIN_RECORD_BODY_BYTES + 1;

function invalid(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_RECORD, message);
}

/**
 * Walks the records of the batch at `pos` of `buf`, whose header `header` has been checked by
 * validateBatch (complete, CRC right). Returns the size of the records section as walked (after
 * decompression). Throws INVALID_RECORD on the first record whose framing is wrong.
 */
export function validateBatchRecords(
  buf: Uint8Array,
  pos: number,
  header: RecordBatchHeader,
  maxUncompressedBytes = DEFAULT_MAX_UNCOMPRESSED_BYTES,
): number {
  const size = 12 + header.batchLength;
  const codec = header.attributes & BatchAttributes.COMPRESSION_MASK;
  if (codec === 0) {
    walkRecords(buf, pos + RECORD_BATCH_HEADER_BYTES, pos + size, header);
    return size - RECORD_BATCH_HEADER_BYTES;
  }
  const compressed = buf.subarray(pos + RECORD_BATCH_HEADER_BYTES, pos + size);
  const data = decompress(codec, compressed, maxUncompressedBytes);
  walkRecords(data, 0, data.length, header);
  return data.length;
}

/**
 * The walk over data[start, end). The cursor is a local; one-byte varints are decoded inline,
 * longer ones by `varintAt` (bounded by the record's end), longer timestamp deltas by the Reader.
 */
function walkRecords(
  data: Uint8Array,
  start: number,
  end: number,
  header: RecordBatchHeader,
): void {
  const count = header.recordCount;
  const { baseTimestamp, lastOffsetDelta } = header;
  if (count * MIN_RECORD_BYTES > end - start) {
    throw invalid(
      `recordCount ${count} cannot fit in the ${end - start} bytes of the records section`,
    );
  }
  const r = new Reader(data, start, end);
  let p = start;
  let i = 0;
  let previousDelta = -1;
  try {
    for (; i < count; i++) {
      if (p === end) {
        throw invalid(`the header declares ${count} records, the records section holds ${i}`);
      }
      // length varint, bounded by the records section
      let length: number;
      let b = data[p]!; // p < end
      if (b < 0x80) {
        length = (b >>> 1) ^ -(b & 1);
        p++;
      } else {
        length = varintAt(data, p, end);
        p = varintEnd;
      }
      if (length < MIN_RECORD_BODY_BYTES || length > end - p) {
        throw invalid(
          `record ${i} of ${count}: length ${length} does not fit the ${end - p} bytes left`,
        );
      }
      const recordEnd = p + length;
      p++; // attributes int8 (present: length >= 6)
      // timestampDelta varlong
      b = data[p]!;
      let timestampDelta: number;
      if (b < 0x80) {
        timestampDelta = (b >>> 1) ^ -(b & 1);
        p++;
      } else {
        r.pos = p;
        r.end = recordEnd;
        timestampDelta = r.varlong();
        p = r.pos;
      }
      if (!Number.isSafeInteger(baseTimestamp + timestampDelta)) {
        throw invalid(`record ${i}: timestamp delta ${timestampDelta} puts it outside ±2^53`);
      }
      // offsetDelta varint
      b = p < recordEnd ? data[p]! : 0x80;
      let offsetDelta: number;
      if (b < 0x80) {
        offsetDelta = (b >>> 1) ^ -(b & 1);
        p++;
      } else {
        offsetDelta = varintAt(data, p, recordEnd);
        p = varintEnd;
      }
      if (offsetDelta <= previousDelta || offsetDelta > lastOffsetDelta) {
        throw invalid(
          `record ${i}: offsetDelta ${offsetDelta} is not in (${previousDelta}, ${lastOffsetDelta}]`,
        );
      }
      previousDelta = offsetDelta;
      p = skipBytes(data, p, recordEnd, i, 'key');
      p = skipBytes(data, p, recordEnd, i, 'value');
      // header count varint
      b = p < recordEnd ? data[p]! : 0x80;
      let headerCount: number;
      if (b < 0x80) {
        headerCount = (b >>> 1) ^ -(b & 1);
        p++;
      } else {
        headerCount = varintAt(data, p, recordEnd);
        p = varintEnd;
      }
      if (headerCount < 0 || headerCount * 2 > recordEnd - p) {
        throw invalid(
          `record ${i}: header count ${headerCount} does not fit the ${recordEnd - p} bytes left`,
        );
      }
      for (let h = 0; h < headerCount; h++) {
        const keyLength = varintAt(data, p, recordEnd);
        p = varintEnd;
        if (keyLength < 0 || keyLength > recordEnd - p) {
          throw invalid(
            `record ${i}: header ${h} key length ${keyLength} does not fit the ${recordEnd - p} bytes left`,
          );
        }
        p = skipBytes(data, p + keyLength, recordEnd, i, `header ${h} value`);
      }
      if (p !== recordEnd) {
        throw invalid(
          `record ${i}: ${recordEnd - p} bytes left over before its declared end (length ${length})`,
        );
      }
    }
  } catch (err) {
    // The Reader's truncated/over-long varint errors carry no record: name it here.
    if (isStreamBusError(err, ErrorCode.CORRUPT_MESSAGE)) {
      throw invalid(`record ${i} of ${count}: ${err.message}`);
    }
    throw err;
  }
  if (p !== end) {
    throw invalid(`${end - p} bytes after the last of the ${count} records the header declares`);
  }
}

/** Skips a length-prefixed byte string (-1 = null) at p within recordEnd; returns the end. */
function skipBytes(
  data: Uint8Array,
  p: number,
  recordEnd: number,
  index: number,
  what: string,
): number {
  let length: number;
  const b = p < recordEnd ? data[p]! : 0x80;
  if (b < 0x80) {
    length = (b >>> 1) ^ -(b & 1);
    p++;
  } else {
    length = varintAt(data, p, recordEnd);
    p = varintEnd;
  }
  if (length === -1) return p;
  if (length < -1) throw invalid(`record ${index}: ${what} length ${length} is negative`);
  if (length > recordEnd - p) {
    throw invalid(
      `record ${index}: ${what} length ${length} runs past the record's end (${recordEnd - p} bytes left)`,
    );
  }
  return p + length;
}
