// One replica of a partition's Raft group, as the request handlers see a partition
// (served-partition.ts). The replica (replication/partition-replica.ts) does the work: the leader
// proposes produced batches (acks 0, 1, all), reads are capped at the high watermark (the end
// offset of the commit index), and a replica that is not the leader answers
// NOT_LEADER_OR_FOLLOWER so the client refreshes its metadata and goes to the leader. Parked
// fetches wake on every high-watermark advance and role change (`onChange`).
//
// DeleteRecords and retention move the log start through the group (a committed log-start
// entry, so every replica converges): only the leader proposes them; the periodic maintenance
// runs retention on the partitions this broker leads. Idempotent produce is deduplicated by the
// replica (its producer state is kept on every replica, so it is right on a new leader); this
// file keeps no second producer table. Timestamp lookups read the segment log's time index,
// capped at the high watermark (control batches carry timestamp 0 and never match T > 0).
//
// Closing and reopening the replica (`ReplicaSource`: open registers it with the broker's group
// host, `remove` unregisters it) is what three things share:
//   - offline: a replica whose log fails to open (damage found by recovery, EMFILE, an I/O
//     error), or that met damage while serving or went offline in Raft, is held as an offline
//     partition: every request answers KAFKA_STORAGE_ERROR naming the reason and the repair
//     command (offline-log.ts `offlineError`), /ready lists it, every other partition serves;
//   - repair (`repair`): the replica is closed, the storage repair runs on its directory, and the
//     replica opens again. Its Raft and offset state is made consistent with the repaired log by
//     the replica's own recovery (replica-store.ts: the offset translator and term runs are
//     checked against a scan of the log and rebuilt when they disagree, the saved commit is
//     clamped to the log). Only 'truncate' changes a replicated log: 'skip' replaces damage with
//     an empty gap batch, which a Raft log (one entry = one batch of >= 1 record stamped with its
//     term) cannot hold, so it is refused unless it is a dry run. With RF > 1 the truncated
//     replica catches up from the leader like any lagging follower (docs/replication.md);
//   - log-level config changes (`reopen`): segment size and age, durability and flush interval
//     are taken by the segment log only when it opens, so a change reopens the replica (a sole
//     voter elects itself at once; with RF > 1 leadership moves while it reopens). Retention and
//     the limits read per request (max.message.bytes, ...) take effect at once (`setConfig`:
//     retention is passed to each check).
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { NONE } from '@streambus/raft';
import {
  checkKeyedRecords,
  isLogCorruptionError,
  type RepairOptions,
  type RepairReport,
} from '@streambus/storage';
import { type Waiter, WaiterSet } from './long-poll.js';
import { type OfflineState, offlineError, REPAIRING_REASON } from './offline-log.js';
import type { ValidatedRecords } from './produce-validation.js';
import { NotLeaderError, type PartitionReplica } from './replication/partition-replica.js';
import type {
  Acks,
  ProduceOutcome,
  RepairPartitionLog,
  ServedPartition,
} from './served-partition.js';
import { compactionApplies, retentionApplies, type TopicConfig } from './topic-config.js';

/** How this broker opens and unregisters one partition's replica (cluster-node.ts). */
export interface ReplicaSource {
  /** The replica's directory (its segment log and Raft files). */
  readonly dir: string;
  /** Opens the replica under `config` and registers it with the group host. */
  open(config: TopicConfig): Promise<PartitionReplica>;
  /** Unregisters the replica from the group host (before it closes). */
  remove(): void;
}

export interface ReplicatedPartitionHooks {
  /** A replica was opened (first open, or again after a repair or reopen). */
  onReplica?(replica: PartitionReplica): void;
  /** The partition went offline (not while a repair or reopen runs). */
  onOffline?(p: ReplicatedPartition, state: OfflineState): void;
  /** Closing the replica failed (it is closed anyway; the next open recovers). */
  onCloseFailed?(p: ReplicatedPartition, err: unknown): void;
  /** The replica's storage failed while it served (it is reopened from disk by itself). */
  onStorageFailure?(p: ReplicatedPartition, err: StreamBusError): void;
}

