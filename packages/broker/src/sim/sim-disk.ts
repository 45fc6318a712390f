// The simulated disk of one broker: a `MemoryFileSystem` (unsynced writes are lost at a crash)
// seen through `SlowSyncFileSystem`, which makes every fsync (file and directory) complete only
// after a simulated delay drawn by the simulation (a slow disk is a long delay).
//
// Crash during an fsync: the inner `sync` runs only when the delay has passed, so a crash before
// that loses what the fsync was to make durable, and the waiting caller never hears back (its
// process is gone). After `crash()`, `fs()` is the restarted process's view of the same disk;
// every handle of the dead process fails, and its pending fsyncs never complete.

import {
  type CrashMode,
  type FileHandle,
  type FileSystem,
  ForwardingFileSystem,
  MemoryFileSystem,
  type OpenMode,
} from '@streambus/storage';
import type { SimLoop } from './sim-loop.js';

const NEVER = new Promise<never>(() => {});

export class SimDisk {
  private mem: MemoryFileSystem;
  private generation = 0;
  /** Fsyncs started and completed (for the summary and the tests). */
  syncsStarted = 0;
  syncsCompleted = 0;
  syncsLostInCrash = 0;
  private syncsPending = 0;

  constructor(
    private readonly loop: SimLoop,
    seed: number,
    /** Simulated milliseconds the next fsync takes (the simulation's slow-disk weather). */
    private readonly fsyncDelayMs: () => number,
  ) {
    this.mem = new MemoryFileSystem({ seed });
  }

  /** The raw in-memory disk of the current process (checkers read logs back through it). */
  get memory(): MemoryFileSystem {
    return this.mem;
  }

  /** The file system the current process uses. */
  fs(): FileSystem {
    return new SlowSyncFileSystem(this.mem, this, this.generation);
  }

  /** Power loss: unsynced writes are lost ('keep-prefix': a random prefix of them survives). */
  crash(mode: CrashMode): void {
    this.syncsLostInCrash += this.syncsPending;
    this.syncsPending = 0;
    this.generation++;
    this.mem = this.mem.crash(mode);
  }

  /** @internal Runs `sync` after the fsync delay, unless the process crashed meanwhile. */
  async delayedSync(generation: number, sync: () => Promise<void>): Promise<void> {
    this.syncsStarted++;
    this.syncsPending++;
    await this.loop.after(this.fsyncDelayMs());
    if (generation !== this.generation) return NEVER;
    this.syncsPending--;
    await sync();
    this.syncsCompleted++;
  }
}

class SlowSyncFileSystem extends ForwardingFileSystem {
  constructor(
    inner: FileSystem,
    private readonly disk: SimDisk,
    private readonly generation: number,
  ) {
    super(inner);
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const handle = await this.inner.open(path, mode);
    const disk = this.disk;
    const generation = this.generation;
    return {
      path: handle.path,
      read: (b, o, l, p) => handle.read(b, o, l, p),
      write: (d, p) => handle.write(d, p),
      writev: (c, p) => handle.writev(c, p),
      sync: () => disk.delayedSync(generation, () => handle.sync()),
      truncate: (s) => handle.truncate(s),
      size: () => handle.size(),
      close: () => handle.close(),
    };
  }

  override syncDir(dir: string): Promise<void> {
    return this.disk.delayedSync(this.generation, () => this.inner.syncDir(dir));
  }
}
