// Kafka framing (kafka-protocol.md §3.1): the int32 size prefix, request headers v1/v2 (v0 is only
// ControlledShutdown v0, which the codec does not cover), response headers v0/v1, a bounded frame
// parser for a TCP byte stream, and the frame-level request/response codecs for both sides.
//
//   frame            = size:int32 (bytes that follow) header body
//   request header 1 = api_key:int16 api_version:int16 correlation_id:int32 client_id:STRING?
//   request header 2 = header 1 + tagged fields (client_id stays an int16-length string)
//   response header 0 = correlation_id:int32;  response header 1 = header 0 + tagged fields
//
// Errors: a frame larger than `frameBytesMax` is FRAME_TOO_LARGE (refused before anything is
// buffered), a size too small to hold a header or negative is INVALID_REQUEST; an API key the
// codec does not cover is UNKNOWN_API_KEY and a version outside its range UNSUPPORTED_VERSION, both
// raised after the fixed header so `peekRequestHeader` still gives what an answer needs. Any
// malformed body is INVALID_REQUEST (requests) or CORRUPT_MESSAGE (responses). No I/O here.

import { ErrorCode, StreamBusError } from '../errors.js';
import {
  ApiKey,
  type ApiKeyName,
  Apis,
  apiSchema,
  type RequestOf,
  type ResponseOf,
} from './apis.js';
import { KafkaReader, type TaggedField } from './reader.js';
import { type ApiRange, requestHeaderVersion, responseHeaderVersion } from './versions.js';
import { KafkaWriter } from './writer.js';

export const SIZE_PREFIX_BYTES = 4;
/** api_key, api_version, correlation_id: the part of every request header at a fixed place. */
export const REQUEST_HEADER_FIXED_BYTES = 8;
/** Frames above this are refused unless the caller sets its own bound (Kafka's default is 100 MiB). */
export const KAFKA_FRAME_BYTES_MAX_DEFAULT = 100 * 1024 * 1024;

export interface RequestHeader {
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  readonly clientId: string | null;
  /** Unknown header tags (request header v2), kept so the frame re-encodes identically. */
  readonly tags?: readonly TaggedField[];
}

/** A decoded request, discriminated by API name. */
export type DecodedRequest = {
  [N in ApiKeyName]: {
    readonly name: N;
    readonly header: RequestHeader;
    readonly body: RequestOf<N>;
  };
}[ApiKeyName];

export interface DecodedResponse<N extends ApiKeyName> {
  readonly correlationId: number;
  readonly tags?: readonly TaggedField[];
  readonly body: ResponseOf<N>;
}

function invalidRequest(message: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_REQUEST, message);
}

/** The fixed part of a request header (frame without its size prefix); never fails past 8 bytes. */
export function peekRequestHeader(frame: Uint8Array): {
  apiKey: number;
  apiVersion: number;
  correlationId: number;
} {
  const r = new KafkaReader(frame);
  return { apiKey: r.int16(), apiVersion: r.int16(), correlationId: r.int32() };
}

function checkVersion(apiKey: number, apiVersion: number) {
  const a = apiSchema(apiKey);
  if (a === undefined) {
    throw new StreamBusError(ErrorCode.UNKNOWN_API_KEY, `Kafka API key ${apiKey} is not supported`);
  }
  if (apiVersion < a.codecMin || apiVersion > a.codecMax) {
    throw new StreamBusError(
      ErrorCode.UNSUPPORTED_VERSION,
      `${a.name} v${apiVersion} is not supported (v${a.codecMin}-${a.codecMax})`,
    );
  }
  return a;
}

/** Decodes a request frame (without its size prefix): header and body, checked to the last byte. */
export function decodeRequest(frame: Uint8Array): DecodedRequest {
  const r = new KafkaReader(frame, 0, frame.length, ErrorCode.INVALID_REQUEST);
  const apiKey = r.int16();
  const apiVersion = r.int16();
  const correlationId = r.int32();
  const a = checkVersion(apiKey, apiVersion);
  const clientId = r.nullableString(true);
  const flexible = requestHeaderVersion(apiKey, apiVersion) === 2;
  const tags = flexible ? r.taggedFields() : [];
  const body = a.request.read(r, { version: apiVersion, flexible });
  r.expectEnd(`${a.name} v${apiVersion} request`);
  const header: RequestHeader =
    tags.length > 0
      ? { apiKey, apiVersion, correlationId, clientId, tags }
      : { apiKey, apiVersion, correlationId, clientId };
  return { name: a.name, header, body } as DecodedRequest;
}

