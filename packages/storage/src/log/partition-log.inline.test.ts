// Inline segment writes (FileHandle.writevNow, PartitionLog `inlineWriteBytesMax`): a small write
// group is written on the calling thread instead of through a thread-pool `writev`, counted in
// `inlineWrites` / `poolWrites`; larger groups, handles that cannot write inline, and a bound of
// 0 take `writev`. Durability does not change: under 'always' an append still resolves only once
// an fsync covers it (the crash and fault suites run with inline writes too). Also NodeFileSystem's
// `writevNow` itself (short of IOV_MAX and beyond it) and BoundedFileSystem's (only with an open
// descriptor; an eviction right after an inline write fsyncs it).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { BoundedFileSystem } from '../bounded-fs.js';
import { ForwardingFileSystem } from '../forwarding-fs.js';
import type { FileHandle, OpenMode } from '../fs.js';
import { MemoryFileSystem } from '../memory-fs.js';
import { NodeFileSystem } from '../node-fs.js';
import { PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { makeBatch, readAll, TEST_CONFIG } from './test-helpers.js';

const cfg = (over: Partial<PartitionLogConfig> = {}): PartitionLogConfig => ({
  ...TEST_CONFIG,
  segmentBytesMax: 1 << 20,
  ...over,
});

/** Handles whose fsync waits for `release()` (to look at an append between write and fsync). */
class GatedSyncFileSystem extends ForwardingFileSystem {
  private gate: Promise<void> | null = null;
  private open_: (() => void) | null = null;

  hold(): void {
    this.gate = new Promise((resolve) => {
      this.open_ = resolve;
    });
  }

  release(): void {
    this.open_?.();
    this.gate = null;
  }

  override async open(path: string, mode: OpenMode): Promise<FileHandle> {
    const inner = await this.inner.open(path, mode);
    const fs = this;
    return Object.assign(Object.create(inner) as FileHandle, {
      async sync(): Promise<void> {
        if (fs.gate !== null) await fs.gate;
        await inner.sync();
      },
    });
  }
}

describe('PartitionLog inline writes', () => {
  it('writes each small append inline: no thread-pool write, the same bytes', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem({ inlineWrites: true }), '/p', cfg());
    for (let i = 0; i < 20; i++) await log.append(makeBatch(i, 2));
    expect(log.inlineWrites).toBe(20);
    expect(log.poolWrites).toBe(0);
    expect((await readAll(log)).map((b) => b.baseOffset)).toEqual(
      Array.from({ length: 20 }, (_, i) => i * 2),
    );
    await log.close();
  });

  it('takes writev when the handle cannot write inline, or the bound is 0', async () => {
    const plain = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg());
    for (let i = 0; i < 5; i++) await plain.append(makeBatch(i));
    expect([plain.inlineWrites, plain.poolWrites]).toEqual([0, 5]);
    await plain.close();
    const off = await PartitionLog.open(new MemoryFileSystem({ inlineWrites: true }), '/p', cfg(), {
      inlineWriteBytesMax: 0,
    });
    for (let i = 0; i < 5; i++) await off.append(makeBatch(i));
    expect([off.inlineWrites, off.poolWrites]).toEqual([0, 5]);
    await off.close();
  });

  it('writes a group above inlineWriteBytesMax through writev', async () => {
    const small = makeBatch(0, 1);
    const log = await PartitionLog.open(new MemoryFileSystem({ inlineWrites: true }), '/p', cfg(), {
      inlineWriteBytesMax: small.length * 3,
    });
    await log.append(small);
    // Four appends queued in one synchronous pass form one write group of 4 batches.
    await Promise.all(Array.from({ length: 4 }, (_, i) => log.append(makeBatch(i + 1, 1))));
    expect([log.inlineWrites, log.poolWrites]).toEqual([1, 1]);
    await log.close();
  });

  it("'always': one inline write and few fsyncs for a burst, each append answered after its fsync", async () => {
    const gated = new GatedSyncFileSystem(new MemoryFileSystem({ inlineWrites: true }));
    const log = await PartitionLog.open(gated, '/p', cfg());
    gated.hold();
    let answered = 0;
    const burst = Array.from({ length: 40 }, (_, i) =>
      log.append(makeBatch(i, 1)).then((r) => {
        answered++;
        return r;
      }),
    );
    // Written (readable) at once, inline, in one write; nothing answered while the fsync waits.
    for (let k = 0; k < 10; k++) await new Promise((r) => setImmediate(r));
    expect(log.writtenEndOffset).toBe(40);
    expect(log.inlineWrites).toBe(1);
    expect(log.poolWrites).toBe(0);
    expect(answered).toBe(0);
    expect(log.durableEndOffset).toBe(0);
    gated.release();
    await Promise.all(burst);
    expect(log.durableEndOffset).toBe(40);
    expect(log.syncCount).toBe(1);
    await log.close();
  });

  it('over NodeFileSystem and BoundedFileSystem: inline, and read back after a reopen', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-inline-'));
    try {
      const fs = new BoundedFileSystem(new NodeFileSystem(), { openFilesMax: 8 });
      const log = await PartitionLog.open(fs, dir, cfg());
      for (let i = 0; i < 10; i++) await log.append(makeBatch(i, 3));
      await Promise.all(Array.from({ length: 30 }, (_, i) => log.append(makeBatch(10 + i))));
      expect(log.poolWrites).toBe(0);
      expect(log.inlineWrites).toBeGreaterThanOrEqual(11);
      const before = await readAll(log);
      await log.close();
      const again = await PartitionLog.open(new NodeFileSystem(), dir, cfg());
      expect(await readAll(again)).toEqual(before);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('FileHandle.writevNow', () => {
  it('NodeFileSystem writes one chunk, several, and more than IOV_MAX at a position', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-writevnow-'));
    try {
      const path = join(dir, 'f');
      const h = await new NodeFileSystem().open(path, 'create');
      expect(h.writevNow!([Buffer.from('abc')], 0)).toBe(true);
      expect(h.writevNow!([Buffer.from('de'), Buffer.from('fg')], 3)).toBe(true);
      const many = Array.from({ length: 2500 }, (_, i) => Buffer.from([i % 251]));
      expect(h.writevNow!(many, 7)).toBe(true);
      await h.close();
      const got = readFileSync(path);
      expect(got.subarray(0, 7).toString()).toBe('abcdefg');
      expect(got.length).toBe(7 + 2500);
      expect([...got.subarray(7)]).toEqual(many.map((b) => b[0]));
      expect(() => h.writevNow!([Buffer.from('x')], 0)).toThrow(/closed/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('BoundedFileSystem writes inline only with its descriptor open; eviction fsyncs it', async () => {
    const mem = new MemoryFileSystem({ inlineWrites: true });
    const fs = new BoundedFileSystem(mem, { openFilesMax: 2 });
    const a = await fs.open('/a', 'create-new');
    await fs.syncDir('/');
    expect(a.writevNow!([Buffer.from('inline, never synced by its owner')], 0)).toBe(true);
    const b = await fs.open('/b', 'create-new');
    await b.write(Buffer.from('b'), 0); // both dirty: the least recently used goes first
    await fs.syncDir('/'); // needs a descriptor: evicts a's (fsyncing it)
    expect(fs.stats.evictions).toBe(1);
    expect(a.writevNow!([Buffer.from('!')], 33)).toBe(false); // no descriptor: the caller takes writev
    const opens = fs.stats.opens;
    await a.sync(); // covered by the eviction fsync: no reopen
    expect(fs.stats.opens).toBe(opens);
    const after = mem.crash('drop-unsynced');
    expect((await after.readFile('/a')).toString()).toBe('inline, never synced by its owner');
    void b;
  });
});
