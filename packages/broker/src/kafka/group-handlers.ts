// The Kafka group APIs, translated into the native group handlers (handlers/groups.ts), which
// run them on the group coordinator (groups/coordinator.ts) over `__consumer_offsets`: the same
// groups, members and committed offsets for Kafka clients and native ones. What is Kafka's own:
// FindCoordinator answers the coordinator's advertised Kafka address; JoinGroup below v4 (no
// MEMBER_ID_REQUIRED round trip in those versions) rejoins at once with the id the coordinator
// gave; LeaveGroup v0-1 names one member; a committed -1/-2 (latest/earliest) is resolved.
import { ErrorCode, kafka, OffsetSpec } from '@streambus/protocol';
import type { RequestContext } from '../connection.js';
import {
  deleteGroups,
  describeGroups,
  findCoordinator,
  heartbeat,
  joinGroup,
  leaveGroup,
  listGroups,
  offsetCommit,
  offsetFetch,
  syncGroup,
} from '../handlers/groups.js';
import { listOffsets } from '../handlers/offsets.js';
import type { KafkaContext } from './handlers.js';

type Req<N extends kafka.ApiKeyName> = kafka.RequestOf<N>;
type Res<N extends kafka.ApiKeyName> = kafka.ResponseOf<N>;

const wire = kafka.kafkaErrorCode;
/** FindCoordinator key types: 0 = a group, 1 = a transactional id (no transactions here). */
const KEY_TYPE_GROUP = 0;
/** The first JoinGroup version whose clients handle MEMBER_ID_REQUIRED (KIP-394). */
const JOIN_MEMBER_ID_REQUIRED_FROM = 4;

export async function kafkaFindCoordinator(
  k: KafkaContext,
  req: Req<'FindCoordinator'>,
): Promise<Res<'FindCoordinator'>> {
  const none = (errorCode: number, errorMessage: string) => ({
    throttleTimeMs: 0,
    errorCode,
    errorMessage,
    nodeId: -1,
    host: '',
    port: -1,
  });
  if (req.keyType !== KEY_TYPE_GROUP) {
    return none(ErrorCode.COORDINATOR_NOT_AVAILABLE, 'transactions are not supported');
  }
  const r = (await findCoordinator(k.b, { groupIds: [req.key] })).coordinators[0]!;
  if (r.errorCode !== 0) return none(wire(r.errorCode), r.errorMessage ?? '');
  const at = k.addressOf(r.nodeId);
  if (at === undefined) {
    return none(
      ErrorCode.COORDINATOR_NOT_AVAILABLE,
      `the coordinator (broker ${r.nodeId}) has no Kafka listener (kafka.listen) or has not registered it yet`,
    );
  }
  return {
    throttleTimeMs: 0,
    errorCode: 0,
    errorMessage: null,
    nodeId: r.nodeId,
    host: at.host,
    port: at.port,
  };
}

export async function kafkaJoinGroup(
  k: KafkaContext,
  req: Req<'JoinGroup'>,
  version: number,
  clientId: string | null,
  ctx: RequestContext,
): Promise<Res<'JoinGroup'>> {
  // The native handler extends the request's bound (ctx.parkFor) while the join waits out
  // the rebalance, as it does for native clients.
  const join = (memberId: string) =>
    joinGroup(
      k.b,
      {
        groupId: req.groupId,
        memberId,
        groupInstanceId: req.groupInstanceId,
        protocolType: req.protocolType,
        protocols: req.protocols.map((p) => ({ name: p.name, metadata: Buffer.from(p.metadata) })),
        sessionTimeoutMs: req.sessionTimeoutMs,
        // v0 has no rebalance timeout: Kafka uses the session timeout.
        rebalanceTimeoutMs:
          req.rebalanceTimeoutMs >= 0 ? req.rebalanceTimeoutMs : req.sessionTimeoutMs,
        ...(clientId !== null && clientId !== '' ? { clientId } : {}),
      },
      ctx,
    );
  let r = await join(req.memberId);
  if (r.errorCode === ErrorCode.MEMBER_ID_REQUIRED && version < JOIN_MEMBER_ID_REQUIRED_FROM) {
    r = await join(r.memberId);
  }
  return {
    throttleTimeMs: 0,
    errorCode: wire(r.errorCode),
    generationId: r.generation,
    protocolName: r.protocolName,
    leader: r.leaderId,
    memberId: r.memberId,
    members: r.members.map((m) => ({
      memberId: m.memberId,
      groupInstanceId: m.groupInstanceId,
      metadata: m.metadata,
    })),
  };
}

/** The member a SyncGroup or Heartbeat speaks for, in the native requests' terms. */
function memberOf(req: {
  groupId: string;
  generationId: number;
  memberId: string;
  groupInstanceId: string | null;
}) {
  return {
    groupId: req.groupId,
    generation: req.generationId,
    memberId: req.memberId,
    groupInstanceId: req.groupInstanceId,
  };
}

export async function kafkaSyncGroup(
  k: KafkaContext,
  req: Req<'SyncGroup'>,
  ctx: RequestContext,
): Promise<Res<'SyncGroup'>> {
  const r = await syncGroup(
    k.b,
    {
      ...memberOf(req),
      assignments: req.assignments.map((a) => ({
        memberId: a.memberId,
        assignment: Buffer.from(a.assignment),
      })),
    },
    ctx,
  );
  return { throttleTimeMs: 0, errorCode: wire(r.errorCode), assignment: r.assignment };
}

