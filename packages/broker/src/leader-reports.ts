// A partition leader's reports to the controller (issue 9, controller-planner.ts rule 3): the
// Raft group elects its leader; the leader tells the controller that it leads, in which term,
// and who is in sync; the controller's state, from which every broker answers Metadata, follows.
// Until a report is accepted, clients are routed to the previous leader and get
// NOT_LEADER_OR_FOLLOWER, so a report that is late is an outage for that partition.
//
// Rules (`LeaderReports.report`, called for the dirty partitions on a house tick, rule 7, and on
// every role change):
//   1. Only a leader whose term committed reports (it serves from then on: read-gating in
//      partition-replica.ts), so Metadata never names a leader that cannot answer.
//   2. Nothing is sent while the applied state already says what the report would.
//   3. While the state disagrees, the same report (signature: leader epoch, ISR, the
//      partition's epoch in the state, this broker's liveness) is repeated at most every
//      `retryTicks`; a report whose signature changed goes at once.
//   4. At most one report per partition is in flight for a given term, but a report of a NEWER
//      term never waits for an older term's call: that call can be stuck for seconds (a timeout
//      per attempt against a controller that is restarting) or be refused by now. Before this
//      rule, a deposed leader's report, refused and retried for ~17 s by the controller client,
//      held the partition's one slot while the same broker led again in a later term: the state
//      kept naming another broker, whose replica answered "the leader is broker N", for longer
//      than a client's 20 s retry budget (the rolling restart under load).
//   5. A refusal (the state moved on: NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE) ends the
//      call at once (ControllerClient.changeIsr does not retry refusals); the next tick reports
//      what is true then.
//   6. Refused because the state names another in-sync leader at an epoch not below this term
//      (the controller moved leadership when it fenced a broker): the group is handed to that
//      leader, whose next term the controller then takes, so the state and the group agree.
// The in-flight calls are bounded (`REPORTS_INFLIGHT_MAX`): past it a report waits a tick.
//   7. Idle cost (issue 9): a house tick evaluates only the partitions marked dirty
//      (`reportDirty`), not every partition held. The broker marks a partition dirty when its
//      replica changes (role, high watermark, opened), when its Raft group has work (a group
//      that is not quiesced: its ISR may drift tick by tick), when the applied metadata state
//      changes (every partition), and when its report call ends. A partition stays dirty while
//      its report is due for a retry (rule 3) or waits for a slot; it leaves the set once the
//      state agrees with it or it does not lead. Before, every tick scanned all 1,000 replicas
//      of an idle broker (a third of its idle CPU).
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import type { NodeId } from '@streambus/raft';
import type { IsrReport } from './controller/controller-planner.js';
import type { MetadataRecord } from './controller/metadata-records.js';
import { type MetadataState, topicByName } from './controller/metadata-state.js';

/** House ticks before the same leader/ISR report is sent again while the state disagrees. */
export const REPORT_RETRY_TICKS = 10;
/** Report calls in flight at once on one broker (a newer term's report does not queue). */
export const REPORTS_INFLIGHT_MAX = 10_000;

/** What a report needs of one partition replica (PartitionReplica has it). */
export interface ReportingReplica {
  readonly role: string;
  readonly termCommitted: boolean;
  readonly leaderEpoch: number;
  inSyncReplicas(): readonly NodeId[];
  transferLeadership(to: NodeId): void;
}

/**
 * Rule 7: which held partitions (keys `topicId/partition`) an applied batch of metadata records
 * can change a report of: a partition change names its own; broker heartbeats, producer-id
 * blocks and broker configs none (an idle cluster applies a heartbeat every few ticks, and
 * marking every partition for each one was as costly as the old scan); anything else (topics,
 * fencing, reassignments; [] after a snapshot install) may touch any: 'all'.
 */
export function reportKeysTouched(records: readonly MetadataRecord[]): string[] | 'all' {
  if (records.length === 0) return 'all';
  const keys: string[] = [];
  for (const r of records) {
    if (r.type === 'partition-change') keys.push(`${r.topicId}/${r.partition}`);
    else if (
      r.type !== 'broker-heartbeat' &&
      r.type !== 'allocate-producer-ids' &&
      r.type !== 'alter-broker-config'
    ) {
      return 'all';
    }
  }
  return keys;
}

/** One partition as `reportDirty` evaluates it. */
export interface ReportSubject {
  readonly topic: string;
  readonly partition: number;
  readonly replica: ReportingReplica;
}

export interface LeaderReportsHost {
  readonly self: number;
  /** The metadata state this broker applied. */
  state(): MetadataState;
  /** One report to the controller (ControllerClient.changeIsr). */
  changeIsr(report: IsrReport): Promise<unknown>;
  /** A report that failed (logged at debug: the next tick reports again). */
  onFailed?(topic: string, partition: number, err: unknown): void;
  readonly retryTicks?: number;
}

export class LeaderReports {
  private ticks = 0;
  private closed = false;
  /** Per partition, the last report sent (its signature) and the tick it was sent at (rule 3). */
  private readonly reported = new Map<string, { sig: string; tick: number }>();
  /** Per partition, the term of the newest report in flight (rule 4). */
  private readonly inflight = new Map<string, number>();
  private calls = 0;
  /** Rule 7: the partitions to evaluate on the next `reportDirty`; `allDirty`: every one. */
  private readonly dirty = new Set<string>();
  private allDirty = false;
  /** Partitions evaluated by `reportDirty` so far (the idle-cost test reads it). */
  evaluated = 0;

