// Zstandard inside a Kafka batch (kafka-protocol.md §5.6): a standard zstd frame.
//
// Node 20's zlib has no zstd, and the well-kept native bindings install through
// prebuild-install (a download outside the npm registry), which this project does not allow.
// So:
//   decode: node:zlib's zstdDecompressSync when the runtime has it (Node ≥ 22.15), otherwise
//           fzstd, a pure-JavaScript decoder, streamed so the output bound is checked per block;
//   encode: node:zlib's zstdCompressSync when the runtime has it, otherwise a typed
//           UNSUPPORTED_COMPRESSION_TYPE error (docs/protocol.md explains why).

import * as zlib from 'node:zlib';
import { Decompress } from 'fzstd';
import { Compression, corruptCompressed, unsupportedCompression } from './compression-errors.js';
import { isStreamBusError } from './errors.js';

type SyncCodec = (data: Uint8Array, options?: { maxOutputLength?: number }) => Buffer;
const zlibAny = zlib as unknown as Record<string, unknown>;
const nativeCompress = zlibAny.zstdCompressSync as SyncCodec | undefined;
const nativeDecompress = zlibAny.zstdDecompressSync as SyncCodec | undefined;

/** Whether this runtime can write zstd batches. */
export const zstdCanCompress = typeof nativeCompress === 'function';

function bad(detail: string, cause?: unknown) {
  return corruptCompressed(Compression.ZSTD, detail, cause);
}

export function zstdCompress(data: Uint8Array): Buffer {
  if (nativeCompress === undefined) {
    throw unsupportedCompression(
      Compression.ZSTD,
      `encoding needs node:zlib zstd (Node >= 22.15); this is Node ${process.versions.node}`,
    );
  }
  return nativeCompress(data);
}

export function zstdDecompress(input: Uint8Array, maxBytes: number): Buffer {
  if (input.length === 0) throw bad('empty payload');
  if (nativeDecompress !== undefined) {
    try {
      return nativeDecompress(input, { maxOutputLength: maxBytes });
    } catch (err) {
      throw bad('cannot decompress', err);
    }
  }
  const parts: Uint8Array[] = [];
  let produced = 0;
  let ended = false;
  const stream = new Decompress((chunk, final) => {
    produced += chunk.length;
    if (produced > maxBytes) throw bad('decompressed size exceeds the bound');
    // fzstd may reuse its window buffer between callbacks: copy what it hands out.
    parts.push(Buffer.from(chunk));
    if (final === true) ended = true;
  });
  try {
    stream.push(input, true);
  } catch (err) {
    if (isStreamBusError(err)) throw err;
    throw bad('cannot decompress', err);
  }
  if (!ended) throw bad('truncated frame');
  return Buffer.concat(parts, produced);
}
