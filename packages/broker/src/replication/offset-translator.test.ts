import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import type { LogIndex } from '@streambus/raft';
import { MemoryFileSystem } from '@streambus/storage';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  type BatchPlacement,
  OffsetTranslator,
  type OffsetTranslatorLimits,
  recoverOffsetTranslator,
  saveOffsetTranslator,
} from './offset-translator.js';
import type { LogPosition } from './term-runs.js';

const idx = (n: number) => n as LogIndex;

/** The model: one element per entry, from `startIndex`. */
class ModelLog {
  entries: BatchPlacement[] = [];
  constructor(
    public startIndex: number,
    public endOffset: number,
  ) {}
  get endIndex(): number {
    return this.startIndex + this.entries.length;
  }
  append(recordCount: number, isControl: boolean): BatchPlacement {
    const p = { baseOffset: this.endOffset, recordCount, isControl };
    this.entries.push(p);
    this.endOffset += recordCount;
    return p;
  }
  offsetOf(index: number): number {
    return index === this.endIndex
      ? this.endOffset
      : this.entries[index - this.startIndex]!.baseOffset;
  }
  indexOf(offset: number): number {
    if (offset === this.endOffset) return this.endIndex;
    const k = this.entries.findIndex((e) => offset < e.baseOffset + e.recordCount);
    return this.startIndex + k;
  }
  truncateSuffix(index: number): void {
    this.endOffset = this.offsetOf(index);
    this.entries.length = index - this.startIndex;
  }
  trimPrefix(index: number): void {
    this.entries = this.entries.slice(index - this.startIndex);
    this.startIndex = index;
  }
}

/** Every lookup of `t` agrees with the model: exact in the window, true anchors below it. */
function checkAgainst(t: OffsetTranslator, m: ModelLog, limits: OffsetTranslatorLimits): void {
  expect(t.startPosition).toEqual({ index: m.startIndex, offset: m.offsetOf(m.startIndex) });
  expect(t.endPosition).toEqual({ index: m.endIndex, offset: m.endOffset });
  expect(t.runCount).toBeLessThanOrEqual(limits.runsMax);
  expect(t.anchorCount).toBeLessThanOrEqual(limits.anchorsMax);
  const windowIndex = t.exactFrom.index;
  expect(t.exactFrom.offset).toBe(m.offsetOf(windowIndex));
  for (let i = m.startIndex; i <= m.endIndex; i++) {
    const a = t.anchorFor(idx(i));
    expect(a.index).toBeLessThanOrEqual(i);
    expect(a.index).toBeGreaterThanOrEqual(m.startIndex);
    expect(a.offset).toBe(m.offsetOf(a.index)); // a true point: a scan from it reaches i
    if (i >= windowIndex) {
      expect(t.offsetOf(idx(i))).toBe(m.offsetOf(i));
      expect(a.index).toBe(i);
      if (i < m.endIndex) expect(t.placementOf(idx(i))).toEqual(m.entries[i - m.startIndex]);
    } else {
      expect(t.offsetOf(idx(i))).toBeUndefined();
      expect(t.placementOf(idx(i))).toBeUndefined();
    }
  }
  for (let o = m.offsetOf(m.startIndex); o <= m.endOffset; o++) {
    const a = t.anchorForOffset(o);
    expect(a.offset).toBeLessThanOrEqual(o);
    expect(a.offset).toBe(m.offsetOf(a.index));
    if (o >= t.exactFrom.offset) expect(t.indexOf(o)).toBe(m.indexOf(o));
    else expect(t.indexOf(o)).toBeUndefined();
  }
}

const op = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('append' as const),
      count: fc.integer({ min: 1, max: 6 }),
      records: fc.integer({ min: 1, max: 3 }),
      control: fc.boolean(),
      vary: fc.boolean(),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('truncate' as const),
      at: fc.nat({ max: 999 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('trim' as const),
      at: fc.nat({ max: 999 }),
    }),
  },
);

