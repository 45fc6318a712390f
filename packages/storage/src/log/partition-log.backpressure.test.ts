// Back-pressure and the log's own error codes: bytes appended but not yet fsynced stay within
// unsyncedBytesMax while fsyncs are slow (measured by the file system, not by the log), the
// appends beyond it and beyond the append queue get the retriable LOG_BACKPRESSURE (not a
// storage failure), a retried append lands once, and a durability wait outlived by a truncation
// or reset gets LOG_TRUNCATED (never NOT_LEADER_OR_FOLLOWER: storage knows nothing of leaders).
import { ErrorCode, isStreamBusError, type StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryFileSystem } from '../memory-fs.js';
import { SlowSyncFileSystem } from '../slow-sync-fs.js';
import { type DurabilityPolicy, PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { makeBatch, readAll, TEST_CONFIG } from './test-helpers.js';

const BOUND = 8 * 1024;
const cfg = (durability: DurabilityPolicy, flushIntervalMs = 5): PartitionLogConfig => ({
  ...TEST_CONFIG,
  segmentBytesMax: 1024 * 1024,
  durability,
  flushIntervalMs,
});

async function openSlow(
  durability: DurabilityPolicy,
  options: { unsyncedBytesMax?: number; flushIntervalMs?: number } = {},
): Promise<{ fs: SlowSyncFileSystem; log: PartitionLog }> {
  const fs = new SlowSyncFileSystem(new MemoryFileSystem(), { syncDelayMs: 15 });
  const log = await PartitionLog.open(
    fs,
    '/p',
    cfg(durability, options.flushIntervalMs),
    options.unsyncedBytesMax === undefined ? {} : { unsyncedBytesMax: options.unsyncedBytesMax },
  );
  return { fs, log };
}

/**
 * `writers` producers each append `perWriter` batches as fast as the log takes them, retrying
 * LOG_BACKPRESSURE after a short pause; the log's own count is sampled after every call.
 */
async function produce(
  log: PartitionLog,
  writers: number,
  perWriter: number,
): Promise<{ refused: number; logPeak: number; tags: number[] }> {
  let refused = 0;
  let logPeak = 0;
  const tags: number[] = [];
  const writer = async (w: number): Promise<void> => {
    for (let i = 0; i < perWriter; i++) {
      const tag = w * 1000 + i;
      for (;;) {
        const appending = log.append(makeBatch(tag, 4));
        logPeak = Math.max(logPeak, log.unsyncedBytes);
        try {
          await appending;
          tags.push(tag);
          break;
        } catch (err) {
          if (!isStreamBusError(err, ErrorCode.LOG_BACKPRESSURE)) throw err;
          expect(err.retriable).toBe(true);
          refused++;
          await new Promise((r) => setTimeout(r, 2));
        }
      }
    }
  };
  await Promise.all(Array.from({ length: writers }, (_, w) => writer(w)));
  return { refused, logPeak, tags };
}

describe('unsyncedBytesMax', () => {
  it("'always': unsynced bytes never pass the bound while fsyncs are slow; refused appends retry", async () => {
    const { fs, log } = await openSlow('always', { unsyncedBytesMax: BOUND });
    const { refused, logPeak, tags } = await produce(log, 48, 4);
    expect(refused).toBeGreaterThan(0);
    expect(fs.unsyncedBytesPeak).toBeGreaterThan(0);
    expect(fs.unsyncedBytesPeak).toBeLessThanOrEqual(BOUND);
    expect(logPeak).toBeLessThanOrEqual(BOUND);
    // Every append landed once, offsets contiguous.
    const stored = await readAll(log, 64 * 1024);
    expect(stored).toHaveLength(48 * 4);
    expect(stored.map((b) => b.baseOffset)).toEqual(stored.map((_, i) => i * 4));
    expect(tags).toHaveLength(48 * 4);
    expect(log.unsyncedBytes).toBe(0);
    await log.close();
  });

  it('without the bound the same load leaves far more unsynced (the check above can fail)', async () => {
    const { fs, log } = await openSlow('always');
    const { refused } = await produce(log, 48, 4);
    expect(refused).toBe(0);
    expect(fs.unsyncedBytesPeak).toBeGreaterThan(BOUND);
    await log.close();
  });

  it("'interval': an fsync starts early at half the bound instead of waiting for the timer", async () => {
    const { fs, log } = await openSlow('interval', {
      unsyncedBytesMax: BOUND,
      flushIntervalMs: 60_000,
    });
    const { tags } = await produce(log, 8, 12);
    expect(tags).toHaveLength(8 * 12);
    expect(fs.syncs).toBeGreaterThan(0);
    expect(fs.unsyncedBytesPeak).toBeLessThanOrEqual(BOUND);
    await log.close();
  });

  it("'none': only unwritten bytes count (no fsync would ever free the rest)", async () => {
    const { fs, log } = await openSlow('none', { unsyncedBytesMax: BOUND });
    const { refused } = await produce(log, 48, 4);
    expect(refused).toBe(0);
    // More than the bound is written and unsynced, yet nothing was refused.
    expect(fs.unsyncedBytes).toBeGreaterThan(BOUND);
    expect(log.unsyncedBytes).toBe(0);
    await log.close();
  });

  it('accepts one append larger than the bound when nothing is unsynced', async () => {
    const { log } = await openSlow('always', { unsyncedBytesMax: 256 });
    const big = makeBatch(1, 20);
    expect(big.length).toBeGreaterThan(256);
    const first = log.append(big);
    await expect(log.append(makeBatch(2))).rejects.toMatchObject({
      code: ErrorCode.LOG_BACKPRESSURE,
    });
    await expect(first).resolves.toMatchObject({ baseOffset: 0 });
    await expect(log.append(makeBatch(3))).resolves.toMatchObject({ baseOffset: 20 });
    await log.close();
  });

  it('backpressure: false is never refused, and its bytes still count for the others', async () => {
    const { log } = await openSlow('always', { unsyncedBytesMax: 1024 });
    const unbounded = Array.from({ length: 8 }, (_, i) =>
      log.append(makeBatch(i), { backpressure: false }),
    );
    expect(log.unsyncedBytes).toBeGreaterThan(1024);
    await expect(log.append(makeBatch(9))).rejects.toMatchObject({
      code: ErrorCode.LOG_BACKPRESSURE,
    });
    await Promise.all(unbounded);
    await log.close();
  });
});

describe('storage error codes', () => {
  it('a full append queue is LOG_BACKPRESSURE (retriable), not KAFKA_STORAGE_ERROR', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg('always'), {
      appendQueueBytesMax: 1024,
    });
    const appends: Array<Promise<unknown>> = [];
    for (let i = 0; i < 20; i++) appends.push(log.append(makeBatch(i)));
    const settled = await Promise.allSettled(appends);
    const refused = settled.filter((s) => s.status === 'rejected');
    expect(refused.length).toBeGreaterThan(0);
    for (const r of refused) {
      const err = (r as PromiseRejectedResult).reason as StreamBusError;
      expect(err.code).toBe(ErrorCode.LOG_BACKPRESSURE);
      expect(err.retriable).toBe(true);
      expect(err.message).toMatch(/appendQueueBytesMax 1024/);
    }
    expect(log.storageError).toBeNull();
    expect(log.unsyncedBytes).toBe(0);
    expect(await readAll(log)).toHaveLength(settled.length - refused.length);
    await log.close();
  });

  it('a durability wait outlived by truncateTo gets LOG_TRUNCATED', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg('interval', 60_000));
    await log.append(makeBatch(1));
    const r = await log.append(makeBatch(2));
    const waiting = log.waitDurable(r.lastOffset + 1);
    const truncated = log.truncateTo(3);
    await expect(waiting).rejects.toMatchObject({ code: ErrorCode.LOG_TRUNCATED, retriable: true });
    await truncated;
    expect(log.logEndOffset).toBe(3);
    await log.close();
  });

  it('a durability wait outlived by truncateFullyAndStartAt gets LOG_TRUNCATED', async () => {
    const log = await PartitionLog.open(new MemoryFileSystem(), '/p', cfg('interval', 60_000));
    const r = await log.append(makeBatch(1));
    const waiting = log.waitDurable(r.lastOffset + 1);
    const reset = log.truncateFullyAndStartAt(100);
    await expect(waiting).rejects.toMatchObject({ code: ErrorCode.LOG_TRUNCATED });
    await reset;
    expect(log.unsyncedBytes).toBe(0);
    await expect(log.append(makeBatch(2))).resolves.toMatchObject({ baseOffset: 100 });
    await log.close();
  });
});
