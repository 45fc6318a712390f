// The broker CPU rows' building blocks: /proc CPU time of a process, and the rows against a real
// broker child for a few hundred requests (values present, positive, one per run).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { brokerCpuRows, procCpuMs } from './broker-cpu.js';
import { type ChildHandle, makeBatches, produceFrames, spawnBroker } from './suites/broker.js';

describe('broker cpu rows', () => {
  let dir: string;
  let broker: ChildHandle;
  let client: StreamBusClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-bench-cpu-test-'));
    broker = await spawnBroker(join(dir, 'data'));
    client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
  });

  afterAll(async () => {
    await client?.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a process CPU time that grows while it computes, and -1 for no such process', () => {
    const before = procCpuMs(process.pid);
    expect(before).toBeGreaterThanOrEqual(0);
    const until = Date.now() + 60;
    let x = 0;
    while (Date.now() < until) x += Math.sqrt(x + 1);
    expect(x).toBeGreaterThan(0);
    expect(procCpuMs(process.pid)).toBeGreaterThan(before);
    expect(procCpuMs(2 ** 30)).toBe(-1);
  });

  it('measures µs of broker CPU per request for both shapes', async () => {
    const rows = await brokerCpuRows({
      port: broker.port,
      pid: broker.pid,
      client,
      quick: true,
      runs: 2,
      makeBatches,
      produceFrames,
      requestsPerRun: { one: 300, thousand: 30 },
    });
    expect(rows.map((r) => r.name)).toEqual([
      'broker cpu per produce request, 1 record',
      'broker cpu per produce request, 1,000 records',
    ]);
    for (const r of rows) {
      expect(r.unit).toBe('us');
      expect((r.settings as { values: number[] }).values).toHaveLength(2);
      expect(r.value).toBeGreaterThanOrEqual(0);
    }
  }, 30_000);
});
