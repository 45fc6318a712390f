// The node's configuration and every limit of the core, in one place, with the assertions that
// tie related limits together. Times are in ticks (the caller decides what a tick is, typically
// 10-100 ms); sizes are in bytes of entry data.

import { RaftError, RaftErrorCode } from './errors.js';
import type { RandomSource } from './rng.js';
import type { NodeId } from './types.js';

export interface RaftConfig {
  readonly id: NodeId;
  /** Followers campaign after a randomized timeout in [electionTicks, 2 * electionTicks). */
  readonly electionTicks: number;
  /** The leader sends heartbeats every `heartbeatTicks`; must be well below electionTicks. */
  readonly heartbeatTicks: number;
  /** Randomness for election timeouts; inject a seeded source for determinism. */
  readonly random: RandomSource;
  /** Pre-vote (Raft thesis §9.6): a partitioned node cannot bump the term on rejoin. */
  readonly preVote: boolean;
  /**
   * Check-quorum (thesis §6.2): a leader steps down after an election timeout without hearing
   * from a majority, and a node that heard from a leader within the election timeout ignores
   * (pre-)votes (thesis §4.2.3, which keeps removed servers from disrupting).
   */
  readonly checkQuorum: boolean;
  /** Flow control: at most this many append messages in flight to one follower. */
  readonly inflightMsgsMax: number;
  /** Flow control: at most this many entry bytes in flight to one follower. */
  readonly inflightBytesMax: number;
  /** One append message carries at most this many entry bytes (at least one entry). */
  readonly appendBytesMax: number;
  /** One Ready hands out at most this many committed-entry bytes (at least one entry). */
  readonly committedBytesMax: number;
  /** The leader refuses proposals while its uncommitted entries exceed this many bytes. */
  readonly uncommittedBytesMax: number;
  /** ReadIndex requests waiting for this term's first commit or for a quorum round. */
  readonly readsPendingMax: number;
  /** A snapshot send not acknowledged within this many ticks is retried. */
  readonly snapshotTimeoutTicks: number;
  /**
   * Quiescence (CockroachDB's idea, docs/raft.md "Quiescence"): a leader whose log is committed
   * and held by every member that answered its last heartbeat round, with nothing proposed or
   * being read, tells its followers to quiesce and stops heartbeating; quiesced nodes do nothing
   * on `tick()`. Any proposal, read, transfer, campaign, message that needs an answer, or a
   * `reportUnreachable` of the leader (or, on the leader, of any member) wakes the node.
   */
  readonly quiesce: boolean;
  /**
   * Asynchronous storage writes (etcd-raft's idea, Raft thesis §10.2.1; docs/raft.md): `advance()`
   * then means the Ready's entries are WRITTEN (placed; the next Ready may follow), not durable,
   * and the caller reports durability separately with `durableTo(index, term)`. Only durable
   * entries count toward the leader's own match. The caller must also hold a Ready's messages
   * that acknowledge entries (a follower's append responses) until `durableIndex` covers them.
   */
  readonly asyncStorageWrites: boolean;
  /**
   * A commit advance on the leader sends nothing by itself: followers learn the commit index
   * from the next append (which carries it) or heartbeat (every `heartbeatTicks`), instead of
   * an append to each at once (etcd-raft's behaviour, the default). For groups whose followers
   * serve nothing from the commit index (partition replicas: reads are the leader's), this
   * halves the messages of a lone proposal: its entries out and their acknowledgements in, not
   * also an empty append and its answer per follower. Safety does not depend on when a
   * follower learns the commit index; a follower's commit index lags by at most
   * `heartbeatTicks` while the group is active.
   */
  readonly lazyCommitBroadcast: boolean;
  /**
   * Flow control from outside the core: while it returns true for a follower, the leader sends
   * it no appends or snapshots (heartbeats still go, and the in-flight window is kept). The link
   * to that follower is backed up (a throttled reassignment, for one); sending more would only
   * queue bytes behind it, and past the queue's bound they would be dropped and resent. A
   * heartbeat or append response after it turns false resumes sending. It must be a pure read
   * of state the caller owns (no side effects, no I/O). Default: never paused.
   */
  readonly sendPaused?: (to: NodeId) => boolean;
  /**
   * Test-only switches that break safety on purpose, so the simulator's checkers can be shown
   * to fail. Never set them outside tests.
   */
  readonly unsafe?: {
    /** Grant a vote even after voting for someone else in the same term. */
    readonly voteTwice?: boolean;
    /** Commit an entry of a previous term by counting replicas (violates thesis §3.6.2). */
    readonly commitPreviousTerm?: boolean;
  };
}

export type RaftConfigInput = Pick<RaftConfig, 'id' | 'random'> & Partial<RaftConfig>;

export const RAFT_DEFAULTS = {
  electionTicks: 10,
  heartbeatTicks: 1,
  preVote: true,
  checkQuorum: true,
  inflightMsgsMax: 256,
  inflightBytesMax: 64 * 1024 * 1024,
  appendBytesMax: 1024 * 1024,
  committedBytesMax: 16 * 1024 * 1024,
  uncommittedBytesMax: 256 * 1024 * 1024,
  readsPendingMax: 4096,
  snapshotTimeoutTicks: 50,
  quiesce: false,
  asyncStorageWrites: false,
  lazyCommitBroadcast: false,
} as const;

function invalid(message: string): RaftError {
  return new RaftError(RaftErrorCode.INVALID_ARGUMENT, `raft config: ${message}`);
}

/** Fills defaults and checks every limit and the relations between them. */
export function resolveConfig(input: RaftConfigInput): RaftConfig {
  const c: RaftConfig = { ...RAFT_DEFAULTS, ...input };
  const positiveInt = (name: keyof RaftConfig) => {
    const v = c[name];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) {
      throw invalid(`${name} must be a positive integer, got ${String(v)}`);
    }
  };
  positiveInt('id');
  positiveInt('electionTicks');
  positiveInt('heartbeatTicks');
  positiveInt('inflightMsgsMax');
  positiveInt('inflightBytesMax');
  positiveInt('appendBytesMax');
  positiveInt('committedBytesMax');
  positiveInt('uncommittedBytesMax');
  positiveInt('readsPendingMax');
  positiveInt('snapshotTimeoutTicks');
  if (c.heartbeatTicks >= c.electionTicks) {
    throw invalid(
      `heartbeatTicks (${c.heartbeatTicks}) must be below electionTicks (${c.electionTicks})`,
    );
  }
  if (c.appendBytesMax > c.inflightBytesMax) {
    throw invalid(
      'appendBytesMax must not exceed inflightBytesMax (one message must fit in flight)',
    );
  }
  return c;
}
