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
// file keeps no second producer table. Not on this path yet (typed errors, never silent):
// timestamp lookups, repair, and reopening the log for a changed log-level config.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { RepairReport } from '@streambus/storage';
import { type Waiter, WaiterSet } from './long-poll.js';
import type { OfflineState } from './offline-log.js';
import type { Acks, ProduceOutcome } from './partition.js';
import type { ValidatedRecords } from './produce-validation.js';
import { NotLeaderError, type PartitionReplica } from './replication/partition-replica.js';
import type { ServedPartition } from './served-partition.js';
import type { TopicConfig } from './topic-config.js';

export class ReplicatedPartition implements ServedPartition {
  readonly waiters: WaiterSet;
  private readonly unsubscribe: () => void;
  private config: TopicConfig;
  private closed = false;
  private offlineSince: number | null = null;

  constructor(
    readonly topic: string,
    readonly index: number,
    config: TopicConfig,
    readonly replica: PartitionReplica,
    fetchWaitersMax: number,
    private readonly onClose: () => void,
  ) {
    this.config = config;
    this.waiters = new WaiterSet(fetchWaitersMax);
    this.unsubscribe = replica.onChange(() => this.waiters.wakeAll());
  }

  get topicConfig(): TopicConfig {
    return this.config;
  }
  get highWatermark(): number {
    return this.replica.highWatermark;
  }
  get logStartOffset(): number {
    return this.replica.logStartOffset;
  }
  get logEndOffset(): number {
    return this.replica.logEndOffset;
  }
  get sizeBytes(): number {
    return 0;
  }
  get offline(): OfflineState | null {
    const err = this.replica.offlineError;
    if (err === null) return null;
    this.offlineSince ??= Date.now();
    return { reason: err.message, damage: null, sinceMs: this.offlineSince };
  }
  get inStorageError(): boolean {
    return this.replica.offlineError !== null;
  }

  /** A config change that needs no reopen (limits read per request: max.message.bytes, ...). */
  setConfig(config: TopicConfig): void {
    this.config = config;
  }

  checkServing(): void {
    if (this.closed) {
      throw new StreamBusError(
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        `partition ${this.topic}-${this.index} is closed`,
      );
    }
    const err = this.replica.offlineError;
    if (err !== null) throw err;
    if (this.replica.role !== 'leader') {
      const hint = this.replica.leaderId;
      throw new NotLeaderError(
        hint,
        `this broker is not the leader of ${this.topic}-${this.index}` +
          (hint > 0 ? ` (the leader is broker ${hint})` : ' (no leader elected yet)'),
      );
    }
  }

  checkReadable(): void {
    this.replica.checkReadable();
  }

  async produce(records: Buffer, validated: ValidatedRecords, acks: Acks): Promise<ProduceOutcome> {
    this.checkServing();
    void validated;
    const r = await this.replica.propose(records, acks);
    return { baseOffset: r.baseOffset, appendTimeMs: r.logAppendTimeMs, duplicate: false };
  }

  read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }> {
    return this.replica.read(offset, maxBytes);
  }

  findOffsetByTimestamp(): Promise<{ offset: number; timestamp: number } | null> {
    return Promise.reject(this.notHere('a timestamp lookup'));
  }

  deleteRecordsBefore(offset: number): Promise<number> {
    return this.replica.deleteRecordsBefore(offset);
  }

  park(waiter: Waiter): boolean {
    return !this.closed && this.waiters.add(waiter);
  }

  unpark(waiter: Waiter): void {
    this.waiters.remove(waiter);
  }

  /** Retention through the group, proposed by the leader only (followers follow its entry). */
  async enforceRetention(): Promise<void> {
    if (!this.closed && this.replica.role === 'leader') await this.replica.enforceRetention();
  }

  /** The replica keeps its own state files; nothing to snapshot here. */
  async saveProducerState(): Promise<void> {}

  /** Durability is the replica's (each Ready is persisted under the topic's policy). */
  async flush(): Promise<void> {}

  reopen(): Promise<void> {
    return Promise.reject(this.notHere('a log-level config change (restart the broker)'));
  }

  repair(): Promise<RepairReport> {
    return Promise.reject(this.notHere('partition repair'));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe();
    this.waiters.wakeAll();
    this.onClose();
    await this.replica.close();
  }

  private notHere(what: string): StreamBusError {
    return new StreamBusError(
      ErrorCode.INVALID_REQUEST,
      `${what} is not supported on a replicated partition yet (${this.topic}-${this.index})`,
    );
  }
}
