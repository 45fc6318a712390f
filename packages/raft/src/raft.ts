// The Raft node: a pure, synchronous state machine in the shape of etcd-raft's RawNode. Inputs
// are `step(message)`, `tick()`, `propose(data)`, `proposeConfChange`, `readIndex`,
// `transferLeadership` and `campaign`; outputs come out of `ready()` as one batch, and
// `advance()` says the batch was handled (see the Ready contract in types.ts and docs/raft.md).
//
// It does no I/O, keeps no timers and reads no clock: time is the count of `tick()` calls and
// randomness comes from the injected `RandomSource`. It reads the durable log through
// `LogStorage` and never writes it. It does not encode messages, retry sends, or apply entries.
//
// Sources: the Raft paper (Ongaro & Ousterhout 2014, "§" below) and Ongaro's thesis (2014,
// "thesis §"); the structure follows etcd-io/raft (read for its design, not copied).

import {
  applyConfChange,
  checkConf,
  decodeConfState,
  encodeConfState,
  quorumCommitIndex,
  tallyVotes,
  VoteResult,
} from './conf.js';
import { type RaftConfig, type RaftConfigInput, resolveConfig } from './config.js';
import { assert, RaftError, RaftErrorCode } from './errors.js';
import { Progress, ProgressState } from './progress.js';
import { RaftLog } from './raft-log.js';
import type { LogStorage } from './storage.js';
import {
  CAMPAIGN_TRANSFER,
  type ConfChange,
  type ConfState,
  type Entry,
  type EntryRange,
  EntryType,
  type HardState,
  HEARTBEAT_QUIESCE,
  type LogIndex,
  type Message,
  MessageType,
  message,
  NONE,
  type NodeId,
  type ReadState,
  type Ready,
  type SoftState,
  StateRole,
  type Term,
} from './types.js';

interface ConfRecord {
  readonly index: LogIndex;
  readonly conf: ConfState;
}

interface PendingRead {
  readonly seq: number;
  readonly index: LogIndex;
  readonly from: NodeId;
  readonly context: string;
}

interface ReadyMark {
  readonly lastIndex: LogIndex;
  readonly lastTerm: Term;
  readonly snapshotIndex: LogIndex;
  readonly appliedTo: LogIndex;
}

export interface ProgressStatus {
  readonly match: LogIndex;
  readonly next: LogIndex;
  readonly state: ProgressState;
  readonly isLearner: boolean;
  readonly inflightCount: number;
  readonly inflightBytes: number;
}

export interface Status {
  readonly id: NodeId;
  readonly term: Term;
  readonly vote: NodeId;
  readonly lead: NodeId;
  readonly role: StateRole;
  readonly commit: LogIndex;
  readonly applied: LogIndex;
  readonly firstIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly conf: ConfState;
  readonly leadTransferee: NodeId;
  /** Quiesced (config `quiesce`): ticks do nothing until something wakes the node. */
  readonly quiesced: boolean;
  /** Only on the leader: one entry per member other than itself. */
  readonly progress: ReadonlyMap<NodeId, ProgressStatus>;
}

export interface Proposed {
  readonly index: LogIndex;
  readonly term: Term;
}

const EMPTY_DATA = new Uint8Array(0);

export class RaftNode {
  readonly id: NodeId;
  private readonly cfg: RaftConfig;
  private readonly log: RaftLog;

  private term: Term = 0 as Term;
  private vote: NodeId = NONE;
  private lead: NodeId = NONE;
  private role: StateRole = StateRole.Follower;

  /** The configuration in force: that of the last configuration entry in the log (thesis §4.1). */
  private conf: ConfState;
  /** Configuration entries, ascending; [0] is at or below `applied`, the rest may be uncommitted. */
  private confHistory: ConfRecord[];

  private readonly progress = new Map<NodeId, Progress>();
  private readonly votes = new Map<NodeId, boolean>();
  private ticks = 0;
  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  private leadTransferee: NodeId = NONE;
  /** See RaftConfig.quiesce: while true, `tick()` does nothing. */
  private quiesced = false;
  /** Leader: sizes of uncommitted entries, by index from `uncommittedFrom`, and their sum. */
  private uncommittedSizes: number[] = [];
  private uncommittedHead = 0;
  private uncommittedFrom: LogIndex = 0 as LogIndex;
  private uncommittedBytes = 0;
  /** Leader: proposals appended since the last broadcast (sent in one go at `ready()`). */
  private broadcastPending = false;

  private readSeq = 0;
  private pendingReads: PendingRead[] = [];
  private readsWaitingCommit: Array<{ from: NodeId; context: string }> = [];

  /** Leader: followers whose append waits for entries not in memory (until entriesFetched). */
  private readonly appendsWaiting = new Set<NodeId>();
  /** Ranges found not in memory since the last `ready()`, one per follower (bounded by members). */
  private readonly entriesWanted = new Map<NodeId, EntryRange>();

  private msgs: Message[] = [];
  private readStates: ReadState[] = [];
  private prevHard: HardState;
  private prevSoft: SoftState;
  private readyMark: ReadyMark | null = null;
  private readonly scratch: number[] = [];
  /** A voter's match index (one closure for every `maybeCommit`, not one per call). */
  private readonly matchOf = (id: NodeId): number => this.progress.get(id)?.match ?? 0;

  constructor(input: RaftConfigInput, storage: LogStorage) {
    this.cfg = resolveConfig(input);
    this.id = this.cfg.id;
    this.log = new RaftLog(storage);
    // Asynchronous storage writes: what storage holds at start is durable (it was recovered).
    if (this.cfg.asyncStorageWrites) this.log.reportedDurable = storage.lastIndex();
    const hard = storage.hardState();
    const meta = storage.snapshotMeta();
    checkConf(meta.conf);
    this.term = hard.term;
    this.vote = hard.vote;
    const commit = Math.max(hard.commit, meta.index) as LogIndex;
    assert(commit <= this.log.lastIndex(), `stored commit ${commit} beyond the stored log`);
    this.log.committed = commit;
    // Recovery: the configuration is the last configuration entry after the snapshot.
    this.confHistory = [{ index: meta.index, conf: meta.conf }];
    for (const e of recoverConfEntries(storage, meta.index, this.cfg.committedBytesMax)) {
      this.confHistory.push({ index: e.index, conf: decodeConfState(e.data) });
    }
    this.conf = this.confHistory[this.confHistory.length - 1]!.conf;
    this.becomeFollower(this.term, NONE);
    this.prevHard = this.hardState();
    this.prevSoft = this.softState();
  }