describe('OffsetTranslator against an array of entries', () => {
  it('answers every lookup like the array, within its bounds, after random appends, truncations and trims', () => {
    fc.assert(
      fc.property(
        fc.array(op, { maxLength: 30 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 2, max: 4 }),
        fc.integer({ min: 1, max: 20 }),
        (ops, runsMax, anchorsMax, startIndex) => {
          const limits = { runsMax, anchorsMax };
          const m = new ModelLog(startIndex, 100);
          let t = new OffsetTranslator({ index: idx(startIndex), offset: 100 }, limits);
          for (const o of ops) {
            if (o.kind === 'append') {
              for (let k = 0; k < o.count; k++) {
                const records = o.vary ? 1 + ((o.records + k) % 3) : o.records;
                t.append(idx(m.endIndex), m.append(records, o.control && k === 0));
              }
            } else {
              const at = m.startIndex + Math.floor((o.at / 1000) * (m.entries.length + 1));
              if (at > m.endIndex) continue;
              if (o.kind === 'truncate') {
                // Below the window the caller supplies the offset (read from the log).
                const offset = at < t.exactFrom.index ? m.offsetOf(at) : undefined;
                t.truncateSuffix(idx(at), offset);
                m.truncateSuffix(at);
              } else {
                t.trimPrefix({ index: idx(at), offset: m.offsetOf(at) });
                m.trimPrefix(at);
              }
            }
            checkAgainst(t, m, limits);
            // The checkpoint round-trips to the same answers.
            const decoded = OffsetTranslator.decode(t.encode(), limits);
            expect(typeof decoded).not.toBe('string');
            checkAgainst(decoded as OffsetTranslator, m, limits);
            t = decoded as OffsetTranslator;
          }
          // A rebuild from the log scan with room for every run is exact everywhere.
          const big = { runsMax: 1 << 20, anchorsMax: 1 << 10 };
          const rebuilt = OffsetTranslator.fromScan(
            { index: idx(m.startIndex), offset: m.offsetOf(m.startIndex) },
            m.entries,
            big,
          );
          expect(rebuilt.exactFrom.index).toBe(m.startIndex);
          checkAgainst(rebuilt, m, big);
        },
      ),
      { numRuns: 120 },
    );
  });

  it('recovers from a checkpoint plus the scan of what the log gained after it', () => {
    const m = new ModelLog(1, 0);
    const t = new OffsetTranslator({ index: idx(1), offset: 0 });
    for (let i = 0; i < 50; i++)
      t.append(idx(m.endIndex), m.append(1 + (i % 4 === 0 ? 2 : 0), i % 10 === 0));
    const checkpoint = t.encode();
    const after = m.entries.length;
    for (let i = 0; i < 20; i++) m.append(5, false);
    const recovered = OffsetTranslator.decode(checkpoint) as OffsetTranslator;
    expect(recovered.endPosition).toEqual({ index: 51, offset: m.offsetOf(51) });
    recovered.appendScanned(m.entries.slice(after));
    checkAgainst(recovered, m, { runsMax: 4096, anchorsMax: 1024 });
  });

  it('keeps runs, not entries: a steady batch size costs one run however long the log', () => {
    const t = new OffsetTranslator({ index: idx(1), offset: 0 });
    for (let i = 1; i <= 100_000; i++)
      t.append(idx(i), { baseOffset: (i - 1) * 10, recordCount: 10, isControl: false });
    expect(t.runCount).toBe(1);
    expect(t.offsetOf(idx(77_777))).toBe(777_760);
    expect(t.indexOf(777_765)).toBe(77_777);
    // A leader change: one control batch (the no-op) of one record occupies an offset.
    t.append(idx(100_001), { baseOffset: 1_000_000, recordCount: 1, isControl: true });
    t.append(idx(100_002), { baseOffset: 1_000_001, recordCount: 10, isControl: false });
    expect(t.runCount).toBe(3);
    expect(t.placementOf(idx(100_001))).toEqual({
      baseOffset: 1_000_000,
      recordCount: 1,
      isControl: true,
    });
    expect(t.indexOf(1_000_000)).toBe(100_001);
    expect(t.offsetOf(idx(100_002))).toBe(1_000_001);
  });

  it('refuses a scan with a gap or an overlap as CORRUPT_DATA, and a blind truncation below the window', () => {
    const start = { index: idx(1), offset: 0 };
    const gap = [
      { baseOffset: 0, recordCount: 2, isControl: false },
      { baseOffset: 3, recordCount: 1, isControl: false },
    ];
    let err: unknown;
    try {
      OffsetTranslator.fromScan(start, gap);
    } catch (e) {
      err = e;
    }
    expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
    expect(String(err)).toMatch(/batch at offset 3 \(1 records\) where 2 was expected, entry 2/);

    const t = new OffsetTranslator(start, { runsMax: 1, anchorsMax: 2 });
    let offset = 0;
    for (let i = 1; i <= 6; i++) {
      t.append(idx(i), { baseOffset: offset, recordCount: 1 + (i % 2), isControl: false });
      offset += 1 + (i % 2);
    }
    expect(t.exactFrom.index).toBeGreaterThan(2);
    expect(() => t.truncateSuffix(idx(2))).toThrow(/needs its offset/);
  });

  it('decode refuses payloads that break the invariants', () => {
    const t = new OffsetTranslator({ index: idx(1), offset: 0 });
    t.append(idx(1), { baseOffset: 0, recordCount: 2, isControl: false });
    const good = t.encode();
    expect(typeof OffsetTranslator.decode(good)).not.toBe('string');
    expect(OffsetTranslator.decode(good.subarray(0, good.length - 1))).toMatch(/bad run count/);
    const bad = new Uint8Array(good);
    new DataView(bad.buffer).setBigUint64(40 + 8, 7n); // the run's offset: not at the window
    expect(OffsetTranslator.decode(bad)).toMatch(/not contiguous/);
    const noAnchor = new Uint8Array(good);
    new DataView(noAnchor.buffer).setBigUint64(16, 2n); // window above start, no anchors
    expect(OffsetTranslator.decode(noAnchor)).toMatch(/without anchors/);
  });
});

