// The fake broker's consumer-group coordinator, for the SDK's unit tests: the classic group
// protocol as the native APIs carry it (FindCoordinator .. OffsetDelete), in memory, with wall
// clock timers. Simplified, not the broker's state machine (packages/broker/src/groups): a join
// phase ends as soon as every member has rejoined (or at the longest rebalance timeout, dropping
// the others); every join of a Stable group starts a rebalance; static members get no special
// treatment beyond keeping their id; a new dynamic member is answered MEMBER_ID_REQUIRED first
// (KIP-394). It does check generations and member ids (ILLEGAL_GENERATION, UNKNOWN_MEMBER_ID),
// answers heartbeats with REBALANCE_IN_PROGRESS while a join phase is open, expires members
// after their session timeout, and records every generation's assignment (`history`) so tests
// can check that no partition had two owners in one generation.
import {
  ApiKey,
  decodeAssignment,
  ErrorCode,
  type JoinGroupRequest,
  type JoinGroupResponse,
  type RequestOf,
  type ResponseOf,
  type SyncGroupResponse,
  type TopicPartition,
} from '@streambus/protocol';

type GroupState = 'Empty' | 'PreparingRebalance' | 'CompletingRebalance' | 'Stable';

interface Member {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  clientId: string;
  protocols: JoinGroupRequest['protocols'];
  sessionTimeoutMs: number;
  rebalanceTimeoutMs: number;
  lastSeenMs: number;
  assignment: Buffer;
  joinWaiter: ((r: JoinGroupResponse) => void) | null;
  syncWaiter: ((r: SyncGroupResponse) => void) | null;
}

interface FakeGroup {
  readonly groupId: string;
  state: GroupState;
  generation: number;
  protocolName: string;
  leaderId: string;
  readonly members: Map<string, Member>;
  readonly offsets: Map<string, { offset: number; metadata: string | null }>;
  rebalanceTimer: NodeJS.Timeout | null;
}

/** One generation's assignment, as the leader's sync set it. */
export interface GenerationRecord {
  readonly groupId: string;
  readonly generation: number;
  readonly assignments: ReadonlyMap<string, readonly TopicPartition[]>;
}

const offsetKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export class FakeGroupCoordinator {
  readonly groups = new Map<string, FakeGroup>();
  readonly history: GenerationRecord[] = [];
  /** Requests answered, by API key, for assertions. */
  readonly requests = new Map<number, number>();
  private nextMemberN = 1;
  private readonly sessionTimer: NodeJS.Timeout;

  constructor(
    /** Partitions of a topic (0 when it does not exist): commits are checked against it. */
    private readonly partitionsOf: (topic: string) => number,
  ) {
    this.sessionTimer = setInterval(() => this.expireSessions(), 50);
    this.sessionTimer.unref();
  }

  close(): void {
    clearInterval(this.sessionTimer);
    for (const g of this.groups.values()) {
      if (g.rebalanceTimer) clearTimeout(g.rebalanceTimer);
    }
  }

  count(apiKey: number): number {
    return this.requests.get(apiKey) ?? 0;
  }

  /** Committed offset of a partition (-1 when none). */
  committed(groupId: string, topic: string, partition: number): number {
    return this.groups.get(groupId)?.offsets.get(offsetKey(topic, partition))?.offset ?? -1;
  }

  /** Answers one group request (FindCoordinator is the broker's). */
  async handle<K extends GroupApiKey>(key: K, req: RequestOf<K>): Promise<ResponseOf<K>> {
    this.requests.set(key, (this.requests.get(key) ?? 0) + 1);
    const r = req as RequestOf<GroupApiKey>;
    switch (key) {
      case ApiKey.JOIN_GROUP:
        return (await this.join(r as JoinGroupRequest)) as ResponseOf<K>;
      case ApiKey.SYNC_GROUP:
        return (await this.sync(r as RequestOf<typeof ApiKey.SYNC_GROUP>)) as ResponseOf<K>;
      case ApiKey.HEARTBEAT:
        return this.heartbeat(r as RequestOf<typeof ApiKey.HEARTBEAT>) as ResponseOf<K>;
      case ApiKey.LEAVE_GROUP:
        return this.leave(r as RequestOf<typeof ApiKey.LEAVE_GROUP>) as ResponseOf<K>;
      case ApiKey.OFFSET_COMMIT:
        return this.commit(r as RequestOf<typeof ApiKey.OFFSET_COMMIT>) as ResponseOf<K>;
      case ApiKey.OFFSET_FETCH:
        return this.fetchOffsets(r as RequestOf<typeof ApiKey.OFFSET_FETCH>) as ResponseOf<K>;
      case ApiKey.LIST_GROUPS:
        return {
          errorCode: 0,
          groups: [...this.groups.values()].map((g) => ({
            groupId: g.groupId,
            state: g.state,
            protocolType: 'consumer',
          })),
        } as ResponseOf<K>;
      case ApiKey.DESCRIBE_GROUPS:
        return this.describe(r as RequestOf<typeof ApiKey.DESCRIBE_GROUPS>) as ResponseOf<K>;
      case ApiKey.DELETE_GROUPS:
        return {
          groups: (r as RequestOf<typeof ApiKey.DELETE_GROUPS>).groupIds.map((groupId) => {
            const g = this.groups.get(groupId);
            if (g === undefined) return { groupId, errorCode: ErrorCode.GROUP_ID_NOT_FOUND };
            if (g.members.size > 0) return { groupId, errorCode: ErrorCode.NON_EMPTY_GROUP };
            this.groups.delete(groupId);
            return { groupId, errorCode: 0 };
          }),
        } as ResponseOf<K>;
      case ApiKey.OFFSET_DELETE: {
        const q = r as RequestOf<typeof ApiKey.OFFSET_DELETE>;
        const g = this.groups.get(q.groupId);
        if (g === undefined) {
          return { errorCode: ErrorCode.GROUP_ID_NOT_FOUND, topics: [] } as ResponseOf<K>;
        }
        if (g.members.size > 0) {
          return { errorCode: ErrorCode.NON_EMPTY_GROUP, topics: [] } as ResponseOf<K>;
        }
        return {
          errorCode: 0,
          topics: q.topics.map((t) => ({
            name: t.name,
            partitions: t.partitions.map((p) => {
              g.offsets.delete(offsetKey(t.name, p.partition));
              return { partition: p.partition, errorCode: 0 };
            }),
          })),
        } as ResponseOf<K>;
      }
      default:
        throw new Error(`not a group API: ${key}`);
    }
  }

  private group(groupId: string): FakeGroup {
    let g = this.groups.get(groupId);
    if (g === undefined) {
      g = {
        groupId,
        state: 'Empty',
        generation: 0,
        protocolName: '',
        leaderId: '',
        members: new Map(),
        offsets: new Map(),
        rebalanceTimer: null,
      };
      this.groups.set(groupId, g);
    }
    return g;
  }

  private joinError(req: JoinGroupRequest, errorCode: number, memberId = req.memberId) {
    return {
      errorCode,
      generation: -1,
      protocolType: req.protocolType,
      protocolName: '',
      leaderId: '',
      memberId,
      skipAssignment: false,
      members: [],
    };
  }

  private join(req: JoinGroupRequest): Promise<JoinGroupResponse> | JoinGroupResponse {
    const g = this.group(req.groupId);
    let m = req.memberId === '' ? undefined : g.members.get(req.memberId);
    if (req.memberId === '') {
      const old =
        req.groupInstanceId === null
          ? undefined
          : [...g.members.values()].find((x) => x.groupInstanceId === req.groupInstanceId);
      if (old !== undefined) {
        // A static member's restart takes its place (the old process is fenced by its id).
        g.members.delete(old.memberId);
        old.joinWaiter?.(this.joinError(req, ErrorCode.FENCED_INSTANCE_ID, old.memberId));
        old.syncWaiter?.({
          errorCode: ErrorCode.FENCED_INSTANCE_ID,
          protocolType: '',
          protocolName: '',
          assignment: Buffer.alloc(0),
        });
      }
      const id = `${req.groupInstanceId ?? 'member'}-${this.nextMemberN++}`;
      if (req.groupInstanceId === null)
        return this.joinError(req, ErrorCode.MEMBER_ID_REQUIRED, id);
      m = this.newMember(req, id);
      g.members.set(id, m);
    } else if (m === undefined) {
      // A dynamic member's second join, with the id MEMBER_ID_REQUIRED handed out.
      if (!/^member-\d+$/.test(req.memberId)) {
        return this.joinError(req, ErrorCode.UNKNOWN_MEMBER_ID);
      }
      m = this.newMember(req, req.memberId);
      g.members.set(m.memberId, m);
    }
    const member = m;
    member.protocols = req.protocols;
    member.sessionTimeoutMs = req.sessionTimeoutMs;
    member.rebalanceTimeoutMs = req.rebalanceTimeoutMs;
    member.lastSeenMs = Date.now();
    const answer = new Promise<JoinGroupResponse>((resolve) => {
      member.joinWaiter = resolve;
    });
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g);
    this.maybeCompleteJoin(g);
    return answer;
  }

  private newMember(req: JoinGroupRequest, memberId: string): Member {
    return {
      memberId,
      groupInstanceId: req.groupInstanceId,
      clientId: memberId,
      protocols: req.protocols,
      sessionTimeoutMs: req.sessionTimeoutMs,
      rebalanceTimeoutMs: req.rebalanceTimeoutMs,
      lastSeenMs: Date.now(),
      assignment: Buffer.alloc(0),
      joinWaiter: null,
      syncWaiter: null,
    };
  }

  private prepareRebalance(g: FakeGroup): void {
    g.state = 'PreparingRebalance';
    // Syncs waiting for a leader that will not come: they must rejoin.
    for (const m of g.members.values()) {
      m.syncWaiter?.({
        errorCode: ErrorCode.REBALANCE_IN_PROGRESS,
        protocolType: '',
        protocolName: '',
        assignment: Buffer.alloc(0),
      });
      m.syncWaiter = null;
    }
    const timeoutMs = Math.max(100, ...[...g.members.values()].map((m) => m.rebalanceTimeoutMs));
    if (g.rebalanceTimer) clearTimeout(g.rebalanceTimer);
    g.rebalanceTimer = setTimeout(() => {
      g.rebalanceTimer = null;
      // Members that did not rejoin in time are out.
      for (const m of [...g.members.values()]) {
        if (m.joinWaiter === null) g.members.delete(m.memberId);
      }
      this.maybeCompleteJoin(g);
    }, timeoutMs);
    g.rebalanceTimer.unref();
  }

  private maybeCompleteJoin(g: FakeGroup): void {
    if (g.state !== 'PreparingRebalance') return;
    const members = [...g.members.values()];
    if (members.some((m) => m.joinWaiter === null)) return;
    if (g.rebalanceTimer) clearTimeout(g.rebalanceTimer);
    g.rebalanceTimer = null;
    if (members.length === 0) {
      g.state = 'Empty';
      return;
    }
    g.generation++;
    g.state = 'CompletingRebalance';
    if (!g.members.has(g.leaderId)) g.leaderId = members[0]!.memberId;
    const leader = g.members.get(g.leaderId)!;
    g.protocolName =
      leader.protocols.find((p) => members.every((m) => m.protocols.some((q) => q.name === p.name)))
        ?.name ?? leader.protocols[0]!.name;
    for (const m of members) {
      const waiter = m.joinWaiter!;
      m.joinWaiter = null;
      m.lastSeenMs = Date.now();
      waiter({
        errorCode: 0,
        generation: g.generation,
        protocolType: 'consumer',
        protocolName: g.protocolName,
        leaderId: g.leaderId,
        memberId: m.memberId,
        skipAssignment: false,
        members:
          m.memberId === g.leaderId
            ? members.map((x) => ({
                memberId: x.memberId,
                groupInstanceId: x.groupInstanceId,
                metadata: Buffer.from(
                  x.protocols.find((p) => p.name === g.protocolName)?.metadata ?? [],
                ),
              }))
            : [],
      });
    }
  }

  private syncAnswer(errorCode: number, assignment: Buffer = Buffer.alloc(0)): SyncGroupResponse {
    return { errorCode, protocolType: 'consumer', protocolName: '', assignment };
  }

  private sync(
    req: RequestOf<typeof ApiKey.SYNC_GROUP>,
  ): Promise<SyncGroupResponse> | SyncGroupResponse {
    const g = this.groups.get(req.groupId);
    const m = g?.members.get(req.memberId);
    if (g === undefined || m === undefined) return this.syncAnswer(ErrorCode.UNKNOWN_MEMBER_ID);
    if (req.generation !== g.generation) return this.syncAnswer(ErrorCode.ILLEGAL_GENERATION);
    if (g.state === 'PreparingRebalance') return this.syncAnswer(ErrorCode.REBALANCE_IN_PROGRESS);
    m.lastSeenMs = Date.now();
    if (g.state === 'Stable') return this.syncAnswer(0, m.assignment);
    const answer = new Promise<SyncGroupResponse>((resolve) => {
      m.syncWaiter = resolve;
    });
    if (req.memberId === g.leaderId) {
      const record = new Map<string, TopicPartition[]>();
      for (const x of g.members.values()) {
        const a = req.assignments.find((y) => y.memberId === x.memberId);
        x.assignment = a === undefined ? Buffer.alloc(0) : Buffer.from(a.assignment);
        record.set(x.memberId, [...decodeAssignment(x.assignment).partitions]);
      }
      this.history.push({ groupId: g.groupId, generation: g.generation, assignments: record });
      g.state = 'Stable';
      for (const x of g.members.values()) {
        const w = x.syncWaiter;
        x.syncWaiter = null;
        w?.(this.syncAnswer(0, x.assignment));
      }
    }
    return answer;
  }

  private memberError(groupId: string, memberId: string, generation: number): number {
    const g = this.groups.get(groupId);
    const m = g?.members.get(memberId);
    if (g === undefined || m === undefined) return ErrorCode.UNKNOWN_MEMBER_ID;
    if (generation !== g.generation) return ErrorCode.ILLEGAL_GENERATION;
    m.lastSeenMs = Date.now();
    return 0;
  }

  private heartbeat(req: RequestOf<typeof ApiKey.HEARTBEAT>): ResponseOf<typeof ApiKey.HEARTBEAT> {
    const code = this.memberError(req.groupId, req.memberId, req.generation);
    if (code !== 0) return { errorCode: code };
    const g = this.groups.get(req.groupId)!;
    return { errorCode: g.state === 'PreparingRebalance' ? ErrorCode.REBALANCE_IN_PROGRESS : 0 };
  }

  private leave(req: RequestOf<typeof ApiKey.LEAVE_GROUP>): ResponseOf<typeof ApiKey.LEAVE_GROUP> {
    const g = this.groups.get(req.groupId);
    const members = req.members.map((x) => {
      const id =
        x.memberId !== ''
          ? x.memberId
          : ([...(g?.members.values() ?? [])].find((m) => m.groupInstanceId === x.groupInstanceId)
              ?.memberId ?? '');
      if (g === undefined || !g.members.delete(id)) {
        return { ...x, errorCode: ErrorCode.UNKNOWN_MEMBER_ID };
      }
      return { memberId: id, groupInstanceId: x.groupInstanceId, errorCode: 0 };
    });
    if (g !== undefined) this.membersChanged(g);
    return { errorCode: 0, members };
  }

  private membersChanged(g: FakeGroup): void {
    if (g.members.size === 0) {
      if (g.rebalanceTimer) clearTimeout(g.rebalanceTimer);
      g.rebalanceTimer = null;
      g.state = 'Empty';
      return;
    }
    if (g.state !== 'PreparingRebalance') this.prepareRebalance(g);
    this.maybeCompleteJoin(g);
  }

  private expireSessions(): void {
    const now = Date.now();
    for (const g of this.groups.values()) {
      let changed = false;
      for (const m of [...g.members.values()]) {
        if (m.joinWaiter === null && now - m.lastSeenMs > m.sessionTimeoutMs) {
          g.members.delete(m.memberId);
          m.syncWaiter?.(this.syncAnswer(ErrorCode.UNKNOWN_MEMBER_ID));
          changed = true;
        }
      }
      if (changed) this.membersChanged(g);
    }
  }

  private commit(
    req: RequestOf<typeof ApiKey.OFFSET_COMMIT>,
  ): ResponseOf<typeof ApiKey.OFFSET_COMMIT> {
    const g = this.group(req.groupId);
    let code = 0;
    if (req.generation === -1 && req.memberId === '') {
      if (g.members.size > 0) code = ErrorCode.UNKNOWN_MEMBER_ID;
    } else {
      code = this.memberError(req.groupId, req.memberId, req.generation);
      if (code === 0 && g.state === 'CompletingRebalance') code = ErrorCode.REBALANCE_IN_PROGRESS;
    }
    return {
      topics: req.topics.map((t) => ({
        name: t.name,
        partitions: t.partitions.map((p) => {
          if (code !== 0) return { partition: p.partition, errorCode: code };
          if (p.partition >= this.partitionsOf(t.name)) {
            return { partition: p.partition, errorCode: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION };
          }
          g.offsets.set(offsetKey(t.name, p.partition), {
            offset: p.offset,
            metadata: p.metadata,
          });
          return { partition: p.partition, errorCode: 0 };
        }),
      })),
    };
  }

  private fetchOffsets(
    req: RequestOf<typeof ApiKey.OFFSET_FETCH>,
  ): ResponseOf<typeof ApiKey.OFFSET_FETCH> {
    const g = this.groups.get(req.groupId);
    const asked =
      req.topics ??
      [...new Set([...(g?.offsets.keys() ?? [])].map((k) => k.split('\u0000')[0]!))].map(
        (name) => ({
          name,
          partitions: [...(g?.offsets.keys() ?? [])]
            .filter((k) => k.startsWith(`${name}\u0000`))
            .map((k) => ({ partition: Number(k.split('\u0000')[1]) })),
        }),
      );
    return {
      errorCode: 0,
      topics: asked.map((t) => ({
        name: t.name,
        partitions: t.partitions.map((p) => {
          const o = g?.offsets.get(offsetKey(t.name, p.partition));
          return {
            partition: p.partition,
            errorCode: 0,
            offset: o?.offset ?? -1,
            metadata: o?.metadata ?? null,
          };
        }),
      })),
    };
  }

  private describe(
    req: RequestOf<typeof ApiKey.DESCRIBE_GROUPS>,
  ): ResponseOf<typeof ApiKey.DESCRIBE_GROUPS> {
    return {
      groups: req.groupIds.map((groupId) => {
        const g = this.groups.get(groupId);
        if (g === undefined) {
          return {
            errorCode: 0,
            groupId,
            state: 'Dead',
            protocolType: '',
            protocolName: '',
            generation: -1,
            leaderId: '',
            members: [],
          };
        }
        return {
          errorCode: 0,
          groupId,
          state: g.state,
          protocolType: 'consumer',
          protocolName: g.protocolName,
          generation: g.generation,
          leaderId: g.leaderId,
          members: [...g.members.values()].map((m) => ({
            memberId: m.memberId,
            groupInstanceId: m.groupInstanceId,
            clientId: m.clientId,
            metadata: Buffer.from(m.protocols[0]?.metadata ?? []),
            assignment: m.assignment,
          })),
        };
      }),
    };
  }
}

export type GroupApiKey =
  | typeof ApiKey.JOIN_GROUP
  | typeof ApiKey.SYNC_GROUP
  | typeof ApiKey.HEARTBEAT
  | typeof ApiKey.LEAVE_GROUP
  | typeof ApiKey.OFFSET_COMMIT
  | typeof ApiKey.OFFSET_FETCH
  | typeof ApiKey.LIST_GROUPS
  | typeof ApiKey.DESCRIBE_GROUPS
  | typeof ApiKey.DELETE_GROUPS
  | typeof ApiKey.OFFSET_DELETE;

export const GROUP_API_KEYS: ReadonlySet<number> = new Set([
  ApiKey.JOIN_GROUP,
  ApiKey.SYNC_GROUP,
  ApiKey.HEARTBEAT,
  ApiKey.LEAVE_GROUP,
  ApiKey.OFFSET_COMMIT,
  ApiKey.OFFSET_FETCH,
  ApiKey.LIST_GROUPS,
  ApiKey.DESCRIBE_GROUPS,
  ApiKey.DELETE_GROUPS,
  ApiKey.OFFSET_DELETE,
]);
