// Lazy verification in the bytes a read fetched: a log reopened over its data (segments trusted
// at open) serves its first sequential pass with one read of each byte, not a verifying scan
// plus a read, and still never serves a batch that fails its checks.
import { isStreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import type { FileHandle, FileSystem } from '../fs.js';
import { MemoryFileSystem } from '../memory-fs.js';
import { LogSegment } from './log-segment.js';
import { PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { makeBatch, readAll } from './test-helpers.js';
import { verifyReadBuffer } from './verify-read.js';

const CONFIG: PartitionLogConfig = {
  segmentBytesMax: 64 * 1024,
  segmentAgeMsMax: 60 * 60 * 1000,
  indexIntervalBytes: 1024,
  retentionBytesMax: -1,
  retentionMs: -1,
  durability: 'none',
  flushIntervalMs: 5,
};

/** The file system, counting the bytes read through file handles of `.log` files. */
function counting(fs: FileSystem): { fs: FileSystem; logBytesRead: () => number } {
  let bytes = 0;
  const wrapped: FileSystem = Object.create(fs) as FileSystem;
  wrapped.open = async (path, mode) => {
    const h = await fs.open(path, mode);
    if (!path.endsWith('.log')) return h;
    const counted: FileHandle = Object.create(h) as FileHandle;
    counted.read = async (buffer, offset, length, position) => {
      const n = await h.read(buffer, offset, length, position);
      bytes += n;
      return n;
    };
    return counted;
  };
  return { fs: wrapped, logBytesRead: () => bytes };
}

async function filledLog(fs: MemoryFileSystem): Promise<number> {
  const log = await PartitionLog.open(fs, '/p', CONFIG);
  for (let i = 0; i < 400; i++) await log.append(makeBatch(i, 4));
  await log.close();
  return fs
    .listFiles()
    .filter((f) => f.endsWith('.log'))
    .reduce((s, f) => s + fs.fileSize(f), 0);
}

describe('lazy verification on read', () => {
  it('reads each byte of a trusted log once on the first sequential pass', async () => {
    const mem = new MemoryFileSystem({ seed: 3 });
    const logBytes = await filledLog(mem);
    const { fs, logBytesRead } = counting(mem);
    const log = await PartitionLog.open(fs, '/p', CONFIG);
    expect(log.recovery.verifiedSegments).toBeLessThanOrEqual(1);
    const opened = logBytesRead();
    const all = await readAll(log, 16 * 1024);
    expect(all).toHaveLength(400);
    const read = logBytesRead() - opened;
    // A verifying scan before each read made this about 2x; each window overlaps the next a
    // little (index granularity and the read-ahead margin).
    expect(read).toBeGreaterThanOrEqual(logBytes * 0.9);
    expect(read).toBeLessThan(logBytes * 1.5);
    await log.close();
  });

  it('verifies only whole batches from the verified end, and stops at a bad one', async () => {
    const mem = new MemoryFileSystem({ seed: 4 });
    await filledLog(mem);
    const file = mem
      .listFiles()
      .filter((f) => f.endsWith('.log'))
      .sort()[0]!;
    const b0 = makeBatch(0, 4).length;
    const b1 = makeBatch(1, 4).length;
    mem.flipBit(file, b0 + 40, 2); // inside batch 1's CRC-covered bytes
    const seg = await LogSegment.open(mem, '/p', 0, CONFIG.indexIntervalBytes, 0);
    (seg as { sizeBytes: number }).sizeBytes = mem.fileSize(file);
    const bytes = Buffer.alloc(b0 + b1 + 10);
    await seg.read(0, bytes.length).then((b) => b.copy(bytes));
    // Only batch 0 whole in the first b0 + 10 bytes: it is verified, the rest left alone.
    expect(verifyReadBuffer(seg, bytes.subarray(0, b0 + 10), 0)).toEqual({
      goodEnd: b0,
      problem: null,
    });
    expect(seg.verifiedBytes).toBe(b0);
    const r = verifyReadBuffer(seg, bytes, 0);
    expect(r.goodEnd).toBe(b0);
    expect(r.problem).toMatch(/batch at position \d+ \(offset 4\).*CRC/);
    expect(seg.verifiedBytes).toBe(b0);
    expect(() => verifyReadBuffer(seg, bytes.subarray(0, 10), b0 + 1)).toThrow(RangeError);
    await seg.handle.close();
    // Through the log: batch 0 is served, batch 1 is CORRUPT_DATA naming the file.
    const log = await PartitionLog.open(mem, '/p', CONFIG);
    const first = await log.read(0, 64 * 1024);
    expect(first.nextOffset).toBe(4);
    const err = await log.read(4, 64 * 1024).catch((e: unknown) => e);
    expect(isStreamBusError(err)).toBe(true);
    expect(String(err)).toContain(file);
    await log.close();
  });
});
