// The admin's consumer-group calls (Admin delegates here): list the groups of every broker,
// describe a group (members with their assignments, committed offsets, log ends and lag), reset
// a group's offsets (earliest, latest, an offset, a timestamp; dry run), delete a group, delete
// committed offsets. Each coordinator request goes through the one retry layer
// (coordinator.ts); a group-level error in an answer becomes a StreamBusError after it.
import {
  ApiKey,
  decodeAssignment,
  ErrorCode,
  StreamBusError,
  type TopicPartition,
} from '@streambus/protocol';
import type { OffsetQuery } from './admin.js';
import type { ClientContext } from './context.js';
import { coordinatorRequest } from './coordinator.js';
import { checkOptionNames, OptionNames } from './options.js';

export interface GroupListing {
  readonly groupId: string;
  /** Empty, PreparingRebalance, CompletingRebalance or Stable. */
  readonly state: string;
  readonly protocolType: string;
  /** The broker that answered for it: its coordinator. */
  readonly coordinatorId: number;
}

export interface GroupMemberDescription {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  /** Decoded from the consumer-protocol assignment ([] when not a consumer group's bytes). */
  readonly assignment: readonly TopicPartition[];
}

export interface GroupOffsetDescription {
  readonly topic: string;
  readonly partition: number;
  /** -1 when nothing is committed. */
  readonly committedOffset: number;
  /** The partition's log end (next offset); -1 when it could not be read (topic gone). */
  readonly logEnd: number;
  /** logEnd - committed (the whole log when nothing is committed); null when unknown. */
  readonly lag: number | null;
  /** The member that owns the partition now, or null. */
  readonly memberId: string | null;
}

export interface GroupDescription {
  readonly groupId: string;
  /** Dead for a group that does not exist. */
  readonly state: string;
  readonly protocolType: string;
  /** The assignor chosen ('' outside a generation). */
  readonly protocol: string;
  readonly generation: number;
  readonly leaderId: string;
  readonly members: readonly GroupMemberDescription[];
  /** Per partition with a committed offset or an owner, sorted. */
  readonly offsets: readonly GroupOffsetDescription[];
}

export type ResetTarget =
  | 'earliest'
  | 'latest'
  | { readonly offset: number }
  | { readonly timestamp: number };

export interface ResetOffsetsOptions {
  readonly topic: string;
  /** Default: every partition of the topic. */
  readonly partitions?: readonly number[];
  readonly to: ResetTarget;
  /** Compute and return the new offsets without committing them. */
  readonly dryRun?: boolean;
}

export interface OffsetReset {
  readonly topic: string;
  readonly partition: number;
  /** -1 when nothing was committed. */
  readonly previousOffset: number;
  readonly newOffset: number;
}

type ListOffsets = (
  topic: string,
  query: OffsetQuery,
  partitions?: readonly number[],
) => Promise<Array<{ partition: number; offset: number }>>;

const byKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

function check(errorCode: number, errorMessage: string | undefined, what: string): void {
  if (errorCode !== 0) throw new StreamBusError(errorCode, errorMessage ?? what);
}

function checkGroupId(groupId: unknown): asserts groupId is string {
  if (typeof groupId !== 'string' || groupId === '' || groupId.length > 255) {
    throw new StreamBusError(
      ErrorCode.INVALID_ARGUMENT,
      `group id: expected a non-empty string of at most 255 characters, got ${JSON.stringify(groupId)}`,
    );
  }
}

export class GroupAdmin {
  constructor(
    private readonly ctx: ClientContext,
    private readonly listOffsets: ListOffsets,
  ) {}

  /** Every group of the cluster: ListGroups asked of every broker (each lists its own). */
  async listGroups(): Promise<GroupListing[]> {
    const md = await this.ctx.run(() => this.ctx.cluster.refreshMetadata([], false));
    const answers = await Promise.all(
      md.brokers.map((b) =>
        this.ctx.run(async () => {
          const conn = await this.ctx.cluster.connectionToNode(b.nodeId);
          const res = await conn.request(ApiKey.LIST_GROUPS, {});
          // A broker that is still loading a partition of __consumer_offsets: ask again.
          if (res.errorCode === ErrorCode.COORDINATOR_LOAD_IN_PROGRESS) {
            throw new StreamBusError(res.errorCode, res.errorMessage ?? 'loading');
          }
          check(res.errorCode, res.errorMessage, `list groups of broker ${b.nodeId}`);
          return res.groups.map((g) => ({ ...g, coordinatorId: b.nodeId }));
        }),
      ),
    );
    const seen = new Map<string, GroupListing>();
    for (const g of answers.flat()) if (!seen.has(g.groupId)) seen.set(g.groupId, g);
    return [...seen.values()].sort((a, b) => (a.groupId < b.groupId ? -1 : 1));
  }

