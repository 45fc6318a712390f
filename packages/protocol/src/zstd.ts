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
import { Compression, corruptCompressed, unsupportedCompression } from './compression-errors.js';
import { isStreamBusError } from './errors.js';
import { lazyModule } from './lazy-module.js';

/** The JavaScript decoder, loaded at the first zstd batch on a runtime without zlib's. */
const fzstd = lazyModule<typeof import('fzstd')>('fzstd', Compression.ZSTD);

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

/** Windows up to this are accepted whatever the bound (RFC 8878 §3.1.1.1.2 asks decoders for 8 MB). */
const WINDOW_BYTES_FLOOR = 8 * 1024 * 1024;
const FRAME_MAGIC = 0xfd2fb528;

function u32le(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

/**
 * Walks the frames' headers and block headers (RFC 8878 §3.1) before anything is inflated:
 * a declared content size above `maxBytes`, or a window above max(maxBytes, 8 MiB), is refused.
 * fzstd allocates the declared window up front (up to 2 GB from a 9-byte frame), so the bound
 * on output alone does not bound memory. Truncation and bad block types are left to the decoder.
 */
function checkFrames(input: Uint8Array, maxBytes: number): void {
  const windowMax = Math.max(maxBytes, WINDOW_BYTES_FLOOR);
  let p = 0;
  while (p + 4 <= input.length) {
    const magic = u32le(input, p);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      if (p + 8 > input.length) return;
      p += 8 + u32le(input, p + 4);
      continue;
    }
    if (magic !== FRAME_MAGIC || p + 5 > input.length) return;
    const fhd = input[p + 4]!;
    const singleSegment = (fhd & 0x20) !== 0;
    const fcsFlag = fhd >>> 6;
    const didBytes = [0, 1, 2, 4][fhd & 0x03]!;
    let q = p + 5;
    if (!singleSegment) {
      if (q >= input.length) return;
      const wd = input[q++]!;
      const base = 2 ** (10 + (wd >>> 3));
      const window = base + (base / 8) * (wd & 0x07);
      if (window > windowMax) {
        throw bad(`frame declares a ${window}-byte window, above the bound of ${windowMax}`);
      }
    }
    q += didBytes;
    const fcsBytes = fcsFlag === 0 ? (singleSegment ? 1 : 0) : 1 << fcsFlag;
    if (q + fcsBytes > input.length) return;
    if (fcsBytes > 0) {
      let fcs = 0;
      for (let i = fcsBytes - 1; i >= 0; i--) fcs = fcs * 256 + input[q + i]!;
      if (fcsBytes === 2) fcs += 256;
      if (fcs > maxBytes) {
        throw bad(`frame declares ${fcs} bytes of content, above the bound of ${maxBytes}`);
      }
    }
    q += fcsBytes;
    // Blocks: 3-byte little-endian header (last bit, type, size); an RLE block carries one byte.
    for (;;) {
      if (q + 3 > input.length) return;
      const h = input[q]! | (input[q + 1]! << 8) | (input[q + 2]! << 16);
      const type = (h >>> 1) & 0x03;
      q += 3 + (type === 1 ? 1 : h >>> 3);
      if ((h & 1) !== 0) break;
    }
    p = q + ((fhd & 0x04) !== 0 ? 4 : 0);
  }
}

export function zstdDecompress(input: Uint8Array, maxBytes: number): Buffer {
  if (input.length === 0) throw bad('empty payload');
  checkFrames(input, maxBytes);
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
  const stream = new (fzstd().Decompress)((chunk, final) => {
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
