// A bounds-checked reader of Kafka wire primitives over one frame (kafka-protocol.md §3.1).
//
// It never reads past `end` (the end of the frame it was given) and raises a typed StreamBusError
// for any malformed input: INVALID_REQUEST when it reads a request (the broker side) and
// CORRUPT_MESSAGE when it reads a response (the client side). Every length and element count is
// checked against the bytes left *before* anything is allocated, so a hostile count of 2^31
// costs nothing. Bytes values are views into the frame (zero-copy), never copies. Strings must be
// valid UTF-8: a lossy decode would not re-encode to the same bytes.
//
// int64 values are JavaScript numbers; one outside ±(2^53 − 1) is refused, never rounded.
// Unsigned varints (the flexible-version lengths, KIP-482) are limited to 32 bits.

import { ErrorCode, StreamBusError } from '../errors.js';

const TWO_32 = 4294967296;
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** An unknown tagged field kept as raw bytes, so a struct re-encodes to identical bytes. */
export interface TaggedField {
  readonly tag: number;
  readonly data: Buffer;
}

/** Tagged fields per struct at most; each takes at least 2 bytes, and the count is checked too. */
export const TAGGED_FIELDS_MAX = 64;

export class KafkaReader {
  readonly buf: Buffer;
  pos: number;
  readonly end: number;
  /** The code raised for malformed input: INVALID_REQUEST (requests) or CORRUPT_MESSAGE. */
  readonly errorCode: number;

