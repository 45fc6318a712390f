// An in-memory `FileSystem` for tests that simulates what a crash does to a real disk, in the
// spirit of Pebble's strict in-memory FS (`vfs/mem_fs.go`, `NewStrictMem`).
//
// Model. Each file (inode) has its current bytes and its durable bytes (as of its last `sync`),
// plus the ordered list of writes/truncations since then. The directory tree has its current
// names and its durable names; creating, renaming or unlinking a name is queued until
// `syncDir(parent)` makes it durable. `crash(mode)` then rebuilds the durable state:
//   - 'drop-unsynced': every unsynced write and name change is lost;
//   - 'keep-prefix': for each file a random prefix of its unsynced writes survives (the last one
//     possibly torn at a random byte), and a random prefix of the unsynced name changes survives.
// `crash` returns a new `MemoryFileSystem` over the same disk for the restarted process; the old
// one and every handle opened through it fail from then on (the old process is gone, so its
// late async work cannot touch the disk). Randomness comes from a
// seeded generator, so a failing test replays from its seed. Corruption helpers (`flipBit`,
// `truncateDurably`) change both the current and the durable bytes, as a bad disk would.
// Not modelled: disk full, I/O errors, per-sector atomicity, directory durability of `mkdir` and
// `rmdir` (an `rmdir` with unsynced name changes inside fails ENOTEMPTY instead).
import assert from 'node:assert/strict';
import type { FileHandle, FileStat, FileSystem, OpenMode } from './fs.js';
import { parentDir, storageError } from './fs.js';

export type CrashMode = 'drop-unsynced' | 'keep-prefix';

/** mulberry32: a small, fast, seeded PRNG (tests only). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type FileOp =
  | { kind: 'write'; position: number; data: Buffer }
  | { kind: 'truncate'; size: number };

class Inode {
  data: Buffer = Buffer.alloc(0);
  length = 0;
  durable: Buffer = Buffer.alloc(0);
  pending: FileOp[] = [];

  bytes(): Buffer {
    return this.data.subarray(0, this.length);
  }

  apply(op: FileOp): void {
    if (op.kind === 'truncate') {
      if (op.size > this.length) this.ensure(op.size);
      if (op.size < this.length) this.data.fill(0, op.size, this.length);
      this.length = op.size;
      return;
    }
    const end = op.position + op.data.length;
    this.ensure(end);
    op.data.copy(this.data, op.position);
    if (end > this.length) this.length = end;
  }

  private ensure(size: number): void {
    if (size <= this.data.length) return;
    const next = Buffer.alloc(Math.max(size, this.data.length * 2, 256));
    this.data.copy(next, 0, 0, this.length);
    this.data = next;
  }

  sync(): void {
    this.durable = Buffer.from(this.bytes());
    this.pending = [];
  }

  /** Resets to the durable bytes plus, optionally, a prefix of the pending ops. */
  crash(keepOps: number, tornBytes: number | null): void {
    const ops = this.pending.slice(0, keepOps);
    this.data = Buffer.from(this.durable);
    this.length = this.durable.length;
    ops.forEach((op, i) => {
      if (i === ops.length - 1 && tornBytes !== null && op.kind === 'write') {
        this.apply({ kind: 'write', position: op.position, data: op.data.subarray(0, tornBytes) });
      } else {
        this.apply(op);
      }
    });
    this.durable = Buffer.from(this.bytes());
    this.pending = [];
  }
}

type NameOp = { kind: 'link'; path: string; inode: Inode } | { kind: 'unlink'; path: string };

function enoent(op: string, path: string): Error {
  return storageError(op, path, Object.assign(new Error('no such file'), { code: 'ENOENT' }));
}

class MemoryFileHandle implements FileHandle {
  private closed = false;
  constructor(
    readonly path: string,
    private readonly fs: MemoryFileSystem,
    private readonly inode: Inode,
    private readonly writable: boolean,
  ) {}

  private check(op: string, write: boolean): void {
    if (this.closed) throw storageError(op, this.path, new Error('file handle is closed'));
    this.fs.checkAlive(op, this.path);
    if (write && !this.writable) throw storageError(op, this.path, new Error('opened read-only'));
  }

  async read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    await this.fs.tick();
    this.check('read', false);
    const len = this.inode.length;
    if (position >= len) return 0;
    const n = Math.min(length, len - position);
    buffer.set(this.inode.data.subarray(position, position + n), offset);
    return n;
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    await this.fs.tick();
    this.check('write', true);
    const op: FileOp = { kind: 'write', position, data: Buffer.from(data) };
    this.inode.apply(op);
    this.inode.pending.push(op);
  }

  async writev(chunks: readonly Uint8Array[], position: number): Promise<void> {
    await this.write(Buffer.concat(chunks as Uint8Array[]), position);
  }

  /** Only with `inlineWrites` (else false: the caller takes `writev`); unsynced like `write`. */
  writevNow(chunks: readonly Uint8Array[], position: number): boolean {
    if (!this.fs.inlineWrites) return false;
    this.check('write', true);
    const op: FileOp = { kind: 'write', position, data: Buffer.concat(chunks as Uint8Array[]) };
    this.inode.apply(op);
    this.inode.pending.push(op);
    return true;
  }

  async sync(): Promise<void> {
    await this.fs.tick();
    this.check('fsync', false);
    this.inode.sync();
    this.fs.disk.syncCount++;
  }

  async truncate(size: number): Promise<void> {
    await this.fs.tick();
    this.check('truncate', true);
    const op: FileOp = { kind: 'truncate', size };
    this.inode.apply(op);
    this.inode.pending.push(op);
  }

  async size(): Promise<number> {
    await this.fs.tick();
    this.check('stat', false);
    return this.inode.length;
  }

  async close(): Promise<void> {
    this.closed = true;
  }
}

