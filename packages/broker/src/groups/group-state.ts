// The consumer-group state machine, pure: step(state, event, nowTick) -> { state, responses,
// records } (docs/groups.md). Kafka's classic group protocol (GroupCoordinator.scala semantics,
// re-derived, not copied): Empty -> PreparingRebalance -> CompletingRebalance -> Stable, with
// fencing by generation, member id and group instance id (KIP-345), MEMBER_ID_REQUIRED (KIP-394)
// and protocol-agnostic rebalances, so cooperative assignors (KIP-429) work through it unchanged.
//
// Each step copies the groups it touches and works on the copies; the input state is never
// modified. Joins and syncs may be answered by a later step (the shell holds the request); every
// response names the request it answers. Records are written when the durable view changes: a
// group record when a generation completes (sync by the leader, or the group empties), when a
// static member is replaced, and tombstones on deletion; an offset record per commit.
import assert from 'node:assert/strict';
import { GroupErrorCode as E } from './group-errors.js';
import {
  type CommittedOffset,
  type CoordinatorState,
  DEFAULT_GROUP_LIMITS,
  type FetchedOffset,
  type Group,
  type GroupDescription,
  type GroupEvent,
  type GroupLimits,
  type GroupMember,
  type GroupRecord,
  type GroupResponse,
  type JoinMemberInfo,
  type MemberProtocol,
  offsetKey,
  type PartitionResult,
  type PersistedMember,
  type StepResult,
  splitOffsetKey,
} from './types.js';

const EMPTY_BYTES: Uint8Array = new Uint8Array(0);
const utf8 = new TextEncoder();

export function initialCoordinatorState(
  memberIdSeed: string,
  limits: GroupLimits = DEFAULT_GROUP_LIMITS,
): CoordinatorState {
  return { limits, groups: new Map(), memberIdSeed, nextMemberSeq: 1, topics: null };
}

/** A new Empty group, as a simple commit or a first join creates it. */
export function emptyGroup(groupId: string, nowTick: number): Group {
  return {
    groupId,
    state: 'Empty',
    stateTick: nowTick,
    protocolType: null,
    protocolName: null,
    generation: 0,
    leaderId: null,
    members: new Map(),
    pendingMemberIds: new Map(),
    phaseDeadlineTick: -1,
    joinNotBeforeTick: -1,
    offsets: new Map(),
  };
}

type MutableGroup = { -readonly [K in keyof Group]: Group[K] } & {
  members: Map<string, GroupMember>;
  pendingMemberIds: Map<string, number>;
  offsets: Map<string, CommittedOffset>;
};

/** The working copy of one step. */
class Step {
  readonly groups: Map<string, Group>;
  readonly responses: GroupResponse[] = [];
  readonly records: GroupRecord[] = [];
  private readonly copied = new Set<string>();
  nextMemberSeq: number;
  topics: ReadonlyMap<string, number> | null;

  constructor(
    readonly base: CoordinatorState,
    readonly now: number,
  ) {
    this.groups = new Map(base.groups);
    this.nextMemberSeq = base.nextMemberSeq;
    this.topics = base.topics;
  }

  get limits(): GroupLimits {
    return this.base.limits;
  }

  /** The group to modify (copied on first use in this step), or undefined. */
  group(groupId: string): MutableGroup | undefined {
    const g = this.groups.get(groupId);
    if (g === undefined) return undefined;
    if (this.copied.has(groupId)) return g as MutableGroup;
    const copy: MutableGroup = {
      ...g,
      members: new Map(g.members),
      pendingMemberIds: new Map(g.pendingMemberIds),
      offsets: new Map(g.offsets),
    };
    this.groups.set(groupId, copy);
    this.copied.add(groupId);
    return copy;
  }

  create(groupId: string): MutableGroup {
    this.groups.set(groupId, emptyGroup(groupId, this.now));
    this.copied.delete(groupId);
    return this.group(groupId)!;
  }

  newMemberId(clientId: string): string {
    const id = `${clientId === '' ? 'member' : clientId}-${this.base.memberIdSeed}-${this.nextMemberSeq}`;
    this.nextMemberSeq++;
    return id;
  }

  result(): StepResult {
    return {
      state: {
        limits: this.base.limits,
        groups: this.groups,
        memberIdSeed: this.base.memberIdSeed,
        nextMemberSeq: this.nextMemberSeq,
        topics: this.topics,
      },
      responses: this.responses,
      records: this.records,
    };
  }
}

