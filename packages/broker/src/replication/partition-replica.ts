// PartitionReplica: one partition's replica on this broker, a Raft group whose log IS the
// partition's segment log (issue 9, docs/replication.md). It implements `HostedGroup`
// (cluster/contract.ts): the broker's GroupHost ticks it, routes its messages and runs
// `process()`; it knows no timers and no sockets.
//
// PUBLIC API (stable from milestone 1; changes are additive only):
//   static open(options: PartitionReplicaOptions): Promise<PartitionReplica>
//   propose(batches: Buffer, acks: 0 | 1 | -1, options?: { crcVerified? }): Promise<ProduceResult>
//   read(offset, maxBytes): Promise<{ data: Buffer; nextOffset: number }> capped at the HW
//   checkReadable(): void   LEADER_NOT_AVAILABLE on a leader whose term has not committed yet
//   highWatermark, logStartOffset, logEndOffset: number
//   role: ReplicaRole; leaderId: NodeId (NONE = 0 when unknown); leaderEpoch: number (term)
//   leaderHint: { leaderId, leaderEpoch }   leaderId, or on a leader that handed its leadership
//                                  over, the target while it campaigns (see `successorHint`)
//   quiesced: boolean (idle group, no ticks or heartbeats; default on, raft.quiesce: false off)
//   inSyncReplicas(): NodeId[]       on the leader; [] elsewhere
//   replicaLag(): per follower { id, entriesBehind, ticksBehind } on the leader; [] elsewhere
//   onChange(listener: (e: ReplicaChange) => void): () => void   HW advances, role changes
//   durableEndOffset: number; stats(): tail, cache, prefetch and pending counters
//   partitionLog: PartitionLog   read-only use (offset by timestamp, sizes)
//   transferLeadership(to: NodeId): void; campaignIfSoleVoter(): void   (a cluster of one)
//   campaignIfUnelected(): void   (a new partition's preferred replica, cluster-node.ts)
//   changeMembership(change: ConfChange): Promise<void>; configuration: ConfState   (leader)
//   deleteRecordsBefore(offset): Promise<number>; enforceRetention(): Promise<number>  leader only
//   close(): Promise<void>
//   HostedGroup: key, tick(), step(m), reportUnreachable(peer), hasWork(), process()
//   Errors: NotLeaderError (NOT_LEADER_OR_FOLLOWER 6, `leaderHint`), REPLICA_PROPOSALS_FULL
//   (1110, retriable) beyond `pendingBytesMax` or the broker-wide `uncommittedBudget`,
//   SHUTTING_DOWN after close, the storage error that took the replica offline (`offlineError`).
//
// The broker-wide budget (`uncommittedBudget`, one ByteBudget shared by every replica of the
// broker): a produce reserves its bytes when it is accepted and releases them once its entries
// are committed (the high watermark passed them), or when it fails or the replica stops
// leading. So the bytes proposed and not yet committed on this broker's leaders (which are also
// what is in flight to their followers) stay within it whatever the partition count; a produce
// that would pass it is refused at once, before anything is queued. One request larger than the
// whole budget is let through when nothing is reserved (as `pendingBytesMax` does).
//
// Offsets. The leader stamps each batch's baseOffset (the next offset of its Raft log,
// unstable entries included) and partitionLeaderEpoch (= the term) when it proposes; one entry
// per batch. It can do that only once everything in its log is placed: right after an election
// its log may end in entries still being persisted (and the no-op, whose control batch takes
// one offset), so proposals wait in a bounded queue until the log written equals the core's
// last index, and from then on, within that term, every entry appended is one this class
// proposed: `leaderNext` follows them exactly.
//
// Acknowledgements. acks=0 answers once proposed; acks=1 once the leader's own batch is written
// to the OS (PartitionLog's onWritten); acks=all (-1) once the core's commit index covers the
// last batch, i.e. a quorum holds it durably under the topic's durability policy ('always':
// fsynced; 'interval'/'none': written to the OS, see docs/replication.md). A leader that loses
// its role or term fails everything pending with NOT_LEADER_OR_FOLLOWER; the client retries
// (with idempotence, without duplicates).
//
// Sending while the leader's own fsync runs (etcd-raft's asynchronous storage writes, Raft
// thesis §10.2.1). The Ready contract says messages leave after the Ready is durable; this
// shell sends a LEADER's messages BEFORE persisting, when the Ready does not change the saved
// term or vote and installs no snapshot. Why that is safe:
//   - What the contract protects is promises made to others: a vote (term, vote) and an
//     acknowledgement of entries (append-resp). A leader whose term and vote are unchanged
//     makes neither: its messages are appends, heartbeats, snapshots, timeout-now and
//     rejections, none of which claims anything about its own disk.
//   - The leader counts its own copy toward the commit index only once it is durable (the
//     core's durable index, reported by `durableTo`, below), so an entry is committed only when
//     a quorum (with or without the leader) has it durably.
//   - If the leader crashes before its write, followers may hold entries the leader lost; that
//     is an ordinary Raft log divergence, resolved by the next leader (the entries were never
//     committed through the lost copy).
// A Ready that changes term or vote (an election) is persisted first, as the contract says,
// with one exception: requests for votes (Vote, PreVote) leave at once, before the candidate's
// own hard state (term, vote for itself) is saved. A request promises nothing: the voters
// persist their own vote before answering (below), and what the candidate's term and self-vote
// protect is its acting as leader, and every message it sends as leader comes from a later
// Ready, taken only once this one's hard state is saved (`process()` is serialized). A
// candidate that crashes before the save has sent nothing but the requests; the votes it got
// are for a term it never led in. (etcd-raft's asynchronous storage writes send MsgVote the
// same way, only the self-vote waits for the disk.) That takes the candidate's hard-state
// write (a file replaced with two fsyncs) off a leadership transfer's critical path: it runs
// in parallel with the voters' (issue 12, the rolling-restart hand-over).
// So acks=all costs about one fsync round (the leader's and the followers' run in parallel).
//
// Pipelined persistence (the core's `asyncStorageWrites`, docs/raft.md; issue 9). A Ready's
// entries are WRITTEN (handed to the OS, in the tail) before `advance()`, and the next Ready is
// taken while their fsync runs: the segment log's group commit then covers everything written
// meanwhile with its next fsync, so a produce that arrives during an fsync is written (and
// acks=1 answered) at once, not one fsync later. Durability is tracked apart:
//   - each Ready's appends resolve once durable ('always': fsynced); then the core is told
//     `durableTo(last index, term)` (ignored if those entries were replaced meanwhile), which on
//     a leader moves its own match and may commit;
//   - a Ready's messages, unless sent early by a leader (above), are held until that Ready's
//     appends are durable, in Ready order (`hold`): a follower's append response never
//     acknowledges an entry that is only written;
//   - `committedDurable` (the HW) = min(committed entries handed out, the core's durable index).
// `limits.unsyncedBytesMax` bounds the written-not-fsynced bytes: a batch beyond it waits for
// the oldest write in flight (ReplicaStore.writeEntries).
//
// Idempotent producers (replica-producers.ts). Every replica keeps the producer state of its
// log as batches are appended (ReplicaStore). The leader checks each idempotent batch before
// proposing, against a copy of that state taken when its log was placed plus its own proposals;
// a retry of a batch the log holds (committed, or in flight) is answered with its original
// offsets once they satisfy the request's acks, never appended again, also across a leader
// change (the new leader's log holds what the old one replicated). A mix of new and retried
// batches in one request is OUT_OF_ORDER_SEQUENCE_NUMBER, as on a single node.
//
// Retention and delete-records: through the group, by a log-start entry (see `compactTo`).
//
// Leader read-gating (Raft §8, as Redpanda does). A new leader's high watermark is what it held
// durably as committed when elected, which can be below what the previous leader had already
// acknowledged (a follower learns the commit index only with the next message). Serving it
// would move the high watermark backwards for consumers (a ListOffsets "latest" below an
// acknowledged offset; a Fetch at a consumer's position answered OFFSET_OUT_OF_RANGE). So a
// leader answers reads (`read`, `checkReadable`, used by Fetch and ListOffsets) with
// LEADER_NOT_AVAILABLE (retriable) until the last committed entry it holds durably is of its own
// term, i.e. its first entry (the no-op) has committed and applied: from then on its high
// watermark covers everything any earlier leader acknowledged (§5.4: every committed entry is in
// the log of each later leader). Produce is not gated: proposals queue until the log is placed.
import {
  BatchField,
  batchSizeAt,
  ErrorCode,
  RECORD_BATCH_HEADER_BYTES,
  readBatchHeader,
  StreamBusError,
  setBaseOffset,
  setPartitionLeaderEpoch,
  splitBatches,
  verifyBatchCrc,
} from '@streambus/protocol';
import {
  type ConfChange,
  type ConfState,
  decodeConfState,
  type Entry,
  EntryType,
  type HardState,
  type LogIndex,
  type Message,
  MessageType,
  NONE,
  type NodeId,
  type RaftConfigInput,
  RaftError,
  RaftErrorCode,
  RaftNode,
  type RandomSource,
  type Ready,
  type Snapshot,
  StateRole,
  type Term,
} from '@streambus/raft';
import type {
  FileSystem,
  PartitionLog,
  PartitionLogConfig,
  PartitionLogOptions,
} from '@streambus/storage';
import type { ByteBudget } from '../byte-budget.js';
import type { GroupHost, GroupKey, HostedGroup, RaftTransport } from '../cluster/contract.js';
import type { BatchEntry, ProducerStateTable } from '../idempotence.js';
import { encodeLogStartBatch, isControlBatch, logStartOf } from './control-entry.js';
import type { OffsetTranslatorLimits } from './offset-translator.js';
import type { RaftLogTailLimits } from './raft-log-tail.js';
import { decodeSnapshotData, encodeSnapshotData } from './replica-files.js';
import {
  batchProducer,
  copyProducers,
  isIdempotent,
  lastSequenceOf,
  producersAt,
  producersFrom,
} from './replica-producers.js';
import { ReplicaStore } from './replica-store.js';
import { ReplicaStageProbe, stageTrace } from './stage-trace.js';
import type { LogPosition } from './term-runs.js';

