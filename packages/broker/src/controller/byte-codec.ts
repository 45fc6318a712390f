// The primitive encodings shared by the metadata record codec and the metadata snapshot codec:
// unsigned LEB128 varints, zigzag signed varints, length-prefixed UTF-8 strings and counted
// arrays. Canonical by construction: the writer emits one form for a value and the reader
// refuses every other form (an over-long varint, a string that is not valid UTF-8, a count above
// its bound), so decode(bytes) succeeding implies encode(decode(bytes)) == bytes.
//
// The reader throws only `StreamBusError(CORRUPT_DATA)` (the bytes come from the committed
// metadata log or a snapshot on disk), naming what was being read; it never throws a RangeError
// and never reads past its buffer. It does not interpret fields: the record and snapshot codecs
// validate meaning.
import { ErrorCode, StreamBusError } from '@streambus/protocol';

const utf8Decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

/** Longest string field (topic names are 249, cluster ids 36; hosts up to 253). */
export const STRING_BYTES_MAX = 1024;

export function corruptData(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.CORRUPT_DATA, message);
}

/** An append-only byte buffer that grows by doubling. */
export class ByteWriter {
  private buf = new Uint8Array(64);
  private length = 0;

  private ensure(extra: number): void {
    if (this.length + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.length + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.length));
    this.buf = next;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.length++] = v & 0xff;
  }

  /** Unsigned LEB128 of a safe non-negative integer (at most 8 bytes for 2^53 - 1). */
  uvarint(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `uvarint out of range: ${v}`);
    }
    let x = v;
    while (x >= 0x80) {
      this.u8((x % 0x80) | 0x80);
      x = Math.floor(x / 0x80);
    }
    this.u8(x);
  }

  /** Zigzag then LEB128, for fields that may be -1 (a leader of "none"). */
  svarint(v: number): void {
    if (!Number.isSafeInteger(v) || Math.abs(v) > 2 ** 51) {
      throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, `svarint out of range: ${v}`);
    }
    this.uvarint(v >= 0 ? v * 2 : -v * 2 - 1);
  }

  bool(v: boolean): void {
    this.u8(v ? 1 : 0);
  }

  string(s: string): void {
    const bytes = utf8Encoder.encode(s);
    if (bytes.length > STRING_BYTES_MAX) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `string of ${bytes.length} bytes exceeds ${STRING_BYTES_MAX}`,
      );
    }
    this.uvarint(bytes.length);
    this.raw(bytes);
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.length);
    this.length += bytes.length;
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }
}

/** A bounded cursor over `buf[pos, end)`. Every read checks the bound. */
export class ByteReader {
  private pos: number;

  constructor(
    private readonly buf: Uint8Array,
    pos = 0,
    private readonly end = buf.length,
  ) {
    this.pos = pos;
  }

  get offset(): number {
    return this.pos;
  }

  get remaining(): number {
    return this.end - this.pos;
  }

  u8(what: string): number {
    if (this.pos >= this.end) throw corruptData(`${what}: truncated at byte ${this.pos}`);
    return this.buf[this.pos++]!;
  }

  uvarint(what: string, max = Number.MAX_SAFE_INTEGER): number {
    const start = this.pos;
    let v = 0;
    let mul = 1;
    for (let i = 0; ; i++) {
      if (i >= 8) throw corruptData(`${what}: varint longer than 8 bytes at byte ${start}`);
      const byte = this.u8(what);
      v += (byte & 0x7f) * mul;
      if (byte < 0x80) {
        // Canonical form only: a final 0x00 after a continuation byte is a padded encoding.
        if (byte === 0 && i > 0) throw corruptData(`${what}: non-minimal varint at byte ${start}`);
        break;
      }
      mul *= 0x80;
    }
    if (!Number.isSafeInteger(v) || v > max) {
      throw corruptData(`${what}: ${v} is above its maximum ${max}`);
    }
    return v;
  }

  svarint(what: string, min: number, max: number): number {
    const u = this.uvarint(what, 2 ** 52);
    const v = u % 2 === 0 ? u / 2 : -(u + 1) / 2;
    if (v < min || v > max) throw corruptData(`${what}: ${v} is outside ${min}..${max}`);
    return v;
  }

  bool(what: string): boolean {
    const b = this.u8(what);
    if (b > 1) throw corruptData(`${what}: boolean byte ${b} is neither 0 nor 1`);
    return b === 1;
  }

  string(what: string): string {
    const length = this.uvarint(`${what} length`, STRING_BYTES_MAX);
    if (length > this.remaining) throw corruptData(`${what}: ${length} bytes run past the end`);
    const bytes = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    try {
      return utf8Decoder.decode(bytes);
    } catch {
      throw corruptData(`${what}: not valid UTF-8`);
    }
  }

  /** A count of items that each take at least one byte, bounded by `max` and by what is left. */
  count(what: string, max: number): number {
    const n = this.uvarint(`${what} count`, max);
    if (n > this.remaining) throw corruptData(`${what}: count ${n} exceeds the bytes left`);
    return n;
  }

  raw(what: string, length: number): Uint8Array {
    if (length > this.remaining) throw corruptData(`${what}: ${length} bytes run past the end`);
    const bytes = this.buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    return bytes;
  }

  expectEnd(what: string): void {
    if (this.pos !== this.end) {
      throw corruptData(`${what}: ${this.end - this.pos} trailing bytes after byte ${this.pos}`);
    }
  }
}