export function step(state: CoordinatorState, event: GroupEvent, nowTick: number): StepResult {
  assert.ok(Number.isSafeInteger(nowTick) && nowTick >= 0, `bad tick ${nowTick}`);
  const s = new Step(state, nowTick);
  switch (event.type) {
    case 'join':
      join(s, event);
      break;
    case 'sync':
      sync(s, event);
      break;
    case 'heartbeat':
      heartbeat(s, event);
      break;
    case 'leave':
      leave(s, event);
      break;
    case 'commit':
      commit(s, event);
      break;
    case 'fetch':
      fetch(s, event);
      break;
    case 'tick':
      tick(s);
      break;
    case 'topics':
      s.topics = event.partitionCounts;
      break;
    case 'describe':
      s.responses.push({
        kind: 'describe',
        requestId: event.requestId,
        ...describeGroup(s.groups.get(event.groupId), event.groupId),
      });
      break;
    case 'list':
      s.responses.push({ kind: 'list', requestId: event.requestId, groups: listGroups(s.groups) });
      break;
    case 'delete-group':
      deleteGroup(s, event.requestId, event.groupId);
      break;
    case 'delete-offsets':
      deleteOffsets(s, event);
      break;
  }
  return s.result();
}

// ---------------------------------------------------------------------------------------------
// Join

type JoinEvent = Extract<GroupEvent, { type: 'join' }>;

function joinError(requestId: number, error: number, memberId = ''): GroupResponse {
  return {
    kind: 'join',
    requestId,
    error,
    memberId,
    generation: -1,
    protocolType: '',
    protocolName: '',
    leaderId: '',
    members: [],
    skipAssignment: false,
  };
}

function nameTooLong(limits: GroupLimits, name: string): boolean {
  return utf8.encode(name).length > limits.nameBytesMax;
}

function validateJoin(s: Step, e: JoinEvent): number {
  const l = s.limits;
  if (e.groupId === '' || nameTooLong(l, e.groupId)) return E.INVALID_GROUP_ID;
  if (
    !Number.isSafeInteger(e.sessionTimeoutTicks) ||
    e.sessionTimeoutTicks < l.sessionTimeoutTicksMin ||
    e.sessionTimeoutTicks > l.sessionTimeoutTicksMax
  ) {
    return E.INVALID_SESSION_TIMEOUT;
  }
  if (
    !Number.isSafeInteger(e.rebalanceTimeoutTicks) ||
    e.rebalanceTimeoutTicks < 1 ||
    e.rebalanceTimeoutTicks > l.rebalanceTimeoutTicksMax
  ) {
    return E.INVALID_REQUEST;
  }
  if (e.protocolType === '' || e.protocols.length === 0) return E.INCONSISTENT_GROUP_PROTOCOL;
  if (e.protocols.length > l.protocolsPerMemberMax) return E.GROUP_METADATA_TOO_LARGE;
  const names = new Set(e.protocols.map((p) => p.name));
  if (names.size !== e.protocols.length || names.has('')) return E.INCONSISTENT_GROUP_PROTOCOL;
  let bytes = 0;
  for (const p of e.protocols) bytes += p.metadata.length + utf8.encode(p.name).length;
  if (bytes > l.metadataBytesMax) return E.GROUP_METADATA_TOO_LARGE;
  if (
    [e.protocolType, e.clientId, e.groupInstanceId ?? '', ...names].some((n) => nameTooLong(l, n))
  ) {
    return E.INVALID_REQUEST;
  }
  return E.NONE;
}

/** Protocol names every member supports, in the order of the first member's preference. */
function commonProtocols(members: Iterable<{ protocols: readonly MemberProtocol[] }>): string[] {
  let common: string[] | null = null;
  for (const m of members) {
    const names = new Set(m.protocols.map((p) => p.name));
    common = common === null ? [...names] : common.filter((n) => names.has(n));
  }
  return common ?? [];
}

function supportsProtocols(g: Group, e: JoinEvent, except: string | null): boolean {
  const others = [...g.members.values()].filter((m) => m.memberId !== except);
  if (others.length === 0) return true;
  if (g.protocolType !== e.protocolType) return false;
  const common = new Set(commonProtocols(others));
  return e.protocols.some((p) => common.has(p.name));
}

function sameProtocols(a: readonly MemberProtocol[], b: readonly MemberProtocol[]): boolean {
  return (
    a.length === b.length &&
    a.every(
      (p, i) =>
        p.name === b[i]!.name && Buffer.from(p.metadata).equals(Buffer.from(b[i]!.metadata)),
    )
  );
}

function memberByInstance(g: Group, instanceId: string): GroupMember | undefined {
  for (const m of g.members.values()) if (m.groupInstanceId === instanceId) return m;
  return undefined;
}

function join(s: Step, e: JoinEvent): void {
  const invalid = validateJoin(s, e);
  if (invalid !== E.NONE) {
    s.responses.push(joinError(e.requestId, invalid, e.memberId ?? ''));
    return;
  }
  const memberId = e.memberId ?? '';
  let g = s.group(e.groupId);
  if (g === undefined) {
    if (memberId !== '') {
      s.responses.push(joinError(e.requestId, E.UNKNOWN_MEMBER_ID, memberId));
      return;
    }
    if (s.groups.size >= s.limits.groupsMax) {
      s.responses.push(joinError(e.requestId, E.GROUPS_LIMIT_REACHED));
      return;
    }
    g = s.create(e.groupId);
  }
  if (memberId === '') joinNewMember(s, g, e);
  else joinKnownMember(s, g, e, memberId);
}

