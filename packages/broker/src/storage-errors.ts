// Storage failures as typed errors, for the broker's own files (metadata.json, producer-state
// snapshots, topic directories) and for telling a full disk apart in logs and metrics. A Node
// system error (ENOSPC, EIO, ...) that reaches a request handler becomes KAFKA_STORAGE_ERROR (56,
// retriable) naming the OS code, instead of UNKNOWN_SERVER_ERROR; the partition logs' own errors
// are typed already (storage package).
//
// The partition log's own codes (1140-1149) are mapped to what a client sees here and nowhere
// else, by `systemStorageError` (the request handlers' one call): LOG_TRUNCATED (a durability
// wait outlived by a truncation or reset: the entry was taken back, as when a leader stepped
// down) answers NOT_LEADER_OR_FOLLOWER so the client refreshes metadata and retries;
// LOG_BACKPRESSURE (append queue or unsynced bytes full) goes on the wire as it is: retriable in
// the shared table, so the SDK backs off and retries, and not a storage failure (no offline
// partition, no disk-error metric). docs/storage.md lists the table.
import { ErrorCode, isStreamBusError, StreamBusError } from '@streambus/protocol';

/** Storage code -> the code a client sees, where they differ. */
const CLIENT_CODE_OF_STORAGE: ReadonlyMap<number, number> = new Map([
  [ErrorCode.LOG_TRUNCATED, ErrorCode.NOT_LEADER_OR_FOLLOWER],
]);

/** `err` as the client should see it when it is one of storage's own codes; null otherwise. */
export function clientStorageError(err: unknown): StreamBusError | null {
  if (!isStreamBusError(err)) return null;
  const code = CLIENT_CODE_OF_STORAGE.get(err.code);
  if (code === undefined) return null;
  return new StreamBusError(code, `${err.errorName}: ${err.message}`, { cause: err });
}

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
 * file or step), as the client's code when it is one storage maps (`clientStorageError`); null
 * for anything else.
 */
export function systemStorageError(err: unknown, what?: string): StreamBusError | null {
  const code = osErrorCode(err);
  if (isStreamBusError(err)) {
    const mapped = clientStorageError(err);
    if (mapped !== null) return mapped;
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
