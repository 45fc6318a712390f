// Request and response layouts of every Kafka API the codec covers, for the version ranges in
// kafka-protocol.md §1.2 and §4 (fields in wire order; `since(v, …)` marks a field added in
// version v). Source: apache/kafka `clients/src/main/resources/common/message/<Name>{Request,
// Response}.json`; defaults for fields a version lacks are the JSON's defaults (−1 for epochs,
// offsets and ids, null for nullable strings). `codecMin..codecMax` is what this file can decode
// and encode; what a broker advertises is versions.ts. `flexibleFrom` is the first flexible
// version (KIP-482), or Infinity. Records (Produce, Fetch) stay raw RecordBatch bytes.

import {
  array,
  bool,
  bytes,
  int8,
  int16,
  int32,
  int64,
  nullableArray,
  nullableString,
  records,
  type StructOf,
  since,
  string,
  struct,
  type Type,
  versions,
} from './schema.js';

/** Kafka API keys the codec knows (apache/kafka `ApiKeys.java`). */
export const ApiKey = {
  Produce: 0,
  Fetch: 1,
  ListOffsets: 2,
  Metadata: 3,
  OffsetCommit: 8,
  OffsetFetch: 9,
  FindCoordinator: 10,
  JoinGroup: 11,
  Heartbeat: 12,
  LeaveGroup: 13,
  SyncGroup: 14,
  DescribeGroups: 15,
  ListGroups: 16,
  SaslHandshake: 17,
  ApiVersions: 18,
  CreateTopics: 19,
  DeleteTopics: 20,
  DeleteRecords: 21,
  InitProducerId: 22,
  DescribeConfigs: 32,
  AlterConfigs: 33,
  SaslAuthenticate: 36,
  CreatePartitions: 37,
  DeleteGroups: 42,
  IncrementalAlterConfigs: 44,
  DescribeCluster: 60,
} as const;
export type ApiKeyName = keyof typeof ApiKey;
export type ApiKeyValue = (typeof ApiKey)[ApiKeyName];

const NONE = Number.POSITIVE_INFINITY;
const nstr = nullableString(0);
const int32s = array(int32);
const strings = array(string);

// ---- Produce (0), v3–7; v0–2 carry magic 0/1 message sets and are refused (§1.3) -----------
const ProduceRequest = struct({
  transactionalId: nstr,
  acks: int16,
  timeoutMs: int32,
  topics: array(
    struct({
      name: string,
      partitions: array(struct({ index: int32, records })),
    }),
  ),
});
const ProduceResponse = struct({
  responses: array(
    struct({
      name: string,
      partitions: array(
        struct({
          index: int32,
          errorCode: int16,
          baseOffset: int64,
          logAppendTimeMs: int64,
          logStartOffset: since(5, int64, -1),
        }),
      ),
    }),
  ),
  throttleTimeMs: int32,
});

// ---- Fetch (1), v4–11 ------------------------------------------------------------------------
const FetchRequest = struct({
  replicaId: int32,
  maxWaitMs: int32,
  minBytes: int32,
  maxBytes: int32,
  isolationLevel: int8,
  sessionId: since(7, int32, 0),
  sessionEpoch: since(7, int32, -1),
  topics: array(
    struct({
      topic: string,
      partitions: array(
        struct({
          partition: int32,
          currentLeaderEpoch: since(9, int32, -1),
          fetchOffset: int64,
          logStartOffset: since(5, int64, -1),
          partitionMaxBytes: int32,
        }),
      ),
    }),
  ),
  forgottenTopicsData: since(7, array(struct({ topic: string, partitions: int32s })), []),
  rackId: since(11, string, ''),
});
const FetchResponse = struct({
  throttleTimeMs: int32,
  errorCode: since(7, int16, 0),
  sessionId: since(7, int32, 0),
  responses: array(
    struct({
      topic: string,
      partitions: array(
        struct({
          partitionIndex: int32,
          errorCode: int16,
          highWatermark: int64,
          lastStableOffset: int64,
          logStartOffset: since(5, int64, -1),
          abortedTransactions: nullableArray(struct({ producerId: int64, firstOffset: int64 })),
          preferredReadReplica: since(11, int32, -1),
          records,
        }),
      ),
    }),
  ),
});