export type ReplicaRole = 'leader' | 'follower' | 'candidate' | 'offline';

export interface ProduceResult {
  readonly baseOffset: number;
  readonly lastOffset: number;
  /** The leader's clock (`nowMs`) when it proposed the batches. */
  readonly logAppendTimeMs: number;
}

export interface ReplicaChange {
  readonly kind: 'high-watermark' | 'role';
  readonly replica: PartitionReplica;
}

/** A pino-compatible logger (the broker passes its own). */
export interface ReplicaLogger {
  warn(fields: object, message: string): void;
  error(fields: object, message: string): void;
}

export type ReplicaRaftConfig = Omit<Partial<RaftConfigInput>, 'id' | 'random'>;

export interface PartitionReplicaOptions {
  readonly key: GroupKey;
  readonly self: NodeId;
  /** The partition directory. */
  readonly dir: string;
  readonly fs: FileSystem;
  /** The topic's storage settings; `durability` decides what "durable" means for acks=all. */
  readonly logConfig: PartitionLogConfig;
  readonly logOptions?: PartitionLogOptions;
  /** The group's voters when the directory is fresh (ignored afterwards: the log knows). */
  readonly initialVoters: readonly NodeId[];
  readonly transport: RaftTransport;
  readonly host: GroupHost;
  readonly random: RandomSource;
  /** Only for logAppendTimeMs of produce answers (never read by Raft). Default Date.now. */
  readonly nowMs?: () => number;
  readonly raft?: ReplicaRaftConfig;
  readonly tailLimits?: Partial<RaftLogTailLimits>;
  readonly translatorLimits?: OffsetTranslatorLimits;
  /** Bytes proposed (or queued) and not yet answered, at most (default 64 MiB). */
  readonly pendingBytesMax?: number;
  /** The broker-wide budget of uncommitted bytes, shared by every replica (see top). */
  readonly uncommittedBudget?: ByteBudget;
  /** A follower whose match reached the commit index within this many ticks is in sync. */
  readonly isrLagTicksMax?: number;
  readonly logger?: ReplicaLogger;
  /**
   * Test-only switches that break safety on purpose, so the tests (and the simulator) can show
   * their checkers catch it. Never set outside tests.
   */
  readonly unsafe?: {
    /** Answer acks=all once the leader's own copy is written (no quorum). */
    readonly ackAllOnLocalWrite?: boolean;
    /** Serve a new leader's reads before its term committed (no read-gating). */
    readonly ungatedLeaderReads?: boolean;
    /** Count entries durable once written: acknowledge and commit before their fsync. */
    readonly durableAtWrite?: boolean;
  };
}

export const PARTITION_REPLICA_DEFAULTS = {
  pendingBytesMax: 64 * 1024 * 1024,
  isrLagTicksMax: 30,
} as const;

/**
 * NOT_LEADER_OR_FOLLOWER with the leader this replica knows of (NONE when none) and its term
 * (`leaderEpoch`, 0 when unknown): the broker puts both on the wire (`currentLeader`, issue 12).
 */
export class NotLeaderError extends StreamBusError {
  constructor(
    readonly leaderHint: NodeId,
    message: string,
    readonly leaderEpoch = 0,
  ) {
    super(ErrorCode.NOT_LEADER_OR_FOLLOWER, message);
  }
}

interface Pending {
  /** Answered once this offset is written (acks=1) or below the high watermark (acks=all). */
  readonly lastOffset: number;
  readonly acks: 1 | -1;
  readonly bytes: number;
  readonly result: ProduceResult;
  readonly resolve: (r: ProduceResult) => void;
  readonly reject: (e: unknown) => void;
}

interface Queued {
  readonly batches: Buffer;
  /** Bytes reserved in the broker-wide budget for this request (0: none). */
  readonly budgetBytes: number;
  readonly acks: 0 | 1 | -1;
  /** A log-start entry (deleteRecordsBefore): no producer checks. */
  readonly control?: boolean;
  /** A membership change instead of batches (`batches` is empty). */
  readonly conf?: ConfChange;
  readonly resolve: (r: ProduceResult) => void;
  readonly reject: (e: unknown) => void;
}

const EMPTY_BUFFER = Buffer.alloc(0);

const NO_LOGGER: ReplicaLogger = { warn: () => {}, error: () => {} };

function toStreamBusError(err: unknown, fallback: number, what: string): StreamBusError {
  if (err instanceof StreamBusError) return err;
  return new StreamBusError(fallback, `${what}: ${(err as Error)?.message ?? String(err)}`, {
    cause: err,
  });
}

export class PartitionReplica implements HostedGroup {
  readonly key: GroupKey;
  readonly self: NodeId;
  private readonly node: RaftNode;
  private readonly store: ReplicaStore;
  private readonly transport: RaftTransport;
  private readonly host: GroupHost;
  private readonly nowMs: () => number;
  private readonly logger: ReplicaLogger;
  private readonly pendingBytesMax: number;
  private readonly isrLagTicksMax: number;
  private readonly listeners = new Set<(e: ReplicaChange) => void>();
  private readonly ackAllOnLocalWrite: boolean;
  private readonly unsafeUngatedReads: boolean;
  private readonly unsafeDurableAtWrite: boolean;
  /** The term whose reads are open (read-gating, top); 0 until one is. */
  private readableTerm = 0;
  private prefetchCount = 0;

