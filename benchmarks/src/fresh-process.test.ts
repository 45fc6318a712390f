// Keeps the broker suite's fresh-process and validation-cost rows working: a real broker child,
// one fresh client process per job kind (tiny jobs), and the validation rows on a few batches,
// with every count checked.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UV_THREADPOOL_SIZE_DEFAULT } from '@streambus/broker';
import { StreamBusClient } from '@streambus/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freshStartupRows, processCpuMs, runFreshClient } from './fresh-process.js';
import { type ChildHandle, makeBatches, produceFrames, spawnBroker } from './suites/broker.js';
import { validationRows } from './validation-cost.js';

describe('fresh-process and validation-cost rows', () => {
  let dir: string;
  let broker: ChildHandle;
  let client: StreamBusClient;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-bench-fresh-test-'));
    broker = await spawnBroker(join(dir, 'data'));
    client = new StreamBusClient({ bootstrap: `127.0.0.1:${broker.port}` });
    await client
      .admin()
      .createTopic({ name: 'fresh', partitions: 1, configs: { durability: 'none' } });
  });

  afterAll(async () => {
    await client?.close();
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a process CPU time from /proc as process.cpuUsage does (10 ms ticks)', () => {
    const end = performance.now() + 60;
    while (performance.now() < end) {} // burn some CPU so both readings are well above 0
    const own = process.cpuUsage();
    const fromProc = processCpuMs(process.pid);
    expect(Math.abs(fromProc - (own.user + own.system) / 1000)).toBeLessThan(40);
    expect(processCpuMs(broker.pid)).toBeGreaterThan(0);
  });

  it('the start-up rows: five fresh brokers, CPU above the bare node floor', async () => {
    const rows = await freshStartupRows({
      quick: true,
      tmp: dir,
      warmed: [],
      spawnBroker,
      makeBatches,
      produceFrames,
    });
    expect(rows.map((r) => r.name)).toEqual([
      'fresh broker start-up cpu',
      'fresh broker start-up wall',
    ]);
    const [cpu, wall] = rows as [(typeof rows)[0], (typeof rows)[0]];
    expect((cpu.settings.values as number[]).length).toBe(5);
    expect((cpu.settings.references as number[]).length).toBe(5);
    // A broker loads ~200 modules and opens its controller: well above a bare node process.
    expect(cpu.value).toBeGreaterThan(cpu.reference ?? Number.POSITIVE_INFINITY);
    expect(wall.value).toBeGreaterThan(0);
  }, 60_000);

  it("the bench broker runs with the launchers' libuv pool size", () => {
    expect(readFileSync(`/proc/${broker.pid}/environ`, 'utf8').split('\0')).toContain(
      `UV_THREADPOOL_SIZE=${UV_THREADPOOL_SIZE_DEFAULT}`,
    );
  });

  it('a fresh client process sends, sends paced, and consumes what was sent', async () => {
    const sent = await runFreshClient({
      kind: 'sendBatch',
      port: broker.port,
      topic: 'fresh',
      acks: 1,
      records: 20_000,
      valueBytes: 100,
      chunkRecords: 10_000,
      chunksOutstanding: 2,
    });
    expect(sent.kind === 'sendBatch' && sent.recordsPerSec > 0).toBe(true);
    const paced = await runFreshClient({
      kind: 'paced',
      port: broker.port,
      topic: 'fresh',
      acks: 1,
      rate: 2000,
      seconds: 0.5,
      dropMs: 100,
      valueBytes: 100,
    });
    if (paced.kind !== 'paced') throw new Error(paced.kind);
    // 1000 records sent, those after the first 100 ms measured (about 800).
    expect(paced.latenciesMs.length).toBeGreaterThan(600);
    expect(paced.latenciesMs.length).toBeLessThan(1000);
    expect(paced.latenciesMs.every((ms) => ms >= 0 && ms < 10_000)).toBe(true);
    const consumed = await runFreshClient({
      kind: 'consume',
      port: broker.port,
      topic: 'fresh',
      records: 21_000,
    });
    if (consumed.kind !== 'consume') throw new Error(consumed.kind);
    expect(consumed.valueBytes).toBe(21_000 * 100);
  });

  it('a failing job is an error naming the job, not a hang', async () => {
    await expect(
      runFreshClient({ kind: 'consume', port: 1, topic: 'fresh', records: 1 }),
    ).rejects.toThrow(/fresh client \(consume\) exited with 1/);
  });

  it('the validation rows measure the walk and the broker on every codec', async () => {
    const rows = await validationRows({
      port: broker.port,
      client,
      quick: true,
      runs: 1,
      batches: makeBatches(4, 1000, 100),
      produceFrames,
      framesPerRun: 20,
      loopMs: 20,
    });
    expect(rows.map((r) => r.name)).toEqual([
      'validate walk none',
      'produce prebuilt none acks=1',
      'validate walk lz4',
      'produce prebuilt lz4 acks=1',
      'validate walk gzip',
      'produce prebuilt gzip acks=1',
    ]);
    for (const r of rows) {
      expect(r.value).toBeGreaterThan(0);
      expect(r.reference).toBeGreaterThan(0);
    }
  });
});
