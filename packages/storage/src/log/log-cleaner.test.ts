// The log cleaner against a Map model: random produces (keys from a small set, tombstones,
// unkeyed records, compressed and idempotent batches), cleans and reopens (fast-check); a power
// cut at every file operation of a clean; damage found by the cleaner; the I/O budget; appends
// while a clean runs; the pure batch rewrite.
import {
  Compression,
  decodeRecordBatch,
  ErrorCode,
  encodeRecordBatch,
  StreamBusError,
  splitBatches,
  validateBatch,
} from '@streambus/protocol';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { FaultyFileSystem } from '../faulty-fs.js';
import { ForwardingFileSystem } from '../forwarding-fs.js';
import type { FileSystem } from '../fs.js';
import { LsmStore } from '../lsm/lsm-store.js';
import { type CrashMode, MemoryFileSystem } from '../memory-fs.js';
import { CleanerKeyIndex } from './cleaner-key-index.js';
import { IoBudget } from './io-budget.js';
import {
  type CleanReport,
  checkKeyedRecords,
  emptyBatchLike,
  LogCleaner,
  rewriteBatch,
} from './log-cleaner.js';
import { isLogCorruptionError } from './log-damage.js';
import { PartitionLog, type PartitionLogConfig } from './partition-log.js';

const DIR = '/log';
const LSM_DIR = '/lsm';
const RETENTION_MS = 100;
const CONFIG: PartitionLogConfig = {
  segmentBytesMax: 1024,
  segmentAgeMsMax: 60 * 60 * 1000,
  indexIntervalBytes: 128,
  retentionBytesMax: -1,
  retentionMs: -1,
  durability: 'always',
  flushIntervalMs: 5,
};

interface Rec {
  offset: number;
  key: string | null;
  value: string | null;
  ts: number;
}

interface Produce {
  records: Array<{ key: number | null; tombstone: boolean }>;
  compressed: boolean;
  producerId: number;
}

/** The model: every record appended, by offset. */
class Model {
  readonly byOffset = new Map<number, Rec>();
  readonly latest = new Map<string, Rec>();
  readonly unkeyed: Rec[] = [];

  add(r: Rec): void {
    this.byOffset.set(r.offset, r);
    if (r.key === null) this.unkeyed.push(r);
    else this.latest.set(r.key, r);
  }
}

async function produce(log: PartitionLog, model: Model, p: Produce, ts: number): Promise<void> {
  const recs = p.records.map((r, i) => ({
    key: r.key === null ? null : `key-${r.key}`,
    value: r.tombstone && r.key !== null ? null : `v${ts}-${i}-${'x'.repeat((ts * 7 + i) % 40)}`,
  }));
  const batch = encodeRecordBatch(
    recs.map((r) => ({
      key: r.key === null ? null : Buffer.from(r.key),
      value: r.value === null ? null : Buffer.from(r.value),
      timestamp: ts,
    })),
    {
      timestamp: ts,
      compression: p.compressed ? Compression.GZIP : Compression.NONE,
      producerId: p.producerId,
      producerEpoch: p.producerId >= 0 ? 0 : -1,
      baseSequence: p.producerId >= 0 ? 0 : -1,
    },
  );
  const { baseOffset } = await log.append(batch);
  recs.forEach((r, i) => {
    model.add({ offset: baseOffset + i, key: r.key, value: r.value, ts });
  });
}

/** Every record in the log, checking CRCs, contiguous batch headers and increasing offsets. */
async function readLog(log: PartitionLog): Promise<Rec[]> {
  const out: Rec[] = [];
  let offset = log.logStartOffset;
  let nextBase = -1;
  for (let guard = 0; guard < 100_000; guard++) {
    const r = await log.read(offset, 700);
    if (r.data.length === 0) break;
    for (const { position, size } of splitBatches(r.data)) {
      const d = decodeRecordBatch(r.data.subarray(position, position + size));
      const h = d.header;
      if (nextBase >= 0 && h.baseOffset !== nextBase) {
        throw new Error(`batch at ${h.baseOffset} does not follow ${nextBase - 1}`);
      }
      nextBase = h.baseOffset + h.lastOffsetDelta + 1;
      for (const rec of d.records) {
        const last = out.at(-1);
        if (last !== undefined && rec.offset <= last.offset) {
          throw new Error(`offset ${rec.offset} after ${last.offset}`);
        }
        out.push({
          offset: rec.offset,
          key: rec.key === null ? null : Buffer.from(rec.key).toString(),
          value: rec.value === null ? null : Buffer.from(rec.value).toString(),
          ts: rec.timestamp,
        });
      }
    }
    offset = r.nextOffset;
  }
  return out;
}

