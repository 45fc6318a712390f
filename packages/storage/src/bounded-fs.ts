// BoundedFileSystem: a `FileSystem` that holds at most `openFilesMax` file descriptors of its inner
// file system at once, however many files are open through it. What a partition log opens is a
// handle in name only: the descriptor behind it is opened on demand and kept in one LRU shared
// by every log of a broker, so 10,000 topics or 100,000 partitions cost memory, not descriptors.
//
// Descriptors. `used` counts every descriptor this object holds: a handle's descriptor while it
// opens, is open, or closes, and one for each `readFile`, `readdir` or `syncDir` while it runs.
// The invariant `used <= openFilesMax` is asserted. When all are used, a caller waits (FIFO,
// at most `waitersMax` callers, each at most `acquireTimeoutMs`) while the least recently used
// idle descriptor is closed for it. A descriptor is idle when no call (read, write, fsync, ...)
// runs on it: a call pins it for its duration, so nothing is closed under an operation.
//
// Unsynced writes. A descriptor with writes that no fsync has covered yet is fsynced before it is
// closed for eviction, so durability never depends on fsync through a new descriptor (whose error
// reporting after a failed writeback differs between kernels). A failed eviction fsync is kept:
// every later `sync()` of that handle rejects with it, so a log that acknowledges only after
// fsync never acknowledges those bytes. `sync()` of a handle whose descriptor was evicted (and
// thus fsynced) with no write since resolves without reopening the file. Clean descriptors are
// evicted before dirty ones among the oldest few.
//
// Unlinked and renamed files. A descriptor keeps an unlinked file readable; a path cannot. So
// before a file with live handles is unlinked or replaced by a rename, those handles get their
// descriptor (reopened if needed) and keep it until closed ("sticky", never evicted). A handle of
// a renamed file follows it to its new name.
//
// EMFILE. When the operating system refuses a descriptor below the bound (other parts of the
// process hold many), one idle descriptor is closed and the call retried; with none idle the
// call waits for one until `acquireTimeoutMs`. Then, as when waiting for a slot times out or the
// queue is full, it fails with TOO_MANY_OPEN_FILES (retriable) and `onExhausted` is told (the
// broker logs it). Nothing here crashes or hangs on it.
import assert from 'node:assert/strict';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { ForwardingFileSystem } from './forwarding-fs.js';
import type { FileHandle, FileSystem, OpenMode } from './fs.js';
import { fsErrorCode, storageError } from './fs.js';

export interface BoundedFileSystemOptions {
  /** Descriptors held at once (>= 1). */
  openFilesMax: number;
  /** Callers waiting for a descriptor; more fail at once with TOO_MANY_OPEN_FILES. */
  waitersMax?: number;
  /** A caller waiting longer than this for a descriptor fails with TOO_MANY_OPEN_FILES. */
  acquireTimeoutMs?: number;
  /** Told of every TOO_MANY_OPEN_FILES failure (the broker logs them). */
  onExhausted?: (err: StreamBusError) => void;
}

export interface BoundedFileSystemStats {
  /** Descriptors held now. */
  readonly openFiles: number;
  /** Handles open through this file system (with or without a descriptor). */
  readonly handles: number;
  /** Descriptors closed to make room, since start. */
  readonly evictions: number;
  /** Descriptors (re)opened for handles, since start. */
  readonly opens: number;
  /** Calls that failed with TOO_MANY_OPEN_FILES, since start. */
  readonly exhausted: number;
  /** Callers waiting for a descriptor now. */
  readonly waiting: number;
}

/** Oldest idle descriptors looked at for a clean (fsynced) one before a dirty one is taken. */
const CLEAN_SEARCH_MAX = 8;
/** Wait before retrying an open the OS refused with EMFILE while nothing here was idle. */
const EMFILE_RETRY_MS = 20;

interface Waiter {
  readonly resolve: () => void;
  readonly reject: (e: unknown) => void;
  readonly sinceMs: number;
  what: string;
  done: boolean;
}

function isDescriptorShortage(err: unknown): boolean {
  const code = fsErrorCode(err);
  return code === 'EMFILE' || code === 'ENFILE';
}

function closedHandleError(op: string, path: string): StreamBusError {
  return storageError(
    op,
    path,
    Object.assign(new Error(`${op} on a closed file handle`), { code: 'EBADF' }),
  );
}

