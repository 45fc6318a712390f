import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ErrorCode, encodeRecordBatch, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { ForwardingFileSystem } from '../forwarding-fs.js';
import type { FileHandle, OpenMode } from '../fs.js';
import { MemoryFileSystem } from '../memory-fs.js';
import { NodeFileSystem } from '../node-fs.js';
import { PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { describeBatches, makeBatch, readAll, TEST_CONFIG } from './test-helpers.js';

const cfg = (over: Partial<PartitionLogConfig> = {}): PartitionLogConfig => ({
  ...TEST_CONFIG,
  ...over,
});

describe('PartitionLog appends and reads', () => {
  it('assigns offsets, patches them in place and reads whole batches back', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg());
    expect(log.logEndOffset).toBe(0);
    const b0 = makeBatch(0, 3);
    const r0 = await log.append(b0, { leaderEpoch: 7 });
    expect(r0).toMatchObject({ baseOffset: 0, lastOffset: 2 });
    expect(b0.readUInt32BE(4)).toBe(0);
    expect(b0.readInt32BE(12)).toBe(7);
    const r1 = await log.append(Buffer.concat([makeBatch(1, 2), makeBatch(2, 4)]));
    expect(r1).toMatchObject({ baseOffset: 3, lastOffset: 8 });
    expect(log.logEndOffset).toBe(9);
    expect(log.durableEndOffset).toBe(9);
    const all = await readAll(log);
    expect(all.map((b) => [b.baseOffset, b.lastOffset])).toEqual([
      [0, 2],
      [3, 4],
      [5, 8],
    ]);
    // Reading from the middle of a batch returns that whole batch.
    const mid = await log.read(6, 1);
    expect(describeBatches(mid.data).map((b) => b.baseOffset)).toEqual([5]);
    expect(mid.nextOffset).toBe(9);
    // At least one batch even when maxBytes is 0; more when they fit.
    expect(describeBatches((await log.read(0, 0)).data)).toHaveLength(1);
    expect(describeBatches((await log.read(0, 100_000)).data)).toHaveLength(3);
    expect(await log.read(9, 100)).toEqual({ data: Buffer.alloc(0), nextOffset: 9 });
    await expect(log.read(10, 100)).rejects.toMatchObject({ code: ErrorCode.OFFSET_OUT_OF_RANGE });
    await expect(log.read(-1, 100)).rejects.toMatchObject({ code: ErrorCode.OFFSET_OUT_OF_RANGE });
    await log.close();
  });

  it('continues a read into the next segments up to maxBytes, whole batches only', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg({ durability: 'none' }));
    const sizes: number[] = [];
    for (let t = 0; t < 100; t++) {
      const b = makeBatch(t, 2);
      sizes.push(b.length);
      await log.append(b);
    }
    expect(log.segmentCount).toBeGreaterThanOrEqual(3);
    const bases = log.segmentBaseOffsets;
    // From the middle of the first segment, with room for everything: one read returns it all.
    const all = await log.read(2, 1_000_000);
    const got = describeBatches(all.data);
    expect(got[0]!.baseOffset).toBe(2);
    expect(got.at(-1)!.lastOffset).toBe(199);
    expect(all.nextOffset).toBe(200);
    expect(got.map((b) => b.baseOffset)).toEqual(Array.from({ length: 99 }, (_, i) => 2 + 2 * i));
    // A budget that ends just past a segment boundary: the next segment's first batch only if
    // it fits, never more than maxBytes once past the first batch.
    const firstSegBatches = bases[1]! / 2;
    const firstSegBytes = sizes.slice(0, firstSegBatches).reduce((a, b) => a + b, 0);
    const budget = firstSegBytes + sizes[firstSegBatches]! + 1;
    const cut = await log.read(0, budget);
    expect(cut.data.length).toBe(firstSegBytes + sizes[firstSegBatches]!);
    expect(cut.nextOffset).toBe(bases[1]! + 2);
    const exact = await log.read(0, firstSegBytes + sizes[firstSegBatches]! - 1);
    expect(exact.data.length).toBe(firstSegBytes);
    expect(exact.nextOffset).toBe(bases[1]);
    await log.close();
  });

  it('refuses malformed appends with typed errors and never writes them', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg());
    const good = makeBatch(1);
    await expect(log.append(good.subarray(0, good.length - 1))).rejects.toMatchObject({
      code: ErrorCode.CORRUPT_MESSAGE,
    });
    await expect(log.append(Buffer.alloc(10))).rejects.toBeInstanceOf(StreamBusError);
    await expect(log.append(Buffer.alloc(0))).rejects.toMatchObject({
      code: ErrorCode.INVALID_RECORD,
    });
    const huge = encodeRecordBatch([{ value: Buffer.alloc(5000) }]);
    await expect(log.append(huge)).rejects.toMatchObject({ code: ErrorCode.RECORD_LIST_TOO_LARGE });
    expect(log.logEndOffset).toBe(0);
    await log.close();
    await expect(log.append(makeBatch(2))).rejects.toMatchObject({ code: ErrorCode.SHUTTING_DOWN });
  });

  it('rejects invalid configuration naming the key', async () => {
    await expect(
      PartitionLog.open(new MemoryFileSystem(), '/p', cfg({ segmentBytesMax: 10 })),
    ).rejects.toThrow(/segmentBytesMax/);
    await expect(
      PartitionLog.open(new MemoryFileSystem(), '/p', cfg({ durability: 'sometimes' as never })),
    ).rejects.toMatchObject({ code: ErrorCode.INVALID_CONFIG });
  });

  it('rolls segments by size and by age, and reads across them', async () => {
    let now = 0;
    const log = await PartitionLog.open(
      new MemoryFileSystem(),
      '/p',
      cfg({ segmentAgeMsMax: 1000, segmentBytesMax: 1024 }),
      {
        nowMs: () => now,
      },
    );
    for (let i = 0; i < 40; i++) await log.append(makeBatch(i));
    expect(log.segmentCount).toBeGreaterThan(3);
    const sizeRolled = log.segmentCount;
    now += 1000;
    await log.append(makeBatch(40));
    expect(log.segmentCount).toBe(sizeRolled + 1);
    const all = await readAll(log, 300);
    expect(all).toHaveLength(41);
    expect(all.map((b) => b.baseOffset)).toEqual(Array.from({ length: 41 }, (_, i) => i * 3));
    for (const base of log.segmentBaseOffsets.slice(1)) {
      const r = await log.read(base, 1);
      expect(describeBatches(r.data)[0]!.baseOffset).toBe(base);
    }
    await log.close();
  });

  it('finds offsets by timestamp', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg());
    for (let i = 0; i < 30; i++) await log.append(makeBatch(i, 3, 10_000 + i * 100));
    // Batch i holds timestamps 10000+100i .. +2, at offsets 3i..3i+2.
    expect(await log.offsetForTimestamp(0)).toBe(0);
    expect(await log.offsetForTimestamp(10_501)).toBe(16);
    expect(await log.offsetForTimestamp(10_503)).toBe(18);
    expect(await log.offsetForTimestamp(12_902)).toBe(89);
    expect(await log.offsetForTimestamp(12_903)).toBeNull();
    // With the found record's timestamp (Kafka's ListOffsets answer).
    expect(await log.findOffsetByTimestamp(0)).toEqual({ offset: 0, timestamp: 10_000 });
    expect(await log.findOffsetByTimestamp(10_501)).toEqual({ offset: 16, timestamp: 10_501 });
    expect(await log.findOffsetByTimestamp(10_550)).toEqual({ offset: 18, timestamp: 10_600 });
    expect(await log.findOffsetByTimestamp(12_903)).toBeNull();
    await log.close();
  });

  it("signals 'written' before the fsync under 'always'; the promise still waits for it", async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', cfg({ durability: 'always' }));
    const events: string[] = [];
    let writtenAt = -1;
    const done = log
      .append(makeBatch(1, 4), {
        onWritten: (r) => {
          events.push(`written ${r.baseOffset}-${r.lastOffset}`);
          writtenAt = log.durableEndOffset;
          expect(log.writtenEndOffset).toBe(4);
        },
      })
      .then((r) => events.push(`durable ${r.lastOffset} at ${log.durableEndOffset}`));
    await done;
    expect(events).toEqual(['written 0-3', 'durable 3 at 4']);
    expect(writtenAt).toBe(0); // not yet durable when 'written' fired
    // After a crash that drops unsynced writes, what resolved is there.
    const again = await PartitionLog.open(fs.crash('drop-unsynced'), '/p', cfg());
    expect(again.logEndOffset).toBe(4);
    await again.close();
    // 'none': written fires just before the resolution.
    const none = await PartitionLog.open(new MemoryFileSystem(), '/q', cfg({ durability: 'none' }));
    const seen: number[] = [];
    const r = await none.append(makeBatch(2, 2), { onWritten: (w) => seen.push(w.lastOffset) });
    expect(seen).toEqual([r.lastOffset]);
    await none.close();
  });

  it('truncates to an offset, keeps appending after it, and survives reopen', async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', cfg());
    for (let i = 0; i < 40; i++) await log.append(makeBatch(i));
    const segs = log.segmentCount;
    await log.truncateTo(31); // inside batch 10 (offsets 30..32)
    expect(log.logEndOffset).toBe(30);
    expect(log.segmentCount).toBeLessThan(segs);
    await log.truncateTo(500); // past the end: nothing
    expect(log.logEndOffset).toBe(30);
    expect((await log.append(makeBatch(100))).baseOffset).toBe(30);
    const before = await readAll(log);
    expect(before.map((b) => b.baseOffset)).toEqual([
      ...Array.from({ length: 10 }, (_, i) => i * 3),
      30,
    ]);
    await log.close();
    const again = await PartitionLog.open(fs, '/p', cfg());
    expect(await readAll(again)).toEqual(before);
    expect(again.recovery.truncatedBytes).toBe(0);
    await again.close();
  });

  it('moves the log start by delete-records and by retention, persistently', async () => {
    let now = 5_000_000;
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(
      fs,
      '/p',
      cfg({ retentionBytesMax: 4096, segmentBytesMax: 2048 }),
      { nowMs: () => now },
    );
    for (let i = 0; i < 60; i++) await log.append(makeBatch(i, 3, 1_000_000 + i));
    expect(await log.deleteRecordsBefore(4)).toBe(4);
    await expect(log.read(3, 10)).rejects.toMatchObject({ code: ErrorCode.OFFSET_OUT_OF_RANGE });
    expect(describeBatches((await log.read(4, 1)).data)[0]!.baseOffset).toBe(3);
    await expect(log.deleteRecordsBefore(10_000)).rejects.toMatchObject({
      code: ErrorCode.OFFSET_OUT_OF_RANGE,
    });
    const size = log.sizeBytes;
    await log.enforceRetention();
    expect(log.sizeBytes).toBeLessThan(size);
    expect(log.sizeBytes).toBeGreaterThanOrEqual(4096);
    expect(log.logStartOffset).toBe(log.segmentBaseOffsets[0]);
    const start = log.logStartOffset;
    await log.close();
    const again = await PartitionLog.open(
      fs,
      '/p',
      cfg({ retentionMs: 1000, segmentBytesMax: 2048 }),
      { nowMs: () => now },
    );
    expect(again.logStartOffset).toBe(start);
    now += 10_000_000;
    await again.enforceRetention();
    expect(again.segmentCount).toBe(1); // the active segment always stays
    expect(again.logStartOffset).toBe(again.segmentBaseOffsets[0]);
    await again.close();
  });

  it('reopens a cleanly closed log without verifying anything', async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', cfg());
    for (let i = 0; i < 30; i++) await log.append(makeBatch(i));
    const before = await readAll(log);
    await log.close();
    const again = await PartitionLog.open(fs, '/p', cfg());
    expect(again.recovery).toMatchObject({
      verifiedSegments: 0,
      truncatedBytes: 0,
      truncatedFromOffset: null,
    });
    expect(await readAll(again)).toEqual(before);
    await again.close();
  });

  it('works on the real file system', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'streambus-log-'));
    try {
      const log = await PartitionLog.open(new NodeFileSystem(), dir, cfg());
      await Promise.all(Array.from({ length: 50 }, (_, i) => log.append(makeBatch(i))));
      const before = await readAll(log);
      expect(before).toHaveLength(50);
      await log.close();
      const again = await PartitionLog.open(new NodeFileSystem(), dir, cfg());
      expect(await readAll(again)).toEqual(before);
      await again.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('PartitionLog durability', () => {
  it("'always' group-commits concurrent appends and resolves only when durable", async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', cfg({ segmentBytesMax: 1 << 20 }));
    const syncs = log.syncCount;
    const results = await Promise.all(
      Array.from({ length: 200 }, (_, i) => log.append(makeBatch(i))),
    );
    expect(results.at(-1)!.lastOffset).toBe(599);
    expect(log.durableEndOffset).toBe(600);
    expect(log.syncCount - syncs).toBeLessThan(20);
    expect(log.syncCount - syncs).toBeGreaterThan(0);
    await log.close();
  });

  it("'always' lets the next fsync wait for a write in progress, so one fsync covers it and what landed before", async () => {
    // Segment fsyncs and writes each behind a gate the test opens.
    const gates = { sync: new Gate(), write: new Gate() };
    let syncs = 0;
    const fs = new (class extends ForwardingFileSystem {
      override async open(path: string, mode: OpenMode): Promise<FileHandle> {
        const h = await this.inner.open(path, mode);
        if (!path.endsWith('.log')) return h;
        return Object.assign(Object.create(h) as FileHandle, {
          sync: async () => {
            syncs++;
            await gates.sync.pass();
            return h.sync();
          },
          writev: async (chunks: readonly Uint8Array[], position: number) => {
            await gates.write.pass();
            return h.writev(chunks, position);
          },
        });
      }
    })(new MemoryFileSystem());
    const log = await PartitionLog.open(fs, '/p', cfg({ segmentBytesMax: 1 << 20 }));
    const before = syncs;
    gates.sync.held = true;
    const a = log.append(makeBatch(1));
    await until(() => syncs === before + 1); // A written, its fsync hangs
    const b = log.append(makeBatch(2));
    await until(() => log.writtenEndOffset === 6); // B written during A's fsync
    gates.write.held = true;
    const c = log.append(makeBatch(3));
    await until(() => gates.write.waiting > 0); // C's write in progress
    gates.sync.open(); // A's fsync ends while C is being written
    await a;
    await new Promise((r) => setTimeout(r, 5));
    gates.write.open();
    await Promise.all([b, c]);
    expect(log.durableEndOffset).toBe(9);
    // A's fsync, then one for B and C together (without the wait: B's, then C's).
    expect(syncs - before).toBe(2);
    await log.close();
  });

  it("'always' syncs an idle log at once (no timer delay)", async () => {
    const log = await PartitionLog.open(
      new NodeFileSystem(),
      mkdtempSync(join(tmpdir(), 'streambus-idle-')),
      cfg(),
    );
    try {
      const t0 = performance.now();
      for (let i = 0; i < 5; i++) await log.append(makeBatch(i));
      expect((performance.now() - t0) / 5).toBeLessThan(200);
      expect(log.durableEndOffset).toBe(15);
    } finally {
      await log.close();
      rmSync(log.dir, { recursive: true, force: true });
    }
  });

  it("'interval' resolves on write and makes it durable within the interval", async () => {
    const log = await PartitionLog.open(
      new MemoryFileSystem(),
      '/p',
      cfg({ durability: 'interval', flushIntervalMs: 5 }),
    );
    await log.append(makeBatch(1));
    expect(log.logEndOffset).toBe(3);
    await log.waitDurable(3);
    expect(log.durableEndOffset).toBe(3);
    await log.close();
  });

  it("'none' never fsyncs on its own; flush() does; a crash loses only unsynced appends", async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', cfg({ durability: 'none' }));
    await log.append(makeBatch(1));
    expect(log.durableEndOffset).toBe(0);
    await log.flush();
    expect(log.durableEndOffset).toBe(3);
    await log.append(makeBatch(2));
    const fs2 = fs.crash('drop-unsynced');
    const again = await PartitionLog.open(fs2, '/p', cfg({ durability: 'none' }));
    expect((await readAll(again)).map((b) => b.baseOffset)).toEqual([0]);
    await again.close();
  });
});

