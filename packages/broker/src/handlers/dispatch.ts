// The one dispatch table: API key -> handler. A handler decodes its request (a malformed body
// throws, and connection.ts answers it with an ERROR frame), runs the API family's function and
// encodes the answer. Adding an API is one entry here and one function in its family's file.
import {
  ApiKey,
  type ApiKeyValue,
  checkApiVersion,
  decodeRequest,
  ErrorCode,
  encodeResponse,
  type Frame,
  FrameFlag,
  type RequestOf,
  type ResponseOf,
  StreamBusError,
} from '@streambus/protocol';
import type { RequestContext, Response } from '../connection.js';
import {
  alterBrokerConfig,
  alterControllerVoters,
  cancelReassignment,
  decommissionBroker,
  describeBrokerConfig,
  describeReplica,
  reassignPartition,
} from '../ops/reassign-partition.js';
import { rebalanceLeaders } from '../ops/rebalance-leaders.js';
import type { BrokerContext } from './context.js';
import { fetchFrame } from './fetch.js';
import {
  deleteGroups,
  describeGroups,
  findCoordinator,
  heartbeat,
  joinGroup,
  leaveGroup,
  listGroups,
  offsetCommit,
  offsetDelete,
  offsetFetch,
  syncGroup,
} from './groups.js';
import { apiVersions, describeCluster, metadata } from './metadata.js';
import { deleteRecords, listOffsets } from './offsets.js';
import { initProducerId, produce } from './produce.js';
import { repairPartition } from './repair.js';
import {
  alterConfigs,
  createPartitions,
  createTopics,
  deleteTopics,
  describeConfigs,
} from './topics.js';

type Handler = (
  b: BrokerContext,
  frame: Frame,
  ctx: RequestContext,
) => Response | null | Promise<Response | null>;

/** A handler whose answer is one encoded frame (sync or async body). */
function answer<K extends ApiKeyValue>(
  key: K,
  run: (
    b: BrokerContext,
    req: RequestOf<K>,
    ctx: RequestContext,
  ) => ResponseOf<K> | Promise<ResponseOf<K>>,
): Handler {
  return (b, frame, ctx) => {
    const out = run(b, decodeRequest(key, frame), ctx);
    // The table is indexed by frame.apiKey: the frame is the header (no copy per request).
    const header = frame as Frame & { apiKey: K };
    return out instanceof Promise
      ? out.then((body) => encodeResponse(header, body))
      : encodeResponse(header, out);
  };
}

