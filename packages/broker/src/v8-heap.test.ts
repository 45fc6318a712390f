// The broker process's heap growth (v8-heap.ts): the default unless the process's own node
// flags chose one, and the `broker started` line says which is in effect.
// Requires `tsc -b packages/broker` first (as `npm test` does).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startBrokerChild } from './testing/broker-child.js';
import { HEAP_GROWING_PERCENT_DEFAULT, heapGrowingPercentOf } from './v8-heap.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts dist/main.js under `nodeFlags`, returns its started line's heapGrowingPercent. */
async function startedPercent(nodeFlags: string[]): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'streambus-heap-'));
  dirs.push(dir);
  const b = await startBrokerChild(dir, {}, nodeFlags);
  try {
    return b.logs.find((l) => l.msg === 'broker started')?.heapGrowingPercent;
  } finally {
    await b.stop();
  }
}

describe('heapGrowingPercentOf', () => {
  it('reads the node flag in its spellings, the last one winning', () => {
    expect(heapGrowingPercentOf([])).toBeNull();
    expect(heapGrowingPercentOf(['--max-old-space-size=512'])).toBeNull();
    expect(heapGrowingPercentOf(['--heap-growing-percent=150'])).toBe(150);
    expect(heapGrowingPercentOf(['--heap_growing_percent=0'])).toBe(0);
    expect(heapGrowingPercentOf(['--heap-growing-percent', '80', '--trace-gc'])).toBe(80);
    expect(heapGrowingPercentOf(['--heap-growing-percent=50', '--heap-growing-percent=70'])).toBe(
      70,
    );
  });

  it('ignores a flag without a whole number', () => {
    expect(heapGrowingPercentOf(['--heap-growing-percent=lots'])).toBeNull();
    expect(heapGrowingPercentOf(['--heap-growing-percent'])).toBeNull();
    expect(heapGrowingPercentOf(['--heap-growing-percent-x=5'])).toBeNull();
  });
});

describe('a broker process', () => {
  it(`runs with ${HEAP_GROWING_PERCENT_DEFAULT}% heap growth unless its node flags chose one`, async () => {
    expect(await startedPercent([])).toBe(HEAP_GROWING_PERCENT_DEFAULT);
    expect(await startedPercent(['--heap-growing-percent=0'])).toBe(0);
  }, 60_000);
});
