// Damage reporting and repair of the partition log: the events a log emits for cuts and damage
// (what the broker logs and counts), the typed error with its offsets, and repairPartitionLog's
// truncate / skip / dry-run modes.
import { decodeRecordBatch, splitBatches } from '@streambus/protocol';
import { describe, expect, it } from 'vitest';
import { MemoryFileSystem } from '../memory-fs.js';
import { isLogCorruptionError, type LogEvent } from './log-damage.js';
import { encodeGapBatches, repairPartitionLog } from './log-repair.js';
import { PartitionLog, type PartitionLogConfig } from './partition-log.js';
import { makeBatch, readAll, TEST_CONFIG } from './test-helpers.js';

const CONFIG: PartitionLogConfig = { ...TEST_CONFIG, segmentBytesMax: 1500 };

/** A closed log of 30 batches over several segments; the batch layout per file. */
async function build(config = CONFIG) {
  const fs = new MemoryFileSystem({ seed: 7 });
  const log = await PartitionLog.open(fs, '/p', config);
  for (let i = 0; i < 30; i++) await log.append(makeBatch(i, 2));
  await log.close();
  const layout: Array<{ file: string; position: number; size: number; baseOffset: number }> = [];
  for (const file of fs.listFiles().filter((f) => f.endsWith('.log'))) {
    const data = await fs.readFile(file);
    for (const b of splitBatches(data)) {
      layout.push({ file, ...b, baseOffset: data.readUInt32BE(b.position + 4) });
    }
  }
  return { fs, layout };
}

async function openWithEvents(fs: MemoryFileSystem, config = CONFIG) {
  const events: LogEvent[] = [];
  const log = await PartitionLog.open(fs, '/p', config, {
    verify: 'all',
    onEvent: (e) => events.push(e),
  });
  return { log, events };
}

describe('log damage events', () => {
  it('reports a cut active tail with its offsets and bytes', async () => {
    const fs = new MemoryFileSystem({ seed: 1 });
    const log = await PartitionLog.open(fs, '/p', { ...TEST_CONFIG, durability: 'none' });
    for (let i = 0; i < 4; i++) await log.append(makeBatch(i));
    await log.flush();
    const active = fs
      .listFiles()
      .filter((f) => f.endsWith('.log'))
      .at(-1)!;
    // A whole batch at offset 12 whose CRC then fails, and a torn one after it.
    const bad = makeBatch(50, 2);
    bad.writeUInt32BE(12, 4);
    bad[bad.length - 1]! ^= 1;
    const size = fs.fileSize(active);
    fs.writeDurably(active, size, bad);
    fs.writeDurably(active, size + bad.length, makeBatch(51).subarray(0, 30));
    const events: LogEvent[] = [];
    const again = await PartitionLog.open(fs.crash('drop-unsynced'), '/p', TEST_CONFIG, {
      onEvent: (e) => events.push(e),
    });
    expect(again.logEndOffset).toBe(12);
    expect(events).toEqual([
      expect.objectContaining({
        kind: 'truncated',
        dir: '/p',
        segment: active,
        position: size,
        bytes: bad.length + 30,
        fromOffset: 12,
        toOffset: 13,
      }),
    ]);
    await again.close();
  });

  it('refuses damage in a sealed segment at open, naming the offsets, and changes nothing', async () => {
    const { fs, layout } = await build();
    const victim = layout.find((b) => b.file === layout[0]!.file && b.position > 0)!;
    fs.flipBit(victim.file, victim.position + 40);
    const before = await fs.readFile(victim.file);
    const events: LogEvent[] = [];
    const err = await PartitionLog.open(fs, '/p', CONFIG, {
      verify: 'all',
      onEvent: (e) => events.push(e),
    }).catch((e: unknown) => e);
    expect(isLogCorruptionError(err)).toBe(true);
    const next = layout[layout.indexOf(victim) + 1]!;
    const damage = { segment: victim.file, position: victim.position };
    expect((err as { damage: unknown }).damage).toMatchObject({
      ...damage,
      fromOffset: victim.baseOffset,
      toOffset: next.baseOffset - 1,
      bytes: victim.size,
      resumePosition: next.file === victim.file ? next.position : null,
    });
    expect(String((err as Error).message)).toContain(`offsets ${victim.baseOffset}..`);
    expect(events).toEqual([
      expect.objectContaining({ kind: 'corruption', detectedBy: 'open', ...damage }),
    ]);
    expect(await fs.readFile(victim.file)).toEqual(before);
  });

  it('refuses a bad batch in the active segment with good batches after it (not a torn tail)', async () => {
    for (const durability of ['always', 'none'] as const) {
      const config = { ...CONFIG, durability };
      const { fs, layout } = await build(config);
      const active = layout.filter((b) => b.file === layout.at(-1)!.file);
      const victim = active[0]!;
      expect(active.length).toBeGreaterThan(1);
      fs.flipBit(victim.file, victim.position + 40);
      const opened = await PartitionLog.open(fs, '/p', config, { verify: 'all' }).catch(
        (e: unknown) => e,
      );
      if (durability === 'always') {
        expect(isLogCorruptionError(opened)).toBe(true);
        expect((opened as { damage: unknown }).damage).toMatchObject({
          fromOffset: victim.baseOffset,
          resumePosition: active[1]!.position,
          toOffset: active[1]!.baseOffset - 1,
        });
      } else {
        // Under 'none' a crash may lose any unsynced block: the log is cut there, as before.
        const log = opened as PartitionLog;
        expect(log.logEndOffset).toBe(victim.baseOffset);
        await log.close();
      }
    }
  });

  it('reports damage met by a read once, with the offsets, as a typed error', async () => {
    const { fs, layout } = await build();
    const victim = layout.find((b) => b.file === layout[0]!.file && b.position > 0)!;
    fs.flipBit(victim.file, victim.position + 40);
    const events: LogEvent[] = [];
    // A clean open trusts sealed segments: the damage is found by the read.
    const log = await PartitionLog.open(fs, '/p', CONFIG, { onEvent: (e) => events.push(e) });
    for (let i = 0; i < 2; i++) {
      const err = await log.read(victim.baseOffset, 100).catch((e: unknown) => e);
      expect(isLogCorruptionError(err)).toBe(true);
      expect((err as { damage: { fromOffset: number } }).damage.fromOffset).toBe(victim.baseOffset);
    }
    expect(events).toEqual([
      expect.objectContaining({
        kind: 'corruption',
        detectedBy: 'read',
        fromOffset: victim.baseOffset,
      }),
    ]);
    await log.close();
  });

  it("under durability 'none' a torn sealed segment is still cut, and reported", async () => {
    const config = { ...CONFIG, durability: 'none' as const };
    const { fs, layout } = await build(config);
    const victim = layout.find((b) => b.file === layout[0]!.file && b.position > 0)!;
    fs.truncateDurably(victim.file, victim.position + 10);
    const { log, events } = await openWithEvents(fs, config);
    expect(log.logEndOffset).toBe(victim.baseOffset);
    expect(events[0]).toMatchObject({ kind: 'truncated', fromOffset: victim.baseOffset });
    expect(events.slice(1).every((e) => e.kind === 'truncated' && e.position === 0)).toBe(true);
    await log.close();
  });
});