/** Whether a request gets an answer: Produce with acks=0 gets none at all (§3.2). */
export function expectsResponse(req: DecodedRequest): boolean {
  return !(req.name === 'Produce' && req.body.acks === 0);
}

function sizePrefixed(write: (w: KafkaWriter) => void): KafkaWriter {
  const w = new KafkaWriter();
  const slot = w.reserveInt32();
  write(w);
  w.fillInt32(slot, w.length - SIZE_PREFIX_BYTES);
  return w;
}

/** Encodes a request frame, size prefix included (the client side). */
export function encodeRequestChunks<N extends ApiKeyName>(
  name: N,
  header: Omit<RequestHeader, 'apiKey'>,
  body: RequestOf<N>,
): Buffer[] {
  const a = Apis[name];
  checkVersion(a.key, header.apiVersion);
  const flexible = requestHeaderVersion(a.key, header.apiVersion) === 2;
  return sizePrefixed((w) => {
    w.int16(a.key).int16(header.apiVersion).int32(header.correlationId);
    w.nullableString(header.clientId);
    if (flexible) w.taggedFields(header.tags);
    (a.request as { write: (w: KafkaWriter, v: unknown, c: object) => void }).write(w, body, {
      version: header.apiVersion,
      flexible,
    });
  }).chunks();
}

export function encodeRequest<N extends ApiKeyName>(
  name: N,
  header: Omit<RequestHeader, 'apiKey'>,
  body: RequestOf<N>,
): Buffer {
  return Buffer.concat(encodeRequestChunks(name, header, body));
}

/**
 * Encodes a response frame, size prefix included (the broker side). The chunks reference large
 * record batches instead of copying them, for a socket's writev.
 */
export function encodeResponseChunks<N extends ApiKeyName>(
  name: N,
  apiVersion: number,
  correlationId: number,
  body: ResponseOf<N>,
  tags?: readonly TaggedField[],
): Buffer[] {
  const a = Apis[name];
  checkVersion(a.key, apiVersion);
  const headerTags = responseHeaderVersion(a.key, apiVersion) === 1;
  const flexible = apiVersion >= a.flexibleFrom;
  return sizePrefixed((w) => {
    w.int32(correlationId);
    if (headerTags) w.taggedFields(tags);
    (a.response as { write: (w: KafkaWriter, v: unknown, c: object) => void }).write(w, body, {
      version: apiVersion,
      flexible,
    });
  }).chunks();
}

export function encodeResponse<N extends ApiKeyName>(
  name: N,
  apiVersion: number,
  correlationId: number,
  body: ResponseOf<N>,
  tags?: readonly TaggedField[],
): Buffer {
  return Buffer.concat(encodeResponseChunks(name, apiVersion, correlationId, body, tags));
}

/** Decodes a response frame (without its size prefix) of a request sent at `apiVersion`. */
export function decodeResponse<N extends ApiKeyName>(
  name: N,
  apiVersion: number,
  frame: Uint8Array,
): DecodedResponse<N> {
  const a = Apis[name];
  checkVersion(a.key, apiVersion);
  const r = new KafkaReader(frame, 0, frame.length, ErrorCode.CORRUPT_MESSAGE);
  const correlationId = r.int32();
  const tags = responseHeaderVersion(a.key, apiVersion) === 1 ? r.taggedFields() : [];
  const flexible = apiVersion >= a.flexibleFrom;
  const body = a.response.read(r, { version: apiVersion, flexible }) as ResponseOf<N>;
  r.expectEnd(`${a.name} v${apiVersion} response`);
  return tags.length > 0 ? { correlationId, tags, body } : { correlationId, body };
}

/**
 * The answer to an ApiVersions request at a version above the broker's maximum: error 35
 * (UNSUPPORTED_VERSION) in a **v0** body listing only ApiVersions' own range, as Kafka does
 * (`ApiVersionsRequest.getErrorResponse`, §3.3), so both clients downgrade.
 */
export function encodeApiVersionsFallback(
  correlationId: number,
  ranges: readonly ApiRange[],
): Buffer {
  const own = ranges.find((x) => x.apiKey === ApiKey.ApiVersions);
  if (own === undefined) {
    throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'the ranges do not include ApiVersions');
  }
  return encodeResponse('ApiVersions', 0, correlationId, {
    errorCode: ErrorCode.UNSUPPORTED_VERSION,
    apiKeys: [{ apiKey: own.apiKey, minVersion: own.minVersion, maxVersion: own.maxVersion }],
    throttleTimeMs: 0,
  });
}