  async describeGroup(groupId: string): Promise<GroupDescription> {
    checkGroupId(groupId);
    const res = await coordinatorRequest(this.ctx, groupId, (conn) =>
      conn.request(ApiKey.DESCRIBE_GROUPS, { groupIds: [groupId] }),
    );
    const g = res.groups.find((x) => x.groupId === groupId);
    if (g === undefined) {
      throw new StreamBusError(ErrorCode.UNKNOWN_SERVER_ERROR, `no description of '${groupId}'`);
    }
    // A group that does not exist is described as Dead (as Kafka's admin does), whether the
    // coordinator says so with the state or with GROUP_ID_NOT_FOUND.
    if (g.errorCode === ErrorCode.GROUP_ID_NOT_FOUND) {
      return {
        groupId,
        state: 'Dead',
        protocolType: '',
        protocol: '',
        generation: -1,
        leaderId: '',
        members: [],
        offsets: [],
      };
    }
    check(g.errorCode, g.errorMessage, `describe group '${groupId}'`);
    const members = g.members.map((m) => {
      let assignment: readonly TopicPartition[] = [];
      if (g.protocolType === 'consumer') {
        try {
          assignment = decodeAssignment(m.assignment).partitions;
        } catch {
          // Not a consumer-protocol assignment (another client's bytes): shown without one.
        }
      }
      return {
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        assignment,
      };
    });
    const committed = await this.committedOffsets(groupId);
    const owner = new Map<string, string>();
    for (const m of members) {
      for (const tp of m.assignment) owner.set(byKey(tp.topic, tp.partition), m.memberId);
    }
    const partitions = new Map<string, TopicPartition>();
    for (const tp of committed.keys()) partitions.set(tp, parseKey(tp));
    for (const m of members)
      for (const tp of m.assignment) partitions.set(byKey(tp.topic, tp.partition), tp);
    const ends = await this.logEnds([...partitions.values()]);
    const offsets = [...partitions.entries()]
      .map(([k, tp]) => {
        const c = committed.get(k) ?? -1;
        const end = ends.get(k) ?? -1;
        return {
          topic: tp.topic,
          partition: tp.partition,
          committedOffset: c,
          logEnd: end,
          lag: end < 0 ? null : Math.max(0, end - Math.max(0, c)),
          memberId: owner.get(k) ?? null,
        };
      })
      .sort((a, b) =>
        a.topic === b.topic ? a.partition - b.partition : a.topic < b.topic ? -1 : 1,
      );
    return {
      groupId,
      state: g.state,
      protocolType: g.protocolType,
      protocol: g.protocolName,
      generation: g.generation,
      leaderId: g.leaderId,
      members,
      offsets,
    };
  }