  constructor(private readonly host: LeaderReportsHost) {}

  /** One house tick passed. */
  tick(): void {
    this.ticks++;
  }

  /** Whether a report was sent for `key` since it was opened (or forgotten). */
  hasReported(key: string): boolean {
    return this.reported.has(key);
  }

  /** Report calls in flight now. */
  get inFlight(): number {
    return this.calls;
  }

  /** The replica of `key` was closed: its next open reports afresh. */
  forget(key: string): void {
    this.reported.delete(key);
    this.dirty.delete(key);
  }

  /** Rule 7: evaluate `key` on the next `reportDirty`. */
  markDirty(key: string): void {
    if (!this.closed) this.dirty.add(key);
  }

  /** Rule 7: the applied state changed: evaluate every partition on the next `reportDirty`. */
  markAllDirty(): void {
    if (!this.closed) this.allDirty = true;
  }

  /** Partitions waiting for evaluation (every one held while `markAllDirty` is pending: -1). */
  get dirtyCount(): number {
    return this.allDirty ? -1 : this.dirty.size;
  }

  /**
   * Rule 7: evaluates the dirty partitions (`all()` lists every key held, used after
   * `markAllDirty`; `subject(key)` resolves one, undefined when no longer held or open).
   * Returns how many were evaluated.
   */
  reportDirty(
    subject: (key: string) => ReportSubject | undefined,
    all: () => Iterable<string>,
  ): number {
    if (this.closed) return 0;
    const keys: Iterable<string> = this.allDirty ? [...all()] : [...this.dirty];
    this.allDirty = false;
    this.dirty.clear();
    let n = 0;
    for (const key of keys) {
      const s = subject(key);
      if (s === undefined) continue;
      n++;
      if (!this.report(key, s.topic, s.partition, s.replica)) this.dirty.add(key);
    }
    this.evaluated += n;
    return n;
  }

  close(): void {
    this.closed = true;
  }

  /**
   * Reports `r`'s leadership of `topic`/`partition` when the rules above say so. Returns false
   * while the partition must be evaluated again on a later tick without any other trigger (a
   * retry is due later, or no call slot was free: rule 7), true otherwise.
   */
  report(key: string, topic: string, partition: number, r: ReportingReplica): boolean {
    if (this.closed || r.role !== 'leader' || !r.termCommitted) return true;
    const leaderEpoch = r.leaderEpoch;
    const pending = this.inflight.get(key);
    // The call's end marks the partition dirty.
    if (pending !== undefined && pending >= leaderEpoch) return true;
    if (this.calls >= REPORTS_INFLIGHT_MAX) return false;
    const state = this.host.state();
    const self = this.host.self;
    const t = topicByName(state, topic);
    const ps = t?.partitions[partition];
    // A topic not (yet) in the state: its arrival is a state change (markAllDirty).
    if (t === undefined || ps === undefined) return true;
    const isr = [...new Set([self, ...r.inSyncReplicas()])].sort((a, b) => a - b);
    const same =
      ps.leader === self &&
      ps.leaderEpoch === leaderEpoch &&
      ps.isr.length === isr.length &&
      [...ps.isr].sort((a, b) => a - b).every((id, i) => id === isr[i]);
    if (same) return true;
    const live = state.brokers.get(self)?.fenced === false;
    const sig = `${leaderEpoch}:${isr.join(',')}:${ps.partitionEpoch}:${live}`;
    const last = this.reported.get(key);
    const retryTicks = this.host.retryTicks ?? REPORT_RETRY_TICKS;
    if (last !== undefined && last.sig === sig && this.ticks - last.tick < retryTicks) return false;
    this.reported.set(key, { sig, tick: this.ticks });
    this.inflight.set(key, leaderEpoch);
    this.calls++;
    const topicId = t.id;
    this.host
      .changeIsr({ topicId, partition, leader: self, leaderEpoch, isr })
      .then(
        () => undefined,
        (err: unknown) => {
          this.host.onFailed?.(topic, partition, err);
          this.followStateLeader(topic, partition, r, leaderEpoch, err);
        },
      )
      .finally(() => {
        this.calls--;
        if (this.inflight.get(key) === leaderEpoch) this.inflight.delete(key);
        this.markDirty(key);
      });
    return true;
  }

  /** Rule 6. */
  private followStateLeader(
    topic: string,
    partition: number,
    r: ReportingReplica,
    reportedEpoch: number,
    err: unknown,
  ): void {
    const now = topicByName(this.host.state(), topic)?.partitions[partition];
    if (
      isStreamBusError(err, ErrorCode.NOT_LEADER_OR_FOLLOWER) &&
      now !== undefined &&
      now.leader > 0 &&
      now.leader !== this.host.self &&
      now.leaderEpoch >= reportedEpoch &&
      r.role === 'leader' &&
      r.leaderEpoch === reportedEpoch &&
      r.inSyncReplicas().includes(now.leader as NodeId)
    ) {
      r.transferLeadership(now.leader as NodeId);
    }
  }
}
