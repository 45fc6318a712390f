// The one place a failure scoped to a topic or partition becomes the errorCode/errorMessage of
// that entry of a response (a request that fails as a whole gets an ERROR frame instead,
// connection.ts).
import { ErrorCode, isStreamBusError } from '@streambus/protocol';
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
