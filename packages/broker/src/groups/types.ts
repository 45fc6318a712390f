// The consumer-group coordinator's pure state, events and responses (docs/groups.md). Time is
// ticks: the shell converts milliseconds into ticks before an event reaches the state machine,
// and the state machine reads no clock. Byte fields (protocol metadata, assignments) are opaque
// here, as in Kafka's classic protocol: the assignor runs in the members' leader.

export type GroupStateName =
  | 'Empty'
  | 'PreparingRebalance'
  | 'CompletingRebalance'
  | 'Stable'
  | 'Dead';

export interface MemberProtocol {
  readonly name: string;
  readonly metadata: Uint8Array;
}

/** A member as the coordinator holds it: its record fields plus the transient ones. */
export interface GroupMember extends PersistedMember {
  // Transient (not in records): rebuilt when a coordinator loads the group.
  readonly heartbeatDeadlineTick: number;
  /** The request id of a join waiting for the rebalance to complete, or null. */
  readonly pendingJoin: number | null;
  /** The request id of a sync waiting for the leader's assignments, or null. */
  readonly pendingSync: number | null;
}

export interface CommittedOffset {
  readonly offset: number;
  readonly metadata: string;
  readonly commitTick: number;
}

export interface Group {
  readonly groupId: string;
  readonly state: Exclude<GroupStateName, 'Dead'>;
  /** The tick the group entered its state (offsets of an Empty group expire from it). */
  readonly stateTick: number;
  readonly protocolType: string | null;
  readonly protocolName: string | null;
  readonly generation: number;
  readonly leaderId: string | null;
  /** In join order. */
  readonly members: ReadonlyMap<string, GroupMember>;
  /** Ids handed out with MEMBER_ID_REQUIRED, waiting for the rejoin: id -> expiry tick. */
  readonly pendingMemberIds: ReadonlyMap<string, number>;
  /** When the current join or sync phase gives up on members that did not answer (-1: none). */
  readonly phaseDeadlineTick: number;
  /** A join phase does not complete before this tick (the initial rebalance delay). */
  readonly joinNotBeforeTick: number;
  /** Keyed by offsetKey(topic, partition). */
  readonly offsets: ReadonlyMap<string, CommittedOffset>;
}

export interface GroupLimits {
  readonly groupsMax: number;
  readonly membersPerGroupMax: number;
  readonly offsetsPerGroupMax: number;
  readonly protocolsPerMemberMax: number;
  /** Sum of one member's protocol metadata, and one member's assignment. */
  readonly metadataBytesMax: number;
  readonly offsetMetadataBytesMax: number;
  /** Group ids, instance ids, client ids, protocol names and types, topic names. */
  readonly nameBytesMax: number;
  readonly sessionTimeoutTicksMin: number;
  readonly sessionTimeoutTicksMax: number;
  readonly rebalanceTimeoutTicksMax: number;
  readonly initialRebalanceDelayTicks: number;
  /** Offsets of an Empty group expire this long after the later of commit and emptiness. */
  readonly offsetsRetentionTicks: number;
}

/** Ticks of 100 ms: Kafka's defaults (session 6 s..30 min, offsets kept 7 days). */
export const DEFAULT_GROUP_LIMITS: GroupLimits = {
  groupsMax: 10_000,
  membersPerGroupMax: 1000,
  offsetsPerGroupMax: 100_000,
  protocolsPerMemberMax: 16,
  metadataBytesMax: 64 * 1024,
  offsetMetadataBytesMax: 4096,
  nameBytesMax: 255,
  sessionTimeoutTicksMin: 60,
  sessionTimeoutTicksMax: 18_000,
  rebalanceTimeoutTicksMax: 18_000,
  initialRebalanceDelayTicks: 30,
  offsetsRetentionTicks: 7 * 24 * 36_000,
};

export interface CoordinatorState {
  readonly limits: GroupLimits;
  readonly groups: ReadonlyMap<string, Group>;
  /** Member ids are `${clientId}-${memberIdSeed}-${seq}`: the seed differs per coordinator epoch. */
  readonly memberIdSeed: string;
  readonly nextMemberSeq: number;
  /** Partition counts by topic, when the shell knows them (commits are checked against them). */
  readonly topics: ReadonlyMap<string, number> | null;
}

export interface TopicPartition {
  readonly topic: string;
  readonly partition: number;
}

export interface OffsetToCommit extends TopicPartition {
  readonly offset: number;
  readonly metadata: string;
}

