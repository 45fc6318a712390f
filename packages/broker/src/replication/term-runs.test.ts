import { ErrorCode, isStreamBusError } from '@streambus/protocol';
import type { LogIndex, Term } from '@streambus/raft';
import { MemoryFileSystem } from '@streambus/storage';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeCheckpoint } from './checkpoint-file.js';
import { CrashAtStepFileSystem, PowerCutError } from './replication-test-fs.js';
import {
  type LogPosition,
  recoverTermRuns,
  type ScannedTerm,
  saveTermRuns,
  TERM_RUNS_MAGIC,
  TermRuns,
} from './term-runs.js';

const idx = (n: number) => n as LogIndex;
const term = (n: number) => n as Term;

/** The naive model: the log as an array of (term, records) from `start`. */
class ModelLog {
  entries: Array<{ term: number; offset: number; records: number }> = [];
  constructor(
    public startIndex: number,
    public endOffset: number,
  ) {}
  get endIndex(): number {
    return this.startIndex + this.entries.length;
  }
  append(t: number, records: number): ScannedTerm {
    const e = { term: t, offset: this.endOffset, records };
    const scanned = { index: idx(this.endIndex), offset: e.offset, term: term(t) };
    this.entries.push(e);
    this.endOffset += records;
    return scanned;
  }
  lastTerm(): number {
    return this.entries[this.entries.length - 1]?.term ?? 0;
  }
  at(index: number) {
    return this.entries[index - this.startIndex]!;
  }
  position(index: number): LogPosition {
    return {
      index: idx(index),
      offset: index === this.endIndex ? this.endOffset : this.at(index).offset,
    };
  }
  truncateSuffix(index: number): void {
    if (index < this.endIndex) this.endOffset = this.at(index).offset;
    this.entries.length = index - this.startIndex;
  }
  truncatePrefix(index: number): void {
    this.entries = this.entries.slice(index - this.startIndex);
    this.startIndex = index;
  }
  scan(): ScannedTerm[] {
    return this.entries.map((e, k) => ({
      index: idx(this.startIndex + k),
      offset: e.offset,
      term: term(e.term),
    }));
  }
  /** Naive "end offset for term T": the last entry of the largest term <= T, plus one. */
  endFor(t: number): { term: number; index: number; offset: number } | undefined {
    let found = -1;
    for (let k = 0; k < this.entries.length; k++) if (this.entries[k]!.term <= t) found = k;
    if (found < 0) return undefined;
    const tt = this.entries[found]!.term;
    let k = found;
    while (k + 1 < this.entries.length && this.entries[k + 1]!.term === tt) k++;
    const end = this.startIndex + k + 1;
    return { term: tt, ...this.position(end) };
  }
}

const op = fc.oneof(
  fc.record({
    kind: fc.constant('append' as const),
    termStep: fc.nat({ max: 2 }),
    count: fc.integer({ min: 1, max: 5 }),
    records: fc.integer({ min: 1, max: 4 }),
  }),
  fc.record({
    kind: fc.constant('truncate' as const),
    at: fc.nat({ max: 999 }),
  }),
  fc.record({ kind: fc.constant('trim' as const), at: fc.nat({ max: 999 }) }),
);

function checkAgainst(table: TermRuns, model: ModelLog): void {
  for (let i = model.startIndex; i < model.endIndex; i++) {
    expect(table.termOf(idx(i))).toBe(model.at(i).term);
  }
  const end = model.position(model.endIndex);
  for (let t = 0; t <= model.lastTerm() + 1; t++) {
    const got = table.endFor(term(t), end);
    const want = model.endFor(t);
    expect(got === undefined ? undefined : { ...got }).toEqual(want);
  }
  if (model.entries.length > 0) {
    expect(table.list()[0]!.index).toBeLessThanOrEqual(model.startIndex);
  }
}