describe('repairPartitionLog', () => {
  async function damaged() {
    const { fs, layout } = await build();
    const victim = layout.find((b) => b.file === layout[0]!.file && b.position > 0)!;
    fs.flipBit(victim.file, victim.position + 40);
    return { fs, layout, victim };
  }

  it('dry run reports the damage and the offsets it would lose, changing nothing', async () => {
    const { fs, layout, victim } = await damaged();
    const files = new Map<string, Buffer>();
    for (const f of fs.listFiles()) files.set(f, await fs.readFile(f));
    const end = layout.at(-1)!.baseOffset + 2;
    const r = await repairPartitionLog(fs, '/p', { mode: 'truncate', dryRun: true });
    expect(r).toMatchObject({
      dryRun: true,
      lost: [{ fromOffset: victim.baseOffset, toOffset: end - 1 }],
      offsetsLost: end - victim.baseOffset,
      logEndOffsetBefore: end,
      logEndOffsetAfter: victim.baseOffset,
    });
    expect(r.damages).toHaveLength(1);
    for (const [f, data] of files) expect(await fs.readFile(f)).toEqual(data);
  });

  it('truncate cuts at the damage; the log reopens there', async () => {
    const { fs, victim } = await damaged();
    const r = await repairPartitionLog(fs, '/p', { mode: 'truncate' });
    expect(r.logEndOffsetAfter).toBe(victim.baseOffset);
    const log = await PartitionLog.open(fs, '/p', CONFIG);
    expect(log.logEndOffset).toBe(victim.baseOffset);
    await log.close();
    // Nothing left to repair.
    const again = await repairPartitionLog(fs, '/p', { mode: 'truncate' });
    expect(again).toMatchObject({ damages: [], lost: [], offsetsLost: 0, changedSegments: [] });
  });

  it('skip replaces only the damaged batch by a gap batch: later offsets keep their values', async () => {
    const { fs, layout, victim } = await damaged();
    const r = await repairPartitionLog(fs, '/p', { mode: 'skip' });
    expect(r.lost).toEqual([{ fromOffset: victim.baseOffset, toOffset: victim.baseOffset + 1 }]);
    expect(r.offsetsLost).toBe(2);
    expect(r.bytesRemoved).toBe(victim.size);
    const end = layout.at(-1)!.baseOffset + 2;
    expect(r.logEndOffsetAfter).toBe(end);
    const log = await PartitionLog.open(fs, '/p', CONFIG);
    expect(log.logEndOffset).toBe(end);
    // A read into the gap gets the empty gap batch; its header moves the reader past it.
    const gap = await log.read(victim.baseOffset, 1);
    const { header, records } = decodeRecordBatch(gap.data, 0);
    expect(header).toMatchObject({
      baseOffset: victim.baseOffset,
      lastOffsetDelta: 1,
      recordCount: 0,
    });
    expect(records).toEqual([]);
    expect(gap.nextOffset).toBe(victim.baseOffset + 2);
    const all = await readAll(log);
    expect(all.map((b) => b.baseOffset)).toEqual(layout.map((b) => b.baseOffset));
    await log.close();
  });

  it('gap batches cover exactly the range, split at 2^31 offsets', () => {
    const [one] = encodeGapBatches(5, 9);
    expect(decodeRecordBatch(one!, 0).header).toMatchObject({ baseOffset: 5, lastOffsetDelta: 4 });
    const many = encodeGapBatches(0, 2 ** 32);
    expect(many).toHaveLength(3);
    const last = decodeRecordBatch(many[2]!, 0).header;
    expect(last.baseOffset + last.lastOffsetDelta).toBe(2 ** 32);
  });
});
