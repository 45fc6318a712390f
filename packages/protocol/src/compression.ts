// Compression codecs for the records section of a RecordBatch v2 (kafka-protocol.md §5.6).
//
// Codec ids are Kafka's (attributes bits 0–2). All functions are synchronous: the client
// compresses on its hot path. Every failure of a codec library is wrapped: a corrupt or
// truncated payload, or one that would inflate past `maxUncompressedBytes`, is a StreamBusError
// CORRUPT_COMPRESSED_DATA; an unknown codec id is UNSUPPORTED_COMPRESSION_TYPE. Nothing else
// escapes.

import { gunzipSync, gzipSync } from 'node:zlib';
import { ErrorCode, StreamBusError } from './errors.js';

export const Compression = { NONE: 0, GZIP: 1, SNAPPY: 2, LZ4: 3, ZSTD: 4 } as const;
export type CompressionCodec = (typeof Compression)[keyof typeof Compression];

/** Default bound on a decompressed records section (a decompression bomb is a typed error). */
export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024;

export function compressionName(codec: number): string {
  return ['none', 'gzip', 'snappy', 'lz4', 'zstd'][codec] ?? `unknown(${codec})`;
}

function unsupported(codec: number): StreamBusError {
  return new StreamBusError(
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    `compression codec ${compressionName(codec)} is not supported`,
  );
}

export function corruptCompressed(codec: number, detail: string, cause?: unknown): StreamBusError {
  return new StreamBusError(
    ErrorCode.CORRUPT_COMPRESSED_DATA,
    `${compressionName(codec)} payload: ${detail}`,
    cause === undefined ? undefined : { cause },
  );
}

/** Compresses `data` with `codec` as Kafka frames it inside a batch. */
export function compress(codec: number, data: Uint8Array): Buffer {
  switch (codec) {
    case Compression.NONE:
      return Buffer.from(data);
    case Compression.GZIP:
      return gzipSync(data, { level: 6 });
    default:
      throw unsupported(codec);
  }
}

/** Decompresses a records section; never returns more than `maxUncompressedBytes` bytes. */
export function decompress(
  codec: number,
  data: Uint8Array,
  maxUncompressedBytes = DEFAULT_MAX_UNCOMPRESSED_BYTES,
): Buffer {
  switch (codec) {
    case Compression.NONE:
      if (data.length > maxUncompressedBytes) {
        throw corruptCompressed(codec, `exceeds ${maxUncompressedBytes} bytes`);
      }
      return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    case Compression.GZIP:
      try {
        return gunzipSync(data, { maxOutputLength: maxUncompressedBytes });
      } catch (err) {
        throw corruptCompressed(codec, 'cannot inflate', err);
      }
    default:
      throw unsupported(codec);
  }
}
