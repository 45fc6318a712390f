// Keeps the per-record driver (per-record.ts) working: a real broker child, tiny runs of the
// window loop, the sendBatch() reference and the paced loop, with the counts it reports checked
// (the run itself checks that the broker stored every record).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { StreamBusClient } from '@streambus/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ClientCtor, parseArgs, perRecordRun } from './per-record.js';
import { type ChildHandle, spawnBroker } from './suites/broker.js';

describe('per-record driver', () => {
  let dir: string;
  let broker: ChildHandle;
  const Client = StreamBusClient as unknown as ClientCtor;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'sb-bench-per-record-test-'));
    broker = await spawnBroker(join(dir, 'data'));
  });

  afterAll(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('parses its options and refuses bad ones', () => {
    const a = parseArgs([
      '--durability',
      'none',
      '--acks',
      '1',
      '--window',
      '50',
      '--mode',
      'batch',
      '--node-flag',
      '--trace-gc',
      '--node-flag',
      '--heap-growing-percent=0',
    ]);
    expect(a).toMatchObject({ durability: 'none', acks: 1, window: 50, mode: 'batch', runs: 3 });
    expect(a.nodeFlags).toEqual(['--trace-gc', '--heap-growing-percent=0']);
    expect(parseArgs([]).nodeFlags).toEqual([]);
    expect(() => parseArgs(['--durability', 'sometimes'])).toThrow(/durability/);
    expect(() => parseArgs(['--window', '-3'])).toThrow(/window/);
  });

  it('the window loop: every record stored, the request shape counted from /metrics', async () => {
    const a = parseArgs(['--durability', 'none', '--records', '20000', '--window', '1000']);
    const out = await perRecordRun(Client, broker, a, 'pr-window');
    expect(out.recordsPerSec).toBeGreaterThan(0);
    expect(out.clientCpuUsPerRecord).toBeGreaterThan(0);
    // The window's pieces: never more than the window per request, two per window once settled
    // (the first windows are cut smaller).
    expect(out.recordsPerRequest).toBeLessThanOrEqual(1000);
    expect(out.produceRequests).toBeGreaterThanOrEqual(40);
    expect(out.produceRequests).toBeLessThanOrEqual(60);
    expect(out.brokerMsPerRequest).toBeGreaterThan(0);
  });

  it('the sendBatch() reference and the paced loop', async () => {
    const batch = await perRecordRun(
      Client,
      broker,
      parseArgs(['--durability', 'none', '--records', '20000', '--mode', 'batch']),
      'pr-batch',
    );
    expect(batch.recordsPerRequest).toBeGreaterThan(1000);
    const paced = await perRecordRun(
      Client,
      broker,
      parseArgs(['--durability', 'none', '--paced', '2000', '--seconds', '1', '--partitions', '1']),
      'pr-paced',
    );
    expect(paced.p50Ms).toBeGreaterThan(0);
    expect(paced.p99Ms).toBeGreaterThanOrEqual(paced.p50Ms!);
    expect(paced.produceRequests).toBeGreaterThan(10);
  });
});
