// How many file descriptors the broker's partition storage may hold (`limits.openFilesMax`,
// enforced by the storage package's BoundedFileSystem). The configured bound is lowered to half
// of the process's own open-file limit when that is smaller, so that sockets, the metadata
// store, producer-state snapshots and Node itself keep the other half. Node cannot call
// getrlimit, so the limit is read from /proc/self/limits (Linux); elsewhere the configured bound
// is used as it is.
import { readFileSync } from 'node:fs';

/** The soft "Max open files" limit of this process, or null when it cannot be read. */
export function processOpenFilesLimit(
  read: () => string = () => readFileSync('/proc/self/limits', 'utf8'),
): number | null {
  let text: string;
  try {
    text = read();
  } catch {
    return null;
  }
  const m = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (!m || m[1] === 'unlimited') return null;
  const n = Number(m[1]);
  return Number.isSafeInteger(n) && n > 0 ? n : null;
}

/** The bound storage gets: `configured`, or half of `processLimit` when that is lower. */
export function storageOpenFilesMax(
  configured: number,
  processLimit: number | null,
): { openFilesMax: number; lowered: boolean } {
  if (processLimit === null) return { openFilesMax: configured, lowered: false };
  const half = Math.max(1, Math.floor(processLimit / 2));
  return half < configured
    ? { openFilesMax: half, lowered: true }
    : { openFilesMax: configured, lowered: false };
}
