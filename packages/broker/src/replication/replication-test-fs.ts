// Test helper (not exported from the package): a file system that "loses power" before its
// N-th operation, counting every call on the file system and on the handles it opened. Used to
// crash an atomic checkpoint write at each of its steps; the caller then takes the restarted
// process's view with `MemoryFileSystem.crash`.
import {
  type FileHandle,
  type FileStat,
  ForwardingFileSystem,
  type MemoryFileSystem,
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

/** A gate on some file-handle calls: they wait while `held`; `logSyncs` counts segment fsyncs. */
export interface HandleGate {
  held: boolean;
  open(): void;
  /** fsyncs of segment (`.log`) files started (the group commit test counts them). */
  logSyncs: number;
}

/**
 * `fs` whose handle calls named in `methods` wait while `gate.held`, on the files `gated`
 * selects (default: every file); everything else passes through.
 */
export function gatedHandles(
  fs: MemoryFileSystem,
  methods: ReadonlyArray<'sync' | 'write' | 'writev'>,
  gated: (path: string) => boolean = () => true,
): { fs: MemoryFileSystem; gate: HandleGate } {
  const waiting: Array<() => void> = [];
  const gate: HandleGate = {
    held: false,
    logSyncs: 0,
    open() {
      gate.held = false;
      for (const w of waiting.splice(0)) w();
    },
  };
  const names: ReadonlySet<string | symbol> = new Set(methods);
  const wrapHandle = (h: FileHandle, path: string): FileHandle =>
    new Proxy(h, {
      get(target, key) {
        const v = Reflect.get(target, key);
        if (names.has(key) && gated(path)) {
          return async (...args: unknown[]) => {
            if (key === 'sync' && path.endsWith('.log')) gate.logSyncs++;
            if (gate.held) await new Promise<void>((r) => waiting.push(r));
            return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
          };
        }
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
  const wrapped = new Proxy(fs, {
    get(target, key) {
      if (key === 'open') {
        return async (path: string, mode: OpenMode) =>
          wrapHandle(await target.open(path, mode), path);
      }
      const v = Reflect.get(target, key);
      return typeof v === 'function' ? v.bind(target) : v;
    },
  });
  return { fs: wrapped, gate };
}