/**
 * The compacted view is the model's: every record read is the one appended at its offset; the
 * last record of every key is the model's latest (a tombstone may be gone, then with every
 * older record of its key); unkeyed records and everything at or above `untouchedFrom` stay.
 */
function checkView(read: readonly Rec[], model: Model, untouchedFrom = Number.POSITIVE_INFINITY) {
  const lastRead = new Map<string, Rec>();
  const offsets = new Set<number>();
  for (const r of read) {
    const m = model.byOffset.get(r.offset);
    expect(m, `offset ${r.offset} was never appended`).toBeDefined();
    expect([r.key, r.value], `record at ${r.offset}`).toEqual([m!.key, m!.value]);
    if (r.key !== null) lastRead.set(r.key, r);
    offsets.add(r.offset);
  }
  for (const [key, latest] of model.latest) {
    const got = lastRead.get(key);
    if (latest.value !== null) expect(got?.offset, `live key ${key}`).toBe(latest.offset);
    else if (got !== undefined) expect(got.offset, `deleted key ${key}`).toBe(latest.offset);
  }
  for (const r of model.unkeyed) expect(offsets.has(r.offset), `unkeyed ${r.offset}`).toBe(true);
  for (const [offset] of model.byOffset) {
    if (offset >= untouchedFrom) expect(offsets.has(offset), `untouched ${offset}`).toBe(true);
  }
}

/**
 * The clean did its job in the segments it was given (sealed, entirely below `bound`): no
 * superseded keyed record and no tombstone older than the retention is left there.
 */
function checkCompacted(
  read: readonly Rec[],
  cleanable: ReadonlyArray<{ baseOffset: number; nextOffset: number }>,
  bound: number,
  deleteBeforeMs: number,
): void {
  const inCleanable = (o: number) => cleanable.some((s) => o >= s.baseOffset && o < s.nextOffset);
  const latestBelow = new Map<string, number>();
  for (const r of read) if (r.key !== null && r.offset < bound) latestBelow.set(r.key, r.offset);
  for (const r of read) {
    if (r.key === null || !inCleanable(r.offset)) continue;
    expect(latestBelow.get(r.key), `superseded ${r.key}@${r.offset} left`).toBe(r.offset);
    if (r.value === null)
      expect(r.ts, `old tombstone ${r.key}@${r.offset} left`).toBeGreaterThanOrEqual(
        deleteBeforeMs,
      );
  }
}

interface Env {
  fs: FileSystem;
  log: PartitionLog;
  store: LsmStore;
  cleaner: LogCleaner;
}

async function openEnv(
  fs: FileSystem,
  verify: 'auto' | 'all' = 'auto',
  config = CONFIG,
): Promise<Env> {
  const log = await PartitionLog.open(fs, DIR, config, { verify });
  const store = await LsmStore.open(fs, LSM_DIR, { memtableBytesMax: 16 * 1024 });
  const index = new CleanerKeyIndex(store, 'topic/0');
  const cleaner = new LogCleaner(fs, DIR, log, index, {
    indexIntervalBytes: CONFIG.indexIntervalBytes,
  });
  return { fs, log, store, cleaner };
}

async function closeEnv(env: Env): Promise<void> {
  await env.log.close();
  await env.store.close();
}

