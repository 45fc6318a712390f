// The framing of a link between two brokers: the preamble that tells a peer link from a client
// connection on the shared native listener, the handshake, and the length-prefixed frames that
// carry Raft batches (raft-batch-codec.ts) and RPCs. An incremental parser turns the byte stream
// back into frames. No I/O here (peer-links.ts owns the sockets).
//
// Stream layout (all integers big-endian):
//
//   PEER_PREAMBLE   8 bytes F5 53 42 50 45 45 52 0A ("\xF5SBPEER\n"), sent once by the dialer.
//                   As a native frame's length field it reads 0xF5534250 (4,115,874,384), above
//                   FRAME_BYTES_MAX_CEILING (1 GiB), so it can never start a valid client frame;
//                   as a Kafka request size it is negative; it is not ASCII (HTTP) nor a TLS
//                   record (0x16). Its first byte alone decides (`isPeerPreamble`).
//   then frames:    u32 frameLength (bytes after this field: 1 + body), u8 kind, body.
//
//   kind  name      body
//   1     HELLO     u16 version, u32 from, u32 to, u8 clusterIdBytes + UTF-8   (dialer first)
//   2     WELCOME   u16 version, u32 from, u8 clusterIdBytes + UTF-8           (acceptor reply)
//   3     REFUSE    u32 code, u16 reasonBytes + UTF-8        (either side; the link then closes)
//   4     RAFT      a raft batch body (raft-batch-codec.ts)
//   5     REQUEST   u32 correlationId, u8 kindBytes + UTF-8, then the request body
//   6     RESPONSE  u32 correlationId, then the response body
//   7     ERROR     u32 correlationId, i32 code, u16 messageBytes + UTF-8
//
// An empty cluster id means "not known yet". A frame over `frameBytesMax`, or of an unknown kind,
// is refused as soon as its 5-byte header arrives (FRAME_TOO_LARGE, MALFORMED_FRAME); a body that
// does not parse is CORRUPT_MESSAGE. The parser then stays failed: the link must be closed.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { NodeId } from '@streambus/raft';
import { BodyReader } from './raft-batch-codec.js';

export const PEER_PREAMBLE: Buffer = Buffer.from([0xf5, 0x53, 0x42, 0x50, 0x45, 0x45, 0x52, 0x0a]);
export const PEER_PROTOCOL_VERSION = 2;

export const PeerFrameKind = {
  Hello: 1,
  Welcome: 2,
  Refuse: 3,
  Raft: 4,
  Request: 5,
  Response: 6,
  Error: 7,
} as const;
export type PeerFrameKind = (typeof PeerFrameKind)[keyof typeof PeerFrameKind];
const KIND_MAX = PeerFrameKind.Error;

export const PEER_FRAME_HEADER_BYTES = 5;
export const CLUSTER_ID_BYTES_MAX = 255;
export const RPC_KIND_BYTES_MAX = 255;
export const REASON_BYTES_MAX = 1024;

/**
 * True when `firstBytes` (at least one byte read from a new connection) start a peer link:
 * every byte present matches the preamble. One byte is enough to decide; `adopt` checks the rest.
 */
export function isPeerPreamble(firstBytes: Uint8Array): boolean {
  if (firstBytes.length === 0) return false;
  const n = Math.min(firstBytes.length, PEER_PREAMBLE.length);
  for (let i = 0; i < n; i++) if (firstBytes[i] !== PEER_PREAMBLE[i]) return false;
  return true;
}

export interface PeerFrame {
  readonly kind: PeerFrameKind;
  /** A view into the received bytes. */
  readonly body: Buffer;
}

function header(kind: PeerFrameKind, bodyBytes: number): Buffer {
  const h = Buffer.allocUnsafe(PEER_FRAME_HEADER_BYTES);
  h.writeUInt32BE(1 + bodyBytes, 0);
  h[4] = kind;
  return h;
}

/** A frame as parts written back to back: its header, then the body's parts (not copied). */
export function framePartsOf(kind: PeerFrameKind, body: readonly Buffer[], bodyBytes: number) {
  return [header(kind, bodyBytes), ...body];
}

