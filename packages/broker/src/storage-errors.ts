// Storage failures as typed errors, for the broker's own files (metadata.json, producer-state
// snapshots, topic directories) and for telling a full disk apart in logs and metrics. A Node
// system error (ENOSPC, EIO, ...) that reaches a request handler becomes KAFKA_STORAGE_ERROR (56,
// retriable) naming the OS code, instead of UNKNOWN_SERVER_ERROR; the partition logs' own errors
// are typed already (storage package).
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';

/** Causes followed when looking for the OS error code (an error wrapped a few times). */
const CAUSE_DEPTH_MAX = 8;

/** The OS error code ('ENOSPC', ...) of `err` or of an error in its cause chain. */
export function osErrorCode(err: unknown): string | undefined {
  let e: unknown = err;
  for (let depth = 0; depth < CAUSE_DEPTH_MAX && typeof e === 'object' && e !== null; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

export function isDiskFull(err: unknown): boolean {
  const code = osErrorCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/**
 * `err` as a KAFKA_STORAGE_ERROR when it is an OS error from the file system (`what` says which
 * file or step); null for anything else.
 */
export function systemStorageError(err: unknown, what?: string): StreamBusError | null {
  const code = osErrorCode(err);
  if (isStreamBusError(err)) {
    // The storage seam's own error for a full disk, named as one where it does not say so.
    if (!isStreamBusError(err, ErrorCode.KAFKA_STORAGE_ERROR) || !isDiskFull(err)) return null;
    if (err.message.includes('disk full')) return null;
    return new StreamBusError(
      ErrorCode.KAFKA_STORAGE_ERROR,
      `disk full (${code}): ${err.message}`,
      {
        cause: err,
      },
    );
  }
  if (code === undefined) return null;
  const detail = err instanceof Error ? err.message : String(err);
  const head = isDiskFull(err) ? `disk full (${code})` : `storage error (${code})`;
  return new StreamBusError(
    ErrorCode.KAFKA_STORAGE_ERROR,
    `${head}${what ? ` ${what}` : ''}: ${detail}`,
    { cause: err },
  );
}