function joinNewMember(s: Step, g: MutableGroup, e: JoinEvent): void {
  const old = e.groupInstanceId === null ? undefined : memberByInstance(g, e.groupInstanceId);
  if (!supportsProtocols(g, e, old?.memberId ?? null)) {
    s.responses.push(joinError(e.requestId, E.INCONSISTENT_GROUP_PROTOCOL));
    return;
  }
  if (
    old === undefined &&
    g.members.size + g.pendingMemberIds.size >= s.limits.membersPerGroupMax
  ) {
    s.responses.push(joinError(e.requestId, E.GROUP_MAX_SIZE_REACHED));
    return;
  }
  const newId = s.newMemberId(e.clientId);
  if (old !== undefined) {
    replaceStaticMember(s, g, old, newId, e);
    return;
  }
  if (e.groupInstanceId === null && e.requireKnownMemberId) {
    g.pendingMemberIds.set(newId, s.now + e.sessionTimeoutTicks);
    s.responses.push(joinError(e.requestId, E.MEMBER_ID_REQUIRED, newId));
    return;
  }
  addMemberAndRebalance(s, g, e, newId);
}

function memberFromJoin(s: Step, e: JoinEvent, memberId: string, old?: GroupMember): GroupMember {
  return {
    memberId,
    groupInstanceId: e.groupInstanceId,
    clientId: e.clientId,
    sessionTimeoutTicks: e.sessionTimeoutTicks,
    rebalanceTimeoutTicks: e.rebalanceTimeoutTicks,
    protocols: e.protocols.map((p) => ({ name: p.name, metadata: p.metadata.slice() })),
    assignment: old?.assignment ?? EMPTY_BYTES,
    heartbeatDeadlineTick: s.now + e.sessionTimeoutTicks,
    pendingJoin: e.requestId,
    pendingSync: null,
  };
}

function addMemberAndRebalance(s: Step, g: MutableGroup, e: JoinEvent, memberId: string): void {
  g.pendingMemberIds.delete(memberId);
  g.members.set(memberId, memberFromJoin(s, e, memberId));
  if (g.protocolType === null || g.members.size === 1) g.protocolType = e.protocolType;
  if (g.state === 'PreparingRebalance') maybeCompleteJoin(s, g);
  else prepareRebalance(s, g);
}

/** KIP-345: a known group instance id rejoins with no member id; the old member is fenced. */
function replaceStaticMember(
  s: Step,
  g: MutableGroup,
  old: GroupMember,
  newId: string,
  e: JoinEvent,
): void {
  if (old.pendingJoin !== null) {
    s.responses.push(joinError(old.pendingJoin, E.FENCED_INSTANCE_ID, old.memberId));
  }
  if (old.pendingSync !== null) s.responses.push(syncReply(old.pendingSync, E.FENCED_INSTANCE_ID));
  const wasLeader = g.leaderId === old.memberId;
  // Keep the member's place in join order (the leader choice and assignors see the same order).
  const members = new Map<string, GroupMember>();
  for (const [id, m] of g.members) {
    if (id === old.memberId) members.set(newId, memberFromJoin(s, e, newId, old));
    else members.set(id, m);
  }
  g.members = members;
  if (wasLeader) g.leaderId = newId;
  // As in Kafka, a restarted static member's metadata is not compared (a restart owns nothing,
  // so its subscription bytes differ anyway): only a change of the group's protocol rebalances.
  if (g.state === 'Stable' && selectProtocol(g) === g.protocolName) {
    const m = { ...g.members.get(newId)!, pendingJoin: null };
    g.members.set(newId, m);
    s.records.push(groupRecord(g));
    s.responses.push(joinReply(g, e.requestId, newId, wasLeader, true));
    return;
  }
  if (g.state === 'PreparingRebalance') maybeCompleteJoin(s, g);
  else prepareRebalance(s, g);
}