// ---- ListOffsets (2), v1–3 -----------------------------------------------------------------
const ListOffsetsRequest = struct({
  replicaId: int32,
  isolationLevel: since(2, int8, 0),
  topics: array(
    struct({
      name: string,
      partitions: array(struct({ partitionIndex: int32, timestamp: int64 })),
    }),
  ),
});
const ListOffsetsResponse = struct({
  throttleTimeMs: since(2, int32, 0),
  topics: array(
    struct({
      name: string,
      partitions: array(
        struct({ partitionIndex: int32, errorCode: int16, timestamp: int64, offset: int64 }),
      ),
    }),
  ),
});

// ---- Metadata (3), v1–4 --------------------------------------------------------------------
const MetadataRequest = struct({
  topics: nullableArray(struct({ name: string }), 1),
  allowAutoTopicCreation: since(4, bool, true),
});
const MetadataResponse = struct({
  throttleTimeMs: since(3, int32, 0),
  brokers: array(struct({ nodeId: int32, host: string, port: int32, rack: nstr })),
  clusterId: since(2, nstr, null),
  controllerId: int32,
  topics: array(
    struct({
      errorCode: int16,
      name: string,
      isInternal: bool,
      partitions: array(
        struct({
          errorCode: int16,
          partitionIndex: int32,
          leaderId: int32,
          replicaNodes: int32s,
          isrNodes: int32s,
        }),
      ),
    }),
  ),
});

// ---- OffsetCommit (8), v2–5; OffsetFetch (9), v1–4 -------------------------------------------
const OffsetCommitRequest = struct({
  groupId: string,
  generationId: int32,
  memberId: string,
  retentionTimeMs: versions(2, 4, int64, -1),
  topics: array(
    struct({
      name: string,
      partitions: array(
        struct({ partitionIndex: int32, committedOffset: int64, committedMetadata: nstr }),
      ),
    }),
  ),
});
const OffsetCommitResponse = struct({
  throttleTimeMs: since(3, int32, 0),
  topics: array(
    struct({
      name: string,
      partitions: array(struct({ partitionIndex: int32, errorCode: int16 })),
    }),
  ),
});
const OffsetFetchRequest = struct({
  groupId: string,
  topics: nullableArray(struct({ name: string, partitionIndexes: int32s }), 2),
});
const OffsetFetchResponse = struct({
  throttleTimeMs: since(3, int32, 0),
  topics: array(
    struct({
      name: string,
      partitions: array(
        struct({
          partitionIndex: int32,
          committedOffset: int64,
          metadata: nstr,
          errorCode: int16,
        }),
      ),
    }),
  ),
  errorCode: since(2, int16, 0),
});

// ---- FindCoordinator (10), v0–2 --------------------------------------------------------------
const FindCoordinatorRequest = struct({ key: string, keyType: since(1, int8, 0) });
const FindCoordinatorResponse = struct({
  throttleTimeMs: since(1, int32, 0),
  errorCode: int16,
  errorMessage: since(1, nstr, null),
  nodeId: int32,
  host: string,
  port: int32,
});

// ---- Group membership: JoinGroup (11) v0–5, Heartbeat (12) v0–3, LeaveGroup (13) v0–1,
// SyncGroup (14) v0–3 ---------------------------------------------------------------------------
const JoinGroupRequest = struct({
  groupId: string,
  sessionTimeoutMs: int32,
  rebalanceTimeoutMs: since(1, int32, -1),
  memberId: string,
  groupInstanceId: since(5, nstr, null),
  protocolType: string,
  protocols: array(struct({ name: string, metadata: bytes })),
});
const JoinGroupResponse = struct({
  throttleTimeMs: since(2, int32, 0),
  errorCode: int16,
  generationId: int32,
  protocolName: string,
  leader: string,
  memberId: string,
  members: array(
    struct({ memberId: string, groupInstanceId: since(5, nstr, null), metadata: bytes }),
  ),
});
const HeartbeatRequest = struct({
  groupId: string,
  generationId: int32,
  memberId: string,
  groupInstanceId: since(3, nstr, null),
});
const ThrottleAndError = struct({ throttleTimeMs: since(1, int32, 0), errorCode: int16 });
const LeaveGroupRequest = struct({ groupId: string, memberId: string });
const SyncGroupRequest = struct({
  groupId: string,
  generationId: int32,
  memberId: string,
  groupInstanceId: since(3, nstr, null),
  assignments: array(struct({ memberId: string, assignment: bytes })),
});
const SyncGroupResponse = struct({
  throttleTimeMs: since(1, int32, 0),
  errorCode: int16,
  assignment: bytes,
});

