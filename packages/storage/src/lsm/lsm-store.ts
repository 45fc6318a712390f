// LsmStore: an ordered key-value store (log-structured merge tree) for the broker's keyed state:
// committed offsets, group and producer state, Raft hard state, metadata snapshots.
//
// Write path: a write batch is appended to the write-ahead log (one record per batch, group
// commit: every batch queued while the previous WAL write ran shares one write and one fsync),
// then applied to the sorted memtable under consecutive sequence numbers, then acknowledged. A
// full memtable is frozen and flushed to a level-0 sorted table in the background; the next
// write that fills the new memtable waits for that flush (so memory is bounded by two memtables,
// the block cache and the tables' in-memory indexes and bloom filters).
// Read path: memtable, frozen memtable, level-0 tables newest first, then one table per deeper
// level; the first version with seq <= the reader's sequence number wins.
// Compaction (background, one at a time): leveled. All of L0 plus the overlapping L1 tables when
// L0 has `l0CompactionTrigger` tables; otherwise one table of the most oversized level plus its
// overlaps one level down. It drops versions no snapshot can see and tombstones at the bottom.
// Snapshots pin a sequence number (compaction keeps what they can see); scans pin the tables and
// memtables they started with, so both stay consistent while writes and compactions go on.
// Crash recovery: MANIFEST (see manifest.ts) names the tables; WALs it does not mark obsolete are
// replayed (torn tail tolerated, corruption is an error naming the file); see `open`.
// It does not do: range deletes, reverse scans, compression, multiple column families.
import assert from 'node:assert/strict';
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import type { FileHandle, FileSystem } from '../fs.js';
import { isNotFound, joinPath, writeFileAtomic } from '../fs.js';
import { decodeManifest, encodeManifest, type TableMeta } from './manifest.js';
import { compareEntries, type Entry, EntryKind, Memtable } from './memtable.js';
import { BlockCache, TableCursor, TableReader, TableWriter } from './sstable.js';
import { type BatchOp, encodeWalRecord, replayWal } from './wal.js';

export type Key = Uint8Array | string;

export interface LsmOptions {
  /** Freeze and flush the memtable past this many bytes (default 4 MiB). */
  readonly memtableBytesMax?: number;
  /** Bound of the shared data-block cache (default 8 MiB). */
  readonly blockCacheBytesMax?: number;
  /** Data block size target (default 4 KiB). */
  readonly blockBytesTarget?: number;
  /** Output table size target of compactions (default 2 MiB). */
  readonly tableBytesTarget?: number;
  /** Compact L0 into L1 at this many L0 tables (default 4). */
  readonly l0CompactionTrigger?: number;
  /** Size target of L1; each deeper level is `levelSizeMultiplier` times larger (default 16 MiB). */
  readonly levelBytesBase?: number;
  readonly levelSizeMultiplier?: number;
  /** fsync the WAL before acknowledging a write (default true; per-write override). */
  readonly syncWrites?: boolean;
  /** Bytes of writes waiting for the WAL before new writes are refused (default 64 MiB). */
  readonly writeQueueBytesMax?: number;
  readonly keyBytesMax?: number;
  readonly valueBytesMax?: number;
}

const DEFAULTS: Required<LsmOptions> = {
  memtableBytesMax: 4 * 1024 * 1024,
  blockCacheBytesMax: 8 * 1024 * 1024,
  blockBytesTarget: 4096,
  tableBytesTarget: 2 * 1024 * 1024,
  l0CompactionTrigger: 4,
  levelBytesBase: 16 * 1024 * 1024,
  levelSizeMultiplier: 10,
  syncWrites: true,
  writeQueueBytesMax: 64 * 1024 * 1024,
  keyBytesMax: 64 * 1024,
  valueBytesMax: 64 * 1024 * 1024,
};

/** Levels 0..LEVELS_MAX-1. */
const LEVELS_MAX = 7;
const MANIFEST = 'MANIFEST';

export type ScanRange = { readonly prefix: Key } | { readonly start?: Key; readonly end?: Key };
export interface ScanOptions {
  /** Stop after this many pairs. */
  readonly limit?: number;
}
export interface KeyValue {
  readonly key: Buffer;
  readonly value: Buffer;
}
export interface WriteOptions {
  /** Override `syncWrites` for this write. */
  readonly sync?: boolean;
}

