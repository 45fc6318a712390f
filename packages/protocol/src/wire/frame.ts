// Native wire frames: the length-prefixed binary envelope every StreamBus request and response
// travels in, and an incremental parser that turns a TCP byte stream back into frames. It knows
// nothing about message bodies (see codec.ts) and does no I/O.
//
// Frame layout (all integers big-endian):
//
//   offset  size  field
//   0       4     frameLength    uint32: bytes after this field (10 + body length)
//   4       2     apiKey         uint16 (messages.ts ApiKey)
//   6       2     apiVersion     uint16
//   8       4     correlationId  uint32: chosen by the client, echoed by the broker
//   12      2     flags          uint16: FrameFlag bits below
//   14      ...   body           msgpack (codec.ts); record batches inside it stay raw bytes
//
// A response carries the request's apiKey, apiVersion and correlationId with RESPONSE set. A
// request with NO_RESPONSE set (produce with acks=0) is never answered. ERROR marks a response
// whose body is an ErrorBody (the whole request failed: unsupported version, malformed body).
//
// Limits: a frame larger than `frameBytesMax` is refused before any of its body is buffered, so a
// peer cannot make the parser allocate more than that. Unknown flag bits are malformed (they are
// reserved for future use and must be zero).
import { ErrorCode, StreamBusError } from '../errors.js';

export const FRAME_HEADER_BYTES = 14;
/** frameLength counts the header after the length field too. */
const LENGTH_FIELD_BYTES = 4;
const HEADER_AFTER_LENGTH_BYTES = FRAME_HEADER_BYTES - LENGTH_FIELD_BYTES;

export const FrameFlag = {
  RESPONSE: 0x1,
  ERROR: 0x2,
  NO_RESPONSE: 0x4,
} as const;
const FLAGS_KNOWN_MASK = FrameFlag.RESPONSE | FrameFlag.ERROR | FrameFlag.NO_RESPONSE;

/** The default and the hard ceiling of a frame's size (header included). */
export const FRAME_BYTES_MAX_DEFAULT = 64 * 1024 * 1024;
export const FRAME_BYTES_MAX_CEILING = 1024 * 1024 * 1024;

export interface FrameHeader {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  readonly flags: number;
}

export interface Frame extends FrameHeader {
  /** The msgpack body: a view into the received bytes, not a copy. */
  readonly body: Buffer;
}

function assertUint(name: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `frame ${name} ${value} is not in 0..${max}`,
    );
  }
}

/** Writes a frame header for a body of `bodyBytes` into `target` at `pos`. */
export function writeFrameHeader(
  target: Buffer,
  pos: number,
  header: FrameHeader,
  bodyBytes: number,
): void {
  assertUint('apiKey', header.apiKey, 0xffff);
  assertUint('apiVersion', header.apiVersion, 0xffff);
  assertUint('correlationId', header.correlationId, 0xffffffff);
  assertUint('flags', header.flags, FLAGS_KNOWN_MASK);
  target.writeUInt32BE(HEADER_AFTER_LENGTH_BYTES + bodyBytes, pos);
  target.writeUInt16BE(header.apiKey, pos + 4);
  target.writeUInt16BE(header.apiVersion, pos + 6);
  target.writeUInt32BE(header.correlationId, pos + 8);
  target.writeUInt16BE(header.flags, pos + 12);
}

/** One buffer holding header and body. */
export function encodeFrame(header: FrameHeader, body: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + body.length);
  writeFrameHeader(out, 0, header, body.length);
  out.set(body, FRAME_HEADER_BYTES);
  return out;
}

export interface FrameParserOptions {
  /** Largest frame accepted, header included. */
  readonly frameBytesMax?: number;
}

/** The frame size bound of a parser's options: INVALID_ARGUMENT outside the sane range. */
export function frameBytesMaxOf(options: FrameParserOptions): number {
  const max = options.frameBytesMax ?? FRAME_BYTES_MAX_DEFAULT;
  if (!Number.isInteger(max) || max < FRAME_HEADER_BYTES || max > FRAME_BYTES_MAX_CEILING) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `frameBytesMax ${max} is not in ${FRAME_HEADER_BYTES}..${FRAME_BYTES_MAX_CEILING}`,
    );
  }
  return max;
}