  constructor(
    buf: Uint8Array,
    start = 0,
    end: number = buf.length,
    errorCode: number = ErrorCode.INVALID_REQUEST,
  ) {
    this.buf = Buffer.isBuffer(buf) ? buf : Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    if (start < 0 || end > buf.length || start > end) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `reader range ${start}..${end} is outside a ${buf.length}-byte buffer`,
      );
    }
    this.pos = start;
    this.end = end;
    this.errorCode = errorCode;
  }

  remaining(): number {
    return this.end - this.pos;
  }

  fail(message: string): StreamBusError {
    return new StreamBusError(this.errorCode, `${message} (at byte ${this.pos})`);
  }

  private need(n: number, what: string): void {
    if (n > this.end - this.pos) {
      throw this.fail(`${what} needs ${n} bytes, ${this.end - this.pos} left in the frame`);
    }
  }

  int8(): number {
    this.need(1, 'int8');
    return this.buf.readInt8(this.pos++);
  }

  bool(): boolean {
    const v = this.int8();
    if (v !== 0 && v !== 1) throw this.fail(`boolean byte ${v} is not 0 or 1`);
    return v === 1;
  }

  int16(): number {
    this.need(2, 'int16');
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  uint16(): number {
    this.need(2, 'uint16');
    const v = this.buf.readUInt16BE(this.pos);
    this.pos += 2;
    return v;
  }

  int32(): number {
    this.need(4, 'int32');
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  uint32(): number {
    this.need(4, 'uint32');
    const v = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    return v;
  }

  int64(): number {
    this.need(8, 'int64');
    const v = this.buf.readInt32BE(this.pos) * TWO_32 + this.buf.readUInt32BE(this.pos + 4);
    if (!Number.isSafeInteger(v)) throw this.fail('int64 is outside ±2^53');
    this.pos += 8;
    return v;
  }

  float64(): number {
    this.need(8, 'float64');
    const v = this.buf.readDoubleBE(this.pos);
    this.pos += 8;
    return v;
  }

  /** 16 raw bytes as 32 lowercase hex digits. */
  uuid(): string {
    this.need(16, 'uuid');
    const s = this.buf.toString('hex', this.pos, this.pos + 16);
    this.pos += 16;
    return s;
  }

  /** Unsigned LEB128, at most 5 bytes and 32 bits (KIP-482 UNSIGNED_VARINT). */
  uvarint(): number {
    let v = 0;
    for (let i = 0; i < 5; i++) {
      this.need(1, 'unsigned varint');
      const b = this.buf[this.pos++]!;
      if (i === 4 && b > 0x0f) throw this.fail('unsigned varint exceeds 32 bits');
      v += (b & 0x7f) * 2 ** (7 * i);
      if ((b & 0x80) === 0) return v;
    }
    throw this.fail('unsigned varint longer than 5 bytes');
  }

  /** Zigzag int32 varint (record fields, §5.4). */
  varint(): number {
    const u = this.uvarint();
    return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
  }

  /** Zigzag int64 varlong, at most 10 bytes; a value outside ±2^53 is refused. */
  varlong(): number {
    let u = 0n;
    for (let i = 0; i < 10; i++) {
      this.need(1, 'varlong');
      const b = this.buf[this.pos++]!;
      u |= BigInt(b & 0x7f) << BigInt(7 * i);
      if ((b & 0x80) === 0) {
        const v = (u & 1n) === 0n ? u >> 1n : -((u + 1n) >> 1n);
        if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < BigInt(Number.MIN_SAFE_INTEGER)) {
          throw this.fail('varlong is outside ±2^53');
        }
        return Number(v);
      }
    }
    throw this.fail('varlong longer than 10 bytes');
  }

  private utf8(len: number, what: string): string {
    this.need(len, what);
    const start = this.pos;
    this.pos += len;
    try {
      return UTF8.decode(this.buf.subarray(start, start + len));
    } catch {
      this.pos = start;
      throw this.fail(`${what} is not valid UTF-8`);
    }
  }

  /**
   * The length before a string or bytes value: int16 (STRING), int32 (BYTES) or
   * uvarint(length + 1) (compact forms, KIP-482). Returns −1 for null, allowed only when `nullable`.
   */
  private valueLength(
    form: 'int16' | 'int32' | 'compact',
    nullable: boolean,
    what: string,
  ): number {
    const len =
      form === 'int16' ? this.int16() : form === 'int32' ? this.int32() : this.uvarint() - 1;
    if (len === -1) {
      if (nullable) return -1;
      throw this.fail(`null ${what} where the schema allows none`);
    }
    if (len < 0) throw this.fail(`${what} length ${len} is negative`);
    return len;
  }

  private view(len: number, what: string): Buffer {
    this.need(len, what);
    const v = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return v;
  }

  /** STRING: int16 length then UTF-8; −1 (null) only when `nullable`. */
  nullableString(nullable = true): string | null {
    const len = this.valueLength('int16', nullable, 'string');
    return len === -1 ? null : this.utf8(len, 'string');
  }

  string(): string {
    return this.nullableString(false) as string;
  }

  /** COMPACT_STRING: uvarint(length + 1); 0 is null, allowed only when `nullable`. */
  compactNullableString(nullable = true): string | null {
    const len = this.valueLength('compact', nullable, 'compact string');
    return len === -1 ? null : this.utf8(len, 'compact string');
  }

  compactString(): string {
    return this.compactNullableString(false) as string;
  }

  /** BYTES: int32 length then raw bytes (a view); −1 (null) only when `nullable`. */
  nullableBytes(nullable = true): Buffer | null {
    const len = this.valueLength('int32', nullable, 'bytes');
    return len === -1 ? null : this.view(len, 'bytes');
  }

  bytes(): Buffer {
    return this.nullableBytes(false) as Buffer;
  }

  /** COMPACT_BYTES: uvarint(length + 1); 0 is null, allowed only when `nullable`. */
  compactNullableBytes(nullable = true): Buffer | null {
    const len = this.valueLength('compact', nullable, 'compact bytes');
    return len === -1 ? null : this.view(len, 'compact bytes');
  }

  compactBytes(): Buffer {
    return this.compactNullableBytes(false) as Buffer;
  }

  private checkCount(count: number, elementBytesMin: number, what: string): void {
    // Every element takes at least one byte on the wire, so a count above the bytes left is
    // malformed whatever the element type; this is the check that prevents huge allocations.
    const per = Math.max(1, elementBytesMin);
    if (count * per > this.end - this.pos) {
      throw this.fail(
        `${what} count ${count} needs at least ${count * per} bytes, ${this.end - this.pos} left`,
      );
    }
  }

  /** ARRAY count: int32; returns −1 for null (when `nullable`), else a checked count. */
  arrayCount(elementBytesMin: number, nullable = false): number {
    const n = this.int32();
    if (n === -1 && nullable) return -1;
    if (n < 0) throw this.fail(`array count ${n} is negative`);
    this.checkCount(n, elementBytesMin, 'array');
    return n;
  }

  /** COMPACT_ARRAY count: uvarint(count + 1); returns −1 for null (when `nullable`). */
  compactArrayCount(elementBytesMin: number, nullable = false): number {
    const n = this.uvarint();
    if (n === 0) {
      if (nullable) return -1;
      throw this.fail('null compact array where the schema allows none');
    }
    this.checkCount(n - 1, elementBytesMin, 'compact array');
    return n - 1;
  }

  /**
   * A tagged-field section (KIP-482): uvarint count, then per field uvarint tag, uvarint size and
   * the bytes. Tags must be strictly increasing. Returns the fields as views (none known here).
   */
  taggedFields(): TaggedField[] {
    const n = this.uvarint();
    if (n === 0) return [];
    if (n > TAGGED_FIELDS_MAX) throw this.fail(`${n} tagged fields exceed ${TAGGED_FIELDS_MAX}`);
    this.checkCount(n, 2, 'tagged field');
    const out: TaggedField[] = [];
    let last = -1;
    for (let i = 0; i < n; i++) {
      const tag = this.uvarint();
      if (tag <= last) throw this.fail(`tagged field ${tag} is not after tag ${last}`);
      last = tag;
      const size = this.uvarint();
      out.push({ tag, data: this.view(size, 'tagged field') });
    }
    return out;
  }

  /** The frame must be used up exactly: trailing bytes mean a schema mismatch. */
  expectEnd(what: string): void {
    if (this.pos !== this.end) {
      throw this.fail(`${this.end - this.pos} unexpected trailing bytes after ${what}`);
    }
  }
}