function joinKnownMember(s: Step, g: MutableGroup, e: JoinEvent, memberId: string): void {
  if (g.pendingMemberIds.has(memberId)) {
    if (!supportsProtocols(g, e, null)) {
      s.responses.push(joinError(e.requestId, E.INCONSISTENT_GROUP_PROTOCOL, memberId));
      return;
    }
    addMemberAndRebalance(s, g, e, memberId);
    return;
  }
  const fenced = fencing(g, memberId, e.groupInstanceId);
  if (fenced !== E.NONE) {
    s.responses.push(joinError(e.requestId, fenced, memberId));
    return;
  }
  const m = g.members.get(memberId)!;
  if (!supportsProtocols(g, e, memberId)) {
    s.responses.push(joinError(e.requestId, E.INCONSISTENT_GROUP_PROTOCOL, memberId));
    return;
  }
  if (m.pendingJoin !== null && m.pendingJoin !== e.requestId) {
    // A newer join of the same member supersedes the one still waiting.
    s.responses.push(joinError(m.pendingJoin, E.REBALANCE_IN_PROGRESS, memberId));
  }
  const unchanged = sameProtocols(m.protocols, e.protocols);
  const updated = memberFromJoin(s, e, memberId, m);
  switch (g.state) {
    case 'PreparingRebalance':
      g.members.set(memberId, updated);
      maybeCompleteJoin(s, g);
      return;
    case 'CompletingRebalance':
    case 'Stable':
      if (unchanged && (g.state === 'CompletingRebalance' || g.leaderId !== memberId)) {
        // Nothing changed: answer with the current generation, no rebalance.
        g.members.set(memberId, { ...updated, pendingJoin: null, pendingSync: m.pendingSync });
        s.responses.push(joinReply(g, e.requestId, memberId, g.leaderId === memberId, false));
        return;
      }
      g.members.set(memberId, updated);
      prepareRebalance(s, g);
      return;
    case 'Empty':
      assert.fail('an Empty group has no members');
  }
}

/** Why (member id, instance id) may not act in `g`, or NONE. */
function fencing(g: Group, memberId: string, instanceId: string | null): number {
  if (instanceId !== null) {
    const owner = memberByInstance(g, instanceId);
    if (owner === undefined) return E.UNKNOWN_MEMBER_ID;
    if (owner.memberId !== memberId) return E.FENCED_INSTANCE_ID;
    return E.NONE;
  }
  const m = g.members.get(memberId);
  if (m === undefined) return E.UNKNOWN_MEMBER_ID;
  // A static member's id used without its instance id is still that member (Kafka accepts it).
  return E.NONE;
}

function joinReply(
  g: Group,
  requestId: number,
  memberId: string,
  isLeader: boolean,
  skipAssignment: boolean,
): GroupResponse {
  const members: JoinMemberInfo[] = [];
  if (isLeader) {
    for (const m of g.members.values()) {
      members.push({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        metadata: protocolMetadata(m, g.protocolName),
      });
    }
  }
  return {
    kind: 'join',
    requestId,
    error: E.NONE,
    memberId,
    generation: g.generation,
    protocolType: g.protocolType ?? '',
    protocolName: g.protocolName ?? '',
    leaderId: g.leaderId ?? '',
    members,
    skipAssignment,
  };
}

function protocolMetadata(m: GroupMember, protocol: string | null): Uint8Array {
  return m.protocols.find((p) => p.name === protocol)?.metadata ?? EMPTY_BYTES;
}

function prepareRebalance(s: Step, g: MutableGroup): void {
  // Syncs still waiting belong to a generation that will not complete.
  for (const [id, m] of g.members) {
    if (m.pendingSync !== null) {
      s.responses.push(syncReply(m.pendingSync, E.REBALANCE_IN_PROGRESS));
      g.members.set(id, { ...m, pendingSync: null });
    }
  }
  const initial = g.state === 'Empty';
  g.state = 'PreparingRebalance';
  g.stateTick = s.now;
  let timeout = 0;
  for (const m of g.members.values()) timeout = Math.max(timeout, m.rebalanceTimeoutTicks);
  g.phaseDeadlineTick = s.now + timeout;
  g.joinNotBeforeTick = initial ? s.now + s.limits.initialRebalanceDelayTicks : -1;
  maybeCompleteJoin(s, g);
}

function maybeCompleteJoin(s: Step, g: MutableGroup): void {
  assert.equal(g.state, 'PreparingRebalance');
  if (s.now < g.joinNotBeforeTick) return;
  for (const m of g.members.values()) if (m.pendingJoin === null) return;
  completeJoin(s, g);
}

/** Ends the join phase: members that did not rejoin are out (Kafka's max poll interval rule). */
function completeJoin(s: Step, g: MutableGroup): void {
  for (const [id, m] of g.members) if (m.pendingJoin === null) g.members.delete(id);
  g.generation++;
  g.stateTick = s.now;
  g.joinNotBeforeTick = -1;
  if (g.members.size === 0) {
    toEmpty(s, g);
    return;
  }
  g.protocolName = selectProtocol(g);
  if (g.leaderId === null || !g.members.has(g.leaderId))
    g.leaderId = g.members.keys().next().value!;
  g.state = 'CompletingRebalance';
  let timeout = 0;
  for (const [id, m] of g.members) {
    timeout = Math.max(timeout, m.rebalanceTimeoutTicks);
    const reply = joinReply(g, m.pendingJoin!, id, id === g.leaderId, false);
    s.responses.push(reply);
    g.members.set(id, {
      ...m,
      pendingJoin: null,
      heartbeatDeadlineTick: s.now + m.sessionTimeoutTicks,
    });
  }
  g.phaseDeadlineTick = s.now + timeout;
}