  private pending: Pending[] = [];
  private queued: Queued[] = [];
  private readonly uncommittedBudget: ByteBudget | null;
  /** Budget reservations of proposed requests, by end offset: released as the HW passes them. */
  private reserved: Array<{ end: number; bytes: number }> = [];
  private reservedBytes = 0;
  private pendingBytes = 0;
  /** Where the leader's next proposal goes; null until its log is all placed (see top). */
  private leaderNext: { index: LogIndex; offset: number } | null = null;
  /** The term `leaderNext` and `pending` belong to. */
  private leaderTerm = 0;
  /** The replica this leader last handed its leadership to in `leaderTerm` (successorHint). */
  private transferTo: NodeId = NONE;
  /** The transfer target this replica stepped down for, and its term (`leaderHint`). */
  private successor: { leaderId: NodeId; leaderEpoch: number } | null = null;
  /**
   * The leader's producer table: a copy of the log's taken when its log was placed, plus its own
   * proposals (replica-producers.ts). Null when not leading.
   */
  private leaderProducers: ProducerStateTable | null = null;
  private hw: number;
  /**
   * The last committed entry this replica holds durably: the last of the committed entries a
   * Ready handed out, at most the core's durable index (pipelined persistence, top), or a
   * snapshot's index. Not `min(commitIndex, lastIndex())`: a follower's commit index can cover
   * entries it holds only in the core's memory while its segment log still has the deposed
   * leader's entries at those indexes, and those must never count as committed (found by the
   * cluster simulator, seeds 2255 and 3070).
   */
  private committedDurable: LogIndex;
  /**
   * The last committed entry a Ready handed out (and, for a log-start entry, applied): with the
   * core's durable index it bounds `committedDurable` (pipelined persistence, top).
   */
  private committedSeen: LogIndex;
  /**
   * Leader fast path (`commitEarly`): the last entry of the log when it was placed (everything
   * after it in this term this class proposed), and the last log-start entry it proposed.
   */
  private placedAt: LogIndex = 0 as LogIndex;
  private logStartProposedAt: LogIndex = 0 as LogIndex;
  /**
   * Messages of Readies that wait for durability before they leave (a follower's append
   * responses promise what they acknowledge), in Ready order: each waits until every write
   * issued up to its Ready (`need`, a count of Readies with entries) is durable, whichever Ready
   * wrote it (a deposed leader's own unsynced entries included). At most one per Ready taken
   * while an fsync is in flight (bounded by it and by unsyncedBytesMax).
   */
  private held: Array<{ need: number; messages: readonly Message[] }> = [];
  /** Readies with entries written, and how many of the first of them are durable (in order). */
  private writesIssued = 0;
  private writesDurable = 0;
  /** Durable writes past a gap (a later one reported before an earlier one; not expected). */
  private readonly writesDurableAhead = new Set<number>();
  private roleSeen: ReplicaRole;
  private leadSeen: NodeId;
  private ticks = 0;
  private readonly caughtUpAt = new Map<NodeId, number>();
  private readonly prefetching = new Set<number>();
  private fetched = false;
  private processing: Promise<void> | null = null;
  /** Stage timings (SBDIAG_REPLICA_STAGES, stage-trace.ts); null when off. */
  private readonly probe = stageTrace ? new ReplicaStageProbe(stageTrace) : null;
  private closed = false;
  private offline: StreamBusError | null = null;

  private constructor(o: PartitionReplicaOptions, store: ReplicaStore, node: RaftNode) {
    this.key = o.key;
    this.self = o.self;
    this.store = store;
    this.node = node;
    this.transport = o.transport;
    this.host = o.host;
    this.nowMs = o.nowMs ?? Date.now;
    this.logger = o.logger ?? NO_LOGGER;
    this.pendingBytesMax = o.pendingBytesMax ?? PARTITION_REPLICA_DEFAULTS.pendingBytesMax;
    this.isrLagTicksMax = o.isrLagTicksMax ?? PARTITION_REPLICA_DEFAULTS.isrLagTicksMax;
    this.ackAllOnLocalWrite = o.unsafe?.ackAllOnLocalWrite === true;
    this.uncommittedBudget = o.uncommittedBudget ?? null;
    this.unsafeUngatedReads = o.unsafe?.ungatedLeaderReads === true;
    this.unsafeDurableAtWrite = o.unsafe?.durableAtWrite === true;
    // At open the log holds no entry the core does not (no unstable suffix), and the saved
    // commit only ever covers entries that were durable when it was saved (see `persist`).
    this.committedDurable = Math.min(
      store.tail.hardState().commit,
      store.tail.lastIndex(),
    ) as LogIndex;
    this.committedSeen = this.committedDurable;
    this.hw = this.commitOffset();
    this.roleSeen = this.currentRole();
    this.leadSeen = node.currentLead;
  }

  /** Opens (recovering) the replica's directory and its Raft node. Not yet added to the host. */
  static async open(o: PartitionReplicaOptions): Promise<PartitionReplica> {
    const logger = o.logger ?? NO_LOGGER;
    const store = await ReplicaStore.open({
      fs: o.fs,
      dir: o.dir,
      logConfig: o.logConfig,
      ...(o.logOptions ? { logOptions: o.logOptions } : {}),
      initialConf: { voters: [...o.initialVoters].sort((a, b) => a - b), learners: [] },
      ...(o.tailLimits ? { tailLimits: o.tailLimits } : {}),
      ...(o.translatorLimits ? { translatorLimits: o.translatorLimits } : {}),
      onRecovery: (message) => logger.warn({ dir: o.dir }, message),
    });
    try {
      const node = new RaftNode(
        {
          quiesce: true,
          lazyCommitBroadcast: true,
          ...o.raft,
          asyncStorageWrites: true,
          id: o.self,
          random: o.random,
        },
        store.tail,
      );
      return new PartitionReplica(o, store, node);
    } catch (err) {
      await store.close().catch(() => undefined);
      throw err;
    }
  }

  // ------------------------------------------------------------------ state

  get highWatermark(): number {
    return this.hw;
  }
  get logStartOffset(): number {
    return this.store.log.logStartOffset;
  }
  get logEndOffset(): number {
    return this.store.log.logEndOffset;
  }
  /**
   * The segment log, for reads the replica does not wrap (offset by timestamp, sizes, metrics).
   * Never write, truncate or enforce retention through it: the group owns its contents.
   */
  get partitionLog(): PartitionLog {
    return this.store.log;
  }
  /** Every offset below is fsynced on this replica. */
  get durableEndOffset(): number {
    return this.store.log.durableEndOffset;
  }
  get role(): ReplicaRole {
    return this.currentRole();
  }
  get leaderId(): NodeId {
    return this.node.currentLead;
  }
  /**
   * Whom to send a client refused here: the known leader, else (on a leader that stepped down on
   * its transfer target's vote request) the target, while the term is the one it campaigns in
   * and no leader is known: the old leader's broker then refuses a produce naming the target at
   * once, instead of waiting for the election's outcome (`ELECTION_WAIT_MS_MAX`, 250 ms) and,
   * when that takes longer under load, refusing naming nobody (a Metadata round and a backoff
   * for the client: issue 12, seen in rolling restarts at load average 10).
   */
  get leaderHint(): { leaderId: NodeId; leaderEpoch: number } {
    const term = this.node.currentTerm;
    const lead = this.node.currentLead;
    if (lead !== NONE) return { leaderId: lead, leaderEpoch: term };
    const s = this.successor;
    if (s !== null && s.leaderEpoch === term && this.node.currentRole === StateRole.Follower) {
      return s;
    }
    return { leaderId: NONE, leaderEpoch: term };
  }
  /** The leader epoch: the current Raft term. */
  get leaderEpoch(): number {
    return this.node.currentTerm;
  }
  /** The error that took the replica offline, or null. */
  get offlineError(): StreamBusError | null {
    return this.offline;
  }
  /** The commit index (tests, metrics). */
  get commitIndex(): LogIndex {
    return this.node.commitIndex;
  }
  /** The group is idle and quiesced here (docs/raft.md "Quiescence"): ticks cost nothing. */
  get quiesced(): boolean {
    return this.node.isQuiesced;
  }

  /**
   * On the leader: itself and every voter whose match reached the commit index now or within
   * `isrLagTicksMax` ticks. Elsewhere: [] (ask the leader).
   */
  inSyncReplicas(): NodeId[] {
    if (this.node.currentRole !== StateRole.Leader) return [];
    const commit = this.node.commitIndex;
    const out: NodeId[] = [this.self];
    this.node.forEachMatch((id, match, isLearner) => {
      if (isLearner) return;
      const at = match >= commit ? this.ticks : this.caughtUpAt.get(id);
      if (at !== undefined && this.ticks - at <= this.isrLagTicksMax) out.push(id);
    });
    return out.sort((a, b) => a - b);
  }

