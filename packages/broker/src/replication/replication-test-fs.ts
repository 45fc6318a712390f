// Test helper (not exported from the package): a file system that "loses power" before its
// N-th operation, counting every call on the file system and on the handles it opened. Used to
// crash an atomic checkpoint write at each of its steps; the caller then takes the restarted
// process's view with `MemoryFileSystem.crash`.
import {
  type FileHandle,
  type FileStat,
  ForwardingFileSystem,
  type OpenMode,
} from '@streambus/storage';

export class PowerCutError extends Error {
  override readonly name = 'PowerCutError';
}

export class CrashAtStepFileSystem extends ForwardingFileSystem {
  steps = 0;
  crashed = false;

  constructor(
    inner: ForwardingFileSystem['inner'],
    private readonly crashAt: number,
  ) {
    super(inner);
  }

  step(): void {
    if (this.crashed || this.steps === this.crashAt) {
      this.crashed = true;
      throw new PowerCutError(`power cut before step ${this.steps}`);
    }
    this.steps++;
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.step();
    const h = await this.inner.open(path, mode);
    const guard =
      <A extends unknown[], R>(fn: (...args: A) => Promise<R>) =>
      (...args: A): Promise<R> => {
        this.step();
        return fn(...args);
      };
    return {
      path: h.path,
      read: guard((b, o, l, p) => h.read(b, o, l, p)),
      write: guard((d, p) => h.write(d, p)),
      writev: guard((c, p) => h.writev(c, p)),
      sync: guard(() => h.sync()),
      truncate: guard((size) => h.truncate(size)),
      size: guard(() => h.size()),
      // Closing after the power cut is what a `finally` does; it must not mask the cut.
      close: () => (this.crashed ? Promise.resolve() : guard(() => h.close())()),
    };
  }
  override readFile(path: string): Promise<Buffer> {
    this.step();
    return super.readFile(path);
  }
  override rename(from: string, to: string): Promise<void> {
    this.step();
    return super.rename(from, to);
  }
  override unlink(path: string): Promise<void> {
    this.step();
    return super.unlink(path);
  }
  override stat(path: string): Promise<FileStat | null> {
    this.step();
    return super.stat(path);
  }
  override truncate(path: string, size: number): Promise<void> {
    this.step();
    return super.truncate(path, size);
  }
  override syncDir(dir: string): Promise<void> {
    this.step();
    return super.syncDir(dir);
  }
}