/** `count` single-record batches, record i with key `keyOf(i)` at timestamp `ts0 + i`. */
async function putKeys(
  env: Env,
  model: Model,
  count: number,
  keyOf: (i: number) => number,
  ts0 = 1000,
): Promise<void> {
  for (let i = 0; i < count; i++) {
    const records = [{ key: keyOf(i), tombstone: false }];
    await produce(env.log, model, { records, compressed: false, producerId: -1 }, ts0 + i);
  }
}

/**
 * Starts a clean whose budget parks it at its first byte (checked); `finish` lets it go on
 * unthrottled and returns its report.
 */
async function startParkedClean(
  env: Env,
  bound: number,
): Promise<{ finish: () => Promise<CleanReport> }> {
  let release: () => void = () => {};
  let parked = 0;
  const budget = new IoBudget({
    bytesPerSecond: 1,
    burstBytes: 1,
    nowMs: () => 0,
    sleep: () => {
      parked++;
      return new Promise<void>((resolve) => {
        release = resolve;
      });
    },
  });
  const cleaning = env.cleaner.clean({
    bound,
    deleteRetentionMs: RETENTION_MS,
    nowMs: 2000,
    budget,
    readBytesMax: 256,
  });
  cleaning.catch(() => undefined); // awaited by finish()
  await new Promise((r) => setTimeout(r, 10));
  expect(parked).toBe(1);
  return {
    finish: async () => {
      const unblock = setInterval(() => release(), 1);
      try {
        return await cleaning;
      } finally {
        clearInterval(unblock);
      }
    },
  };
}

/** Cleans to `bound` and checks the result against the model. */
async function cleanAndCheck(
  env: Env,
  model: Model,
  bound: number,
  nowMs: number,
): Promise<CleanReport> {
  const cleanable = env.log.segmentExtents.filter(
    (s) => s.sealed && s.nextOffset <= bound && s.baseOffset >= env.log.logStartOffset,
  );
  const report = await env.cleaner.clean({ bound, deleteRetentionMs: RETENTION_MS, nowMs });
  expect(report.damage).toEqual([]);
  const read = await readLog(env.log);
  checkView(read, model, bound);
  checkCompacted(read, cleanable, report.indexedUpTo, nowMs - RETENTION_MS);
  return report;
}

const produceArb: fc.Arbitrary<Produce> = fc.record({
  records: fc.array(
    fc.record({
      key: fc.option(fc.integer({ min: 0, max: 7 }), { freq: 8 }),
      tombstone: fc.boolean(),
    }),
    { minLength: 1, maxLength: 4 },
  ),
  compressed: fc.boolean(),
  producerId: fc.constantFrom(-1, -1, 7),
});

type Cmd =
  | { kind: 'produce'; p: Produce; dt: number }
  | { kind: 'clean'; fraction: number }
  | { kind: 'reopen' };

const cmdArb: fc.Arbitrary<Cmd> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      kind: fc.constant('produce' as const),
      p: produceArb,
      dt: fc.integer({ min: 0, max: 30 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('clean' as const),
      fraction: fc.double({ min: 0, max: 1, noNaN: true }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('reopen' as const) }) },
);

