// The groups suite end to end in its --quick form (one broker process): `node
// benchmarks/dist/main.js groups --quick --out DIR` runs every row and writes DIR/groups.json,
// each row measured (a positive, finite value) with the settings it ran under.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import type { ResultRow } from '../harness.js';

const MAIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'dist', 'main.js');

describe('groups suite', () => {
  const dir = mkdtempSync(join(tmpdir(), 'sb-bench-groups-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs in --quick and writes its results json', async () => {
    const child = spawn(process.execPath, [MAIN, 'groups', '--quick', '--out', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      // Its own process group: a run past the timeout is killed with its broker processes.
      detached: true,
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
    });
    const killer = setTimeout(() => {
      if (child.pid !== undefined) process.kill(-child.pid, 'SIGKILL');
    }, 110_000);
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    clearTimeout(killer);
    expect(code, output).toBe(0);
    const rows = JSON.parse(readFileSync(join(dir, 'groups.json'), 'utf8')) as ResultRow[];
    expect(rows.map((r) => r.name)).toEqual([
      'groups rebalance, join, cooperative-sticky',
      'groups rebalance, join, range (eager)',
      'groups consume, 3 members',
      'groups commits/s, sequential',
      'groups commits/s, 16 in flight',
    ]);
    for (const r of rows) {
      expect(Number.isFinite(r.value) && r.value > 0, r.name).toBe(true);
      expect(r.settings.brokers, r.name).toBe(1);
    }
    expect(rows[0]!.reference).toBe(rows[1]!.value);
    expect(rows[2]!.reference).toBeGreaterThan(0);
    expect(output).toContain('groups rebalance, join, cooperative-sticky');
  }, 120_000);
});
