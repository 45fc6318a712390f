// A msgpack encoder that leaves large byte strings where they are: the body comes out as a list
// of buffers for one gathered socket write, in which every `bin` value of at least
// `refBytesMin` bytes is the caller's own Buffer (its msgpack length header goes at the end of
// the part before it). A fetch response's record bytes therefore go from the storage read
// buffer to the socket without being copied into a response body (the copy msgpackr's `pack`
// makes, and the GC pressure of a second multi-MiB buffer per fetch).
//
// The bytes are exactly what `packBody` (msgpackr, plain maps) writes for the same value, with
// one difference: keys whose value is `undefined` are left out (msgpackr writes an extension
// value that decodes to undefined; a schema sees the same missing key either way). Handles the
// types the native messages use: plain objects, arrays, strings, numbers, booleans, null and
// Uint8Arrays. Anything else is a programming error (an assertion).
import assert from 'node:assert/strict';
import type { FrameHeader } from './frame.js';
import { FRAME_HEADER_BYTES, FrameFlag, writeFrameHeader } from './frame.js';
import type { ApiKeyValue, ResponseOf } from './messages.js';

/** Byte strings of at least this many bytes are passed by reference (smaller ones copied). */
export const PACK_REF_BYTES_MIN = 1024;

// Below Node's pool threshold (half of `Buffer.poolSize`): small responses take no allocation of their own.
const SCRATCH_BYTES = 4000;

class PartsWriter {
  readonly parts: Buffer[] = [];
  private buf: Buffer;
  private pos: number;
  private start: number;
  total = 0;