describe('PartitionLog reset', () => {
  it('truncateFullyAndStartAt restarts the log empty at any offset, durably', async () => {
    const fs = new MemoryFileSystem();
    const log = await PartitionLog.open(fs, '/p', cfg());
    for (let i = 0; i < 20; i++) await log.append(makeBatch(i));
    await log.truncateFullyAndStartAt(1000);
    expect([log.logStartOffset, log.logEndOffset, log.durableEndOffset]).toEqual([
      1000, 1000, 1000,
    ]);
    expect(log.segmentBaseOffsets).toEqual([1000]);
    await expect(log.read(5, 100)).rejects.toMatchObject({ code: ErrorCode.OFFSET_OUT_OF_RANGE });
    expect((await log.append(makeBatch(1))).baseOffset).toBe(1000);
    const fs2 = fs.crash('drop-unsynced');
    const again = await PartitionLog.open(fs2, '/p', cfg());
    expect(again.logStartOffset).toBe(1000);
    expect((await readAll(again)).map((b) => b.baseOffset)).toEqual([1000]);
    await again.truncateFullyAndStartAt(7); // backwards is allowed too
    expect((await again.append(makeBatch(2))).baseOffset).toBe(7);
    await again.close();
  });
});

/** Holds callers of `pass()` while `held`; `open()` lets them all through. */
class Gate {
  held = false;
  private readonly queue: Array<() => void> = [];
  get waiting(): number {
    return this.queue.length;
  }
  async pass(): Promise<void> {
    if (this.held) await new Promise<void>((r) => this.queue.push(r));
  }
  open(): void {
    this.held = false;
    for (const w of this.queue.splice(0)) w();
  }
}

async function until(cond: () => boolean, timeoutMs = 2000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 1));
  }
}