describe('log cleaner', () => {
  it('keeps the latest record per key, offsets and everything at or above the bound (against a Map)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(cmdArb, { minLength: 20, maxLength: 120 }), async (cmds) => {
        const fs = new MemoryFileSystem({ seed: 1 });
        let env = await openEnv(fs);
        const model = new Model();
        let now = 1_000_000;
        let bound = 0;
        try {
          for (const cmd of [...cmds, { kind: 'clean', fraction: 1 } as const]) {
            if (cmd.kind === 'produce') {
              now += cmd.dt;
              await produce(env.log, model, cmd.p, now);
            } else if (cmd.kind === 'reopen') {
              await closeEnv(env);
              env = await openEnv(fs, 'all');
              checkView(await readLog(env.log), model);
            } else {
              // The commit point only grows; the cleaner never goes past the active segment.
              bound = Math.max(bound, Math.floor(env.log.logEndOffset * cmd.fraction));
              await cleanAndCheck(env, model, bound, now);
            }
          }
          // A second clean at the same bound changes nothing and writes nothing: every byte
          // through its budget is a read.
          const budget = new IoBudget({ bytesPerSecond: 1e12 });
          const again = await env.cleaner.clean({
            bound,
            deleteRetentionMs: RETENTION_MS,
            nowMs: now,
            budget,
          });
          expect(again.recordsRemoved).toBe(0);
          expect(again.cleanedSegments).toEqual([]);
          expect(budget.spentBytes).toBe(again.bytesRead);
          await closeEnv(env);
          env = await openEnv(fs, 'all');
          checkView(await readLog(env.log), model, bound);
        } finally {
          await closeEnv(env).catch(() => undefined);
        }
      }),
      { numRuns: 40 },
    );
  }, 60_000);

  it('a read of a cleaned-away offset gets the batch that covered it', async () => {
    const fs = new MemoryFileSystem({ seed: 2 });
    const env = await openEnv(fs);
    const model = new Model();
    await putKeys(env, model, 60, (i) => i % 3);
    const bound = env.log.logEndOffset;
    const report = await env.cleaner.clean({ bound, deleteRetentionMs: RETENTION_MS, nowMs: 2000 });
    expect(report.cleanedSegments.length).toBeGreaterThan(0);
    expect(report.bytesAfter).toBeLessThan(report.bytesBefore);
    const firstCleaned = report.cleanedSegments[0]!;
    const r = await env.log.read(firstCleaned, 1);
    const batches = splitBatches(r.data);
    expect(batches.length).toBe(1);
    const h = validateBatch(r.data, 0);
    expect(h.baseOffset).toBeLessThanOrEqual(firstCleaned);
    expect(r.nextOffset).toBeGreaterThan(firstCleaned);
    await closeEnv(env);
  });

  it('survives a power cut at every file operation of a clean (old or new segments, never a loss)', async () => {
    // One scenario, built the same way for every cut: 120 records over 8 keys with tombstones.
    const build = async (): Promise<{ mem: MemoryFileSystem; model: Model; now: number }> => {
      const mem = new MemoryFileSystem({ seed: 3 });
      // Built under 'none' (fast); the close makes it all durable.
      const env = await openEnv(mem, 'auto', { ...CONFIG, durability: 'none' });
      const model = new Model();
      let now = 1_000_000;
      for (let i = 0; i < 100; i++) {
        now += 3;
        // Then keys 0-4 are deleted (tombstones that go), and keys 5-7 go on.
        const key = i < 80 ? (i * 5) % 8 : i < 85 ? i - 80 : 5 + (i % 3);
        const tombstone = i < 80 ? i % 11 === 0 : i < 85;
        const other = i < 80 ? (key + 1) % 8 : 5 + ((i + 1) % 3);
        const p: Produce = {
          records: [
            { key, tombstone },
            { key: i % 13 === 0 || (i >= 80 && i < 85) ? null : other, tombstone: false },
          ],
          compressed: i % 4 === 0,
          producerId: i % 9 === 0 ? 7 : -1,
        };
        await produce(env.log, model, p, now);
      }
      await closeEnv(env);
      return { mem, model, now: now + 1000 };
    };
    const cleanThrough = async (fs: FileSystem, now: number): Promise<void> => {
      const env = await openEnv(fs);
      try {
        await env.cleaner.clean({
          bound: env.log.logEndOffset,
          deleteRetentionMs: RETENTION_MS,
          nowMs: now,
        });
      } finally {
        await closeEnv(env).catch(() => undefined);
      }
    };
    // Count the clean's file operations once.
    const dry = await build();
    const counting = new FaultyFileSystem(dry.mem);
    let total = 0;
    let counted = false;
    counting.inject = () => {
      if (counted) total++;
      return null;
    };
    {
      const env = await openEnv(counting);
      counted = true;
      const report = await env.cleaner.clean({
        bound: env.log.logEndOffset,
        deleteRetentionMs: RETENTION_MS,
        nowMs: dry.now,
      });
      counted = false;
      expect(report.cleanedSegments.length).toBeGreaterThan(3);
      expect(report.tombstonesRemoved).toBeGreaterThan(0);
      await closeEnv(env);
    }
    expect(total).toBeGreaterThan(50);
    let cuts = 0;
    for (let n = 1; n <= total; n++) {
      const mode: CrashMode = n % 2 === 0 ? 'keep-prefix' : 'drop-unsynced';
      const { mem, model, now } = await build();
      const faulty = new FaultyFileSystem(mem);
      let ops = 0;
      let armed = false;
      let after: MemoryFileSystem | null = null;
      faulty.inject = () => {
        if (armed && ++ops === n && after === null) after = mem.crash(mode);
        return null;
      };
      const env = await openEnv(faulty);
      armed = true;
      await env.cleaner
        .clean({ bound: env.log.logEndOffset, deleteRetentionMs: RETENTION_MS, nowMs: now })
        .catch(() => undefined);
      armed = false;
      if (after === null) continue; // the run took a shorter path (fewer operations)
      cuts++;
      const recovered: MemoryFileSystem = after;
      try {
        const env2 = await openEnv(recovered, 'all');
        checkView(await readLog(env2.log), model);
        await closeEnv(env2);
        // The next clean, from whatever the cut left of the index, finishes the job.
        await cleanThrough(recovered, now);
        const env3 = await openEnv(recovered, 'all');
        const read = await readLog(env3.log);
        checkView(read, model);
        checkCompacted(
          read,
          env3.log.segmentExtents.filter((s) => s.sealed),
          env3.log.logEndOffset,
          now - RETENTION_MS,
        );
        await closeEnv(env3);
      } catch (err) {
        throw new Error(
          `power cut at operation ${n} of ${total} (${mode}): ${(err as Error).message}`,
          { cause: err },
        );
      }
    }
    expect(cuts).toBeGreaterThan(total / 2);
  }, 120_000);

  it('leaves a damaged segment alone and reports it, typed; tombstones after it stay', async () => {
    const mem = new MemoryFileSystem({ seed: 4 });
    let env = await openEnv(mem);
    const model = new Model();
    const put = async (i: number, key: number, tombstone = false) =>
      produce(
        env.log,
        model,
        { records: [{ key, tombstone }], compressed: false, producerId: -1 },
        1000 + i,
      );
    // Key 0's last record is a tombstone at 60, which could go if no segment were damaged.
    for (let i = 0; i < 80; i++) await put(i, i <= 60 ? i % 4 : 1 + (i % 3), i === 60);
    // A first clean indexes everything and keeps the young tombstone.
    await env.cleaner.clean({ bound: env.log.logEndOffset, deleteRetentionMs: 1e9, nowMs: 2000 });
    for (let i = 80; i < 140; i++) await put(i, 1 + (i % 3));
    const [first, second] = env.log.segmentExtents;
    await closeEnv(env);
    // A bit flipped in the first batch of the first segment (its baseTimestamp, under the CRC).
    const path = `${DIR}/${String(first!.baseOffset).padStart(20, '0')}.log`;
    mem.flipBit(path, 30, 3);
    const before = await mem.readFile(path);
    env = await openEnv(mem);
    const report = await env.cleaner.clean({
      bound: env.log.logEndOffset,
      deleteRetentionMs: 0,
      nowMs: 1_000_000,
    });
    expect(report.damage.length).toBe(1);
    expect(report.damage[0]!.segment).toBe(path);
    expect(report.skippedSegments.map((s) => s.baseOffset)).toContain(first!.baseOffset);
    expect(report.cleanedSegments).not.toContain(first!.baseOffset);
    expect(report.cleanedSegments.length).toBeGreaterThan(0);
    // The tombstone stays: key 0's older values in the damaged segment must not come back.
    expect(report.tombstonesRemoved).toBe(0);
    expect((await mem.readFile(path)).equals(before)).toBe(true);
    const rest = await env.log.read(second!.baseOffset, 1 << 20);
    expect(rest.data.length).toBeGreaterThan(0);
    await expect(env.log.read(first!.baseOffset, 100)).rejects.toSatisfy(isLogCorruptionError);
    await closeEnv(env);
    // An index rebuilt from scratch meets the damage first: it reports it and cleans nothing.
    env = await openEnv(mem);
    await new CleanerKeyIndex(env.store, 'topic/0').clear();
    const rebuilt = await env.cleaner.clean({
      bound: env.log.logEndOffset,
      deleteRetentionMs: 0,
      nowMs: 1_000_000,
    });
    expect(rebuilt.damage.map((d) => d.segment)).toEqual([path]);
    expect(rebuilt.cleanedSegments).toEqual([]);
    await closeEnv(env);
  });

  it('stays within its I/O budget (bytes counted against a simulated clock)', async () => {
    const mem = new MemoryFileSystem({ seed: 5 });
    const env = await openEnv(mem);
    const model = new Model();
    for (let i = 0; i < 150; i++) {
      await produce(
        env.log,
        model,
        {
          records: [
            { key: i % 5, tombstone: false },
            { key: (i + 2) % 5, tombstone: false },
          ],
          compressed: false,
          producerId: -1,
        },
        1000 + i,
      );
    }
    let clock = 0;
    const budget = new IoBudget({
      bytesPerSecond: 4000,
      burstBytes: 1500,
      nowMs: () => clock,
      sleep: async (ms) => {
        clock += ms;
      },
    });
    const report = await env.cleaner.clean({
      bound: env.log.logEndOffset,
      deleteRetentionMs: RETENTION_MS,
      nowMs: 2000,
      budget,
      readBytesMax: 512,
    });
    expect(report.cleanedSegments.length).toBeGreaterThan(3);
    // Every byte it read or wrote went through the budget...
    expect(budget.spentBytes).toBeGreaterThanOrEqual(report.bytesRead + report.bytesWritten);
    // ...and never faster than the rate plus one burst.
    expect(budget.spentBytes).toBeLessThanOrEqual(1500 + (4000 * clock) / 1000);
    expect(clock).toBeGreaterThan(((budget.spentBytes - 1500) * 1000) / 4000 - 1);
    checkView(await readLog(env.log), model);
    await closeEnv(env);
  });

  it('never stalls appends: they complete while a clean waits on its budget', async () => {
    const mem = new MemoryFileSystem({ seed: 6 });
    const env = await openEnv(mem);
    const model = new Model();
    await putKeys(env, model, 60, (i) => i % 3);
    const bound = env.log.logEndOffset;
    const clean = await startParkedClean(env, bound);
    await putKeys(env, model, 20, () => 9, 3000);
    // A second clean of the same log is refused while the first runs.
    await expect(env.cleaner.clean({ bound, deleteRetentionMs: 0 })).rejects.toMatchObject({
      code: ErrorCode.LOG_CLEANER_BUSY,
    });
    expect((await clean.finish()).cleanedSegments.length).toBeGreaterThan(0);
    checkView(await readLog(env.log), model, bound);
    await closeEnv(env);
  });

  it('appends (acknowledged durably) complete while a segment swap waits on its directory fsync', async () => {
    const mem = new MemoryFileSystem({ seed: 14 });
    // The swap's directory fsyncs wait at this gate; the appends' own fsyncs do not use it.
    let gated = 0;
    let open: () => void = () => {};
    const gate = { on: false, released: new Promise<void>((r) => (open = r)) };
    const fs = new (class extends ForwardingFileSystem {
      override async syncDir(dir: string): Promise<void> {
        if (gate.on) {
          gated++;
          await gate.released;
        }
        return super.syncDir(dir);
      }
    })(mem);
    const env = await openEnv(fs);
    const model = new Model();
    await putKeys(env, model, 60, (i) => i % 3);
    const bound = env.log.logEndOffset;
    gate.on = true;
    const cleaning = env.cleaner.clean({ bound, deleteRetentionMs: RETENTION_MS, nowMs: 2000 });
    for (let i = 0; i < 1000 && gated === 0; i++) await new Promise((r) => setImmediate(r));
    expect(gated).toBe(1);
    // Fits the active segment (no roll, which would fsync the directory too).
    let timer: NodeJS.Timeout | undefined;
    const waited = new Promise<string>((r) => {
      timer = setTimeout(() => r('the append waited for the swap'), 5000);
    });
    try {
      const appended = putKeys(env, model, 2, () => 8, 3000).then(() => 'appended');
      expect(await Promise.race([appended, waited])).toBe('appended');
    } finally {
      clearTimeout(timer);
      gate.on = false;
      open();
    }
    expect(gated).toBe(1);
    expect((await cleaning).cleanedSegments.length).toBeGreaterThan(0);
    checkView(await readLog(env.log), model, bound);
    await closeEnv(env);
    const again = await openEnv(mem, 'all');
    checkView(await readLog(again.log), model, bound);
    await closeEnv(again);
  });

  it('skips segments that delete-records takes away while it runs; the rest is cleaned', async () => {
    const mem = new MemoryFileSystem({ seed: 7 });
    const env = await openEnv(mem);
    let model = new Model();
    await putKeys(env, model, 90, (i) => i % 4);
    const bound = env.log.logEndOffset;
    const clean = await startParkedClean(env, bound);
    const third = env.log.segmentExtents[2]!.baseOffset;
    await env.log.deleteRecordsBefore(third);
    const rest = new Model();
    for (const [offset, r] of model.byOffset) if (offset >= third) rest.add(r);
    model = rest;
    const report = await clean.finish();
    expect(report.damage).toEqual([]);
    expect(report.cleanedSegments.every((b) => b >= third)).toBe(true);
    expect(report.cleanedSegments.length).toBeGreaterThan(0);
    checkView(await readLog(env.log), model);
    await closeEnv(env);
  });
});