export interface MemoryFileSystemOptions {
  /** Seed of every random choice (crash prefixes, torn bytes). */
  readonly seed?: number;
  /**
   * Handles write inline (`FileHandle.writevNow`, as NodeFileSystem's do) instead of refusing
   * it; kept by `crash()`'s restarted file system. Default false: every write yields once.
   */
  readonly inlineWrites?: boolean;
}

/** The simulated disk: what survives a crash. Shared by the successive `MemoryFileSystem`s. */
class MemoryDisk {
  syncCount = 0;
  files = new Map<string, Inode>();
  durableFiles = new Map<string, Inode>();
  pendingNames: NameOp[] = [];
  readonly dirs = new Set<string>(['/', '.']);
  constructor(readonly random: () => number) {}
}

export class MemoryFileSystem implements FileSystem {
  readonly disk: MemoryDisk;
  private dead = false;

  readonly inlineWrites: boolean;

  constructor(options: MemoryFileSystemOptions = {}, disk?: MemoryDisk) {
    this.disk = disk ?? new MemoryDisk(seededRandom(options.seed ?? 1));
    this.inlineWrites = options.inlineWrites === true;
  }

  /** How many file fsyncs ran on this disk (tests check group commit with it). */
  get syncCount(): number {
    return this.disk.syncCount;
  }

  get random(): () => number {
    return this.disk.random;
  }

  private get files(): Map<string, Inode> {
    return this.disk.files;
  }
  private get dirs(): Set<string> {
    return this.disk.dirs;
  }

  checkAlive(op: string, path: string): void {
    if (this.dead)
      throw storageError(op, path, new Error('the process using this file system crashed'));
  }

  /** Every async method yields once, so interleavings resemble a real asynchronous disk. */
  async tick(): Promise<void> {
    await Promise.resolve();
  }

  private normalize(path: string): string {
    return path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
  }