function toKey(k: Key): string {
  return typeof k === 'string'
    ? Buffer.from(k, 'utf8').toString('latin1')
    : Buffer.from(k.buffer, k.byteOffset, k.byteLength).toString('latin1');
}

function toValue(v: Uint8Array | string): Buffer {
  return typeof v === 'string' ? Buffer.from(v, 'utf8') : Buffer.from(v);
}

/** The smallest key greater than every key with this prefix, or null (no upper bound). */
function prefixEnd(prefix: string): string | null {
  let end = prefix;
  while (end.length > 0 && end.charCodeAt(end.length - 1) === 0xff) end = end.slice(0, -1);
  if (end.length === 0) return null;
  return end.slice(0, -1) + String.fromCharCode(end.charCodeAt(end.length - 1) + 1);
}

/** An atomic group of puts and deletes: all of it is applied, or (after a crash) none of it. */
export class WriteBatch {
  readonly ops: BatchOp[] = [];
  bytes = 0;
  put(key: Key, value: Uint8Array | string): this {
    const k = toKey(key);
    const v = toValue(value);
    this.ops.push({ kind: EntryKind.PUT, key: k, value: v });
    this.bytes += k.length + v.length + 9;
    return this;
  }
  delete(key: Key): this {
    const k = toKey(key);
    this.ops.push({ kind: EntryKind.DELETE, key: k, value: null });
    this.bytes += k.length + 9;
    return this;
  }
  get length(): number {
    return this.ops.length;
  }
}

/** A consistent read-only view as of the moment it was taken. Release it when done. */
export interface LsmSnapshot {
  readonly seq: number;
  get(key: Key): Promise<Buffer | undefined>;
  scan(range: ScanRange, options?: ScanOptions): AsyncGenerator<KeyValue>;
  release(): void;
}

interface Table {
  readonly meta: TableMeta;
  readonly reader: TableReader;
}

interface PendingWrite {
  readonly ops: readonly BatchOp[];
  readonly sync: boolean;
  readonly bytes: number;
  /** A flush marker (no ops): freeze and flush the memtable once it is applied. */
  readonly flush: boolean;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/** A forward cursor over one level >= 1 (disjoint sorted tables), table after table. */
class LevelCursor {
  private cursor: TableCursor | null = null;
  entry: Entry | null = null;
  private constructor(
    private readonly tables: readonly Table[],
    private i: number,
  ) {}
  static async open(tables: readonly Table[], start: string): Promise<LevelCursor> {
    let i = 0;
    while (i < tables.length && tables[i]!.meta.largest < start) i++;
    const c = new LevelCursor(tables, i);
    if (i < tables.length) c.cursor = await TableCursor.open(tables[i]!.reader, start);
    await c.settle();
    return c;
  }
  private async settle(): Promise<void> {
    while (this.cursor && !this.cursor.entry) {
      this.i++;
      this.cursor =
        this.i < this.tables.length
          ? await TableCursor.open(this.tables[this.i]!.reader, '')
          : null;
    }
    this.entry = this.cursor?.entry ?? null;
  }
  next(): Promise<void> | undefined {
    const p = this.cursor?.next();
    if (p) return p.then(() => this.settle());
    if (this.cursor?.entry) {
      this.entry = this.cursor.entry;
      return undefined;
    }
    return this.settle();
  }
}

interface Cursor {
  readonly entry: Entry | null;
  next(): Promise<void> | undefined;
}

function memCursor(m: Memtable, start: string): Cursor {
  const c = m.cursor(start);
  return {
    get entry() {
      return c.entry;
    },
    next() {
      c.next();
      return undefined;
    },
  };
}

/** Merges sorted cursors into one (key asc, seq desc) stream. Few sources: a linear scan. */
async function* mergeCursors(cursors: Cursor[]): AsyncGenerator<Entry> {
  for (;;) {
    let best: Cursor | null = null;
    for (const c of cursors) {
      const e = c.entry;
      if (!e) continue;
      const b = best?.entry;
      if (!b || compareEntries(e.key, e.seq, b.key, b.seq) < 0) best = c;
    }
    if (!best) return;
    const e = best.entry!;
    const p = best.next();
    if (p) await p;
    yield e;
  }
}

export class LsmStore {
  private readonly opts: Required<LsmOptions>;
  private readonly cache: BlockCache;
  private mem = new Memtable();
  private imm: Memtable | null = null;
  private wal!: FileHandle;
  private walNumber = 0;
  /** The WAL holding the frozen memtable's writes (obsolete once that memtable is a table). */
  private immWalNumber = 0;
  private walBytes = 0;
  private levels: Table[][] = Array.from({ length: LEVELS_MAX }, () => []);
  private nextFileNumber = 1;
  private lastSeq = 0;
  private readonly snapshots = new Map<number, number>();
  private queue: PendingWrite[] = [];
  private queueBytes = 0;
  private writing = false;
  private flushing: Promise<void> | null = null;
  private compacting: Promise<void> | null = null;
  private manifestLock: Promise<void> = Promise.resolve();
  private compactPointer: string[] = new Array<string>(LEVELS_MAX).fill('');
  private backgroundError: unknown = null;
  private closed = false;
  /** Flushes and compactions completed (tests and stats). */
  flushCount = 0;
  compactionCount = 0;

