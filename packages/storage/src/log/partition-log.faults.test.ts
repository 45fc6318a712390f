// The append path when the disk refuses: every way the FileSystem seam can fail (FaultyFileSystem
// over MemoryFileSystem). Each append must be answered (never left hanging), with a retriable
// KAFKA_STORAGE_ERROR; nothing acknowledged may be lost or have its offset reused; and once the
// fault is gone the log takes writes again, by itself after a refused write, after a reopen
// (recovery from disk) after a failed fsync.
import { ErrorCode, StreamBusError } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { type Fault, type FaultOp, FaultyFileSystem } from '../faulty-fs.js';
import { MemoryFileSystem } from '../memory-fs.js';
import { type DurabilityPolicy, PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { makeBatch, readAll, TEST_CONFIG } from './test-helpers.js';

const cfg = (durability: DurabilityPolicy): PartitionLogConfig => ({
  ...TEST_CONFIG,
  durability,
  flushIntervalMs: 5,
});

/** Settles within `ms` or fails the test (a hanging append is the bug this suite guards). */
async function settle<T>(p: Promise<T>, ms = 2000): Promise<{ ok: T } | { err: unknown }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`append not answered within ${ms} ms`)), ms);
  });
  try {
    return { ok: await Promise.race([p, timeout]) };
  } catch (err) {
    if (err instanceof Error && err.message.startsWith('append not answered')) throw err;
    return { err };
  } finally {
    clearTimeout(timer);
  }
}

function expectStorageError(err: unknown, text?: RegExp): void {
  expect(err).toBeInstanceOf(StreamBusError);
  const e = err as StreamBusError;
  expect(e.code).toBe(ErrorCode.KAFKA_STORAGE_ERROR);
  expect(e.retriable).toBe(true);
  if (text) expect(e.message).toMatch(text);
}

interface Scenario {
  name: string;
  op: FaultOp;
  fault: Fault;
  /** The fault also hits the cut-back after a failed write (the log must then fail). */
  truncateFails?: boolean;
  /** The log fails as a whole and needs a reopen. */
  failsLog: boolean;
}

const SCENARIOS: Scenario[] = [
  { name: 'ENOSPC, nothing written', op: 'write', fault: { code: 'ENOSPC' }, failsLog: false },
  {
    name: 'ENOSPC after a torn prefix (short write)',
    op: 'write',
    fault: { code: 'ENOSPC', partialBytes: 150 },
    failsLog: false,
  },
  {
    name: 'EDQUOT after a torn prefix',
    op: 'write',
    fault: { code: 'EDQUOT', partialBytes: 70 },
    failsLog: false,
  },
  { name: 'EIO on write', op: 'write', fault: { code: 'EIO', partialBytes: 1 }, failsLog: false },
  { name: 'EROFS on write', op: 'write', fault: { code: 'EROFS' }, failsLog: false },
  {
    name: 'torn write whose cut-back fails',
    op: 'write',
    fault: { code: 'EIO', partialBytes: 100 },
    truncateFails: true,
    failsLog: true,
  },
  { name: 'EIO on fsync', op: 'sync', fault: { code: 'EIO' }, failsLog: true },
  {
    name: 'ENOSPC creating a segment (roll)',
    op: 'open',
    fault: { code: 'ENOSPC' },
    failsLog: false,
  },
  {
    name: 'ENOSPC writing the checkpoint at a roll',
    op: 'rename',
    fault: { code: 'ENOSPC' },
    failsLog: false,
  },
  {
    name: 'EIO on the directory fsync at a roll',
    op: 'syncDir',
    fault: { code: 'EIO' },
    failsLog: true,
  },
];