export async function kafkaHeartbeat(
  k: KafkaContext,
  req: Req<'Heartbeat'>,
): Promise<Res<'Heartbeat'>> {
  const r = await heartbeat(k.b, memberOf(req));
  return { throttleTimeMs: 0, errorCode: wire(r.errorCode) };
}

export async function kafkaLeaveGroup(
  k: KafkaContext,
  req: Req<'LeaveGroup'>,
): Promise<Res<'LeaveGroup'>> {
  const r = await leaveGroup(k.b, {
    groupId: req.groupId,
    members: [{ memberId: req.memberId, groupInstanceId: null }],
  });
  const member = r.members[0]?.errorCode ?? 0;
  return { throttleTimeMs: 0, errorCode: wire(r.errorCode !== 0 ? r.errorCode : member) };
}

/**
 * Kafka stores a committed -2 (earliest) or -1 (latest) as is, and kafkajs' resetOffsets commits
 * them; the coordinator keeps real offsets only, so they are resolved to the partition's log
 * start or high watermark now (ListOffsets), the offset a consumer would start from.
 */
async function resolveSpecialOffsets(
  k: KafkaContext,
  topics: Req<'OffsetCommit'>['topics'],
): Promise<Map<string, number>> {
  const special = topics
    .map((t) => ({
      name: t.name,
      partitions: t.partitions
        .filter(
          (p) =>
            p.committedOffset === OffsetSpec.EARLIEST || p.committedOffset === OffsetSpec.LATEST,
        )
        .map((p) => ({ partition: p.partitionIndex, timestamp: p.committedOffset })),
    }))
    .filter((t) => t.partitions.length > 0);
  const out = new Map<string, number>();
  if (special.length === 0) return out;
  for (const t of (await listOffsets(k.b, { topics: special })).topics) {
    for (const p of t.partitions)
      if (p.errorCode === 0) out.set(`${t.name}\0${p.partition}`, p.offset);
  }
  return out;
}

export async function kafkaOffsetCommit(
  k: KafkaContext,
  req: Req<'OffsetCommit'>,
): Promise<Res<'OffsetCommit'>> {
  const resolved = await resolveSpecialOffsets(k, req.topics);
  const r = await offsetCommit(k.b, {
    groupId: req.groupId,
    generation: req.generationId,
    memberId: req.memberId,
    groupInstanceId: null,
    topics: req.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partition: p.partitionIndex,
        offset: resolved.get(`${t.name}\0${p.partitionIndex}`) ?? p.committedOffset,
        metadata: p.committedMetadata,
      })),
    })),
  });
  return {
    throttleTimeMs: 0,
    topics: r.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partition,
        errorCode: wire(p.errorCode),
      })),
    })),
  };
}

export async function kafkaOffsetFetch(
  k: KafkaContext,
  req: Req<'OffsetFetch'>,
): Promise<Res<'OffsetFetch'>> {
  const r = await offsetFetch(k.b, {
    groupId: req.groupId,
    topics:
      req.topics === null
        ? null
        : req.topics.map((t) => ({
            name: t.name,
            partitions: t.partitionIndexes.map((partition) => ({ partition })),
          })),
  });
  return {
    throttleTimeMs: 0,
    topics: r.topics.map((t) => ({
      name: t.name,
      partitions: t.partitions.map((p) => ({
        partitionIndex: p.partition,
        committedOffset: p.offset,
        metadata: p.metadata ?? '',
        errorCode: wire(p.errorCode),
      })),
    })),
    errorCode: wire(r.errorCode),
  };
}

export async function kafkaListGroups(k: KafkaContext): Promise<Res<'ListGroups'>> {
  const r = await listGroups(k.b, {});
  return {
    throttleTimeMs: 0,
    errorCode: wire(r.errorCode),
    groups: r.groups.map((g) => ({ groupId: g.groupId, protocolType: g.protocolType })),
  };
}

export async function kafkaDescribeGroups(
  k: KafkaContext,
  req: Req<'DescribeGroups'>,
): Promise<Res<'DescribeGroups'>> {
  const r = await describeGroups(k.b, { groupIds: req.groups });
  return {
    throttleTimeMs: 0,
    groups: r.groups.map((g) => ({
      errorCode: wire(g.errorCode),
      groupId: g.groupId,
      groupState: g.state,
      protocolType: g.protocolType,
      protocolData: g.protocolName,
      members: g.members.map((m) => ({
        memberId: m.memberId,
        clientId: m.clientId,
        clientHost: '',
        memberMetadata: m.metadata,
        memberAssignment: m.assignment,
      })),
    })),
  };
}

export async function kafkaDeleteGroups(
  k: KafkaContext,
  req: Req<'DeleteGroups'>,
): Promise<Res<'DeleteGroups'>> {
  const r = await deleteGroups(k.b, { groupIds: req.groupsNames });
  return {
    throttleTimeMs: 0,
    results: r.groups.map((g) => ({ groupId: g.groupId, errorCode: wire(g.errorCode) })),
  };
}
