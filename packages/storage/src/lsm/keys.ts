// Order-preserving tuple keys for the LSM store, so keyed state can be laid out as
// (kind, group, topic, partition) and read back with prefix scans in a useful order.
//
// Encoding: each part is a type tag then a self-delimiting body, so a key's encoding is a prefix
// of another's exactly when its parts are a prefix of the other's parts, and bytewise order of
// encodings is tuple order (strings and bytes by bytes, integers numerically):
//   0x01 string : UTF-8 bytes with 0x00 escaped as 0x00 0xff, then 0x00 0x01
//   0x02 uint   : a safe non-negative integer as 8 bytes big-endian
//   0x03 bytes  : like a string, raw bytes
// Parts of different types order by tag. It does not encode negative or fractional numbers.
import { ErrorCode, StreamBusError } from '@streambus/protocol';

export type KeyPart = string | number | Uint8Array;

const TAG_STRING = 0x01;
const TAG_UINT = 0x02;
const TAG_BYTES = 0x03;

function escaped(out: number[], bytes: Uint8Array): void {
  for (const b of bytes) {
    out.push(b);
    if (b === 0) out.push(0xff);
  }
  out.push(0x00, 0x01);
}

/** Encodes a tuple of parts as one key. */
export function encodeKey(...parts: KeyPart[]): Buffer {
  const out: number[] = [];
  for (const part of parts) {
    if (typeof part === 'string') {
      out.push(TAG_STRING);
      escaped(out, Buffer.from(part, 'utf8'));
    } else if (typeof part === 'number') {
      if (!Number.isSafeInteger(part) || part < 0) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `key part ${part} is not a non-negative safe integer`,
        );
      }
      out.push(TAG_UINT);
      const hi = Math.floor(part / 2 ** 32);
      const lo = part >>> 0;
      out.push(hi >>> 24, (hi >>> 16) & 0xff, (hi >>> 8) & 0xff, hi & 0xff);
      out.push(lo >>> 24, (lo >>> 16) & 0xff, (lo >>> 8) & 0xff, lo & 0xff);
    } else {
      out.push(TAG_BYTES);
      escaped(out, part);
    }
  }
  return Buffer.from(out);
}

/** Decodes a key made by `encodeKey`; INVALID_ARGUMENT for anything else. */
export function decodeKey(key: Uint8Array): KeyPart[] {
  const bad = () => new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'not a tuple key');
  const parts: KeyPart[] = [];
  let p = 0;
  while (p < key.length) {
    const tag = key[p++];
    if (tag === TAG_UINT) {
      if (p + 8 > key.length) throw bad();
      const b = Buffer.from(key.buffer, key.byteOffset + p, 8);
      parts.push(b.readUInt32BE(0) * 2 ** 32 + b.readUInt32BE(4));
      p += 8;
    } else if (tag === TAG_STRING || tag === TAG_BYTES) {
      const bytes: number[] = [];
      for (;;) {
        if (p >= key.length) throw bad();
        const b = key[p++]!;
        if (b !== 0) {
          bytes.push(b);
          continue;
        }
        const next = key[p++];
        if (next === 0xff) bytes.push(0);
        else if (next === 0x01) break;
        else throw bad();
      }
      parts.push(tag === TAG_STRING ? Buffer.from(bytes).toString('utf8') : Uint8Array.from(bytes));
    } else {
      throw bad();
    }
  }
  return parts;
}