describe('PartitionLog when the disk refuses', () => {
  for (const policy of ['always', 'interval', 'none'] as const) {
    for (const [s, inlineWrites] of SCENARIOS.flatMap((s) =>
      // Write faults again with inline segment writes (FileHandle.writevNow): thrown, not rejected.
      s.op === 'write'
        ? ([
            [s, false],
            [s, true],
          ] as const)
        : ([[s, false]] as const),
    )) {
      // Under 'none' nothing fsyncs on its own (an fsync fault is only hit by flush()) and a
      // roll writes no checkpoint.
      if (policy === 'none' && ['sync', 'syncDir', 'rename'].includes(s.op)) continue;
      it(`${policy}: ${s.name}${inlineWrites ? ' (inline writes)' : ''}`, async () => {
        const mem = new MemoryFileSystem({ seed: 7, inlineWrites });
        const fs = new FaultyFileSystem(mem);
        const log = await PartitionLog.open(fs, '/p', cfg(policy));
        const acked = new Map<number, number>(); // baseOffset -> tag
        let tag = 0;
        const appendOne = async (): Promise<{ ok: boolean; err?: unknown }> => {
          const t = tag++;
          const r = await settle(log.append(makeBatch(t, 3)));
          if ('ok' in r) {
            if (policy !== 'none') await log.flush().catch(() => undefined);
            acked.set(r.ok.baseOffset, t);
            return { ok: true };
          }
          return { ok: false, err: r.err };
        };
        // Some data first, then the fault (the segment is 4 KiB: rolls come every ~20 batches).
        for (let k = 0; k < 8; k++) expect((await appendOne()).ok).toBe(true);
        let armed = true;
        fs.inject = (op) => {
          if (!armed) return null;
          if (op === s.op) return s.fault;
          if (s.truncateFails && op === 'truncate') return { code: 'EIO' };
          return null;
        };
        // Queue many appends in one tick (one group, several chunks across a roll): every one is
        // answered, in order, each success before any failure of the same group.
        const burst = Array.from({ length: 40 }, () => settle(log.append(makeBatch(tag++, 3))));
        const results = await Promise.all(burst);
        const errors = results.filter((r) => 'err' in r).map((r) => (r as { err: unknown }).err);
        expect(fs.injected.get(s.op) ?? 0).toBeGreaterThan(0);
        expect(errors.length).toBeGreaterThan(0);
        for (const e of errors) expectStorageError(e);
        if (s.fault.code === 'ENOSPC' && !s.failsLog && s.op === 'write') {
          expectStorageError(errors[0], /disk full \(ENOSPC\)/);
          expect(log.storageError?.message).toMatch(/disk full/);
        }
        results.forEach((r, k) => {
          if ('ok' in r) acked.set(r.ok.baseOffset, tag - 40 + k);
        });
        if (policy === 'always' && s.op === 'sync') {
          // No append whose fsync failed was acknowledged.
          expect(results.every((r) => 'err' in r)).toBe(true);
        }
        expect(log.failed).toBe(s.failsLog);
        // Offsets handed out are exactly those acknowledged, contiguous from 0.
        const written = log.writtenEndOffset;
        if (!s.failsLog) expect(log.logEndOffset).toBe(written);

        armed = false;
        let current = log;
        if (s.failsLog) {
          // Refuses until reopened; reopening recovers from disk.
          const again = await settle(log.append(makeBatch(tag++, 3)));
          expect('err' in again).toBe(true);
          expectStorageError((again as { err: unknown }).err, /recovered from disk/);
          await log.close().catch(() => undefined);
          current = await PartitionLog.open(fs, '/p', cfg(policy));
          // Recovery may keep batches written before the failure that were never acknowledged
          // (they were on disk); everything acknowledged must be there.
          expect(current.logEndOffset).toBeGreaterThanOrEqual(Math.max(0, ...acked.keys()) + 3);
        }
        // Space is back: appends go on, right after the last offset in the log.
        const end = current.logEndOffset;
        const next = await settle(current.append(makeBatch(tag++, 3)));
        expect(next).toMatchObject({ ok: { baseOffset: end } });
        expect(current.storageError).toBeNull();
        const all = await readAll(current);
        // Contiguous, no offset reused, and every acknowledged batch is where it was acked.
        for (let k = 1; k < all.length; k++) {
          expect(all[k]!.baseOffset).toBe(all[k - 1]!.lastOffset + 1);
        }
        const bases = new Set(all.map((b) => b.baseOffset));
        for (const base of acked.keys()) expect(bases.has(base)).toBe(true);
        await current.close();
        // And the same after a restart that keeps only what was fsynced (durable policies).
        if (policy !== 'none') {
          const crashed = mem.crash('drop-unsynced');
          const reopened = await PartitionLog.open(crashed, '/p', cfg(policy));
          const after = await readAll(reopened);
          const afterBases = new Set(after.map((b) => b.baseOffset));
          for (const base of acked.keys()) expect(afterBases.has(base)).toBe(true);
          expect(afterBases.has(end)).toBe(true);
          await reopened.close();
        }
      });
    }
  }

  it('takes back the offsets of a refused write: the retry gets the same offsets', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const log = await PartitionLog.open(fs, '/p', cfg('always'));
    await log.append(makeBatch(0, 5));
    fs.inject = (op) => (op === 'write' ? { code: 'ENOSPC', partialBytes: 40 } : null);
    const refused = await settle(log.append(makeBatch(1, 4)));
    expect('err' in refused).toBe(true);
    expect(log.logEndOffset).toBe(5);
    expect(log.sizeBytes).toBe(makeBatch(0, 5).length);
    fs.inject = null;
    expect(await log.append(makeBatch(2, 4))).toMatchObject({ baseOffset: 5, lastOffset: 8 });
    expect((await readAll(log)).map((b) => [b.baseOffset, b.lastOffset])).toEqual([
      [0, 4],
      [5, 8],
    ]);
    await log.close();
  });

  it('frees space by retention on a full disk, where the checkpoint cannot be written', async () => {
    const mem = new MemoryFileSystem();
    const fs = new FaultyFileSystem(mem);
    const log = await PartitionLog.open(fs, '/p', { ...cfg('always'), retentionBytesMax: 8192 });
    for (let t = 0; t < 120; t++) await log.append(makeBatch(t, 3));
    const segments = log.segmentCount;
    expect(segments).toBeGreaterThan(4);
    let full = true;
    fs.inject = (op) => (full && (op === 'write' || op === 'open') ? { code: 'ENOSPC' } : null);
    expect('err' in (await settle(log.append(makeBatch(999, 3))))).toBe(true);
    const retention = await settle(log.enforceRetention());
    // The checkpoint write failed, but the old segments are gone (their space is free).
    expect('err' in retention).toBe(true);
    expect(log.segmentCount).toBeLessThan(segments);
    const start = log.logStartOffset;
    expect(mem.listFiles().filter((f) => f.endsWith('.log'))).toHaveLength(log.segmentCount);
    full = false;
    expect('ok' in (await settle(log.append(makeBatch(1000, 3))))).toBe(true);
    await log.close();
    // A restart derives the same log start from the first segment left.
    const reopened = await PartitionLog.open(mem.crash('drop-unsynced'), '/p', cfg('always'));
    expect(reopened.logStartOffset).toBe(start);
    await reopened.close();
  });

  it('fails waitDurable and flush after a failed fsync instead of claiming durability', async () => {
    const fs = new FaultyFileSystem(new MemoryFileSystem());
    const log = await PartitionLog.open(fs, '/p', cfg('interval'));
    await log.append(makeBatch(0, 2));
    await log.waitDurable(2);
    fs.inject = (op) => (op === 'sync' ? { code: 'EIO' } : null);
    await log.append(makeBatch(1, 2)); // written (interval resolves on write)
    const durable = await settle(log.waitDurable(4));
    expect('err' in durable).toBe(true);
    expectStorageError((durable as { err: unknown }).err, /fsync/);
    expect(log.durableEndOffset).toBe(2);
    expect(log.failed).toBe(true);
    await log.close().catch(() => undefined);
  });
});