const HANDLERS: { readonly [K in ApiKeyValue]: Handler } = {
  [ApiKey.API_VERSIONS]: answer(ApiKey.API_VERSIONS, (b) => apiVersions(b)),
  [ApiKey.METADATA]: answer(ApiKey.METADATA, metadata),
  [ApiKey.CREATE_TOPICS]: answer(ApiKey.CREATE_TOPICS, createTopics),
  [ApiKey.DELETE_TOPICS]: answer(ApiKey.DELETE_TOPICS, deleteTopics),
  [ApiKey.DESCRIBE_CONFIGS]: answer(ApiKey.DESCRIBE_CONFIGS, describeConfigs),
  [ApiKey.ALTER_CONFIGS]: answer(ApiKey.ALTER_CONFIGS, alterConfigs),
  [ApiKey.PRODUCE]: (b, frame) => {
    const req = decodeRequest(ApiKey.PRODUCE, frame);
    const noResponse = (frame.flags & FrameFlag.NO_RESPONSE) !== 0;
    if (req.acks === 0 && !noResponse) {
      throw new StreamBusError(
        ErrorCode.INVALID_REQUEST,
        'produce with acks=0 must set NO_RESPONSE',
      );
    }
    const header = frame as Frame & { apiKey: typeof ApiKey.PRODUCE };
    return produce(b, req).then((body) => (noResponse ? null : encodeResponse(header, body)));
  },
  // Parts of one gathered write, the record bytes uncopied (fetch.ts `fetchFrame`).
  [ApiKey.FETCH]: fetchFrame,
  [ApiKey.LIST_OFFSETS]: answer(ApiKey.LIST_OFFSETS, listOffsets),
  [ApiKey.DELETE_RECORDS]: answer(ApiKey.DELETE_RECORDS, deleteRecords),
  [ApiKey.INIT_PRODUCER_ID]: answer(ApiKey.INIT_PRODUCER_ID, initProducerId),
  [ApiKey.REPAIR_PARTITION]: answer(ApiKey.REPAIR_PARTITION, repairPartition),
  [ApiKey.DESCRIBE_CLUSTER]: answer(ApiKey.DESCRIBE_CLUSTER, (b) => describeCluster(b)),
  [ApiKey.FIND_COORDINATOR]: answer(ApiKey.FIND_COORDINATOR, findCoordinator),
  [ApiKey.JOIN_GROUP]: answer(ApiKey.JOIN_GROUP, joinGroup),
  [ApiKey.SYNC_GROUP]: answer(ApiKey.SYNC_GROUP, syncGroup),
  [ApiKey.HEARTBEAT]: answer(ApiKey.HEARTBEAT, heartbeat),
  [ApiKey.LEAVE_GROUP]: answer(ApiKey.LEAVE_GROUP, leaveGroup),
  [ApiKey.OFFSET_COMMIT]: answer(ApiKey.OFFSET_COMMIT, offsetCommit),
  [ApiKey.OFFSET_FETCH]: answer(ApiKey.OFFSET_FETCH, offsetFetch),
  [ApiKey.LIST_GROUPS]: answer(ApiKey.LIST_GROUPS, listGroups),
  [ApiKey.DESCRIBE_GROUPS]: answer(ApiKey.DESCRIBE_GROUPS, describeGroups),
  [ApiKey.DELETE_GROUPS]: answer(ApiKey.DELETE_GROUPS, deleteGroups),
  [ApiKey.OFFSET_DELETE]: answer(ApiKey.OFFSET_DELETE, offsetDelete),
  [ApiKey.REBALANCE_LEADERS]: answer(ApiKey.REBALANCE_LEADERS, rebalanceLeaders),
  [ApiKey.REASSIGN_PARTITION]: answer(ApiKey.REASSIGN_PARTITION, reassignPartition),
  [ApiKey.DESCRIBE_REPLICA]: answer(ApiKey.DESCRIBE_REPLICA, describeReplica),
  [ApiKey.DECOMMISSION_BROKER]: answer(ApiKey.DECOMMISSION_BROKER, decommissionBroker),
  [ApiKey.ALTER_CONTROLLER_VOTERS]: answer(ApiKey.ALTER_CONTROLLER_VOTERS, alterControllerVoters),
  [ApiKey.CANCEL_REASSIGNMENT]: answer(ApiKey.CANCEL_REASSIGNMENT, cancelReassignment),
  [ApiKey.DESCRIBE_BROKER_CONFIG]: answer(ApiKey.DESCRIBE_BROKER_CONFIG, (b) =>
    describeBrokerConfig(b),
  ),
  [ApiKey.ALTER_BROKER_CONFIG]: answer(ApiKey.ALTER_BROKER_CONFIG, alterBrokerConfig),
  [ApiKey.CREATE_PARTITIONS]: answer(ApiKey.CREATE_PARTITIONS, createPartitions),
};

/** The broker's request handler (connection.ts `RequestHandler`), bound to `b`. */
export function handleRequest(
  b: BrokerContext,
  frame: Frame,
  ctx: RequestContext,
): Response | null | Promise<Response | null> {
  if (b.closing()) {
    throw new StreamBusError(ErrorCode.SHUTTING_DOWN, 'broker is shutting down');
  }
  checkApiVersion(frame.apiKey, frame.apiVersion);
  return HANDLERS[frame.apiKey](b, frame, ctx);
}
