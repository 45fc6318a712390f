// LZ4 inside a Kafka batch: the LZ4 *frame* format v1.5.1 (kafka-protocol.md §5.6), block
// compression by lz4-napi (napi-rs over lz4_flex, prebuilt per platform).
//
// Frame: magic 04 22 4D 18 | FLG | BD | [content size u64 LE] | [dict id u32] | HC |
//        { block size u32 LE (bit 31 = stored uncompressed) | data | [block xxh32] }* |
//        end mark 00 00 00 00 | [content xxh32]
// FLG: bits 7–6 version (= 01), bit 5 block independence, bit 4 block checksum, bit 3 content
// size, bit 2 content checksum, bit 0 dictionary id. BD bits 6–4: max block size 4..7
// (64 KB, 256 KB, 1 MB, 4 MB). HC = (xxh32(FLG..last descriptor byte) >> 8) & 0xFF.
//
// The encoder writes what Kafka's Lz4BlockOutputStream writes: FLG 0x60 (independent blocks, no
// checksums, no content size), BD 0x40 (64 KB blocks), incompressible blocks stored raw.
// The decoder parses the frame itself, so it can bound the output and accept what Kafka's and
// librdkafka's (liblz4) writers emit: independent or linked blocks, optional content size,
// block and content checksums (verified), 64 KB–4 MB blocks, stored blocks, several frames and
// skippable frames back to back. A dictionary id is refused (Kafka never uses one).

import { Compression, corruptCompressed } from './compression-errors.js';
import { lazyModule } from './lazy-module.js';
import { xxhash32 } from './xxhash32.js';

/** Loaded at the first lz4 batch (lazy-module.ts). */
const lz4 = lazyModule<typeof import('lz4-napi')>('lz4-napi', Compression.LZ4);

const MAGIC = 0x184d2204;
const BLOCK_BYTES = 64 * 1024;
const FLG_KAFKA = 0x60;
const BD_64KB = 0x40;
const WINDOW_BYTES = 64 * 1024;

function bad(detail: string, cause?: unknown) {
  return corruptCompressed(Compression.LZ4, detail, cause);
}

function u32le(b: Uint8Array, p: number): number {
  return (b[p]! | (b[p + 1]! << 8) | (b[p + 2]! << 16) | (b[p + 3]! << 24)) >>> 0;
}

function putU32le(b: Uint8Array, p: number, v: number): void {
  b[p] = v;
  b[p + 1] = v >>> 8;
  b[p + 2] = v >>> 16;
  b[p + 3] = v >>> 24;
}

/** One LZ4 frame as Kafka writes it. */
export function lz4CompressFrame(data: Uint8Array): Buffer {
  const src = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const parts: Buffer[] = [];
  const head = Buffer.alloc(7);
  putU32le(head, 0, MAGIC);
  head[4] = FLG_KAFKA;
  head[5] = BD_64KB;
  head[6] = (xxhash32(head, 0, 4, 6) >>> 8) & 0xff;
  parts.push(head);
  let total = head.length + 4;
  for (let p = 0; p < src.length; p += BLOCK_BYTES) {
    const chunk = src.subarray(p, Math.min(p + BLOCK_BYTES, src.length));
    // lz4-napi's block API prepends the uncompressed size (u32 LE); the frame wants the bare block.
    const block = lz4().compressSync(chunk).subarray(4);
    const sizeField = Buffer.allocUnsafe(4);
    if (block.length < chunk.length) {
      putU32le(sizeField, 0, block.length);
      parts.push(sizeField, block);
      total += 4 + block.length;
    } else {
      putU32le(sizeField, 0, (chunk.length | 0x80000000) >>> 0);
      parts.push(sizeField, chunk);
      total += 4 + chunk.length;
    }
  }
  parts.push(Buffer.alloc(4)); // end mark
  return Buffer.concat(parts, total);
}

/** Decodes one or more LZ4 frames; never produces more than `maxBytes` bytes. */
export function lz4DecompressFrames(input: Uint8Array, maxBytes: number): Buffer {
  const out: Buffer[] = [];
  let produced = 0;
  let p = 0;
  if (input.length === 0) throw bad('empty payload');
  while (p < input.length) {
    if (p + 4 > input.length) throw bad('truncated frame magic');
    const magic = u32le(input, p);
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // Skippable frame: magic, u32 size, user data.
      if (p + 8 > input.length) throw bad('truncated skippable frame');
      const size = u32le(input, p + 4);
      if (p + 8 + size > input.length) throw bad('truncated skippable frame');
      p += 8 + size;
      continue;
    }
    if (magic !== MAGIC) throw bad(`bad frame magic 0x${magic.toString(16)}`);
    const frame = decodeFrame(input, p + 4, maxBytes - produced, out);
    produced += frame.produced;
    p = frame.end;
  }
  return out.length === 1 ? out[0]! : Buffer.concat(out, produced);
}

