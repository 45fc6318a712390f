// The native consumer-group APIs (keys 13-23): each request becomes one or more `GroupRequest`s
// of the coordinator service (groups/coordinator.ts) and its answers become the response. A
// rejection (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, COORDINATOR_NOT_AVAILABLE,
// INVALID_GROUP_ID, ...) is the error of the entry it concerns (errors.ts `partitionError`);
// group errors of the state machine (UNKNOWN_MEMBER_ID, ILLEGAL_GENERATION, ...) come back in
// its answer. Consumer groups live on the cluster path only: a broker without it answers
// COORDINATOR_NOT_AVAILABLE for the whole request.
import {
  type DeleteGroupsRequest,
  type DeleteGroupsResponse,
  type DescribeGroupsRequest,
  type DescribeGroupsResponse,
  ErrorCode,
  type FindCoordinatorRequest,
  type FindCoordinatorResponse,
  type HeartbeatRequest,
  type HeartbeatResponse,
  type JoinGroupRequest,
  type JoinGroupResponse,
  type LeaveGroupRequest,
  type LeaveGroupResponse,
  type ListGroupsRequest,
  type ListGroupsResponse,
  type OffsetCommitRequest,
  type OffsetCommitResponse,
  type OffsetDeleteRequest,
  type OffsetDeleteResponse,
  type OffsetFetchRequest,
  type OffsetFetchResponse,
  StreamBusError,
  type SyncGroupRequest,
  type SyncGroupResponse,
} from '@streambus/protocol';
import type { ClusterNode } from '../cluster-node.js';
import type { RequestContext } from '../connection.js';
import type { GroupCoordinator } from '../groups/coordinator.js';
import { groupTicks } from '../groups/coordinator-service.js';
import { deadGroupDescription } from '../groups/group-state.js';
import type { TopicPartition } from '../groups/types.js';
import type { BrokerContext } from './context.js';
import { type PartitionError, partitionError } from './errors.js';

/** The member id prefix when a JoinGroup names no client id. */
const DEFAULT_CLIENT_ID = 'streambus';

function clusterOf(b: BrokerContext): ClusterNode {
  if (b.cluster === null) {
    throw new StreamBusError(
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
      'consumer groups need the cluster path (a broker started without it has no coordinator)',
    );
  }
  return b.cluster;
}

function groupsOf(b: BrokerContext): GroupCoordinator {
  return clusterOf(b).groups;
}

