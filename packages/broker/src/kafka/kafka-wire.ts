// The Kafka listener's wire (connection.ts rule 10): Kafka framing (int32 size + request header,
// kafka-protocol.md §3.1) instead of the native frame, with the same connection machinery and
// bounds. A frame is decoded in full when it is admitted, before its handler runs: a malformed
// body, an API this listener does not advertise or a version outside its range closes that
// connection (Kafka has no error frame a client could read for an unparseable request; both
// target clients reconnect), logged with the client id. ApiVersions above its maximum is the
// one exception: it is answered (error 35 in a v0 body, §3.3) so clients downgrade.
import { ErrorCode, kafka, StreamBusError } from '@streambus/protocol';
import type { Wire, WireCodec, WireParser } from '../connection.js';
import { type ApiRange, isAdvertised } from './advertised.js';

/** One Kafka request as the connection carries it: the raw frame and what is known of it. */
export interface KafkaFrame {
  /** The frame without its size prefix (a view of the socket's bytes). */
  readonly raw: Buffer;
  readonly apiKey: number;
  readonly apiVersion: number;
  readonly correlationId: number;
  /** Set on admission: the decoded request, or null for ApiVersions above its maximum. */
  request: kafka.DecodedRequest | null;
}

const SIZE_PREFIX_BYTES = 4;

/** The client id of a request header v1/v2, when readable (for log lines only). */
export function peekClientId(raw: Buffer): string | null {
  if (raw.length < 10) return null;
  const n = raw.readInt16BE(8);
  if (n < 0 || raw.length < 10 + n) return null;
  return raw.toString('utf8', 10, 10 + n);
}

class KafkaParser implements WireParser<KafkaFrame> {
  private readonly inner: kafka.KafkaFrameParser;
  constructor(frameBytesMax: number) {
    this.inner = new kafka.KafkaFrameParser({ frameBytesMax });
  }
  push(chunk: Buffer): KafkaFrame[] {
    return this.inner.push(chunk).map((raw) => {
      const h = kafka.peekRequestHeader(raw);
      return { raw, ...h, request: null };
    });
  }
  get pendingBytes(): number {
    return this.inner.bufferedBytes;
  }
  get pendingFrameBytes(): number {
    const n = this.inner.pendingFrameBytes;
    return n === 0 ? 0 : n + SIZE_PREFIX_BYTES;
  }
}

/**
 * Admits a frame: the API must be advertised at that version (`ranges`), and the body must
 * decode to its last byte. Throws UNSUPPORTED_VERSION, UNKNOWN_API_KEY or INVALID_REQUEST.
 */
export function admitKafkaFrame(frame: KafkaFrame, ranges: readonly ApiRange[]): void {
  if (
    frame.apiKey === kafka.ApiKey.ApiVersions &&
    frame.apiVersion > kafka.Apis.ApiVersions.codecMax
  ) {
    frame.request = null; // answered with the v0 fallback body
    return;
  }
  if (!isAdvertised(ranges, frame.apiKey, frame.apiVersion)) {
    throw new StreamBusError(
      ErrorCode.UNSUPPORTED_VERSION,
      `Kafka API ${frame.apiKey} v${frame.apiVersion} is not offered by this listener (see ApiVersions)`,
    );
  }
  frame.request = kafka.decodeRequest(frame.raw);
}

/** The Kafka wire over the advertised `ranges` (every node advertises the same set). */
export function kafkaWire(ranges: readonly ApiRange[]): Wire<KafkaFrame> {
  return (limits): WireCodec<KafkaFrame> => ({
    parser: new KafkaParser(limits.frameBytesMax),
    admit(frame) {
      admitKafkaFrame(frame, ranges);
      // The decoded request holds views of the frame, not copies: the frame is what it costs.
      return SIZE_PREFIX_BYTES + frame.raw.length;
    },
    // A request failed as a whole (refused, timed out, the broker stopping): Kafka has no
    // generic error answer, so the connection closes after the answers owed before it.
    failure: () => ({ response: null, close: true }),
    refused: () => null,
    expectsResponse: (frame) => frame.request === null || kafka.expectsResponse(frame.request),
    apiName: (frame) => `kafka_${kafka.apiSchema(frame.apiKey)?.name ?? 'unknown'}`,
    logFields: (frame) => ({
      kafkaApiKey: frame.apiKey,
      apiVersion: frame.apiVersion,
      correlationId: frame.correlationId,
      clientId: frame.request?.header.clientId ?? peekClientId(frame.raw),
    }),
  });
}
