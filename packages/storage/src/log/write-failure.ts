// The errors a partition log answers when the disk refuses a write, in words an operator can act
// on. Two kinds (docs/storage.md, "When the disk fails"):
//   - a refused write (write/writev/open/rename failing: ENOSPC, EDQUOT, EROFS, EIO, a short
//     write): the log cuts the torn bytes back off and stays usable; the next append tries again,
//     so writes resume by themselves once space is freed;
//   - a failed fsync (or a failed cut-back): what the OS holds may not be what is on disk, so the
//     log fails as a whole and must be reopened (recovered from disk) before it takes writes.
// Both are KAFKA_STORAGE_ERROR (56), retriable: a producer backs off and tries again.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { fsErrorCode } from '../fs.js';

/** The OS codes that mean "no space" (a full disk or a full quota). */
export function isDiskFull(err: unknown): boolean {
  const code = fsErrorCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

/** A refused append write: nothing of it is kept, the log takes the next append. */
export function writeRefusedError(dir: string, bytes: number, cause: unknown): StreamBusError {
  const code = fsErrorCode(cause) ?? 'I/O error';
  const detail = cause instanceof Error ? cause.message : String(cause);
  const what = isDiskFull(cause)
    ? `disk full (${code}): could not write ${bytes} B to partition log ${dir}; nothing of it was kept, writes resume when space is freed`
    : `write of ${bytes} B to partition log ${dir} failed (${code}); nothing of it was kept`;
  return new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, `${what}: ${detail}`, { cause });
}

/** The log failed as a whole (fsync or cut-back failure): reopen it to recover from disk. */
export function logFailedError(dir: string, cause: unknown): StreamBusError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StreamBusError(
    ErrorCode.KAFKA_STORAGE_ERROR,
    `partition log ${dir} failed and must be recovered from disk before it takes writes: ${detail}`,
    { cause },
  );
}