function utf8Field(s: string, width: 1 | 2, bytesMax: number, what: string): Buffer {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length > bytesMax) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `${what} of ${bytes.length} bytes exceeds ${bytesMax}`,
    );
  }
  const prefix = Buffer.allocUnsafe(width);
  if (width === 1) prefix[0] = bytes.length;
  else prefix.writeUInt16BE(bytes.length, 0);
  return Buffer.concat([prefix, bytes]);
}

function oneFrame(kind: PeerFrameKind, parts: readonly Buffer[]): Buffer {
  const bodyBytes = parts.reduce((n, p) => n + p.length, 0);
  return Buffer.concat([header(kind, bodyBytes), ...parts]);
}

export interface Hello {
  readonly version: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly clusterId: string;
}

export interface Welcome {
  readonly version: number;
  readonly from: NodeId;
  readonly clusterId: string;
}

export interface Refusal {
  readonly code: number;
  readonly reason: string;
}

function u16u32(version: number, ...ids: number[]): Buffer {
  const b = Buffer.allocUnsafe(2 + 4 * ids.length);
  b.writeUInt16BE(version, 0);
  for (let i = 0; i < ids.length; i++) b.writeUInt32BE(ids[i]!, 2 + 4 * i);
  return b;
}

export function encodeHello(h: Hello): Buffer {
  return oneFrame(PeerFrameKind.Hello, [
    u16u32(h.version, h.from, h.to),
    utf8Field(h.clusterId, 1, CLUSTER_ID_BYTES_MAX, 'cluster id'),
  ]);
}

export function encodeWelcome(w: Welcome): Buffer {
  return oneFrame(PeerFrameKind.Welcome, [
    u16u32(w.version, w.from),
    utf8Field(w.clusterId, 1, CLUSTER_ID_BYTES_MAX, 'cluster id'),
  ]);
}

export function encodeRefuse(r: Refusal): Buffer {
  const code = Buffer.allocUnsafe(4);
  code.writeUInt32BE(r.code, 0);
  const reason = Buffer.from(r.reason, 'utf8').subarray(0, REASON_BYTES_MAX).toString('utf8');
  return oneFrame(PeerFrameKind.Refuse, [code, utf8Field(reason, 2, REASON_BYTES_MAX, 'reason')]);
}

export function encodeRequest(correlationId: number, kind: string, body: Uint8Array): Buffer[] {
  const id = Buffer.allocUnsafe(4);
  id.writeUInt32BE(correlationId, 0);
  const k = utf8Field(kind, 1, RPC_KIND_BYTES_MAX, 'request kind');
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.length);
  return framePartsOf(PeerFrameKind.Request, [id, k, b], 4 + k.length + b.length);
}

export function encodeResponse(correlationId: number, body: Uint8Array): Buffer[] {
  const id = Buffer.allocUnsafe(4);
  id.writeUInt32BE(correlationId, 0);
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body.buffer, body.byteOffset, body.length);
  return framePartsOf(PeerFrameKind.Response, [id, b], 4 + b.length);
}

export function encodeErrorResponse(correlationId: number, code: number, message: string): Buffer {
  const head = Buffer.allocUnsafe(8);
  head.writeUInt32BE(correlationId, 0);
  head.writeInt32BE(code, 4);
  const text = Buffer.from(message, 'utf8').subarray(0, REASON_BYTES_MAX).toString('utf8');
  return oneFrame(PeerFrameKind.Error, [head, utf8Field(text, 2, REASON_BYTES_MAX, 'message')]);
}

function done<T>(r: BodyReader, value: T, what: string): T {
  if (r.remaining !== 0) {
    throw new StreamBusError(ErrorCode.CORRUPT_MESSAGE, `${what}: ${r.remaining} trailing bytes`);
  }
  return value;
}

export function decodeHello(body: Buffer): Hello {
  const r = new BodyReader(body, 'peer hello');
  const version = r.u16('version');
  const from = r.u32('from') as NodeId;
  const to = r.u32('to') as NodeId;
  const clusterId = r.string(1, CLUSTER_ID_BYTES_MAX, 'cluster id');
  return done(r, { version, from, to, clusterId }, 'peer hello');
}