/**
 * Incremental frame parser. `push(chunk)` returns every frame completed by the chunk, in order.
 * On malformed input it throws a StreamBusError (MALFORMED_FRAME or FRAME_TOO_LARGE) and stays
 * failed: the stream can no longer be framed and the connection must be closed. Nothing else
 * escapes it.
 *
 * Bytes are copied only when a frame spans chunks; a frame inside one chunk is a view of it.
 */
export class FrameParser {
  readonly frameBytesMax: number;
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private failure: StreamBusError | null = null;

  constructor(options: FrameParserOptions = {}) {
    this.frameBytesMax = frameBytesMaxOf(options);
  }

  /** Bytes received but not yet part of a returned frame. */
  get pendingBytes(): number {
    return this.bufferedBytes;
  }

  /**
   * The whole size (header included) the incomplete frame declares, once its 4-byte length
   * field has arrived; before that, the bytes buffered; 0 when no frame is incomplete. What a
   * receiver must be ready to hold to finish this frame.
   */
  get pendingFrameBytes(): number {
    if (this.bufferedBytes < LENGTH_FIELD_BYTES) return this.bufferedBytes;
    let length = 0;
    let got = 0;
    for (const c of this.chunks) {
      for (let i = 0; i < c.length && got < LENGTH_FIELD_BYTES; i++, got++) {
        length = length * 256 + c[i]!;
      }
      if (got === LENGTH_FIELD_BYTES) break;
    }
    return Math.max(this.bufferedBytes, LENGTH_FIELD_BYTES + length);
  }

  push(chunk: Uint8Array): Frame[] {
    if (this.failure) throw this.failure;
    if (chunk.length === 0) return [];
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
    this.chunks.push(buf);
    this.bufferedBytes += buf.length;
    const frames: Frame[] = [];
    for (;;) {
      const frame = this.next();
      if (frame === null) break;
      frames.push(frame);
    }
    return frames;
  }

  private fail(code: number, message: string): never {
    this.failure = new StreamBusError(code, message);
    this.chunks = [];
    this.bufferedBytes = 0;
    throw this.failure;
  }

  /** Makes the first `n` buffered bytes contiguous in chunks[0]. Requires bufferedBytes >= n. */
  private coalesce(n: number): Buffer {
    const head = this.chunks[0]!;
    if (head.length >= n) return head;
    const merged = Buffer.concat(this.chunks, this.bufferedBytes);
    this.chunks = [merged];
    return merged;
  }

  private next(): Frame | null {
    if (this.bufferedBytes < FRAME_HEADER_BYTES) return null;
    const head = this.coalesce(FRAME_HEADER_BYTES);
    const frameLength = head.readUInt32BE(0);
    const totalBytes = LENGTH_FIELD_BYTES + frameLength;
    if (frameLength < HEADER_AFTER_LENGTH_BYTES) {
      this.fail(ErrorCode.MALFORMED_FRAME, `frame length ${frameLength} is shorter than a header`);
    }
    if (totalBytes > this.frameBytesMax) {
      this.fail(
        ErrorCode.FRAME_TOO_LARGE,
        `frame of ${totalBytes} bytes exceeds the maximum of ${this.frameBytesMax}`,
      );
    }
    const flags = head.readUInt16BE(12);
    if ((flags & ~FLAGS_KNOWN_MASK) !== 0) {
      this.fail(ErrorCode.MALFORMED_FRAME, `frame has unknown flag bits 0x${flags.toString(16)}`);
    }
    if (this.bufferedBytes < totalBytes) return null;
    const buf = this.coalesce(totalBytes);
    const frame: Frame = {
      apiKey: buf.readUInt16BE(4),
      apiVersion: buf.readUInt16BE(6),
      correlationId: buf.readUInt32BE(8),
      flags,
      body: buf.subarray(FRAME_HEADER_BYTES, totalBytes),
    };
    if (buf.length === totalBytes) {
      this.chunks.shift();
    } else {
      this.chunks[0] = buf.subarray(totalBytes);
    }
    this.bufferedBytes -= totalBytes;
    return frame;
  }
}
