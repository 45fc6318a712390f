// FrameAssembler: frames from a byte stream whose chunks the caller reuses (a socket read into
// one fixed buffer: net `onread`). Unlike FrameParser, which keeps the chunks and joins the ones
// a frame spans (Buffer.concat), it copies every byte once, straight into a buffer of the
// frame's exact size allocated when its header arrives, and never holds on to a chunk. For a
// receiver of large frames (a consumer's multi-MiB fetch responses) that halves the memory
// allocated per frame: no 64 KiB socket chunks, no concatenation, only the frame itself.
//
// The same checks as FrameParser, before any body byte is buffered: a frame larger than
// `frameBytesMax`, shorter than a header, or with unknown flag bits fails the assembler for good.
import { ErrorCode, StreamBusError } from '../errors.js';
import {
  FRAME_HEADER_BYTES,
  type Frame,
  FrameFlag,
  type FrameParserOptions,
  frameBytesMaxOf,
} from './frame.js';

const LENGTH_FIELD_BYTES = 4;
const FLAGS_KNOWN_MASK = FrameFlag.RESPONSE | FrameFlag.ERROR | FrameFlag.NO_RESPONSE;

export class FrameAssembler {
  readonly frameBytesMax: number;
  private readonly header = Buffer.alloc(FRAME_HEADER_BYTES);
  private headerGot = 0;
  /** The frame being filled (header included), once its header was checked. */
  private frame: Buffer | null = null;
  private frameGot = 0;
  private failure: StreamBusError | null = null;

  constructor(options: FrameParserOptions = {}) {
    this.frameBytesMax = frameBytesMaxOf(options);
  }

  /** Bytes received but not yet part of a returned frame. */
  get pendingBytes(): number {
    return this.frame === null ? this.headerGot : this.frameGot;
  }

  /** The frames `chunk` completes; `chunk` may be overwritten as soon as this returns. */
  push(chunk: Uint8Array): Frame[] {
    if (this.failure) throw this.failure;
    const frames: Frame[] = [];
    let p = 0;
    while (p < chunk.length) {
      if (this.frame === null) {
        const n = Math.min(FRAME_HEADER_BYTES - this.headerGot, chunk.length - p);
        this.header.set(chunk.subarray(p, p + n), this.headerGot);
        this.headerGot += n;
        p += n;
        if (this.headerGot < FRAME_HEADER_BYTES) break;
        this.frame = Buffer.allocUnsafe(this.checkedFrameBytes());
        this.frame.set(this.header, 0);
        this.frameGot = FRAME_HEADER_BYTES;
      }
      const frame = this.frame;
      const n = Math.min(frame.length - this.frameGot, chunk.length - p);
      frame.set(chunk.subarray(p, p + n), this.frameGot);
      this.frameGot += n;
      p += n;
      if (this.frameGot < frame.length) break;
      frames.push({
        apiKey: frame.readUInt16BE(4),
        apiVersion: frame.readUInt16BE(6),
        correlationId: frame.readUInt32BE(8),
        flags: frame.readUInt16BE(12),
        body: frame.subarray(FRAME_HEADER_BYTES),
      });
      this.frame = null;
      this.headerGot = 0;
    }
    return frames;
  }

  /** The whole size of the frame whose header is in `header`, or the assembler fails. */
  private checkedFrameBytes(): number {
    const frameLength = this.header.readUInt32BE(0);
    const totalBytes = LENGTH_FIELD_BYTES + frameLength;
    if (totalBytes < FRAME_HEADER_BYTES) {
      this.fail(ErrorCode.MALFORMED_FRAME, `frame length ${frameLength} is shorter than a header`);
    }
    if (totalBytes > this.frameBytesMax) {
      this.fail(
        ErrorCode.FRAME_TOO_LARGE,
        `frame of ${totalBytes} bytes exceeds the maximum of ${this.frameBytesMax}`,
      );
    }
    const flags = this.header.readUInt16BE(12);
    if ((flags & ~FLAGS_KNOWN_MASK) !== 0) {
      this.fail(ErrorCode.MALFORMED_FRAME, `frame has unknown flag bits 0x${flags.toString(16)}`);
    }
    return totalBytes;
  }

  private fail(code: number, message: string): never {
    this.failure = new StreamBusError(code, message);
    this.frame = null;
    throw this.failure;
  }
}
