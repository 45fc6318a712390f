// The one place a failure scoped to a topic or partition becomes the errorCode/errorMessage of
// that entry of a response (a request that fails as a whole gets an ERROR frame instead,
// connection.ts).
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import { NotLeaderError } from '../replication/partition-replica.js';
import { systemStorageError } from '../storage-errors.js';
import type { BrokerContext } from './context.js';

export const ERROR_MESSAGE_LENGTH_MAX = 4096;

export interface PartitionError {
  errorCode: number;
  errorMessage?: string;
}

export function partitionError(
  b: BrokerContext,
  err: unknown,
  context: Record<string, unknown>,
): PartitionError {
  // An OS error from the broker's own files (a full disk creating a topic) is a storage error.
  err = systemStorageError(err) ?? err;
  if (isStreamBusError(err)) {
    return { errorCode: err.code, errorMessage: err.message.slice(0, ERROR_MESSAGE_LENGTH_MAX) };
  }
  b.logger.error({ err, ...context }, 'unexpected error');
  return { errorCode: ErrorCode.UNKNOWN_SERVER_ERROR, errorMessage: 'unexpected server error' };
}

export function countPartitionError(b: BrokerContext, api: string, err: unknown): void {
  const code = isStreamBusError(err) ? err.code : ErrorCode.UNKNOWN_SERVER_ERROR;
  b.metrics.requestErrors.inc({ api, code });
}

/**
 * The `currentLeader` field of a produce or fetch partition refused with NOT_LEADER_OR_FOLLOWER
 * (docs/protocol.md "Leader hints"): the Raft leader this broker's replica knows, with its term;
 * nothing when it knows none (or names this broker itself: no use to a client).
 */
export function leaderHintOf(
  b: BrokerContext,
  err: unknown,
): { currentLeader?: { leaderId: number; leaderEpoch: number } } {
  if (!(err instanceof NotLeaderError) || err.leaderHint <= 0 || err.leaderEpoch <= 0) return {};
  if (err.leaderHint === b.config.nodeId) return {};
  return { currentLeader: { leaderId: err.leaderHint, leaderEpoch: err.leaderEpoch } };
}
