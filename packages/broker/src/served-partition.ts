// What the request handlers and the replica manager need of a partition on this broker: one
// replica of the partition's Raft group (replicated-partition.ts). A broker started without
// --peers is a cluster of one and serves its partitions through the same class.
import type { RepairOptions, RepairReport } from '@streambus/storage';
import type { Waiter, WaiterSet } from './long-poll.js';
import type { OfflineState } from './offline-log.js';
import type { ValidatedRecords } from './produce-validation.js';
import type { TopicConfig } from './topic-config.js';

export type Acks = -1 | 0 | 1;

export interface ProduceOutcome {
  baseOffset: number;
  /** -1 for a duplicate (the original append time is not kept). */
  appendTimeMs: number;
  duplicate: boolean;
}

/** Repairs the closed log in `dir` (the storage package's repairPartitionLog). */
export type RepairPartitionLog = (dir: string, options: RepairOptions) => Promise<RepairReport>;

export interface ServedPartition {
  readonly topic: string;
  readonly index: number;
  readonly topicConfig: TopicConfig;
  /** The end of what consumers may see. */
  readonly highWatermark: number;
  readonly logStartOffset: number;
  readonly logEndOffset: number;
  readonly sizeBytes: number;
  readonly offline: OfflineState | null;
  readonly inStorageError: boolean;
  readonly waiters: WaiterSet;
  /** Throws the partition's error when it cannot serve (closed, offline, not the leader). */
  checkServing(): void;
  /**
   * Throws when reads (Fetch, ListOffsets) must wait although the partition serves: a new
   * replicated leader whose term has not committed yet (partition-replica.ts read-gating).
   */
  checkReadable?(): void;
  /**
   * While an election is under way here (a replicated partition's replica is a candidate, or a
   * follower that has not heard from a leader), a promise that settles when it ends (bounded);
   * null otherwise. A produce waits for it before `checkServing` (issue 12).
   */
  electionWait?(): Promise<void> | null;
  produce(records: Buffer, validated: ValidatedRecords, acks: Acks): Promise<ProduceOutcome>;
  read(offset: number, maxBytes: number): Promise<{ data: Buffer; nextOffset: number }>;
  findOffsetByTimestamp(timestampMs: number): Promise<{ offset: number; timestamp: number } | null>;
  deleteRecordsBefore(offset: number): Promise<number>;
  park(waiter: Waiter): boolean;
  unpark(waiter: Waiter): void;
  enforceRetention(): Promise<void>;
  saveProducerState(): Promise<void>;
  flush(): Promise<void>;
  close(): Promise<void>;
  reopen(config: TopicConfig): Promise<void>;
  repair(options: RepairOptions, repairLog: RepairPartitionLog): Promise<RepairReport>;
}
