// The one error-code table shared by broker and client, and the typed error that carries a code.
//
// Codes use Kafka's numbers wherever Kafka has the error (apache/kafka `Errors.java`; see
// shared/kafka-protocol.md §6), so a future Kafka listener maps them one to one. StreamBus-only
// conditions live at 1000 and above, where Kafka has nothing. `retriable` says whether a client
// may retry the same request unchanged (after a metadata refresh or a backoff); it is the only
// place that decides it. This module does not log, retry or map anything to the wire: the wire
// carries the numeric code, and both ends look it up here.

export interface ErrorInfo {
  readonly code: number;
  readonly name: string;
  readonly retriable: boolean;
  readonly message: string;
}

function info(code: number, name: string, retriable: boolean, message: string): ErrorInfo {
  return { code, name, retriable, message };
}

/** Every code, by name. Use these constants; never compare error names or messages. */
export const ErrorCode = {
  NONE: 0,
  UNKNOWN_SERVER_ERROR: -1,
  OFFSET_OUT_OF_RANGE: 1,
  CORRUPT_MESSAGE: 2,
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  INVALID_FETCH_SIZE: 4,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_OR_FOLLOWER: 6,
  REQUEST_TIMED_OUT: 7,
  NETWORK_EXCEPTION: 13,
  MESSAGE_TOO_LARGE: 10,
  COORDINATOR_LOAD_IN_PROGRESS: 14,
  COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR: 16,
  INVALID_TOPIC_EXCEPTION: 17,
  RECORD_LIST_TOO_LARGE: 18,
  NOT_ENOUGH_REPLICAS: 19,
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: 20,
  INVALID_REQUIRED_ACKS: 21,
  ILLEGAL_GENERATION: 22,
  INCONSISTENT_GROUP_PROTOCOL: 23,
  INVALID_GROUP_ID: 24,
  UNKNOWN_MEMBER_ID: 25,
  INVALID_SESSION_TIMEOUT: 26,
  REBALANCE_IN_PROGRESS: 27,
  INVALID_TIMESTAMP: 32,
  UNSUPPORTED_VERSION: 35,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_PARTITIONS: 37,
  INVALID_REPLICATION_FACTOR: 38,
  INVALID_CONFIG: 40,
  NOT_CONTROLLER: 41,
  INVALID_REQUEST: 42,
  POLICY_VIOLATION: 44,
  OUT_OF_ORDER_SEQUENCE_NUMBER: 45,
  DUPLICATE_SEQUENCE_NUMBER: 46,
  INVALID_PRODUCER_EPOCH: 47,
  KAFKA_STORAGE_ERROR: 56,
  UNKNOWN_PRODUCER_ID: 59,
  UNSUPPORTED_COMPRESSION_TYPE: 76,
  INVALID_RECORD: 87,
  STALE_BROKER_EPOCH: 77,
  BROKER_ID_NOT_REGISTERED: 102,
  // Partition reassignment (issue 12): Kafka's codes.
  INVALID_REPLICA_ASSIGNMENT: 39,
  REASSIGNMENT_IN_PROGRESS: 60,
  // StreamBus-only codes (no Kafka equivalent).
  MALFORMED_FRAME: 1000,
  FRAME_TOO_LARGE: 1001,
  UNKNOWN_API_KEY: 1002,
  CONNECTION_CLOSED: 1003,
  TOO_MANY_INFLIGHT_REQUESTS: 1004,
  CORRUPT_DATA: 1005,
  INVALID_ARGUMENT: 1006,
  CLIENT_CLOSED: 1007,
  SHUTTING_DOWN: 1008,
  CORRUPT_COMPRESSED_DATA: 1009,
  // Client side: a metadata response confirmed the topic is absent (not retriable), where
  // UNKNOWN_TOPIC_OR_PARTITION from produce/fetch stays a retriable stale-metadata hint.
  TOPIC_NOT_FOUND: 1065,
  // 1040-1049: storage resources.
  TOO_MANY_OPEN_FILES: 1040,
  // 1050-1059: hostile network input (connection bounds).
  FRAME_STALLED: 1050,
  READER_STALLED: 1051,
  // 1080-1089: controller metadata and node identity.
  NODE_IDENTITY_MISMATCH: 1080,
  // 1090-1099: replication storage (packages/broker/src/replication).
  REPLICA_ENTRIES_UNAVAILABLE: 1090,
  // 1140-1149: the partition log's own conditions (packages/storage); the broker maps them to
  // what a client sees in one place (packages/broker/src/storage-errors.ts).
  LOG_TRUNCATED: 1140,
  LOG_BACKPRESSURE: 1141,
  // 1120-1129: the controller quorum (packages/broker/src/controller).
  CONTROLLER_BUSY: 1120,
  CONTROLLER_OFFLINE: 1121,
  // 1100-1109: inter-broker links (packages/broker/src/cluster).
  PEER_LINK_REFUSED: 1100,
  // Consumer groups (packages/broker/src/groups): Kafka's codes, then 1190-1199 StreamBus-only.
  OFFSET_METADATA_TOO_LARGE: 12,
  NON_EMPTY_GROUP: 68,
  GROUP_ID_NOT_FOUND: 69,
  MEMBER_ID_REQUIRED: 79,
  GROUP_MAX_SIZE_REACHED: 81,
  FENCED_INSTANCE_ID: 82,
  GROUP_METADATA_TOO_LARGE: 1190,
  GROUPS_LIMIT_REACHED: 1191,
  GROUP_OFFSETS_LIMIT_REACHED: 1192,
  // 1110-1119: partition replicas (packages/broker/src/replication).
  REPLICA_PROPOSALS_FULL: 1110,
  REPLICA_CONF_CHANGE_IN_PROGRESS: 1111,
  // 1200-1209: the log cleaner of compacted topics (packages/storage/src/log/log-cleaner.ts).
  LOG_CLEAN_CONFLICT: 1200,
  LOG_CLEANER_BUSY: 1201,
  // 1220-1229: importing a single-node data directory (packages/broker/src/replication/single-node-import.ts).
  SINGLE_NODE_IMPORT_FAILED: 1220,
  // 1260-1269: the group coordinator's shell (packages/broker/src/groups/coordinator*.ts).
  COORDINATOR_REQUESTS_FULL: 1260,
  // 1280-1289: compacted topics, the broker's cleaner scheduler (packages/broker/src/log-compaction.ts).
  LOG_CLEAN_ABORTED: 1280,
  // 1270-1279: the SDK's group consumer (packages/client/src/group-consumer.ts).
  NO_COMMITTED_OFFSET: 1270,
  // 1320-1329: the SDK's group consumer, seek/pause/resume (packages/client/src/group-consumer.ts).
  PARTITION_NOT_OWNED: 1320,
  // 1380-1389: controller voter changes (packages/broker/src/controller/controller-voters.ts).
  CONTROLLER_VOTER_CHANGE_IN_PROGRESS: 1380,
  INVALID_CONTROLLER_VOTER_CHANGE: 1381,
} as const;