  // ---------------------------------------------------------------- inputs

  /** Advances logical time by one tick. */
  tick(): void {
    if (this.quiesced) return;
    this.ticks++;
    if (this.role === StateRole.Leader) this.tickLeader();
    else this.tickElection();
  }

  /** Starts an election now (pre-vote first when enabled), if this node may campaign. */
  campaign(): void {
    this.wake();
    this.hup(false);
  }

  /** Appends `data` as a new entry on the leader. Throws RaftError when not possible now. */
  propose(data: Uint8Array): Proposed {
    this.checkCanPropose(data.byteLength);
    return this.appendProposal(EntryType.Normal, data);
  }

  /**
   * Proposes a single-server membership change. Allowed only when this leader has committed an
   * entry of its own term and no configuration entry is uncommitted (see docs/raft.md for why).
   */
  proposeConfChange(change: ConfChange): Proposed {
    const next = applyConfChange(this.conf, change);
    this.checkCanPropose(0);
    const latest = this.confHistory[this.confHistory.length - 1]!;
    if (latest.index > this.log.committed || this.log.term(this.log.committed) !== this.term) {
      throw new RaftError(
        RaftErrorCode.CONF_CHANGE_IN_PROGRESS,
        `node ${this.id}: a configuration change is pending or this term has not committed yet`,
      );
    }
    return this.appendProposal(EntryType.Conf, encodeConfState(next));
  }

  /**
   * Asks for a linearizable read point (ReadIndex, thesis §6.4). The answer arrives later as a
   * `ReadState` with this `context` in `Ready.readStates`; serve the read once applied >= index.
   */
  readIndex(context: string): void {
    this.wake();
    if (this.role === StateRole.Leader) {
      this.handleReadRequest(this.id, context);
      return;
    }
    if (this.lead === NONE) {
      throw new RaftError(RaftErrorCode.NOT_LEADER_OR_FOLLOWER, `node ${this.id}: no leader known`);
    }
    this.send(
      message({
        type: MessageType.ReadIndex,
        from: this.id,
        to: this.lead,
        term: this.term,
        context,
      }),
    );
  }

  /** Hands leadership to `to` (thesis §3.10): catch it up, then tell it to campaign at once. */
  transferLeadership(to: NodeId): void {
    if (this.role !== StateRole.Leader) {
      throw new RaftError(
        RaftErrorCode.NOT_LEADER_OR_FOLLOWER,
        `node ${this.id} is not the leader`,
        {
          leaderHint: this.lead,
        },
      );
    }
    if (!this.conf.voters.includes(to)) {
      throw new RaftError(RaftErrorCode.INVALID_ARGUMENT, `transfer target ${to} is not a voter`);
    }
    if (to === this.id || to === this.leadTransferee) return;
    this.wake();
    this.leadTransferee = to;
    this.electionElapsed = 0; // the transfer must finish within one election timeout
    const pr = this.progress.get(to)!;
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(to);
    else this.sendAppend(to, true);
  }

  /** The transport could not reach `id`: stop pipelining to it until it answers again. */
  reportUnreachable(id: NodeId): void {
    if (this.quiesced) {
      // The leader wakes for any member (its next rounds find out who answers); a follower only
      // for its leader, and then as if its lease had run out, so that it campaigns within one
      // election timeout unless the leader is heard from again.
      if (this.role === StateRole.Leader) this.wake();
      else if (id === this.lead) {
        this.wake();
        this.electionElapsed = this.cfg.electionTicks;
      }
    }
    const pr = this.progress.get(id);
    if (this.role === StateRole.Leader && pr && pr.state === ProgressState.Replicate)
      pr.becomeProbe();
  }

