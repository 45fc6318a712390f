// A growing writer of Kafka wire primitives (kafka-protocol.md §3.1), the mirror of reader.ts.
//
// Small fields go into a segment taken from Buffer.allocUnsafe (Node slices small segments out of
// its shared pool) that doubles when full, up to SEGMENT_BYTES_MAX. Raw byte values of at least
// RAW_INLINE_BYTES_MAX (record batches in Fetch and Produce) are not copied: the writer keeps a
// reference, so `chunks()` can be handed to a socket's writev as is. `toBuffer()` joins them.
// Values are checked (int ranges, safe int64, string lengths) and refused with INVALID_ARGUMENT:
// an encoder bug must not put a silently wrapped number on the wire.

import { ErrorCode, StreamBusError } from '../errors.js';
import type { TaggedField } from './reader.js';

const TWO_32 = 4294967296;
const SEGMENT_BYTES_MIN = 256;
const SEGMENT_BYTES_MAX = 1024 * 1024;
/** Raw values at least this large are referenced, not copied. */
export const RAW_INLINE_BYTES_MAX = 4096;

function invalid(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_ARGUMENT, message);
}

function checkInt(v: number, lo: number, hi: number, what: string): void {
  if (!Number.isInteger(v) || v < lo || v > hi) {
    throw invalid(`${what} must be an integer in ${lo}..${hi}, got ${v}`);
  }
}

/** A 4-byte slot written now and filled in later (the frame size prefix). */
export interface Int32Slot {
  readonly buf: Buffer;
  readonly offset: number;
}

export class KafkaWriter {
  private readonly done: Buffer[] = [];
  private doneBytes = 0;
  private seg: Buffer;
  private segStart = 0;
  private segPos = 0;

  constructor(initialBytes = SEGMENT_BYTES_MIN) {
    this.seg = Buffer.allocUnsafe(Math.max(16, initialBytes));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.doneBytes + this.segPos - this.segStart;
  }

  private ensure(n: number): void {
    if (this.seg.length - this.segPos >= n) return;
    this.flushSegment();
    const size = Math.max(n, Math.min(SEGMENT_BYTES_MAX, this.seg.length * 2));
    this.seg = Buffer.allocUnsafe(size);
    this.segStart = 0;
    this.segPos = 0;
  }

  private flushSegment(): void {
    if (this.segPos > this.segStart) {
      this.done.push(this.seg.subarray(this.segStart, this.segPos));
      this.doneBytes += this.segPos - this.segStart;
      this.segStart = this.segPos;
    }
  }

  int8(v: number): this {
    checkInt(v, -0x80, 0x7f, 'int8');
    this.ensure(1);
    this.seg.writeInt8(v, this.segPos++);
    return this;
  }

  bool(v: boolean): this {
    return this.int8(v ? 1 : 0);
  }

  int16(v: number): this {
    checkInt(v, -0x8000, 0x7fff, 'int16');
    this.ensure(2);
    this.seg.writeInt16BE(v, this.segPos);
    this.segPos += 2;
    return this;
  }

  uint16(v: number): this {
    checkInt(v, 0, 0xffff, 'uint16');
    this.ensure(2);
    this.seg.writeUInt16BE(v, this.segPos);
    this.segPos += 2;
    return this;
  }

  int32(v: number): this {
    checkInt(v, -0x80000000, 0x7fffffff, 'int32');
    this.ensure(4);
    this.seg.writeInt32BE(v, this.segPos);
    this.segPos += 4;
    return this;
  }

  uint32(v: number): this {
    checkInt(v, 0, 0xffffffff, 'uint32');
    this.ensure(4);
    this.seg.writeUInt32BE(v, this.segPos);
    this.segPos += 4;
    return this;
  }

  int64(v: number): this {
    if (!Number.isSafeInteger(v)) throw invalid(`int64 must be a safe integer, got ${v}`);
    this.ensure(8);
    const hi = Math.floor(v / TWO_32);
    this.seg.writeInt32BE(hi, this.segPos);
    this.seg.writeUInt32BE(v - hi * TWO_32, this.segPos + 4);
    this.segPos += 8;
    return this;
  }

  float64(v: number): this {
    this.ensure(8);
    this.seg.writeDoubleBE(v, this.segPos);
    this.segPos += 8;
    return this;
  }