function toEmpty(s: Step, g: MutableGroup): void {
  g.state = 'Empty';
  g.stateTick = s.now;
  g.protocolName = null;
  g.leaderId = null;
  g.phaseDeadlineTick = -1;
  g.joinNotBeforeTick = -1;
  s.records.push(groupRecord(g));
}

/** Each member votes for its most preferred protocol among the common ones; most votes wins. */
function selectProtocol(g: Group): string {
  const common = commonProtocols(g.members.values());
  assert.ok(common.length > 0, 'joins are refused unless a protocol is common');
  const votes = new Map(common.map((n) => [n, 0]));
  for (const m of g.members.values()) {
    const choice = m.protocols.find((p) => votes.has(p.name))!.name;
    votes.set(choice, votes.get(choice)! + 1);
  }
  let best = common[0]!;
  for (const n of common) if (votes.get(n)! > votes.get(best)!) best = n;
  return best;
}

// ---------------------------------------------------------------------------------------------
// Sync, heartbeat, leave

type SyncEvent = Extract<GroupEvent, { type: 'sync' }>;

function syncReply(
  requestId: number,
  error: number,
  g?: Group,
  assignment = EMPTY_BYTES,
): GroupResponse {
  return {
    kind: 'sync',
    requestId,
    error,
    protocolType: g?.protocolType ?? '',
    protocolName: g?.protocolName ?? '',
    assignment,
  };
}

/** The checks sync, heartbeat and commit share: group, member, instance, generation. */
function memberCheck(
  g: Group | undefined,
  memberId: string,
  instanceId: string | null,
  generation: number,
): number {
  if (g === undefined || g.state === 'Empty') return E.UNKNOWN_MEMBER_ID;
  const fenced = fencing(g, memberId, instanceId);
  if (fenced !== E.NONE) return fenced;
  if (generation !== g.generation) return E.ILLEGAL_GENERATION;
  return E.NONE;
}

function sync(s: Step, e: SyncEvent): void {
  const g = s.group(e.groupId);
  const err = memberCheck(g, e.memberId, e.groupInstanceId, e.generation);
  if (err !== E.NONE || g === undefined) {
    s.responses.push(syncReply(e.requestId, err));
    return;
  }
  const m = g.members.get(e.memberId)!;
  if (g.state === 'PreparingRebalance') {
    s.responses.push(syncReply(e.requestId, E.REBALANCE_IN_PROGRESS));
    return;
  }
  if (g.state === 'Stable') {
    g.members.set(e.memberId, { ...m, heartbeatDeadlineTick: s.now + m.sessionTimeoutTicks });
    s.responses.push(syncReply(e.requestId, E.NONE, g, m.assignment));
    return;
  }
  // CompletingRebalance.
  if (e.memberId === g.leaderId) {
    const bad = validateAssignments(s, g, e);
    if (bad !== E.NONE) {
      s.responses.push(syncReply(e.requestId, bad));
      return;
    }
  }
  if (m.pendingSync !== null) s.responses.push(syncReply(m.pendingSync, E.REBALANCE_IN_PROGRESS));
  g.members.set(e.memberId, {
    ...m,
    pendingSync: e.requestId,
    heartbeatDeadlineTick: s.now + m.sessionTimeoutTicks,
  });
  if (e.memberId !== g.leaderId) return;
  const given = new Map(e.assignments.map((a) => [a.memberId, a.assignment]));
  g.state = 'Stable';
  g.stateTick = s.now;
  g.phaseDeadlineTick = -1;
  for (const [id, member] of g.members) {
    g.members.set(id, { ...member, assignment: given.get(id)?.slice() ?? EMPTY_BYTES });
  }
  s.records.push(groupRecord(g));
  for (const [id, member] of g.members) {
    if (member.pendingSync === null) continue;
    s.responses.push(syncReply(member.pendingSync, E.NONE, g, member.assignment));
    g.members.set(id, { ...member, pendingSync: null });
  }
}

function validateAssignments(s: Step, g: Group, e: SyncEvent): number {
  const seen = new Set<string>();
  for (const a of e.assignments) {
    // Kafka ignores assignments for members that are not in the generation; so do we.
    if (seen.has(a.memberId)) return E.INVALID_REQUEST;
    seen.add(a.memberId);
    if (a.assignment.length > s.limits.metadataBytesMax) return E.GROUP_METADATA_TOO_LARGE;
  }
  return g.members.size > 0 ? E.NONE : E.UNKNOWN_MEMBER_ID;
}