// ---- DescribeGroups (15) v0–2, ListGroups (16) v0–2 --------------------------------------------
const DescribeGroupsRequest = struct({ groups: strings });
const DescribeGroupsResponse = struct({
  throttleTimeMs: since(1, int32, 0),
  groups: array(
    struct({
      errorCode: int16,
      groupId: string,
      groupState: string,
      protocolType: string,
      protocolData: string,
      members: array(
        struct({
          memberId: string,
          clientId: string,
          clientHost: string,
          memberMetadata: bytes,
          memberAssignment: bytes,
        }),
      ),
    }),
  ),
});
const ListGroupsRequest = struct({});
const ListGroupsResponse = struct({
  throttleTimeMs: since(1, int32, 0),
  errorCode: int16,
  groups: array(struct({ groupId: string, protocolType: string })),
});

// ---- SASL: SaslHandshake (17) v0–1, SaslAuthenticate (36) v0–1 -------------------------------
const SaslHandshakeRequest = struct({ mechanism: string });
const SaslHandshakeResponse = struct({ errorCode: int16, mechanisms: strings });
const SaslAuthenticateRequest = struct({ authBytes: bytes });
const SaslAuthenticateResponse = struct({
  errorCode: int16,
  errorMessage: nstr,
  authBytes: bytes,
  sessionLifetimeMs: since(1, int64, 0),
});

// ---- ApiVersions (18), v0–3; v3 is flexible (§3.3) -----------------------------------------
const ApiVersionsRequest = struct({
  clientSoftwareName: since(3, string, ''),
  clientSoftwareVersion: since(3, string, ''),
});
const ApiVersionsResponse = struct({
  errorCode: int16,
  apiKeys: array(struct({ apiKey: int16, minVersion: int16, maxVersion: int16 })),
  throttleTimeMs: since(1, int32, 0),
});

// ---- CreateTopics (19) v2–4, DeleteTopics (20) v0–1, DeleteRecords (21) v0–1 ------------------
const CreateTopicsRequest = struct({
  topics: array(
    struct({
      name: string,
      numPartitions: int32,
      replicationFactor: int16,
      assignments: array(struct({ partitionIndex: int32, brokerIds: int32s })),
      configs: array(struct({ name: string, value: nstr })),
    }),
  ),
  timeoutMs: int32,
  validateOnly: since(1, bool, false),
});
const CreateTopicsResponse = struct({
  throttleTimeMs: since(2, int32, 0),
  topics: array(struct({ name: string, errorCode: int16, errorMessage: since(1, nstr, null) })),
});
const DeleteTopicsRequest = struct({ topicNames: strings, timeoutMs: int32 });
const DeleteTopicsResponse = struct({
  throttleTimeMs: since(1, int32, 0),
  responses: array(struct({ name: string, errorCode: int16 })),
});
const DeleteRecordsRequest = struct({
  topics: array(
    struct({ name: string, partitions: array(struct({ partitionIndex: int32, offset: int64 })) }),
  ),
  timeoutMs: int32,
});
const DeleteRecordsResponse = struct({
  throttleTimeMs: int32,
  topics: array(
    struct({
      name: string,
      partitions: array(struct({ partitionIndex: int32, lowWatermark: int64, errorCode: int16 })),
    }),
  ),
});

// ---- InitProducerId (22), v0–1 ---------------------------------------------------------------
const InitProducerIdRequest = struct({ transactionalId: nstr, transactionTimeoutMs: int32 });
const InitProducerIdResponse = struct({
  throttleTimeMs: int32,
  errorCode: int16,
  producerId: int64,
  producerEpoch: int16,
});