  /** The transport finished (or failed) sending a snapshot to `id`. */
  reportSnapshot(id: NodeId, ok: boolean): void {
    const pr = this.progress.get(id);
    if (this.role !== StateRole.Leader || !pr || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0 as LogIndex;
    pr.becomeProbe();
    pr.probeSent = true; // wait for the next heartbeat answer before probing
  }

  /** Handles a message from another node. Malformed messages get a RaftError, state untouched. */
  step(m: Message): void {
    this.validate(m);
    if (this.quiesced && !this.keepsQuiet(m)) this.wake();
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.context === CAMPAIGN_TRANSFER;
        const inLease =
          this.cfg.checkQuorum &&
          this.lead !== NONE &&
          this.electionElapsed < this.cfg.electionTicks;
        // Thesis §4.2.3: a node that heard from a leader recently ignores (pre-)votes, so a
        // removed or partitioned server cannot depose a working leader.
        if (!force && inLease) return;
      }
      if (m.type === MessageType.PreVote) {
        // A pre-vote never changes our term.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // A granted pre-vote carries the future term; we move to it only by campaigning.
      } else if (
        m.type === MessageType.Append ||
        m.type === MessageType.Heartbeat ||
        m.type === MessageType.Snapshot
      ) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NONE);
      }
    } else if (m.term < this.term) {
      if (
        (this.cfg.checkQuorum || this.cfg.preVote) &&
        (m.type === MessageType.Heartbeat || m.type === MessageType.Append)
      ) {
        // A stale leader: tell it the term so it steps down (needed with pre-vote/check-quorum,
        // where our term may have moved without its knowledge).
        this.send(
          message({ type: MessageType.AppendResp, from: this.id, to: m.from, term: this.term }),
        );
      } else if (m.type === MessageType.PreVote) {
        this.send(
          message({
            type: MessageType.PreVoteResp,
            from: this.id,
            to: m.from,
            term: this.term,
            reject: true,
          }),
        );
      }
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
      return;
    }
    switch (this.role) {
      case StateRole.Leader:
        this.stepLeader(m);
        break;
      case StateRole.Candidate:
      case StateRole.PreCandidate:
        this.stepCandidate(m);
        break;
      default:
        this.stepFollower(m);
    }
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    if (this.readyMark) return false;
    if (this.broadcastPending) return true;
    // Field by field, allocating nothing: the host asks this after every message and round.
    const hard = this.prevHard;
    const soft = this.prevSoft;
    return (
      this.term !== hard.term ||
      this.vote !== hard.vote ||
      this.log.committed !== hard.commit ||
      this.lead !== soft.lead ||
      this.role !== soft.role ||
      this.log.unstable.length > 0 ||
      this.log.unstableSnapshot !== null ||
      this.msgs.length > 0 ||
      this.readStates.length > 0 ||
      this.entriesWanted.size > 0 ||
      this.log.hasNextCommittedEntries()
    );
  }

  /** The next batch of work; must be followed by `advance()` before the next `ready()`. */
  ready(): Ready {
    if (this.readyMark) {
      throw new RaftError(RaftErrorCode.INVALID_STATE, 'ready() called twice without advance()');
    }
    this.flushBroadcast();
    const hard = this.hardState();
    const soft = this.softState();
    const hardChanged = !hardEquals(hard, this.prevHard);
    const softChanged = soft.lead !== this.prevSoft.lead || soft.role !== this.prevSoft.role;
    const entries = this.log.unstable.slice();
    const snapshot = this.log.unstableSnapshot;
    const applyWanted: { range: EntryRange | null } = { range: null };
    const committedEntries = this.log.nextCommittedEntries(this.cfg.committedBytesMax, applyWanted);
    const entriesWanted = [...this.entriesWanted.values()];
    if (applyWanted.range) entriesWanted.push(applyWanted.range);
    this.entriesWanted.clear();
    const rd: Ready = {
      softState: softChanged ? soft : null,
      hardState: hardChanged ? hard : null,
      snapshot,
      entries,
      committedEntries,
      messages: this.msgs,
      readStates: this.readStates,
      entriesWanted,
      mustSync:
        entries.length > 0 ||
        snapshot !== null ||
        hard.term !== this.prevHard.term ||
        hard.vote !== this.prevHard.vote,
    };
    this.msgs = [];
    this.readStates = [];
    if (hardChanged) this.prevHard = hard;
    if (softChanged) this.prevSoft = soft;
    const lastEntry = entries[entries.length - 1];
    this.readyMark = {
      lastIndex: lastEntry ? lastEntry.index : (0 as LogIndex),
      lastTerm: lastEntry ? lastEntry.term : (0 as Term),
      snapshotIndex: snapshot ? snapshot.meta.index : (0 as LogIndex),
      appliedTo:
        committedEntries.length > 0
          ? committedEntries[committedEntries.length - 1]!.index
          : (0 as LogIndex),
    };
    return rd;
  }

  /** The last `ready()` batch is persisted, sent and applied. */
  advance(): void {
    const mark = this.readyMark;
    if (!mark) throw new RaftError(RaftErrorCode.INVALID_STATE, 'advance() without ready()');
    this.readyMark = null;
    if (mark.snapshotIndex > 0) {
      this.log.stableSnapshotTo(mark.snapshotIndex);
      if (mark.snapshotIndex > this.log.applied) this.log.applied = mark.snapshotIndex;
    }
    if (mark.lastIndex > 0) this.log.stableTo(mark.lastIndex, mark.lastTerm);
    if (mark.appliedTo > 0) this.log.appliedTo(mark.appliedTo);
    this.pruneConfHistory();
    if (this.role === StateRole.Leader) {
      // The leader counts its own copy only once it is durable.
      const self = this.progress.get(this.id);
      if (self?.maybeUpdate(this.log.durableLastIndex()) && this.maybeCommit()) {
        this.commitAdvanced();
      }
    }
  }

  /**
   * Asynchronous storage writes (`asyncStorageWrites`): entries up to (index, term), written by
   * an advanced Ready, are now durable. On the leader its own match moves (and may commit).
   * Ignored when not in that mode or when the entry at `index` was replaced since.
   */
  durableTo(index: LogIndex, term: Term): void {
    if (!this.log.durableTo(index, term)) return;
    if (this.role === StateRole.Leader) {
      const self = this.progress.get(this.id);
      if (self?.maybeUpdate(this.log.durableLastIndex()) && this.maybeCommit()) {
        this.commitAdvanced();
      }
    }
  }

  /**
   * The last index durable here that agrees with this log (entries of an unadvanced Ready, and
   * with `asyncStorageWrites` written entries not yet reported by `durableTo`, are not).
   */
  get durableIndex(): LogIndex {
    return this.log.durableLastIndex();
  }

  /**
   * Entries reported in `Ready.entriesWanted` were loaded (or some of them were): retry the
   * appends and the apply that waited for them. Harmless to call at any time; whatever is
   * still not in memory is simply asked for again.
   */
  entriesFetched(): void {
    this.log.applyBlockedAt = 0 as LogIndex;
    if (this.role !== StateRole.Leader) {
      this.appendsWaiting.clear();
      return;
    }
    const waiting = [...this.appendsWaiting];
    this.appendsWaiting.clear();
    for (const id of waiting) {
      if (!this.sendAppend(id, true)) continue;
      while (this.sendAppend(id, false)) {
        // fill the in-flight window
      }
    }
  }

  /** Cheap accessors for per-step checks (status() builds maps). */
  get currentTerm(): Term {
    return this.term;
  }
  get currentRole(): StateRole {
    return this.role;
  }
  get currentLead(): NodeId {
    return this.lead;
  }
  get commitIndex(): LogIndex {
    return this.log.committed;
  }
  get isQuiesced(): boolean {
    return this.quiesced;
  }
  /** A leader handing its leadership over (it refuses proposals until done or abandoned). */
  get isTransferring(): boolean {
    return this.leadTransferee !== NONE;
  }

  /**
   * On the leader: calls `fn` for every member other than itself with its match index, without
   * building a Status (cheap enough to run every tick). Elsewhere: nothing.
   */
  forEachMatch(fn: (id: NodeId, match: LogIndex, isLearner: boolean) => void): void {
    if (this.role !== StateRole.Leader) return;
    for (const [id, pr] of this.progress) if (id !== this.id) fn(id, pr.match, pr.isLearner);
  }

  status(): Status {
    const progress = new Map<NodeId, ProgressStatus>();
    if (this.role === StateRole.Leader) {
      for (const [id, pr] of this.progress) {
        if (id === this.id) continue;
        progress.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          isLearner: pr.isLearner,
          inflightCount: pr.inflights.count,
          inflightBytes: pr.inflights.bytes,
        });
      }
    }
    return {
      id: this.id,
      term: this.term,
      vote: this.vote,
      lead: this.lead,
      role: this.role,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      conf: this.conf,
      leadTransferee: this.leadTransferee,
      quiesced: this.quiesced,
      progress,
    };
  }

  /** The configuration in force at `index` (>= the applied index's configuration entry). */
  confStateAt(index: LogIndex): ConfState {
    for (let i = this.confHistory.length - 1; i >= 0; i--) {
      const rec = this.confHistory[i]!;
      if (rec.index <= index) return rec.conf;
    }
    throw new RaftError(
      RaftErrorCode.INVALID_ARGUMENT,
      `configuration at ${index} is no longer known`,
    );
  }

  // ---------------------------------------------------------------- roles

  private becomeFollower(term: Term, lead: NodeId): void {
    this.reset(term);
    this.lead = lead;
    this.role = StateRole.Follower;
  }

  private becomePreCandidate(): void {
    assert(this.role !== StateRole.Leader, 'leader cannot become pre-candidate');
    // Thesis §9.6: neither the term nor the vote changes; only the role.
    this.quiesced = false;
    this.votes.clear();
    this.lead = NONE;
    this.role = StateRole.PreCandidate;
  }

  private becomeCandidate(): void {
    assert(this.role !== StateRole.Leader, 'leader cannot become candidate');
    this.reset((this.term + 1) as Term);
    this.vote = this.id;
    this.role = StateRole.Candidate;
  }

  private becomeLeader(): void {
    assert(this.role === StateRole.Candidate, 'only a candidate becomes leader');
    this.reset(this.term);
    this.lead = this.id;
    this.role = StateRole.Leader;
    this.rebuildProgress();
    const self = this.progress.get(this.id);
    if (self) {
      self.maybeUpdate(this.log.durableLastIndex());
      self.becomeReplicate();
    }
    this.uncommittedSizes = [];
    this.uncommittedHead = 0;
    this.uncommittedBytes = 0;
    this.uncommittedFrom = (this.log.lastIndex() + 1) as LogIndex;
    // §5.4.2 / §8: a leader commits entries of earlier terms only by committing one of its own,
    // so it appends an empty entry at once. It also gates configuration changes (thesis §4.1
    // erratum: no change until the leader has committed in its term).
    this.appendEntries([
      { term: this.term, index: 0 as LogIndex, type: EntryType.Normal, data: EMPTY_DATA },
    ]);
    this.broadcastPending = true;
  }

  private reset(term: Term): void {
    if (term !== this.term) {
      this.term = term;
      this.vote = NONE;
    }
    this.lead = NONE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.randomizedElectionTimeout =
      this.cfg.electionTicks + this.cfg.random.int(this.cfg.electionTicks);
    this.leadTransferee = NONE;
    this.quiesced = false;
    this.votes.clear();
    this.progress.clear();
    this.appendsWaiting.clear();
    this.entriesWanted.clear();
    this.broadcastPending = false;
    this.readSeq = 0;
    this.pendingReads = [];
    this.readsWaitingCommit = [];
  }

  private rebuildProgress(): void {
    const next = (this.log.lastIndex() + 1) as LogIndex;
    const keep = new Set<NodeId>([...this.conf.voters, ...this.conf.learners]);
    for (const id of this.progress.keys()) if (!keep.has(id)) this.progress.delete(id);
    for (const id of keep) {
      const isLearner = this.conf.learners.includes(id);
      const pr = this.progress.get(id);
      if (pr) {
        pr.isLearner = isLearner;
        continue;
      }
      const fresh = new Progress(
        next,
        isLearner,
        this.cfg.inflightMsgsMax,
        this.cfg.inflightBytesMax,
      );
      fresh.recentActive = true;
      this.progress.set(id, fresh);
    }
  }

  private promotable(): boolean {
    return this.conf.voters.includes(this.id) && this.log.unstableSnapshot === null;
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(false);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum) {
        if (!this.quorumActive()) {
          this.becomeFollower(this.term, NONE);
          return;
        }
        for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
      }
      this.leadTransferee = NONE; // a transfer that did not finish in time is abandoned
    }
    for (const [id, pr] of this.progress) {
      if (
        pr.state === ProgressState.Snapshot &&
        this.ticks - pr.snapshotSentTick >= this.cfg.snapshotTimeoutTicks
      ) {
        pr.becomeProbe();
        this.sendAppend(id, true);
      }
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      if (this.cfg.quiesce && this.canQuiesce()) this.quiesce();
      else this.bcastHeartbeat();
    }
  }

  // ---------------------------------------------------------------- quiescence

  /**
   * The leader may quiesce when nothing can happen without an input: its whole log is committed
   * in its own term and durable here, every member holds all of it and answered since the last
   * check-quorum window began (so each is known to be up), and no proposal, read, transfer or
   * load is in progress.
   */
  private canQuiesce(): boolean {
    const last = this.log.lastIndex();
    if (
      this.leadTransferee !== NONE ||
      this.broadcastPending ||
      this.pendingReads.length > 0 ||
      this.readsWaitingCommit.length > 0 ||
      this.appendsWaiting.size > 0 ||
      this.log.committed !== last ||
      this.log.term(last) !== this.term ||
      this.log.unstable.length > 0 ||
      this.log.unstableSnapshot !== null ||
      !this.conf.voters.includes(this.id)
    ) {
      return false;
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id) {
        if (pr.match !== last) return false;
      } else if (pr.match !== last || !pr.recentActive || pr.state === ProgressState.Snapshot) {
        return false;
      }
    }
    return true;
  }

  /**
   * Tells every member the commit index (= their match: `canQuiesce` held) and to quiesce; then
   * goes quiet.
   */
  private quiesce(): void {
    this.bcastHeartbeat(HEARTBEAT_QUIESCE);
    this.quiesced = true;
  }

  /**
   * Messages a quiesced node takes without waking: on the leader, acknowledgements of what every
   * member already holds (late answers to the rounds before it quiesced); on a follower, its
   * leader's quiesce heartbeat (sent again).
   */
  private keepsQuiet(m: Message): boolean {
    if (m.term !== this.term) return false;
    if (this.role === StateRole.Leader) {
      if (m.type === MessageType.HeartbeatResp) return m.readSeq <= this.readSeq;
      return m.type === MessageType.AppendResp && !m.reject && m.index <= this.log.lastIndex();
    }
    return (
      m.type === MessageType.Heartbeat && m.context === HEARTBEAT_QUIESCE && m.from === this.lead
    );
  }

  /** Leaves quiescence: timers restart; a leader must hear from every member before quiescing again. */
  private wake(): void {
    if (!this.quiesced) return;
    this.quiesced = false;
    this.electionElapsed = 0;
    if (this.role !== StateRole.Leader) return;
    // Heartbeat at the next tick, and count as active only who answers from now on.
    this.heartbeatElapsed = this.cfg.heartbeatTicks;
    for (const [id, pr] of this.progress) pr.recentActive = id === this.id;
  }

  private quorumActive(): boolean {
    let active = 0;
    for (const v of this.conf.voters) {
      if (v === this.id || this.progress.get(v)?.recentActive) active++;
    }
    return active >= (this.conf.voters.length >> 1) + 1;
  }

  private hup(transfer: boolean): void {
    if (this.role === StateRole.Leader || !this.promotable()) return;
    if (this.cfg.preVote && !transfer) this.campaignRound(true, false);
    else this.campaignRound(false, transfer);
  }

  private campaignRound(pre: boolean, transfer: boolean): void {
    let voteTerm: Term;
    if (pre) {
      this.becomePreCandidate();
      voteTerm = (this.term + 1) as Term;
    } else {
      this.becomeCandidate();
      voteTerm = this.term;
    }
    this.votes.set(this.id, true);
    const result = tallyVotes(this.conf.voters, this.votes);
    if (result === VoteResult.Won) {
      if (pre) this.campaignRound(false, transfer);
      else this.becomeLeader();
      return;
    }
    const type = pre ? MessageType.PreVote : MessageType.Vote;
    const lastIndex = this.log.lastIndex();
    const lastTerm = this.log.lastTerm();
    for (const v of this.conf.voters) {
      if (v === this.id) continue;
      this.send(
        message({
          type,
          from: this.id,
          to: v,
          term: voteTerm,
          index: lastIndex,
          logTerm: lastTerm,
          context: transfer ? CAMPAIGN_TRANSFER : '',
        }),
      );
    }
  }

  private handleVoteRequest(m: Message): void {
    const pre = m.type === MessageType.PreVote;
    const canVote =
      this.cfg.unsafe?.voteTwice === true ||
      this.vote === m.from ||
      (this.vote === NONE && this.lead === NONE) ||
      (pre && m.term > this.term);
    const respType = pre ? MessageType.PreVoteResp : MessageType.VoteResp;
    if (canVote && this.log.isUpToDate(m.index, m.logTerm)) {
      // The response carries the request's term (for a pre-vote, the future one).
      this.send(message({ type: respType, from: this.id, to: m.from, term: m.term }));
      if (!pre) {
        this.electionElapsed = 0;
        this.vote = m.from;
      }
    } else {
      this.send(
        message({ type: respType, from: this.id, to: m.from, term: this.term, reject: true }),
      );
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.Append:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        break;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        break;
      case MessageType.Snapshot:
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshot(m);
        break;
      case MessageType.TimeoutNow:
        // Thesis §3.10: campaign at once, skipping pre-vote, with votes that override leases.
        this.hup(true);
        break;
      case MessageType.ReadIndexResp:
        this.readStates.push({ index: m.index, context: m.context });
        break;
      default:
        // Stale answers to a former role, or requests only a leader handles: ignored.
        break;
    }
  }

  private stepCandidate(m: Message): void {
    const respType =
      this.role === StateRole.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.Append:
        this.becomeFollower(m.term, m.from);
        this.handleAppend(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snapshot:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      default:
        break;
    }
    if (m.type !== respType) return;
    this.votes.set(m.from, !m.reject);
    const result = tallyVotes(this.conf.voters, this.votes);
    if (result === VoteResult.Won) {
      if (this.role === StateRole.PreCandidate) this.campaignRound(false, false);
      else this.becomeLeader();
    } else if (result === VoteResult.Lost) {
      this.becomeFollower(this.term, NONE);
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case MessageType.AppendResp:
        if (pr) this.handleAppendResponse(m, pr);
        return;
      case MessageType.HeartbeatResp:
        if (pr) this.handleHeartbeatResponse(m, pr);
        return;
      case MessageType.ReadIndex:
        this.handleReadRequest(m.from, m.context);
        return;
      default:
        // An append/heartbeat at our own term from another node would mean two leaders in one
        // term. That cannot happen in a correct cluster; the simulator's checkers detect it
        // (the test-only unsafe switches can cause it), so it is ignored here, not asserted.
        return;
    }
  }

  // ---------------------------------------------------------------- replication

  private checkCanPropose(bytes: number): void {
    if (this.role !== StateRole.Leader || !this.conf.voters.includes(this.id)) {
      throw new RaftError(
        RaftErrorCode.NOT_LEADER_OR_FOLLOWER,
        `node ${this.id} is not the leader`,
        {
          leaderHint: this.role === StateRole.Leader ? NONE : this.lead,
        },
      );
    }
    if (this.leadTransferee !== NONE) {
      throw new RaftError(
        RaftErrorCode.PROPOSAL_DROPPED,
        `node ${this.id}: leadership transfer in progress`,
      );
    }
    if (this.uncommittedBytes > 0 && this.uncommittedBytes + bytes > this.cfg.uncommittedBytesMax) {
      throw new RaftError(
        RaftErrorCode.PROPOSAL_DROPPED,
        `node ${this.id}: uncommitted bytes ${this.uncommittedBytes} + ${bytes} exceed uncommittedBytesMax ${this.cfg.uncommittedBytesMax}`,
      );
    }
  }

  private appendProposal(type: EntryType, data: Uint8Array): Proposed {
    this.wake();
    const index = (this.log.lastIndex() + 1) as LogIndex;
    this.appendEntries([{ term: this.term, index, type, data }]);
    this.broadcastPending = true;
    return { index, term: this.term };
  }

  /** Leader-side append of new entries (indexes assigned here). */
  private appendEntries(entries: Entry[]): void {
    let index = this.log.lastIndex();
    const stamped: Entry[] = [];
    for (const e of entries) {
      index = (index + 1) as LogIndex;
      stamped.push({ term: this.term, index, type: e.type, data: e.data });
      this.uncommittedSizes.push(e.data.byteLength);
      this.uncommittedBytes += e.data.byteLength;
    }
    this.appendToLog(stamped);
  }

  /** Appends to the log and keeps the configuration history in step (append-time semantics). */
  private appendToLog(entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const decoded: ConfRecord[] = [];
    for (const e of entries) {
      if (e.type === EntryType.Conf)
        decoded.push({ index: e.index, conf: decodeConfState(e.data) });
    }
    const after = entries[0]!.index;
    this.log.append(entries);
    let changed = decoded.length > 0;
    while (
      this.confHistory.length > 1 &&
      this.confHistory[this.confHistory.length - 1]!.index >= after
    ) {
      this.confHistory.pop();
      changed = true;
    }
    assert(
      this.confHistory[this.confHistory.length - 1]!.index < after,
      'truncated a committed configuration',
    );
    for (const rec of decoded) this.confHistory.push(rec);
    if (changed) this.setConf(this.confHistory[this.confHistory.length - 1]!.conf);
  }

  private setConf(conf: ConfState): void {
    this.conf = conf;
    if (this.role !== StateRole.Leader) return;
    this.rebuildProgress();
    if (this.leadTransferee !== NONE && !conf.voters.includes(this.leadTransferee)) {
      this.leadTransferee = NONE;
    }
    // A smaller quorum may already hold more entries.
    if (this.maybeCommit()) this.commitAdvanced();
  }

  private pruneConfHistory(): void {
    const applied = this.log.applied;
    let keepFrom = 0;
    for (let i = 1; i < this.confHistory.length; i++) {
      if (this.confHistory[i]!.index <= applied) keepFrom = i;
    }
    if (keepFrom > 0) this.confHistory = this.confHistory.slice(keepFrom);
  }

  /**
   * The commit index moved on the leader: tell the followers at once with an append to each
   * (etcd-raft's bcastAppend), unless `lazyCommitBroadcast`, where they learn it from the next
   * append (new entries) or heartbeat (every `heartbeatTicks`; the quiesce round carries it too).
   */
  private commitAdvanced(): void {
    if (!this.cfg.lazyCommitBroadcast) this.broadcastPending = true;
  }

  /** §5.3-5.4: advance the commit index to what a majority holds, if it is of this term. */
  private maybeCommit(): boolean {
    const mci = quorumCommitIndex(this.conf.voters, this.matchOf, this.scratch);
    if (mci <= this.log.committed) return false;
    // §5.4.2: only entries of the current term are committed by counting replicas.
    if (this.cfg.unsafe?.commitPreviousTerm !== true && this.log.term(mci) !== this.term)
      return false;
    this.log.commitTo(mci);
    this.onCommitAdvanced();
    return true;
  }

  private onCommitAdvanced(): void {
    const committed = this.log.committed;
    while (
      this.uncommittedFrom <= committed &&
      this.uncommittedHead < this.uncommittedSizes.length
    ) {
      this.uncommittedBytes -= this.uncommittedSizes[this.uncommittedHead]!;
      this.uncommittedHead++;
      this.uncommittedFrom = (this.uncommittedFrom + 1) as LogIndex;
    }
    if (this.uncommittedHead > 1024 && this.uncommittedHead * 2 > this.uncommittedSizes.length) {
      this.uncommittedSizes = this.uncommittedSizes.slice(this.uncommittedHead);
      this.uncommittedHead = 0;
    }
    if (this.log.term(committed) === this.term && this.readsWaitingCommit.length > 0) {
      const waiting = this.readsWaitingCommit;
      this.readsWaitingCommit = [];
      for (const r of waiting) this.handleReadRequest(r.from, r.context);
    }
    // Thesis §4.2.2: a leader removed from the configuration leads until that configuration is
    // committed, then steps down, handing off to the most up-to-date voter.
    const latest = this.confHistory[this.confHistory.length - 1]!;
    if (!this.conf.voters.includes(this.id) && latest.index <= committed) {
      let best: NodeId = NONE;
      let bestMatch = -1;
      for (const v of this.conf.voters) {
        const m = this.progress.get(v)?.match ?? 0;
        if (m > bestMatch) {
          best = v;
          bestMatch = m;
        }
      }
      this.broadcastPending = true;
      this.flushBroadcast();
      if (best !== NONE && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
      this.becomeFollower(this.term, NONE);
    }
  }

  private flushBroadcast(): void {
    if (!this.broadcastPending) return;
    this.broadcastPending = false;
    if (this.role !== StateRole.Leader) return;
    for (const id of this.progress.keys()) {
      if (id === this.id) continue;
      if (!this.sendAppend(id, true)) continue;
      while (this.sendAppend(id, false)) {
        // fill the in-flight window
      }
    }
  }

  /** Sends what `id` needs next; returns false if nothing was sent (paused or caught up). */
  private sendAppend(id: NodeId, sendIfEmpty: boolean): boolean {
    const pr = this.progress.get(id);
    if (!pr || pr.isPaused() || this.cfg.sendPaused?.(id)) return false;
    const prevIndex = (pr.next - 1) as LogIndex;
    const prevTerm = this.log.term(prevIndex);
    if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
      return this.sendSnapshot(id, pr);
    }
    const lastIndex = this.log.lastIndex();
    if (pr.next <= lastIndex && !this.log.available(pr.next, (lastIndex + 1) as LogIndex)) {
      // Not in memory: send nothing and leave the progress alone; the caller loads the range
      // and calls entriesFetched() (a heartbeat response also retries, and asks again).
      this.appendsWaiting.add(id);
      this.entriesWanted.set(id, {
        lo: pr.next,
        hi: Math.min(lastIndex + 1, this.log.offset) as LogIndex,
      });
      return false;
    }
    const entries =
      pr.next <= lastIndex
        ? this.log.slice(pr.next, (lastIndex + 1) as LogIndex, this.cfg.appendBytesMax)
        : [];
    if (entries.length === 0 && !sendIfEmpty) return false;
    let bytes = 0;
    for (const e of entries) bytes += e.data.byteLength;
    this.send(
      message({
        type: MessageType.Append,
        from: this.id,
        to: id,
        term: this.term,
        index: prevIndex,
        logTerm: prevTerm,
        entries,
        commit: this.log.committed,
      }),
    );
    pr.sentEntries(entries.length, (prevIndex + entries.length) as LogIndex, bytes);
    return true;
  }

  private sendSnapshot(id: NodeId, pr: Progress): boolean {
    if (!pr.recentActive) return false; // do not ship a snapshot to a node that is not answering
    const snapshot = this.log.storage.snapshot();
    assert(
      snapshot.meta.index >= this.log.firstIndex() - 1,
      'the snapshot covers the compacted log',
    );
    pr.becomeSnapshot(snapshot.meta.index, this.ticks);
    this.send(
      message({ type: MessageType.Snapshot, from: this.id, to: id, term: this.term, snapshot }),
    );
    return true;
  }

  private sendTimeoutNow(id: NodeId): void {
    this.send(message({ type: MessageType.TimeoutNow, from: this.id, to: id, term: this.term }));
  }

  /** `context` HEARTBEAT_QUIESCE makes it the quiesce round (see `quiesce`). */
  private bcastHeartbeat(context = ''): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.send(
        message({
          type: MessageType.Heartbeat,
          from: this.id,
          to: id,
          term: this.term,
          // Never tell a follower to commit beyond what it is known to hold.
          commit: Math.min(pr.match, this.log.committed) as LogIndex,
          readSeq: this.readSeq,
          context,
        }),
      );
    }
  }

  private handleAppend(m: Message): void {
    if (m.index < this.log.committed) {
      this.send(
        message({
          type: MessageType.AppendResp,
          from: this.id,
          to: m.from,
          term: this.term,
          index: this.log.committed,
        }),
      );
      return;
    }
    if (this.log.matchTerm(m.index, m.logTerm)) {
      const lastNew = (m.index + m.entries.length) as LogIndex;
      const conflict = this.log.findConflict(m.entries);
      if (conflict > 0) {
        assert(
          conflict > this.log.committed,
          `conflict at ${conflict} within committed ${this.log.committed}`,
        );
        this.appendToLog(m.entries.slice(conflict - (m.index + 1)));
      }
      this.log.commitTo(Math.min(m.commit, lastNew) as LogIndex);
      this.send(
        message({
          type: MessageType.AppendResp,
          from: this.id,
          to: m.from,
          term: this.term,
          index: lastNew,
        }),
      );
      return;
    }
    const hint = this.log.findConflictByTerm(
      Math.min(m.index, this.log.lastIndex()) as LogIndex,
      m.logTerm,
    );
    this.send(
      message({
        type: MessageType.AppendResp,
        from: this.id,
        to: m.from,
        term: this.term,
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    this.log.commitTo(m.commit);
    if (m.context === HEARTBEAT_QUIESCE) {
      // The leader is idle and we hold its whole log: stop the election timer, answer nothing.
      this.quiesced = true;
      return;
    }
    this.send(
      message({
        type: MessageType.HeartbeatResp,
        from: this.id,
        to: m.from,
        term: this.term,
        readSeq: m.readSeq,
      }),
    );
  }

  private handleSnapshot(m: Message): void {
    const snap = m.snapshot;
    if (snap === null) return;
    const meta = snap.meta;
    let index: LogIndex;
    if (meta.index <= this.log.committed) {
      index = this.log.committed;
    } else if (this.log.matchTerm(meta.index, meta.term)) {
      // We already hold the snapshot's last entry: fast-forward the commit instead.
      this.log.commitTo(meta.index);
      index = this.log.lastIndex();
    } else {
      checkConf(meta.conf);
      this.log.restore(snap);
      // Keep the configuration at `applied` (committed, still asked for by confStateAt until
      // the caller installs this snapshot), then the snapshot's.
      this.pruneConfHistory();
      this.confHistory = [this.confHistory[0]!, { index: meta.index, conf: meta.conf }];
      this.setConf(meta.conf);
      index = this.log.lastIndex();
    }
    this.send(
      message({ type: MessageType.AppendResp, from: this.id, to: m.from, term: this.term, index }),
    );
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      let hint = m.rejectHint;
      if (m.logTerm > 0) hint = this.log.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, hint)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.sendAppend(m.from, true);
      }
      return;
    }
    const wasPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index)) {
      if (pr.state === ProgressState.Probe) pr.becomeReplicate();
      else if (pr.state === ProgressState.Snapshot && pr.match >= pr.pendingSnapshot) {
        pr.becomeProbe();
        pr.becomeReplicate();
      } else if (pr.state === ProgressState.Replicate) pr.inflights.freeLE(m.index);

      if (this.maybeCommit() && !this.cfg.lazyCommitBroadcast) {
        this.broadcastPending = true;
      } else if (wasPaused) {
        this.sendAppend(m.from, true);
      }
      if (this.role !== StateRole.Leader) return; // stepped down after its own removal committed
      while (this.sendAppend(m.from, false)) {
        // keep the pipeline full while the window allows
      }
      if (m.from === this.leadTransferee && pr.match === this.log.lastIndex())
        this.sendTimeoutNow(m.from);
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.probeSent = false;
    if (pr.state === ProgressState.Replicate && pr.inflights.full()) pr.inflights.freeFirstOne();
    if (pr.match < this.log.lastIndex()) this.sendAppend(m.from, true);
    if (m.readSeq > pr.readSeqAcked && !pr.isLearner) {
      pr.readSeqAcked = m.readSeq;
      this.releaseReads();
    }
  }

  // ---------------------------------------------------------------- ReadIndex

  private handleReadRequest(from: NodeId, context: string): void {
    const local = from === this.id;
    if (this.conf.voters.length === 1 && this.conf.voters[0] === this.id) {
      this.answerRead(from, this.log.committed, context);
      return;
    }
    // Thesis §6.4 step 1: the leader's commit index is current only once it has committed an
    // entry of its own term.
    if (this.log.term(this.log.committed) !== this.term) {
      if (this.readsWaitingCommit.length >= this.cfg.readsPendingMax) {
        if (local) throw new RaftError(RaftErrorCode.PROPOSAL_DROPPED, 'too many pending reads');
        return;
      }
      this.readsWaitingCommit.push({ from, context });
      return;
    }
    if (this.pendingReads.length >= this.cfg.readsPendingMax) {
      if (local) throw new RaftError(RaftErrorCode.PROPOSAL_DROPPED, 'too many pending reads');
      return;
    }
    this.readSeq++;
    this.pendingReads.push({ seq: this.readSeq, index: this.log.committed, from, context });
    this.bcastHeartbeat();
  }

  /** Answers every read whose heartbeat round a majority of voters has acknowledged. */
  private releaseReads(): void {
    const acked = quorumCommitIndex(
      this.conf.voters,
      (id) => (id === this.id ? this.readSeq : (this.progress.get(id)?.readSeqAcked ?? 0)),
      this.scratch,
    );
    let n = 0;
    while (n < this.pendingReads.length && this.pendingReads[n]!.seq <= acked) {
      const r = this.pendingReads[n]!;
      this.answerRead(r.from, r.index, r.context);
      n++;
    }
    if (n > 0) this.pendingReads = this.pendingReads.slice(n);
  }

  private answerRead(from: NodeId, index: LogIndex, context: string): void {
    if (from === this.id) this.readStates.push({ index, context });
    else
      this.send(
        message({
          type: MessageType.ReadIndexResp,
          from: this.id,
          to: from,
          term: this.term,
          index,
          context,
        }),
      );
  }

  // ---------------------------------------------------------------- helpers

  private send(m: Message): void {
    this.msgs.push(m);
  }

  private validate(m: Message): void {
    const bad = (why: string) =>
      new RaftError(
        RaftErrorCode.INVALID_ARGUMENT,
        `node ${this.id}: bad ${m.type} message: ${why}`,
      );
    if (m.to !== this.id) throw bad(`addressed to ${m.to}`);
    if (!Number.isSafeInteger(m.from) || m.from < 1 || m.from === this.id)
      throw bad(`from ${m.from}`);
    if (!Number.isSafeInteger(m.term) || m.term < 0) throw bad(`term ${m.term}`);
    if (!Number.isSafeInteger(m.index) || m.index < 0) throw bad(`index ${m.index}`);
    if (m.type === MessageType.Append) {
      for (let i = 0; i < m.entries.length; i++) {
        const e = m.entries[i]!;
        if (e.index !== m.index + 1 + i) throw bad('entries are not contiguous after index');
        if (e.term > m.term || e.term < (i === 0 ? m.logTerm : m.entries[i - 1]!.term)) {
          throw bad('entry terms out of order');
        }
      }
    }
    if (m.type === MessageType.Snapshot && m.snapshot === null) throw bad('no snapshot');
  }

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.log.committed };
  }

  private softState(): SoftState {
    return { lead: this.lead, role: this.role };
  }
}