describe('the offset translator checkpoint file', () => {
  const PATH = '/p/offsets';
  const DEFAULTS = { runsMax: 4096, anchorsMax: 1024 };

  /** The log's scan from an exact position, as the partition log would read it: from the batch
   * holding that offset (which need not start there when the checkpoint is stale). */
  function scanner(m: ModelLog) {
    let scans = 0;
    const scanFrom = async (from: LogPosition) => {
      scans++;
      return m.entries.filter((e) => e.baseOffset + e.recordCount > from.offset);
    };
    return { scanFrom, scans: () => scans };
  }

  async function setup() {
    const fs = new MemoryFileSystem({ seed: 1 });
    await fs.mkdir('/p');
    const m = new ModelLog(1, 0);
    const t = new OffsetTranslator({ index: idx(1), offset: 0 });
    for (let i = 0; i < 30; i++) t.append(idx(m.endIndex), m.append(1 + (i % 3), false));
    await saveOffsetTranslator(fs, PATH, t);
    return { fs, m, t };
  }

  it('uses a good checkpoint and scans only what the log gained after it', async () => {
    const { fs, m } = await setup();
    for (let i = 0; i < 5; i++) m.append(4, false);
    m.trimPrefix(3); // retention moved the log start since
    const s = scanner(m);
    const got = await recoverOffsetTranslator(
      fs,
      PATH,
      { index: idx(3), offset: m.offsetOf(3) },
      s.scanFrom,
    );
    expect(got.from).toBe('checkpoint');
    checkAgainst(got.translator, m, DEFAULTS);
  });

  it('rebuilds from the log start when the file is damaged or no longer matches the log', async () => {
    const { fs, m } = await setup();
    fs.flipBit(PATH, 20);
    let got = await recoverOffsetTranslator(
      fs,
      PATH,
      { index: idx(1), offset: 0 },
      scanner(m).scanFrom,
    );
    expect(got.from).toBe('rebuilt');
    expect(got.reason).toMatch(/CRC-32C/);
    checkAgainst(got.translator, m, DEFAULTS);

    // Saved, then the log was truncated at 20 and rewritten with other batch sizes (without the
    // save the rules ask for): the scan after the checkpoint's end does not start on a batch.
    const again = await setup();
    again.m.truncateSuffix(20);
    for (let i = 0; i < 15; i++) again.m.append(7, false);
    got = await recoverOffsetTranslator(
      again.fs,
      PATH,
      { index: idx(1), offset: 0 },
      scanner(again.m).scanFrom,
    );
    expect(got.from).toBe('rebuilt');
    expect(got.reason).toMatch(/does not match the log/);
    checkAgainst(got.translator, again.m, DEFAULTS);
  });
});
