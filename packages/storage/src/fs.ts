// The file-system seam: every byte the storage package reads or writes goes through `FileSystem`.
//
// Two implementations: `NodeFileSystem` (node:fs/promises) and `MemoryFileSystem` (tests; it
// simulates crashes that lose unsynced writes). The interface is deliberately small and
// positional: no streams, no implicit file positions, no buffering. Durability rules, which both
// implementations honour and which the rest of the package relies on:
//   1. `FileHandle.sync()` makes the file's bytes and length durable.
//   2. Creating, renaming or unlinking a name is durable only after `syncDir(parent)`.
//   3. Directories created with `mkdir` or removed with `rmdir` are durable at once (a
//      simplification: storage creates its directories once, before writing anything that
//      matters; `removeTree` makes the unlinks inside a directory durable before removing it).
// Errors are `StreamBusError`s: KAFKA_STORAGE_ERROR for I/O failures, with the OS error as `cause`
// and the path in the message; `isNotFound(err)` tells a missing file apart.
import { ErrorCode, StreamBusError } from '@streambus/protocol';

/** How to open a file. `create` makes it if missing; `create-new` fails if it exists. */
export type OpenMode = 'read' | 'readwrite' | 'create' | 'create-new';

export interface FileHandle {
  readonly path: string;
  /** Reads up to `length` bytes at `position` into `buffer[offset..]`; returns bytes read (0 at EOF). */
  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /** Writes all of `data` at `position` (extending the file as needed). */
  write(data: Uint8Array, position: number): Promise<void>;
  /** Writes every chunk back to back starting at `position` (one system call where possible). */
  writev(chunks: readonly Uint8Array[], position: number): Promise<void>;
  /**
   * Optional: `writev` done synchronously on the calling thread, when the handle can do it right
   * now (a descriptor is open); returns false, having written nothing, when it cannot (the
   * caller then uses `writev`). Throws the storage error `writev` would reject with (some bytes
   * may have landed, as with `writev`). The same durability as `writev`: the bytes are in the OS,
   * durable only after `sync()`. For small appends, where a thread-pool round trip costs more
   * than the write itself (node-fs.ts, partition-log.ts `inlineWriteBytesMax`).
   */
  writevNow?(chunks: readonly Uint8Array[], position: number): boolean;
  /** fsync: the file's contents and length become durable. */
  sync(): Promise<void>;
  truncate(size: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface FileStat {
  readonly size: number;
  readonly isDirectory: boolean;
}

export interface FileSystem {
  open(path: string, mode: OpenMode): Promise<FileHandle>;
  /** The whole file. */
  readFile(path: string): Promise<Buffer>;
  /** Atomically replaces `to` with `from` (same directory). Durable after `syncDir`. */
  rename(from: string, to: string): Promise<void>;
  unlink(path: string): Promise<void>;
  /** Names (not paths) in `dir`, sorted. */
  readdir(dir: string): Promise<string[]>;
  /** Creates `dir` and its parents; no error if it exists. */
  mkdir(dir: string): Promise<void>;
  /** Removes the empty directory `dir` (durable at once, like `mkdir`). */
  rmdir(dir: string): Promise<void>;
  /** null when nothing exists at `path`. */
  stat(path: string): Promise<FileStat | null>;
  truncate(path: string, size: number): Promise<void>;
  /** Makes creations, renames and unlinks of names in `dir` durable. */
  syncDir(dir: string): Promise<void>;
}

/** The OS-level error code of a file-system failure ('ENOENT', ...), if any. */
export function fsErrorCode(err: unknown): string | undefined {
  const cause = err instanceof StreamBusError ? err.cause : err;
  if (typeof cause === 'object' && cause !== null && 'code' in cause) {
    const code = (cause as { code: unknown }).code;
    if (typeof code === 'string') return code;
  }
  return undefined;
}

export function isNotFound(err: unknown): boolean {
  return fsErrorCode(err) === 'ENOENT';
}

/** Wraps an OS error as the package's storage error, naming the operation and the path. */
export function storageError(op: string, path: string, cause: unknown): StreamBusError {
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, `${op} ${path}: ${detail}`, { cause });
}

export function joinPath(dir: string, name: string): string {
  return dir.endsWith('/') ? `${dir}${name}` : `${dir}/${name}`;
}

export function parentDir(path: string): string {
  const i = path.lastIndexOf('/');
  if (i < 0) return '.';
  if (i === 0) return '/';
  return path.slice(0, i);
}

/** Reads exactly `length` bytes at `position`, or fewer only at end of file. */
export async function readFully(
  handle: FileHandle,
  position: number,
  length: number,
  /** Read into this buffer of exactly `length` bytes instead of a new one. */
  into?: Buffer,
): Promise<Buffer> {
  const buf = into ?? Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const n = await handle.read(buf, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/**
 * Replaces `path` with `data` atomically and durably: write a temporary file, fsync it, rename it
 * over `path`, fsync the directory. After a crash the file holds either the old or the new bytes.
 */
export async function writeFileAtomic(
  fs: FileSystem,
  path: string,
  data: Uint8Array,
): Promise<void> {
  const tmp = `${path}.tmp`;
  const handle = await fs.open(tmp, 'create');
  try {
    await handle.truncate(0);
    await handle.write(data, 0);
    await handle.sync();
  } finally {
    await handle.close();
  }
  await fs.rename(tmp, path);
  await fs.syncDir(parentDir(path));
}

/**
 * Removes `path` and everything under it (rm -r); nothing at `path` is no error. Each
 * directory's unlinks are made durable (`syncDir`) before the directory itself is removed, so a
 * crash part-way leaves a smaller tree, never names in a removed directory.
 */
export async function removeTree(fs: FileSystem, path: string): Promise<void> {
  const st = await fs.stat(path);
  if (st === null) return;
  if (!st.isDirectory) {
    await fs.unlink(path);
    return;
  }
  for (const name of await fs.readdir(path)) await removeTree(fs, joinPath(path, name));
  await fs.syncDir(path);
  await fs.rmdir(path);
}
