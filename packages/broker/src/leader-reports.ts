// A partition leader's reports to the controller (issue 9, controller-planner.ts rule 3): the
// Raft group elects its leader; the leader tells the controller that it leads, in which term,
// and who is in sync; the controller's state, from which every broker answers Metadata, follows.
// Until a report is accepted, clients are routed to the previous leader and get
// NOT_LEADER_OR_FOLLOWER, so a report that is late is an outage for that partition.
//
// Rules (`LeaderReports.report`, called on every house tick and on every role change):
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
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import type { NodeId } from '@streambus/raft';
import type { IsrReport } from './controller/controller-planner.js';
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
  }

  close(): void {
    this.closed = true;
  }

  /** Reports `r`'s leadership of `topic`/`partition` when the rules above say so. */
  report(key: string, topic: string, partition: number, r: ReportingReplica): void {
    if (this.closed || r.role !== 'leader' || !r.termCommitted) return;
    const leaderEpoch = r.leaderEpoch;
    const pending = this.inflight.get(key);
    if (pending !== undefined && pending >= leaderEpoch) return;
    if (this.calls >= REPORTS_INFLIGHT_MAX) return;
    const state = this.host.state();
    const self = this.host.self;
    const t = topicByName(state, topic);
    const ps = t?.partitions[partition];
    if (t === undefined || ps === undefined) return;
    const isr = [...new Set([self, ...r.inSyncReplicas()])].sort((a, b) => a - b);
    const same =
      ps.leader === self &&
      ps.leaderEpoch === leaderEpoch &&
      ps.isr.length === isr.length &&
      [...ps.isr].sort((a, b) => a - b).every((id, i) => id === isr[i]);
    if (same) return;
    const live = state.brokers.get(self)?.fenced === false;
    const sig = `${leaderEpoch}:${isr.join(',')}:${ps.partitionEpoch}:${live}`;
    const last = this.reported.get(key);
    const retryTicks = this.host.retryTicks ?? REPORT_RETRY_TICKS;
    if (last !== undefined && last.sig === sig && this.ticks - last.tick < retryTicks) return;
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
      });
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