  uuid(hex: string): this {
    if (!/^[0-9a-f]{32}$/.test(hex)) throw invalid(`uuid must be 32 lowercase hex digits`);
    this.ensure(16);
    this.seg.write(hex, this.segPos, 'hex');
    this.segPos += 16;
    return this;
  }

  uvarint(v: number): this {
    checkInt(v, 0, 0xffffffff, 'unsigned varint');
    this.ensure(5);
    let u = v;
    while (u >= 0x80) {
      this.seg[this.segPos++] = (u % 128) | 0x80;
      u = Math.floor(u / 128);
    }
    this.seg[this.segPos++] = u;
    return this;
  }

  varint(v: number): this {
    checkInt(v, -0x80000000, 0x7fffffff, 'varint');
    return this.uvarint(((v << 1) ^ (v >> 31)) >>> 0);
  }

  varlong(v: number): this {
    if (!Number.isSafeInteger(v)) throw invalid(`varlong must be a safe integer, got ${v}`);
    let u = BigInt(v) >= 0n ? BigInt(v) << 1n : (-BigInt(v) << 1n) - 1n;
    this.ensure(10);
    while (u >= 0x80n) {
      this.seg[this.segPos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    this.seg[this.segPos++] = Number(u);
    return this;
  }

  /** Raw bytes, no length. Large values are referenced, not copied. */
  raw(bytes: Uint8Array): this {
    if (bytes.length >= RAW_INLINE_BYTES_MAX) {
      this.flushSegment();
      this.done.push(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes));
      this.doneBytes += bytes.length;
      return this;
    }
    this.ensure(bytes.length);
    this.seg.set(bytes, this.segPos);
    this.segPos += bytes.length;
    return this;
  }

  /** STRING (int16 length); null writes −1. */
  nullableString(v: string | null): this {
    if (v === null) return this.int16(-1);
    const len = Buffer.byteLength(v, 'utf8');
    if (len > 0x7fff) throw invalid(`string of ${len} bytes exceeds the int16 length limit`);
    this.int16(len);
    this.ensure(len);
    this.segPos += this.seg.write(v, this.segPos, 'utf8');
    return this;
  }

  /** COMPACT_STRING (uvarint length + 1); null writes 0. */
  compactNullableString(v: string | null): this {
    if (v === null) return this.uvarint(0);
    const len = Buffer.byteLength(v, 'utf8');
    this.uvarint(len + 1);
    this.ensure(len);
    this.segPos += this.seg.write(v, this.segPos, 'utf8');
    return this;
  }

  /** BYTES (int32 length); null writes −1. */
  nullableBytes(v: Uint8Array | null): this {
    if (v === null) return this.int32(-1);
    return this.int32(v.length).raw(v);
  }

  compactNullableBytes(v: Uint8Array | null): this {
    if (v === null) return this.uvarint(0);
    return this.uvarint(v.length + 1).raw(v);
  }

  /** A tagged-field section; fields must be sorted by tag (as the reader returned them). */
  taggedFields(fields: readonly TaggedField[] | undefined): this {
    if (fields === undefined || fields.length === 0) return this.uvarint(0);
    this.uvarint(fields.length);
    let last = -1;
    for (const f of fields) {
      if (f.tag <= last) throw invalid(`tagged field ${f.tag} is not after tag ${last}`);
      last = f.tag;
      this.uvarint(f.tag).uvarint(f.data.length).raw(f.data);
    }
    return this;
  }

  /** Reserves 4 bytes to fill in later with `fillInt32`. */
  reserveInt32(): Int32Slot {
    this.ensure(4);
    const slot = { buf: this.seg, offset: this.segPos };
    this.seg.fill(0, this.segPos, this.segPos + 4);
    this.segPos += 4;
    return slot;
  }

  fillInt32(slot: Int32Slot, v: number): void {
    checkInt(v, -0x80000000, 0x7fffffff, 'int32');
    slot.buf.writeInt32BE(v, slot.offset);
  }

  /** The written bytes as chunks (views; large raw values by reference). */
  chunks(): Buffer[] {
    this.flushSegment();
    return this.done.slice();
  }

  /** The written bytes in one buffer. */
  toBuffer(): Buffer {
    const parts = this.chunks();
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts, this.doneBytes);
  }
}