  /**
   * On the leader, per follower (learners included): Raft entries behind the leader's last
   * index, and ticks since its match last reached the commit index (0 while it does); [] when
   * not leader. For the ops metrics (replica lag).
   */
  replicaLag(): Array<{ id: NodeId; entriesBehind: number; ticksBehind: number }> {
    if (this.node.currentRole !== StateRole.Leader) return [];
    const st = this.node.status();
    const out: Array<{ id: NodeId; entriesBehind: number; ticksBehind: number }> = [];
    for (const [id, pr] of st.progress) {
      const at = pr.match >= st.commit ? this.ticks : (this.caughtUpAt.get(id) ?? 0);
      out.push({
        id,
        entriesBehind: Math.max(0, st.lastIndex - pr.match),
        ticksBehind: this.ticks - at,
      });
    }
    return out;
  }

  /** Counters and bounds for metrics and tests. */
  stats(): {
    tailStart: LogIndex;
    tailEntries: number;
    cacheRanges: number;
    prefetches: number;
    pendingBytes: number;
    pendingRequests: number;
  } {
    const t = this.store.tail.stats();
    return {
      tailStart: t.tailStart,
      tailEntries: t.tailEntries,
      cacheRanges: t.cacheRanges,
      prefetches: this.prefetchCount,
      pendingBytes: this.pendingBytes,
      pendingRequests: this.pending.length + this.queued.length,
    };
  }

