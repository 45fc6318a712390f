// The one table mapping StreamBus error codes to the Kafka error code a Kafka client sees.
//
// Codes below 1000 are Kafka's own numbers by design (errors.ts), so they pass through unchanged,
// except the few kafkajs 2.2.4 does not know (it knows codes up to 88 and treats anything else as
// fatal, kafka-protocol.md §6, §8.5): those are broker-to-controller codes that never belong in a
// client answer, and become UNKNOWN_SERVER_ERROR. StreamBus-only codes (1000 and above) map to the
// Kafka code with the same meaning and, where it matters, the same retriable flag, so a Kafka
// client retries exactly when a native client would. A StreamBus code missing from the table (a
// newer one) maps by its retriable flag: REQUEST_TIMED_OUT (retriable in every Kafka client) or
// UNKNOWN_SERVER_ERROR.

import { ErrorCode as C, errorInfo } from '../errors.js';

/** The highest error code kafkajs 2.2.4 knows (`src/protocol/error.js`). */
export const KAFKAJS_KNOWN_CODE_MAX = 88;

const STREAMBUS_TO_KAFKA: ReadonlyMap<number, number> = new Map<number, number>([
  // Malformed input: the request is bad, not the data.
  [C.MALFORMED_FRAME, C.INVALID_REQUEST],
  [C.FRAME_TOO_LARGE, C.INVALID_REQUEST],
  [C.UNKNOWN_API_KEY, C.INVALID_REQUEST],
  [C.INVALID_ARGUMENT, C.INVALID_REQUEST],
  // Connection and lifecycle: retriable network-level conditions.
  [C.CONNECTION_CLOSED, C.NETWORK_EXCEPTION],
  [C.TOO_MANY_INFLIGHT_REQUESTS, C.NETWORK_EXCEPTION],
  [C.CLIENT_CLOSED, C.NETWORK_EXCEPTION],
  [C.FRAME_STALLED, C.NETWORK_EXCEPTION],
  [C.READER_STALLED, C.NETWORK_EXCEPTION],
  // A broker going away: the client refreshes metadata and finds the next leader.
  [C.SHUTTING_DOWN, C.NOT_LEADER_OR_FOLLOWER],
  // Truncation happens when leadership moves: same answer as a stale leader.
  [C.LOG_TRUNCATED, C.NOT_LEADER_OR_FOLLOWER],
  // Stored data and storage resources.
  [C.CORRUPT_DATA, C.KAFKA_STORAGE_ERROR],
  [C.TOO_MANY_OPEN_FILES, C.KAFKA_STORAGE_ERROR],
  [C.NODE_IDENTITY_MISMATCH, C.KAFKA_STORAGE_ERROR],
  // Produce payloads: a compressed stream the broker cannot read is a corrupt message.
  [C.CORRUPT_COMPRESSED_DATA, C.CORRUPT_MESSAGE],
  // Back-pressure: never THROTTLING_QUOTA_EXCEEDED (89), which kafkajs treats as fatal (§8.5).
  [C.LOG_BACKPRESSURE, C.REQUEST_TIMED_OUT],
  [C.REPLICA_ENTRIES_UNAVAILABLE, C.REQUEST_TIMED_OUT],
  // A native-client conclusion; on the wire it is the plain Kafka code.
  [C.TOPIC_NOT_FOUND, C.UNKNOWN_TOPIC_OR_PARTITION],
  // Kafka codes kafkajs does not know: internal to the controller, never a client's business.
  [C.STALE_BROKER_EPOCH, C.UNKNOWN_SERVER_ERROR],
  [C.BROKER_ID_NOT_REGISTERED, C.UNKNOWN_SERVER_ERROR],
]);

/** The Kafka error code to put on the wire for a StreamBus error code. */
export function kafkaErrorCode(code: number): number {
  const mapped = STREAMBUS_TO_KAFKA.get(code);
  if (mapped !== undefined) return mapped;
  if (code >= -1 && code < 1000) return code;
  return errorInfo(code).retriable ? C.REQUEST_TIMED_OUT : C.UNKNOWN_SERVER_ERROR;
}

/** The explicit rows, for docs and tests. */
export function kafkaErrorMapEntries(): readonly (readonly [number, number])[] {
  return [...STREAMBUS_TO_KAFKA.entries()];
}
