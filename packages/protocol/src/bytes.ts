// Big-endian fixed-width reads and writes on plain Uint8Arrays, and Kafka's zigzag varints.
//
// int64 fields are carried as JavaScript numbers: a value outside the safe-integer range
// (±(2^53 − 1)) is refused with CORRUPT_MESSAGE when read and INVALID_ARGUMENT when written,
// never silently rounded. Varints follow protobuf's zigzag + LEB128 scheme as Kafka uses it
// (kafka-protocol.md §5.4): int32 varints take at most 5 bytes, int64 varlongs at most 10.
// Reads never run past `end`; a short or over-long varint is a CORRUPT_MESSAGE.

import { ErrorCode, StreamBusError } from './errors.js';

const TWO_32 = 4294967296;

export function corrupt(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_MESSAGE, message);
}

export function readInt16(b: Uint8Array, p: number): number {
  return (((b[p]! << 8) | b[p + 1]!) << 16) >> 16;
}

export function readInt32(b: Uint8Array, p: number): number {
  return (b[p]! << 24) | (b[p + 1]! << 16) | (b[p + 2]! << 8) | b[p + 3]!;
}

export function readUint32(b: Uint8Array, p: number): number {
  return readInt32(b, p) >>> 0;
}

/** int64 big-endian as a safe integer; CORRUPT_MESSAGE when it is not one. */
export function readInt64(b: Uint8Array, p: number): number {
  const v = readInt32(b, p) * TWO_32 + readUint32(b, p + 4);
  if (!Number.isSafeInteger(v)) throw corrupt(`int64 at byte ${p} is outside ±2^53`);
  return v;
}

export function writeInt16(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 8;
  b[p + 1] = v;
}

export function writeInt32(b: Uint8Array, p: number, v: number): void {
  b[p] = v >>> 24;
  b[p + 1] = v >>> 16;
  b[p + 2] = v >>> 8;
  b[p + 3] = v;
}

export function writeInt64(b: Uint8Array, p: number, v: number): void {
  const hi = Math.floor(v / TWO_32);
  writeInt32(b, p, hi);
  writeInt32(b, p + 4, v - hi * TWO_32);
}

export function checkInt64(v: number, what: string): void {
  if (!Number.isSafeInteger(v)) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `${what} must be a safe integer, got ${v}`,
    );
  }
}

export function checkInt32(v: number, what: string): void {
  if (!Number.isInteger(v) || v < -0x80000000 || v > 0x7fffffff) {
    throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${what} must be an int32, got ${v}`);
  }
}

export function checkInt16(v: number, what: string): void {
  if (!Number.isInteger(v) || v < -0x8000 || v > 0x7fff) {
    throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${what} must be an int16, got ${v}`);
  }
}

// ---- varints -------------------------------------------------------------------------------

/** Bytes needed for the zigzag varint of an int32. */
export function sizeOfVarint(v: number): number {
  let u = ((v << 1) ^ (v >> 31)) >>> 0;
  let n = 1;
  while (u >= 0x80) {
    u >>>= 7;
    n++;
  }
  return n;
}

/** Writes the zigzag varint of an int32 at `p`; returns the position after it. */
export function writeVarint(b: Uint8Array, p: number, v: number): number {
  let u = ((v << 1) ^ (v >> 31)) >>> 0;
  while (u >= 0x80) {
    b[p++] = (u & 0x7f) | 0x80;
    u >>>= 7;
  }
  b[p++] = u;
  return p;
}

/** Zigzag of a safe integer as a non-negative number (exact up to 2^53 magnitudes via BigInt). */
function zigzag64(v: number): number | bigint {
  if (v >= -0x8000000000000 && v < 0x8000000000000) return v >= 0 ? v * 2 : -v * 2 - 1;
  const big = BigInt(v);
  return big >= 0n ? big << 1n : (-big << 1n) - 1n;
}

export function sizeOfVarlong(v: number): number {
  let u = zigzag64(v);
  let n = 1;
  if (typeof u === 'number') {
    while (u >= 0x80) {
      u = Math.floor(u / 128);
      n++;
    }
    return n;
  }
  while (u >= 0x80n) {
    u >>= 7n;
    n++;
  }
  return n;
}

export function writeVarlong(b: Uint8Array, p: number, v: number): number {
  let u = zigzag64(v);
  if (typeof u === 'number') {
    while (u >= 0x80) {
      b[p++] = (u % 128) | 0x80;
      u = Math.floor(u / 128);
    }
    b[p++] = u;
    return p;
  }
  while (u >= 0x80n) {
    b[p++] = Number(u & 0x7fn) | 0x80;
    u >>= 7n;
  }
  b[p++] = Number(u);
  return p;
}

/** The position after the varint `varintAt` read last: module state, no cursor object. */
export let varintEnd = 0;

/**
 * The zigzag varint (int32, at most 5 bytes) at b[p, end); sets `varintEnd`. CORRUPT_MESSAGE when
 * it is truncated or longer than 5 bytes / above 32 bits. For loops that keep their cursor in a
 * local (the record walk); `Reader.varint` is the same read on a cursor.
 */
export function varintAt(b: Uint8Array, p: number, end: number): number {
  let u = 0;
  let shift = 0;
  for (;;) {
    if (p >= end) throw corrupt('varint truncated');
    const byte = b[p++]!;
    if (shift === 28) {
      if (byte > 0x0f) throw corrupt('varint longer than 5 bytes or above 32 bits');
      u |= byte << 28;
      break;
    }
    u |= (byte & 0x7f) << shift;
    if (byte < 0x80) break;
    shift += 7;
  }
  varintEnd = p;
  u >>>= 0;
  return (u >>> 1) ^ -(u & 1);
}

/**
 * A cursor over `buf[pos, end)` for record decoding. Every read checks the bound and throws
 * CORRUPT_MESSAGE, so callers never see a RangeError or `undefined`.
 */
export class Reader {
  pos: number;
  constructor(
    readonly buf: Uint8Array,
    pos: number,
    public end: number,
  ) {
    this.pos = pos;
  }

  int8(): number {
    if (this.pos >= this.end) throw corrupt('record truncated');
    return (this.buf[this.pos++]! << 24) >> 24;
  }

  varint(): number {
    const v = varintAt(this.buf, this.pos, this.end);
    this.pos = varintEnd;
    return v;
  }

  varlong(): number {
    const b = this.buf;
    let p = this.pos;
    // Fast path: up to 7 bytes (49 bits) stay exact in float arithmetic.
    let u = 0;
    let mul = 1;
    for (let i = 0; i < 7; i++) {
      if (p >= this.end) throw corrupt('varlong truncated');
      const byte = b[p++]!;
      u += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        this.pos = p;
        return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
      }
      mul *= 128;
    }
    // Slow path: bytes 8..10 with BigInt.
    let big = BigInt(u);
    let shift = 49n;
    for (let i = 7; ; i++) {
      if (i >= 10) throw corrupt('varlong longer than 10 bytes');
      if (p >= this.end) throw corrupt('varlong truncated');
      const byte = b[p++]!;
      big |= BigInt(byte & 0x7f) << shift;
      if (byte < 0x80) break;
      shift += 7n;
    }
    this.pos = p;
    const v = big & 1n ? -((big + 1n) >> 1n) : big >> 1n;
    if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
      throw corrupt('varlong is outside ±2^53');
    }
    return Number(v);
  }
}
