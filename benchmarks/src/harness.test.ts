import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { formatTable, median, medianOfRuns, quantile, row, writeResults } from './harness.js';

describe('benchmark harness', () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
  });

  it('takes medians and quantiles', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 2, 3])).toBe(2.5);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.99)).toBe(10);
    expect(quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5)).toBe(5);
    expect(() => median([])).toThrow(RangeError);
    expect(() => quantile([1], 2)).toThrow(RangeError);
  });

  it('alternates body and reference runs and reports both medians', async () => {
    const order: string[] = [];
    let v = 0;
    const r = await medianOfRuns(
      3,
      () => {
        order.push('b');
        return ++v * 10;
      },
      () => {
        order.push('r');
        return 5;
      },
    );
    expect(order).toEqual(['r', 'b', 'r', 'b', 'r', 'b']);
    expect(r.value).toBe(20);
    expect(r.reference).toBe(5);
  });

  it('writes rows with ratios and prints a table', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sb-bench-'));
    dirs.push(dir);
    const rows = [row('encode', 200, 'records/s', { runs: 3 }, 400), row('crc', 3.5, 'GB/s', {})];
    expect(rows[0]!.ratio).toBe(0.5);
    expect(rows[1]!.ratio).toBeUndefined();
    const file = writeResults(dir, 'demo', rows);
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual(rows);
    const table = formatTable(rows);
    expect(table).toContain('encode');
    expect(table).toContain('0.50');
  });
});