/** The protocol's bytes fields are Buffers: a view of the same memory. */
function buf(u: Uint8Array): Buffer {
  return Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** The fields naming a member of a generation, as sync, heartbeat and commit carry them. */
function memberOf(req: {
  groupId: string;
  generation: number;
  memberId: string;
  groupInstanceId: string | null;
}) {
  return {
    groupId: req.groupId,
    generation: req.generation,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
  };
}

/**
 * A JoinGroup or SyncGroup is parked until its rebalance phase ends, which may take longer than
 * requestTimeoutMs: its connection bound becomes the longest the coordinator may park it, plus
 * requestTimeoutMs for the commit of the group's records after the phase (finite either way).
 */
function parkForRebalance(b: BrokerContext, groups: GroupCoordinator, ctx?: RequestContext): void {
  ctx?.parkFor(groups.parkedRequestMsMax + b.config.limits.requestTimeoutMs);
}

function errorOf(code: number): PartitionError {
  return { errorCode: code };
}

/** One answer per group id, in order; a rejection becomes that group's error entry. */
function perGroup<T>(
  b: BrokerContext,
  groupIds: readonly string[],
  answer: (groupId: string) => Promise<T>,
  failed: (groupId: string, e: PartitionError) => T,
): Promise<T[]> {
  return Promise.all(
    groupIds.map(async (groupId) => {
      try {
        return await answer(groupId);
      } catch (err) {
        return failed(groupId, partitionError(b, err, { groupId }));
      }
    }),
  );
}

/** `[{ name, partitions }]` -> flat topic-partitions, in request order. */
function flatten<P extends { partition: number }>(
  topics: readonly { name: string; partitions: readonly P[] }[],
): (P & { topic: string })[] {
  return topics.flatMap((t) => t.partitions.map((p) => ({ ...p, topic: t.name })));
}

/** Flat results -> `[{ name, partitions }]`, topics in first-appearance order. */
function byTopic<R extends TopicPartition, O>(
  results: readonly R[],
  entry: (r: R) => O,
): { name: string; partitions: O[] }[] {
  const out = new Map<string, O[]>();
  for (const r of results) {
    let list = out.get(r.topic);
    if (list === undefined) {
      list = [];
      out.set(r.topic, list);
    }
    list.push(entry(r));
  }
  return [...out].map(([name, partitions]) => ({ name, partitions }));
}

export async function findCoordinator(
  b: BrokerContext,
  req: FindCoordinatorRequest,
): Promise<FindCoordinatorResponse> {
  const c = clusterOf(b);
  const coordinators = await perGroup(
    b,
    req.groupIds,
    async (groupId) => {
      const at = await c.groups.locate(groupId);
      const broker = c.state.brokers.get(at.nodeId);
      if (broker === undefined) {
        throw new StreamBusError(
          ErrorCode.COORDINATOR_NOT_AVAILABLE,
          `the coordinator of group ${groupId} (broker ${at.nodeId}) is not registered yet`,
        );
      }
      return { errorCode: 0, groupId, nodeId: at.nodeId, host: broker.host, port: broker.port };
    },
    (groupId, e) => ({ ...e, groupId, nodeId: -1, host: '', port: 0 }),
  );
  return { coordinators };
}

export async function joinGroup(
  b: BrokerContext,
  req: JoinGroupRequest,
  ctx?: RequestContext,
): Promise<JoinGroupResponse> {
  try {
    const groups = groupsOf(b);
    parkForRebalance(b, groups, ctx);
    const r = await groups.request({
      type: 'join',
      groupId: req.groupId,
      memberId: req.memberId === '' ? null : req.memberId,
      groupInstanceId: req.groupInstanceId,
      clientId: req.clientId ?? DEFAULT_CLIENT_ID,
      protocolType: req.protocolType,
      protocols: req.protocols,
      sessionTimeoutTicks: groupTicks(req.sessionTimeoutMs),
      rebalanceTimeoutTicks: groupTicks(req.rebalanceTimeoutMs),
      requireKnownMemberId: true,
    });
    return {
      ...errorOf(r.error),
      generation: r.generation,
      protocolType: r.protocolType,
      protocolName: r.protocolName,
      leaderId: r.leaderId,
      memberId: r.memberId,
      skipAssignment: r.skipAssignment,
      members: r.members.map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        metadata: buf(m.metadata),
      })),
    };
  } catch (err) {
    return {
      ...partitionError(b, err, { groupId: req.groupId }),
      generation: -1,
      protocolType: '',
      protocolName: '',
      leaderId: '',
      memberId: req.memberId,
      skipAssignment: false,
      members: [],
    };
  }
}

export async function syncGroup(
  b: BrokerContext,
  req: SyncGroupRequest,
  ctx?: RequestContext,
): Promise<SyncGroupResponse> {
  try {
    const groups = groupsOf(b);
    parkForRebalance(b, groups, ctx);
    const r = await groups.request({
      type: 'sync',
      ...memberOf(req),
      assignments: req.assignments,
    });
    // Kafka's check (SyncGroup v5): a member that names the protocol must name the group's.
    const mismatch =
      r.error === ErrorCode.NONE &&
      ((req.protocolType !== undefined && req.protocolType !== r.protocolType) ||
        (req.protocolName !== undefined && req.protocolName !== r.protocolName));
    return {
      ...errorOf(mismatch ? ErrorCode.INCONSISTENT_GROUP_PROTOCOL : r.error),
      protocolType: r.protocolType,
      protocolName: r.protocolName,
      assignment: mismatch ? Buffer.alloc(0) : buf(r.assignment),
    };
  } catch (err) {
    return {
      ...partitionError(b, err, { groupId: req.groupId }),
      protocolType: '',
      protocolName: '',
      assignment: Buffer.alloc(0),
    };
  }
}

export async function heartbeat(
  b: BrokerContext,
  req: HeartbeatRequest,
): Promise<HeartbeatResponse> {
  try {
    const r = await groupsOf(b).request({
      type: 'heartbeat',
      ...memberOf(req),
    });
    return errorOf(r.error);
  } catch (err) {
    return partitionError(b, err, { groupId: req.groupId });
  }
}

