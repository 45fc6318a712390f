// ForwardingFileSystem: a `FileSystem` that passes every call to `inner`. A base for wrappers
// that change a few calls (BoundedFileSystem, the broker's fsync timer, test probes) so each
// states only what it changes.
import type { FileHandle, FileStat, FileSystem, OpenMode } from './fs.js';

export class ForwardingFileSystem implements FileSystem {
  constructor(readonly inner: FileSystem) {}

  open(path: string, mode: OpenMode): Promise<FileHandle> {
    return this.inner.open(path, mode);
  }
  readFile(path: string): Promise<Buffer> {
    return this.inner.readFile(path);
  }
  rename(from: string, to: string): Promise<void> {
    return this.inner.rename(from, to);
  }
  unlink(path: string): Promise<void> {
    return this.inner.unlink(path);
  }
  readdir(dir: string): Promise<string[]> {
    return this.inner.readdir(dir);
  }
  mkdir(dir: string): Promise<void> {
    return this.inner.mkdir(dir);
  }
  rmdir(dir: string): Promise<void> {
    return this.inner.rmdir(dir);
  }
  stat(path: string): Promise<FileStat | null> {
    return this.inner.stat(path);
  }
  truncate(path: string, size: number): Promise<void> {
    return this.inner.truncate(path, size);
  }
  syncDir(dir: string): Promise<void> {
    return this.inner.syncDir(dir);
  }
}