export type ErrorCodeName = keyof typeof ErrorCode;
export type ErrorCodeValue = (typeof ErrorCode)[ErrorCodeName];

const C = ErrorCode;

/** The table: code, name, retriable, default message. Kafka's retriable flags where Kafka has the code. */
const TABLE: readonly ErrorInfo[] = [
  info(C.NONE, 'NONE', false, 'success'),
  info(C.UNKNOWN_SERVER_ERROR, 'UNKNOWN_SERVER_ERROR', false, 'unexpected server error'),
  info(C.OFFSET_OUT_OF_RANGE, 'OFFSET_OUT_OF_RANGE', false, 'offset is outside the log range'),
  info(C.CORRUPT_MESSAGE, 'CORRUPT_MESSAGE', true, 'record batch failed its CRC or size check'),
  info(
    C.UNKNOWN_TOPIC_OR_PARTITION,
    'UNKNOWN_TOPIC_OR_PARTITION',
    true,
    'unknown topic or partition',
  ),
  info(C.INVALID_FETCH_SIZE, 'INVALID_FETCH_SIZE', false, 'invalid fetch size'),
  info(C.LEADER_NOT_AVAILABLE, 'LEADER_NOT_AVAILABLE', true, 'no leader for this partition yet'),
  info(
    C.NOT_LEADER_OR_FOLLOWER,
    'NOT_LEADER_OR_FOLLOWER',
    true,
    'this broker does not lead the partition',
  ),
  info(C.REQUEST_TIMED_OUT, 'REQUEST_TIMED_OUT', true, 'request timed out'),
  info(
    C.MESSAGE_TOO_LARGE,
    'MESSAGE_TOO_LARGE',
    false,
    'record batch is larger than the maximum allowed',
  ),
  info(C.NETWORK_EXCEPTION, 'NETWORK_EXCEPTION', true, 'network error'),
  info(
    C.COORDINATOR_LOAD_IN_PROGRESS,
    'COORDINATOR_LOAD_IN_PROGRESS',
    true,
    'coordinator is loading',
  ),
  info(C.COORDINATOR_NOT_AVAILABLE, 'COORDINATOR_NOT_AVAILABLE', true, 'coordinator not available'),
  info(C.NOT_COORDINATOR, 'NOT_COORDINATOR', true, 'this broker is not the coordinator'),
  info(C.INVALID_TOPIC_EXCEPTION, 'INVALID_TOPIC_EXCEPTION', false, 'invalid topic name'),
  info(
    C.RECORD_LIST_TOO_LARGE,
    'RECORD_LIST_TOO_LARGE',
    false,
    'record batch is larger than a segment',
  ),
  info(C.NOT_ENOUGH_REPLICAS, 'NOT_ENOUGH_REPLICAS', true, 'not enough in-sync replicas'),
  info(
    C.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
    'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
    true,
    'appended but not enough replicas acknowledged',
  ),
  info(C.INVALID_REQUIRED_ACKS, 'INVALID_REQUIRED_ACKS', false, 'acks must be 0, 1 or -1 (all)'),
  info(C.ILLEGAL_GENERATION, 'ILLEGAL_GENERATION', false, 'stale group generation'),
  info(
    C.INCONSISTENT_GROUP_PROTOCOL,
    'INCONSISTENT_GROUP_PROTOCOL',
    false,
    'no common group protocol',
  ),
  info(C.INVALID_GROUP_ID, 'INVALID_GROUP_ID', false, 'invalid group id'),
  info(C.UNKNOWN_MEMBER_ID, 'UNKNOWN_MEMBER_ID', false, 'unknown group member'),
  info(C.INVALID_SESSION_TIMEOUT, 'INVALID_SESSION_TIMEOUT', false, 'session timeout out of range'),
  info(C.REBALANCE_IN_PROGRESS, 'REBALANCE_IN_PROGRESS', false, 'group is rebalancing'),
  info(
    C.INVALID_TIMESTAMP,
    'INVALID_TIMESTAMP',
    false,
    'record timestamp is out of the accepted range',
  ),
  info(C.UNSUPPORTED_VERSION, 'UNSUPPORTED_VERSION', false, 'API version not supported'),
  info(C.TOPIC_ALREADY_EXISTS, 'TOPIC_ALREADY_EXISTS', false, 'topic already exists'),
  info(C.INVALID_PARTITIONS, 'INVALID_PARTITIONS', false, 'invalid partition count'),
  info(
    C.INVALID_REPLICATION_FACTOR,
    'INVALID_REPLICATION_FACTOR',
    false,
    'invalid replication factor',
  ),
  info(C.INVALID_CONFIG, 'INVALID_CONFIG', false, 'invalid configuration'),
  info(C.NOT_CONTROLLER, 'NOT_CONTROLLER', true, 'this broker is not the controller'),
  info(C.INVALID_REQUEST, 'INVALID_REQUEST', false, 'malformed or invalid request'),
  info(C.POLICY_VIOLATION, 'POLICY_VIOLATION', false, 'request violates a policy'),
  info(
    C.OUT_OF_ORDER_SEQUENCE_NUMBER,
    'OUT_OF_ORDER_SEQUENCE_NUMBER',
    false,
    'producer sequence number gap',
  ),
  info(
    C.DUPLICATE_SEQUENCE_NUMBER,
    'DUPLICATE_SEQUENCE_NUMBER',
    false,
    'duplicate producer sequence number',
  ),
  info(
    C.INVALID_PRODUCER_EPOCH,
    'INVALID_PRODUCER_EPOCH',
    false,
    'producer epoch is older than the current one',
  ),
  info(C.KAFKA_STORAGE_ERROR, 'KAFKA_STORAGE_ERROR', true, 'storage error on the broker'),
  info(C.UNKNOWN_PRODUCER_ID, 'UNKNOWN_PRODUCER_ID', false, 'unknown producer id'),
  info(
    C.UNSUPPORTED_COMPRESSION_TYPE,
    'UNSUPPORTED_COMPRESSION_TYPE',
    false,
    'unsupported compression codec',
  ),
  info(C.INVALID_RECORD, 'INVALID_RECORD', false, 'invalid record or record batch'),
  info(C.MALFORMED_FRAME, 'MALFORMED_FRAME', false, 'malformed wire frame'),
  info(C.FRAME_TOO_LARGE, 'FRAME_TOO_LARGE', false, 'wire frame exceeds the maximum frame size'),
  info(C.UNKNOWN_API_KEY, 'UNKNOWN_API_KEY', false, 'unknown API key'),
  info(C.CONNECTION_CLOSED, 'CONNECTION_CLOSED', true, 'connection closed'),
  info(
    C.TOO_MANY_INFLIGHT_REQUESTS,
    'TOO_MANY_INFLIGHT_REQUESTS',
    true,
    'too many requests in flight on this connection',
  ),
  info(C.CORRUPT_DATA, 'CORRUPT_DATA', false, 'stored data is corrupt'),
  info(C.INVALID_ARGUMENT, 'INVALID_ARGUMENT', false, 'invalid argument'),
  info(C.CLIENT_CLOSED, 'CLIENT_CLOSED', false, 'client is closed'),
  info(C.SHUTTING_DOWN, 'SHUTTING_DOWN', true, 'broker is shutting down'),
  info(
    C.CORRUPT_COMPRESSED_DATA,
    'CORRUPT_COMPRESSED_DATA',
    false,
    'compressed payload is corrupt or truncated',
  ),
  info(C.TOPIC_NOT_FOUND, 'TOPIC_NOT_FOUND', false, 'topic does not exist'),
  info(
    C.TOO_MANY_OPEN_FILES,
    'TOO_MANY_OPEN_FILES',
    true,
    'the broker has no file descriptor free for storage right now',
  ),
  info(
    C.FRAME_STALLED,
    'FRAME_STALLED',
    true,
    'a frame did not arrive completely within the frame stall timeout',
  ),
  info(
    C.READER_STALLED,
    'READER_STALLED',
    true,
    'the peer took none of its responses within the frame stall timeout',
  ),
  info(C.STALE_BROKER_EPOCH, 'STALE_BROKER_EPOCH', false, 'broker epoch is not the registered one'),
  info(C.BROKER_ID_NOT_REGISTERED, 'BROKER_ID_NOT_REGISTERED', false, 'broker is not registered'),
  info(
    C.INVALID_REPLICA_ASSIGNMENT,
    'INVALID_REPLICA_ASSIGNMENT',
    false,
    'invalid replica assignment',
  ),
  info(
    C.REASSIGNMENT_IN_PROGRESS,
    'REASSIGNMENT_IN_PROGRESS',
    false,
    'a reassignment is in progress',
  ),
  info(
    C.NODE_IDENTITY_MISMATCH,
    'NODE_IDENTITY_MISMATCH',
    false,
    'the data directory belongs to another cluster or node id',
  ),
  info(
    C.REPLICA_ENTRIES_UNAVAILABLE,
    'REPLICA_ENTRIES_UNAVAILABLE',
    true,
    'these log entries are not in memory; read them asynchronously and retry',
  ),
  info(
    C.LOG_TRUNCATED,
    'LOG_TRUNCATED',
    true,
    'the log was truncated or reset before the offset waited for became durable',
  ),
  info(
    C.LOG_BACKPRESSURE,
    'LOG_BACKPRESSURE',
    true,
    'the partition log holds too many bytes not yet written or fsynced; retry after a backoff',
  ),
  info(
    C.CONTROLLER_BUSY,
    'CONTROLLER_BUSY',
    true,
    'the controller cannot take the request now (queue full or proposal dropped); retry later',
  ),
  info(
    C.CONTROLLER_OFFLINE,
    'CONTROLLER_OFFLINE',
    true,
    'the metadata log on this broker failed (disk error); it reopens by itself once the disk is usable again, retry later',
  ),
  info(
    C.PEER_LINK_REFUSED,
    'PEER_LINK_REFUSED',
    true,
    'the peer refused the inter-broker link (node id, cluster id or version mismatch)',
  ),
  info(
    C.REPLICA_PROPOSALS_FULL,
    'REPLICA_PROPOSALS_FULL',
    true,
    'the partition leader has too many bytes waiting for replication; retry after a backoff',
  ),
  info(
    C.REPLICA_CONF_CHANGE_IN_PROGRESS,
    'REPLICA_CONF_CHANGE_IN_PROGRESS',
    true,
    'a membership change of this partition is pending, or its leader is new; retry shortly',
  ),
  info(
    C.OFFSET_METADATA_TOO_LARGE,
    'OFFSET_METADATA_TOO_LARGE',
    false,
    'committed offset metadata is too large',
  ),
  info(C.NON_EMPTY_GROUP, 'NON_EMPTY_GROUP', false, 'the group has members'),
  info(C.GROUP_ID_NOT_FOUND, 'GROUP_ID_NOT_FOUND', false, 'no such group'),
  info(
    C.MEMBER_ID_REQUIRED,
    'MEMBER_ID_REQUIRED',
    false,
    'rejoin with the member id given in this response',
  ),
  info(
    C.GROUP_MAX_SIZE_REACHED,
    'GROUP_MAX_SIZE_REACHED',
    false,
    'the group has its maximum number of members',
  ),
  info(
    C.FENCED_INSTANCE_ID,
    'FENCED_INSTANCE_ID',
    false,
    'a newer member with this group instance id joined',
  ),
  info(
    C.GROUP_METADATA_TOO_LARGE,
    'GROUP_METADATA_TOO_LARGE',
    false,
    'protocol metadata or an assignment is larger than the coordinator accepts',
  ),
  info(
    C.GROUPS_LIMIT_REACHED,
    'GROUPS_LIMIT_REACHED',
    true,
    'the coordinator holds its maximum number of groups',
  ),
  info(
    C.GROUP_OFFSETS_LIMIT_REACHED,
    'GROUP_OFFSETS_LIMIT_REACHED',
    false,
    'the group holds its maximum number of committed offsets',
  ),
  info(
    C.LOG_CLEAN_CONFLICT,
    'LOG_CLEAN_CONFLICT',
    true,
    'the segment being cleaned changed or went away (retention, truncation, reset); clean again',
  ),
  info(
    C.LOG_CLEANER_BUSY,
    'LOG_CLEANER_BUSY',
    true,
    'a clean of this partition log is already running',
  ),
  info(
    C.SINGLE_NODE_IMPORT_FAILED,
    'SINGLE_NODE_IMPORT_FAILED',
    false,
    'the single-node data directory cannot be imported into a cluster as it is',
  ),
  info(
    C.COORDINATOR_REQUESTS_FULL,
    'COORDINATOR_REQUESTS_FULL',
    true,
    'the group coordinator holds its maximum number of pending group requests; retry',
  ),
  info(
    C.LOG_CLEAN_ABORTED,
    'LOG_CLEAN_ABORTED',
    true,
    'the clean was stopped because its partition is closing; the next scheduled clean goes on',
  ),
  info(
    C.NO_COMMITTED_OFFSET,
    'NO_COMMITTED_OFFSET',
    false,
    "the group has no committed offset for an assigned partition and autoOffsetReset is 'none'",
  ),
  info(
    C.PARTITION_NOT_OWNED,
    'PARTITION_NOT_OWNED',
    false,
    'the partition is not assigned to this group member (seek, pause and resume take owned partitions only)',
  ),
  info(
    C.CONTROLLER_VOTER_CHANGE_IN_PROGRESS,
    'CONTROLLER_VOTER_CHANGE_IN_PROGRESS',
    true,
    'a change of the controller voters is still in progress',
  ),
  info(
    C.INVALID_CONTROLLER_VOTER_CHANGE,
    'INVALID_CONTROLLER_VOTER_CHANGE',
    false,
    'the controller voter change is refused',
  ),
];

