// Message bodies: msgpack (msgpackr, plain maps, no records extension) checked against the
// schemas in messages.ts. Encoding trusts the TypeScript types; decoding trusts nothing: any
// msgpack error, trailing bytes or shape mismatch becomes a StreamBusError (INVALID_REQUEST for
// bodies, MALFORMED_FRAME for frames a peer should never have sent), never a raw exception.
//
// Before msgpackr sees a body, `scanMsgpack` walks its structure and refuses one that nests too
// deep, declares too many items or would decode too large (msgpack-scan.ts), so a hostile body
// never gets to allocate.
//
// Byte strings decode as Buffers that view the frame (no copy); record batches therefore reach
// the broker's storage in the buffer they arrived in.
// 'msgpackr/pack' is msgpackr's plain-JavaScript entry: the package root also loads the native
// string extractor (msgpackr-extract), about 20 ms of every start, and no faster for these
// small bodies (pnpm-workspace.yaml).
import { Packr } from 'msgpackr/pack';
import { ErrorCode, StreamBusError } from '../errors.js';
import {
  encodeFrame,
  FRAME_HEADER_BYTES,
  type Frame,
  FrameFlag,
  type FrameHeader,
  writeFrameHeader,
} from './frame.js';
import {
  API_NAMES,
  API_VERSION_RANGES,
  type ApiKeyValue,
  type ErrorBody,
  ErrorBodySchema,
  isApiKey,
  MESSAGE_SCHEMAS,
  type RequestOf,
  type ResponseOf,
} from './messages.js';
import { MSGPACK_LIMITS_DEFAULT, type MsgpackLimits, scanMsgpack } from './msgpack-scan.js';
import type { Schema } from './schema.js';

const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false });

export function packBody(body: unknown): Buffer {
  return packr.pack(body);
}

function unpackBody(body: Uint8Array, what: string, limits: MsgpackLimits): unknown {
  scanMsgpack(body, limits, what);
  try {
    return packr.unpack(body);
  } catch (err) {
    throw new StreamBusError(
      ErrorCode.INVALID_REQUEST,
      `${what}: body is not valid msgpack (${(err as Error).message})`,
      { cause: err },
    );
  }
}

export function decodeBody<T>(
  schema: Schema<T>,
  body: Uint8Array,
  what: string,
  limits: MsgpackLimits = MSGPACK_LIMITS_DEFAULT,
): T {
  return schema.check(unpackBody(body, what, limits), what);
}

function apiName(apiKey: number): string {
  return API_NAMES[apiKey] ?? `api ${apiKey}`;
}

/** Throws UNKNOWN_API_KEY or UNSUPPORTED_VERSION unless this build implements the pair. */
export function checkApiVersion(apiKey: number, apiVersion: number): asserts apiKey is ApiKeyValue {
  if (!isApiKey(apiKey)) {
    throw new StreamBusError(ErrorCode.UNKNOWN_API_KEY, `unknown API key ${apiKey}`);
  }
  const range = API_VERSION_RANGES[apiKey];
  if (apiVersion < range.min || apiVersion > range.max) {
    throw new StreamBusError(
      ErrorCode.UNSUPPORTED_VERSION,
      `${apiName(apiKey)} v${apiVersion} is not supported (supported: v${range.min}..v${range.max})`,
    );
  }
}

export interface EncodeRequestOptions {
  readonly apiVersion?: number;
  /** Sets NO_RESPONSE: the broker will not answer (produce with acks=0). */
  readonly noResponse?: boolean;
}

export function encodeRequest<K extends ApiKeyValue>(
  apiKey: K,
  correlationId: number,
  body: RequestOf<K>,
  options: EncodeRequestOptions = {},
): Buffer {
  const header: FrameHeader = {
    apiKey,
    apiVersion: options.apiVersion ?? API_VERSION_RANGES[apiKey].max,
    correlationId,
    flags: options.noResponse ? FrameFlag.NO_RESPONSE : 0,
  };
  return encodeFrame(header, packBody(body));
}