describe('log cleaner for a replicated log', () => {
  /** Every batch header of the log: base offset, last offset delta, epoch, control flag. */
  async function headers(log: PartitionLog): Promise<string[]> {
    const out: string[] = [];
    for (let offset = log.logStartOffset; offset < log.logEndOffset; ) {
      const r = await log.read(offset, 4096);
      for (const { position } of splitBatches(r.data)) {
        const h = validateBatch(r.data, position);
        out.push(`${h.baseOffset}+${h.lastOffsetDelta}@${h.partitionLeaderEpoch}/${h.attributes}`);
      }
      offset = r.nextOffset;
    }
    return out;
  }

  it('keepEveryBatch: every batch keeps its header (emptied ones too), never merged into gap batches', async () => {
    const mem = new MemoryFileSystem({ seed: 11 });
    const env = await openEnv(mem);
    const model = new Model();
    // Batches without a producer id, most of them superseded entirely.
    await putKeys(env, model, 80, (i) => i % 3);
    const before = await headers(env.log);
    const bound = env.log.logEndOffset;
    const report = await env.cleaner.clean({
      bound,
      deleteRetentionMs: RETENTION_MS,
      nowMs: 2000,
      keepEveryBatch: true,
    });
    expect(report.cleanedSegments.length).toBeGreaterThan(0);
    expect(report.recordsRemoved).toBeGreaterThan(50);
    expect(await headers(env.log)).toEqual(before);
    checkView(await readLog(env.log), model);
    await closeEnv(env);
    // Without the option the emptied batches become gap batches: fewer headers.
    const env2 = await openEnv(new MemoryFileSystem({ seed: 12 }));
    await putKeys(env2, new Model(), 80, (i) => i % 3);
    await env2.cleaner.clean({ bound, deleteRetentionMs: RETENTION_MS, nowMs: 2000 });
    expect((await headers(env2.log)).length).toBeLessThan(before.length);
    await closeEnv(env2);
  });

  it('an aborted clean stops with LOG_CLEAN_ABORTED and leaves the log readable and whole', async () => {
    const mem = new MemoryFileSystem({ seed: 13 });
    const env = await openEnv(mem);
    const model = new Model();
    await putKeys(env, model, 90, (i) => i % 4);
    const abort = new AbortController();
    abort.abort();
    const err = await env.cleaner
      .clean({
        bound: env.log.logEndOffset,
        deleteRetentionMs: RETENTION_MS,
        nowMs: 2000,
        signal: abort.signal,
      })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StreamBusError);
    expect((err as StreamBusError).code).toBe(ErrorCode.LOG_CLEAN_ABORTED);
    checkView(await readLog(env.log), model);
    expect((await mem.readdir(DIR)).some((n) => n.endsWith('.tmp'))).toBe(false);
    // Aborted in the middle (after the first swap): what was swapped stays, the rest as it was.
    const mid = new AbortController();
    let spent = 0;
    const budget = new IoBudget({ bytesPerSecond: 1e12 });
    const spend = budget.spend.bind(budget);
    budget.spend = async (bytes: number) => {
      spent += bytes;
      if (spent > 3000) mid.abort();
      await spend(bytes);
    };
    const err2 = await env.cleaner
      .clean({
        bound: env.log.logEndOffset,
        deleteRetentionMs: RETENTION_MS,
        nowMs: 2000,
        budget,
        readBytesMax: 256,
        signal: mid.signal,
      })
      .catch((e: unknown) => e);
    expect((err2 as StreamBusError).code).toBe(ErrorCode.LOG_CLEAN_ABORTED);
    checkView(await readLog(env.log), model);
    expect((await mem.readdir(DIR)).some((n) => n.endsWith('.tmp'))).toBe(false);
    const done = await env.cleaner.clean({
      bound: env.log.logEndOffset,
      deleteRetentionMs: RETENTION_MS,
      nowMs: 2000,
    });
    expect(done.damage).toEqual([]);
    checkView(await readLog(env.log), model);
    await closeEnv(env);
  });
});