  constructor(
    headerRoom: number,
    private readonly refBytesMin: number,
  ) {
    this.buf = Buffer.allocUnsafe(SCRATCH_BYTES);
    this.pos = headerRoom;
    this.start = 0;
  }

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    this.cut();
    this.buf = Buffer.allocUnsafe(Math.max(SCRATCH_BYTES, n));
    this.pos = 0;
    this.start = 0;
  }

  /** Ends the current part at `pos` (the rest of the scratch buffer stays usable). */
  private cut(): void {
    if (this.pos > this.start) {
      this.parts.push(this.buf.subarray(this.start, this.pos));
      this.total += this.pos - this.start;
    }
    this.start = this.pos;
  }

  /** The parts, the first one beginning with `headerRoom` bytes left for the caller. */
  finish(): Buffer[] {
    this.cut();
    return this.parts;
  }

  value(v: unknown): void {
    switch (typeof v) {
      case 'number':
        this.number(v);
        return;
      case 'string':
        this.string(v);
        return;
      case 'boolean':
        this.room(1);
        this.buf[this.pos++] = v ? 0xc3 : 0xc2;
        return;
      case 'object':
        if (v === null) {
          this.room(1);
          this.buf[this.pos++] = 0xc0;
        } else if (v instanceof Uint8Array) {
          this.bin(v);
        } else if (Array.isArray(v)) {
          this.array(v);
        } else {
          this.map(v as Record<string, unknown>);
        }
        return;
      default:
        assert.fail(`pack-parts: cannot encode a ${typeof v}`);
    }
  }

  private number(n: number): void {
    this.room(9);
    const b = this.buf;
    if (Number.isInteger(n) && n >= -0x80000000 && n <= 0xffffffff) {
      if (n >= 0) {
        if (n < 0x80) b[this.pos++] = n;
        else if (n < 0x100) {
          b[this.pos++] = 0xcc;
          b[this.pos++] = n;
        } else if (n < 0x10000) {
          b[this.pos++] = 0xcd;
          b.writeUInt16BE(n, this.pos);
          this.pos += 2;
        } else {
          b[this.pos++] = 0xce;
          b.writeUInt32BE(n, this.pos);
          this.pos += 4;
        }
      } else if (n >= -0x20) {
        b[this.pos++] = n & 0xff;
      } else if (n >= -0x80) {
        b[this.pos++] = 0xd0;
        b.writeInt8(n, this.pos);
        this.pos += 1;
      } else if (n >= -0x8000) {
        b[this.pos++] = 0xd1;
        b.writeInt16BE(n, this.pos);
        this.pos += 2;
      } else {
        b[this.pos++] = 0xd2;
        b.writeInt32BE(n, this.pos);
        this.pos += 4;
      }
      return;
    }
    b[this.pos++] = 0xcb;
    b.writeDoubleBE(n, this.pos);
    this.pos += 8;
  }

  private string(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.room(len + 5);
    this.header(len, 0xa0, 0x20, 0xd9, 0xda);
    this.pos += this.buf.write(s, this.pos, len, 'utf8');
  }

  private bin(v: Uint8Array): void {
    const len = v.length;
    this.room(5);
    this.header(len, 0, 0, 0xc4, 0xc5);
    if (len === 0) return;
    if (len >= this.refBytesMin) {
      this.cut();
      this.parts.push(Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, len));
      this.total += len;
      return;
    }
    this.room(len);
    this.buf.set(v, this.pos);
    this.pos += len;
  }

  private array(a: readonly unknown[]): void {
    this.room(5);
    this.header(a.length, 0x90, 0x10, -1, 0xdc);
    for (const item of a) this.value(item);
  }

  private map(o: Record<string, unknown>): void {
    let n = 0;
    for (const k in o) if (o[k] !== undefined) n++;
    // msgpackr writes every map with a 16-bit (or 32-bit) count, even a small one.
    this.room(5);
    this.header(n, 0, 0, -1, 0xde);
    for (const k in o) {
      const v = o[k];
      if (v === undefined) continue;
      this.string(k);
      this.value(v);
    }
  }

  /**
   * A length header (room for 5 bytes made): `fix` | n below `fixBelow`, else the 8-bit form
   * `c8` (none when negative), the 16-bit form `c16` or the 32-bit form `c16` + 1.
   */
  private header(n: number, fix: number, fixBelow: number, c8: number, c16: number): void {
    const b = this.buf;
    if (n < fixBelow) b[this.pos++] = fix | n;
    else if (c8 >= 0 && n < 0x100) {
      b[this.pos++] = c8;
      b[this.pos++] = n;
    } else if (n < 0x10000) {
      b[this.pos++] = c16;
      b.writeUInt16BE(n, this.pos);
      this.pos += 2;
    } else {
      b[this.pos++] = c16 + 1;
      b.writeUInt32BE(n, this.pos);
      this.pos += 4;
    }
  }
}

/**
 * `value` as msgpack in parts (see the top of the file); `headerRoom` bytes are left free at the
 * start of the first part. Returns the parts and the msgpack's length (without the room).
 */
export function packParts(
  value: unknown,
  headerRoom = 0,
  refBytesMin = PACK_REF_BYTES_MIN,
): { parts: Buffer[]; bodyBytes: number } {
  const w = new PartsWriter(headerRoom, refBytesMin);
  w.value(value);
  const parts = w.finish();
  return { parts, bodyBytes: w.total - headerRoom };
}

/**
 * The same frame as `encodeResponse`, as buffers for one gathered write, with large byte
 * strings (a fetch response's record bytes) not copied: the first part starts with the frame
 * header; the Buffers of the body are referenced, so they must not change until written.
 */
export function encodeResponsePartsByRef<K extends ApiKeyValue>(
  request: FrameHeader & { apiKey: K },
  body: ResponseOf<K>,
): Buffer[] {
  const { parts, bodyBytes } = packParts(body, FRAME_HEADER_BYTES);
  const header: FrameHeader = {
    apiKey: request.apiKey,
    apiVersion: request.apiVersion,
    correlationId: request.correlationId,
    flags: FrameFlag.RESPONSE,
  };
  writeFrameHeader(parts[0]!, 0, header, bodyBytes);
  return parts;
}