/** A request frame's body, checked. The frame must not have RESPONSE set. */
export function decodeRequest<K extends ApiKeyValue>(
  apiKey: K,
  frame: Frame,
  limits: MsgpackLimits = MSGPACK_LIMITS_DEFAULT,
): RequestOf<K> {
  if ((frame.flags & FrameFlag.RESPONSE) !== 0) {
    throw new StreamBusError(ErrorCode.MALFORMED_FRAME, 'a response frame arrived as a request');
  }
  const schema = MESSAGE_SCHEMAS[apiKey].request as Schema<RequestOf<K>>;
  return decodeBody(schema, frame.body, apiName(apiKey), limits);
}

function responseHeader(request: FrameHeader, error: boolean): FrameHeader {
  return {
    apiKey: request.apiKey,
    apiVersion: request.apiVersion,
    correlationId: request.correlationId,
    flags: FrameFlag.RESPONSE | (error ? FrameFlag.ERROR : 0),
  };
}

export function encodeResponse<K extends ApiKeyValue>(
  request: FrameHeader & { apiKey: K },
  body: ResponseOf<K>,
): Buffer {
  return encodeFrame(responseHeader(request, false), packBody(body));
}

/**
 * The same frame as `encodeResponse`, as two buffers (the 14-byte header, then the body) for a
 * gathered write (`socket.cork()` + writes, or `writev`): the body is not copied a second time.
 * Meant for large bodies (fetch responses, whose record bytes msgpack has already copied once).
 */
export function encodeResponseParts<K extends ApiKeyValue>(
  request: FrameHeader & { apiKey: K },
  body: ResponseOf<K>,
): [header: Buffer, body: Buffer] {
  const packed = packBody(body);
  const header = Buffer.allocUnsafe(FRAME_HEADER_BYTES);
  writeFrameHeader(header, 0, responseHeader(request, false), packed.length);
  return [header, packed];
}

/** The answer to a request that failed as a whole. */
export function encodeErrorResponse(request: FrameHeader, error: StreamBusError): Buffer {
  const body: ErrorBody = { errorCode: error.code, errorMessage: error.message };
  return encodeFrame(responseHeader(request, true), packBody(body));
}

/**
 * A response frame's body, checked against the schema of `apiKey`. An ERROR frame becomes the
 * StreamBusError it carries (thrown), so callers see one kind of failure.
 */
export function decodeResponse<K extends ApiKeyValue>(apiKey: K, frame: Frame): ResponseOf<K> {
  if ((frame.flags & FrameFlag.RESPONSE) === 0) {
    throw new StreamBusError(ErrorCode.MALFORMED_FRAME, 'a request frame arrived as a response');
  }
  if (frame.apiKey !== apiKey) {
    throw new StreamBusError(
      ErrorCode.MALFORMED_FRAME,
      `response for ${apiName(frame.apiKey)} arrived for a ${apiName(apiKey)} request`,
    );
  }
  if ((frame.flags & FrameFlag.ERROR) !== 0) {
    const err = decodeBody(ErrorBodySchema, frame.body, `${apiName(apiKey)} error`);
    throw new StreamBusError(err.errorCode, err.errorMessage);
  }
  const schema = MESSAGE_SCHEMAS[apiKey].response as Schema<ResponseOf<K>>;
  return decodeBody(schema, frame.body, `${apiName(apiKey)} response`);
}

/** The highest version both sides implement, or null when the ranges do not overlap. */
export function negotiateVersion(
  apiKey: ApiKeyValue,
  peer: { minVersion: number; maxVersion: number },
): number | null {
  const ours = API_VERSION_RANGES[apiKey];
  const max = Math.min(ours.max, peer.maxVersion);
  const min = Math.max(ours.min, peer.minVersion);
  return max >= min ? max : null;
}