/** Both front ends map onto these: native requests and Kafka's classic group APIs. */
export type GroupEvent =
  | {
      readonly type: 'join';
      readonly requestId: number;
      readonly groupId: string;
      /** null (or '') for a member joining for the first time. */
      readonly memberId: string | null;
      readonly groupInstanceId: string | null;
      readonly clientId: string;
      readonly protocolType: string;
      readonly protocols: readonly MemberProtocol[];
      readonly sessionTimeoutTicks: number;
      readonly rebalanceTimeoutTicks: number;
      /** JoinGroup v4+ (KIP-394): a new dynamic member gets MEMBER_ID_REQUIRED and an id first. */
      readonly requireKnownMemberId: boolean;
    }
  | {
      readonly type: 'sync';
      readonly requestId: number;
      readonly groupId: string;
      readonly generation: number;
      readonly memberId: string;
      readonly groupInstanceId: string | null;
      /** The leader's assignments; empty from followers. */
      readonly assignments: readonly {
        readonly memberId: string;
        readonly assignment: Uint8Array;
      }[];
    }
  | {
      readonly type: 'heartbeat';
      readonly requestId: number;
      readonly groupId: string;
      readonly generation: number;
      readonly memberId: string;
      readonly groupInstanceId: string | null;
    }
  | {
      readonly type: 'leave';
      readonly requestId: number;
      readonly groupId: string;
      /** '' with a groupInstanceId removes that static member (KIP-345 admin removal). */
      readonly memberId: string;
      readonly groupInstanceId: string | null;
    }
  | {
      readonly type: 'commit';
      readonly requestId: number;
      readonly groupId: string;
      /** -1 with memberId '' is a simple commit from outside the group (Empty groups only). */
      readonly generation: number;
      readonly memberId: string;
      readonly groupInstanceId: string | null;
      readonly offsets: readonly OffsetToCommit[];
    }
  | {
      readonly type: 'fetch';
      readonly requestId: number;
      readonly groupId: string;
      /** null: every committed offset of the group. */
      readonly partitions: readonly TopicPartition[] | null;
    }
  | { readonly type: 'tick' }
  | { readonly type: 'topics'; readonly partitionCounts: ReadonlyMap<string, number> | null }
  | { readonly type: 'describe'; readonly requestId: number; readonly groupId: string }
  | { readonly type: 'list'; readonly requestId: number }
  | { readonly type: 'delete-group'; readonly requestId: number; readonly groupId: string }
  | {
      readonly type: 'delete-offsets';
      readonly requestId: number;
      readonly groupId: string;
      readonly partitions: readonly TopicPartition[];
    };

export interface JoinMemberInfo {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly metadata: Uint8Array;
}

export interface PartitionResult extends TopicPartition {
  readonly error: number;
}

export interface FetchedOffset extends TopicPartition {
  /** -1 when nothing is committed. */
  readonly offset: number;
  readonly metadata: string;
  readonly error: number;
}

export interface MemberDescription {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  /** The member's metadata for the group's protocol (empty when none is chosen). */
  readonly metadata: Uint8Array;
  readonly assignment: Uint8Array;
}

export interface GroupDescription {
  readonly groupId: string;
  readonly state: GroupStateName;
  readonly protocolType: string;
  readonly protocolName: string;
  readonly generation: number;
  readonly leaderId: string;
  readonly members: readonly MemberDescription[];
}

/** Every response echoes the request id of the event it answers (joins and syncs may answer later). */
export type GroupResponse =
  | {
      readonly kind: 'join';
      readonly requestId: number;
      readonly error: number;
      readonly memberId: string;
      readonly generation: number;
      readonly protocolType: string;
      readonly protocolName: string;
      readonly leaderId: string;
      /** The full list for the leader, empty for followers. */
      readonly members: readonly JoinMemberInfo[];
      /** KIP-814: a static leader rejoined a Stable group; it must not reassign. */
      readonly skipAssignment: boolean;
    }
  | {
      readonly kind: 'sync';
      readonly requestId: number;
      readonly error: number;
      readonly protocolType: string;
      readonly protocolName: string;
      readonly assignment: Uint8Array;
    }
  | { readonly kind: 'heartbeat'; readonly requestId: number; readonly error: number }
  | { readonly kind: 'leave'; readonly requestId: number; readonly error: number }
  | {
      readonly kind: 'commit';
      readonly requestId: number;
      readonly error: number;
      readonly partitions: readonly PartitionResult[];
    }
  | {
      readonly kind: 'fetch';
      readonly requestId: number;
      readonly error: number;
      readonly partitions: readonly FetchedOffset[];
    }
  | {
      readonly kind: 'describe';
      readonly requestId: number;
      readonly error: number;
      readonly group: GroupDescription;
    }
  | {
      readonly kind: 'list';
      readonly requestId: number;
      readonly groups: readonly {
        readonly groupId: string;
        readonly state: GroupStateName;
        readonly protocolType: string;
      }[];
    }
  | { readonly kind: 'delete-group'; readonly requestId: number; readonly error: number }
  | {
      readonly kind: 'delete-offsets';
      readonly requestId: number;
      readonly error: number;
      readonly partitions: readonly PartitionResult[];
    };

export interface PersistedMember {
  readonly memberId: string;
  readonly groupInstanceId: string | null;
  readonly clientId: string;
  readonly sessionTimeoutTicks: number;
  readonly rebalanceTimeoutTicks: number;
  readonly protocols: readonly MemberProtocol[];
  readonly assignment: Uint8Array;
}

/**
 * What the coordinator writes to its `__consumer_offsets` partition (compacted: the key of a group
 * record is the group id, of an offset record the group, topic and partition; a tombstone is the
 * key with no value). Replaying them rebuilds the state (records.ts).
 */
export type GroupRecord =
  | {
      readonly type: 'group';
      readonly groupId: string;
      readonly stateTick: number;
      readonly protocolType: string | null;
      readonly protocolName: string | null;
      readonly generation: number;
      readonly leaderId: string | null;
      readonly members: readonly PersistedMember[];
    }
  | { readonly type: 'group-tombstone'; readonly groupId: string }
  | {
      readonly type: 'offset';
      readonly groupId: string;
      readonly topic: string;
      readonly partition: number;
      readonly offset: number;
      readonly metadata: string;
      readonly commitTick: number;
    }
  | {
      readonly type: 'offset-tombstone';
      readonly groupId: string;
      readonly topic: string;
      readonly partition: number;
    };

/**
 * One step's output. The shell appends `records` to the group's partition first and sends
 * `responses` once they are committed (a commit is acknowledged only when it is durable).
 */
export interface StepResult {
  readonly state: CoordinatorState;
  readonly responses: readonly GroupResponse[];
  readonly records: readonly GroupRecord[];
}

export function offsetKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export function splitOffsetKey(key: string): TopicPartition {
  const i = key.lastIndexOf('\u0000');
  return { topic: key.slice(0, i), partition: Number(key.slice(i + 1)) };
}