  private constructor(
    private readonly fs: FileSystem,
    readonly dir: string,
    options: LsmOptions,
  ) {
    this.opts = { ...DEFAULTS, ...options };
    assert.ok(this.opts.memtableBytesMax >= 4096, 'memtableBytesMax too small');
    assert.ok(this.opts.l0CompactionTrigger >= 2, 'l0CompactionTrigger must be >= 2');
    this.cache = new BlockCache(this.opts.blockCacheBytesMax);
  }

  private path(name: string): string {
    return joinPath(this.dir, name);
  }
  private tableName(n: number): string {
    return `${String(n).padStart(6, '0')}.sst`;
  }
  private walName(n: number): string {
    return `${String(n).padStart(6, '0')}.wal`;
  }

  /**
   * Opens (or creates) the store in `dir`. Recovery, in this order: read MANIFEST; open every
   * table it names (a damaged or missing one is a CORRUPT_DATA error naming the file); delete
   * temp files and tables it does not name (an interrupted flush or compaction); replay the WALs
   * it does not mark obsolete into a memtable; flush that memtable to a table; start a new WAL;
   * write MANIFEST; delete the replayed WALs.
   */
  static async open(fs: FileSystem, dir: string, options: LsmOptions = {}): Promise<LsmStore> {
    const store = new LsmStore(fs, dir, options);
    await store.recover();
    return store;
  }

