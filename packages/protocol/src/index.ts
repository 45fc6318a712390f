// @streambus/protocol: pure formats shared by broker and client. No sockets, no files.

export {
  Compression,
  type CompressionCodec,
  compress,
  compressionName,
  DEFAULT_MAX_UNCOMPRESSED_BYTES,
  decompress,
  zstdCanCompress,
} from './compression.js';
export {
  type ControlBatchOptions,
  type ControlRecord,
  ControlRecordType,
  type ControlRecordTypeValue,
  decodeControlRecord,
  encodeControlBatch,
} from './control-record.js';
export { crc32c, crc32cImplementation, crc32cPortable } from './crc32c.js';
export * from './errors.js';
export * from './groups/index.js';
export * as kafka from './kafka/index.js';
export { murmur2, partitionForKey } from './murmur2.js';
export {
  BatchAttributes,
  BatchCursor,
  BatchField,
  type BatchSpan,
  batchSizeAt,
  batchSpans,
  type DecodeBatchOptions,
  type DecodedBatch,
  type DecodedRecord,
  decodeRecordBatch,
  type EncodeBatchOptions,
  encodeRecordBatch,
  peekBatchSize,
  RECORD_BATCH_HEADER_BYTES,
  RECORD_BATCH_MAGIC,
  RECORD_BATCH_MIN_LENGTH,
  type RecordBatchHeader,
  type RecordHeader,
  type RecordInput,
  readBatchHeader,
  setBaseOffset,
  setPartitionLeaderEpoch,
  splitBatches,
  validateBatch,
  verifyBatchCrc,
} from './record-batch.js';
export { validateBatchRecords } from './record-validate.js';
export * from './wire/index.js';
