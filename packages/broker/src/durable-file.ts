// Small files replaced atomically and durably, through the storage FileSystem seam: write
// `<path>.tmp`, fsync it, rename it over `path`, fsync the directory. After a crash the file holds
// the old bytes or the new ones, never a mix. Used for the broker's metadata and producer-state
// snapshots (both small, rarely written); the record data itself goes through the storage
// package. Going through the seam, these files count against the broker's descriptor bound and
// can be crash-simulated (MemoryFileSystem) and fault-injected (FaultyFileSystem) in tests.
// A failure (a full disk) is a KAFKA_STORAGE_ERROR naming the file; the old file is kept and the
// partial temporary file removed (it would hold space the disk lacks).
import { type FileSystem, isNotFound, writeFileAtomic } from '@streambus/storage';
import { systemStorageError } from './storage-errors.js';

/**
 * Writes in progress, by path: writes of one file run one after another, since they share the
 * temporary file (two concurrent InitProducerId calls both persisting metadata.json renamed each
 * other's temporary file away). An entry lives only while writes of that path are queued.
 */
const writing = new Map<string, Promise<void>>();

export function writeFileDurably(fs: FileSystem, path: string, data: Uint8Array): Promise<void> {
  const previous = writing.get(path) ?? Promise.resolve();
  const next = previous.then(() => writeNow(fs, path, data));
  const settled = next.catch(() => undefined);
  writing.set(path, settled);
  void settled.then(() => {
    if (writing.get(path) === settled) writing.delete(path);
  });
  return next;
}

async function writeNow(fs: FileSystem, path: string, data: Uint8Array): Promise<void> {
  try {
    await writeFileAtomic(fs, path, data);
  } catch (err) {
    await fs.unlink(`${path}.tmp`).catch(() => undefined);
    throw systemStorageError(err, `writing ${path}`) ?? err;
  }
}

/** The whole file, or null when it does not exist; other failures are storage errors. */
export async function readFileIfExists(fs: FileSystem, path: string): Promise<Buffer | null> {
  try {
    return await fs.readFile(path);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw systemStorageError(err, `reading ${path}`) ?? err;
  }
}
