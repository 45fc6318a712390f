// What the cluster simulation needs from a partition replica, whatever implements it: the real
// `PartitionReplica` (replication/, through `real-replica.ts`) or the stand-in test double
// (`stand-in-replica.ts`, used to build and test the harness before the real one existed).
//
// An adapter owns one replica of one partition on one broker process. It is opened on that
// process's file system, transport and host, and it is dropped, not closed, when the process
// crashes: whatever it still has in flight is cut off by the dead file system and transport.

import type { NodeId, RandomSource } from '@streambus/raft';
import type { FileSystem } from '@streambus/storage';
import type { GroupHost, GroupKey, HostedGroup, RaftTransport } from '../cluster/contract.js';

export type SimAcks = 'all' | 'leader';

export interface ReplicaContext {
  readonly nodeId: NodeId;
  readonly key: GroupKey;
  /** The partition's replicas (all voters), this broker included. */
  readonly voters: readonly NodeId[];
  readonly fs: FileSystem;
  /** The partition's directory on `fs` (may not exist yet). */
  readonly dir: string;
  readonly transport: RaftTransport;
  readonly host: GroupHost;
  readonly random: RandomSource;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The simulated clock (append timestamps). */
  readonly nowMs: () => number;
  /** Test-only: a new leader serves reads before its term committed (no read-gating). */
  readonly unsafeUngatedLeaderReads?: boolean;
  /** Test-only: entries count as durable once written (no wait for the fsync). */
  readonly unsafeDurableAtWrite?: boolean;
}

export interface ReplicaRole {
  readonly leader: boolean;
  readonly term: number;
  /** The leader this replica knows of (0 = none). */
  readonly lead: number;
  /** The group is quiesced here (idle; replicas that do not quiesce say false). */
  readonly quiesced?: boolean;
}

export interface SimReplica {
  readonly group: HostedGroup;
  role(): ReplicaRole;
  /**
   * Proposes one RecordBatch (baseOffset 0 as a producer sends it). Resolves with its base
   * offset: for acks 'all' once committed, for 'leader' once the leader wrote it. Rejects with
   * a typed error (NOT_LEADER_OR_FOLLOWER, a retriable back-pressure error, ...).
   */
  produce(batch: Buffer, acks: SimAcks): Promise<number>;
  /** The high watermark (the end offset of the commit index) as this replica knows it. */
  highWatermark(): number;
  /** Whole batches from the one holding `offset`, none at or past the high watermark. */
  read(offset: number, bytesMax: number): Promise<Buffer>;
  transferLeadership(to: NodeId): void;
  /** Entries are written here and not yet durable (a pipelined fsync in flight). */
  writtenNotDurable?(): boolean;
  /** One line of state for a liveness report (role, term, offsets, why offline). */
  describe(): string;
}

export interface SimReplicaFactory {
  /** For the summary and the replay command. */
  readonly name: string;
  /** True when retried idempotent batches are deduplicated (the duplicate checker runs). */
  readonly idempotent: boolean;
  open(ctx: ReplicaContext): Promise<SimReplica>;
}
