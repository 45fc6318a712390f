// The typed errors of the Raft core: expected operating conditions a caller switches on by
// `code` (not leader, proposal dropped, bad argument). Broken invariants are not errors: they
// throw `AssertionError` from `assert` and nothing should catch them.
//
// This package depends on no other package of ours, so the codes are names, not numbers. Where
// `@streambus/protocol`'s error table has the same condition the name is the same (the broker
// maps a RaftError to a StreamBusError by name); the others are Raft-specific.

export const RaftErrorCode = {
  /** This node is not the leader; `leaderHint` says who is, when known. Retriable. */
  NOT_LEADER_OR_FOLLOWER: 'NOT_LEADER_OR_FOLLOWER',
  /** The leader cannot take the proposal now (transfer in progress, byte budget full). Retriable. */
  PROPOSAL_DROPPED: 'PROPOSAL_DROPPED',
  /** A configuration change is still uncommitted, or this term has committed nothing. Retriable. */
  CONF_CHANGE_IN_PROGRESS: 'CONF_CHANGE_IN_PROGRESS',
  /** The request itself is wrong (unknown node, no-op change, bad message). Not retriable. */
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  /** The call breaks the Ready/advance protocol (e.g. `advance()` without `ready()`). */
  INVALID_STATE: 'INVALID_STATE',
} as const;
export type RaftErrorCode = (typeof RaftErrorCode)[keyof typeof RaftErrorCode];

const RETRIABLE: Readonly<Record<RaftErrorCode, boolean>> = {
  NOT_LEADER_OR_FOLLOWER: true,
  PROPOSAL_DROPPED: true,
  CONF_CHANGE_IN_PROGRESS: true,
  INVALID_ARGUMENT: false,
  INVALID_STATE: false,
};

export class RaftError extends Error {
  override readonly name = 'RaftError';
  readonly code: RaftErrorCode;
  readonly retriable: boolean;
  /** For NOT_LEADER_OR_FOLLOWER: the known leader, or 0 when none is known. */
  readonly leaderHint: number;

  constructor(
    code: RaftErrorCode,
    message: string,
    options?: { leaderHint?: number; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retriable = RETRIABLE[code];
    this.leaderHint = options?.leaderHint ?? 0;
  }
}

export class AssertionError extends Error {
  override readonly name = 'AssertionError';
}

/** Invariant check: throws AssertionError, which nothing should catch. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(`raft invariant: ${message}`);
}