// ---- Configs: DescribeConfigs (32) v0–2, AlterConfigs (33) v0–1,
// IncrementalAlterConfigs (44) v0–1 (v1 flexible) ---------------------------------------------
const DescribeConfigsRequest = struct({
  resources: array(
    struct({
      resourceType: int8,
      resourceName: string,
      configurationKeys: nullableArray(string),
    }),
  ),
  includeSynonyms: since(1, bool, false),
});
const DescribeConfigsResponse = struct({
  throttleTimeMs: int32,
  results: array(
    struct({
      errorCode: int16,
      errorMessage: nstr,
      resourceType: int8,
      resourceName: string,
      configs: array(
        struct({
          name: string,
          value: nstr,
          readOnly: bool,
          isDefault: versions(0, 0, bool, false),
          configSource: since(1, int8, -1),
          isSensitive: bool,
          synonyms: since(1, array(struct({ name: string, value: nstr, source: int8 })), []),
        }),
      ),
    }),
  ),
});
const AlterConfigsRequest = struct({
  resources: array(
    struct({
      resourceType: int8,
      resourceName: string,
      configs: array(struct({ name: string, value: nstr })),
    }),
  ),
  validateOnly: bool,
});
const AlterConfigsResponse = struct({
  throttleTimeMs: int32,
  responses: array(
    struct({ errorCode: int16, errorMessage: nstr, resourceType: int8, resourceName: string }),
  ),
});
const IncrementalAlterConfigsRequest = struct({
  resources: array(
    struct({
      resourceType: int8,
      resourceName: string,
      configs: array(struct({ name: string, configOperation: int8, value: nstr })),
    }),
  ),
  validateOnly: bool,
});

// ---- CreatePartitions (37) v0–3 (v2+ flexible; v3 = v2), DeleteGroups (42) v0–1 ----------------
const CreatePartitionsRequest = struct({
  topics: array(
    struct({
      name: string,
      count: int32,
      assignments: nullableArray(struct({ brokerIds: int32s })),
    }),
  ),
  timeoutMs: int32,
  validateOnly: bool,
});
const CreatePartitionsResponse = struct({
  throttleTimeMs: int32,
  results: array(struct({ name: string, errorCode: int16, errorMessage: nstr })),
});
const DeleteGroupsRequest = struct({ groupsNames: strings });
const DeleteGroupsResponse = struct({
  throttleTimeMs: int32,
  results: array(struct({ groupId: string, errorCode: int16 })),
});

// ---- DescribeCluster (60), v0 (flexible from v0) ----------------------------------------------
const DescribeClusterRequest = struct({ includeClusterAuthorizedOperations: bool });
const DescribeClusterResponse = struct({
  throttleTimeMs: int32,
  errorCode: int16,
  errorMessage: nstr,
  clusterId: string,
  controllerId: int32,
  brokers: array(struct({ brokerId: int32, host: string, port: int32, rack: nstr })),
  clusterAuthorizedOperations: int32,
});

export interface ApiSchema<Req, Res> {
  readonly key: number;
  readonly name: ApiKeyName;
  readonly codecMin: number;
  readonly codecMax: number;
  readonly flexibleFrom: number;
  readonly request: Type<Req>;
  readonly response: Type<Res>;
}

function api<Req, Res>(
  name: ApiKeyName,
  codecMin: number,
  codecMax: number,
  flexibleFrom: number,
  request: Type<Req>,
  response: Type<Res>,
): ApiSchema<Req, Res> {
  return { key: ApiKey[name], name, codecMin, codecMax, flexibleFrom, request, response };
}

type Req<T> = T extends Type<infer V> ? V : never;