  onChange(listener: (e: ReplicaChange) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private currentRole(): ReplicaRole {
    if (this.offline) return 'offline';
    switch (this.node.currentRole) {
      case StateRole.Leader:
        return 'leader';
      case StateRole.Follower:
        return 'follower';
      default:
        return 'candidate';
    }
  }

  // ------------------------------------------------------------------ produce and fetch

  /**
   * Leader only: proposes `batches` (RecordBatch v2; no control batches), one entry per batch,
   * stamping baseOffset and partitionLeaderEpoch in place. Answers per `acks` (top). Framing is
   * checked here, and each batch's CRC unless `options.crcVerified` (the broker's produce
   * validation checked it): a damaged batch must never reach the log its followers copy.
   */
  propose(
    batches: Buffer,
    acks: 0 | 1 | -1,
    options?: { readonly crcVerified?: boolean },
  ): Promise<ProduceResult> {
    let budgetBytes = 0;
    try {
      this.checkUsable();
      this.checkLeader();
      checkFraming(batches, options?.crcVerified !== true);
      if (this.pendingBytes + batches.length > this.pendingBytesMax && this.pendingBytes > 0) {
        throw new StreamBusError(
          ErrorCode.REPLICA_PROPOSALS_FULL,
          `partition ${this.keyString()}: ${this.pendingBytes} B pending (pendingBytesMax ${this.pendingBytesMax})`,
        );
      }
      budgetBytes = this.reserveBudget(batches.length);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<ProduceResult>((resolve, reject) => {
      this.pendingBytes += batches.length;
      this.queued.push({ batches, budgetBytes, acks, resolve, reject });
      this.drainQueued();
      if (this.queued.length > 0) this.host.notify(this.key);
    });
  }

  /**
   * Whole batches from the one holding `offset`, never at or past the high watermark. On a
   * leader, refused until its term committed (`checkReadable`, read-gating at the top).
   */
  read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }> {
    try {
      this.checkUsable();
      this.checkReadable();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.store.readCommitted(offset, maxBytes, this.hw);
  }

  /**
   * On the leader: it has committed and applied an entry of its own term (read-gating, top), so
   * its high watermark covers every earlier acknowledgement. False elsewhere.
   */
  get termCommitted(): boolean {
    if (this.node.currentRole !== StateRole.Leader) return false;
    const term = this.node.currentTerm;
    if (this.readableTerm === term) return true;
    if (this.store.tail.term(this.committedDurable) !== term) return false;
    this.readableTerm = term;
    return true;
  }

  /**
   * Read-gating (top): throws LEADER_NOT_AVAILABLE (retriable) on a leader that has not yet
   * committed and applied an entry of its own term. Followers (whose high watermark never
   * passes the commit point either) and ready leaders pass.
   */
  checkReadable(): void {
    if (this.node.currentRole !== StateRole.Leader || this.unsafeUngatedReads) return;
    if (this.termCommitted) return;
    const term = this.node.currentTerm;
    throw new StreamBusError(
      ErrorCode.LEADER_NOT_AVAILABLE,
      `partition ${this.keyString()}: node ${this.self} leads term ${term} but has not committed an entry of it yet (its high watermark ${this.hw} may be behind what was acknowledged)`,
    );
  }

  /**
   * Leader only: moves every replica's log start up to the batch holding `offset` (at most the
   * high watermark; OFFSET_OUT_OF_RANGE beyond), through the group (see `compactTo`). Resolves
   * with the new log start (a batch boundary at or below `offset`) once the log-start entry is
   * committed; each replica cuts its log when it applies that entry.
   */
  async deleteRecordsBefore(offset: number): Promise<number> {
    this.checkUsable();
    this.checkLeader();
    if (!Number.isSafeInteger(offset) || offset > this.hw) {
      throw new StreamBusError(
        ErrorCode.OFFSET_OUT_OF_RANGE,
        `partition ${this.keyString()}: delete-records offset ${offset} is past the high watermark ${this.hw}`,
      );
    }
    if (offset <= this.logStartOffset) return this.logStartOffset;
    const start = await this.store.positionAt(offset);
    if (start.index <= this.store.tail.firstIndex()) return this.logStartOffset;
    const batches = encodeLogStartBatch(start);
    await new Promise<ProduceResult>((resolve, reject) => {
      this.checkLeader();
      this.pendingBytes += batches.length;
      this.queued.push({ batches, budgetBytes: 0, acks: -1, control: true, resolve, reject });
      this.drainQueued();
      if (this.queued.length > 0) this.host.notify(this.key);
    });
    return start.offset;
  }

  /**
   * Leader only: applies the topic's retention (retentionBytesMax, retentionMs) by moving the
   * log start, through the group, to the segment boundary the segment log would cut at, never
   * past the high watermark. Resolves with the log start. (Never call the PartitionLog's own
   * enforceRetention on a replica: its replicas would diverge.)
   */
  enforceRetention(limits?: {
    readonly retentionBytesMax: number;
    readonly retentionMs: number;
  }): Promise<number> {
    try {
      this.checkUsable();
      this.checkLeader();
    } catch (err) {
      return Promise.reject(err);
    }
    const target = Math.min(this.store.log.retentionStartOffset(limits), this.hw);
    return this.deleteRecordsBefore(target);
  }

  /**
   * Leader only: one single-server membership change (add a learner, add a voter, remove),
   * proposed as a configuration entry (stored as a control batch). Resolves once committed.
   * Refused (retriable) while another change is pending or this term has committed nothing.
   */
  changeMembership(change: ConfChange): Promise<void> {
    try {
      this.checkUsable();
      this.checkLeader();
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<ProduceResult>((resolve, reject) => {
      this.queued.push({
        batches: EMPTY_BUFFER,
        budgetBytes: 0,
        acks: -1,
        conf: change,
        resolve,
        reject,
      });
      this.drainQueued();
      if (this.queued.length > 0) this.host.notify(this.key);
    }).then(() => undefined);
  }

  /** The voters and learners in force (the latest configuration entry, committed or not). */
  get configuration(): ConfState {
    return this.node.status().conf;
  }

  /**
   * Campaigns at once when this replica is its group's only voter (a cluster of one; a replica
   * reopened after a repair or a config change): there is nobody to wait an election timeout
   * for. A no-op otherwise. (Hook for cluster-node.ts.)
   */
  campaignIfSoleVoter(): void {
    if (this.closed || this.offline || this.node.currentRole === StateRole.Leader) return;
    const { voters } = this.node.status().conf;
    if (voters.length !== 1 || voters[0] !== this.self) return;
    this.node.campaign();
    this.host.notify(this.key);
  }

  /**
   * Campaigns at once when this replica's group has had no election yet (term 0): cluster-node.ts
   * calls it on a new partition's preferred replica, so the partition usually starts led there
   * and preferred-leader balancing has nothing to move (issue 9: those moves cost an idle
   * broker seconds of CPU). A no-op otherwise.
   */
  campaignIfUnelected(): void {
    if (this.closed || this.offline || this.node.currentTerm !== 0) return;
    this.node.campaign();
    this.host.notify(this.key);
  }

  transferLeadership(to: NodeId): void {
    this.checkUsable();
    try {
      this.node.transferLeadership(to);
    } catch (err) {
      throw this.mapRaftError(err);
    }
    this.transferTo = to;
    this.host.notify(this.key);
  }

  // ------------------------------------------------------------------ HostedGroup

  tick(): void {
    if (this.closed || this.offline) return;
    this.ticks++;
    // Quiesced (docs/raft.md): the core ignores ticks and every member holds the commit index,
    // so in-sync needs no bookkeeping either (inSyncReplicas counts match >= commit as now).
    if (this.node.isQuiesced) return;
    this.node.tick();
    if (this.node.currentRole === StateRole.Leader) {
      const commit = this.node.commitIndex;
      this.node.forEachMatch((id, match) => {
        if (match >= commit) this.caughtUpAt.set(id, this.ticks);
      });
    }
    this.observe();
  }

  step(message: Message): void {
    if (this.closed || this.offline) return;
    try {
      if (message.type === MessageType.Append) {
        checkAppendEntries(message);
        if (message.entries.length > 0) this.probe?.appendStepped();
      } else if (message.type === MessageType.AppendResp && !message.reject) {
        this.probe?.acked(message.index);
      }
      if (message.type === MessageType.Snapshot && message.snapshot) {
        // Readable snapshot data, or the message is dropped (never a failed install later).
        producersFrom(decodeSnapshotData(message.snapshot.data).producers);
      }
      this.node.step(message);
    } catch (err) {
      // A malformed or impossible message: dropped, the group keeps going (Raft tolerates loss).
      this.logger.warn(
        { group: this.keyString(), from: message.from, type: message.type, err: String(err) },
        'raft message refused',
      );
      return;
    }
    this.observe();
  }

  reportUnreachable(peer: NodeId): void {
    if (this.closed || this.offline) return;
    this.node.reportUnreachable(peer);
  }

  hasWork(): boolean {
    if (this.closed || this.offline) return false;
    return this.fetched || this.node.hasReady();
  }

  process(): Promise<void> {
    if (this.closed || this.offline || this.processing) return this.processing ?? Promise.resolve();
    const p = this.processOnce()
      .catch((err: unknown) => this.goOffline(err))
      .finally(() => {
        this.processing = null;
      });
    this.processing = p;
    return p;
  }

  private async processOnce(): Promise<void> {
    if (this.fetched) {
      this.fetched = false;
      this.node.entriesFetched();
    }
    if (!this.node.hasReady()) {
      this.observe();
      return;
    }
    const rd: Ready = this.node.ready();
    const early =
      this.node.currentRole === StateRole.Leader &&
      rd.snapshot === null &&
      !this.store.hardStateChanges(rd.hardState);
    let held: readonly Message[] = rd.messages;
    if (early) this.send(rd.messages);
    else if (rd.messages.some(isVoteRequest)) {
      // Vote requests leave before the hard state is saved (see top); the rest waits.
      this.send(rd.messages.filter(isVoteRequest));
      held = rd.messages.filter((m) => !isVoteRequest(m));
    }
    const probeLast = rd.entries[rd.entries.length - 1];
    const probeAt = this.probe && probeLast ? this.probe.readyTaken(early, probeLast.index) : 0;
    const lastCommitted = rd.committedEntries[rd.committedEntries.length - 1];
    const applyFirst = rd.committedEntries.some(isLogStartEntry);
    if (lastCommitted && !applyFirst) this.seeCommitted(lastCommitted.index);
    const { durable } = await this.persist(rd);
    if (this.closed) return;
    if (this.probe && probeLast && durable !== null) {
      const probe = this.probe;
      const writtenAt = probe.written(early, probeAt);
      durable.then(
        () => probe.durable(early, writtenAt, probeLast.index),
        () => undefined,
      );
    }
    if (durable !== null) {
      const seq = ++this.writesIssued;
      durable.then(
        () => this.writeDurable(seq),
        () => undefined, // the replica goes offline (below); nothing held is sent
      );
    }
    if (!early) this.hold(held);
    // Only a log-start entry makes apply() do anything: no await (a hop and a promise per
    // Ready) otherwise.
    if (applyFirst) {
      await this.apply(rd.committedEntries);
      if (this.closed) return;
    }
    if (lastCommitted && applyFirst) this.seeCommitted(lastCommitted.index);
    this.node.advance();
    const last = rd.entries[rd.entries.length - 1];
    if (durable !== null && last !== undefined) {
      // Registered after advance(): the core takes reports only about entries it placed.
      durable.then(
        () => this.entriesDurable(last.index, last.term),
        (err: unknown) => this.goOffline(err),
      );
    }
    for (const r of rd.entriesWanted) this.startPrefetch(r.lo, r.hi);
    this.observe();
  }

  /** Committed entries up to `index` were handed out (and applied where that matters). */
  private seeCommitted(index: LogIndex): void {
    if (index > this.committedSeen) this.committedSeen = index;
    this.updateCommittedDurable();
  }

  /**
   * `committedDurable` = what is both committed (handed out) and durable here per the core (its
   * durable index only covers entries of its own log that an fsync reported, see top).
   */
  private updateCommittedDurable(): void {
    const c = Math.min(this.committedSeen, this.node.durableIndex) as LogIndex;
    if (c > this.committedDurable) {
      this.committedDurable = c;
      this.observe();
    }
  }

  /** An fsync (or the policy's equivalent) covered entries up to (index, term). */
  private entriesDurable(index: LogIndex, term: Term): void {
    if (this.closed || this.offline) return;
    this.node.durableTo(index, term);
    this.updateCommittedDurable();
    this.observe();
    this.host.notify(this.key);
  }

  /**
   * Writes a Ready (see top): the hard state first when term or vote changed (saved durably
   * before anything that depends on it), a snapshot (durably), then the entries: resolves once
   * they are WRITTEN; `durable` (null without entries) resolves once they are durable.
   */
  private async persist(rd: Ready): Promise<{ durable: Promise<void> | null }> {
    const hard: HardState | null = rd.hardState;
    // The hard state goes first when term or vote changed (entries of term T are never on disk
    // under a saved term below T), so its commit must not name this Ready's entries: a crash
    // before they are written would leave a saved commit covering the stale entries they were
    // to replace, and a restart would count those committed. It carries the commit this
    // replica already holds durably instead (the saved commit is an optimization for restart).
    if (hard !== null && this.store.hardStateChanges(hard)) {
      await this.store.saveHardState({
        ...hard,
        commit: Math.min(hard.commit, this.committedDurable) as LogIndex,
      });
    }
    if (rd.snapshot !== null) {
      await this.store.installSnapshot(rd.snapshot);
      if (rd.snapshot.meta.index > this.committedDurable) {
        this.committedDurable = rd.snapshot.meta.index;
      }
      if (rd.snapshot.meta.index > this.committedSeen) this.committedSeen = rd.snapshot.meta.index;
    }
    let durable: Promise<void> | null = null;
    if (rd.entries.length > 0) {
      // onWritten: a batch reached the OS (acks=1), before its fsync.
      // Every data batch's CRC was checked once already: by the broker's produce validation
      // (the leader's own, see `propose`) or by `checkAppendEntries` (a follower's).
      const w = await this.store.writeEntries(rd.entries, () => this.resolvePending(), true);
      // Handled here too, so a failure before the caller attaches its handler is never unhandled.
      w.durable.catch(() => undefined);
      durable = this.unsafeDurableAtWrite ? Promise.resolve() : w.durable;
    }
    if (hard !== null) {
      // The in-memory copy (saved whole at close) gets the same bound: committed and durable.
      const h = { ...hard, commit: Math.min(hard.commit, this.committedDurable) as LogIndex };
      // A commit-only change writes no file: no await for it (most Readies carry one).
      if (this.store.hardStateChanges(h)) await this.store.saveHardState(h);
      else this.store.noteHardState(h);
    }
    return { durable };
  }

  /**
   * A Ready's messages (not sent early): they leave once every write issued so far (this
   * Ready's included) is durable, after every earlier held Ready's messages, so no
   * acknowledgement leaves before what it acknowledges is durable. A vote's hard state was saved
   * durably before (persist).
   */
  private hold(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    const need = this.writesIssued;
    if (this.held.length === 0 && need <= this.writesDurable) {
      this.send(messages);
      return;
    }
    this.held.push({ need, messages });
  }

  /** The `seq`-th Ready's writes are durable. */
  private writeDurable(seq: number): void {
    if (seq === this.writesDurable + 1) {
      this.writesDurable = seq;
      while (this.writesDurableAhead.delete(this.writesDurable + 1)) this.writesDurable++;
    } else if (seq > this.writesDurable) {
      this.writesDurableAhead.add(seq);
    }
    this.sendHeld();
  }

  private sendHeld(): void {
    if (this.closed || this.offline) {
      this.held = [];
      return;
    }
    let n = 0;
    while (n < this.held.length && this.held[n]!.need <= this.writesDurable) {
      this.send(this.held[n]!.messages);
      n++;
    }
    if (n > 0) this.held = this.held.slice(n);
  }

  private send(messages: readonly Message[]): void {
    if (messages.length === 0) return;
    this.transport.send(this.key, messages);
    for (const m of messages) {
      // The transport takes the snapshot whole (fire and forget): report it sent, and the
      // leader probes the follower on its next heartbeat answer.
      if (m.type === MessageType.Snapshot) this.node.reportSnapshot(m.to, true);
    }
  }

  /**
   * Committed entries. Data needs nothing (the high watermark follows the commit index, the
   * producer state follows appends); a log-start entry moves this replica's log start (below).
   */
  private async apply(entries: readonly Entry[]): Promise<void> {
    for (const e of entries) {
      if (!isLogStartEntry(e)) continue;
      const start = logStartOf(e.data);
      if (start !== null) await this.compactTo(start, e.index);
    }
  }

  /**
   * Retention and delete-records, through the group (decision): the leader proposes a small
   * log-start entry naming the new first entry (index and offset, at or below the commit index
   * when proposed); every replica applies it when committed: a snapshot at the entry before it
   * (producer state as of that point, the configuration then), saved, then the segment log and
   * the tail cut to it. All replicas apply the same committed entry, so they converge on the same
   * log start; a follower that is behind it later receives the snapshot (InstallSnapshot) and
   * restarts its log there. Why not per-replica retention: each replica would cut at its own
   * segment boundaries and the group's logs would differ below the commit point.
   */
  private async compactTo(start: LogPosition, at: LogIndex): Promise<void> {
    const tail = this.store.tail;
    if (start.index <= tail.firstIndex()) return;
    if (start.index >= at || start.index > tail.lastIndex() + 1) {
      throw new StreamBusError(
        ErrorCode.CORRUPT_DATA,
        `replica ${this.keyString()}: log-start entry ${at} names entry ${start.index} (not before it)`,
      );
    }
    const known = tail.translator.offsetOf(start.index);
    if (known !== undefined && known !== start.offset) {
      throw new StreamBusError(
        ErrorCode.CORRUPT_DATA,
        `replica ${this.keyString()}: log-start entry ${at} puts entry ${start.index} at offset ${start.offset}, this log at ${known}`,
      );
    }
    const index = (start.index - 1) as LogIndex;
    const term = tail.term(index)!;
    // The configuration at `index`: the last Conf entry at or before it, else the snapshot's
    // (from the log, not the core, whose history is pruned to the applied index).
    const confs = tail.confEntries(tail.firstIndex(), start.index);
    const last = confs[confs.length - 1];
    const conf = last ? decodeConfState(last.data) : tail.snapshotMeta().conf;
    const snapshot: Snapshot = {
      meta: { index, term, conf },
      data: encodeSnapshotData({
        startOffset: start.offset,
        producers: producersAt(this.store.producers, start.offset),
      }),
    };
    await this.store.compactTo(snapshot);
    this.emit('high-watermark');
  }

  private startPrefetch(lo: LogIndex, hi: LogIndex): void {
    if (this.prefetching.has(lo)) return;
    this.prefetching.add(lo);
    this.prefetchCount++;
    this.store.tail
      .prefetch(lo, hi)
      .then(
        () => {
          this.fetched = true;
        },
        (err: unknown) => {
          // A bound that moved (compaction, truncation) is asked again by the core; a read
          // failure or CORRUPT_DATA is the log's: the replica goes offline.
          if (err instanceof StreamBusError && err.code === ErrorCode.INVALID_ARGUMENT) {
            this.fetched = true;
          } else {
            this.goOffline(err);
          }
        },
      )
      .finally(() => {
        this.prefetching.delete(lo);
        if (!this.closed) this.host.notify(this.key);
      });
  }

  // ------------------------------------------------------------------ role, HW, pending

  /**
   * Who leads after this replica stopped leading `leaderTerm`: the leader it heard from, else
   * the replica it handed the leadership to when the term is the one that replica campaigned
   * in (a transfer's TimeoutNow: the old leader steps down on the target's vote request, before
   * the target's first append names it), else none. The produce requests failed at the step-down
   * carry it, so a client goes straight to the new leader (issue 12).
   */
  private successorHint(): { leaderId: NodeId; leaderEpoch: number } {
    const term = this.node.currentTerm;
    const lead = this.node.currentLead;
    if (lead !== NONE) return { leaderId: lead, leaderEpoch: term };
    if (this.transferTo !== NONE && term === this.leaderTerm + 1) {
      return { leaderId: this.transferTo, leaderEpoch: term };
    }
    return { leaderId: NONE, leaderEpoch: 0 };
  }

  /** After every input: role and HW changes, pending answers, queued proposals. */
  private observe(): void {
    const term = this.node.currentTerm;
    const isLeader = this.node.currentRole === StateRole.Leader;
    if (this.leaderTerm !== 0 && (!isLeader || term !== this.leaderTerm)) {
      this.resolvePending();
      this.leaderProducers = null;
      const next = this.successorHint();
      this.successor = next.leaderId !== NONE && next.leaderId !== this.self ? next : null;
      this.failAll(
        new NotLeaderError(
          next.leaderId,
          `partition ${this.keyString()}: node ${this.self} is no longer the leader of term ${this.leaderTerm}`,
          next.leaderEpoch,
        ),
      );
      this.leaderTerm = 0;
      this.transferTo = NONE;
      this.leaderNext = null;
    }
    if (isLeader && this.leaderTerm === 0) {
      this.leaderTerm = term;
      this.caughtUpAt.clear();
    }
    if (isLeader) this.commitEarly();
    const hw = this.commitOffset();
    const hwMoved = hw > this.hw;
    if (hwMoved) this.hw = hw;
    if (isLeader) this.probe?.committed(this.committedDurable);
    if (this.reserved.length > 0) this.releaseCommitted();
    this.resolvePending();
    this.drainQueued();
    const role = this.currentRole();
    const lead = this.node.currentLead;
    const roleChanged = role !== this.roleSeen || lead !== this.leadSeen;
    this.roleSeen = role;
    this.leadSeen = lead;
    if (roleChanged) this.emit('role');
    if (hwMoved) this.emit('high-watermark');
  }

  /**
   * Leader fast path (latency, issue 9): the core's commit index moves inside `durableTo` (the
   * leader's own fsync) or `step` (a follower's append response), and the committed entries
   * would reach `committedSeen` only with the next Ready, one more `process()` round (a
   * setImmediate hop behind every other I/O callback of a busy broker) before acks=all is
   * answered. Those entries need nothing applied unless one is a log-start entry, so a leader
   * counts them as handed out at once when it knows that: everything up to `placedAt` (the log
   * before this term's proposals, the no-op included) was handed out by a Ready already, and
   * every entry after it is one this class proposed in this term, none of them a log-start
   * entry not handed out yet. Still bounded by the durable index (updateCommittedDurable).
   */
  private commitEarly(): void {
    const next = this.leaderNext;
    if (next === null || this.node.currentTerm !== this.leaderTerm) return;
    if (this.committedSeen < this.placedAt || this.logStartProposedAt > this.committedSeen) return;
    const c = Math.min(this.node.commitIndex, next.index - 1) as LogIndex;
    if (c <= this.committedSeen) return;
    this.committedSeen = c;
    const d = Math.min(this.committedSeen, this.node.durableIndex) as LogIndex;
    if (d > this.committedDurable) this.committedDurable = d;
  }

  /** The end offset of the last committed entry this replica holds durably. */
  private commitOffset(): number {
    const tail = this.store.tail;
    const c = Math.min(this.committedDurable, tail.lastIndex()) as LogIndex;
    if (c < tail.firstIndex()) return tail.translator.startPosition.offset;
    return tail.translator.offsetOf((c + 1) as LogIndex) ?? this.hw;
  }

  private drainQueued(): void {
    if (this.queued.length === 0) return;
    if (this.node.currentRole !== StateRole.Leader) {
      this.failAll(
        new NotLeaderError(
          this.node.currentLead,
          `node ${this.self} is not the leader`,
          this.node.currentTerm,
        ),
      );
      return;
    }
    // A leader handing its leadership over refuses proposals (Raft): they wait here instead
    // (bounded by pendingBytesMax), then fail with NOT_LEADER_OR_FOLLOWER once the transfer
    // completes, or are proposed if Raft abandons it (observe drains again), so a client does
    // not back off on REPLICA_PROPOSALS_FULL only to find the leader moved (issue 12).
    if (this.node.isTransferring) return;
    if (this.leaderNext === null) {
      // Place the leader's log first: everything the core holds must be written (see top).
      const tail = this.store.tail;
      if (this.node.status().lastIndex !== tail.lastIndex()) return;
      this.leaderNext = {
        index: (tail.lastIndex() + 1) as LogIndex,
        offset: tail.translator.endPosition.offset,
      };
      this.placedAt = tail.lastIndex();
      this.logStartProposedAt = 0 as LogIndex;
      this.leaderProducers = copyProducers(this.store.producers);
    }
    const queued = this.queued;
    this.queued = [];
    for (const q of queued) this.proposeNow(q);
    this.host.notify(this.key);
  }

  private proposeNow(q: Queued): void {
    this.probe?.proposed();
    if (q.conf) {
      this.proposeConf(q, q.conf);
      return;
    }
    const next = this.leaderNext!;
    if (q.control) this.logStartProposedAt = next.index;
    const producers = this.leaderProducers!;
    const term = this.node.currentTerm;
    const now = this.nowMs();
    const baseOffset = next.offset;
    // Idempotence first, for every batch of the request, before anything is proposed: check and
    // record in order (pipelined batches of one producer see each other), undone on a refusal.
    const recorded: Array<{ producerId: number; entry: BatchEntry }> = [];
    const stamps: Array<{ entry: BatchEntry; delta: number }> = [];
    let duplicate: { entry: BatchEntry; records: number } | null = null;
    let duplicates = 0;
    let batchCount = 0;
    let records = 0;
    try {
      for (let pos = 0; pos < q.batches.length; pos += batchSizeAt(q.batches, pos)) {
        batchCount++;
        const p = batchProducer(q.batches, pos);
        if (!q.control && isIdempotent(p)) {
          const lastSeq = lastSequenceOf(p);
          const d = producers.check(p.producerId, p.epoch, p.baseSequence, lastSeq);
          if (d.kind === 'duplicate') {
            duplicates++;
            duplicate ??= { entry: d.entry, records: p.lastOffsetDelta + 1 };
          } else {
            const entry = producers.record(p.producerId, p.epoch, p.baseSequence, lastSeq, null);
            recorded.push({ producerId: p.producerId, entry });
            stamps.push({ entry, delta: records });
          }
        }
        records += p.lastOffsetDelta + 1;
      }
      if (duplicates > 0 && duplicates !== batchCount) {
        throw new StreamBusError(
          ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
          'a produce mixes already-written batches with new ones',
        );
      }
    } catch (err) {
      for (let i = recorded.length - 1; i >= 0; i--) {
        producers.forget(recorded[i]!.producerId, recorded[i]!.entry);
      }
      this.pendingBytes -= q.batches.length;
      this.releaseBudget(q.budgetBytes);
      q.reject(err);
      return;
    }
    if (duplicate !== null) {
      // A retry of a batch this log holds: its original offsets, answered as its acks require.
      const base = duplicate.entry.baseOffset!;
      const lastOffset = base + records - 1;
      this.answerAt(q, { baseOffset: base, lastOffset, logAppendTimeMs: -1 }, lastOffset);
      return;
    }
    for (const s of stamps) s.entry.baseOffset = baseOffset + s.delta;
    let pos = 0;
    try {
      while (pos < q.batches.length) {
        const size = batchSizeAt(q.batches, pos);
        const count = q.batches.readInt32BE(pos + BatchField.LAST_OFFSET_DELTA) + 1;
        setBaseOffset(q.batches, pos, next.offset);
        setPartitionLeaderEpoch(q.batches, pos, term);
        const p = this.node.propose(q.batches.subarray(pos, pos + size));
        if (p.index !== next.index) {
          throw new Error(`assertion: proposal landed at ${p.index}, expected ${next.index}`);
        }
        next.index = (next.index + 1) as LogIndex;
        next.offset += count;
        pos += size;
      }
    } catch (err) {
      // Nothing proposed yet: the producer state is undone. Part of it proposed (the core's own
      // bound, which pendingBytesMax keeps us under): those entries stay in the log, so stay
      // recorded; the request fails and an idempotent retry is answered as a duplicate.
      if (pos === 0) {
        for (let i = recorded.length - 1; i >= 0; i--) {
          producers.forget(recorded[i]!.producerId, recorded[i]!.entry);
        }
      }
      this.pendingBytes -= q.batches.length;
      this.releaseBudget(q.budgetBytes);
      q.reject(this.mapRaftError(err));
      return;
    }
    const lastOffset = next.offset - 1;
    this.answerAt(q, { baseOffset, lastOffset, logAppendTimeMs: now }, lastOffset);
  }

  /** A configuration entry: one control batch, so one offset (control-entry.ts). */
  private proposeConf(q: Queued, change: ConfChange): void {
    const next = this.leaderNext!;
    let p: { index: LogIndex };
    try {
      p = this.node.proposeConfChange(change);
    } catch (err) {
      q.reject(this.mapRaftError(err));
      return;
    }
    if (p.index !== next.index) {
      throw new Error(`assertion: configuration entry at ${p.index}, expected ${next.index}`);
    }
    const offset = next.offset;
    next.index = (next.index + 1) as LogIndex;
    next.offset += 1;
    this.answerAt(
      q,
      { baseOffset: offset, lastOffset: offset, logAppendTimeMs: this.nowMs() },
      offset,
    );
  }

  /** Answers `q` with `result` once `lastOffset` satisfies its acks (acks=0: now). */
  private answerAt(q: Queued, result: ProduceResult, lastOffset: number): void {
    if (q.budgetBytes > 0) {
      // Held until the entries commit, whatever the acks (see top).
      this.reserved.push({ end: lastOffset + 1, bytes: q.budgetBytes });
      this.reservedBytes += q.budgetBytes;
      if (this.hw > lastOffset) this.releaseCommitted();
    }
    if (q.acks === 0) {
      this.pendingBytes -= q.batches.length;
      q.resolve(result);
      return;
    }
    this.pending.push({
      lastOffset,
      acks: q.acks,
      bytes: q.batches.length,
      result,
      resolve: q.resolve,
      reject: q.reject,
    });
    this.resolvePending();
  }

  private resolvePending(): void {
    if (this.pending.length === 0) return;
    const written = this.store.log.writtenEndOffset;
    const keep: Pending[] = [];
    for (const p of this.pending) {
      const local = p.acks === 1 || this.ackAllOnLocalWrite;
      const done = local ? p.lastOffset < written : p.lastOffset < this.hw;
      if (done) {
        this.pendingBytes -= p.bytes;
        p.resolve(p.result);
      } else {
        keep.push(p);
      }
    }
    this.pending = keep;
  }

  private failAll(err: StreamBusError): void {
    const pending = this.pending;
    const queued = this.queued;
    this.pending = [];
    this.queued = [];
    for (const p of pending) p.reject(err);
    for (const q of queued) {
      this.releaseBudget(q.budgetBytes);
      q.reject(err);
    }
    this.pendingBytes = 0;
    // Not leading any more: what this replica proposed is no longer its to bound.
    this.releaseBudget(this.reservedBytes);
    this.reserved = [];
    this.reservedBytes = 0;
  }

  /** Reserves `bytes` in the broker-wide budget, or throws REPLICA_PROPOSALS_FULL (see top). */
  private reserveBudget(bytes: number): number {
    const b = this.uncommittedBudget;
    if (b === null) return 0;
    if (b.tryReserve(bytes)) return bytes;
    if (b.used === 0) {
      b.charge(bytes);
      return bytes;
    }
    throw new StreamBusError(
      ErrorCode.REPLICA_PROPOSALS_FULL,
      `partition ${this.keyString()}: the broker holds ${b.used} B proposed and not yet committed (limits.replicationUncommittedBytesMax ${b.capacityBytes}); retry after a backoff`,
    );
  }

  private releaseBudget(bytes: number): void {
    if (bytes > 0) this.uncommittedBudget?.release(bytes);
  }

  /** Releases the reservations of every request whose entries the high watermark passed. */
  private releaseCommitted(): void {
    let n = 0;
    let bytes = 0;
    while (n < this.reserved.length && this.reserved[n]!.end <= this.hw) {
      bytes += this.reserved[n]!.bytes;
      n++;
    }
    if (n === 0) return;
    this.reserved = n === this.reserved.length ? [] : this.reserved.slice(n);
    this.reservedBytes -= bytes;
    this.releaseBudget(bytes);
  }

  /** Bytes this replica holds in the broker-wide budget (tests, metrics). */
  get uncommittedBudgetBytes(): number {
    return this.reservedBytes + this.queued.reduce((s, q) => s + q.budgetBytes, 0);
  }

  private emit(kind: ReplicaChange['kind']): void {
    for (const l of this.listeners) {
      try {
        l({ kind, replica: this });
      } catch (err) {
        this.logger.error({ group: this.keyString(), err: String(err) }, 'replica listener threw');
      }
    }
  }

  // ------------------------------------------------------------------ failure and close

  private goOffline(err: unknown): void {
    if (this.offline || this.closed) return;
    const e = toStreamBusError(err, ErrorCode.KAFKA_STORAGE_ERROR, `replica ${this.keyString()}`);
    this.offline = e;
    this.logger.error({ group: this.keyString(), err: e.toString() }, 'partition replica offline');
    this.failAll(e);
    this.emit('role');
  }

  private checkUsable(): void {
    if (this.closed) {
      throw new StreamBusError(ErrorCode.SHUTTING_DOWN, `replica ${this.keyString()} is closed`);
    }
    if (this.offline) throw this.offline;
  }

  private checkLeader(): void {
    if (this.node.currentRole !== StateRole.Leader) {
      throw new NotLeaderError(
        this.node.currentLead,
        `partition ${this.keyString()}: node ${this.self} is not the leader (leader ${this.node.currentLead || 'unknown'})`,
        this.node.currentTerm,
      );
    }
  }

  private mapRaftError(err: unknown): StreamBusError {
    if (err instanceof RaftError) {
      if (err.code === RaftErrorCode.NOT_LEADER_OR_FOLLOWER) {
        return new NotLeaderError(this.node.currentLead, err.message, this.node.currentTerm);
      }
      if (err.code === RaftErrorCode.PROPOSAL_DROPPED) {
        return new StreamBusError(ErrorCode.REPLICA_PROPOSALS_FULL, err.message);
      }
      if (err.code === RaftErrorCode.CONF_CHANGE_IN_PROGRESS) {
        return new StreamBusError(ErrorCode.REPLICA_CONF_CHANGE_IN_PROGRESS, err.message);
      }
      return new StreamBusError(ErrorCode.INVALID_REQUEST, err.message);
    }
    return toStreamBusError(err, ErrorCode.UNKNOWN_SERVER_ERROR, `replica ${this.keyString()}`);
  }

  private keyString(): string {
    return `${this.key.topicId}/${this.key.partition}`;
  }

  /**
   * Stops the replica: pending and queued produce requests fail with NOT_LEADER_OR_FOLLOWER (a
   * client retries elsewhere), the running `process()` ends, the log and files are closed.
   * Remove it from the host first.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.failAll(new NotLeaderError(NONE, `replica ${this.keyString()} is closing`));
    if (this.processing) await this.processing;
    await this.store.close();
  }
}

/** A log-start entry (retention, delete-records): applied before the HW may pass it. */
function isLogStartEntry(e: Entry): boolean {
  return e.type === EntryType.Normal && e.data.byteLength > 0 && isControlBatch(e.data);
}

/**
 * The entries of an inbound append, checked before the core sees them, so a damaged message is
 * dropped (the leader resends) instead of failing this replica's log at persist: every data
 * entry is exactly one batch, CRC-32C good, partitionLeaderEpoch = the entry's term, offsets
 * contiguous from entry to entry. (Its first offset is checked against the log at persist.)
 */
function checkAppendEntries(m: Message): void {
  let next = -1;
  for (const e of m.entries) {
    if (e.type !== EntryType.Normal || e.data.byteLength === 0) {
      if (next >= 0) next += 1; // a control entry: one offset
      continue;
    }
    const buf = Buffer.isBuffer(e.data)
      ? e.data
      : Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength);
    const fail = (why: string): never => {
      throw new StreamBusError(
        ErrorCode.CORRUPT_MESSAGE,
        `append from ${m.from}: entry ${e.index} ${why}`,
      );
    };
    if (buf.length < RECORD_BATCH_HEADER_BYTES || batchSizeAt(buf, 0) !== buf.length) {
      fail('is not exactly one record batch');
    }
    const h = readBatchHeader(buf, 0);
    if (h.partitionLeaderEpoch !== e.term)
      fail(`has epoch ${h.partitionLeaderEpoch}, term ${e.term}`);
    if (next >= 0 && h.baseOffset !== next)
      fail(`has baseOffset ${h.baseOffset}, expected ${next}`);
    if (h.lastOffsetDelta < 0 || !verifyBatchCrc(buf, 0))
      fail('fails its CRC-32C or has no records');
    next = h.baseOffset + h.lastOffsetDelta + 1;
  }
}

/** Whole RecordBatch v2 framing of a produce payload (CORRUPT_MESSAGE otherwise). */
function checkFraming(batches: Buffer, checkCrc: boolean): void {
  if (batches.length === 0) {
    throw new StreamBusError(ErrorCode.INVALID_RECORD, 'produce of no batches');
  }
  for (const { position } of splitBatches(batches)) {
    if (batches.readInt32BE(position + BatchField.LAST_OFFSET_DELTA) < 0) {
      throw new StreamBusError(ErrorCode.INVALID_RECORD, `batch at ${position} has no records`);
    }
    if (isControlBatch(batches, position)) {
      throw new StreamBusError(ErrorCode.INVALID_RECORD, `batch at ${position} is a control batch`);
    }
    if (checkCrc && !verifyBatchCrc(batches, position)) {
      throw new StreamBusError(
        ErrorCode.CORRUPT_MESSAGE,
        `batch at ${position} failed its CRC-32C check`,
      );
    }
  }
}

/** A candidate's (or pre-candidate's) request for a vote: promises nothing (see top). */
function isVoteRequest(m: Message): boolean {
  return m.type === MessageType.Vote || m.type === MessageType.PreVote;
}
