// A `FileSystem` wrapper that fails on demand, for tests of the paths a real disk takes when it
// fills up or breaks: ENOSPC, EDQUOT, EIO, EROFS, a failed fsync, a short write (part of the
// bytes land, then the error), a failed truncate. It wraps any FileSystem (MemoryFileSystem or
// NodeFileSystem) and consults `inject(op, path)` before every call; a returned fault makes the
// call fail with an OS-style error (`code` set), wrapped as the seam's KAFKA_STORAGE_ERROR, just as
// NodeFileSystem reports it. For `write`/`writev`, `partialBytes` first writes that many bytes
// (the torn prefix a full disk leaves) and then fails.
//
// It does not model free space itself: a test decides when the disk is "full" (a flag, a counter)
// inside `inject`.
import type { FileHandle, FileStat, FileSystem, OpenMode } from './fs.js';
import { storageError } from './fs.js';

/** The operations a fault can target (handle calls and file-system calls). */
export type FaultOp =
  | 'open'
  | 'read'
  | 'write'
  | 'sync'
  | 'truncate'
  | 'size'
  | 'close'
  | 'readFile'
  | 'rename'
  | 'unlink'
  | 'readdir'
  | 'mkdir'
  | 'rmdir'
  | 'stat'
  | 'syncDir';

export interface Fault {
  /** The OS error code: 'ENOSPC', 'EDQUOT', 'EIO', 'EROFS', ... */
  readonly code: string;
  /** write/writev: bytes written before the failure (a torn write). Default 0. */
  readonly partialBytes?: number;
}

export type FaultInjector = (op: FaultOp, path: string) => Fault | null;

const MESSAGES: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EIO: 'input/output error',
  EROFS: 'read-only file system',
};

function osError(fault: Fault, op: string, path: string): Error {
  const text = MESSAGES[fault.code] ?? 'injected failure';
  return Object.assign(new Error(`${fault.code}: ${text}, ${op} '${path}'`), { code: fault.code });
}

export class FaultyFileSystem implements FileSystem {
  /** Consulted before every call; null injects nothing. */
  inject: FaultInjector | null = null;
  /** Faults injected so far, by op (tests assert the fault was actually hit). */
  readonly injected = new Map<FaultOp, number>();

  constructor(readonly inner: FileSystem) {}

  /** Throws the injected fault for (op, path), if any; returns it for partial writes. */
  check(op: FaultOp, path: string, label: string = op): Fault | null {
    const fault = this.inject?.(op, path) ?? null;
    if (fault === null) return null;
    this.injected.set(op, (this.injected.get(op) ?? 0) + 1);
    if (op === 'write' && (fault.partialBytes ?? 0) > 0) return fault;
    throw storageError(label, path, osError(fault, label, path));
  }

  fail(fault: Fault, label: string, path: string): never {
    throw storageError(label, path, osError(fault, label, path));
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.check('open', path);
    return new FaultyFileHandle(this, await this.inner.open(path, mode));
  }
  async readFile(path: string): Promise<Buffer> {
    this.check('readFile', path, 'read');
    return this.inner.readFile(path);
  }
  async rename(from: string, to: string): Promise<void> {
    this.check('rename', to);
    return this.inner.rename(from, to);
  }
  async unlink(path: string): Promise<void> {
    this.check('unlink', path);
    return this.inner.unlink(path);
  }
  async readdir(dir: string): Promise<string[]> {
    this.check('readdir', dir);
    return this.inner.readdir(dir);
  }
  async mkdir(dir: string): Promise<void> {
    this.check('mkdir', dir);
    return this.inner.mkdir(dir);
  }
  async rmdir(dir: string): Promise<void> {
    this.check('rmdir', dir);
    return this.inner.rmdir(dir);
  }
  async stat(path: string): Promise<FileStat | null> {
    this.check('stat', path);
    return this.inner.stat(path);
  }
  async truncate(path: string, size: number): Promise<void> {
    this.check('truncate', path);
    return this.inner.truncate(path, size);
  }
  async syncDir(dir: string): Promise<void> {
    this.check('syncDir', dir, 'fsync-dir');
    return this.inner.syncDir(dir);
  }
}

class FaultyFileHandle implements FileHandle {
  constructor(
    private readonly fs: FaultyFileSystem,
    private readonly inner: FileHandle,
  ) {}

  get path(): string {
    return this.inner.path;
  }
  async read(buffer: Uint8Array, offset: number, length: number, position: number) {
    this.fs.check('read', this.path);
    return this.inner.read(buffer, offset, length, position);
  }
  async write(data: Uint8Array, position: number): Promise<void> {
    const fault = this.fs.check('write', this.path);
    if (fault !== null) {
      const n = Math.min(fault.partialBytes ?? 0, data.length);
      await this.inner.write(data.subarray(0, n), position);
      this.fs.fail(fault, 'write', this.path);
    }
    return this.inner.write(data, position);
  }
  async writev(chunks: readonly Uint8Array[], position: number): Promise<void> {
    const fault = this.fs.check('write', this.path, 'writev');
    if (fault !== null) {
      const all = Buffer.concat(chunks as Uint8Array[]);
      const n = Math.min(fault.partialBytes ?? 0, all.length);
      await this.inner.write(all.subarray(0, n), position);
      this.fs.fail(fault, 'writev', this.path);
    }
    return this.inner.writev(chunks, position);
  }
  /** Inline when the inner handle can write inline; the same faults as `writev`. */
  writevNow(chunks: readonly Uint8Array[], position: number): boolean {
    if (this.inner.writevNow === undefined) return false;
    const fault = this.fs.check('write', this.path, 'writev');
    if (fault !== null) {
      const all = Buffer.concat(chunks as Uint8Array[]);
      const n = Math.min(fault.partialBytes ?? 0, all.length);
      this.inner.writevNow([all.subarray(0, n)], position);
      this.fs.fail(fault, 'writev', this.path);
    }
    return this.inner.writevNow(chunks, position);
  }
  async sync(): Promise<void> {
    this.fs.check('sync', this.path, 'fsync');
    return this.inner.sync();
  }
  async truncate(size: number): Promise<void> {
    this.fs.check('truncate', this.path);
    return this.inner.truncate(size);
  }
  async size(): Promise<number> {
    this.fs.check('size', this.path, 'stat');
    return this.inner.size();
  }
  async close(): Promise<void> {
    this.fs.check('close', this.path);
    return this.inner.close();
  }
}
