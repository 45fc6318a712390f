// The data types of the Raft core: identifiers, log entries, hard state, configurations,
// snapshots, messages and the Ready batch. Plain data only: no behaviour, no I/O.
//
// Identifiers are branded numbers so a term cannot be passed where an index is expected.
// Entry payloads are `Uint8Array`s that the core never copies, reads or mutates: an entry may be
// a whole RecordBatch of several megabytes, owned by the caller's log storage.

export type Term = number & { readonly __brand: 'Term' };
export type LogIndex = number & { readonly __brand: 'LogIndex' };
export type NodeId = number & { readonly __brand: 'NodeId' };

export const asTerm = (n: number): Term => n as Term;
export const asIndex = (n: number): LogIndex => n as LogIndex;
export const asNodeId = (n: number): NodeId => n as NodeId;

/** "No node": used for `vote` and `lead` when there is none. Real node ids are >= 1. */
export const NONE = 0 as NodeId;

export const EntryType = {
  /** Application data (for a partition: one RecordBatch). Empty data is the leader's no-op. */
  Normal: 0,
  /** A configuration entry: `data` is encoded by `encodeConfState` (conf.ts). */
  Conf: 1,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** One log entry. `data` is never copied by the core. */
export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

/** What must be durable before a vote or an acknowledgement leaves the node. */
export interface HardState {
  readonly term: Term;
  readonly vote: NodeId;
  readonly commit: LogIndex;
}

/**
 * A cluster configuration: the voters (who elect and whose majority commits) and the learners
 * (who receive the log but neither vote nor count). Invariants:
 *   1. `voters` and `learners` are sorted ascending and disjoint, without duplicates.
 *   2. Two consecutive configurations differ by at most one voter (single-server change, Raft
 *      thesis §4.1), which is what makes every majority of one intersect every majority of the
 *      other.
 */
export interface ConfState {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

export interface SnapshotMeta {
  /** The last index the snapshot covers, and its term. */
  readonly index: LogIndex;
  readonly term: Term;
  /** The configuration in force at `index` (the latest configuration entry at or before it). */
  readonly conf: ConfState;
}

export interface Snapshot {
  readonly meta: SnapshotMeta;
  /** The application's state at `meta.index`; opaque to the core and never copied. */
  readonly data: Uint8Array;
}

export const MessageType = {
  PreVote: 'prevote',
  PreVoteResp: 'prevote-resp',
  Vote: 'vote',
  VoteResp: 'vote-resp',
  Append: 'append',
  AppendResp: 'append-resp',
  Heartbeat: 'heartbeat',
  HeartbeatResp: 'heartbeat-resp',
  Snapshot: 'snapshot',
  TimeoutNow: 'timeout-now',
  ReadIndex: 'read-index',
  ReadIndexResp: 'read-index-resp',
} as const;
export type MessageType = (typeof MessageType)[keyof typeof MessageType];

/** The `context` a candidate puts in its votes when a leadership transfer forced the election. */
export const CAMPAIGN_TRANSFER = 'transfer';

/**
 * The `context` of a leader's heartbeat that tells the follower to quiesce (stop its election
 * timer) because the group is idle and fully replicated; see `RaftConfig.quiesce`.
 */
export const HEARTBEAT_QUIESCE = 'quiesce';

/**
 * One message between nodes. All fields are always present (defaults from `message()`), so a
 * transport can encode them with a fixed schema. Field meaning by type:
 *   - prevote/vote: `index`/`logTerm` are the candidate's last entry; `context` may be
 *     CAMPAIGN_TRANSFER.
 *   - append: `index`/`logTerm` identify the entry preceding `entries`; `commit` is the leader's
 *     commit index.
 *   - append-resp: `index` is the follower's last matching index, or on `reject` the rejected
 *     `index`, with `rejectHint`/`logTerm` pointing at where the follower's log may match.
 *   - heartbeat: `commit` is min(leader commit, follower match); `readSeq` is the latest
 *     ReadIndex round. heartbeat-resp echoes `readSeq`. `context` HEARTBEAT_QUIESCE: the group
 *     is idle and the follower holds everything; it quiesces and does not answer.
 *   - read-index / read-index-resp: `context` names the read; the response's `index` is the read
 *     index.
 */
export interface Message {
  readonly type: MessageType;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: Term;
  readonly logTerm: Term;
  readonly index: LogIndex;
  readonly entries: readonly Entry[];
  readonly commit: LogIndex;
  readonly reject: boolean;
  readonly rejectHint: LogIndex;
  readonly snapshot: Snapshot | null;
  readonly context: string;
  readonly readSeq: number;
}

const EMPTY: readonly Entry[] = Object.freeze([]);

export function message(
  fields: Pick<Message, 'type' | 'from' | 'to' | 'term'> & Partial<Message>,
): Message {
  return {
    logTerm: 0 as Term,
    index: 0 as LogIndex,
    entries: EMPTY,
    commit: 0 as LogIndex,
    reject: false,
    rejectHint: 0 as LogIndex,
    snapshot: null,
    context: '',
    readSeq: 0,
    ...fields,
  };
}

export const StateRole = {
  Follower: 'follower',
  PreCandidate: 'pre-candidate',
  Candidate: 'candidate',
  Leader: 'leader',
} as const;
export type StateRole = (typeof StateRole)[keyof typeof StateRole];

/** Volatile state worth reporting (not persisted). */
export interface SoftState {
  readonly lead: NodeId;
  readonly role: StateRole;
}

/** A linearizable read point: serve the read named `context` once `applied >= index`. */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: string;
}

/**
 * Everything the node asks its caller to do, as one batch. The contract (see docs/raft.md):
 *   1. Persist `snapshot` (if any), then `entries` (appending at `entries[0].index`, which
 *      truncates any stored suffix from that index), then `hardState` (if any). These must be
 *      durable (fsynced when `mustSync`) before step 2.
 *   2. Then, in any order: send `messages`; apply `committedEntries` in order (after installing
 *      `snapshot` into the state machine); serve `readStates` once applied reaches their index.
 *   3. Call `advance()`. No other `ready()` may be taken before it; `step`, `tick` and
 *      `propose` may be called at any time, also between `ready()` and `advance()`.
 */
export interface Ready {
  readonly softState: SoftState | null;
  readonly hardState: HardState | null;
  readonly snapshot: Snapshot | null;
  readonly entries: readonly Entry[];
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /**
   * Ranges [lo, hi) the core needed from storage but `LogStorage.available` said are not in
   * memory (appends to lagging followers, committed entries to apply). Load them (each may be
   * served in several prefetches; the core asks again for what is still missing), then call
   * `entriesFetched()`. At most one range per follower plus one for applying.
   */
  readonly entriesWanted: readonly EntryRange[];
  /** True when the hard state's term or vote changed or there are entries or a snapshot. */
  readonly mustSync: boolean;
}

/** A half-open range of log indexes [lo, hi). */
export interface EntryRange {
  readonly lo: LogIndex;
  readonly hi: LogIndex;
}

export const ConfChangeType = {
  AddLearner: 'add-learner',
  AddVoter: 'add-voter',
  Remove: 'remove',
} as const;
export type ConfChangeType = (typeof ConfChangeType)[keyof typeof ConfChangeType];

export interface ConfChange {
  readonly type: ConfChangeType;
  readonly node: NodeId;
}