describe('TermRuns against a naive scan of the log', () => {
  it('answers termOf and endFor like the scan after random appends, truncations and trims', () => {
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const model = new ModelLog(1, 0);
        const table = new TermRuns();
        for (const o of ops) {
          if (o.kind === 'append') {
            const t = Math.max(1, model.lastTerm() + o.termStep);
            for (let k = 0; k < o.count; k++) {
              const s = model.append(t, o.records);
              const added = table.observe(s.term, s.index, s.offset);
              expect(added).toBe(table.latest()!.index === s.index);
            }
          } else if (o.kind === 'truncate') {
            const at = model.startIndex + Math.floor((o.at / 1000) * (model.entries.length + 1));
            if (at > model.endIndex) continue;
            model.truncateSuffix(at);
            table.truncateSuffix(idx(at));
          } else {
            const at = model.startIndex + Math.floor((o.at / 1000) * (model.entries.length + 1));
            if (at > model.endIndex || at === model.endIndex) continue;
            const pos = model.position(at);
            model.truncatePrefix(at);
            table.truncatePrefix(pos);
          }
          checkAgainst(table, model);
          // The file payload round-trips, and a rebuild from the scan gives the same answers.
          const decoded = TermRuns.decode(table.encode());
          expect(typeof decoded).not.toBe('string');
          checkAgainst(decoded as TermRuns, model);
          checkAgainst(TermRuns.fromScan(model.scan()), model);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('records a run only when the term changes, and says when a truncation removed one', () => {
    const t = new TermRuns();
    expect(t.observe(term(1), idx(1), 0)).toBe(true);
    expect(t.observe(term(1), idx(2), 3)).toBe(false);
    expect(t.observe(term(4), idx(3), 5)).toBe(true);
    expect(t.truncateSuffix(idx(4))).toBe(false); // inside term 4's run: the file still holds
    expect(t.truncateSuffix(idx(3))).toBe(true); // term 4's run is gone: save before writing on
    expect(t.list()).toEqual([{ term: 1, index: 1, offset: 0 }]);
    expect(() => t.observe(term(0), idx(3), 5)).toThrow(/term 0 at 3 after term 1/);
  });

  it('refuses a scan whose terms go down (a damaged partitionLeaderEpoch) as CORRUPT_DATA', () => {
    const scan = [
      { index: idx(1), offset: 0, term: term(2) },
      { index: idx(2), offset: 1, term: term(1) },
    ];
    let err: unknown;
    try {
      TermRuns.fromScan(scan);
    } catch (e) {
      err = e;
    }
    expect(isStreamBusError(err, ErrorCode.CORRUPT_DATA)).toBe(true);
    expect(String(err)).toMatch(/offset 1 has term 1 after term 2/);
  });

  it('decode refuses tables that break invariant 1', () => {
    const bad = new Uint8Array(4 + 2 * 20);
    const v = new DataView(bad.buffer);
    v.setUint32(0, 2);
    v.setUint32(4, 5); // term 5 at index 10
    v.setBigUint64(8, 10n);
    v.setBigUint64(16, 10n);
    v.setUint32(24, 3); // then term 3: terms must increase
    v.setBigUint64(28, 11n);
    v.setBigUint64(36, 11n);
    expect(TermRuns.decode(bad)).toMatch(/term 3 does not follow 5/);
    expect(TermRuns.decode(bad.subarray(0, 10))).toBe('bad run count');
  });
});

// ---------------------------------------------------------------- the file, and crashes

const PATH = '/p/term-runs';

function tableOf(runs: Array<[number, number, number]>): TermRuns {
  return new TermRuns(runs.map(([t, i, o]) => ({ term: term(t), index: idx(i), offset: o })));
}

/** A log of 12 entries, one record each, terms 1 (1-4), 2 (5-8), 3 (9-12). */
function logOfThreeTerms() {
  const scan: ScannedTerm[] = [];
  for (let i = 1; i <= 12; i++)
    scan.push({ index: idx(i), offset: i - 1, term: term(Math.ceil(i / 4)) });
  return {
    scan,
    bounds: { start: { index: idx(1), offset: 0 }, end: { index: idx(13), offset: 12 } },
  };
}

async function freshDisk(seed: number): Promise<MemoryFileSystem> {
  const fs = new MemoryFileSystem({ seed });
  await fs.mkdir('/p');
  await fs.syncDir('/');
  return fs;
}

describe('the term-run file', () => {
  const oldTable = tableOf([
    [1, 1, 0],
    [2, 5, 4],
  ]);
  const newTable = tableOf([
    [1, 1, 0],
    [2, 5, 4],
    [3, 9, 8],
  ]);

  it('survives a crash at every step of its atomic write as the old or the new table', async () => {
    const { bounds } = logOfThreeTerms();
    let outcomes = { old: 0, new: 0 };
    for (const mode of ['drop-unsynced', 'keep-prefix'] as const) {
      for (let seed = 1; seed <= 8; seed++) {
        for (let crashAt = 0; ; crashAt++) {
          const disk = await freshDisk(seed);
          await saveTermRuns(disk, PATH, oldTable);
          const fs = new CrashAtStepFileSystem(disk, crashAt);
          let finished = false;
          try {
            await saveTermRuns(fs, PATH, newTable);
            finished = true;
          } catch (err) {
            expect(err).toBeInstanceOf(PowerCutError);
          }
          const after = disk.crash(mode);
          // A rebuild would also give a right table; the point is that the file itself is used.
          const got = await recoverTermRuns(after, PATH, bounds, async () => {
            throw new Error('the file must not need a rebuild after a crash mid-write');
          });
          expect(got.from).toBe('file');
          const runs = got.table.list();
          if (runs.length === 3) {
            expect(runs).toEqual(newTable.list());
            outcomes = { ...outcomes, new: outcomes.new + 1 };
          } else {
            expect(runs).toEqual(oldTable.list());
            outcomes = { ...outcomes, old: outcomes.old + 1 };
          }
          if (finished) {
            // Once the write returned, the new table is durable whatever the crash keeps.
            expect(runs.length).toBe(3);
            break;
          }
        }
      }
    }
    // Both outcomes occurred: the crash points really straddle the rename.
    expect(outcomes.old).toBeGreaterThan(0);
    expect(outcomes.new).toBeGreaterThan(0);
  });

  it('rebuilds from the log when the file is missing, torn, flipped or foreign, and saves it', async () => {
    const { scan, bounds } = logOfThreeTerms();
    const whole = encodeCheckpoint(TERM_RUNS_MAGIC, newTable.encode());
    const damages: Array<[string, (fs: MemoryFileSystem) => void, RegExp]> = [
      ['missing', () => {}, /no file/],
      ['torn', (fs) => fs.writeDurably(PATH, 0, whole.subarray(0, whole.length - 3)), /torn/],
      [
        'trailing garbage',
        (fs) => fs.writeDurably(PATH, 0, Buffer.concat([whole, Buffer.from([7])])),
        /torn/,
      ],
      [
        'foreign',
        (fs) => fs.writeDurably(PATH, 0, encodeCheckpoint('SBOT', newTable.encode())),
        /not a SBTR file/,
      ],
      ['empty', (fs) => fs.writeDurably(PATH, 0, new Uint8Array(0)), /shorter than an empty file/],
    ];
    for (let bit = 0; bit < whole.length * 8; bit += 7) {
      damages.push([
        `bit ${bit}`,
        (fs) => {
          fs.writeDurably(PATH, 0, whole);
          fs.flipBit(PATH, bit >> 3, bit & 7);
        },
        /CRC-32C|length|torn/,
      ]);
    }
    for (const [name, damage, reason] of damages) {
      const fs = await freshDisk(1);
      damage(fs);
      let scans = 0;
      const got = await recoverTermRuns(fs, PATH, bounds, async () => {
        scans++;
        return scan;
      });
      expect({ name, from: got.from }).toEqual({ name, from: 'rebuilt' });
      expect(got.reason).toMatch(reason);
      expect(scans).toBe(1);
      expect(got.table.list()).toEqual(newTable.list());
      // The rebuilt table was saved: the next start-up uses the file.
      const again = await recoverTermRuns(fs, PATH, bounds, async () => {
        throw new Error('no second rebuild');
      });
      expect(again.from).toBe('file');
      expect(again.table.list()).toEqual(newTable.list());
    }
  });

  it('clips a good file to the log: a run recorded before its entry was written is dropped', async () => {
    const fs = await freshDisk(1);
    // Rule R1: term 4's run was saved, then the process died before entry 13 was written.
    await saveTermRuns(
      fs,
      PATH,
      tableOf([
        [1, 1, 0],
        [2, 5, 4],
        [3, 9, 8],
        [4, 13, 12],
      ]),
    );
    const { bounds } = logOfThreeTerms();
    const got = await recoverTermRuns(fs, PATH, bounds, async () => []);
    expect(got.from).toBe('file');
    expect(got.table.list()).toEqual(newTable.list());
    // Retention moved the log start to entry 6 since the file was written (rule R3).
    const trimmed = await recoverTermRuns(
      fs,
      PATH,
      { start: { index: idx(6), offset: 5 }, end: bounds.end },
      async () => [],
    );
    expect(trimmed.table.list()).toEqual([
      { term: 2, index: 6, offset: 5 },
      { term: 3, index: 9, offset: 8 },
    ]);
  });
});