export async function leaveGroup(
  b: BrokerContext,
  req: LeaveGroupRequest,
): Promise<LeaveGroupResponse> {
  const groups = groupsOf(b);
  const members: LeaveGroupResponse['members'] = [];
  try {
    for (const m of req.members) {
      const r = await groups.request({
        type: 'leave',
        groupId: req.groupId,
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
      });
      members.push({
        ...errorOf(r.error),
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
      });
    }
    return { errorCode: 0, members };
  } catch (err) {
    // The coordinator's own failure is the request's: members already handled are listed.
    return { ...partitionError(b, err, { groupId: req.groupId }), members };
  }
}

export async function offsetCommit(
  b: BrokerContext,
  req: OffsetCommitRequest,
): Promise<OffsetCommitResponse> {
  const wanted = flatten(req.topics);
  try {
    const r = await groupsOf(b).request({
      type: 'commit',
      ...memberOf(req),
      offsets: wanted.map((p) => ({
        topic: p.topic,
        partition: p.partition,
        offset: p.offset,
        metadata: p.metadata ?? '',
      })),
    });
    return {
      topics: byTopic(r.partitions, (p) => ({
        ...errorOf(p.error !== ErrorCode.NONE ? p.error : r.error),
        partition: p.partition,
      })),
    };
  } catch (err) {
    const e = partitionError(b, err, { groupId: req.groupId });
    return { topics: byTopic(wanted, (p) => ({ ...e, partition: p.partition })) };
  }
}

export async function offsetFetch(
  b: BrokerContext,
  req: OffsetFetchRequest,
): Promise<OffsetFetchResponse> {
  try {
    const r = await groupsOf(b).request({
      type: 'fetch',
      groupId: req.groupId,
      partitions:
        req.topics === null
          ? null
          : flatten(req.topics).map((p) => ({ topic: p.topic, partition: p.partition })),
    });
    return {
      ...errorOf(r.error),
      topics: byTopic(r.partitions, (p) => ({
        ...errorOf(p.error),
        partition: p.partition,
        offset: p.offset,
        metadata: p.offset < 0 ? null : p.metadata,
      })),
    };
  } catch (err) {
    return { ...partitionError(b, err, { groupId: req.groupId }), topics: [] };
  }
}

export async function listGroups(
  b: BrokerContext,
  req: ListGroupsRequest,
): Promise<ListGroupsResponse> {
  try {
    const r = await groupsOf(b).listLocal();
    const states = req.statesFilter === undefined ? null : new Set(req.statesFilter);
    return {
      errorCode: 0,
      groups: r.groups
        .filter((g) => states === null || states.size === 0 || states.has(g.state))
        .map((g) => ({ groupId: g.groupId, state: g.state, protocolType: g.protocolType })),
    };
  } catch (err) {
    return { ...partitionError(b, err, {}), groups: [] };
  }
}

export async function describeGroups(
  b: BrokerContext,
  req: DescribeGroupsRequest,
): Promise<DescribeGroupsResponse> {
  const groups = groupsOf(b);
  return {
    groups: await perGroup(
      b,
      req.groupIds,
      async (groupId) => {
        const r = await groups.request({ type: 'describe', groupId });
        return {
          ...errorOf(r.error),
          ...r.group,
          members: r.group.members.map((m) => ({
            ...m,
            metadata: buf(m.metadata),
            assignment: buf(m.assignment),
          })),
        };
      },
      (groupId, e) => ({ ...e, ...deadGroupDescription(groupId), members: [] }),
    ),
  };
}

export async function deleteGroups(
  b: BrokerContext,
  req: DeleteGroupsRequest,
): Promise<DeleteGroupsResponse> {
  const groups = groupsOf(b);
  return {
    groups: await perGroup(
      b,
      req.groupIds,
      async (groupId) => {
        const r = await groups.request({ type: 'delete-group', groupId });
        return { ...errorOf(r.error), groupId };
      },
      (groupId, e) => ({ ...e, groupId }),
    ),
  };
}

export async function offsetDelete(
  b: BrokerContext,
  req: OffsetDeleteRequest,
): Promise<OffsetDeleteResponse> {
  const wanted = flatten(req.topics).map((p) => ({ topic: p.topic, partition: p.partition }));
  try {
    const r = await groupsOf(b).request({
      type: 'delete-offsets',
      groupId: req.groupId,
      partitions: wanted,
    });
    return {
      ...errorOf(r.error),
      topics: byTopic(r.partitions, (p) => ({ ...errorOf(p.error), partition: p.partition })),
    };
  } catch (err) {
    return { ...partitionError(b, err, { groupId: req.groupId }), topics: [] };
  }
}