  /**
   * Sets the committed offsets of a topic's partitions (all by default) to the earliest or
   * latest offset, an offset (clamped to the log's range, as Kafka's tool does) or the first
   * offset at or after a timestamp (the log end when there is none). The group must have no
   * members (NON_EMPTY_GROUP otherwise: stop its consumers first). `dryRun` commits nothing.
   */
  async resetOffsets(groupId: string, options: ResetOffsetsOptions): Promise<OffsetReset[]> {
    checkGroupId(groupId);
    checkOptionNames('resetOffsets', options, OptionNames.resetOffsets);
    const { topic, to } = options;
    const ids =
      options.partitions ??
      (await this.ctx.run(() => this.ctx.cluster.topic(topic, false), topic)).partitions.map(
        (p) => p.partition,
      );
    const [earliest, latest] = await Promise.all([
      this.listOffsets(topic, 'earliest', ids),
      this.listOffsets(topic, 'latest', ids),
    ]);
    const lo = new Map(earliest.map((o) => [o.partition, o.offset]));
    const hi = new Map(latest.map((o) => [o.partition, o.offset]));
    let target: Map<number, number>;
    if (to === 'earliest') target = lo;
    else if (to === 'latest') target = hi;
    else if (typeof to === 'object' && to !== null && 'offset' in to) {
      if (!Number.isSafeInteger(to.offset) || to.offset < 0) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `resetOffsets.to.offset: expected a non-negative integer, got ${to.offset}`,
        );
      }
      target = new Map(
        ids.map((p) => [p, Math.min(hi.get(p) ?? 0, Math.max(lo.get(p) ?? 0, to.offset))]),
      );
    } else if (typeof to === 'object' && to !== null && 'timestamp' in to) {
      if (!Number.isSafeInteger(to.timestamp) || to.timestamp < 0) {
        throw new StreamBusError(
          ErrorCode.INVALID_ARGUMENT,
          `resetOffsets.to.timestamp: expected milliseconds since the epoch, got ${to.timestamp}`,
        );
      }
      const at = await this.listOffsets(topic, { timestamp: to.timestamp }, ids);
      target = new Map(
        at.map((o) => [o.partition, o.offset < 0 ? (hi.get(o.partition) ?? 0) : o.offset]),
      );
    } else {
      throw new StreamBusError(
        ErrorCode.INVALID_ARGUMENT,
        `resetOffsets.to: expected 'earliest', 'latest', { offset } or { timestamp }, got ${JSON.stringify(to)}`,
      );
    }
    const committed = await this.committedOffsets(groupId);
    const out = ids.map((partition) => ({
      topic,
      partition,
      previousOffset: committed.get(byKey(topic, partition)) ?? -1,
      newOffset: target.get(partition) ?? 0,
    }));
    if (options.dryRun === true) return out;
    const d = await this.describeGroup(groupId);
    if (d.members.length > 0) {
      throw new StreamBusError(
        ErrorCode.NON_EMPTY_GROUP,
        `group '${groupId}' has ${d.members.length} member(s): stop its consumers before resetting its offsets`,
      );
    }
    const res = await coordinatorRequest(this.ctx, groupId, (conn) =>
      conn.request(ApiKey.OFFSET_COMMIT, {
        groupId,
        generation: -1,
        memberId: '',
        groupInstanceId: null,
        topics: [
          {
            name: topic,
            partitions: out.map((o) => ({
              partition: o.partition,
              offset: o.newOffset,
              metadata: null,
            })),
          },
        ],
      }),
    );
    for (const t of res.topics) {
      for (const p of t.partitions) {
        if (p.errorCode === ErrorCode.UNKNOWN_MEMBER_ID) {
          throw new StreamBusError(
            ErrorCode.NON_EMPTY_GROUP,
            `group '${groupId}' has members: stop its consumers before resetting its offsets`,
          );
        }
        check(p.errorCode, p.errorMessage, `reset ${t.name}/${p.partition} of '${groupId}'`);
      }
    }
    return out;
  }

  /** Deletes a group with no members and its committed offsets (NON_EMPTY_GROUP, GROUP_ID_NOT_FOUND). */
  async deleteGroup(groupId: string): Promise<void> {
    checkGroupId(groupId);
    const res = await coordinatorRequest(this.ctx, groupId, (conn) =>
      conn.request(ApiKey.DELETE_GROUPS, { groupIds: [groupId] }),
    );
    for (const g of res.groups) check(g.errorCode, g.errorMessage, `delete group '${g.groupId}'`);
  }

  /** Deletes a group's committed offsets of a topic (all its partitions by default). */
  async deleteOffsets(
    groupId: string,
    topic: string,
    partitions?: readonly number[],
  ): Promise<void> {
    checkGroupId(groupId);
    const ids =
      partitions ??
      [...(await this.committedOffsets(groupId)).keys()]
        .map(parseKey)
        .filter((tp) => tp.topic === topic)
        .map((tp) => tp.partition);
    if (ids.length === 0) return;
    const res = await coordinatorRequest(this.ctx, groupId, (conn) =>
      conn.request(ApiKey.OFFSET_DELETE, {
        groupId,
        topics: [{ name: topic, partitions: ids.map((partition) => ({ partition })) }],
      }),
    );
    check(res.errorCode, res.errorMessage, `delete offsets of '${groupId}'`);
    for (const t of res.topics) {
      for (const p of t.partitions) {
        check(
          p.errorCode,
          p.errorMessage,
          `delete offset ${t.name}/${p.partition} of '${groupId}'`,
        );
      }
    }
  }

  /** Every committed offset of the group, by topic/partition key. */
  private async committedOffsets(groupId: string): Promise<Map<string, number>> {
    const res = await coordinatorRequest(this.ctx, groupId, (conn) =>
      conn.request(ApiKey.OFFSET_FETCH, { groupId, topics: null }),
    );
    check(res.errorCode, res.errorMessage, `offsets of group '${groupId}'`);
    const out = new Map<string, number>();
    for (const t of res.topics) {
      for (const p of t.partitions) {
        if (p.errorCode === 0 && p.offset >= 0) out.set(byKey(t.name, p.partition), p.offset);
      }
    }
    return out;
  }

  /** Log ends per partition; a topic that cannot be read (deleted) is left out. */
  private async logEnds(tps: readonly TopicPartition[]): Promise<Map<string, number>> {
    const topics = new Map<string, number[]>();
    for (const tp of tps) topics.set(tp.topic, [...(topics.get(tp.topic) ?? []), tp.partition]);
    const out = new Map<string, number>();
    await Promise.all(
      [...topics].map(async ([topic, ids]) => {
        try {
          for (const o of await this.listOffsets(topic, 'latest', ids)) {
            out.set(byKey(topic, o.partition), o.offset);
          }
        } catch (err) {
          if (!(err instanceof StreamBusError) || err.retriable) throw err;
        }
      }),
    );
    return out;
  }
}

function parseKey(k: string): TopicPartition {
  const i = k.lastIndexOf('\u0000');
  return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)) };
}