const BY_CODE: ReadonlyMap<number, ErrorInfo> = new Map(TABLE.map((e) => [e.code, e]));

/** The table row for a code; unknown codes (say, from a newer peer) map to a non-retriable row. */
export function errorInfo(code: number): ErrorInfo {
  return (
    BY_CODE.get(code) ??
    info(code, `UNKNOWN_ERROR_CODE_${code}`, false, `unknown error code ${code}`)
  );
}

/** Every row of the table, for docs and tests. */
export function allErrors(): readonly ErrorInfo[] {
  return TABLE;
}

/**
 * An expected operating error: bad input, not leader, offset out of range, disk full. Callers
 * switch on `code`; `retriable` comes from the table, never from the call site.
 */
export class StreamBusError extends Error {
  readonly code: number;
  readonly errorName: string;
  readonly retriable: boolean;

  constructor(code: number, message?: string, options?: { cause?: unknown }) {
    const row = errorInfo(code);
    super(message ?? row.message, options);
    this.name = 'StreamBusError';
    this.code = code;
    this.errorName = row.name;
    this.retriable = row.retriable;
  }

  override toString(): string {
    return `${this.errorName} (${this.code}): ${this.message}`;
  }
}

export function isStreamBusError(err: unknown, code?: number): err is StreamBusError {
  return err instanceof StreamBusError && (code === undefined || err.code === code);
}