export class BoundedFileSystem extends ForwardingFileSystem {
  readonly openFilesMax: number;
  private readonly waitersMax: number;
  private readonly acquireTimeoutMs: number;
  private readonly onExhausted: ((err: StreamBusError) => void) | undefined;
  private used = 0;
  /** Descriptors being closed for waiters (their slot goes to a waiter when closed). */
  private evicting = 0;
  /** LRU of handles holding a descriptor that may be evicted: head = most recent. */
  private head: BoundedHandle | null = null;
  private tail: BoundedHandle | null = null;
  private readonly waiters: Waiter[] = [];
  private waitersHead = 0;
  private timer: NodeJS.Timeout | null = null;
  private readonly byPath = new Map<string, Set<BoundedHandle>>();
  private handleCount = 0;
  private evictionCount = 0;
  private openCount = 0;
  private exhaustedCount = 0;

  constructor(inner: FileSystem, options: BoundedFileSystemOptions) {
    super(inner);
    if (!Number.isInteger(options.openFilesMax) || options.openFilesMax < 1) {
      throw new StreamBusError(
        ErrorCode.INVALID_CONFIG,
        `openFilesMax must be a positive integer, got ${options.openFilesMax}`,
      );
    }
    this.openFilesMax = options.openFilesMax;
    this.waitersMax = options.waitersMax ?? 262_144;
    this.acquireTimeoutMs = options.acquireTimeoutMs ?? 30_000;
    this.onExhausted = options.onExhausted;
  }

  get stats(): BoundedFileSystemStats {
    return {
      openFiles: this.used,
      handles: this.handleCount,
      evictions: this.evictionCount,
      opens: this.openCount,
      exhausted: this.exhaustedCount,
      waiting: this.waiters.length - this.waitersHead,
    };
  }