export function decodeWelcome(body: Buffer): Welcome {
  const r = new BodyReader(body, 'peer welcome');
  const version = r.u16('version');
  const from = r.u32('from') as NodeId;
  const clusterId = r.string(1, CLUSTER_ID_BYTES_MAX, 'cluster id');
  return done(r, { version, from, clusterId }, 'peer welcome');
}

export function decodeRefuse(body: Buffer): Refusal {
  const r = new BodyReader(body, 'peer refusal');
  const code = r.u32('code');
  const reason = r.string(2, REASON_BYTES_MAX, 'reason');
  return done(r, { code, reason }, 'peer refusal');
}

export interface DecodedRequest {
  readonly correlationId: number;
  readonly kind: string;
  readonly body: Buffer;
}

export function decodeRequest(body: Buffer): DecodedRequest {
  const r = new BodyReader(body, 'peer request');
  const correlationId = r.u32('correlation id');
  const kind = r.string(1, RPC_KIND_BYTES_MAX, 'request kind');
  return { correlationId, kind, body: r.rest() };
}

export function decodeResponse(body: Buffer): { correlationId: number; body: Buffer } {
  const r = new BodyReader(body, 'peer response');
  const correlationId = r.u32('correlation id');
  return { correlationId, body: r.rest() };
}

export interface DecodedError {
  readonly correlationId: number;
  readonly code: number;
  readonly message: string;
}

export function decodeErrorResponse(body: Buffer): DecodedError {
  const r = new BodyReader(body, 'peer error');
  const correlationId = r.u32('correlation id');
  const raw = r.u32('code');
  const code = raw > 0x7fffffff ? raw - 0x1_0000_0000 : raw;
  const message = r.string(2, REASON_BYTES_MAX, 'message');
  return done(r, { correlationId, code, message }, 'peer error');
}

/**
 * Incremental parser of link frames (after the preamble). `push` returns the frames a chunk
 * completes; on a malformed header it throws StreamBusError (MALFORMED_FRAME, FRAME_TOO_LARGE)
 * and stays failed. Bytes are copied only when a frame spans chunks.
 */
export class PeerFrameParser {
  private chunks: Buffer[] = [];
  private bufferedBytes = 0;
  private failure: StreamBusError | null = null;

  constructor(readonly frameBytesMax: number) {}

  push(chunk: Buffer): PeerFrame[] {
    if (this.failure) throw this.failure;
    if (chunk.length > 0) {
      this.chunks.push(chunk);
      this.bufferedBytes += chunk.length;
    }
    const frames: PeerFrame[] = [];
    for (;;) {
      const f = this.next();
      if (f === null) return frames;
      frames.push(f);
    }
  }

  private fail(code: number, message: string): never {
    this.failure = new StreamBusError(code, message);
    this.chunks = [];
    this.bufferedBytes = 0;
    throw this.failure;
  }

  private coalesce(n: number): Buffer {
    const head = this.chunks[0]!;
    if (head.length >= n) return head;
    const merged = Buffer.concat(this.chunks, this.bufferedBytes);
    this.chunks = [merged];
    return merged;
  }

  private next(): PeerFrame | null {
    if (this.bufferedBytes < PEER_FRAME_HEADER_BYTES) return null;
    const head = this.coalesce(PEER_FRAME_HEADER_BYTES);
    const length = head.readUInt32BE(0);
    const kind = head[4]!;
    if (length < 1) this.fail(ErrorCode.MALFORMED_FRAME, 'peer frame length 0 has no kind byte');
    if (kind < PeerFrameKind.Hello || kind > KIND_MAX) {
      this.fail(ErrorCode.MALFORMED_FRAME, `unknown peer frame kind ${kind}`);
    }
    const total = 4 + length;
    if (total > this.frameBytesMax) {
      this.fail(
        ErrorCode.FRAME_TOO_LARGE,
        `peer frame of ${total} bytes exceeds the maximum of ${this.frameBytesMax}`,
      );
    }
    if (this.bufferedBytes < total) return null;
    const buf = this.coalesce(total);
    const frame: PeerFrame = {
      kind: kind as PeerFrameKind,
      body: buf.subarray(PEER_FRAME_HEADER_BYTES, total),
    };
    if (buf.length === total) this.chunks.shift();
    else this.chunks[0] = buf.subarray(total);
    this.bufferedBytes -= total;
    return frame;
  }
}
