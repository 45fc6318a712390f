// BoundedFileSystem: the descriptor bound is never exceeded, busy descriptors are never closed,
// evicted handles read and write correctly after reopening, unsynced writes are fsynced before an
// eviction, unlinked and renamed files stay reachable through live handles, and shortages end in
// TOO_MANY_OPEN_FILES (retriable) instead of a crash or a hang.
import { ErrorCode, isStreamBusError, type StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { BoundedFileSystem } from './bounded-fs.js';
import { ForwardingFileSystem } from './forwarding-fs.js';
import type { FileHandle, OpenMode } from './fs.js';
import { readFully, storageError } from './fs.js';
import { PartitionLog } from './log/partition-log.js';
import { makeBatch, readAll, TEST_CONFIG } from './log/test-helpers.js';
import { MemoryFileSystem, seededRandom } from './memory-fs.js';

/** Counts the inner descriptors in use (handles open plus running readFile/readdir/syncDir). */
class ProbeFileSystem extends ForwardingFileSystem {
  inUse = 0;
  inUseMax = 0;
  opens = 0;
  closes = 0;
  /** open/readFile fail with EMFILE while this many descriptors are in use. */
  emfileAt = Number.POSITIVE_INFINITY;
  /** The next this many fsyncs fail with EIO. */
  failSyncs = 0;
  /** While set, reads wait for it. */
  gate: Promise<void> | null = null;
  readonly closedPaths: string[] = [];

  constructor(inner: MemoryFileSystem) {
    super(inner);
  }

  private take(op: string, path: string): void {
    if (this.inUse >= this.emfileAt) {
      throw storageError(op, path, Object.assign(new Error('too many'), { code: 'EMFILE' }));
    }
    this.inUse++;
    this.inUseMax = Math.max(this.inUseMax, this.inUse);
  }

  private async transient<T>(op: string, path: string, fn: () => Promise<T>): Promise<T> {
    this.take(op, path);
    try {
      return await fn();
    } finally {
      this.inUse--;
    }
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    this.take('open', path);
    let h: FileHandle;
    try {
      h = await this.inner.open(path, mode);
    } catch (err) {
      this.inUse--;
      throw err;
    }
    this.opens++;
    let open = true;
    const probe = this;
    return {
      path,
      async read(buffer, offset, length, position) {
        if (probe.gate) await probe.gate;
        return h.read(buffer, offset, length, position);
      },
      write: (d, p) => h.write(d, p),
      writev: (c, p) => h.writev(c, p),
      async sync() {
        if (probe.failSyncs > 0) {
          probe.failSyncs--;
          throw storageError('fsync', path, Object.assign(new Error('EIO'), { code: 'EIO' }));
        }
        return h.sync();
      },
      truncate: (s) => h.truncate(s),
      size: () => h.size(),
      async close() {
        if (!open) return;
        open = false;
        probe.inUse--;
        probe.closes++;
        probe.closedPaths.push(path);
        await h.close();
      },
    };
  }
  override readFile(path: string): Promise<Buffer> {
    return this.transient('read', path, () => this.inner.readFile(path));
  }
  override readdir(dir: string): Promise<string[]> {
    return this.transient('readdir', dir, () => this.inner.readdir(dir));
  }
  override syncDir(dir: string): Promise<void> {
    return this.transient('fsync-dir', dir, () => this.inner.syncDir(dir));
  }
}

function setup(
  openFilesMax: number,
  extra: Partial<ConstructorParameters<typeof BoundedFileSystem>[1]> = {},
) {
  const mem = new MemoryFileSystem({ seed: 3 });
  const probe = new ProbeFileSystem(mem);
  const fs = new BoundedFileSystem(probe, { openFilesMax, ...extra });
  return { mem, probe, fs };
}

async function text(h: FileHandle, length = 64): Promise<string> {
  return (await readFully(h, 0, length)).toString();
}

describe('BoundedFileSystem', () => {
  it('never holds more descriptors than openFilesMax, and every file reads back right', async () => {
    const { probe, fs } = setup(4);
    await fs.mkdir('/d');
    const handles = await Promise.all(
      Array.from({ length: 40 }, (_, i) => fs.open(`/d/f${i}`, 'create')),
    );
    const rnd = seededRandom(7);
    const want = handles.map(() => '');
    // Random concurrent appends, reads, syncs and transient reads across all files at once.
    await Promise.all(
      Array.from({ length: 600 }, async (_, k) => {
        const i = Math.floor(rnd() * handles.length);
        const h = handles[i]!;
        const r = rnd();
        if (r < 0.5) {
          const piece = `${k},`;
          const at = want[i]!.length;
          want[i] += piece;
          await h.write(Buffer.from(piece), at);
        } else if (r < 0.7) await h.sync();
        else if (r < 0.85) await h.size();
        else if (r < 0.95) await fs.readFile(`/d/f${i}`);
        else await fs.syncDir('/d');
      }),
    );
    for (let i = 0; i < handles.length; i++) {
      expect(await text(handles[i]!, 4096)).toBe(want[i]);
    }
    expect(probe.inUseMax).toBeLessThanOrEqual(4);
    expect(fs.stats.evictions).toBeGreaterThan(30);
    expect(fs.stats.handles).toBe(40);
    await Promise.all(handles.map((h) => h.close()));
    expect(fs.stats).toMatchObject({ openFiles: 0, handles: 0, waiting: 0 });
    expect(probe.inUse).toBe(0);
  });

  it('does not close a descriptor while a call runs on it; others wait their turn', async () => {
    const { probe, fs } = setup(2);
    const a = await fs.open('/a', 'create');
    await a.write(Buffer.from('aaa'), 0);
    const b = await fs.open('/b', 'create');
    await b.write(Buffer.from('bbb'), 0);
    let open!: () => void;
    probe.gate = new Promise((r) => {
      open = r;
    });
    const readA = text(a); // pins a's descriptor until the gate opens
    await new Promise((r) => setTimeout(r, 5));
    probe.gate = null;
    // c needs a slot: b is idle (evicted), a is busy (kept).
    const c = await fs.open('/c', 'create');
    await c.write(Buffer.from('ccc'), 0);
    expect(probe.closedPaths).toEqual(['/b']);
    // Now both slots are pinned or taken: a's read blocks, c is idle, so d evicts c.
    const d = await fs.open('/d', 'create');
    expect(probe.closedPaths).toEqual(['/b', '/c']);
    expect(probe.closedPaths).not.toContain('/a');
    open();
    expect(await readA).toBe('aaa');
    expect(await text(b)).toBe('bbb');
    expect(await text(c)).toBe('ccc');
    expect(probe.inUseMax).toBeLessThanOrEqual(2);
    for (const h of [a, b, c, d]) await h.close();
    expect(probe.inUse).toBe(0);
  });

  it('fsyncs unsynced writes before evicting, so a crash keeps them', async () => {
    const { mem, probe, fs } = setup(1);
    const a = await fs.open('/a', 'create-new');
    await fs.syncDir('/');
    await a.write(Buffer.from('written, never synced by its owner'), 0);
    const closes = probe.closes;
    const b = await fs.open('/b', 'create-new'); // evicts a
    expect(probe.closedPaths.slice(closes)).toEqual(['/a']);
    const opens = probe.opens;
    await a.sync(); // covered by the eviction fsync: no reopen
    expect(probe.opens).toBe(opens);
    const after = mem.crash('drop-unsynced');
    expect((await after.readFile('/a')).toString()).toBe('written, never synced by its owner');
    void b;
  });

  it('a failed eviction fsync fails every later sync of that handle', async () => {
    const { probe, fs } = setup(1);
    const a = await fs.open('/a', 'create');
    await a.write(Buffer.from('x'), 0);
    probe.failSyncs = 1;
    await fs.open('/b', 'create'); // evicts a; its fsync fails
    await expect(a.sync()).rejects.toMatchObject({ code: ErrorCode.KAFKA_STORAGE_ERROR });
    await expect(a.sync()).rejects.toThrow(/EIO/);
  });

  it('a sync racing a failing eviction fails too (a new descriptor proves nothing)', async () => {
    const { probe, fs } = setup(1);
    const a = await fs.open('/a', 'create');
    await a.write(Buffer.from('x'), 0);
    probe.failSyncs = 1;
    const opening = fs.open('/b', 'create'); // starts evicting a at once
    const syncing = a.sync(); // while the eviction fsync runs (and fails)
    await opening;
    await expect(syncing).rejects.toThrow(/EIO/);
  });

  it('keeps an unlinked or replaced file readable through its live handle', async () => {
    const { probe, fs } = setup(2);
    const a = await fs.open('/a', 'create');
    await a.write(Buffer.from('old a'), 0);
    const t = await fs.open('/t.tmp', 'create');
    await t.write(Buffer.from('moved'), 0);
    const fillers = [];
    for (let i = 0; i < 3; i++) fillers.push(await fs.open(`/x${i}`, 'create'));
    // a and t are evicted now; unlinking a and renaming t over /b must keep them reachable.
    expect(probe.closedPaths).toEqual(expect.arrayContaining(['/a', '/t.tmp']));
    await fs.unlink('/a');
    await fs.rename('/t.tmp', '/b');
    for (const f of fillers) await text(f); // pressure again: a is sticky, t follows to /b
    expect(await text(a)).toBe('old a');
    expect(await text(t)).toBe('moved');
    expect(t.path).toBe('/b');
    expect(probe.inUseMax).toBeLessThanOrEqual(2);
    await a.close();
    await t.close();
    for (const f of fillers) await f.close();
    expect(probe.inUse).toBe(0);
  });

  it('answers TOO_MANY_OPEN_FILES (retriable) when every descriptor stays busy', async () => {
    const seen: StreamBusError[] = [];
    const { probe, fs } = setup(1, { acquireTimeoutMs: 50, onExhausted: (e) => seen.push(e) });
    const a = await fs.open('/a', 'create');
    probe.gate = new Promise(() => undefined); // a's read never ends
    void a.read(Buffer.alloc(1), 0, 1, 0);
    await new Promise((r) => setTimeout(r, 5));
    const err = await fs.open('/b', 'create').catch((e: unknown) => e);
    expect(isStreamBusError(err, ErrorCode.TOO_MANY_OPEN_FILES)).toBe(true);
    expect((err as StreamBusError).retriable).toBe(true);
    expect((err as Error).message).toMatch(/openFilesMax 1/);
    expect(seen).toHaveLength(1);
    expect(fs.stats).toMatchObject({ exhausted: 1, waiting: 0, openFiles: 1 });
  });

  it('refuses callers beyond waitersMax at once', async () => {
    const { probe, fs } = setup(1, { waitersMax: 2, acquireTimeoutMs: 100 });
    const a = await fs.open('/a', 'create');
    probe.gate = new Promise(() => undefined);
    void a.read(Buffer.alloc(1), 0, 1, 0);
    await new Promise((r) => setTimeout(r, 5));
    const waiting = [fs.readFile('/a'), fs.readFile('/a')].map((p) => p.catch((e) => e));
    const third = await fs.readFile('/a').catch((e: unknown) => e);
    expect((third as Error).message).toMatch(/waitersMax/);
    for (const w of await Promise.all(waiting)) {
      expect(isStreamBusError(w, ErrorCode.TOO_MANY_OPEN_FILES)).toBe(true);
    }
  });

  it('closes an idle descriptor and retries when the OS says EMFILE below the bound', async () => {
    const seen: StreamBusError[] = [];
    const { probe, fs } = setup(100, { acquireTimeoutMs: 60, onExhausted: (e) => seen.push(e) });
    probe.emfileAt = 3; // the process runs out long before openFilesMax
    const hs = [];
    for (let i = 0; i < 10; i++) {
      const h = await fs.open(`/f${i}`, 'create');
      await h.write(Buffer.from(`file ${i}`), 0);
      hs.push(h);
    }
    for (let i = 0; i < 10; i++) expect(await text(hs[i]!)).toBe(`file ${i}`);
    expect(probe.inUseMax).toBe(3);
    expect(seen).toHaveLength(0);
    // All three busy: EMFILE persists, so the open fails with the typed error after the timeout.
    probe.gate = new Promise(() => undefined);
    for (const h of hs.slice(0, 3)) void h.read(Buffer.alloc(1), 0, 1, 0);
    await new Promise((r) => setTimeout(r, 5));
    const err = await fs.open('/late', 'create').catch((e: unknown) => e);
    expect(isStreamBusError(err, ErrorCode.TOO_MANY_OPEN_FILES)).toBe(true);
    expect((err as Error).message).toMatch(/EMFILE/);
    expect(seen).toHaveLength(1);
  });

  it('close waits for a running call, then gives the descriptor back', async () => {
    const { probe, fs } = setup(1);
    const a = await fs.open('/a', 'create');
    await a.write(Buffer.from('abc'), 0);
    let open!: () => void;
    probe.gate = new Promise((r) => {
      open = r;
    });
    const buf = Buffer.alloc(8);
    const reading = a.read(buf, 0, 8, 0);
    await new Promise((r) => setTimeout(r, 5));
    let closed = false;
    const closing = a.close().then(() => {
      closed = true;
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(closed).toBe(false);
    expect(probe.inUse).toBe(1);
    probe.gate = null;
    open();
    expect(await reading).toBe(3);
    expect(buf.subarray(0, 3).toString()).toBe('abc');
    await closing;
    expect(probe.inUse).toBe(0);
    await expect(a.read(Buffer.alloc(1), 0, 1, 0)).rejects.toThrow(/closed/);
  });

  it('serves many partition logs from a budget of 4 descriptors', async () => {
    const { mem, probe, fs } = setup(4);
    const config = { ...TEST_CONFIG, segmentBytesMax: 1024 };
    const logs = await Promise.all(
      Array.from({ length: 12 }, (_, i) => PartitionLog.open(fs, `/p${i}`, config)),
    );
    const rnd = seededRandom(11);
    const want: string[][] = logs.map(() => []);
    await Promise.all(
      Array.from({ length: 240 }, async (_, k) => {
        const i = Math.floor(rnd() * logs.length);
        const b = makeBatch(k, 2);
        want[i]!.push(b.subarray(21).toString('hex'));
        await logs[i]!.append(b);
        if (rnd() < 0.3) await logs[Math.floor(rnd() * logs.length)]!.read(0, 500);
      }),
    );
    for (let i = 0; i < logs.length; i++) {
      expect((await readAll(logs[i]!)).map((b) => b.body)).toEqual(want[i]);
    }
    await Promise.all(logs.map((l) => l.close()));
    expect(probe.inUseMax).toBeLessThanOrEqual(4);
    expect(probe.inUse).toBe(0);
    // Everything acknowledged under 'always' survives a crash, read back under the same budget.
    const fs2 = new BoundedFileSystem(mem.crash('drop-unsynced'), { openFilesMax: 4 });
    for (let i = 0; i < logs.length; i++) {
      const again = await PartitionLog.open(fs2, `/p${i}`, config);
      expect((await readAll(again)).map((b) => b.body)).toEqual(want[i]);
      await again.close();
    }
  });
});