  private requireDir(op: string, path: string): void {
    if (!this.dirs.has(parentDir(path))) throw enoent(op, path);
  }

  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    await this.tick();
    this.checkAlive('fs', '');
    const p = this.normalize(path);
    let inode = this.files.get(p);
    if (inode && mode === 'create-new') {
      throw storageError('open', p, Object.assign(new Error('file exists'), { code: 'EEXIST' }));
    }
    if (!inode) {
      if (mode === 'read' || mode === 'readwrite') throw enoent('open', p);
      this.requireDir('open', p);
      inode = new Inode();
      this.files.set(p, inode);
      this.disk.pendingNames.push({ kind: 'link', path: p, inode });
    }
    return new MemoryFileHandle(p, this, inode, mode !== 'read');
  }

  async readFile(path: string): Promise<Buffer> {
    await this.tick();
    this.checkAlive('fs', '');
    const inode = this.files.get(this.normalize(path));
    if (!inode) throw enoent('read', path);
    return Buffer.from(inode.bytes());
  }

  async rename(from: string, to: string): Promise<void> {
    await this.tick();
    this.checkAlive('fs', '');
    const f = this.normalize(from);
    const t = this.normalize(to);
    const inode = this.files.get(f);
    if (!inode) throw enoent('rename', f);
    this.requireDir('rename', t);
    this.files.delete(f);
    this.files.set(t, inode);
    this.disk.pendingNames.push({ kind: 'unlink', path: f }, { kind: 'link', path: t, inode });
  }

  async unlink(path: string): Promise<void> {
    await this.tick();
    this.checkAlive('fs', '');
    const p = this.normalize(path);
    if (!this.files.delete(p)) throw enoent('unlink', p);
    this.disk.pendingNames.push({ kind: 'unlink', path: p });
  }

  async readdir(dir: string): Promise<string[]> {
    await this.tick();
    this.checkAlive('fs', '');
    const d = this.normalize(dir);
    if (!this.dirs.has(d)) throw enoent('readdir', d);
    const names: string[] = [];
    for (const p of [...this.files.keys(), ...this.dirs]) {
      if (p !== d && parentDir(p) === d) names.push(p.slice(d === '/' ? 1 : d.length + 1));
    }
    return names.sort();
  }

  async mkdir(dir: string): Promise<void> {
    await this.tick();
    this.checkAlive('fs', '');
    let d = this.normalize(dir);
    while (!this.dirs.has(d)) {
      if (this.files.has(d)) {
        throw storageError('mkdir', d, Object.assign(new Error('not a dir'), { code: 'ENOTDIR' }));
      }
      this.dirs.add(d);
      d = parentDir(d);
    }
  }

  async rmdir(dir: string): Promise<void> {
    await this.tick();
    this.checkAlive('fs', '');
    const d = this.normalize(dir);
    if (!this.dirs.has(d)) throw enoent('rmdir', d);
    const inside = (p: string) => p !== d && parentDir(p) === d;
    const pendingInside = this.disk.pendingNames.some((op) => inside(op.path));
    if ([...this.files.keys(), ...this.dirs].some(inside) || pendingInside) {
      // A name change inside still pending (not synced) would outlive the directory at a crash.
      const why = pendingInside ? 'directory has unsynced name changes' : 'directory not empty';
      throw storageError('rmdir', d, Object.assign(new Error(why), { code: 'ENOTEMPTY' }));
    }
    this.dirs.delete(d);
  }

  async stat(path: string): Promise<FileStat | null> {
    await this.tick();
    this.checkAlive('fs', '');
    const p = this.normalize(path);
    if (this.dirs.has(p)) return { size: 0, isDirectory: true };
    const inode = this.files.get(p);
    return inode ? { size: inode.length, isDirectory: false } : null;
  }

  async truncate(path: string, size: number): Promise<void> {
    await this.tick();
    this.checkAlive('fs', '');
    const inode = this.files.get(this.normalize(path));
    if (!inode) throw enoent('truncate', path);
    const op: FileOp = { kind: 'truncate', size };
    inode.apply(op);
    inode.pending.push(op);
  }

  async syncDir(dir: string): Promise<void> {
    await this.tick();
    this.checkAlive('fs', '');
    const d = this.normalize(dir);
    if (!this.dirs.has(d)) throw enoent('fsync-dir', d);
    const rest: NameOp[] = [];
    for (const op of this.disk.pendingNames) {
      if (parentDir(op.path) === d) this.applyName(op);
      else rest.push(op);
    }
    this.disk.pendingNames = rest;
  }

  private applyName(op: NameOp): void {
    if (op.kind === 'link') this.disk.durableFiles.set(op.path, op.inode);
    else this.disk.durableFiles.delete(op.path);
  }

  /**
   * Simulates power loss: only durable state survives ('drop-unsynced'), or durable state plus a
   * random prefix of what was pending ('keep-prefix'). This file system and every handle opened
   * through it die; the returned one is the restarted process's view of the same disk.
   */
  crash(mode: CrashMode = 'drop-unsynced'): MemoryFileSystem {
    this.dead = true;
    const disk = this.disk;
    const keepNames =
      mode === 'keep-prefix' ? Math.floor(this.random() * (disk.pendingNames.length + 1)) : 0;
    for (const op of disk.pendingNames.slice(0, keepNames)) this.applyName(op);
    disk.pendingNames = [];
    const inodes = new Set([...disk.files.values(), ...disk.durableFiles.values()]);
    for (const inode of inodes) {
      if (mode === 'drop-unsynced' || inode.pending.length === 0) {
        inode.crash(0, null);
        continue;
      }
      const keep = Math.floor(this.random() * (inode.pending.length + 1));
      const last = inode.pending[keep - 1];
      const torn =
        last?.kind === 'write' && this.random() < 0.5
          ? Math.floor(this.random() * (last.data.length + 1))
          : null;
      inode.crash(keep, torn);
    }
    disk.files = new Map(disk.durableFiles);
    return new MemoryFileSystem({ inlineWrites: this.inlineWrites }, disk);
  }

  // ---- Test helpers: inspection and corruption (they change durable state directly). ----

  /** Every file path, sorted. */
  listFiles(): string[] {
    return [...this.files.keys()].sort();
  }

  fileSize(path: string): number {
    const inode = this.files.get(this.normalize(path));
    assert.ok(inode, `no file ${path}`);
    return inode.length;
  }

  /** Flips one bit, durably (a bad sector). */
  flipBit(path: string, byteOffset: number, bit = 0): void {
    const inode = this.files.get(this.normalize(path));
    assert.ok(inode, `no file ${path}`);
    assert.ok(byteOffset >= 0 && byteOffset < inode.length, 'flipBit offset outside the file');
    inode.data[byteOffset]! ^= 1 << bit;
    if (byteOffset < inode.durable.length) inode.durable[byteOffset]! ^= 1 << bit;
  }

  /** Cuts the file to `size` bytes, durably. */
  truncateDurably(path: string, size: number): void {
    const inode = this.files.get(this.normalize(path));
    assert.ok(inode, `no file ${path}`);
    inode.apply({ kind: 'truncate', size });
    inode.durable = Buffer.from(inode.durable.subarray(0, Math.min(size, inode.durable.length)));
  }

  /** Writes bytes durably (test setup, e.g. garbage at the end of a file). */
  writeDurably(path: string, position: number, data: Uint8Array): void {
    const p = this.normalize(path);
    let inode = this.files.get(p);
    if (!inode) {
      inode = new Inode();
      this.files.set(p, inode);
      this.disk.durableFiles.set(p, inode);
    }
    inode.apply({ kind: 'write', position, data: Buffer.from(data) });
    inode.sync();
  }
}
