// The real partition replica (replication/partition-replica.ts) behind the simulation's
// `SimReplica` seam. Nothing is faked here: the replica runs over its PartitionLog on the
// broker's simulated disk, its Raft group on the simulated transport and host. The adapter only
// translates names (acks 'all' = -1, 'leader' = 1), adds the replica to the host (its `open`
// does not), and feeds it the simulated clock (append times, segment age).
//
// Per seed the tail kept in memory is drawn small sometimes (`tailEntriesMax` 4-64), so lagging
// followers are served through the replica's asynchronous prefetch, not only from memory.

import type { NodeId } from '@streambus/raft';
import type { PartitionLogConfig } from '@streambus/storage';
import { PartitionReplica } from '../replication/partition-replica.js';
import { REPLICA_LOG_CONFIG } from '../replication/replica-test-cluster.js';
import type {
  ReplicaContext,
  ReplicaRole,
  SimAcks,
  SimReplica,
  SimReplicaFactory,
} from './sim-replica.js';

/** The replica tests' log settings with small segments, so runs roll segments often. */
export const SIM_LOG_CONFIG: PartitionLogConfig = {
  ...REPLICA_LOG_CONFIG,
  segmentBytesMax: 16 * 1024,
};

class RealReplica implements SimReplica {
  constructor(private readonly replica: PartitionReplica) {}

  get group(): PartitionReplica {
    return this.replica;
  }

  role(): ReplicaRole {
    return {
      leader: this.replica.role === 'leader',
      term: this.replica.leaderEpoch,
      lead: this.replica.leaderId,
      quiesced: this.replica.quiesced,
    };
  }

  async produce(batch: Buffer, acks: SimAcks): Promise<number> {
    const r = await this.replica.propose(batch, acks === 'all' ? -1 : 1);
    return r.baseOffset;
  }

  highWatermark(): number {
    return this.replica.highWatermark;
  }

  async read(offset: number, bytesMax: number): Promise<Buffer> {
    return (await this.replica.read(offset, bytesMax)).data;
  }

  describe(): string {
    const r = this.replica;
    const st = r.stats();
    const off = r.offlineError ? ` offline: ${r.offlineError.message}` : '';
    return `${r.role} term ${r.leaderEpoch} lead ${r.leaderId} commit ${r.commitIndex} hw ${r.highWatermark} end ${r.logEndOffset} durable ${r.durableEndOffset} pending ${st.pendingRequests}${off}`;
  }

  writtenNotDurable(): boolean {
    return this.replica.partitionLog.writtenEndOffset > this.replica.durableEndOffset;
  }

  transferLeadership(to: NodeId): void {
    try {
      this.replica.transferLeadership(to);
    } catch {
      // Not the leader any more, or a transfer already running: a no-op for the workload.
    }
  }
}

export const realReplicaFactory: SimReplicaFactory = {
  name: 'real',
  idempotent: true,
  async open(ctx: ReplicaContext): Promise<SimReplica> {
    const small = ctx.random.int(2) === 0;
    const replica = await PartitionReplica.open({
      key: ctx.key,
      self: ctx.nodeId,
      dir: ctx.dir,
      fs: ctx.fs,
      logConfig: SIM_LOG_CONFIG,
      // Some replicas get a small unsynced bound, so writes wait for the fsync in flight.
      logOptions: {
        nowMs: ctx.nowMs,
        // (From the key and node, not `ctx.random`, so the seeds' other draws stay as they were.)
        ...((ctx.key.partition + ctx.nodeId) % 3 === 0
          ? { unsyncedBytesMax: 1024 + ((ctx.key.topicId * 7919) % 8192) }
          : {}),
      },
      initialVoters: ctx.voters,
      transport: ctx.transport,
      host: ctx.host,
      random: ctx.random,
      nowMs: ctx.nowMs,
      raft: { electionTicks: ctx.electionTicks, heartbeatTicks: ctx.heartbeatTicks },
      ...(small ? { tailLimits: { tailEntriesMax: 4 + ctx.random.int(60) } } : {}),
      ...(ctx.unsafeUngatedLeaderReads || ctx.unsafeDurableAtWrite
        ? {
            unsafe: {
              ...(ctx.unsafeUngatedLeaderReads ? { ungatedLeaderReads: true } : {}),
              ...(ctx.unsafeDurableAtWrite ? { durableAtWrite: true } : {}),
            },
          }
        : {}),
    });
    ctx.host.add(replica);
    return new RealReplica(replica);
  },
};