  private async recover(): Promise<void> {
    await this.fs.mkdir(this.dir);
    const names = await this.fs.readdir(this.dir);
    const manifestPath = this.path(MANIFEST);
    let walNumberMin = 0;
    if (names.includes(MANIFEST)) {
      const m = decodeManifest(manifestPath, await this.fs.readFile(manifestPath));
      this.nextFileNumber = m.nextFileNumber;
      this.lastSeq = m.lastSeq;
      walNumberMin = m.walNumberMin;
      for (let level = 0; level < m.levels.length && level < LEVELS_MAX; level++) {
        for (const meta of m.levels[level]!) {
          const path = this.path(this.tableName(meta.fileNumber));
          let reader: TableReader;
          try {
            reader = await TableReader.open(this.fs, path, meta.fileNumber, this.cache);
          } catch (err) {
            if (isNotFound(err)) {
              throw new StreamBusError(
                ErrorCode.CORRUPT_DATA,
                `sorted table ${path} named by ${manifestPath} is missing`,
                { cause: err },
              );
            }
            throw err;
          }
          if (reader.sizeBytes !== meta.sizeBytes || reader.entryCount !== meta.entryCount) {
            await reader.close();
            throw new StreamBusError(
              ErrorCode.CORRUPT_DATA,
              `sorted table ${path} does not match ${manifestPath} (size or entry count)`,
            );
          }
          this.levels[level]!.push({ meta, reader });
        }
      }
    } else if (names.some((n) => n.endsWith('.sst') || n.endsWith('.wal'))) {
      throw new StreamBusError(
        ErrorCode.CORRUPT_DATA,
        `${manifestPath} is missing but ${this.dir} holds tables or logs`,
      );
    }
    const live = new Set(this.levels.flat().map((t) => this.tableName(t.meta.fileNumber)));
    const wals: number[] = [];
    for (const name of names) {
      const n = Number.parseInt(name, 10);
      if (name.endsWith('.tmp')) await this.fs.unlink(this.path(name));
      else if (name.endsWith('.sst') && !live.has(name)) await this.fs.unlink(this.path(name));
      else if (name.endsWith('.wal') && n >= walNumberMin) wals.push(n);
      if (Number.isSafeInteger(n) && n >= this.nextFileNumber) this.nextFileNumber = n + 1;
    }
    wals.sort((a, b) => a - b);
    for (const n of wals) {
      const path = this.path(this.walName(n));
      const replay = replayWal(path, await this.fs.readFile(path));
      for (const b of replay.batches) {
        b.ops.forEach((op, i) => {
          this.mem.add(op.key, b.firstSeq + i, op.kind, op.value);
        });
        this.lastSeq = Math.max(this.lastSeq, b.firstSeq + b.ops.length - 1);
      }
    }
    if (this.mem.count > 0) {
      const frozen = this.mem;
      frozen.frozen = true;
      this.mem = new Memtable();
      const table = await this.writeTable(frozen);
      this.levels[0]!.unshift(table);
    }
    await this.openNewWal();
    await this.writeManifest();
    for (const n of wals) await this.fs.unlink(this.path(this.walName(n)));
    for (const name of names) {
      const n = Number.parseInt(name, 10);
      if (name.endsWith('.wal') && n < walNumberMin) await this.fs.unlink(this.path(name));
    }
    this.maybeCompact();
  }

  private async openNewWal(): Promise<void> {
    const n = this.nextFileNumber++;
    const handle = await this.fs.open(this.path(this.walName(n)), 'create-new');
    await this.fs.syncDir(this.dir);
    this.wal = handle;
    this.walNumber = n;
    this.walBytes = 0;
  }

  private writeManifest(): Promise<void> {
    const run = async () => {
      const data = encodeManifest({
        nextFileNumber: this.nextFileNumber,
        walNumberMin: this.imm ? this.immWalNumber : this.walNumber,
        lastSeq: this.lastSeq,
        levels: this.levels.map((lv) => lv.map((t) => t.meta)),
      });
      await writeFileAtomic(this.fs, this.path(MANIFEST), data);
    };
    const p = this.manifestLock.then(run);
    this.manifestLock = p.catch(() => undefined);
    return p;
  }

  private check(): void {
    if (this.closed)
      throw new StreamBusError(ErrorCode.SHUTTING_DOWN, `store ${this.dir} is closed`);
    if (this.backgroundError) {
      throw new StreamBusError(
        ErrorCode.KAFKA_STORAGE_ERROR,
        `store ${this.dir} failed in the background: ${(this.backgroundError as Error).message}`,
        { cause: this.backgroundError },
      );
    }
  }

  // ---- Writes ----

  put(key: Key, value: Uint8Array | string, options?: WriteOptions): Promise<void> {
    return this.write(new WriteBatch().put(key, value), options);
  }

  delete(key: Key, options?: WriteOptions): Promise<void> {
    return this.write(new WriteBatch().delete(key), options);
  }

  /** Applies the batch atomically. Resolves once logged (and fsynced when syncing). */
  write(batch: WriteBatch, options?: WriteOptions): Promise<void> {
    try {
      this.check();
      for (const op of batch.ops) {
        if (
          op.key.length > this.opts.keyBytesMax ||
          (op.value?.length ?? 0) > this.opts.valueBytesMax
        ) {
          throw new StreamBusError(
            ErrorCode.INVALID_ARGUMENT,
            `key or value too large (keyBytesMax ${this.opts.keyBytesMax}, valueBytesMax ${this.opts.valueBytesMax})`,
          );
        }
      }
      if (this.queueBytes + batch.bytes > this.opts.writeQueueBytesMax && this.queue.length > 0) {
        throw new StreamBusError(
          ErrorCode.KAFKA_STORAGE_ERROR,
          `write queue of ${this.dir} is full (writeQueueBytesMax ${this.opts.writeQueueBytesMax})`,
        );
      }
    } catch (err) {
      return Promise.reject(err);
    }
    if (batch.ops.length === 0) return Promise.resolve();
    return this.enqueue(batch, options);
  }