type HeartbeatEvent = Extract<GroupEvent, { type: 'heartbeat' }>;

function heartbeat(s: Step, e: HeartbeatEvent): void {
  const g = s.group(e.groupId);
  const err = memberCheck(g, e.memberId, e.groupInstanceId, e.generation);
  if (err !== E.NONE || g === undefined) {
    s.responses.push({ kind: 'heartbeat', requestId: e.requestId, error: err });
    return;
  }
  const m = g.members.get(e.memberId)!;
  g.members.set(e.memberId, { ...m, heartbeatDeadlineTick: s.now + m.sessionTimeoutTicks });
  const error = g.state === 'PreparingRebalance' ? E.REBALANCE_IN_PROGRESS : E.NONE;
  s.responses.push({ kind: 'heartbeat', requestId: e.requestId, error });
}

type LeaveEvent = Extract<GroupEvent, { type: 'leave' }>;

function leave(s: Step, e: LeaveEvent): void {
  const g = s.group(e.groupId);
  let error: number = E.UNKNOWN_MEMBER_ID;
  let target: GroupMember | undefined;
  if (g !== undefined) {
    if (e.groupInstanceId !== null) {
      target = memberByInstance(g, e.groupInstanceId);
      if (target !== undefined && e.memberId !== '' && target.memberId !== e.memberId) {
        target = undefined;
        error = E.FENCED_INSTANCE_ID;
      }
    } else {
      target = g.members.get(e.memberId);
    }
  }
  if (g === undefined || target === undefined) {
    s.responses.push({ kind: 'leave', requestId: e.requestId, error });
    return;
  }
  removeMember(s, g, target, E.UNKNOWN_MEMBER_ID);
  s.responses.push({ kind: 'leave', requestId: e.requestId, error: E.NONE });
}

/** Removes a member (left, expired or fenced out) and rebalances what remains. */
function removeMember(s: Step, g: MutableGroup, m: GroupMember, pendingError: number): void {
  if (m.pendingJoin !== null) s.responses.push(joinError(m.pendingJoin, pendingError, m.memberId));
  if (m.pendingSync !== null) s.responses.push(syncReply(m.pendingSync, pendingError));
  g.members.delete(m.memberId);
  if (g.leaderId === m.memberId) g.leaderId = null;
  if (g.state === 'PreparingRebalance') maybeCompleteJoin(s, g);
  else prepareRebalance(s, g);
}

// ---------------------------------------------------------------------------------------------
// Offsets

type CommitEvent = Extract<GroupEvent, { type: 'commit' }>;

function commit(s: Step, e: CommitEvent): void {
  const { error, group: g } = commitTarget(s, e);
  if (g === undefined) {
    const partitions = e.offsets.map((o) => ({ topic: o.topic, partition: o.partition, error }));
    s.responses.push({ kind: 'commit', requestId: e.requestId, error, partitions });
    return;
  }
  const results: PartitionResult[] = [];
  for (const o of e.offsets) {
    const error = offsetError(s, g, o);
    results.push({ topic: o.topic, partition: o.partition, error });
    if (error !== E.NONE) continue;
    g.offsets.set(offsetKey(o.topic, o.partition), {
      offset: o.offset,
      metadata: o.metadata,
      commitTick: s.now,
    });
    s.records.push({
      type: 'offset',
      groupId: g.groupId,
      topic: o.topic,
      partition: o.partition,
      offset: o.offset,
      metadata: o.metadata,
      commitTick: s.now,
    });
  }
  // A simple commit that created the group but committed nothing leaves no group behind.
  if (g.offsets.size === 0 && g.state === 'Empty' && !s.base.groups.has(g.groupId)) {
    s.groups.delete(g.groupId);
  }
  s.responses.push({ kind: 'commit', requestId: e.requestId, error: E.NONE, partitions: results });
}

/** The group a commit goes to, or the request-level error that refuses all of it. */
function commitTarget(s: Step, e: CommitEvent): { error: number; group?: MutableGroup } {
  if (e.groupId === '' || nameTooLong(s.limits, e.groupId)) return { error: E.INVALID_GROUP_ID };
  const g = s.group(e.groupId);
  if (e.generation < 0 && e.memberId === '') {
    // A simple commit from outside the group (admin tools, assign-mode consumers).
    if (g !== undefined)
      return g.state === 'Empty' ? { error: E.NONE, group: g } : { error: E.UNKNOWN_MEMBER_ID };
    if (s.groups.size >= s.limits.groupsMax) return { error: E.GROUPS_LIMIT_REACHED };
    return { error: E.NONE, group: s.create(e.groupId) };
  }
  if (g === undefined) return { error: E.ILLEGAL_GENERATION };
  const err = memberCheck(g, e.memberId, e.groupInstanceId, e.generation);
  if (err !== E.NONE) return { error: err };
  // Commits stay open while the group prepares a rebalance (commit on revoke, KIP-429), and
  // close between the join and the sync, when the assignment is about to change.
  if (g.state === 'CompletingRebalance') return { error: E.REBALANCE_IN_PROGRESS };
  const m = g.members.get(e.memberId)!;
  g.members.set(e.memberId, { ...m, heartbeatDeadlineTick: s.now + m.sessionTimeoutTicks });
  return { error: E.NONE, group: g };
}