export type ProduceRequest = Req<typeof ProduceRequest>;
export type ProduceResponse = Req<typeof ProduceResponse>;
export type FetchRequest = Req<typeof FetchRequest>;
export type FetchResponse = Req<typeof FetchResponse>;
export type ListOffsetsRequest = Req<typeof ListOffsetsRequest>;
export type ListOffsetsResponse = Req<typeof ListOffsetsResponse>;
export type MetadataRequest = Req<typeof MetadataRequest>;
export type MetadataResponse = Req<typeof MetadataResponse>;
export type OffsetCommitRequest = Req<typeof OffsetCommitRequest>;
export type OffsetCommitResponse = Req<typeof OffsetCommitResponse>;
export type OffsetFetchRequest = Req<typeof OffsetFetchRequest>;
export type OffsetFetchResponse = Req<typeof OffsetFetchResponse>;
export type FindCoordinatorRequest = Req<typeof FindCoordinatorRequest>;
export type FindCoordinatorResponse = Req<typeof FindCoordinatorResponse>;
export type JoinGroupRequest = Req<typeof JoinGroupRequest>;
export type JoinGroupResponse = Req<typeof JoinGroupResponse>;
export type HeartbeatRequest = Req<typeof HeartbeatRequest>;
export type HeartbeatResponse = Req<typeof ThrottleAndError>;
export type LeaveGroupRequest = Req<typeof LeaveGroupRequest>;
export type LeaveGroupResponse = Req<typeof ThrottleAndError>;
export type SyncGroupRequest = Req<typeof SyncGroupRequest>;
export type SyncGroupResponse = Req<typeof SyncGroupResponse>;
export type DescribeGroupsRequest = Req<typeof DescribeGroupsRequest>;
export type DescribeGroupsResponse = Req<typeof DescribeGroupsResponse>;
export type ListGroupsRequest = Req<typeof ListGroupsRequest>;
export type ListGroupsResponse = Req<typeof ListGroupsResponse>;
export type SaslHandshakeRequest = Req<typeof SaslHandshakeRequest>;
export type SaslHandshakeResponse = Req<typeof SaslHandshakeResponse>;
export type SaslAuthenticateRequest = Req<typeof SaslAuthenticateRequest>;
export type SaslAuthenticateResponse = Req<typeof SaslAuthenticateResponse>;
export type ApiVersionsRequest = Req<typeof ApiVersionsRequest>;
export type ApiVersionsResponse = Req<typeof ApiVersionsResponse>;
export type CreateTopicsRequest = Req<typeof CreateTopicsRequest>;
export type CreateTopicsResponse = Req<typeof CreateTopicsResponse>;
export type DeleteTopicsRequest = Req<typeof DeleteTopicsRequest>;
export type DeleteTopicsResponse = Req<typeof DeleteTopicsResponse>;
export type DeleteRecordsRequest = Req<typeof DeleteRecordsRequest>;
export type DeleteRecordsResponse = Req<typeof DeleteRecordsResponse>;
export type InitProducerIdRequest = Req<typeof InitProducerIdRequest>;
export type InitProducerIdResponse = Req<typeof InitProducerIdResponse>;
export type DescribeConfigsRequest = Req<typeof DescribeConfigsRequest>;
export type DescribeConfigsResponse = Req<typeof DescribeConfigsResponse>;
export type AlterConfigsRequest = Req<typeof AlterConfigsRequest>;
export type AlterConfigsResponse = Req<typeof AlterConfigsResponse>;
export type IncrementalAlterConfigsRequest = Req<typeof IncrementalAlterConfigsRequest>;
export type IncrementalAlterConfigsResponse = Req<typeof AlterConfigsResponse>;
export type CreatePartitionsRequest = Req<typeof CreatePartitionsRequest>;
export type CreatePartitionsResponse = Req<typeof CreatePartitionsResponse>;
export type DeleteGroupsRequest = Req<typeof DeleteGroupsRequest>;
export type DeleteGroupsResponse = Req<typeof DeleteGroupsResponse>;
export type DescribeClusterRequest = Req<typeof DescribeClusterRequest>;
export type DescribeClusterResponse = Req<typeof DescribeClusterResponse>;

