// Compression of the records section of a RecordBatch v2 (kafka-protocol.md §5.6): one
// dispatcher over the codec modules.
//
// Codec ids are Kafka's (attributes bits 0–2). Everything is synchronous: the client compresses
// on its hot path. Every failure of a codec library is wrapped: a corrupt or truncated payload,
// or one that would inflate past `maxUncompressedBytes`, is a StreamBusError
// CORRUPT_COMPRESSED_DATA; an unknown codec id (or zstd encoding on a runtime without it) is
// UNSUPPORTED_COMPRESSION_TYPE. Nothing else escapes. Framings: gzip = RFC 1952 stream;
// snappy = xerial framing written, raw or xerial read (snappy.ts); lz4 = LZ4 frame
// (lz4-frame.ts); zstd = standard frame (zstd.ts).

import { gunzipSync, gzipSync } from 'node:zlib';
import { Compression, corruptCompressed, unsupportedCompression } from './compression-errors.js';
import { isStreamBusError } from './errors.js';
import { lz4CompressFrame, lz4DecompressFrames } from './lz4-frame.js';
import { snappyCompressXerial, snappyDecompress } from './snappy.js';
import { zstdCompress, zstdDecompress } from './zstd.js';

export {
  Compression,
  type CompressionCodec,
  compressionName,
} from './compression-errors.js';
export { zstdCanCompress } from './zstd.js';

/** Default bound on a decompressed records section (a decompression bomb is a typed error). */
export const DEFAULT_MAX_UNCOMPRESSED_BYTES = 64 * 1024 * 1024;

/** gzip level: zlib's default, Kafka's default too. */
const GZIP_LEVEL = 6;

/** Compresses `data` with `codec`, framed as Kafka frames it inside a batch. */
export function compress(codec: number, data: Uint8Array): Buffer {
  switch (codec) {
    case Compression.NONE:
      return Buffer.from(data);
    case Compression.GZIP:
      return gzipSync(data, { level: GZIP_LEVEL });
    case Compression.SNAPPY:
      return snappyCompressXerial(data);
    case Compression.LZ4:
      return lz4CompressFrame(data);
    case Compression.ZSTD:
      return zstdCompress(data);
    default:
      throw unsupportedCompression(codec);
  }
}

/**
 * Decompresses a records section; never returns more than `maxUncompressedBytes` bytes. Throws
 * only StreamBusErrors (CORRUPT_COMPRESSED_DATA, UNSUPPORTED_COMPRESSION_TYPE).
 */
export function decompress(
  codec: number,
  data: Uint8Array,
  maxUncompressedBytes = DEFAULT_MAX_UNCOMPRESSED_BYTES,
): Buffer {
  try {
    switch (codec) {
      case Compression.NONE:
        if (data.length > maxUncompressedBytes) {
          throw corruptCompressed(codec, `exceeds ${maxUncompressedBytes} bytes`);
        }
        return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      case Compression.GZIP:
        return gunzipSync(data, { maxOutputLength: maxUncompressedBytes });
      case Compression.SNAPPY:
        return snappyDecompress(data, maxUncompressedBytes);
      case Compression.LZ4:
        return lz4DecompressFrames(data, maxUncompressedBytes);
      case Compression.ZSTD:
        return zstdDecompress(data, maxUncompressedBytes);
      default:
        throw unsupportedCompression(codec);
    }
  } catch (err) {
    // Codec modules raise typed errors; anything else from a library is a corrupt payload.
    if (isStreamBusError(err)) throw err;
    if ((err as { code?: unknown }).code === 'ERR_BUFFER_TOO_LARGE') {
      // zlib stopped at maxOutputLength: a bomb, or more than the bound allows.
      throw corruptCompressed(
        codec,
        `inflates past the bound of ${maxUncompressedBytes} bytes`,
        err,
      );
    }
    throw corruptCompressed(codec, 'cannot decompress', err);
  }
}