function decodeFrame(
  input: Uint8Array,
  start: number,
  budget: number,
  out: Buffer[],
): { end: number; produced: number } {
  let p = start;
  if (p + 3 > input.length) throw bad('truncated frame descriptor');
  const flg = input[p]!;
  const bd = input[p + 1]!;
  if (flg >>> 6 !== 1) throw bad(`unsupported frame version ${flg >>> 6}`);
  if ((flg & 0x02) !== 0 || (bd & 0x8f) !== 0) throw bad('reserved descriptor bits set');
  const independent = (flg & 0x20) !== 0;
  const blockChecksum = (flg & 0x10) !== 0;
  const hasContentSize = (flg & 0x08) !== 0;
  const contentChecksum = (flg & 0x04) !== 0;
  if ((flg & 0x01) !== 0) throw bad('dictionary id set (Kafka never uses an LZ4 dictionary)');
  const sizeCode = (bd >>> 4) & 0x07;
  if (sizeCode < 4) throw bad(`invalid block max size code ${sizeCode}`);
  const blockMax = 1 << (8 + 2 * sizeCode);
  const descEnd = p + 2 + (hasContentSize ? 8 : 0);
  if (descEnd + 1 > input.length) throw bad('truncated frame descriptor');
  let contentSize = -1;
  if (hasContentSize) {
    const lo = u32le(input, p + 2);
    const hi = u32le(input, p + 6);
    contentSize = hi * 4294967296 + lo;
    if (contentSize > budget) throw bad(`declared content size ${contentSize} exceeds the bound`);
  }
  const hc = (xxhash32(input, 0, p, descEnd) >>> 8) & 0xff;
  if (input[descEnd] !== hc) throw bad('frame header checksum mismatch');
  p = descEnd + 1;

  const prefix = Buffer.allocUnsafe(4);
  putU32le(prefix, 0, blockMax);
  let produced = 0;
  const frameParts: Buffer[] = [];
  let window: Buffer | null = null;
  for (;;) {
    if (p + 4 > input.length) throw bad('truncated block size');
    const field = u32le(input, p);
    p += 4;
    if (field === 0) break;
    const stored = (field & 0x80000000) !== 0;
    const size = field & 0x7fffffff;
    if (size > blockMax) throw bad(`block of ${size} bytes exceeds the frame's ${blockMax}`);
    if (p + size + (blockChecksum ? 4 : 0) > input.length) throw bad('truncated block');
    const data = input.subarray(p, p + size);
    p += size;
    if (blockChecksum) {
      if (xxhash32(data) !== u32le(input, p)) throw bad('block checksum mismatch');
      p += 4;
    }
    let block: Buffer;
    if (stored) {
      block = Buffer.from(data);
    } else {
      const codec = lz4(); // outside the try: a binding that cannot load is not corrupt data
      try {
        // The u32 prefix is lz4-napi's output capacity: a block never inflates past blockMax.
        block = codec.uncompressSync(
          Buffer.concat([prefix, data]),
          independent ? undefined : window,
        );
      } catch (err) {
        throw bad('corrupt block', err);
      }
    }
    produced += block.length;
    if (produced > budget) throw bad('decompressed size exceeds the bound');
    frameParts.push(block);
    if (!independent) window = lastBytes(window, block);
  }
  if (contentChecksum) {
    if (p + 4 > input.length) throw bad('truncated content checksum');
    const content = Buffer.concat(frameParts, produced);
    if (xxhash32(content) !== u32le(input, p)) throw bad('content checksum mismatch');
    p += 4;
  }
  if (hasContentSize && produced !== contentSize) {
    throw bad(`content size ${produced} differs from the declared ${contentSize}`);
  }
  for (const part of frameParts) out.push(part);
  return { end: p, produced };
}

/** The last 64 KB of history, the dictionary for the next linked block. */
function lastBytes(window: Buffer | null, block: Buffer): Buffer {
  if (block.length >= WINDOW_BYTES) return block.subarray(block.length - WINDOW_BYTES);
  const joined = window === null ? block : Buffer.concat([window, block]);
  return joined.length > WINDOW_BYTES ? joined.subarray(joined.length - WINDOW_BYTES) : joined;
}