export interface KafkaFrameParserOptions {
  /** The largest frame accepted (bytes after the size prefix). */
  readonly frameBytesMax?: number;
  /** The smallest: 8 for requests (the fixed header), 4 for responses (the correlation id). */
  readonly frameBytesMin?: number;
}

/**
 * Splits a byte stream into frames. At most one frame (checked against frameBytesMax before it is
 * allocated) plus 3 bytes of the next size prefix are buffered. After an error the parser stays
 * failed: the stream has lost its framing, and the caller must close the connection.
 */
export class KafkaFrameParser {
  readonly frameBytesMax: number;
  readonly frameBytesMin: number;
  private readonly prefix = Buffer.alloc(SIZE_PREFIX_BYTES);
  private prefixBytes = 0;
  private frame: Buffer | null = null;
  private frameFilled = 0;
  private failed: StreamBusError | null = null;

  constructor(options: KafkaFrameParserOptions = {}) {
    this.frameBytesMax = options.frameBytesMax ?? KAFKA_FRAME_BYTES_MAX_DEFAULT;
    this.frameBytesMin = options.frameBytesMin ?? REQUEST_HEADER_FIXED_BYTES;
    if (
      !Number.isInteger(this.frameBytesMax) ||
      !Number.isInteger(this.frameBytesMin) ||
      this.frameBytesMin < 0 ||
      this.frameBytesMax < this.frameBytesMin ||
      this.frameBytesMax > 0x7fffffff
    ) {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `frame bounds ${this.frameBytesMin}..${this.frameBytesMax} are not valid`,
      );
    }
  }

  /** Bytes held for an incomplete frame. */
  get bufferedBytes(): number {
    return this.prefixBytes + this.frameFilled;
  }

  /** The declared size of the frame being buffered (0 between frames and inside a size prefix). */
  get pendingFrameBytes(): number {
    return this.frame?.length ?? 0;
  }

  /** True between frames: nothing partial is buffered. */
  get idle(): boolean {
    return this.prefixBytes === 0 && this.frame === null;
  }

  /** Feeds bytes; returns every frame completed by them (without size prefix, in order). */
  push(chunk: Uint8Array): Buffer[] {
    if (this.failed !== null) throw this.failed;
    const out: Buffer[] = [];
    let p = 0;
    while (p < chunk.length) {
      if (this.frame === null) {
        // Fast path: a whole frame inside the chunk is returned as a view, not copied.
        if (this.prefixBytes === 0 && chunk.length - p >= SIZE_PREFIX_BYTES) {
          const size = this.checkSize(
            (chunk[p]! << 24) | (chunk[p + 1]! << 16) | (chunk[p + 2]! << 8) | chunk[p + 3]!,
          );
          p += SIZE_PREFIX_BYTES;
          if (chunk.length - p >= size) {
            out.push(Buffer.from(chunk.buffer, chunk.byteOffset + p, size));
            p += size;
          } else {
            this.startFrame(size);
          }
          continue;
        }
        const take = Math.min(SIZE_PREFIX_BYTES - this.prefixBytes, chunk.length - p);
        this.prefix.set(chunk.subarray(p, p + take), this.prefixBytes);
        this.prefixBytes += take;
        p += take;
        if (this.prefixBytes < SIZE_PREFIX_BYTES) break;
        this.prefixBytes = 0;
        const size = this.checkSize(this.prefix.readInt32BE(0));
        if (size === 0) out.push(Buffer.alloc(0));
        else this.startFrame(size);
        continue;
      }
      const frame = this.frame;
      const take = Math.min(frame.length - this.frameFilled, chunk.length - p);
      frame.set(chunk.subarray(p, p + take), this.frameFilled);
      this.frameFilled += take;
      p += take;
      if (this.frameFilled === frame.length) {
        out.push(frame);
        this.frame = null;
        this.frameFilled = 0;
      }
    }
    return out;
  }

  private startFrame(size: number): void {
    this.frame = Buffer.allocUnsafe(size);
    this.frameFilled = 0;
  }

  private checkSize(size: number): number {
    if (size > this.frameBytesMax) {
      this.failed = new StreamBusError(
        ErrorCode.FRAME_TOO_LARGE,
        `Kafka frame of ${size} bytes exceeds the ${this.frameBytesMax}-byte maximum`,
      );
      throw this.failed;
    }
    if (size < this.frameBytesMin) {
      this.failed = invalidRequest(
        `Kafka frame size ${size} is below the ${this.frameBytesMin}-byte minimum (not a Kafka stream?)`,
      );
      throw this.failed;
    }
    return size;
  }
}