  // ---- FileSystem ----

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const real = await this.withDescriptor(`open ${path}`, () => this.inner.open(path, mode));
    this.openCount++;
    const h = new BoundedHandle(this, path, mode === 'read' ? 'read' : 'readwrite', real);
    // A writable file opened here may hold bytes an earlier handle (or process) wrote and never
    // fsynced: its first eviction fsyncs it, and sync() never skips it.
    if (mode === 'readwrite' || mode === 'create') h.assumeUnsynced();
    this.handleCount++;
    this.track(h, path);
    this.lruPushHead(h);
    this.pump(); // an idle descriptor now, which a waiter may need
    return h;
  }

  override async readFile(path: string): Promise<Buffer> {
    const data = await this.withDescriptor(`read ${path}`, () => this.inner.readFile(path));
    this.releaseSlot();
    return data;
  }

  override async readdir(dir: string): Promise<string[]> {
    const names = await this.withDescriptor(`readdir ${dir}`, () => this.inner.readdir(dir));
    this.releaseSlot();
    return names;
  }

  override async syncDir(dir: string): Promise<void> {
    await this.withDescriptor(`fsync-dir ${dir}`, () => this.inner.syncDir(dir));
    this.releaseSlot();
  }

  override async rename(from: string, to: string): Promise<void> {
    await this.holdLive(to);
    await this.inner.rename(from, to);
    const moving = this.byPath.get(from);
    if (moving) {
      this.byPath.delete(from);
      for (const h of moving) {
        h.currentPath = to;
        this.track(h, to);
      }
    }
  }

  override async unlink(path: string): Promise<void> {
    await this.holdLive(path);
    await this.inner.unlink(path);
  }

  // mkdir, stat and truncate(path) take no descriptor: forwarded as they are.

  // ---- descriptors ----

  /**
   * Runs `fn` (which takes one descriptor of the inner file system) holding a slot, which stays
   * held when `fn` succeeds: the caller releases it (or hands it to a handle). EMFILE from the OS
   * is retried after closing an idle descriptor, until the acquire deadline.
   */
  private async withDescriptor<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const startMs = Date.now();
    await this.acquireSlot(what, startMs);
    for (;;) {
      try {
        return await fn();
      } catch (err) {
        if (!isDescriptorShortage(err)) {
          this.releaseSlot();
          throw err;
        }
        if (Date.now() - startMs >= this.acquireTimeoutMs) {
          this.releaseSlot();
          throw this.exhausted(
            `${what}: the operating system refused a file descriptor (${fsErrorCode(err)}) with ${this.used} of openFilesMax ${this.openFilesMax} held here and none idle for ${this.acquireTimeoutMs} ms`,
            err,
          );
        }
        const victim = this.pickVictim();
        if (victim) await this.evict(victim, false);
        else await new Promise<void>((r) => setTimeout(r, EMFILE_RETRY_MS).unref());
      }
    }
  }

  private acquireSlot(what: string, nowMs: number): Promise<void> {
    if (this.used < this.openFilesMax && this.waitersHead === this.waiters.length) {
      this.used++;
      return Promise.resolve();
    }
    if (this.waiters.length - this.waitersHead >= this.waitersMax) {
      return Promise.reject(
        this.exhausted(
          `${what}: ${this.waitersMax} callers already wait for one of openFilesMax ${this.openFilesMax} file descriptors (waitersMax)`,
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.waiters.push({ resolve, reject, sinceMs: nowMs, what, done: false });
      this.armTimer();
      this.pump();
    });
  }

  /** Gives a freed slot to the first waiter, or returns it. */
  releaseSlot(): void {
    while (this.waitersHead < this.waiters.length) {
      const w = this.waiters[this.waitersHead]!;
      this.waiters[this.waitersHead] = undefined as unknown as Waiter;
      this.waitersHead++;
      this.compactWaiters();
      if (w.done) continue;
      w.done = true;
      w.resolve();
      return;
    }
    this.used--;
    assert.ok(this.used >= 0, 'file descriptor count below zero');
  }

  /** Starts closing idle descriptors for waiters not yet covered by a running eviction. */
  pump(): void {
    while (this.waiters.length - this.waitersHead > this.evicting) {
      if (this.used < this.openFilesMax) {
        // A slot is free (a waiter arrived behind others): hand it on.
        this.used++;
        this.releaseSlot();
        continue;
      }
      const victim = this.pickVictim();
      if (!victim) return;
      void this.evict(victim, true);
    }
  }

  private compactWaiters(): void {
    if (this.waitersHead === this.waiters.length) {
      this.waiters.length = 0;
      this.waitersHead = 0;
    } else if (this.waitersHead > 1024 && this.waitersHead * 2 > this.waiters.length) {
      this.waiters.splice(0, this.waitersHead);
      this.waitersHead = 0;
    }
  }

  private armTimer(): void {
    if (this.timer) return;
    const period = Math.max(10, Math.min(1000, this.acquireTimeoutMs / 4));
    this.timer = setInterval(() => this.expireWaiters(), period);
    this.timer.unref();
  }

  private expireWaiters(): void {
    const now = Date.now();
    for (let i = this.waitersHead; i < this.waiters.length; i++) {
      const w = this.waiters[i]!;
      if (w.done) continue;
      if (now - w.sinceMs < this.acquireTimeoutMs) break; // FIFO: the rest are younger
      w.done = true;
      w.reject(
        this.exhausted(
          `${w.what}: no file descriptor free within ${this.acquireTimeoutMs} ms (openFilesMax ${this.openFilesMax}, all in use)`,
        ),
      );
    }
    while (this.waitersHead < this.waiters.length && this.waiters[this.waitersHead]!.done) {
      this.waitersHead++;
    }
    this.compactWaiters();
    if (this.waitersHead === this.waiters.length && this.timer) {
      clearInterval(this.timer);
      this.timer = null;
    }
  }

  private exhausted(message: string, cause?: unknown): StreamBusError {
    this.exhaustedCount++;
    const err = new StreamBusError(ErrorCode.TOO_MANY_OPEN_FILES, message, { cause });
    try {
      this.onExhausted?.(err);
    } catch {
      // A failing observer must not turn a typed error into another one.
    }
    return err;
  }

  /** The least recently used idle descriptor, preferring a clean one among the oldest few. */
  private pickVictim(): BoundedHandle | null {
    let first: BoundedHandle | null = null;
    let looked = 0;
    for (let h = this.tail; h !== null && looked < CLEAN_SEARCH_MAX; h = h.prev) {
      if (h.pins > 0) continue;
      looked++;
      if (!h.hasUnsynced()) return h;
      first ??= h;
    }
    return first;
  }

  /**
   * Closes a handle's descriptor (fsyncing unsynced writes first). `forWaiter`: the slot goes to
   * a waiter (counted in `evicting`); otherwise it is simply returned.
   */
  private async evict(h: BoundedHandle, forWaiter: boolean): Promise<void> {
    this.lruRemove(h);
    if (forWaiter) this.evicting++;
    this.evictionCount++;
    try {
      await h.dropDescriptor();
    } finally {
      if (forWaiter) this.evicting--;
      this.releaseSlot();
    }
  }

  /** Gives the handles of `path` their descriptor for good: the name is about to go. */
  private async holdLive(path: string): Promise<void> {
    const live = this.byPath.get(path);
    if (!live) return;
    for (const h of [...live]) await h.stick();
    this.byPath.delete(path);
  }

  private track(h: BoundedHandle, path: string): void {
    let set = this.byPath.get(path);
    if (!set) {
      set = new Set();
      this.byPath.set(path, set);
    }
    set.add(h);
  }

  /** A handle was closed by its owner. */
  untrack(h: BoundedHandle): void {
    this.handleCount--;
    const set = this.byPath.get(h.currentPath);
    if (set?.delete(h) && set.size === 0) this.byPath.delete(h.currentPath);
  }

  /** Opens a descriptor for `h` (a slot is taken; it moves to `h`). */
  async openFor(h: BoundedHandle): Promise<FileHandle> {
    const path = h.currentPath;
    const real = await this.withDescriptor(`open ${path}`, () =>
      this.inner.open(path, h.reopenMode),
    );
    this.openCount++;
    return real;
  }

  // ---- LRU (intrusive doubly linked list) ----

  lruPushHead(h: BoundedHandle): void {
    if (h.inLru) return;
    h.inLru = true;
    h.prev = null;
    h.next = this.head;
    if (this.head) this.head.prev = h;
    this.head = h;
    if (!this.tail) this.tail = h;
  }

  lruRemove(h: BoundedHandle): void {
    if (!h.inLru) return;
    h.inLru = false;
    if (h.prev) h.prev.next = h.next;
    else this.head = h.next;
    if (h.next) h.next.prev = h.prev;
    else this.tail = h.prev;
    h.prev = null;
    h.next = null;
  }

  touch(h: BoundedHandle): void {
    if (this.head === h || !h.inLru) return;
    this.lruRemove(h);
    this.lruPushHead(h);
  }
}

