// The ReassignPartition and DescribeReplica APIs (issue 12, `streambus partition reassign` and
// `partition describe`), DecommissionBroker (`cluster decommission ID`) and the dynamic broker
// settings (Describe/AlterBrokerConfig, `config describe|set|unset`): any broker forwards a reassignment to the controller
// (controller/reassignment.ts has the flow); DescribeReplica answers for this broker's own replica.
import type {
  AlterBrokerConfigRequest,
  AlterBrokerConfigResponse,
  AlterControllerVotersRequest,
  AlterControllerVotersResponse,
  CancelReassignmentRequest,
  CancelReassignmentResponse,
  DecommissionBrokerRequest,
  DecommissionBrokerResponse,
  DescribeBrokerConfigResponse,
  DescribeReplicaRequest,
  DescribeReplicaResponse,
  ReassignPartitionRequest,
  ReassignPartitionResponse,
} from '@streambus/protocol';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { topicByName } from '../controller/metadata-state.js';
import type { BrokerContext } from '../handlers/context.js';

export async function reassignPartition(
  b: BrokerContext,
  req: ReassignPartitionRequest,
): Promise<ReassignPartitionResponse> {
  await b.cluster.reassignPartition(req.topic, req.partition, req.replicas);
  return { errorCode: 0 };
}

export async function describeReplica(
  b: BrokerContext,
  req: DescribeReplicaRequest,
): Promise<DescribeReplicaResponse> {
  const ps = topicByName(b.cluster.state, req.topic)?.partitions[req.partition];
  const local = b.cluster.describeReplica(req.topic, req.partition);
  return {
    errorCode: 0,
    nodeId: b.config.nodeId,
    role: local?.role ?? 'none',
    logEndOffset: local?.logEndOffset ?? 0,
    highWatermark: local?.highWatermark ?? 0,
    leaderId: local?.leaderId ?? -1,
    leaderEpoch: local?.leaderEpoch ?? 0,
    voters: local?.voters ?? [],
    learners: local?.learners ?? [],
    replicas: ps === undefined ? [] : [...ps.replicas],
    target: ps?.reassignment === undefined ? null : [...ps.reassignment.target],
  };
}

/** The longest a DecommissionBroker request waits for the moves (its timeoutMs, capped). */
export const DECOMMISSION_WAIT_MS_MAX = 600_000;

export async function decommissionBroker(
  b: BrokerContext,
  req: DecommissionBrokerRequest,
): Promise<DecommissionBrokerResponse> {
  const r = await b.cluster.decommissionBroker(
    req.brokerId,
    Math.min(req.timeoutMs, DECOMMISSION_WAIT_MS_MAX),
  );
  return { errorCode: 0, partitionsMoved: r.moved };
}

export function describeBrokerConfig(b: BrokerContext): DescribeBrokerConfigResponse {
  return {
    errorCode: 0,
    nodeId: b.config.nodeId,
    entries: b.cluster
      .brokerConfig()
      .map((e) => ({ key: e.key, value: String(e.value), source: e.source })),
  };
}

export async function alterBrokerConfig(
  b: BrokerContext,
  req: AlterBrokerConfigRequest,
): Promise<AlterBrokerConfigResponse> {
  await b.cluster.alterBrokerConfig(req.brokerId, req.configs);
  return { errorCode: 0 };
}

/** The longest an AlterControllerVoters request waits for the group's voters (its timeoutMs, capped). */
export const VOTERS_WAIT_MS_MAX = 600_000;

/** AlterControllerVoters (`cluster voters [add|remove ID]`): op 0 describes, 1 adds, 2 removes. */
export async function alterControllerVoters(
  b: BrokerContext,
  req: AlterControllerVotersRequest,
): Promise<AlterControllerVotersResponse> {
  const op = req.op === 1 ? 'add' : req.op === 2 ? 'remove' : null;
  if (op !== null && req.brokerId < 1) {
    throw new StreamBusError(
      ErrorCode.INVALID_REQUEST,
      `broker id ${req.brokerId} is not a node id (1 or more)`,
    );
  }
  const conf = await b.cluster.alterControllerVoters(
    op,
    req.brokerId,
    Math.min(req.timeoutMs, VOTERS_WAIT_MS_MAX),
  );
  return { errorCode: 0, ...conf };
}

/** CancelReassignment (`partition reassign T P --cancel`). */
export async function cancelReassignment(
  b: BrokerContext,
  req: CancelReassignmentRequest,
): Promise<CancelReassignmentResponse> {
  const replicas = await b.cluster.cancelReassignment(req.topic, req.partition);
  return { errorCode: 0, replicas };
}