  private enqueue(batch: WriteBatch, options?: WriteOptions, flush = false): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({
        ops: batch.ops.slice(),
        sync: options?.sync ?? this.opts.syncWrites,
        bytes: batch.bytes,
        flush,
        resolve,
        reject,
      });
      this.queueBytes += batch.bytes;
      if (!this.writing) void this.runWrites();
    });
  }

  private async runWrites(): Promise<void> {
    this.writing = true;
    try {
      while (this.queue.length > 0) {
        const group = this.queue;
        this.queue = [];
        this.queueBytes = 0;
        try {
          this.check();
          let seq = this.lastSeq + 1;
          const records: Buffer[] = [];
          let bytes = 0;
          let sync = false;
          for (const w of group) {
            if (w.ops.length === 0) continue;
            const r = encodeWalRecord(seq, w.ops);
            records.push(r);
            bytes += r.length;
            seq += w.ops.length;
            sync ||= w.sync;
          }
          if (records.length > 0) {
            await this.wal.writev(records, this.walBytes);
            this.walBytes += bytes;
            if (sync) await this.wal.sync();
          }
          let s = this.lastSeq + 1;
          for (const w of group)
            for (const op of w.ops) this.mem.add(op.key, s++, op.kind, op.value);
          this.lastSeq = s - 1;
          const rotate =
            this.mem.bytes >= this.opts.memtableBytesMax ||
            (this.mem.count > 0 && group.some((w) => w.flush));
          if (rotate) await this.rotateMemtable();
          for (const w of group) w.resolve();
        } catch (err) {
          this.backgroundError ??= err;
          for (const w of group) w.reject(err);
        }
      }
    } finally {
      this.writing = false;
    }
  }

  /** Freezes the memtable and starts its flush; waits first if the previous flush still runs. */
  private async rotateMemtable(): Promise<void> {
    if (this.flushing) await this.flushing;
    this.check();
    // Only the write loop calls this, so no write lands between the swap and the new WAL.
    const old = this.wal;
    // The old WAL must be complete on disk before the new one gets a record: otherwise a synced
    // write in the new WAL could survive a crash that loses unsynced writes before it.
    await old.sync();
    this.imm = this.mem;
    this.imm.frozen = true;
    this.immWalNumber = this.walNumber;
    this.mem = new Memtable();
    await this.openNewWal();
    await old.close();
    this.flushing = this.flushImmutable().then(
      () => {
        this.flushing = null;
      },
      (err: unknown) => {
        this.backgroundError ??= err;
        this.flushing = null;
      },
    );
  }

  private async flushImmutable(): Promise<void> {
    const imm = this.imm;
    assert.ok(imm, 'flush without a frozen memtable');
    const table = await this.writeTable(imm);
    this.levels[0]!.unshift(table);
    const obsoleteWal = this.immWalNumber;
    this.imm = null;
    await this.writeManifest();
    try {
      await this.fs.unlink(this.path(this.walName(obsoleteWal)));
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    this.flushCount++;
    this.maybeCompact();
  }

  /** Writes a frozen memtable as a new table (fsynced, dir fsynced). */
  private async writeTable(m: Memtable): Promise<Table> {
    const n = this.nextFileNumber++;
    const path = this.path(this.tableName(n));
    const handle = await this.fs.open(path, 'create-new');
    let w: TableWriter;
    let size: number;
    try {
      w = new TableWriter(handle, this.opts.blockBytesTarget);
      const c = m.cursor('');
      for (let e = c.entry; e; c.next(), e = c.entry) await w.add(e);
      size = await w.finish();
    } finally {
      await handle.close();
    }
    await this.fs.syncDir(this.dir);
    const reader = await TableReader.open(this.fs, path, n, this.cache);
    return {
      meta: {
        fileNumber: n,
        smallest: w.smallest ?? '',
        largest: w.largest ?? '',
        sizeBytes: size,
        entryCount: w.entryCount,
      },
      reader,
    };
  }

  // ---- Reads ----

  get(key: Key): Promise<Buffer | undefined> {
    try {
      this.check();
    } catch (err) {
      return Promise.reject(err);
    }
    return this.getAt(toKey(key), this.lastSeq);
  }

  private async getAt(key: string, seq: number): Promise<Buffer | undefined> {
    const m = this.mem.get(key, seq) ?? this.imm?.get(key, seq);
    if (m) return m.kind === EntryKind.PUT ? m.value! : undefined;
    const candidates: Table[] = [];
    for (const t of this.levels[0]!) {
      if (key >= t.meta.smallest && key <= t.meta.largest) candidates.push(t);
    }
    for (let level = 1; level < LEVELS_MAX; level++) {
      const t = findTable(this.levels[level]!, key);
      if (t) candidates.push(t);
    }
    for (const t of candidates) t.reader.refs++;
    try {
      for (const t of candidates) {
        const e = await t.reader.get(key, seq);
        if (e) return e.kind === EntryKind.PUT ? Buffer.from(e.value!) : undefined;
      }
      return undefined;
    } finally {
      for (const t of candidates) this.unref(t);
    }
  }

  /** Pairs in key order within `range` (end exclusive), as of the moment the scan starts. */
  scan(range: ScanRange, options: ScanOptions = {}): AsyncGenerator<KeyValue> {
    this.check();
    return this.scanAt(range, options, null);
  }

  private async *scanAt(
    range: ScanRange,
    options: ScanOptions,
    seqAt: number | null,
  ): AsyncGenerator<KeyValue> {
    // The view is fixed when iteration starts (the first `next()`), not when `scan` is called.
    const seq = seqAt ?? this.lastSeq;
    let start: string;
    let end: string | null;
    if ('prefix' in range) {
      start = toKey(range.prefix);
      end = prefixEnd(start);
    } else {
      start = range.start === undefined ? '' : toKey(range.start);
      end = range.end === undefined ? null : toKey(range.end);
    }
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (limit <= 0 || (end !== null && end <= start)) return;
    const mems = [this.mem, this.imm].filter((m): m is Memtable => m !== null);
    const l0 = this.levels[0]!.slice();
    const deeper = this.levels.slice(1).map((lv) => lv.slice());
    const pinned = [...l0, ...deeper.flat()];
    for (const t of pinned) t.reader.refs++;
    try {
      const cursors: Cursor[] = mems.map((m) => memCursor(m, start));
      for (const t of l0) {
        if (t.meta.largest >= start && (end === null || t.meta.smallest < end)) {
          cursors.push(await TableCursor.open(t.reader, start));
        }
      }
      for (const lv of deeper) if (lv.length > 0) cursors.push(await LevelCursor.open(lv, start));
      let decided: string | null = null;
      let count = 0;
      for await (const e of mergeCursors(cursors)) {
        if (end !== null && e.key >= end) return;
        if (e.key === decided || e.seq > seq) continue;
        decided = e.key;
        if (e.kind !== EntryKind.PUT) continue;
        yield { key: Buffer.from(e.key, 'latin1'), value: Buffer.from(e.value!) };
        if (++count >= limit) return;
      }
    } finally {
      for (const t of pinned) this.unref(t);
    }
  }

  /** A consistent view as of now; call `release()` so compaction can drop what it pins. */
  snapshot(): LsmSnapshot {
    this.check();
    const seq = this.lastSeq;
    this.snapshots.set(seq, (this.snapshots.get(seq) ?? 0) + 1);
    let released = false;
    const alive = () => {
      if (released) throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'snapshot was released');
    };
    return {
      seq,
      get: (key) => {
        alive();
        return this.getAt(toKey(key), seq);
      },
      scan: (range, options = {}) => {
        alive();
        return this.scanAt(range, options, seq);
      },
      release: () => {
        if (released) return;
        released = true;
        const n = this.snapshots.get(seq)! - 1;
        if (n === 0) this.snapshots.delete(seq);
        else this.snapshots.set(seq, n);
      },
    };
  }

  private unref(t: Table): void {
    t.reader.refs--;
    assert.ok(t.reader.refs >= 0, 'table reference count below zero');
    if (t.reader.refs === 0 && t.reader.obsolete) {
      void t.reader
        .close()
        .then(() => this.fs.unlink(t.reader.path))
        .catch(() => undefined); // An orphan table is deleted at the next open.
    }
  }

  // ---- Compaction ----

  private levelTarget(level: number): number {
    return this.opts.levelBytesBase * this.opts.levelSizeMultiplier ** (level - 1);
  }

  /** Starts a background compaction when one is due and none runs. */
  private maybeCompact(): void {
    if (this.compacting || this.closed || this.backgroundError) return;
    if (!this.pickCompaction()) return;
    this.compacting = (async () => {
      for (;;) {
        const c = this.pickCompaction();
        if (!c || this.closed) return;
        await this.runCompaction(c.inputs, c.outputLevel);
      }
    })().then(
      () => {
        this.compacting = null;
      },
      (err: unknown) => {
        this.backgroundError ??= err;
        this.compacting = null;
      },
    );
  }

  private pickCompaction(): { inputs: Table[]; outputLevel: number } | null {
    const l0 = this.levels[0]!;
    if (l0.length >= this.opts.l0CompactionTrigger) {
      let lo = l0[0]!.meta.smallest;
      let hi = l0[0]!.meta.largest;
      for (const t of l0) {
        if (t.meta.smallest < lo) lo = t.meta.smallest;
        if (t.meta.largest > hi) hi = t.meta.largest;
      }
      return { inputs: [...l0, ...overlapping(this.levels[1]!, lo, hi)], outputLevel: 1 };
    }
    for (let level = 1; level < LEVELS_MAX - 1; level++) {
      const lv = this.levels[level]!;
      const bytes = lv.reduce((s, t) => s + t.meta.sizeBytes, 0);
      if (bytes <= this.levelTarget(level)) continue;
      const ptr = this.compactPointer[level]!;
      const t = lv.find((x) => x.meta.smallest > ptr) ?? lv[0]!;
      this.compactPointer[level] = t.meta.largest;
      return {
        inputs: [t, ...overlapping(this.levels[level + 1]!, t.meta.smallest, t.meta.largest)],
        outputLevel: level + 1,
      };
    }
    return null;
  }

  private async runCompaction(inputs: Table[], outputLevel: number): Promise<void> {
    let lo = inputs[0]!.meta.smallest;
    let hi = inputs[0]!.meta.largest;
    for (const t of inputs) {
      if (t.meta.smallest < lo) lo = t.meta.smallest;
      if (t.meta.largest > hi) hi = t.meta.largest;
    }
    let bottom = true;
    for (let level = outputLevel + 1; level < LEVELS_MAX; level++) {
      if (overlapping(this.levels[level]!, lo, hi).length > 0) bottom = false;
    }
    // Versions at or below the oldest snapshot's seq are visible only as the newest one.
    let oldestSeq = this.lastSeq;
    for (const s of this.snapshots.keys()) oldestSeq = Math.min(oldestSeq, s);

    for (const t of inputs) t.reader.refs++;
    const outputs: Table[] = [];
    try {
      const cursors: Cursor[] = [];
      for (const t of inputs) cursors.push(await TableCursor.open(t.reader, ''));
      let writer: TableWriter | null = null;
      let handle: FileHandle | null = null;
      let fileNumber = 0;
      const finishOutput = async () => {
        if (!writer || !handle) return;
        const size = await writer.finish();
        await handle.close();
        const path = this.path(this.tableName(fileNumber));
        const reader = await TableReader.open(this.fs, path, fileNumber, this.cache);
        outputs.push({
          meta: {
            fileNumber,
            smallest: writer.smallest!,
            largest: writer.largest!,
            sizeBytes: size,
            entryCount: writer.entryCount,
          },
          reader,
        });
        writer = null;
        handle = null;
      };
      let currentKey: string | null = null;
      let lastSeqForKey = Number.POSITIVE_INFINITY;
      for await (const e of mergeCursors(cursors)) {
        if (e.key !== currentKey) {
          if (writer && (writer as TableWriter).estimatedBytes >= this.opts.tableBytesTarget) {
            await finishOutput();
          }
          currentKey = e.key;
          lastSeqForKey = Number.POSITIVE_INFINITY;
        }
        const shadowed = lastSeqForKey <= oldestSeq;
        lastSeqForKey = e.seq;
        if (shadowed) continue;
        if (e.kind === EntryKind.DELETE && e.seq <= oldestSeq && bottom) continue;
        if (!writer) {
          fileNumber = this.nextFileNumber++;
          handle = await this.fs.open(this.path(this.tableName(fileNumber)), 'create-new');
          writer = new TableWriter(handle, this.opts.blockBytesTarget);
        }
        await (writer as TableWriter).add(e);
      }
      await finishOutput();
      await this.fs.syncDir(this.dir);
    } catch (err) {
      for (const t of outputs) await t.reader.close();
      throw err;
    } finally {
      for (const t of inputs) t.reader.refs--;
    }
    // Install: remove inputs, insert outputs in key order, persist, then retire the inputs.
    const gone = new Set(inputs.map((t) => t.meta.fileNumber));
    for (let level = 0; level < LEVELS_MAX; level++) {
      this.levels[level] = this.levels[level]!.filter((t) => !gone.has(t.meta.fileNumber));
    }
    const out = this.levels[outputLevel]!;
    out.push(...outputs);
    out.sort((a, b) => (a.meta.smallest < b.meta.smallest ? -1 : 1));
    for (let i = 1; i < out.length; i++) {
      assert.ok(out[i - 1]!.meta.largest < out[i]!.meta.smallest, 'overlapping tables in a level');
    }
    await this.writeManifest();
    for (const t of inputs) {
      t.reader.obsolete = true;
      this.unref(t); // the version's own reference
    }
    this.compactionCount++;
  }

  /** Flushes the memtable to a table now (tests, clean shutdown of a busy store). */
  async flush(): Promise<void> {
    this.check();
    await this.enqueue(new WriteBatch(), { sync: false }, true);
    if (this.flushing) await this.flushing;
    this.check();
  }

  /** Waits until no compaction is due or running (tests, benchmarks). */
  async waitForCompactions(): Promise<void> {
    while (this.compacting) {
      await this.compacting;
      this.maybeCompact();
    }
    this.check();
  }

  private async drainWrites(): Promise<void> {
    while (this.writing || this.queue.length > 0) {
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  stats(): {
    memtableBytes: number;
    immutableBytes: number;
    blockCacheBytes: number;
    tablesPerLevel: number[];
    tableBytes: number;
    lastSeq: number;
    flushCount: number;
    compactionCount: number;
  } {
    return {
      memtableBytes: this.mem.bytes,
      immutableBytes: this.imm?.bytes ?? 0,
      blockCacheBytes: this.cache.sizeBytes,
      tablesPerLevel: this.levels.map((l) => l.length),
      tableBytes: this.levels.flat().reduce((s, t) => s + t.meta.sizeBytes, 0),
      lastSeq: this.lastSeq,
      flushCount: this.flushCount,
      compactionCount: this.compactionCount,
    };
  }

  /** Waits for queued writes, flushes, compactions; fsyncs the WAL; closes every file. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.drainWrites();
    if (this.flushing) await this.flushing;
    this.closed = true;
    if (this.compacting) await this.compacting;
    await this.manifestLock;
    let err: unknown = this.backgroundError;
    try {
      await this.wal.sync();
      await this.wal.close();
    } catch (e) {
      err ??= e;
    }
    for (const t of this.levels.flat()) await t.reader.close().catch(() => undefined);
    if (err) {
      throw new StreamBusError(ErrorCode.KAFKA_STORAGE_ERROR, `closing ${this.dir} failed`, {
        cause: err,
      });
    }
  }
}

function findTable(level: readonly Table[], key: string): Table | undefined {
  let lo = 0;
  let hi = level.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (level[mid]!.meta.largest < key) lo = mid + 1;
    else hi = mid;
  }
  const t = level[lo];
  return t && t.meta.smallest <= key ? t : undefined;
}

function overlapping(level: readonly Table[], lo: string, hi: string): Table[] {
  return level.filter((t) => t.meta.largest >= lo && t.meta.smallest <= hi);
}