/** A file handle whose descriptor comes and goes (see the top of this file). */
class BoundedHandle implements FileHandle {
  prev: BoundedHandle | null = null;
  next: BoundedHandle | null = null;
  inLru = false;
  /** Calls running on the descriptor. */
  pins = 0;
  /** Keeps its descriptor until closed (its file was unlinked or replaced). */
  private sticky = false;
  private closed = false;
  private closeDone: Promise<void> | null = null;
  private resolveClose: (() => void) | null = null;
  private opening: Promise<FileHandle> | null = null;
  private dropping: Promise<void> | null = null;
  /** Writes completed / writes covered by an fsync (ordinal numbers). */
  private writes = 0;
  private syncedWrites = 0;
  /** An eviction fsync failed: every later sync() fails with it. */
  private syncError: unknown = null;

  constructor(
    private readonly owner: BoundedFileSystem,
    public currentPath: string,
    readonly reopenMode: OpenMode,
    private real: FileHandle | null,
  ) {}

  get path(): string {
    return this.currentPath;
  }

  assumeUnsynced(): void {
    this.writes++;
  }

  hasUnsynced(): boolean {
    return this.writes !== this.syncedWrites;
  }

  /** The descriptor, pinned; opened (waiting for a slot) when evicted. */
  private acquire(op: string): FileHandle | Promise<FileHandle> {
    const real = this.real;
    if (real !== null && this.dropping === null && !this.closed) {
      this.pins++;
      this.owner.touch(this);
      return real;
    }
    return this.acquireSlow(op);
  }

  private async acquireSlow(op: string): Promise<FileHandle> {
    for (;;) {
      if (this.closed) throw closedHandleError(op, this.currentPath);
      if (this.dropping) {
        await this.dropping;
        continue;
      }
      if (this.opening) {
        await this.opening; // its failure is this call's failure too
        continue;
      }
      if (this.real !== null) {
        this.pins++;
        this.owner.touch(this);
        return this.real;
      }
      const opening = this.owner.openFor(this);
      this.opening = opening;
      let real: FileHandle;
      try {
        real = await opening;
      } finally {
        this.opening = null;
      }
      if (this.closed) {
        // Closed while it opened: give the descriptor straight back.
        await real.close().catch(() => undefined);
        this.owner.releaseSlot();
        throw closedHandleError(op, this.currentPath);
      }
      this.real = real;
      this.pins++;
      if (!this.sticky) this.owner.lruPushHead(this);
      return real;
    }
  }