/** The reason a partition has while its replica reopens for a config change. */
export const REOPENING_REASON = 'being reopened for a config change';
/** A replica whose storage failed (not damage) is reopened from disk at most this often. */
export const RECOVERY_INTERVAL_MS = 1000;
/** How long a produce waits for a reopened sole-voter replica to lead again. */
const REOPEN_WAIT_MS_MAX = 5000;
/**
 * How long a produce waits for an election under way on this broker's replica (`electionWait`):
 * a leadership transfer's target wins within a round trip or two, and a refusal before that
 * names no leader, so the client would refresh metadata and back off instead.
 */
export const ELECTION_WAIT_MS_MAX = 250;

/**
 * An election is under way on `r`: a candidate, or a follower that knows no leader and has no
 * hint either (a leader that handed over names its target at once: `leaderHint`).
 */
function electing(r: PartitionReplica): boolean {
  return r.role === 'candidate' || (r.role === 'follower' && r.leaderHint.leaderId === NONE);
}

/** Damage (needs a repair), as opposed to a storage failure that may pass (ENOSPC, EIO...). */
function isDamage(err: unknown): boolean {
  return isLogCorruptionError(err) || isLogCorruptionError((err as { cause?: unknown })?.cause);
}

function describeFailure(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Config fields a partition's segment log takes only when it opens. */
const LOG_FIELDS: ReadonlyArray<keyof TopicConfig> = [
  'segmentBytes',
  'segmentMs',
  'durability',
  'flushIntervalMs',
];

/** Whether going from `a` to `b` changes a field only a reopen applies. */
export function logConfigChanged(a: TopicConfig, b: TopicConfig): boolean {
  return LOG_FIELDS.some((f) => a[f] !== b[f]);
}

export class ReplicatedPartition implements ServedPartition {
  readonly waiters: WaiterSet;
  private current: PartitionReplica | null = null;
  private unsubscribe: () => void = () => {};
  private config: TopicConfig;
  private closed = false;
  private repairing = false;
  /** Why the partition does not serve apart from its replica's own offline error, or null. */
  private offlineState: OfflineState | null = null;
  private replicaOfflineSince: number | null = null;
  /** The last offsets known (an offline partition reports them). */
  private lastOffsets = { start: 0, end: 0 };
  /** Reopens and repairs run one at a time. */
  private cycling: Promise<void> = Promise.resolve();
  private recoveryTimer: NodeJS.Timeout | null = null;
  /** The reopen for a config change queued or running, if any. */
  private reopening: Promise<void> | null = null;
  /** The wait for the election under way on the replica, shared by every produce (electionWait). */
  private electingWait: Promise<void> | null = null;

  private constructor(
    readonly topic: string,
    readonly index: number,
    config: TopicConfig,
    private readonly source: ReplicaSource,
    fetchWaitersMax: number,
    private readonly hooks: ReplicatedPartitionHooks,
  ) {
    this.config = config;
    this.waiters = new WaiterSet(fetchWaitersMax);
  }

  /**
   * Opens the replica; one whose log cannot be opened gives an offline partition (never a
   * throw), so the broker keeps serving the others and /ready names this one.
   */
  static async open(
    topic: string,
    index: number,
    config: TopicConfig,
    source: ReplicaSource,
    fetchWaitersMax: number,
    hooks: ReplicatedPartitionHooks = {},
  ): Promise<ReplicatedPartition> {
    const p = new ReplicatedPartition(topic, index, config, source, fetchWaitersMax, hooks);
    await p.openOrOffline();
    return p;
  }

  /** The replica, or null while the partition is offline for want of one (or reopening). */
  get replica(): PartitionReplica | null {
    return this.current;
  }
  get topicConfig(): TopicConfig {
    return this.config;
  }
  get highWatermark(): number {
    return this.current?.highWatermark ?? this.lastOffsets.end;
  }
  get logStartOffset(): number {
    return this.current?.logStartOffset ?? this.lastOffsets.start;
  }
  get logEndOffset(): number {
    return this.current?.logEndOffset ?? this.lastOffsets.end;
  }
  get sizeBytes(): number {
    return this.current?.partitionLog.sizeBytes ?? 0;
  }
  get offline(): OfflineState | null {
    if (this.offlineState !== null) return this.offlineState;
    const err = this.current?.offlineError ?? null;
    if (err === null) return null;
    this.replicaOfflineSince ??= Date.now();
    return { reason: err.message, damage: null, sinceMs: this.replicaOfflineSince };
  }
  get inStorageError(): boolean {
    return this.offline !== null;
  }

  /** A config change that needs no reopen (limits read per request: max.message.bytes, ...). */
  setConfig(config: TopicConfig): void {
    this.config = config;
  }

  checkServing(): void {
    // A reopen for a config change is waited out by produce, answered by the others.
    if (this.reopening !== null && !this.closed) return;
    this.serving();
  }

  checkReadable(): void {
    this.usable().checkReadable();
  }

  /**
   * ServedPartition.electionWait: one promise for every produce that arrives while an election
   * is under way here (one listener, one timer), settled when the replica leads or follows a
   * known leader, or after ELECTION_WAIT_MS_MAX. A leadership transfer's old leader sends the
   * client here as soon as it steps down, often before the target has counted its votes: the
   * produce is then proposed (or refused naming the leader) instead of refused naming nobody.
   */
  electionWait(): Promise<void> | null {
    const r = this.current;
    if (this.closed || this.reopening !== null || r === null || !electing(r)) return null;
    if (this.electingWait === null) {
      this.electingWait = new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(timer);
          off();
          this.electingWait = null;
          resolve();
        };
        const timer = setTimeout(done, ELECTION_WAIT_MS_MAX);
        const off = r.onChange(() => {
          if (!electing(r) || this.current !== r) done();
        });
      });
    }
    return this.electingWait;
  }

  async produce(records: Buffer, validated: ValidatedRecords, acks: Acks): Promise<ProduceOutcome> {
    // `validated` is produce validation's proof that every batch's framing and CRC were
    // checked: the replica does not compute the CRC a second time (a tenth of a leader's CPU
    // under acks=1, issue 9).
    void validated;
    // A compacted topic keeps the latest record per key: one without a key is refused, as in Kafka.
    if (compactionApplies(this.topicConfig.cleanupPolicy)) checkKeyedRecords(records);
    // (A serving leader has nothing to wait for: no hop then.)
    if (this.reopening !== null || this.current?.role !== 'leader') await this.untilReopened();
    const r = await this.serving().propose(records, acks, { crcVerified: true });
    return { baseOffset: r.baseOffset, appendTimeMs: r.logAppendTimeMs, duplicate: false };
  }

  async read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }> {
    const replica = this.usable();
    try {
      return await replica.read(offset, maxBytes);
    } catch (err) {
      // A log that failed as a whole (an fsync failed) refuses reads too: reopened from disk.
      if (replica.partitionLog.failed) this.scheduleRecovery();
      if (!isLogCorruptionError(err)) throw err;
      // Damage does not go away by retrying: offline until repaired.
      await this.takeOffline(describeFailure(err), err);
      throw offlineError(this.topic, this.index, this.offline ?? this.stateOf(err.message, err));
    }
  }

  async findOffsetByTimestamp(
    timestampMs: number,
  ): Promise<{ offset: number; timestamp: number } | null> {
    const replica = this.serving();
    const hw = replica.highWatermark;
    const found = await replica.partitionLog.findOffsetByTimestamp(timestampMs);
    return found !== null && found.offset < hw ? found : null;
  }

  deleteRecordsBefore(offset: number): Promise<number> {
    try {
      return this.serving().deleteRecordsBefore(offset);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  park(waiter: Waiter): boolean {
    return !this.closed && this.waiters.add(waiter);
  }

  unpark(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  /** Retention through the group, proposed by the leader only (followers follow its entry). */
  async enforceRetention(): Promise<void> {
    // cleanup.policy=compact set by a live config change: only the cleaner may remove records
    // now, whatever retention the open log was opened with.
    if (!retentionApplies(this.topicConfig.cleanupPolicy)) return;
    const r = this.current;
    if (!this.closed && r !== null && r.offlineError === null && r.role === 'leader') {
      // The topic's current retention: a change applies here without reopening the log.
      const c = this.topicConfig;
      await r.enforceRetention({ retentionBytesMax: c.retentionBytes, retentionMs: c.retentionMs });
    }
  }

  /** The replica keeps its own state files; nothing to snapshot here. */
  async saveProducerState(): Promise<void> {}

  /** Durability is the replica's (each Ready is persisted under the topic's policy). */
  async flush(): Promise<void> {}

  /**
   * Takes a changed log-level config: the replica closes and opens again under it (see top). An
   * offline partition takes it when it is repaired.
   */
  reopen(config: TopicConfig): Promise<void> {
    const run = this.cycle(async () => {
      this.config = config;
      const replica = this.current;
      if (this.closed || replica === null || this.offline !== null) return;
      // New produces wait (`untilReopened`); the ones in flight are answered first, bounded.
      this.offlineState = { reason: REOPENING_REASON, damage: null, sinceMs: Date.now() };
      const deadline = Date.now() + REOPEN_WAIT_MS_MAX;
      while (replica.stats().pendingRequests > 0 && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 2));
      }
      await this.closeReplica(this.offlineState);
      await this.openOrOffline();
    });
    const reopening = run.finally(() => {
      if (this.reopening === reopening) this.reopening = null;
    });
    this.reopening = reopening;
    return run;
  }

  /**
   * Closes the replica (it stops serving), repairs its directory, and opens it again: online,
   * or offline with the reason it still cannot open. A dry run of an offline partition leaves
   * it as it is.
   */
  async repair(options: RepairOptions, repairLog: RepairPartitionLog): Promise<RepairReport> {
    if (this.closed) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `partition ${this.topic}-${this.index} is closed`,
      );
    }
    if (this.repairing) {
      throw new StreamBusError(
        ErrorCode.INVALID_REQUEST,
        `partition ${this.topic}-${this.index} is already being repaired`,
      );
    }
    if (options.mode === 'skip' && options.dryRun !== true) {
      throw new StreamBusError(
        ErrorCode.INVALID_REQUEST,
        `partition ${this.topic}-${this.index} is replicated: skip repair would leave an empty ` +
          'gap batch a Raft log cannot hold; use --truncate (see --dry-run first)',
      );
    }
    this.repairing = true;
    try {
      let report: RepairReport | undefined;
      await this.cycle(async () => {
        const wasOffline = this.offline !== null;
        // A dry run of an offline partition leaves it as it is.
        if (options.dryRun === true && wasOffline) {
          report = await repairLog(this.source.dir, options);
          return;
        }
        await this.closeReplica({ reason: REPAIRING_REASON, damage: null, sinceMs: Date.now() });
        try {
          report = await repairLog(this.source.dir, options);
        } finally {
          await this.openOrOffline();
        }
      });
      if (report === undefined) throw new Error('assertion: repair ended without a report');
      return report;
    } finally {
      this.repairing = false;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.recoveryTimer !== null) clearTimeout(this.recoveryTimer);
    this.recoveryTimer = null;
    this.waiters.wakeAll();
    await this.cycling.catch(() => undefined);
    await this.closeReplica(null);
  }

  // ---- internals ------------------------------------------------------------------------------

  /** The replica when the partition serves as the leader; else the error a request gets. */
  private serving(): PartitionReplica {
    const replica = this.usable();
    if (replica.role !== 'leader') {
      const { leaderId: hint, leaderEpoch } = replica.leaderHint;
      throw new NotLeaderError(
        hint,
        `this broker is not the leader of ${this.topic}-${this.index}` +
          (hint > 0 ? ` (the leader is broker ${hint})` : ' (no leader elected yet)'),
        leaderEpoch,
      );
    }
    return replica;
  }

  /** The replica when it is open and online (any role); else the error a request gets. */
  private usable(): PartitionReplica {
    if (this.closed) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `partition ${this.topic}-${this.index} is closed`,
      );
    }
    const state = this.offline;
    if (state?.reason === REOPENING_REASON) {
      throw new NotLeaderError(
        NONE,
        `partition ${this.topic}-${this.index} is reopening for a config change; retry`,
      );
    }
    if (state !== null) throw offlineError(this.topic, this.index, state);
    if (this.current === null) throw new Error('assertion: an online partition has a replica');
    return this.current;
  }

  private stateOf(reason: string, cause: unknown): OfflineState {
    const damage = isLogCorruptionError(cause) ? cause.damage : null;
    return { reason, damage, sinceMs: Date.now() };
  }

  /** Runs `work` after every earlier reopen or repair (one at a time). */
  private cycle(work: () => Promise<void>): Promise<void> {
    const run = this.cycling.then(work);
    this.cycling = run.catch(() => undefined);
    return run;
  }

  private async openOrOffline(): Promise<void> {
    if (this.closed) return;
    // Already offline for a failure (a retry of a recovery): not reported again.
    const before = this.offlineState;
    const reported =
      before !== null && before.reason !== REPAIRING_REASON && before.reason !== REOPENING_REASON;
    try {
      const replica = await this.source.open(this.config);
      if (this.closed) {
        this.source.remove();
        await replica.close();
        return;
      }
      this.current = replica;
      this.offlineState = null;
      this.replicaOfflineSince = null;
      this.unsubscribe = replica.onChange(() => {
        this.waiters.wakeAll();
        const err = replica.offlineError;
        if (err !== null && this.current === replica && this.recoveryTimer === null) {
          this.hooks.onStorageFailure?.(this, err);
          if (!isDamage(err)) this.scheduleRecovery();
        }
      });
      this.hooks.onReplica?.(replica);
    } catch (err) {
      this.current = null;
      this.offlineState = this.stateOf(describeFailure(err), err);
      if (!reported) this.hooks.onOffline?.(this, this.offlineState);
      if (!isDamage(err)) this.scheduleRecovery();
    }
    this.waiters.wakeAll();
  }

  /**
   * A replica whose storage failed, or that could not be opened for a reason other than damage,
   * is reopened from disk after RECOVERY_INTERVAL_MS (its log recovery cuts what was not durable;
   * Raft re-replicates or the producers' retries rewrite it), again and again until it opens.
   * Damage stays offline until repaired.
   */
  private scheduleRecovery(): void {
    if (this.closed || this.recoveryTimer !== null) return;
    this.recoveryTimer = setTimeout(() => {
      this.recoveryTimer = null;
      this.cycle(async () => {
        if (this.closed) return;
        const r = this.current;
        const failed =
          r === null
            ? this.offlineState !== null && this.offlineState.reason !== REPAIRING_REASON
            : r.offlineError !== null || r.partitionLog.failed;
        if (!failed) return;
        if (r !== null) await this.closeReplica(this.offline);
        await this.openOrOffline();
      }).catch(() => undefined);
    }, RECOVERY_INTERVAL_MS);
    this.recoveryTimer.unref();
  }

  /**
   * A produce that arrives while the replica reopens for a config change waits for the reopen,
   * then (a sole voter) for it to lead again, bounded: the change must not fail the producers.
   */
  private async untilReopened(): Promise<void> {
    while (this.reopening !== null) await this.reopening.catch(() => undefined);
    const r = this.current;
    if (r === null || r.role === 'leader' || r.offlineError !== null) return;
    const { voters } = r.configuration;
    if (voters.length !== 1 || voters[0] !== r.self) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(done, REOPEN_WAIT_MS_MAX);
      const off = r.onChange(() => {
        if (r.role !== 'candidate' && r.role !== 'follower') done();
      });
      function done(): void {
        clearTimeout(timer);
        off();
        resolve();
      }
    });
  }

  /** Closes the replica (if any), leaving the partition in `state` (null: no state). */
  private async closeReplica(state: OfflineState | null): Promise<void> {
    const replica = this.current;
    if (state !== null) this.offlineState = state;
    if (replica === null) return;
    this.lastOffsets = { start: replica.logStartOffset, end: replica.highWatermark };
    this.current = null;
    this.unsubscribe();
    this.unsubscribe = () => {};
    this.waiters.wakeAll();
    this.source.remove();
    // A close that fails (a checkpoint not saved) loses nothing: the next open recovers from the
    // log. The partition goes on to reopen (or stays closed) either way.
    await replica.close().catch((err: unknown) => this.hooks.onCloseFailed?.(this, err));
  }

  /** A read met damage: the replica closes and the partition is offline until repaired. */
  private async takeOffline(reason: string, cause: unknown): Promise<void> {
    if (this.closed || this.offlineState !== null) return;
    const state = this.stateOf(reason, cause);
    await this.closeReplica(state);
    this.hooks.onOffline?.(this, state);
  }
}
