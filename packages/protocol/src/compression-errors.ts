// Codec ids (Kafka's, attributes bits 0–2) and the typed errors every codec module raises.

import { ErrorCode, StreamBusError } from './errors.js';

export const Compression = { NONE: 0, GZIP: 1, SNAPPY: 2, LZ4: 3, ZSTD: 4 } as const;
export type CompressionCodec = (typeof Compression)[keyof typeof Compression];

export function compressionName(codec: number): string {
  return ['none', 'gzip', 'snappy', 'lz4', 'zstd'][codec] ?? `unknown(${codec})`;
}

export function unsupportedCompression(codec: number, why = 'is not supported'): StreamBusError {
  return new StreamBusError(
    ErrorCode.UNSUPPORTED_COMPRESSION_TYPE,
    `compression codec ${compressionName(codec)} ${why}`,
  );
}

export function corruptCompressed(codec: number, detail: string, cause?: unknown): StreamBusError {
  return new StreamBusError(
    ErrorCode.CORRUPT_COMPRESSED_DATA,
    `${compressionName(codec)} payload: ${detail}`,
    cause === undefined ? undefined : { cause },
  );
}
