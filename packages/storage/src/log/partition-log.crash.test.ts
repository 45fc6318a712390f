// Property tests of the partition log against a simple model, with crashes at random points,
// and corruption tests (flipped bits and truncations in every kind of file). Every failure
// message names its seed; rerun one with STORAGE_SEED=<seed>.
import { isStreamBusError, splitBatches } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { BoundedFileSystem } from '../bounded-fs.js';
import type { FileSystem } from '../fs.js';
import { type CrashMode, MemoryFileSystem, seededRandom } from '../memory-fs.js';
import { isLogCorruptionError, type LogCorruptionError } from './log-damage.js';
import { repairPartitionLog } from './log-repair.js';
import { type DurabilityPolicy, PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { makeBatch, readAll, type StoredBatch, TEST_CONFIG } from './test-helpers.js';

// STORAGE_SEED=<n> reruns one seed; STORAGE_SEED_COUNT=<n> runs more seeds (a soak).
const SEEDS = process.env.STORAGE_SEED
  ? [Number(process.env.STORAGE_SEED)]
  : range(1, 1 + Number(process.env.STORAGE_SEED_COUNT ?? 100));
function range(a: number, b: number): number[] {
  return Array.from({ length: b - a }, (_, i) => a + i);
}

async function withSeed(seed: number, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (err) {
    throw new Error(`seed ${seed} (rerun with STORAGE_SEED=${seed}): ${(err as Error).message}`, {
      cause: err,
    });
  }
}

function check(cond: boolean, what: string): void {
  if (!cond) throw new Error(what);
}

const bodyOf = (b: Buffer) => b.subarray(21).toString('hex');

/**
 * The model: the batches appended so far in offset order (acknowledged or in flight), the
 * log-start offset, and how far the log is known durable.
 */
async function runScenario(
  seed: number,
  openFilesMax?: number,
  /** Segment writes inline (FileHandle.writevNow) instead of through `writev`. */
  inlineWrites = false,
): Promise<void> {
  // With a descriptor budget, every open goes through a BoundedFileSystem of that size.
  const bound = (m: MemoryFileSystem): FileSystem =>
    openFilesMax === undefined ? m : new BoundedFileSystem(m, { openFilesMax });
  const rnd = seededRandom(seed * 7919);
  const policies: DurabilityPolicy[] = ['always', 'interval', 'none'];
  const durability = policies[seed % 3]!;
  const config: PartitionLogConfig = {
    ...TEST_CONFIG,
    durability,
    segmentBytesMax: 1024 + Math.floor(rnd() * 3000),
    indexIntervalBytes: 64 + Math.floor(rnd() * 500),
  };
  let fs = new MemoryFileSystem({ seed, inlineWrites });
  let log = await PartitionLog.open(bound(fs), '/p', config);
  let model: StoredBatch[] = [];
  let durableEnd = 0;
  let logStart = 0;
  let tag = 0;
  // The log-start offset can pass the data (delete-records, then a crash loses the tail).
  const end = () => Math.max(model.at(-1)?.lastOffset ?? -1, logStart - 1);

  for (let step = 0; step < 60; step++) {
    const r = rnd();
    if (r < 0.45) {
      // A burst of appends; some awaited, the last few maybe in flight at a crash.
      const n = 1 + Math.floor(rnd() * 6);
      const pending: Promise<unknown>[] = [];
      for (let i = 0; i < n; i++) {
        const b = makeBatch(tag++, 1 + Math.floor(rnd() * 4));
        const base = end() + 1;
        const last = base + b.readInt32BE(23);
        model.push({ baseOffset: base, lastOffset: last, body: bodyOf(b) });
        const p = log.append(b).then((res) => {
          check(res.baseOffset === base && res.lastOffset === last, `append got ${res.baseOffset}`);
          if (durability === 'always') durableEnd = Math.max(durableEnd, last + 1);
        });
        pending.push(p);
      }
      if (rnd() < 0.8) await Promise.all(pending);
      else for (const p of pending) p.catch(() => undefined);
    } else if (r < 0.55 && durability !== 'none') {
      await log.flush();
      durableEnd = end() + 1;
      // Truncate at a batch boundary in the durable range (what Raft does).
      const candidates = model.filter((b) => b.baseOffset >= logStart);
      if (candidates.length > 0) {
        const cut = candidates[Math.floor(rnd() * candidates.length)]!.baseOffset;
        await log.truncateTo(cut);
        model = model.filter((b) => b.baseOffset < cut);
        durableEnd = Math.min(durableEnd, cut);
        check(log.logEndOffset === cut, `logEnd ${log.logEndOffset} after truncateTo ${cut}`);
      }
    } else if (r < 0.62) {
      await log.flush();
      durableEnd = end() + 1;
    } else if (r < 0.64) {
      // Restart empty past the end (a Raft follower installing a snapshot).
      const at = end() + 1 + Math.floor(rnd() * 20);
      await log.truncateFullyAndStartAt(at);
      model = [];
      logStart = at;
      durableEnd = at;
      check(log.logEndOffset === at && log.logStartOffset === at, `reset to ${at}`);
    } else if (r < 0.67) {
      const to = logStart + Math.floor(rnd() * (end() + 2 - logStart));
      logStart = await log.deleteRecordsBefore(to);
      check(logStart === Math.max(to, logStart), `deleteRecordsBefore ${to} gave ${logStart}`);
    } else if (r < 0.8) {
      // Read a random offset and compare with the model.
      await log.flush();
      const live = model.filter((b) => b.lastOffset >= logStart);
      if (live.length > 0) {
        const b = live[Math.floor(rnd() * live.length)]!;
        const offset = Math.max(
          logStart,
          b.baseOffset + Math.floor(rnd() * (b.lastOffset - b.baseOffset + 1)),
        );
        const res = await log.read(offset, Math.floor(rnd() * 600));
        const got = splitBatches(res.data)[0]!;
        const first = res.data.subarray(got.position, got.position + got.size);
        check(bodyOf(first) === b.body, `read at ${offset} returned another batch`);
      }
    } else {
      // Crash at a random point, possibly with appends in flight, and recover.
      for (let t = Math.floor(rnd() * 8); t > 0; t--) await Promise.resolve();
      const mode: CrashMode = rnd() < 0.5 ? 'drop-unsynced' : 'keep-prefix';
      fs = fs.crash(mode);
      log = await PartitionLog.open(bound(fs), '/p', config);
      const got = await readAll(log, 700);
      const gotEnd = got.at(-1)?.lastOffset ?? log.logStartOffset - 1;
      check(
        log.logEndOffset === gotEnd + 1,
        `logEnd ${log.logEndOffset} vs read end ${gotEnd + 1}`,
      );
      check(
        gotEnd + 1 >= durableEnd,
        `lost durable data: recovered to ${gotEnd + 1} < ${durableEnd} (${mode}): ${JSON.stringify(log.recovery)}`,
      );
      check(log.logStartOffset >= Math.min(logStart, gotEnd + 1), `log start went back`);
      const byBase = new Map(model.map((b) => [b.baseOffset, b]));
      let expect = -1;
      for (const b of got) {
        const m = byBase.get(b.baseOffset);
        check(
          m !== undefined && m.body === b.body && m.lastOffset === b.lastOffset,
          `batch ${b.baseOffset} is not what was appended`,
        );
        check(expect < 0 || b.baseOffset === expect, `gap before ${b.baseOffset}`);
        expect = b.lastOffset + 1;
      }
      if (got.length > 0)
        check(got[0]!.baseOffset <= log.logStartOffset, 'first batch after log start');
      model = model.filter((b) => b.lastOffset <= gotEnd);
      logStart = log.logStartOffset;
      durableEnd = log.durableEndOffset;
    }
  }
  await log.close();
  const again = await PartitionLog.open(bound(fs), '/p', config);
  const got = await readAll(again, 5000);
  const want = model.filter((b) => b.lastOffset >= again.logStartOffset);
  check(
    JSON.stringify(got) === JSON.stringify(want),
    'after a clean close the log differs from the model',
  );
  await again.close();
}

describe('PartitionLog against a model with crashes', () => {
  it(`recovers a prefix containing everything durable (${SEEDS.length} seeds)`, async () => {
    for (const seed of SEEDS) await withSeed(seed, () => runScenario(seed));
  });

  it(`does the same with only 4 file descriptors (${SEEDS.length} seeds)`, async () => {
    for (const seed of SEEDS) await withSeed(seed, () => runScenario(seed, 4));
  });

  it(`does the same with inline segment writes (writevNow; ${SEEDS.length} seeds)`, async () => {
    for (const seed of SEEDS) await withSeed(seed, () => runScenario(seed, undefined, true));
  });

  it(`does the same with inline writes and 4 file descriptors (${SEEDS.length} seeds)`, async () => {
    for (const seed of SEEDS) await withSeed(seed, () => runScenario(seed, 4, true));
  });
});

// ---- Corruption ----

async function buildLog(
  seed: number,
): Promise<{ fs: MemoryFileSystem; original: StoredBatch[]; config: PartitionLogConfig }> {
  const config: PartitionLogConfig = {
    ...TEST_CONFIG,
    segmentBytesMax: 1500,
    indexIntervalBytes: 200,
  };
  const fs = new MemoryFileSystem({ seed });
  const log = await PartitionLog.open(fs, '/p', config);
  for (let i = 0; i < 30; i++) await log.append(makeBatch(i, 1 + (i % 3)));
  const original = await readAll(log);
  await log.close();
  return { fs, original, config };
}

/** The batches (in offset order) with their file and position. */
async function layout(
  fs: MemoryFileSystem,
): Promise<Array<{ file: string; position: number; size: number }>> {
  const out: Array<{ file: string; position: number; size: number }> = [];
  for (const file of fs.listFiles().filter((f) => f.endsWith('.log'))) {
    const data = await fs.readFile(file);
    for (const b of splitBatches(data)) out.push({ file, ...b });
  }
  return out;
}

describe('PartitionLog corruption', () => {
  it('cuts a torn active tail, and refuses other damage until repaired (verify all)', async () => {
    let sealedHits = 0;
    for (const seed of SEEDS) {
      await withSeed(seed, async () => {
        const rnd = seededRandom(seed);
        const { fs, original, config } = await buildLog(seed);
        const files = fs.listFiles();
        const file = files[Math.floor(rnd() * files.length)]!;
        const size = fs.fileSize(file);
        const batches = await layout(fs);
        const at = Math.floor(rnd() * size);
        const truncate = rnd() < 0.4;
        const bit = Math.floor(rnd() * 8);
        const spoil = (target: MemoryFileSystem) => {
          if (truncate) target.truncateDurably(file, at);
          else target.flipBit(file, at, bit);
        };
        spoil(fs);
        let hit = -1;
        if (file.endsWith('.log')) {
          hit = batches.findIndex((b) => b.file === file && at < b.position + b.size);
          const inEpoch =
            !truncate &&
            hit >= 0 &&
            at - batches[hit]!.position >= 12 &&
            at - batches[hit]!.position < 16;
          // A flipped bit in partitionLeaderEpoch is outside the CRC (Kafka's format): undetectable.
          if (inEpoch) hit = -1;
        }
        // Damage: a hit in a sealed segment, or in the active one with a good batch after it
        // (a flipped bit, not a torn tail).
        const last = batches.at(-1)!.file;
        const sealed =
          hit >= 0 && (file !== last || (!truncate && batches[hit + 1]?.file === last));
        if (sealed) {
          sealedHits++;
          // Damage in a sealed segment: nothing is cut at open, the error says where.
          let error: unknown = null;
          await PartitionLog.open(fs, '/p', config, { verify: 'all' }).then(
            (l) => l.close(),
            (err: unknown) => {
              error = err;
            },
          );
          check(isLogCorruptionError(error), `open did not refuse the damage (${String(error)})`);
          const damage = (error as LogCorruptionError).damage;
          check(
            damage.segment === file && damage.fromOffset === original[hit]!.baseOffset,
            `damage names ${damage.segment} from ${damage.fromOffset}, want ${file} from ${original[hit]!.baseOffset}`,
          );
          // Repair by truncation: the log is the prefix before the damage.
          const cut = await repairPartitionLog(fs, '/p', { mode: 'truncate' });
          check(cut.lost[0]?.fromOffset === original[hit]!.baseOffset, 'truncate names the cut');
          const log = await PartitionLog.open(fs, '/p', config, { verify: 'all' });
          const got = await readAll(log);
          check(
            JSON.stringify(got) === JSON.stringify(original.slice(0, hit)),
            `after truncate: ${got.length} batches, want ${hit}`,
          );
          await log.close();
          // Repair by skipping: every batch outside the lost ranges is kept with its offsets,
          // the lost ranges read as empty gap batches, offsets stay contiguous.
          const fsSkip = (await buildLog(seed)).fs;
          spoil(fsSkip);
          const skip = await repairPartitionLog(fsSkip, '/p', { mode: 'skip' });
          const lostAt = (o: number) =>
            skip.lost.some((r) => o >= r.fromOffset && (r.toOffset === null || o <= r.toOffset));
          check(lostAt(original[hit]!.baseOffset), 'the damaged batch is in a lost range');
          const skipped = await PartitionLog.open(fsSkip, '/p', config, { verify: 'all' });
          const all = await readAll(skipped);
          for (let i = 1; i < all.length; i++) {
            check(all[i]!.baseOffset === all[i - 1]!.lastOffset + 1, 'offsets stay contiguous');
          }
          const kept = all.filter((b) => !lostAt(b.baseOffset));
          const want = original.filter((b) => !lostAt(b.baseOffset));
          check(
            JSON.stringify(kept) === JSON.stringify(want),
            `after skip: kept ${kept.length} batches, want ${want.length}`,
          );
          check(
            want.length >= original.length - batches.filter((b) => b.file === file).length,
            'skip loses at most the damaged segment',
          );
          await skipped.close();
          return;
        }
        const log = await PartitionLog.open(fs, '/p', config, { verify: 'all' });
        const got = await readAll(log);
        const want = hit >= 0 ? original.slice(0, hit) : original;
        check(
          JSON.stringify(got) === JSON.stringify(want),
          `${truncate ? 'truncated' : 'flipped'} ${file} at ${at}: recovered ${got.length} batches, want ${want.length}; ${log.recovery.problems.join('; ')}`,
        );
        if (want.length < original.length) {
          check(
            log.recovery.truncatedFromOffset === original[want.length]!.baseOffset,
            'report names the cut',
          );
        }
        await log.close();
      });
    }
    if (SEEDS.length >= 50) expect(sealedHits).toBeGreaterThan(SEEDS.length / 10);
  });

  it('never serves a bad batch from a segment trusted at open (lazy verification)', async () => {
    for (const seed of SEEDS) {
      await withSeed(seed, async () => {
        const rnd = seededRandom(seed + 1000);
        const { fs, original, config } = await buildLog(seed);
        const batches = await layout(fs);
        const sealed = batches.filter((b) => b.file !== batches.at(-1)!.file);
        const victim = sealed[Math.floor(rnd() * sealed.length)]!;
        const at = victim.position + 16 + Math.floor(rnd() * (victim.size - 16)); // past the epoch
        fs.flipBit(victim.file, at, Math.floor(rnd() * 8));
        const log = await PartitionLog.open(fs, '/p', config);
        check(
          log.recovery.verifiedSegments <= 1,
          'a clean open verifies at most the active segment',
        );
        const hit = batches.indexOf(victim);
        // Everything before the bad batch reads fine; reading it is CORRUPT_DATA naming the file.
        const before = [];
        let offset = 0;
        let error: unknown = null;
        while (offset < log.logEndOffset) {
          try {
            const r = await log.read(offset, 300);
            const parts = splitBatches(r.data);
            for (const p of parts) {
              const b = r.data.subarray(p.position, p.position + p.size);
              before.push(bodyOf(b));
            }
            offset = r.nextOffset;
          } catch (err) {
            error = err;
            break;
          }
        }
        check(
          isStreamBusError(error),
          `reading past the flipped bit did not fail (${String(error)})`,
        );
        check((error as Error).message.includes(victim.file), 'the error names the file');
        check(
          before.length === hit,
          `served ${before.length} batches before the bad one, want ${hit}`,
        );
        check(offset === original[hit]!.baseOffset, 'the error comes at the bad batch');
        check(
          before.every((b, i) => b === original[i]!.body),
          'served data differs',
        );
        await log.close();
      });
    }
  });

  it('rebuilds damaged or missing index files without losing data', async () => {
    const { fs, original, config } = await buildLog(99);
    const indexes = fs.listFiles().filter((f) => f.endsWith('index'));
    fs.flipBit(indexes[0]!, 0);
    fs.truncateDurably(indexes[1]!, 3);
    const log = await PartitionLog.open(fs, '/p', config);
    expect(log.recovery.rebuiltIndexes.length).toBeGreaterThan(0);
    expect(log.recovery.truncatedBytes).toBe(0);
    expect(await readAll(log)).toEqual(original);
    await log.close();
  });

  it('a torn tail after a crash is cut and reported', async () => {
    const fs = new MemoryFileSystem({ seed: 5 });
    const log = await PartitionLog.open(fs, '/p', { ...TEST_CONFIG, durability: 'none' });
    for (let i = 0; i < 5; i++) await log.append(makeBatch(i));
    await log.flush();
    const active = fs
      .listFiles()
      .filter((f) => f.endsWith('.log'))
      .at(-1)!;
    const size = fs.fileSize(active);
    fs.writeDurably(active, size, makeBatch(99).subarray(0, 40));
    const fs2 = fs.crash('drop-unsynced');
    const again = await PartitionLog.open(fs2, '/p', TEST_CONFIG);
    expect(again.recovery.truncatedBytes).toBe(40);
    expect(again.recovery.truncatedFromOffset).toBe(15);
    expect(again.logEndOffset).toBe(15);
    await again.close();
  });
});
