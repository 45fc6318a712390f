// SlowSyncFileSystem: a `FileSystem` whose fsyncs take `syncDelayMs` (a slow or stalled disk),
// and which measures, independently of the code above it, how many bytes were written to the
// files it watches and not yet covered by a completed fsync of the same file. Tests use it to
// check that a writer bounds its unsynced bytes (PartitionLog's unsyncedBytesMax) and that
// back-pressure reaches producers while the disk is slow.
//
// Bytes count as unsynced from the moment a write or writev starts (the OS may hold them from
// then on) until an fsync of that file that started after the write ended. Bytes cut off by a
// truncate or an unlink stay counted (an over-count) until the file's next fsync, or forever.
// It does not model lost writes (wrap a MemoryFileSystem for crashes) or failing calls
// (FaultyFileSystem).
import { ForwardingFileSystem } from './forwarding-fs.js';
import type { FileHandle, FileSystem, OpenMode } from './fs.js';

export interface SlowSyncOptions {
  /** Every handle fsync waits this long before running (default 0). */
  syncDelayMs?: number;
  /** Which files are measured (default: segment files, `*.log`). */
  watch?: (path: string) => boolean;
}

export class SlowSyncFileSystem extends ForwardingFileSystem {
  /** Every handle fsync waits this long; may be changed at any time (0 = full speed). */
  syncDelayMs: number;
  /** Unsynced bytes of the watched files right now, and the most ever seen. */
  unsyncedBytes = 0;
  unsyncedBytesPeak = 0;
  /** Handle fsyncs completed. */
  syncs = 0;
  private readonly watch: (path: string) => boolean;
  /** Per watched file: bytes whose write started, whose write ended, and covered by an fsync. */
  private readonly files = new Map<string, { started: number; ended: number; synced: number }>();

  constructor(inner: FileSystem, options: SlowSyncOptions = {}) {
    super(inner);
    this.syncDelayMs = options.syncDelayMs ?? 0;
    this.watch = options.watch ?? ((path) => path.endsWith('.log'));
  }

  private file(path: string): { started: number; ended: number; synced: number } | null {
    if (!this.watch(path)) return null;
    let f = this.files.get(path);
    if (f === undefined) {
      f = { started: 0, ended: 0, synced: 0 };
      this.files.set(path, f);
    }
    return f;
  }

  private async written(path: string, bytes: number, write: () => Promise<void>): Promise<void> {
    const f = this.file(path);
    if (f !== null) {
      f.started += bytes;
      this.unsyncedBytes += bytes;
      this.unsyncedBytesPeak = Math.max(this.unsyncedBytesPeak, this.unsyncedBytes);
    }
    try {
      await write();
    } finally {
      if (f !== null) f.ended += bytes;
    }
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const inner = await this.inner.open(path, mode);
    const fs = this;
    return {
      path: inner.path,
      read: (buffer, offset, length, position) => inner.read(buffer, offset, length, position),
      write: (data, position) => fs.written(path, data.length, () => inner.write(data, position)),
      writev(chunks, position) {
        let n = 0;
        for (const c of chunks) n += c.length;
        return fs.written(path, n, () => inner.writev(chunks, position));
      },
      async sync() {
        // Only writes that ended before the fsync started are covered by it.
        const f = fs.file(path);
        const target = f?.ended ?? 0;
        if (fs.syncDelayMs > 0) await new Promise((r) => setTimeout(r, fs.syncDelayMs));
        await inner.sync();
        fs.syncs++;
        if (f !== null && target > f.synced) {
          fs.unsyncedBytes -= target - f.synced;
          f.synced = target;
        }
      },
      truncate: (size) => inner.truncate(size),
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }
}