  private release(): void {
    this.pins--;
    assert.ok(this.pins >= 0, 'file handle unpinned more often than pinned');
    if (this.pins > 0) return;
    if (this.closed) {
      void this.finishClose();
      return;
    }
    this.owner.pump();
  }

  private async run<T>(op: string, fn: (h: FileHandle) => Promise<T>): Promise<T> {
    const got = this.acquire(op);
    const h = got instanceof Promise ? await got : got;
    try {
      return await fn(h);
    } finally {
      this.release();
    }
  }

  read(buffer: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.run('read', (h) => h.read(buffer, offset, length, position));
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    await this.run('write', (h) => h.write(data, position));
    this.writes++;
  }

  async writev(chunks: readonly Uint8Array[], position: number): Promise<void> {
    await this.run('writev', (h) => h.writev(chunks, position));
    this.writes++;
  }

  /**
   * Inline only while the descriptor is open and not being evicted (no reopen can be awaited
   * here); false otherwise, and the caller takes `writev`. Counted as a write before the pin is
   * released, so an eviction right after fsyncs it.
   */
  writevNow(chunks: readonly Uint8Array[], position: number): boolean {
    const real = this.real;
    if (real === null || this.dropping !== null || this.closed || real.writevNow === undefined) {
      return false;
    }
    this.pins++;
    this.owner.touch(this);
    try {
      if (!real.writevNow(chunks, position)) return false;
      this.writes++;
      return true;
    } finally {
      this.release();
    }
  }

  async truncate(size: number): Promise<void> {
    await this.run('truncate', (h) => h.truncate(size));
    this.writes++;
  }

  size(): Promise<number> {
    return this.run('stat', (h) => h.size());
  }

  async sync(): Promise<void> {
    // An eviction under way fsyncs first; its outcome is this call's (it never rejects).
    if (this.dropping) await this.dropping;
    if (this.syncError !== null) throw this.stickySyncError();
    if (this.closed) throw closedHandleError('fsync', this.currentPath);
    const covers = this.writes;
    // Evicted since its last write: the eviction fsynced it.
    if (this.real === null && this.dropping === null && covers === this.syncedWrites) return;
    await this.run('fsync', (h) => h.sync());
    // An eviction that ran while this call waited for a descriptor may have failed its fsync:
    // a later fsync through a new descriptor does not prove those bytes durable.
    if (this.syncError !== null) throw this.stickySyncError();
    if (covers > this.syncedWrites) this.syncedWrites = covers;
  }

  private stickySyncError(): StreamBusError {
    return storageError('fsync', this.currentPath, this.syncError);
  }

  /** Eviction: fsync unsynced writes, then close the descriptor. The caller frees the slot. */
  dropDescriptor(): Promise<void> {
    assert.ok(
      this.pins === 0 && this.real !== null && this.dropping === null,
      'evicting a busy handle',
    );
    const real = this.real;
    this.dropping = (async () => {
      try {
        const covers = this.writes;
        if (covers !== this.syncedWrites) {
          try {
            await real.sync();
            if (covers > this.syncedWrites) this.syncedWrites = covers;
          } catch (err) {
            this.syncError ??= err;
          }
        }
        await real.close().catch(() => undefined);
      } finally {
        this.real = null;
        this.dropping = null;
      }
    })();
    return this.dropping;
  }

  /** Takes a descriptor for good (the file's name is going away). */
  async stick(): Promise<void> {
    if (this.closed || this.sticky) return;
    await this.acquireSlow('open');
    this.sticky = true;
    this.owner.lruRemove(this);
    this.release();
  }

  close(): Promise<void> {
    if (this.closeDone) return this.closeDone;
    this.closed = true;
    this.owner.untrack(this);
    this.closeDone = new Promise<void>((resolve) => {
      this.resolveClose = resolve;
    });
    if (this.pins === 0) void this.finishClose();
    return this.closeDone;
  }

  /** After close() once no call runs: gives the descriptor (if any) back. */
  private async finishClose(): Promise<void> {
    const done = this.resolveClose;
    if (done === null) return;
    this.resolveClose = null;
    try {
      while (this.dropping || this.opening) {
        await (this.dropping ?? this.opening)?.catch(() => undefined);
      }
      const real = this.real;
      if (real !== null) {
        this.real = null;
        this.owner.lruRemove(this);
        await real.close().catch(() => undefined);
        this.owner.releaseSlot();
      }
    } finally {
      done();
    }
  }
}
