// The broker process's heap growth (v8-heap.ts): the default unless the process's own node
// flags chose one, and the `broker started` line says which is in effect.
// Requires `tsc -b packages/broker` first (as `npm test` does).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { HEAP_GROWING_PERCENT_DEFAULT, heapGrowingPercentOf } from './v8-heap.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'main.js');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Starts dist/main.js under `nodeFlags`, returns its started line's heapGrowingPercent. */
async function startedPercent(nodeFlags: string[]): Promise<unknown> {
  const dir = mkdtempSync(join(tmpdir(), 'streambus-heap-'));
  dirs.push(dir);
  const child = spawn(
    process.execPath,
    [...nodeFlags, MAIN, '--data-dir', dir, '--listen', '127.0.0.1:0', '--http', 'off'],
    { stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH ?? '' } },
  );
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  try {
    return await new Promise<unknown>((resolve, reject) => {
      let out = '';
      let err = '';
      const timer = setTimeout(() => reject(new Error(`no started line: ${out} ${err}`)), 20_000);
      child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        const line = out.split('\n').find((l) => l.includes('"broker started"'));
        if (line === undefined) return;
        clearTimeout(timer);
        resolve((JSON.parse(line) as { heapGrowingPercent?: unknown }).heapGrowingPercent);
      });
      void exited.then(() => reject(new Error(`exited before starting: ${err}`)));
    });
  } finally {
    child.kill('SIGKILL');
    await exited;
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