/** Every API the codec covers, by name. */
export const Apis = {
  Produce: api('Produce', 3, 7, NONE, ProduceRequest, ProduceResponse),
  Fetch: api('Fetch', 4, 11, NONE, FetchRequest, FetchResponse),
  ListOffsets: api('ListOffsets', 1, 3, NONE, ListOffsetsRequest, ListOffsetsResponse),
  Metadata: api('Metadata', 1, 4, NONE, MetadataRequest, MetadataResponse),
  OffsetCommit: api('OffsetCommit', 2, 5, NONE, OffsetCommitRequest, OffsetCommitResponse),
  OffsetFetch: api('OffsetFetch', 1, 4, NONE, OffsetFetchRequest, OffsetFetchResponse),
  FindCoordinator: api(
    'FindCoordinator',
    0,
    2,
    NONE,
    FindCoordinatorRequest,
    FindCoordinatorResponse,
  ),
  JoinGroup: api('JoinGroup', 0, 5, NONE, JoinGroupRequest, JoinGroupResponse),
  Heartbeat: api('Heartbeat', 0, 3, NONE, HeartbeatRequest, ThrottleAndError),
  LeaveGroup: api('LeaveGroup', 0, 1, NONE, LeaveGroupRequest, ThrottleAndError),
  SyncGroup: api('SyncGroup', 0, 3, NONE, SyncGroupRequest, SyncGroupResponse),
  DescribeGroups: api('DescribeGroups', 0, 2, NONE, DescribeGroupsRequest, DescribeGroupsResponse),
  ListGroups: api('ListGroups', 0, 2, NONE, ListGroupsRequest, ListGroupsResponse),
  SaslHandshake: api('SaslHandshake', 0, 1, NONE, SaslHandshakeRequest, SaslHandshakeResponse),
  ApiVersions: api('ApiVersions', 0, 3, 3, ApiVersionsRequest, ApiVersionsResponse),
  CreateTopics: api('CreateTopics', 2, 4, NONE, CreateTopicsRequest, CreateTopicsResponse),
  DeleteTopics: api('DeleteTopics', 0, 1, NONE, DeleteTopicsRequest, DeleteTopicsResponse),
  DeleteRecords: api('DeleteRecords', 0, 1, NONE, DeleteRecordsRequest, DeleteRecordsResponse),
  InitProducerId: api('InitProducerId', 0, 1, NONE, InitProducerIdRequest, InitProducerIdResponse),
  DescribeConfigs: api(
    'DescribeConfigs',
    0,
    2,
    NONE,
    DescribeConfigsRequest,
    DescribeConfigsResponse,
  ),
  AlterConfigs: api('AlterConfigs', 0, 1, NONE, AlterConfigsRequest, AlterConfigsResponse),
  SaslAuthenticate: api(
    'SaslAuthenticate',
    0,
    1,
    NONE,
    SaslAuthenticateRequest,
    SaslAuthenticateResponse,
  ),
  CreatePartitions: api(
    'CreatePartitions',
    0,
    3,
    2,
    CreatePartitionsRequest,
    CreatePartitionsResponse,
  ),
  DeleteGroups: api('DeleteGroups', 0, 1, NONE, DeleteGroupsRequest, DeleteGroupsResponse),
  IncrementalAlterConfigs: api(
    'IncrementalAlterConfigs',
    0,
    1,
    1,
    IncrementalAlterConfigsRequest,
    AlterConfigsResponse,
  ),
  DescribeCluster: api('DescribeCluster', 0, 0, 0, DescribeClusterRequest, DescribeClusterResponse),
} as const;

export type Apis = typeof Apis;
/** The request body type of an API, by name. */
export type RequestOf<N extends ApiKeyName> = Req<Apis[N]['request']>;
/** The response body type of an API, by name. */
export type ResponseOf<N extends ApiKeyName> = Req<Apis[N]['response']>;

// biome-ignore lint/suspicious/noExplicitAny: the table holds every API's own types
const BY_KEY: ReadonlyMap<number, ApiSchema<any, any>> = new Map(
  Object.values(Apis).map((a) => [a.key, a]),
);

// biome-ignore lint/suspicious/noExplicitAny: callers narrow by name
export function apiSchema(key: number): ApiSchema<any, any> | undefined {
  return BY_KEY.get(key);
}

/** Whether (key, version) uses the flexible encoding (KIP-482). */
export function isFlexible(key: number, version: number): boolean {
  const a = BY_KEY.get(key);
  return a !== undefined && version >= a.flexibleFrom;
}

export type { StructOf };
