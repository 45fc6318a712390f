// The envelope of the replication checkpoint files (the term-run table and the offset
// translator's checkpoint): a small binary file with a magic, a version, the payload length and a
// CRC-32C over everything before it, replaced atomically (temp + fsync + rename + dir fsync,
// through `writeFileAtomic`). Reading never trusts a file that fails any check: a missing file,
// a torn one (short or long) and a corrupt one (CRC, magic, version, length) are told apart so the
// caller can log why it rebuilds the table from the log.
//
// File format (all integers big-endian):
//   offset  size  field
//   0       4     magic (one per kind of file, e.g. 'SBTR' for the term runs)
//   4       2     version (1)
//   6       2     reserved, 0
//   8       4     payload length in bytes (P)
//   12      P     payload (the table's own encoding)
//   12+P    4     CRC-32C (Castagnoli) of bytes [0, 12+P)
// This module does no fsync scheduling and keeps no state: each write is a whole new file.
import { crc32c } from '@streambus/protocol';
import { type FileSystem, isNotFound, writeFileAtomic } from '@streambus/storage';

export const CHECKPOINT_VERSION = 1;
const HEADER_BYTES = 12;
const TRAILER_BYTES = 4;
/** No replication checkpoint comes near this; a larger length field is corruption, not a table. */
export const CHECKPOINT_BYTES_MAX = 64 * 1024 * 1024;

export type CheckpointRead =
  | { readonly status: 'ok'; readonly payload: Uint8Array }
  | { readonly status: 'missing' }
  | { readonly status: 'corrupt'; readonly reason: string };

function magicNumber(magic: string): number {
  if (magic.length !== 4) throw new RangeError(`checkpoint magic must be 4 characters: ${magic}`);
  let n = 0;
  for (let i = 0; i < 4; i++) n = (n << 8) | (magic.charCodeAt(i) & 0xff);
  return n >>> 0;
}

/** Wraps `payload` in the envelope. Pure. */
export function encodeCheckpoint(magic: string, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length + TRAILER_BYTES);
  const view = new DataView(out.buffer);
  view.setUint32(0, magicNumber(magic));
  view.setUint16(4, CHECKPOINT_VERSION);
  view.setUint16(6, 0);
  view.setUint32(8, payload.length);
  out.set(payload, HEADER_BYTES);
  view.setUint32(HEADER_BYTES + payload.length, crc32c(out, 0, 0, HEADER_BYTES + payload.length));
  return out;
}

/** Checks and unwraps an envelope. Pure; the payload is a view into `bytes` (no copy). */
export function decodeCheckpoint(magic: string, bytes: Uint8Array): CheckpointRead {
  if (bytes.length < HEADER_BYTES + TRAILER_BYTES) {
    return { status: 'corrupt', reason: `${bytes.length} bytes is shorter than an empty file` };
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const length = view.getUint32(8);
  if (length > CHECKPOINT_BYTES_MAX || HEADER_BYTES + length + TRAILER_BYTES !== bytes.length) {
    return {
      status: 'corrupt',
      reason: `payload length ${length} does not match the file size ${bytes.length} (torn write?)`,
    };
  }
  const stored = view.getUint32(HEADER_BYTES + length);
  const actual = crc32c(bytes, 0, 0, HEADER_BYTES + length);
  if (stored !== actual) {
    return { status: 'corrupt', reason: `CRC-32C ${actual} does not match the stored ${stored}` };
  }
  // Magic and version are inside the CRC, so a mismatch here is a wrong file, not a bit flip.
  if (view.getUint32(0) !== magicNumber(magic)) {
    return { status: 'corrupt', reason: `not a ${magic} file` };
  }
  const version = view.getUint16(4);
  if (version !== CHECKPOINT_VERSION) {
    return { status: 'corrupt', reason: `unknown version ${version}` };
  }
  return { status: 'ok', payload: bytes.subarray(HEADER_BYTES, HEADER_BYTES + length) };
}

/** Replaces the checkpoint at `path` atomically and durably. */
export async function writeCheckpoint(
  fs: FileSystem,
  path: string,
  magic: string,
  payload: Uint8Array,
): Promise<void> {
  await writeFileAtomic(fs, path, encodeCheckpoint(magic, payload));
}

/** Reads the checkpoint at `path`; I/O errors other than a missing file are thrown (typed). */
export async function readCheckpoint(
  fs: FileSystem,
  path: string,
  magic: string,
): Promise<CheckpointRead> {
  let bytes: Uint8Array;
  try {
    bytes = await fs.readFile(path);
  } catch (err) {
    if (isNotFound(err)) return { status: 'missing' };
    throw err;
  }
  return decodeCheckpoint(magic, bytes);
}

/** A bounds-checked big-endian writer for the table payloads (integers up to 2^53 - 1). */
export class PayloadWriter {
  private readonly bytes: Uint8Array;
  private readonly view: DataView;
  private pos = 0;

  constructor(size: number) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }
  u8(n: number): void {
    this.view.setUint8(this.pos, n);
    this.pos += 1;
  }
  u32(n: number): void {
    this.view.setUint32(this.pos, n);
    this.pos += 4;
  }
  u64(n: number): void {
    this.view.setBigUint64(this.pos, BigInt(n));
    this.pos += 8;
  }
  /** Raw bytes (the caller writes their length first). */
  raw(b: Uint8Array): void {
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }
  finish(): Uint8Array {
    if (this.pos !== this.bytes.length) {
      throw new RangeError(`payload sized ${this.bytes.length} but ${this.pos} bytes written`);
    }
    return this.bytes;
  }
}

/** The matching reader: returns undefined past the end instead of throwing a RangeError. */
export class PayloadReader {
  private readonly view: DataView;
  private pos = 0;

  constructor(payload: Uint8Array) {
    this.view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  }
  get remaining(): number {
    return this.view.byteLength - this.pos;
  }
  u8(): number | undefined {
    if (this.remaining < 1) return undefined;
    return this.view.getUint8(this.pos++);
  }
  u32(): number | undefined {
    if (this.remaining < 4) return undefined;
    const n = this.view.getUint32(this.pos);
    this.pos += 4;
    return n;
  }
  u64(): number | undefined {
    if (this.remaining < 8) return undefined;
    const n = this.view.getBigUint64(this.pos);
    this.pos += 8;
    return n > BigInt(Number.MAX_SAFE_INTEGER) ? undefined : Number(n);
  }
  /** `length` raw bytes as a view (no copy), or undefined past the end. */
  raw(length: number): Uint8Array | undefined {
    if (this.remaining < length) return undefined;
    const out = new Uint8Array(this.view.buffer, this.view.byteOffset + this.pos, length);
    this.pos += length;
    return out;
  }
}
