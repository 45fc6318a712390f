// Small files replaced atomically and durably: write `<path>.tmp`, fsync it, rename it over
// `path`, fsync the directory. After a crash the file holds the old bytes or the new ones, never a
// mix. Used for the broker's metadata and producer-state snapshots (both small, rarely written);
// the record data itself goes through the storage package.
// A failure (a full disk) is a KAFKA_STORAGE_ERROR naming the file; the old file is kept and the
// partial temporary file removed (it would hold space the disk lacks).
import { open, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { systemStorageError } from './storage-errors.js';

/**
 * Writes in progress, by path: writes of one file run one after another, since they share the
 * temporary file (two concurrent InitProducerId calls both persisting metadata.json renamed each
 * other's temporary file away). An entry lives only while writes of that path are queued.
 */
const writing = new Map<string, Promise<void>>();

export function writeFileDurably(path: string, data: Uint8Array): Promise<void> {
  const previous = writing.get(path) ?? Promise.resolve();
  const next = previous.then(() => writeNow(path, data));
  const settled = next.catch(() => undefined);
  writing.set(path, settled);
  void settled.then(() => {
    if (writing.get(path) === settled) writing.delete(path);
  });
  return next;
}

async function writeNow(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  try {
    const file = await open(tmp, 'w');
    try {
      await file.writeFile(data);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(tmp, path);
    await syncDir(dirname(path));
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw systemStorageError(err, `writing ${path}`) ?? err;
  }
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