function offsetError(
  s: Step,
  g: Group,
  o: { topic: string; partition: number; offset: number; metadata: string },
): number {
  if (o.topic === '' || nameTooLong(s.limits, o.topic)) return E.INVALID_TOPIC_EXCEPTION;
  if (!Number.isSafeInteger(o.partition) || o.partition < 0) return E.UNKNOWN_TOPIC_OR_PARTITION;
  if (s.topics !== null && !(o.partition < (s.topics.get(o.topic) ?? 0))) {
    return E.UNKNOWN_TOPIC_OR_PARTITION;
  }
  if (!Number.isSafeInteger(o.offset) || o.offset < 0) return E.INVALID_REQUEST;
  if (utf8.encode(o.metadata).length > s.limits.offsetMetadataBytesMax) {
    return E.OFFSET_METADATA_TOO_LARGE;
  }
  const key = offsetKey(o.topic, o.partition);
  if (!g.offsets.has(key) && g.offsets.size >= s.limits.offsetsPerGroupMax) {
    return E.GROUP_OFFSETS_LIMIT_REACHED;
  }
  return E.NONE;
}

type FetchEvent = Extract<GroupEvent, { type: 'fetch' }>;

function fetch(s: Step, e: FetchEvent): void {
  const g = s.groups.get(e.groupId);
  const partitions: FetchedOffset[] = [];
  const wanted =
    e.partitions ?? [...(g?.offsets.keys() ?? [])].sort(compareKeys).map(splitOffsetKey);
  for (const p of wanted) {
    const c = g?.offsets.get(offsetKey(p.topic, p.partition));
    partitions.push({
      topic: p.topic,
      partition: p.partition,
      offset: c?.offset ?? -1,
      metadata: c?.metadata ?? '',
      error: E.NONE,
    });
  }
  s.responses.push({ kind: 'fetch', requestId: e.requestId, error: E.NONE, partitions });
}

function compareKeys(a: string, b: string): number {
  const x = splitOffsetKey(a);
  const y = splitOffsetKey(b);
  return x.topic < y.topic ? -1 : x.topic > y.topic ? 1 : x.partition - y.partition;
}

// ---------------------------------------------------------------------------------------------
// Tick: session expiry, phase timeouts, offset retention

function tick(s: Step): void {
  for (const groupId of [...s.groups.keys()]) {
    const before = s.groups.get(groupId)!;
    if (!needsTick(before, s)) continue;
    const g = s.group(groupId)!;
    for (const [id, expiry] of g.pendingMemberIds)
      if (s.now >= expiry) g.pendingMemberIds.delete(id);
    for (const m of [...g.members.values()]) {
      const waiting = m.pendingJoin !== null || m.pendingSync !== null;
      if (!waiting && s.now >= m.heartbeatDeadlineTick && g.members.has(m.memberId)) {
        removeMember(s, g, g.members.get(m.memberId)!, E.UNKNOWN_MEMBER_ID);
      }
    }
    if (g.state === 'PreparingRebalance') {
      if (s.now >= g.phaseDeadlineTick) completeJoin(s, g);
      else maybeCompleteJoin(s, g);
    } else if (g.state === 'CompletingRebalance' && s.now >= g.phaseDeadlineTick) {
      // The leader (or some member) never synced: drop the ones that did not and start over.
      for (const m of [...g.members.values()]) {
        if (m.pendingSync === null) {
          g.members.delete(m.memberId);
          if (g.leaderId === m.memberId) g.leaderId = null;
        }
      }
      prepareRebalance(s, g);
    }
    if (g.state === 'Empty') expireOffsets(s, g);
  }
}

function needsTick(g: Group, s: Step): boolean {
  if (g.state === 'Empty') return true;
  if (g.pendingMemberIds.size > 0) return true;
  if (g.phaseDeadlineTick >= 0 && s.now >= g.phaseDeadlineTick) return true;
  if (g.state === 'PreparingRebalance' && g.joinNotBeforeTick >= 0) return true;
  for (const m of g.members.values()) if (s.now >= m.heartbeatDeadlineTick) return true;
  return false;
}

