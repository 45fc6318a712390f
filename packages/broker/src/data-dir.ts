// Preparing the data directory at start-up, with a message that says what is wrong with it. A
// recursive mkdir under a read-only mount or a directory without write permission can fail with
// a bare `ENOENT ... mkdir` (the deepest missing directory, not the cause), and a data directory
// that exists on a read-only file system passes mkdir and fails later on its first write. So the
// directory is created, then checked for write access (access(2) reports EROFS even to root),
// and a failure is explained from the nearest existing ancestor: not a directory, read-only,
// or not writable.
import { constants } from 'node:fs';
import { access, mkdir, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ErrorCode, StreamBusError } from '@streambus/protocol';

const REASONS: Readonly<Record<string, string>> = {
  EROFS: 'read-only file system',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOSPC: 'no space left on the device',
};

function storageError(message: string, cause: unknown): StreamBusError {
  return new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, message, { cause });
}

/** The nearest path at or above `path` that exists, with whether it is a directory. */
async function nearestExisting(path: string): Promise<{ path: string; isDir: boolean } | null> {
  let p = resolve(path);
  for (;;) {
    try {
      return { path: p, isDir: (await stat(p)).isDirectory() };
    } catch {
      const up = dirname(p);
      if (up === p) return null;
      p = up;
    }
  }
}

/** What stops `dir` from being created or written, as a sentence fragment. */
async function explain(dir: string, err: NodeJS.ErrnoException): Promise<string> {
  const found = await nearestExisting(dir);
  if (found !== null && !found.isDir) return `${found.path} is not a directory`;
  if (found !== null && found.path !== resolve(dir)) {
    try {
      await access(found.path, constants.W_OK);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code ?? '';
      return `cannot create it in ${found.path}: ${REASONS[code] ?? code}`;
    }
  }
  const code = err.code ?? '';
  return REASONS[code] ?? err.message;
}

/**
 * Creates `dataDir/topics` and checks that `dataDir` is writable. Throws KAFKA_STORAGE_ERROR
 * "data directory DIR is not writable (reason)" or "... is not usable (reason)".
 */
export async function prepareDataDir(dataDir: string): Promise<void> {
  try {
    await mkdir(join(dataDir, 'topics'), { recursive: true });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const reason = await explain(join(dataDir, 'topics'), e);
    const what = e.code === 'ENOTDIR' || e.code === 'EEXIST' ? 'not usable' : 'not writable';
    throw storageError(`data directory ${dataDir} is ${what} (${reason})`, err);
  }
  for (const dir of [dataDir, join(dataDir, 'topics')]) {
    try {
      await access(dir, constants.W_OK);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const where = dir === dataDir ? '' : `${dir}: `;
      throw storageError(
        `data directory ${dataDir} is not writable (${where}${REASONS[e.code ?? ''] ?? e.message})`,
        err,
      );
    }
  }
}