/**
 * The configuration entries after the snapshot at `after`: from `storage.confEntries` when the
 * storage keeps them as metadata (then no entry is read), else by scanning the log in
 * byte-bounded chunks.
 */
function recoverConfEntries(storage: LogStorage, after: LogIndex, bytesMax: number): Entry[] {
  const last = storage.lastIndex();
  const end = (last + 1) as LogIndex;
  if (after >= last) return [];
  if (storage.confEntries) {
    const out = storage.confEntries((after + 1) as LogIndex, end).slice();
    let prev = after;
    for (const e of out) {
      if (e.type !== EntryType.Conf || e.index <= prev || e.index > last) {
        throw new RaftError(
          RaftErrorCode.INVALID_STATE,
          `storage confEntries returned ${e.index} (type ${e.type}) out of order or range`,
        );
      }
      prev = e.index;
    }
    return out;
  }
  // No metadata: scan. A storage that cannot serve part of this synchronously throws its own
  // typed error from entries() (the broker's RaftLogTail records the miss, so its shell
  // prefetches and constructs the node again); the core has no Ready to ask through yet.
  const out: Entry[] = [];
  for (let lo = (after + 1) as LogIndex; lo <= last; ) {
    const chunk = storage.entries(lo, end, bytesMax);
    for (const e of chunk) if (e.type === EntryType.Conf) out.push(e);
    lo = (chunk[chunk.length - 1]!.index + 1) as LogIndex;
  }
  return out;
}

function hardEquals(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