function expireOffsets(s: Step, g: MutableGroup): void {
  const retention = s.limits.offsetsRetentionTicks;
  for (const [key, c] of [...g.offsets].sort((a, b) => compareKeys(a[0], b[0]))) {
    if (s.now >= Math.max(c.commitTick, g.stateTick) + retention) {
      g.offsets.delete(key);
      const { topic, partition } = splitOffsetKey(key);
      s.records.push({ type: 'offset-tombstone', groupId: g.groupId, topic, partition });
    }
  }
  if (g.offsets.size === 0 && s.now >= g.stateTick + retention) {
    s.groups.delete(g.groupId);
    s.records.push({ type: 'group-tombstone', groupId: g.groupId });
  }
}

// ---------------------------------------------------------------------------------------------
// Admin: describe, list, delete

/** How a group that does not exist is described (as Kafka answers: Dead, no members). */
export function deadGroupDescription(groupId: string): GroupDescription {
  return {
    groupId,
    state: 'Dead',
    protocolType: '',
    protocolName: '',
    generation: -1,
    leaderId: '',
    members: [],
  };
}

function describeGroup(
  g: Group | undefined,
  groupId: string,
): { error: number; group: GroupDescription } {
  if (g === undefined) return { error: E.GROUP_ID_NOT_FOUND, group: deadGroupDescription(groupId) };
  return {
    error: E.NONE,
    group: {
      groupId,
      state: g.state,
      protocolType: g.protocolType ?? '',
      protocolName: g.protocolName ?? '',
      generation: g.generation,
      leaderId: g.leaderId ?? '',
      members: [...g.members.values()].map((m) => ({
        memberId: m.memberId,
        groupInstanceId: m.groupInstanceId,
        clientId: m.clientId,
        metadata: protocolMetadata(m, g.protocolName),
        assignment: m.assignment,
      })),
    },
  };
}

function listGroups(groups: ReadonlyMap<string, Group>) {
  return [...groups.values()]
    .map((g) => ({ groupId: g.groupId, state: g.state, protocolType: g.protocolType ?? '' }))
    .sort((a, b) => (a.groupId < b.groupId ? -1 : a.groupId > b.groupId ? 1 : 0));
}

function deleteGroup(s: Step, requestId: number, groupId: string): void {
  const g = s.groups.get(groupId);
  if (g === undefined) {
    s.responses.push({ kind: 'delete-group', requestId, error: E.GROUP_ID_NOT_FOUND });
    return;
  }
  if (g.state !== 'Empty') {
    s.responses.push({ kind: 'delete-group', requestId, error: E.NON_EMPTY_GROUP });
    return;
  }
  for (const key of [...g.offsets.keys()].sort(compareKeys)) {
    const { topic, partition } = splitOffsetKey(key);
    s.records.push({ type: 'offset-tombstone', groupId, topic, partition });
  }
  s.records.push({ type: 'group-tombstone', groupId });
  s.groups.delete(groupId);
  s.responses.push({ kind: 'delete-group', requestId, error: E.NONE });
}

type DeleteOffsetsEvent = Extract<GroupEvent, { type: 'delete-offsets' }>;

/** Only from Empty groups: a live group's members may still be consuming those partitions. */
function deleteOffsets(s: Step, e: DeleteOffsetsEvent): void {
  const before = s.groups.get(e.groupId);
  const error =
    before === undefined
      ? E.GROUP_ID_NOT_FOUND
      : before.state !== 'Empty'
        ? E.NON_EMPTY_GROUP
        : E.NONE;
  if (error !== E.NONE) {
    s.responses.push({ kind: 'delete-offsets', requestId: e.requestId, error, partitions: [] });
    return;
  }
  const g = s.group(e.groupId)!;
  const partitions: PartitionResult[] = [];
  for (const p of e.partitions) {
    const key = offsetKey(p.topic, p.partition);
    if (g.offsets.delete(key)) {
      s.records.push({ type: 'offset-tombstone', groupId: g.groupId, ...p });
    }
    partitions.push({ topic: p.topic, partition: p.partition, error: E.NONE });
  }
  s.responses.push({ kind: 'delete-offsets', requestId: e.requestId, error: E.NONE, partitions });
}

// ---------------------------------------------------------------------------------------------
// Records

/** The group record of `g` as it stands (written when a generation completes or it empties). */
export function groupRecord(g: Group): GroupRecord {
  const members: PersistedMember[] = [...g.members.values()].map((m) => ({
    memberId: m.memberId,
    groupInstanceId: m.groupInstanceId,
    clientId: m.clientId,
    sessionTimeoutTicks: m.sessionTimeoutTicks,
    rebalanceTimeoutTicks: m.rebalanceTimeoutTicks,
    protocols: m.protocols,
    assignment: m.assignment,
  }));
  return {
    type: 'group',
    groupId: g.groupId,
    stateTick: g.stateTick,
    protocolType: g.protocolType,
    protocolName: g.protocolName,
    generation: g.generation,
    leaderId: g.leaderId,
    members,
  };
}