describe('batch rewrite (pure core)', () => {
  const records = Array.from({ length: 5 }, (_, i) => ({
    key: Buffer.from(`k${i}`),
    value: i === 3 ? null : Buffer.from(`value-${i}`),
    timestamp: 5000 + i,
  }));
  for (const compression of [Compression.NONE, Compression.GZIP, Compression.LZ4]) {
    it(`keeps the chosen records with their offsets and timestamps (codec ${compression})`, () => {
      const batch = encodeRecordBatch(records, {
        baseOffset: 100,
        compression,
        producerId: 3,
        producerEpoch: 1,
        baseSequence: 40,
      });
      const out = rewriteBatch(batch, [false, true, false, true, false])!;
      const d = decodeRecordBatch(out);
      expect(d.header).toMatchObject({
        baseOffset: 100,
        lastOffsetDelta: 4,
        recordCount: 2,
        producerId: 3,
        producerEpoch: 1,
        baseSequence: 40,
        baseTimestamp: 5000,
      });
      expect(
        d.records.map((r) => [
          r.offset,
          r.timestamp,
          Buffer.from(r.key!).toString(),
          r.value && Buffer.from(r.value).toString(),
        ]),
      ).toEqual([
        [101, 5001, 'k1', 'value-1'],
        [103, 5003, 'k3', null],
      ]);
      expect(rewriteBatch(batch, [true, true, true, true, true])).toBe(batch);
      expect(rewriteBatch(batch, [false, false, false, false, false])).toBeNull();
      const empty = emptyBatchLike(batch);
      expect(validateBatch(empty)).toMatchObject({
        baseOffset: 100,
        lastOffsetDelta: 4,
        recordCount: 0,
        producerId: 3,
        baseSequence: 40,
      });
      expect(() => rewriteBatch(batch, [true])).toThrow(RangeError);
    });
  }

  it('refuses unkeyed records for a compacted topic (INVALID_RECORD)', () => {
    expect(() => checkKeyedRecords(encodeRecordBatch(records))).not.toThrow();
    const unkeyed = encodeRecordBatch([{ value: Buffer.from('x') }]);
    expect(() => checkKeyedRecords(unkeyed)).toThrow(StreamBusError);
    try {
      checkKeyedRecords(unkeyed);
    } catch (err) {
      expect((err as StreamBusError).code).toBe(ErrorCode.INVALID_RECORD);
    }
  });
});
